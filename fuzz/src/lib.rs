//! The properties each fuzz target checks, one function per target over the raw input bytes.
//!
//! Each target in `fuzz_targets/` is a one-line wrapper over a function here, so the properties
//! read as plain Rust and can be run on any input without the fuzzer (`cargo test` replays the
//! seed corpus through them). A property that does not hold panics, which libFuzzer records as a
//! crash with the input that caused it.
//!
//! Every function holds, for any input: no panic (a panic in a parser of outside input is a bug
//! whatever the input), every error names a position inside the input, and every error prints.
//! Where an encoder exists, whatever decodes re-encodes and decodes back to the same value.

use std::path::Path;
use std::sync::OnceLock;

use gridwatch_edge_rules::{RuleSet, Schema};
use gridwatch_firmware::auth::{self, AuthError, SIGNATURE_OVERHEAD};
use gridwatch_firmware::framing::{self, Channel as FrameChannel, Decoder, Frame};
use gridwatch_firmware::wire::{self, DecodeError};
use gridwatch_gateway::catalogue::Catalogue;
use gridwatch_gateway::config::{Config, ConfigError};
use gridwatch_gateway::decode::topic;
use gridwatch_gateway::registry::is_id;

/// The frame buffer of the framing target: small, so that inputs overflow it often.
const FRAME_BUF: usize = 256;

/// The byte offset a decode error names, if it names one.
fn decode_error_at(e: DecodeError) -> Option<usize> {
    match e {
        DecodeError::NotUtf8 { at }
        | DecodeError::Syntax { at, .. }
        | DecodeError::Escape { at }
        | DecodeError::UnknownField { at }
        | DecodeError::DuplicateField { at }
        | DecodeError::BadName { at, .. }
        | DecodeError::BadNumber { at, .. }
        | DecodeError::BadValue { at }
        | DecodeError::TooManyReadings { at }
        | DecodeError::TrailingData { at } => Some(at),
        DecodeError::MissingField { .. } | DecodeError::UnsupportedVersion { .. } => None,
    }
}

/// Encodes `msg` into a fresh buffer: a decoded message must always encode.
fn encode_message(msg: &wire::Message<'_>, room: usize) -> Vec<u8> {
    let mut buf = vec![0; room];
    let n = wire::encode(msg, &mut buf)
        .unwrap_or_else(|e| panic!("a decoded message does not encode: {e}: {msg:?}"));
    buf.truncate(n);
    buf
}

/// The v1 payload decoder: never panics, errors point into the payload, and a decoded message
/// encodes to a canonical payload that decodes to the same message and re-encodes byte for byte.
pub fn wire_decode(data: &[u8]) {
    let msg = match wire::decode(data) {
        Ok(msg) => msg,
        Err(e) => {
            let _ = e.to_string();
            if let Some(at) = decode_error_at(e) {
                assert!(at <= data.len(), "{e:?} points past {} bytes", data.len());
            }
            return;
        }
    };
    // A number re-encodes in at most 24 characters (`-2.2250738585072014e-308`) from at least one.
    let room = 64 + 24 * data.len();
    let canonical = encode_message(&msg, room);
    let again = wire::decode(&canonical).unwrap_or_else(|e| {
        panic!(
            "re-encoded message does not decode: {e}: {}",
            String::from_utf8_lossy(&canonical)
        )
    });
    assert_eq!(again, msg);
    assert_eq!(encode_message(&again, room), canonical);
}

/// Encodes a frame into a fresh buffer.
fn encode_frame(frame: &Frame<'_>) -> Vec<u8> {
    let mut line = vec![0; framing::max_encoded_len(frame.body_len())];
    let n = framing::encode(frame, &mut line)
        .unwrap_or_else(|e| panic!("a decoded frame does not encode: {e}: {frame:?}"));
    line.truncate(n);
    line
}

/// A decoded frame, owned: device, channel, payload.
type OwnedFrame = (String, FrameChannel, Vec<u8>);

/// Feeds `line` to `decoder` and returns what the last byte produced, owned.
fn feed_last<const N: usize>(
    decoder: &mut Decoder<N>,
    line: &[u8],
) -> Option<Result<OwnedFrame, framing::FrameError>> {
    let mut last = None;
    for &b in line {
        last = decoder
            .push(b)
            .map(|r| r.map(|f| (f.device.to_owned(), f.channel, f.payload.to_vec())));
    }
    last
}

