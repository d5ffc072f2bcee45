//! Fault mode: devices that misbehave, each fault its own group of the load engine
//! ([`crate::load::run`]), every message counted under what it tests ([`Label`]) so a run can be
//! checked against the gateway's counters.
//!
//! | fault | devices | what they send | what the gateway does |
//! |---|---|---|---|
//! | flood | `flood-000`… | genuine readings, far above the per-device rate | takes `ingest.device_burst` and `device_rate_per_min`, drops the rest as `rate_limited`, raises `device_flooding` |
//! | malformed | `malformed-000`… | in turn: cut-off JSON, `"v":2`, a reading out of range, an unknown reading, an unknown event, another kind, an oversized payload, a clock an hour ahead, and (when devices sign) a wrong `mac` | rejects each with its reason |
//! | replay | `replay-000`… | genuine readings; from the 9th turn every other turn a replay instead: an earlier payload again byte for byte, or the last `seq` on new bytes | rejects the replays as `replayed` |
//! | offline | `offline-000`… | `online` and genuine readings on a connection of their own, then nothing: the socket drops without a goodbye | takes the broker's last will, `offline` |
//!
//! The replayed payload is 8 genuine messages old: the gateway takes a copy of one of the last
//! five it accepted as an MQTT redelivery, not a replay. The malformed messages that carry a fresh
//! `seq` go through the device's own firmware node, so a device signs them and numbers them as it
//! would any other.

pub mod payloads;

use std::collections::VecDeque;
use std::time::Duration;

use gridwatch_firmware::wire::{Reading, Value};

use crate::load::device::{DeviceError, Outgoing, VirtualDevice};
use crate::load::readings::Kind;
use crate::load::registry::{named, DeviceSpec, Keys};
use crate::load::report::Label;
use crate::load::{devices, Behaviour, Group, LoadError, Steady};

/// A way a device misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Far above the per-device rate.
    Flood,
    /// Payloads the gateway must refuse.
    Malformed,
    /// Old messages again.
    Replay,
    /// Gone without a goodbye.
    Offline,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 4] = [
        Fault::Flood,
        Fault::Malformed,
        Fault::Replay,
        Fault::Offline,
    ];

    /// The fault's name, and the prefix of its devices' ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Flood => "flood",
            Fault::Malformed => "malformed",
            Fault::Replay => "replay",
            Fault::Offline => "offline",
        }
    }
}

/// How many devices have each fault, and how they behave.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Flooding devices.
    pub flood: usize,
    /// Devices sending malformed payloads.
    pub malformed: usize,
    /// Devices replaying old messages.
    pub replay: usize,
    /// Devices that go offline.
    pub offline: usize,
    /// The kind of every faulty device.
    pub kind: Kind,
    /// A flooding device sends once per this.
    pub flood_period: Duration,
    /// Offline devices vanish this long after the start.
    pub offline_after: Duration,
    /// The size of an oversized payload, in bytes.
    pub oversize_bytes: usize,
}

/// Signs with this instead of the device's key: a forgery.
const WRONG_KEY: &[u8] = b"not this device's key, 32 bytes!";
/// A reading and an event name no kind has.
const UNKNOWN: &str = "not_in_catalogue";
/// How far ahead the clock-skew fault's clock runs.
const SKEW_MS: u64 = 3_600_000;
/// How many genuine messages back a replayed copy is.
const REPLAY_DEPTH: usize = 8;

impl Faults {
    /// The faulty devices, by fault.
    pub fn devices(&self) -> Vec<(Fault, Vec<DeviceSpec>)> {
        Fault::ALL
            .into_iter()
            .map(|f| {
                let count = match f {
                    Fault::Flood => self.flood,
                    Fault::Malformed => self.malformed,
                    Fault::Replay => self.replay,
                    Fault::Offline => self.offline,
                };
                (f, named(f.as_str(), count, self.kind))
            })
            .collect()
    }

    /// The load engine's groups for the faulty devices of `community`; the others send once per
    /// `period`. Devices sign with their key from `keys` when given.
    pub fn groups<'k>(
        &self,
        community: &str,
        period: Duration,
        keys: Option<&'k Keys>,
        seq_from: Option<u64>,
        wall_ms: u64,
    ) -> Result<Vec<Group<'k>>, LoadError> {
        self.devices()
            .into_iter()
            .filter(|(_, specs)| !specs.is_empty())
            .map(|(fault, specs)| {
                let list = devices(community, &specs, keys, seq_from, wall_ms)?;
                let (period, vanish_at, behaviour): (_, _, Box<dyn Behaviour<'k> + 'k>) =
                    match fault {
                        Fault::Flood => (self.flood_period, None, Box::new(Steady(Label::Flood))),
                        Fault::Malformed => (
                            period,
                            None,
                            Box::new(Malformed {
                                oversize_bytes: self.oversize_bytes,
                            }),
                        ),
                        Fault::Replay => (
                            period,
                            None,
                            Box::new(Replay {
                                history: vec![VecDeque::new(); list.len()],
                            }),
                        ),
                        Fault::Offline => (
                            period,
                            Some(self.offline_after),
                            Box::new(Steady(Label::Telemetry)),
                        ),
                    };
                Ok(Group {
                    devices: list,
                    period,
                    vanish_at,
                    behaviour,
                })
            })
            .collect()
    }
}

