//! The v1 wire format: the JSON payload a node publishes and the gateway decodes.
//!
//! ```text
//! {"v":1,"ts":1795000000123,"seq":42,"kind":"manhole","data":{"tilt_deg":3.2,"cover_open":false}}
//! {"v":1,"ts":1795000000456,"seq":43,"kind":"sos","event":"sos_pressed","data":{}}
//! ```
//!
//! - `v` is the format version and must be 1; `ts` is milliseconds since the Unix epoch; `seq` is a
//!   per-device counter that never goes back. Both are non-negative integers.
//! - `kind`, `event` and every reading name follow the name grammar `[a-z][a-z0-9_]{0,31}`.
//! - `data` maps reading names to finite numbers or booleans, at most [`MAX_READINGS`] of them; it
//!   may be left out when empty. `event` is left out for plain telemetry.
//! - `mac`, when present, is the message authentication code as `[0-9A-Za-z]{1,128}`.
//!
//! The decoder is strict because a node that sends something unexpected should hear about it at
//! once, not have a field silently ignored: unknown or duplicate fields, string escapes, `null`,
//! non-finite numbers and trailing bytes are all errors, each with the byte offset where it was seen.
//! It borrows every string from the input and allocates nothing, so it runs on a node as well as
//! in the gateway's hot path.

use core::fmt::{self, Write};

/// The only format version this module speaks.
pub const VERSION: u64 = 1;
/// The most readings one message may carry.
pub const MAX_READINGS: usize = 16;
/// The longest kind, event or reading name.
pub const MAX_NAME_LEN: usize = 32;
/// The longest message authentication code, in characters.
pub const MAX_MAC_LEN: usize = 128;

/// One reading's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A finite number (a measurement, a count).
    Number(f64),
    /// A switch or flag (door open, cover open).
    Bool(bool),
}

/// A named value in a message's `data`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading<'a> {
    /// The reading's name, as the kind catalogue spells it.
    pub name: &'a str,
    /// Its value.
    pub value: Value,
}

/// The readings of one message, in the order they were written.
pub type Readings<'a> = heapless::Vec<Reading<'a>, MAX_READINGS>;

/// One decoded (or to-be-encoded) v1 message. Strings borrow from the payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Message<'a> {
    /// Milliseconds since the Unix epoch, by the node's clock.
    pub ts: u64,
    /// The node's message counter; it never goes back.
    pub seq: u64,
    /// The device kind the node believes it is (the registry has the last word).
    pub kind: &'a str,
    /// The event the node detected, if this is an event rather than plain telemetry.
    pub event: Option<&'a str>,
    /// The readings.
    pub data: Readings<'a>,
    /// The message authentication code, if the node signs its messages.
    pub mac: Option<&'a str>,
}

impl Message<'_> {
    /// The value of the named reading, if the message carries it.
    pub fn reading(&self, name: &str) -> Option<Value> {
        self.data.iter().find(|r| r.name == name).map(|r| r.value)
    }
}

