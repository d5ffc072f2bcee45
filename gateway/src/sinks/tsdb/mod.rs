//! The time-series sink: journal records become line protocol, lines become batches, batches are
//! written to a store, and the sink's journal cursor moves only when the store acknowledged them.
//!
//! [`write_message`] is pure (one message, one line); the [`writer`] driver owns the reading, the
//! retries and the [`writer::Store`].

pub mod client;
pub mod line_protocol;
pub mod local;
pub mod replay;
pub mod writer;

use gridwatch_firmware::wire::{Value, MAX_READINGS};

use crate::decode::{Body, Decoded};
use line_protocol::{write_line, Field, LineError};

pub use client::HttpStore;
pub use local::LocalStore;

/// Writes the one line a message becomes (layout in [`line_protocol`]); `received_ms` stamps
/// status words, which carry no time of their own.
pub fn write_message(
    buf: &mut String,
    msg: &Decoded<'_>,
    received_ms: u64,
) -> Result<(), LineError> {
    let d = msg.device;
    let tags = [
        ("building", &*d.building),
        ("community", &*d.community),
        ("device", &*d.id),
        ("grid", &*d.grid),
    ];
    let m = match &msg.body {
        Body::Status(online) => {
            return write_line(
                buf,
                "status",
                &tags,
                &[("online", Field::Bool(*online))],
                received_ms,
            )
        }
        Body::Message(m) => m,
    };
    if let Some(event) = m.event {
        let tags = [
            ("building", &*d.building),
            ("community", &*d.community),
            ("device", &*d.id),
            ("event", event),
            ("grid", &*d.grid),
            ("kind", &*d.kind),
        ];
        let seq = i64::try_from(m.seq).unwrap_or(i64::MAX);
        return write_line(
            buf,
            "event",
            &tags,
            &[("count", Field::Int(1)), ("seq", Field::Int(seq))],
            m.ts,
        );
    }
    if m.data.is_empty() {
        return write_line(buf, "heartbeat", &tags, &[("count", Field::Int(1))], m.ts);
    }
    let fields: heapless::Vec<(&str, Field<'_>), MAX_READINGS> = m
        .data
        .iter()
        .map(|r| {
            let v = match r.value {
                Value::Number(n) => Field::Float(n),
                Value::Bool(b) => Field::Bool(b),
            };
            (r.name, v)
        })
        .collect();
    write_line(buf, &d.kind, &tags, &fields, m.ts)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gridwatch_firmware::wire::{Message, Reading, Readings};
    use proptest::prelude::*;

    use super::line_protocol::tests::{nasty, parse_line, Read};
    use super::*;
    use crate::decode::Channel;
    use crate::registry::one_manhole as registry;
    use crate::registry::Device;

    fn lines(topic: &str, payload: &[u8]) -> String {
        let r = registry();
        let d = crate::decode::decode(topic, payload, &r, 4096).unwrap();
        let mut buf = String::new();
        write_message(&mut buf, &d, 99).unwrap();
        buf
    }

    #[test]
    fn each_channel_has_its_layout() {
        assert_eq!(
            lines("gw/v1/yg/mh-1/telemetry", br#"{"v":1,"ts":5,"seq":1,"kind":"manhole","data":{"tilt_deg":3.5,"cover_open":true}}"#),
            "manhole,building=b1,community=yg,device=mh-1,grid=g1 tilt_deg=3.5,cover_open=true 5\n"
        );
        assert_eq!(
            lines("gw/v1/yg/mh-1/event", br#"{"v":1,"ts":6,"seq":2,"kind":"manhole","event":"cover_displaced"}"#),
            "event,building=b1,community=yg,device=mh-1,event=cover_displaced,grid=g1,kind=manhole count=1i,seq=2i 6\n"
        );
        assert_eq!(
            lines(
                "gw/v1/yg/mh-1/telemetry",
                br#"{"v":1,"ts":7,"seq":3,"kind":"manhole"}"#
            ),
            "heartbeat,building=b1,community=yg,device=mh-1,grid=g1 count=1i 7\n"
        );
        assert_eq!(
            lines("gw/v1/yg/mh-1/status", b"online"),
            "status,building=b1,community=yg,device=mh-1,grid=g1 online=true 99\n"
        );
    }

    proptest! {
        #[test]
        fn no_device_string_can_break_its_line_or_move_a_tag(
            id in nasty(),
            kind in nasty(),
            community in nasty(),
            building in nasty(),
            grid in nasty(),
            is_event in any::<bool>(),
        ) {
            let device = Arc::new(Device {
                id: id.as_str().into(),
                kind: kind.as_str().into(),
                community: community.as_str().into(),
                building: building.as_str().into(),
                building_name: "n".into(),
                grid: grid.as_str().into(),
                grid_name: "n".into(),
                location: "x".into(),
                tags: Box::new([]),
            });
            let mut data = Readings::new();
            data.push(Reading { name: "tilt_deg", value: Value::Number(1.5) }).unwrap();
            let event = is_event.then_some("cover_displaced");
            let msg = Message { ts: 5, seq: 2, kind: "manhole", event, data, mac: None };
            let decoded = Decoded { device: &device, channel: Channel::Telemetry, body: Body::Message(msg) };
            let mut buf = String::new();
            let result = write_message(&mut buf, &decoded, 99);

            let mut tags = vec![("building", building.as_str()), ("community", &community), ("device", &id)];
            if let Some(e) = event {
                tags.extend([("event", e), ("grid", &grid), ("kind", &kind)]);
            } else {
                tags.push(("grid", &grid));
            }
            let measurement = if is_event { "event" } else { kind.as_str() };
            let breaks = tags.iter().map(|(_, v)| *v).chain([measurement]).any(|v| v.contains(['\n', '\r']));
            let refusable = breaks || measurement.is_empty() || measurement.starts_with('#');
            prop_assert_eq!(result.is_err(), refusable, "{:?}", result);
            if refusable {
                prop_assert_eq!(buf, "");
                return Ok(());
            }
            let point = parse_line(&buf).map_err(|e| TestCaseError::fail(format!("{e}: {buf:?}")))?;
            prop_assert_eq!(point.measurement, measurement);
            let expected: Vec<(String, String)> = tags
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            prop_assert_eq!(point.tags, expected);
            let fields = if is_event {
                vec![("count".to_owned(), Read::Int(1)), ("seq".to_owned(), Read::Int(2))]
            } else {
                vec![("tilt_deg".to_owned(), Read::Float(1.5))]
            };
            prop_assert_eq!(point.fields, fields);
            prop_assert_eq!(point.ts, 5);
        }
    }
}
