//! The time-series sink: readings become line protocol, lines become batches, batches are written
//! to a store and kept until the store acknowledged them.
//!
//! The pipeline owns a [`Batcher`] (pure: lines in, full batches out) and hands batches to the
//! [`writer`] driver, which owns the queue, the retries and the [`Store`].

pub mod client;
pub mod line_protocol;
pub mod local;
pub mod writer;

use bytes::Bytes;
use gridwatch_firmware::wire::{Value, MAX_READINGS};
use tokio::time::Instant;

use crate::decode::{Body, Decoded};
use line_protocol::{write_line, Field, LineError};

pub use client::HttpStore;
pub use local::LocalStore;

/// A batch of lines, kept byte for byte until the store answers 2xx.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Newline-terminated lines.
    pub body: Bytes,
    /// How many lines.
    pub lines: usize,
}

/// Collects lines until a batch is full or old enough to send.
pub struct Batcher {
    buf: String,
    lines: usize,
    max_lines: usize,
    opened_at: Option<Instant>,
}

impl Batcher {
    /// A batcher that closes a batch at `max_lines` lines.
    pub fn new(max_lines: usize) -> Self {
        Self {
            buf: String::new(),
            lines: 0,
            max_lines,
            opened_at: None,
        }
    }

    /// Adds the line for one accepted message; returns a batch when this one filled it.
    pub fn push(
        &mut self,
        msg: &Decoded<'_>,
        received_ms: u64,
        now: Instant,
    ) -> Result<Option<Batch>, LineError> {
        write_message(&mut self.buf, msg, received_ms)?;
        self.lines += 1;
        self.opened_at.get_or_insert(now);
        Ok((self.lines >= self.max_lines)
            .then(|| self.take())
            .flatten())
    }

    /// When the open batch must be sent, given the flush interval; `None` when empty.
    pub fn deadline(&self, flush: std::time::Duration) -> Option<Instant> {
        self.opened_at.map(|t| t + flush)
    }

    /// Closes the open batch, if it has any lines.
    pub fn take(&mut self) -> Option<Batch> {
        if self.lines == 0 {
            return None;
        }
        self.opened_at = None;
        let lines = std::mem::take(&mut self.lines);
        let body = Bytes::from(std::mem::take(&mut self.buf));
        Some(Batch { body, lines })
    }
}

/// Writes the one line a message becomes (layout in [`line_protocol`]); `received_ms` stamps
/// status words, which carry no time of their own.
pub fn write_message(
    buf: &mut String,
    msg: &Decoded<'_>,
    received_ms: u64,
) -> Result<(), LineError> {
    let d = msg.device;
    let tags = [
        ("building", d.building.as_str()),
        ("community", d.community.as_str()),
        ("device", d.id.as_str()),
        ("grid", d.grid.as_str()),
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
            ("building", d.building.as_str()),
            ("community", d.community.as_str()),
            ("device", d.id.as_str()),
            ("event", event),
            ("grid", d.grid.as_str()),
            ("kind", d.kind.as_str()),
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
    use super::*;
    use crate::registry::Registry;

    fn registry() -> Registry {
        Registry::parse(
            "[community]\nid = \"yg\"\nname = \"n\"\n[[buildings]]\nid = \"b1\"\nname = \"n\"\n[[grids]]\nid = \"g1\"\nname = \"n\"\n[[devices]]\nid = \"mh-1\"\nkind = \"manhole\"\nbuilding = \"b1\"\ngrid = \"g1\"\nlocation = \"x\"\n",
        )
        .unwrap()
    }

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

    #[test]
    fn a_batch_closes_when_full_or_taken() {
        let r = registry();
        let d = crate::decode::decode("gw/v1/yg/mh-1/status", b"online", &r, 4096).unwrap();
        let mut b = Batcher::new(2);
        let t0 = Instant::now();
        assert!(b.deadline(std::time::Duration::from_secs(1)).is_none());
        assert!(b.push(&d, 1, t0).unwrap().is_none());
        assert_eq!(
            b.deadline(std::time::Duration::from_secs(1)),
            Some(t0 + std::time::Duration::from_secs(1))
        );
        let full = b.push(&d, 2, t0).unwrap().unwrap();
        assert_eq!(full.lines, 2);
        assert!(b.take().is_none());
        b.push(&d, 3, t0).unwrap();
        assert_eq!(
            b.take().unwrap().body,
            "status,building=b1,community=yg,device=mh-1,grid=g1 online=true 3\n"
        );
    }
}