/// Whether `s` follows the name grammar `[a-z][a-z0-9_]{0,31}`.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn is_mac(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_MAC_LEN && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// Why a payload could not be decoded. `at` is a byte offset into the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload is not valid UTF-8.
    NotUtf8 { at: usize },
    /// The JSON is malformed: something else was expected here.
    Syntax { at: usize, expected: &'static str },
    /// A string contains a backslash escape; names and codes never need one.
    Escape { at: usize },
    /// A field the v1 format does not have.
    UnknownField { at: usize },
    /// A field that appears twice.
    DuplicateField { at: usize },
    /// A required field is missing.
    MissingField { field: &'static str },
    /// `v` names a version this decoder does not speak.
    UnsupportedVersion { found: u64 },
    /// A name that breaks the grammar `[a-z][a-z0-9_]{0,31}`, or a malformed `mac`.
    BadName { field: &'static str, at: usize },
    /// A number that is out of range, not an integer where one is needed, or not finite.
    BadNumber { field: &'static str, at: usize },
    /// A reading whose value is neither a number nor a boolean.
    BadValue { at: usize },
    /// More than [`MAX_READINGS`] readings.
    TooManyReadings { at: usize },
    /// Bytes after the closing brace.
    TrailingData { at: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotUtf8 { at } => write!(f, "payload is not UTF-8 (byte {at})"),
            Self::Syntax { at, expected } => write!(f, "malformed JSON at byte {at}: expected {expected}"),
            Self::Escape { at } => write!(f, "string escape at byte {at}: names and codes are plain ASCII"),
            Self::UnknownField { at } => write!(f, "unknown field at byte {at}: v1 has v, ts, seq, kind, event, data, mac"),
            Self::DuplicateField { at } => write!(f, "duplicate field at byte {at}"),
            Self::MissingField { field } => write!(f, "missing field `{field}`"),
            Self::UnsupportedVersion { found } => write!(f, "format version {found} is not supported (this gateway speaks v1)"),
            Self::BadName { field, at } => write!(f, "`{field}` at byte {at} breaks the grammar [a-z][a-z0-9_]{{0,31}} (mac: [0-9A-Za-z]{{1,128}})"),
            Self::BadNumber { field, at } => write!(f, "`{field}` at byte {at} is not a valid number (ts, seq and v are non-negative integers; readings are finite)"),
            Self::BadValue { at } => write!(f, "reading value at byte {at} is neither a number nor true/false"),
            Self::TooManyReadings { at } => write!(f, "more than {MAX_READINGS} readings (byte {at})"),
            Self::TrailingData { at } => write!(f, "unexpected data after the message at byte {at}"),
        }
    }
}

/// Decodes one v1 payload, borrowing its strings.
pub fn decode(payload: &[u8]) -> Result<Message<'_>, DecodeError> {
    let text = core::str::from_utf8(payload).map_err(|e| DecodeError::NotUtf8 {
        at: e.valid_up_to(),
    })?;
    Parser { text, pos: 0 }.message()
}

const F_V: u8 = 1;
const F_TS: u8 = 1 << 1;
const F_SEQ: u8 = 1 << 2;
const F_KIND: u8 = 1 << 3;
const F_EVENT: u8 = 1 << 4;
const F_DATA: u8 = 1 << 5;
const F_MAC: u8 = 1 << 6;

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), DecodeError> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn syntax(&self, expected: &'static str) -> DecodeError {
        DecodeError::Syntax {
            at: self.pos,
            expected,
        }
    }

    /// Calls `field` for each member of an object until its closing brace.
    fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a str, usize) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        self.expect(b'{', "`{`")?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            let at = self.pos;
            let key = self.string()?;
            self.expect(b':', "`:`")?;
            self.skip_ws();
            field(self, key, at)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.syntax("`,` or `}`")),
            }
        }
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax("a string"));
        }
        let start = self.pos + 1;
        let mut i = start;
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(i) {
                Some(b'"') => break,
                Some(b'\\') => return Err(DecodeError::Escape { at: i }),
                Some(c) if *c < 0x20 => {
                    return Err(DecodeError::Syntax {
                        at: i,
                        expected: "a closing quote",
                    })
                }
                Some(_) => i += 1,
                None => {
                    return Err(DecodeError::Syntax {
                        at: i,
                        expected: "a closing quote",
                    })
                }
            }
        }
        self.pos = i + 1;
        // Both ends sit on ASCII quotes, so the slice falls on character boundaries.
        Ok(&self.text[start..i])
    }

    fn name(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let s = self.string()?;
        if is_name(s) {
            Ok(s)
        } else {
            Err(DecodeError::BadName { field, at })
        }
    }

    /// The text of one JSON number, checked against the JSON grammar.
    fn number_token(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos > from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.syntax("a number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.syntax("a digit after `.`"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.syntax("a digit in the exponent"));
            }
        }
        Ok(&self.text[start..self.pos])
    }

    fn unsigned(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let token = self.number_token()?;
        token
            .parse::<u64>()
            .map_err(|_| DecodeError::BadNumber { field, at })
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        let at = self.pos;
        let rest = &self.text.as_bytes()[self.pos..];
        if rest.starts_with(b"true") {
            self.pos += 4;
            return Ok(Value::Bool(true));
        }
        if rest.starts_with(b"false") {
            self.pos += 5;
            return Ok(Value::Bool(false));
        }
        if !matches!(rest.first(), Some(b'-' | b'0'..=b'9')) {
            return Err(DecodeError::BadValue { at });
        }
        let token = self.number_token()?;
        match token.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Value::Number(n)),
            _ => Err(DecodeError::BadNumber { field: "data", at }),
        }
    }

    fn readings(&mut self) -> Result<Readings<'a>, DecodeError> {
        let mut data = Readings::new();
        self.object(|p, key, at| {
            if !is_name(key) {
                return Err(DecodeError::BadName { field: "data", at });
            }
            if data.iter().any(|r| r.name == key) {
                return Err(DecodeError::DuplicateField { at });
            }
            let value = p.value()?;
            data.push(Reading { name: key, value })
                .map_err(|_| DecodeError::TooManyReadings { at })
        })?;
        Ok(data)
    }

    fn message(mut self) -> Result<Message<'a>, DecodeError> {
        let mut seen = 0u8;
        let mut version = 0;
        let mut msg = Message {
            ts: 0,
            seq: 0,
            kind: "",
            event: None,
            data: Readings::new(),
            mac: None,
        };
        self.object(|p, key, at| {
            let flag = match key {
                "v" => F_V,
                "ts" => F_TS,
                "seq" => F_SEQ,
                "kind" => F_KIND,
                "event" => F_EVENT,
                "data" => F_DATA,
                "mac" => F_MAC,
                _ => return Err(DecodeError::UnknownField { at }),
            };
            if seen & flag != 0 {
                return Err(DecodeError::DuplicateField { at });
            }
            seen |= flag;
            match flag {
                F_V => version = p.unsigned("v")?,
                F_TS => msg.ts = p.unsigned("ts")?,
                F_SEQ => msg.seq = p.unsigned("seq")?,
                F_KIND => msg.kind = p.name("kind")?,
                F_EVENT => msg.event = Some(p.name("event")?),
                F_DATA => msg.data = p.readings()?,
                _ => {
                    let at = p.pos;
                    let mac = p.string()?;
                    if !is_mac(mac) {
                        return Err(DecodeError::BadName { field: "mac", at });
                    }
                    msg.mac = Some(mac);
                }
            }
            Ok(())
        })?;
        self.skip_ws();
        if self.pos != self.text.len() {
            return Err(DecodeError::TrailingData { at: self.pos });
        }
        for (flag, field) in [(F_V, "v"), (F_TS, "ts"), (F_SEQ, "seq"), (F_KIND, "kind")] {
            if seen & flag == 0 {
                return Err(DecodeError::MissingField { field });
            }
        }
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion { found: version });
        }
        Ok(msg)
    }
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small for the message.
    BufferTooSmall,
    /// A kind, event or reading name breaks the grammar, or the mac is malformed.
    BadName { field: &'static str },
    /// A reading is NaN or infinite, which JSON cannot carry.
    NonFinite { name_index: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall => f.write_str("output buffer too small"),
            Self::BadName { field } => write!(f, "`{field}` breaks the name grammar"),
            Self::NonFinite { name_index } => write!(f, "reading #{name_index} is not finite"),
        }
    }
}

