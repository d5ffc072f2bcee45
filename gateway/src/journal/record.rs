//! One journal record: framing, checksum and body layout (see the module above for the bytes).

/// What kind of message a record holds; decides what may be shed under the disk budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Telemetry and status: shed first when the disk budget runs out.
    Telemetry,
    /// Events: never shed.
    Event,
}

/// A record read back, borrowing from the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its class.
    pub class: Class,
    /// When the gateway received the message, in ms since the epoch.
    pub received_ms: u64,
    /// The MQTT topic.
    pub topic: &'a str,
    /// The payload, as received.
    pub payload: &'a [u8],
}

const HEADER: usize = 8;
const BODY_FIXED: usize = 1 + 8 + 2;
/// Larger lengths are taken as corruption, not as a record to allocate for.
const MAX_BODY: usize = 16 << 20;

/// Appends one framed record to `buf`.
pub fn write(buf: &mut Vec<u8>, class: Class, received_ms: u64, topic: &str, payload: &[u8]) {
    let topic = &topic.as_bytes()[..topic.len().min(u16::MAX as usize)];
    let body_len = BODY_FIXED + topic.len() + payload.len();
    let start = buf.len();
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(match class {
        Class::Telemetry => 0,
        Class::Event => 1,
    });
    buf.extend_from_slice(&received_ms.to_le_bytes());
    buf.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    buf.extend_from_slice(topic);
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Parses the record at the start of `bytes`; returns it and its framed length, or `None` if the
/// bytes hold no whole, intact record (torn, corrupt or empty).
pub fn parse(bytes: &[u8]) -> Option<(Record<'_>, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..HEADER)?.try_into().ok()?);
    if !(BODY_FIXED..=MAX_BODY).contains(&len) {
        return None;
    }
    let body = bytes.get(HEADER..HEADER + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let class = match body[0] {
        0 => Class::Telemetry,
        1 => Class::Event,
        _ => return None,
    };
    let received_ms = u64::from_le_bytes(body[1..9].try_into().ok()?);
    let topic_len = u16::from_le_bytes(body[9..11].try_into().ok()?) as usize;
    let topic = std::str::from_utf8(body.get(BODY_FIXED..BODY_FIXED + topic_len)?).ok()?;
    let payload = &body[BODY_FIXED + topic_len..];
    Some((
        Record {
            class,
            received_ms,
            topic,
            payload,
        },
        HEADER + len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn written_records_parse_back(event in any::<bool>(), ms in any::<u64>(), topic in ".{0,80}", payload in prop::collection::vec(any::<u8>(), 0..300)) {
            let class = if event { Class::Event } else { Class::Telemetry };
            let mut buf = Vec::new();
            write(&mut buf, class, ms, &topic, &payload);
            let (rec, n) = parse(&buf).unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!(rec, Record { class, received_ms: ms, topic: &topic, payload: &payload });
        }

        #[test]
        fn any_damage_is_detected_and_never_panics(payload in prop::collection::vec(any::<u8>(), 0..100), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let mut buf = Vec::new();
            write(&mut buf, Class::Telemetry, 1, "gw/v1/c/d/telemetry", &payload);
            let i = at.index(buf.len());
            buf[i] ^= flip;
            prop_assert!(parse(&buf).is_none() || i < 4, "a flipped byte at {} went unnoticed", i);
            for cut in 0..buf.len() {
                let _ = parse(&buf[..cut]);
            }
        }
    }
}
