//! Stage 2: turn `(topic, payload)` into a verified message from a known device, or a rejection.
//!
//! [`decode`] checks the message on its own; [`guard`] then checks it against the device's past
//! (key, sequence, clock, rate). Pure: no I/O, no clock. Every way a message can be refused is a [`Reason`] with a stable
//! metric label and a detail a device owner can act on.

pub mod guard;
pub mod topic;

use std::sync::Arc;

use gridwatch_firmware::wire::{self, Message};

pub use topic::Channel;

use crate::registry::{Device, Registry};

/// Why a message was refused; `as_str` is the `reason` label in `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The topic breaks the v1 grammar.
    BadTopic,
    /// The payload is larger than `ingest.max_payload_bytes`.
    Oversized,
    /// The payload is not a valid v1 message (or status word).
    Malformed,
    /// The topic names another community.
    WrongCommunity,
    /// The device is not in the registry.
    UnknownDevice,
    /// The payload's kind disagrees with the registry.
    WrongKind,
    /// An event on the telemetry topic, or telemetry on the event topic.
    WrongChannel,
    /// A reading the kind does not have, of the wrong type, or outside its valid range.
    BadReading,
    /// An event the kind does not have.
    UnknownEvent,
    /// No message authentication code, or a wrong one, from a device that must sign.
    BadMac,
    /// A sequence number that does not go forward: a replay.
    Replayed,
    /// A timestamp too far from the gateway's clock.
    ClockSkew,
}

impl Reason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadTopic => "bad_topic",
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::WrongCommunity => "wrong_community",
            Self::UnknownDevice => "unknown_device",
            Self::WrongKind => "wrong_kind",
            Self::WrongChannel => "wrong_channel",
            Self::BadReading => "bad_reading",
            Self::UnknownEvent => "unknown_event",
            Self::BadMac => "bad_mac",
            Self::Replayed => "replayed",
            Self::ClockSkew => "clock_skew",
        }
    }
}

/// A refused message: the reason and what exactly was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.as_str())]
pub struct Rejection {
    /// The reason, for counting.
    pub reason: Reason,
    /// The detail, for the log.
    pub detail: String,
}

fn reject(reason: Reason, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
    }
}

/// What an accepted message says.
#[expect(
    clippy::large_enum_variant,
    reason = "lives on the stack for one message; boxing would allocate per message"
)]
#[derive(Clone, Debug, PartialEq)]
pub enum Body<'a> {
    /// Telemetry or an event, in the v1 wire format.
    Message(Message<'a>),
    /// `online` (true) or `offline` (false).
    Status(bool),
}

/// An accepted message from a registered device.
#[derive(Clone, Debug)]
pub struct Decoded<'a> {
    /// The device, as the registry knows it.
    pub device: &'a Arc<Device>,
    /// The channel it arrived on.
    pub channel: Channel,
    /// What it says.
    pub body: Body<'a>,
}