/// The serial frame decoder: never panics on any byte stream; every frame it yields has a valid
/// device id, fits its buffer and re-encodes to a frame that decodes the same; and after any
/// garbage, a delimiter then a good frame yields exactly that frame (it resynchronises).
pub fn framing(data: &[u8]) {
    let mut decoder = Decoder::<FRAME_BUF>::new();
    for &b in data {
        match decoder.push(b) {
            Some(Ok(frame)) => {
                assert!(is_id(frame.device), "frame with device {:?}", frame.device);
                assert!(frame.body_len() <= FRAME_BUF);
                let line = encode_frame(&frame);
                let back = feed_last(&mut Decoder::<FRAME_BUF>::new(), &line);
                let own = (
                    frame.device.to_owned(),
                    frame.channel,
                    frame.payload.to_vec(),
                );
                assert_eq!(back, Some(Ok(own)));
            }
            Some(Err(e)) => {
                let _ = e.to_string();
                assert!(!e.as_str().is_empty());
            }
            None => {}
        }
    }
    let payload = &data[..data.len().min(FRAME_BUF - framing::OVERHEAD - 8)];
    let good = Frame {
        device: "fuzz-dev",
        channel: FrameChannel::Event,
        payload,
    };
    let line = encode_frame(&good);
    assert_eq!(line.iter().position(|&b| b == 0), Some(line.len() - 1));
    let _ = decoder.push(0);
    let own = (good.device.to_owned(), good.channel, good.payload.to_vec());
    assert_eq!(feed_last(&mut decoder, &line), Some(Ok(own)));
}

/// The MAC verifier: never panics on any key and payload; a payload signed with a key verifies
/// with that key, and fails with another key or after any one byte of it changes.
///
/// Input layout: the first byte (mod 65) is the key's length, then the key, then the payload.
pub fn auth_verify(data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let (key, payload) = rest.split_at(usize::from(len % 65).min(rest.len()));
    let _ = auth::verify(key, payload).map_err(|e| e.to_string());
    let mut out = vec![0; payload.len() + SIGNATURE_OVERHEAD];
    let Ok(n) = auth::sign(key, payload, &mut out) else {
        return;
    };
    let signed = &out[..n];
    assert_eq!(auth::verify(key, signed), Ok(()));
    let msg = wire::decode(signed).expect("a signed payload is a v1 message");
    assert_eq!(msg.mac.map(str::len), Some(auth::MAC_HEX_LEN));
    // Appending a non-zero byte changes an HMAC key (trailing zeros would not).
    let other: Vec<u8> = key.iter().copied().chain([0x5a]).collect();
    assert_eq!(auth::verify(&other, signed), Err(AuthError::Mismatch));
    let at = usize::from(len) * 7919 % n;
    let mut altered = signed.to_vec();
    altered[at] ^= 0x01;
    assert!(
        auth::verify(key, &altered).is_err(),
        "a change at byte {at} went unnoticed"
    );
}

/// The device topic parser: never panics; a topic it accepts has valid ids, no wildcard or NUL,
/// is rebuilt exactly from its parts, and its channel agrees with the quick channel hint.
pub fn topic(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let hint = topic::channel_hint(text);
    let Ok(t) = topic::parse(text) else {
        return;
    };
    assert!(is_id(t.community) && is_id(t.device), "{t:?}");
    assert!(!text.contains(['+', '#', '\0']), "{text:?}");
    assert_eq!(
        format!("gw/v1/{}/{}/{}", t.community, t.device, t.channel.as_str()),
        text
    );
    assert_eq!(hint, Some(t.channel));
}

/// The highest 1-based line a position in `text` can be on.
fn last_line(text: &str) -> usize {
    text.matches('\n').count() + 1
}

fn rules_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| gridwatch_gateway::rules::schema(&Catalogue::builtin()))
}

/// The rule file parser, against the built-in kind catalogue: never panics; every problem is at
/// a line and column inside the text; parsing is deterministic.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (set, problems) = RuleSet::parse_partly(text, rules_schema());
    let lines: Vec<&str> = text.split('\n').collect();
    for p in &problems {
        let _ = p.to_string();
        assert!(
            (1..=lines.len()).contains(&p.line),
            "{p:?} is outside {} lines",
            lines.len()
        );
        let width = lines[p.line - 1].chars().count();
        assert!(
            (1..=width + 1).contains(&p.col),
            "{p:?} is outside its line"
        );
    }
    for rule in &set.rules {
        assert!((1..=lines.len()).contains(&rule.line), "{rule:?}");
    }
    assert_eq!(
        RuleSet::parse_partly(text, rules_schema()),
        (set, problems),
        "parsing twice gave different answers"
    );
}

/// The gateway's config loader: never panics; a problem that names a line names one in the text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(e) = Config::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let _ = e.to_string();
    if let ConfigError::Invalid { problems, .. } = e {
        for p in problems {
            if let Some(line) = p.line {
                assert!((1..=last_line(text)).contains(&line), "{p:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `target` over every seed of its corpus folder, as the fuzzer does before it starts.
    fn replay(name: &str, target: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("seed folder") {
            let path = entry.expect("seed entry").path();
            target(&std::fs::read(&path).expect("seed file"));
            n += 1;
        }
        n
    }

    #[test]
    fn every_seed_holds_every_property() {
        for (name, target) in [
            ("wire_decode", wire_decode as fn(&[u8])),
            ("framing", framing),
            ("auth_verify", auth_verify),
            ("topic", topic),
            ("rules", rules),
            ("config", config),
        ] {
            assert!(replay(name, target) > 0, "no seeds for {name}");
        }
    }
}