struct Cursor<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes a finite number as a JSON number that parses back to the same `f64`.
fn write_number(out: &mut impl Write, n: f64) -> fmt::Result {
    let magnitude = n.abs();
    // Plain notation would spell 1e300 with 301 digits; exponent notation keeps payloads short.
    if magnitude != 0.0 && !(1e-4..1e15).contains(&magnitude) {
        write!(out, "{n:e}")
    } else {
        write!(out, "{n}")
    }
}

/// Encodes `msg` into `out` and returns the number of bytes written.
pub fn encode(msg: &Message<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    if !is_name(msg.kind) {
        return Err(EncodeError::BadName { field: "kind" });
    }
    if msg.event.is_some_and(|e| !is_name(e)) {
        return Err(EncodeError::BadName { field: "event" });
    }
    if msg.mac.is_some_and(|m| !is_mac(m)) {
        return Err(EncodeError::BadName { field: "mac" });
    }
    for (i, r) in msg.data.iter().enumerate() {
        if !is_name(r.name) {
            return Err(EncodeError::BadName { field: "data" });
        }
        if matches!(r.value, Value::Number(n) if !n.is_finite()) {
            return Err(EncodeError::NonFinite { name_index: i });
        }
    }
    let mut c = Cursor { buf: out, len: 0 };
    write_message(&mut c, msg).map_err(|_| EncodeError::BufferTooSmall)?;
    Ok(c.len)
}