/// Checks readings and event against the device kind's entry in the kind catalogue.
fn check_against_catalogue(
    registry: &Registry,
    device: &Device,
    msg: &Message<'_>,
) -> Result<(), Rejection> {
    // The registry only holds devices whose kind is in the catalogue.
    let Some(kind) = registry.catalogue().kind(&device.kind) else {
        return Ok(());
    };
    for r in &msg.data {
        kind.check_reading(r.name, r.value)
            .map_err(|why| reject(Reason::BadReading, why))?;
    }
    match msg.event {
        Some(event) if kind.event(event).is_none() => Err(reject(
            Reason::UnknownEvent,
            format!(
                "{:?} has no event {event:?} in the kind catalogue",
                device.kind
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks one message against the topic grammar, the size limit, the payload format and the registry.
pub fn decode<'a>(
    topic: &str,
    payload: &'a [u8],
    registry: &'a Registry,
    max_payload_bytes: usize,
) -> Result<Decoded<'a>, Rejection> {
    let t = topic::parse(topic).map_err(|why| reject(Reason::BadTopic, why))?;
    if payload.len() > max_payload_bytes {
        return Err(reject(
            Reason::Oversized,
            format!("{} bytes, the limit is {max_payload_bytes}", payload.len()),
        ));
    }
    if t.community != registry.community {
        return Err(reject(
            Reason::WrongCommunity,
            format!("this gateway serves community {:?}", registry.community),
        ));
    }
    let device = registry.device(t.device).ok_or_else(|| {
        reject(
            Reason::UnknownDevice,
            format!("device {:?} is not in the registry", t.device),
        )
    })?;
    let body = match t.channel {
        Channel::Status => match payload {
            b"online" => Body::Status(true),
            b"offline" => Body::Status(false),
            _ => {
                return Err(reject(
                    Reason::Malformed,
                    "status payload must be `online` or `offline`",
                ))
            }
        },
        Channel::Telemetry | Channel::Event => {
            let msg =
                wire::decode(payload).map_err(|e| reject(Reason::Malformed, e.to_string()))?;
            if msg.kind != &*device.kind {
                return Err(reject(
                    Reason::WrongKind,
                    format!(
                        "payload says {:?}, the registry says {:?}",
                        msg.kind, device.kind
                    ),
                ));
            }
            match (t.channel, msg.event) {
                (Channel::Event, None) => {
                    return Err(reject(
                        Reason::WrongChannel,
                        "an event message needs an `event` field",
                    ))
                }
                (Channel::Telemetry, Some(_)) => {
                    return Err(reject(
                        Reason::WrongChannel,
                        "events go to the /event topic",
                    ))
                }
                _ => {
                    check_against_catalogue(registry, device, &msg)?;
                    Body::Message(msg)
                }
            }
        }
    };
    Ok(Decoded {
        device,
        channel: t.channel,
        body,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An SOS button and a manhole cover in one building, for the decode and guard tests.
    pub(crate) fn registry() -> Registry {
        Registry::parse(
            r#"
[community]
id = "yg"
name = "阳光"
[[buildings]]
id = "b1"
name = "1号楼"
[[grids]]
id = "g1"
name = "一网格"
[[devices]]
id = "sos-1"
kind = "sos"
building = "b1"
grid = "g1"
location = "101"
[[devices]]
id = "mh-1"
kind = "manhole"
building = "b1"
grid = "g1"
location = "东门"
"#,
        )
        .unwrap()
    }

    const SOS: &[u8] = br#"{"v":1,"ts":1,"seq":1,"kind":"sos","event":"sos_pressed"}"#;
    const TELEMETRY: &[u8] = br#"{"v":1,"ts":1,"seq":1,"kind":"sos","data":{"battery_v":3.1}}"#;

    fn reason(topic: &str, payload: &[u8]) -> Reason {
        decode(topic, payload, &registry(), 4096)
            .unwrap_err()
            .reason
    }

    #[test]
    fn accepts_an_sos_event_from_a_registered_button() {
        let r = registry();
        let d = decode("gw/v1/yg/sos-1/event", SOS, &r, 4096).unwrap();
        assert_eq!(&*d.device.building_name, "1号楼");
        let Body::Message(m) = d.body else { panic!() };
        assert_eq!(m.event, Some("sos_pressed"));
    }

    #[test]
    fn accepts_telemetry_and_status() {
        let r = registry();
        assert_eq!(
            decode("gw/v1/yg/sos-1/telemetry", TELEMETRY, &r, 4096)
                .unwrap()
                .channel,
            Channel::Telemetry
        );
        assert_eq!(
            decode("gw/v1/yg/sos-1/status", b"offline", &r, 4096)
                .unwrap()
                .body,
            Body::Status(false)
        );
    }

    #[test]
    fn each_failure_has_its_reason() {
        assert_eq!(reason("gw/v1/yg/sos.1/event", SOS), Reason::BadTopic);
        assert_eq!(
            reason("gw/v1/yg/sos-1/event", &[b' '; 5000]),
            Reason::Oversized
        );
        assert_eq!(
            reason("gw/v1/yg/sos-1/event", b"{not json"),
            Reason::Malformed
        );
        assert_eq!(
            reason("gw/v1/other/sos-1/event", SOS),
            Reason::WrongCommunity
        );
        assert_eq!(reason("gw/v1/yg/sos-9/event", SOS), Reason::UnknownDevice);
        let manhole = br#"{"v":1,"ts":1,"seq":1,"kind":"manhole","event":"sos_pressed"}"#;
        assert_eq!(reason("gw/v1/yg/sos-1/event", manhole), Reason::WrongKind);
        assert_eq!(
            reason("gw/v1/yg/sos-1/event", TELEMETRY),
            Reason::WrongChannel
        );
        assert_eq!(
            reason("gw/v1/yg/sos-1/telemetry", SOS),
            Reason::WrongChannel
        );
        assert_eq!(reason("gw/v1/yg/sos-1/status", b"maybe"), Reason::Malformed);
        let unknown = br#"{"v":1,"ts":1,"seq":1,"kind":"sos","data":{"floor":3}}"#;
        assert_eq!(
            reason("gw/v1/yg/sos-1/telemetry", unknown),
            Reason::BadReading
        );
        let range = br#"{"v":1,"ts":1,"seq":1,"kind":"sos","data":{"battery_v":-3}}"#;
        assert_eq!(
            reason("gw/v1/yg/sos-1/telemetry", range),
            Reason::BadReading
        );
        let event = br#"{"v":1,"ts":1,"seq":1,"kind":"sos","event":"overspeed"}"#;
        assert_eq!(reason("gw/v1/yg/sos-1/event", event), Reason::UnknownEvent);
    }
}