/// The malformed messages in the order a device sends them (the last only when it signs).
pub const MALFORMED: [Label; 9] = [
    Label::BadJson,
    Label::WrongVersion,
    Label::OutOfRange,
    Label::UnknownReading,
    Label::UnknownEvent,
    Label::WrongKind,
    Label::Oversize,
    Label::ClockSkew,
    Label::BadMac,
];

/// The malformed message of a device's `turn`: signing devices go through all of [`MALFORMED`],
/// others skip the forged `mac` (a device without a key is not checked for one).
pub fn malformed_at(turn: u64, signs: bool) -> Label {
    let n = if signs {
        MALFORMED.len()
    } else {
        MALFORMED.len() - 1
    };
    MALFORMED[(turn % n as u64) as usize]
}

/// Each turn a malformed payload of the next sort.
struct Malformed {
    oversize_bytes: usize,
}

impl<'k> Behaviour<'k> for Malformed {
    fn turn(
        &mut self,
        _index: usize,
        device: &mut VirtualDevice<'k>,
        turn: u64,
        now_ms: u64,
        out: &mut Vec<(Label, Outgoing)>,
    ) -> Result<(), DeviceError> {
        let label = malformed_at(turn, device.key().is_some());
        let key = device.key();
        let altered = |mut m: Outgoing, change: &dyn Fn(&[u8]) -> Option<Vec<u8>>| {
            m.payload = change(&m.payload).unwrap_or_default();
            m
        };
        let message = match label {
            Label::BadJson => altered(device.telemetry(now_ms)?, &|p| {
                Some(payloads::cut_in_half(p))
            }),
            Label::WrongVersion => altered(device.telemetry(now_ms)?, &|p| {
                Some(payloads::with_version(p, 2))
            }),
            Label::OutOfRange => {
                let reading = device.kind().out_of_range();
                device.telemetry_with(now_ms, &[reading])?
            }
            Label::UnknownReading => {
                let reading = Reading {
                    name: UNKNOWN,
                    value: Value::Number(1.0),
                };
                device.telemetry_with(now_ms, &[reading])?
            }
            Label::UnknownEvent => device.event(now_ms, UNKNOWN)?,
            Label::WrongKind => {
                let other = device.kind().other().as_str();
                altered(device.telemetry(now_ms)?, &|p| {
                    payloads::reencode(p, |m| m.kind = other, key)
                })
            }
            Label::Oversize => Outgoing {
                topic: device.topic(gridwatch_firmware::node::Channel::Telemetry),
                payload: payloads::oversize(device.kind().as_str(), self.oversize_bytes),
                retain: false,
            },
            Label::ClockSkew => {
                let wall = device.wall_ms(now_ms);
                device.set_wall_clock(now_ms, wall + SKEW_MS);
                let skewed = device.telemetry(now_ms);
                device.set_wall_clock(now_ms, wall);
                skewed?
            }
            // The last of MALFORMED: a forged mac.
            _ => altered(device.telemetry(now_ms)?, &|p| {
                payloads::reencode(p, |_| {}, Some(WRONG_KEY))
            }),
        };
        out.push((label, message));
        Ok(())
    }
}

/// Genuine readings, and from the [`REPLAY_DEPTH`]+1-th turn on, every other turn a replay.
struct Replay {
    /// Each device's last genuine payloads, oldest first.
    history: Vec<VecDeque<Outgoing>>,
}

/// What a replaying device sends at `turn`, with `genuine_sent` genuine messages behind it.
pub fn replay_at(turn: u64, genuine_sent: usize) -> Label {
    if genuine_sent < REPLAY_DEPTH || turn.is_multiple_of(2) {
        Label::Telemetry
    } else if (turn / 2).is_multiple_of(2) {
        Label::ReplayOld
    } else {
        Label::ReplaySameSeq
    }
}