fn write_message(c: &mut impl Write, msg: &Message<'_>) -> fmt::Result {
    write!(
        c,
        "{{\"v\":{VERSION},\"ts\":{},\"seq\":{},\"kind\":\"{}\"",
        msg.ts, msg.seq, msg.kind
    )?;
    if let Some(event) = msg.event {
        write!(c, ",\"event\":\"{event}\"")?;
    }
    c.write_str(",\"data\":{")?;
    for (i, r) in msg.data.iter().enumerate() {
        if i > 0 {
            c.write_char(',')?;
        }
        write!(c, "\"{}\":", r.name)?;
        match r.value {
            Value::Number(n) => write_number(c, n)?,
            Value::Bool(b) => write!(c, "{b}")?,
        }
    }
    c.write_char('}')?;
    if let Some(mac) = msg.mac {
        write!(c, ",\"mac\":\"{mac}\"")?;
    }
    c.write_char('}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(msg: &Message<'_>) -> String {
        let mut buf = [0u8; 2048];
        let n = encode(msg, &mut buf).expect("encodes");
        String::from_utf8(buf[..n].to_vec()).expect("utf8")
    }

    #[test]
    fn decodes_the_design_examples() {
        let m = decode(br#"{"v":1,"ts":1795000000123,"seq":42,"kind":"manhole","data":{"tilt_deg":3.2,"water_cm":12.5,"battery_v":3.61}}"#).unwrap();
        assert_eq!(m.ts, 1_795_000_000_123);
        assert_eq!(m.seq, 42);
        assert_eq!(m.kind, "manhole");
        assert_eq!(m.event, None);
        assert_eq!(m.reading("water_cm"), Some(Value::Number(12.5)));
        let m = decode(
            br#"{"v":1,"ts":1795000000456,"seq":43,"kind":"sos","event":"sos_pressed","data":{}}"#,
        )
        .unwrap();
        assert_eq!(m.event, Some("sos_pressed"));
        assert!(m.data.is_empty());
    }

    #[test]
    fn accepts_whitespace_any_field_order_and_no_data() {
        let m = decode(
            b" {\n \"kind\" : \"sos\", \"seq\":1,\"event\":\"sos_pressed\",\"ts\":5,\"v\":1 }\r\n",
        )
        .unwrap();
        assert_eq!((m.kind, m.seq, m.ts), ("sos", 1, 5));
        assert!(m.data.is_empty());
    }

    #[test]
    fn encodes_canonically() {
        let mut data = Readings::new();
        data.push(Reading {
            name: "door_open",
            value: Value::Bool(true),
        })
        .unwrap();
        data.push(Reading {
            name: "speed_mps",
            value: Value::Number(1.5),
        })
        .unwrap();
        data.push(Reading {
            name: "floor",
            value: Value::Number(3.0),
        })
        .unwrap();
        let m = Message {
            ts: 7,
            seq: 8,
            kind: "elevator",
            event: None,
            data,
            mac: None,
        };
        assert_eq!(
            enc(&m),
            r#"{"v":1,"ts":7,"seq":8,"kind":"elevator","data":{"door_open":true,"speed_mps":1.5,"floor":3}}"#
        );
    }

    #[test]
    fn every_rejection_names_what_is_wrong() {
        let cases: &[(&[u8], DecodeError)] = &[
            (b"\xff", DecodeError::NotUtf8 { at: 0 }),
            (
                b"",
                DecodeError::Syntax {
                    at: 0,
                    expected: "`{`",
                },
            ),
            (
                br#"{"v":2,"ts":1,"seq":1,"kind":"sos"}"#,
                DecodeError::UnsupportedVersion { found: 2 },
            ),
            (
                br#"{"v":1,"ts":1,"kind":"sos"}"#,
                DecodeError::MissingField { field: "seq" },
            ),
            (br#"{"v":1,"v":1}"#, DecodeError::DuplicateField { at: 7 }),
            (br#"{"v":1,"x":1}"#, DecodeError::UnknownField { at: 7 }),
            (
                br#"{"v":1,"ts":-1}"#,
                DecodeError::BadNumber {
                    field: "ts",
                    at: 12,
                },
            ),
            (
                br#"{"v":1,"ts":1.5}"#,
                DecodeError::BadNumber {
                    field: "ts",
                    at: 12,
                },
            ),
            (
                br#"{"v":1,"kind":"Sos"}"#,
                DecodeError::BadName {
                    field: "kind",
                    at: 14,
                },
            ),
            (br#"{"v":1,"kind":"s\"os"}"#, DecodeError::Escape { at: 16 }),
            (
                br#"{"v":1,"data":{"a":null}}"#,
                DecodeError::BadValue { at: 19 },
            ),
            (
                br#"{"v":1,"data":{"a":1e999}}"#,
                DecodeError::BadNumber {
                    field: "data",
                    at: 19,
                },
            ),
            (
                br#"{"v":1,"data":{"a":1,"a":2}}"#,
                DecodeError::DuplicateField { at: 21 },
            ),
            (
                br#"{"v":1,"data":{"a":01}}"#,
                DecodeError::Syntax {
                    at: 20,
                    expected: "`,` or `}`",
                },
            ),
            (
                br#"{"v":1,"ts":1,"seq":1,"kind":"sos"} x"#,
                DecodeError::TrailingData { at: 36 },
            ),
            (
                br#"{"v":1,"mac":"ab-cd"}"#,
                DecodeError::BadName {
                    field: "mac",
                    at: 13,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode(input).unwrap_err(),
                *want,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn rejects_more_than_max_readings() {
        let mut s = String::from(r#"{"v":1,"ts":1,"seq":1,"kind":"k","data":{"#);
        for i in 0..=MAX_READINGS {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("\"r{i}\":1"));
        }
        s.push_str("}}");
        assert!(matches!(
            decode(s.as_bytes()),
            Err(DecodeError::TooManyReadings { .. })
        ));
    }

    #[test]
    fn refuses_to_encode_what_cannot_be_decoded() {
        let mut data = Readings::new();
        data.push(Reading {
            name: "x",
            value: Value::Number(f64::NAN),
        })
        .unwrap();
        let m = Message {
            ts: 1,
            seq: 1,
            kind: "k",
            event: None,
            data,
            mac: None,
        };
        assert_eq!(
            encode(&m, &mut [0; 256]),
            Err(EncodeError::NonFinite { name_index: 0 })
        );
        let m = Message {
            kind: "Bad Kind",
            data: Readings::new(),
            ..m
        };
        assert_eq!(
            encode(&m, &mut [0; 256]),
            Err(EncodeError::BadName { field: "kind" })
        );
        let m = Message { kind: "k", ..m };
        assert_eq!(encode(&m, &mut [0; 10]), Err(EncodeError::BufferTooSmall));
    }

    #[derive(Debug, Clone)]
    struct Owned {
        ts: u64,
        seq: u64,
        kind: String,
        event: Option<String>,
        data: Vec<(String, Value)>,
        mac: Option<String>,
    }

    impl Owned {
        fn borrow(&self) -> Message<'_> {
            let mut data = Readings::new();
            for (name, value) in &self.data {
                data.push(Reading {
                    name,
                    value: *value,
                })
                .unwrap();
            }
            Message {
                ts: self.ts,
                seq: self.seq,
                kind: &self.kind,
                event: self.event.as_deref(),
                data,
                mac: self.mac.as_deref(),
            }
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO)
                .prop_map(Value::Number),
            (-1_000_000i64..1_000_000).prop_map(|i| Value::Number(i as f64 / 100.0)),
        ]
    }

    fn message() -> impl Strategy<Value = Owned> {
        let name = "[a-z][a-z0-9_]{0,31}";
        (
            any::<u64>(),
            any::<u64>(),
            name,
            prop::option::of(name),
            prop::collection::btree_map(name, value(), 0..=MAX_READINGS),
            prop::option::of("[0-9A-Za-z]{1,128}"),
        )
            .prop_map(|(ts, seq, kind, event, data, mac)| Owned {
                ts,
                seq,
                kind,
                event,
                data: data.into_iter().collect(),
                mac,
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(m in message()) {
            let msg = m.borrow();
            let text = enc(&msg);
            prop_assert_eq!(decode(text.as_bytes()).unwrap(), msg);
        }

        #[test]
        fn encoded_messages_are_standard_json(m in message()) {
            let text = enc(&m.borrow());
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(json["v"].as_u64(), Some(1));
            prop_assert_eq!(json["ts"].as_u64(), Some(m.ts));
            prop_assert_eq!(json["kind"].as_str(), Some(m.kind.as_str()));
            for (name, value) in &m.data {
                match value {
                    Value::Bool(b) => prop_assert_eq!(json["data"][name].as_bool(), Some(*b)),
                    Value::Number(n) => prop_assert_eq!(json["data"][name].as_f64(), Some(*n)),
                }
            }
        }

        #[test]
        fn standard_json_from_another_encoder_decodes(m in message()) {
            let data: serde_json::Map<String, serde_json::Value> = m.data.iter().map(|(k, v)| {
                let v = match v {
                    Value::Bool(b) => serde_json::Value::Bool(*b),
                    Value::Number(n) => serde_json::json!(n),
                };
                (k.clone(), v)
            }).collect();
            let mut obj = serde_json::json!({"seq": m.seq, "kind": m.kind, "v": 1, "ts": m.ts, "data": data});
            if let Some(e) = &m.event { obj["event"] = e.clone().into(); }
            if let Some(mac) = &m.mac { obj["mac"] = mac.clone().into(); }
            let text = serde_json::to_string_pretty(&obj).unwrap();
            let got = decode(text.as_bytes()).unwrap();
            let want = m.borrow();
            prop_assert_eq!((got.ts, got.seq, got.kind, got.event, got.mac), (want.ts, want.seq, want.kind, want.event, want.mac));
            for r in &want.data {
                prop_assert_eq!(got.reading(r.name), Some(r.value));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(m in message(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = enc(&m.borrow()).into_bytes();
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode(&bytes);
        }
    }
}