impl<'k> Behaviour<'k> for Replay {
    fn turn(
        &mut self,
        index: usize,
        device: &mut VirtualDevice<'k>,
        turn: u64,
        now_ms: u64,
        out: &mut Vec<(Label, Outgoing)>,
    ) -> Result<(), DeviceError> {
        let history = &mut self.history[index];
        let label = replay_at(turn, history.len());
        let message = match (label, history.front(), history.back()) {
            (Label::ReplayOld, Some(oldest), _) => oldest.clone(),
            (Label::ReplaySameSeq, _, Some(last)) => Outgoing {
                payload: payloads::reencode(&last.payload, |m| m.ts += 1, device.key())
                    .unwrap_or_default(),
                ..last.clone()
            },
            _ => {
                let m = device.telemetry(now_ms)?;
                if history.len() == REPLAY_DEPTH {
                    history.pop_front();
                }
                history.push_back(m.clone());
                m
            }
        };
        out.push((label, message));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_firmware::{auth, wire};

    const WALL: u64 = 1_795_000_000_000;

    fn faults() -> Faults {
        Faults {
            flood: 1,
            malformed: 1,
            replay: 1,
            offline: 1,
            kind: Kind::Manhole,
            flood_period: Duration::from_millis(10),
            offline_after: Duration::from_secs(2),
            oversize_bytes: 5000,
        }
    }

    fn keys() -> Keys {
        let f = faults();
        let specs: Vec<DeviceSpec> = f.devices().into_iter().flat_map(|(_, s)| s).collect();
        specs
            .iter()
            .map(|d| (d.id.clone(), format!("{:<32}", d.id).into_bytes()))
            .collect()
    }

    fn turns(group: &mut Group<'_>, n: u64) -> Vec<(Label, Outgoing)> {
        let mut out = Vec::new();
        for turn in 0..n {
            group
                .behaviour
                .turn(0, &mut group.devices[0], turn, turn * 100, &mut out)
                .unwrap();
        }
        out
    }

    #[test]
    fn faulty_devices_are_named_after_their_fault() {
        let ids: Vec<String> = faults()
            .devices()
            .into_iter()
            .flat_map(|(_, s)| s.into_iter().map(|d| d.id))
            .collect();
        assert_eq!(
            ids,
            ["flood-000", "malformed-000", "replay-000", "offline-000"]
        );
    }

    #[test]
    fn a_signing_malformed_device_sends_every_sort_in_turn_each_broken_as_labelled() {
        let keys = keys();
        let mut groups = faults()
            .groups("yg", Duration::from_secs(1), Some(&keys), None, WALL)
            .unwrap();
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[3].vanish_at, Some(Duration::from_secs(2)));
        let key = keys["malformed-000"].as_slice();
        let out = turns(&mut groups[1], 9);
        let labels: Vec<Label> = out.iter().map(|(l, _)| *l).collect();
        assert_eq!(labels, MALFORMED);
        for (label, m) in &out {
            let decoded = wire::decode(&m.payload);
            match label {
                Label::BadJson | Label::WrongVersion | Label::Oversize => {
                    assert!(decoded.is_err(), "{label:?}")
                }
                Label::UnknownEvent => {
                    assert_eq!(m.topic, "gw/v1/yg/malformed-000/event");
                    assert_eq!(decoded.unwrap().event, Some(UNKNOWN));
                }
                Label::WrongKind => assert_eq!(decoded.unwrap().kind, "sos"),
                Label::ClockSkew => assert_eq!(decoded.unwrap().ts, WALL + 700 + SKEW_MS),
                Label::OutOfRange => assert_eq!(
                    decoded.unwrap().reading("water_cm"),
                    Some(Value::Number(5000.0))
                ),
                _ => {}
            }
            let signed_right = auth::verify(key, &m.payload).is_ok();
            let meant = !matches!(
                label,
                Label::BadJson | Label::WrongVersion | Label::Oversize | Label::BadMac
            );
            assert_eq!(signed_right, meant, "{label:?}");
        }
        assert_eq!(out[6].1.payload.len(), 5000);
        assert_eq!(
            groups[1].devices[0].wall_ms(1_000),
            WALL + 1_000,
            "the clock runs right again after the skewed message"
        );
    }

    #[test]
    fn a_device_without_a_key_is_not_sent_forging() {
        let labels: Vec<Label> = (0..16).map(|t| malformed_at(t, false)).collect();
        assert!(!labels.contains(&Label::BadMac));
        assert_eq!(labels[8], Label::BadJson);
    }

    #[test]
    fn a_replaying_device_resends_an_old_payload_or_its_last_seq_on_new_bytes() {
        let mut groups = faults()
            .groups("yg", Duration::from_secs(1), None, None, WALL)
            .unwrap();
        let out = turns(&mut groups[2], 20);
        let seq = |m: &Outgoing| wire::decode(&m.payload).unwrap().seq;
        let labels: Vec<Label> = out.iter().map(|(l, _)| *l).collect();
        assert!(
            labels[..9].iter().all(|l| *l == Label::Telemetry),
            "{labels:?}"
        );
        assert_eq!(
            &labels[9..12],
            [Label::ReplayOld, Label::Telemetry, Label::ReplaySameSeq]
        );
        let mut genuine = Vec::new();
        for (label, m) in &out {
            match label {
                Label::Telemetry => genuine.push(m.payload.clone()),
                Label::ReplayOld => {
                    let at = genuine.iter().position(|g| g == &m.payload).unwrap();
                    assert_eq!(genuine.len() - at, REPLAY_DEPTH, "8 genuine messages back");
                }
                _ => {
                    let last = genuine.last().unwrap();
                    assert_eq!(seq(m), wire::decode(last).unwrap().seq);
                    assert_ne!(&m.payload, last);
                }
            }
        }
        let seqs: Vec<u64> = genuine
            .iter()
            .map(|g| wire::decode(g).unwrap().seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
}
