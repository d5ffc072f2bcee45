//! Message authentication: the `mac` member of a v1 payload, HMAC-SHA256 with the device's key.
//!
//! What is signed is defined on bytes, so the gateway verifies what arrived without re-encoding:
//!
//! - A signed payload ends with its `mac` member, written exactly as `,"mac":"<64 lowercase hex>"}`
//!   (the last member of the top-level object, no whitespace).
//! - The signed bytes are the payload with that member cut out: everything before `,"mac":`,
//!   followed by the closing `}`. That is the same payload encoded without a `mac`.
//! - The code is HMAC-SHA256(device key, signed bytes), written as 64 lowercase hex digits, which
//!   fits the wire grammar for `mac` (`[0-9A-Za-z]{1,128}`), so [`crate::wire::decode`] accepts a
//!   signed payload as it is.
//!
//! ```text
//! unsigned: {"v":1,"ts":1795000000456,"seq":43,"kind":"sos","event":"sos_pressed","data":{}}
//! key:      the 32 ASCII bytes `yg-sos-0001 device key, 32 bytes`
//! signed:   {"v":1,"ts":1795000000456,"seq":43,"kind":"sos","event":"sos_pressed","data":{},"mac":"52d1a8bbeab1e06c5b38a1a836572e4215b52a201ec1c8623f6438d2835e9b19"}
//! ```
//!
//! A node encodes without `mac` and calls [`sign_in_place`] on the same buffer (it needs
//! [`SIGNATURE_OVERHEAD`] spare bytes); the gateway calls [`verify`]. The code covers `seq`, so a
//! replayed payload verifies but carries an old `seq`: replay protection is the `seq` check's job.
//! Comparison of codes is constant-time (`hmac`'s `verify_slice`).

use core::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::wire::{self, DecodeError};

/// The length of a code in hex digits.
pub const MAC_HEX_LEN: usize = 64;
/// How many bytes signing adds to a payload: `,"mac":"`, the hex code and `"`.
pub const SIGNATURE_OVERHEAD: usize = MAC_PREFIX.len() + MAC_HEX_LEN + 1;

const MAC_PREFIX: &[u8] = b",\"mac\":\"";
/// The whole trailing member including the object's closing brace.
const TAIL_LEN: usize = SIGNATURE_OVERHEAD + 1;

/// Why a payload could not be signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignError {
    /// The payload is not a v1 message.
    Invalid(DecodeError),
    /// Something follows the closing brace, so the `mac` member cannot be appended.
    TrailingBytes,
    /// The payload already has a `mac`.
    AlreadySigned,
    /// The output buffer has no room for the `mac` member.
    BufferTooSmall,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(e) => write!(f, "cannot sign an invalid message: {e}"),
            Self::TrailingBytes => f.write_str("the payload must end with its closing brace"),
            Self::AlreadySigned => f.write_str("the payload already has a mac"),
            Self::BufferTooSmall => write!(
                f,
                "the buffer has no room for the mac ({SIGNATURE_OVERHEAD} bytes)"
            ),
        }
    }
}

/// Why a payload failed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The payload has no `mac` member.
    MissingMac,
    /// The payload has a `mac`, but not as the last member in the form `,"mac":"<64 lowercase hex>"}`,
    /// or the payload is not a v1 message at all.
    Malformed,
    /// The code does not match the payload under this key.
    Mismatch,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingMac => "the message is not signed (no mac)",
            Self::Malformed => {
                "the mac must be the last member, written as ,\"mac\":\"<64 lowercase hex>\"}"
            }
            Self::Mismatch => "the mac does not match the message (wrong key or altered)",
        })
    }
}

fn hmac(key: &[u8], body_without_brace: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body_without_brace);
    mac.update(b"}");
    mac
}

fn hex_digit(nibble: u8) -> u8 {
    b"0123456789abcdef"[usize::from(nibble & 0xf)]
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Splits a signed payload into the bytes before `,"mac":` and the decoded 32-byte code.
fn split_signed(payload: &[u8]) -> Option<(&[u8], [u8; 32])> {
    let body_len = payload.len().checked_sub(TAIL_LEN)?;
    let (body, tail) = payload.split_at(body_len);
    let hex = tail.strip_prefix(MAC_PREFIX)?.strip_suffix(b"\"}")?;
    let mut code = [0u8; 32];
    for (byte, pair) in code.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some((body, code))
}

/// Appends the `mac` member to the unsigned payload in `buf[..len]` and returns the new length.
///
/// `buf` needs [`SIGNATURE_OVERHEAD`] bytes of room after `len`.
pub fn sign_in_place(key: &[u8], buf: &mut [u8], len: usize) -> Result<usize, SignError> {
    let unsigned = buf.get(..len).ok_or(SignError::BufferTooSmall)?;
    if wire::decode(unsigned)
        .map_err(SignError::Invalid)?
        .mac
        .is_some()
    {
        return Err(SignError::AlreadySigned);
    }
    // The decoder allows whitespace after the object; the mac must follow the brace directly.
    if unsigned.last() != Some(&b'}') {
        return Err(SignError::TrailingBytes);
    }
    let end = len + SIGNATURE_OVERHEAD;
    if buf.len() < end {
        return Err(SignError::BufferTooSmall);
    }
    let body = len - 1;
    let code = hmac(key, &buf[..body]).finalize().into_bytes();
    let (prefix, rest) = buf[body..end].split_at_mut(MAC_PREFIX.len());
    prefix.copy_from_slice(MAC_PREFIX);
    for (pair, byte) in rest.chunks_exact_mut(2).zip(code) {
        pair[0] = hex_digit(byte >> 4);
        pair[1] = hex_digit(byte);
    }
    buf[end - 2..end].copy_from_slice(b"\"}");
    Ok(end)
}

/// Writes `unsigned_payload` with its `mac` member appended into `out` and returns the length.
pub fn sign(key: &[u8], unsigned_payload: &[u8], out: &mut [u8]) -> Result<usize, SignError> {
    let dst = out
        .get_mut(..unsigned_payload.len())
        .ok_or(SignError::BufferTooSmall)?;
    dst.copy_from_slice(unsigned_payload);
    sign_in_place(key, out, unsigned_payload.len())
}

/// Checks a signed payload's `mac` against the device's key.
pub fn verify(key: &[u8], payload: &[u8]) -> Result<(), AuthError> {
    let Some((body, code)) = split_signed(payload) else {
        // Only the failure path parses, to tell "unsigned" from "signed the wrong way".
        return match wire::decode(payload) {
            Ok(msg) if msg.mac.is_none() => Err(AuthError::MissingMac),
            _ => Err(AuthError::Malformed),
        };
    };
    hmac(key, body)
        .verify_slice(&code)
        .map_err(|_| AuthError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Message, Reading, Readings, Value};
    use proptest::prelude::*;

    const KEY: &[u8] = b"yg-sos-0001 device key, 32 bytes";
    const UNSIGNED: &[u8] =
        br#"{"v":1,"ts":1795000000456,"seq":43,"kind":"sos","event":"sos_pressed","data":{}}"#;
    /// python3 -c 'import hmac,hashlib; print(hmac.new(KEY, UNSIGNED, hashlib.sha256).hexdigest())'
    const EXPECTED_MAC: &str = "52d1a8bbeab1e06c5b38a1a836572e4215b52a201ec1c8623f6438d2835e9b19";

    fn signed(key: &[u8], unsigned: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; unsigned.len() + SIGNATURE_OVERHEAD];
        let n = sign(key, unsigned, &mut out).expect("signs");
        out.truncate(n);
        out
    }

    #[test]
    fn signing_appends_the_hmac_computed_independently() {
        let got = signed(KEY, UNSIGNED);
        let want = format!(
            "{},\"mac\":\"{EXPECTED_MAC}\"}}",
            core::str::from_utf8(&UNSIGNED[..UNSIGNED.len() - 1]).unwrap()
        );
        assert_eq!(core::str::from_utf8(&got).unwrap(), want);
        assert_eq!(verify(KEY, &got), Ok(()));
    }

    #[test]
    fn signing_in_place_uses_the_room_after_the_payload() {
        let mut buf = [0u8; 256];
        buf[..UNSIGNED.len()].copy_from_slice(UNSIGNED);
        let n = sign_in_place(KEY, &mut buf, UNSIGNED.len()).unwrap();
        assert_eq!(&buf[..n], &signed(KEY, UNSIGNED)[..]);
        buf[..UNSIGNED.len()].copy_from_slice(UNSIGNED);
        assert_eq!(
            sign_in_place(
                KEY,
                &mut buf[..UNSIGNED.len() + SIGNATURE_OVERHEAD - 1],
                UNSIGNED.len()
            ),
            Err(SignError::BufferTooSmall)
        );
    }

    #[test]
    fn signing_refuses_what_it_cannot_sign_cleanly() {
        let mut out = [0u8; 512];
        assert_eq!(
            sign(KEY, &signed(KEY, UNSIGNED), &mut out),
            Err(SignError::AlreadySigned)
        );
        let spaced = [UNSIGNED, b"\n"].concat();
        assert_eq!(sign(KEY, &spaced, &mut out), Err(SignError::TrailingBytes));
        assert!(matches!(
            sign(KEY, b"{\"v\":1}", &mut out),
            Err(SignError::Invalid(DecodeError::MissingField { .. }))
        ));
    }

    #[test]
    fn an_unsigned_message_is_missing_its_mac() {
        assert_eq!(verify(KEY, UNSIGNED), Err(AuthError::MissingMac));
    }

    #[test]
    fn a_mac_that_is_not_last_or_not_lowercase_hex_is_malformed() {
        let not_last = format!(
            r#"{{"v":1,"ts":1795000000456,"seq":43,"mac":"{EXPECTED_MAC}","kind":"sos","event":"sos_pressed","data":{{}}}}"#
        );
        assert_eq!(verify(KEY, not_last.as_bytes()), Err(AuthError::Malformed));
        let upper = String::from_utf8(signed(KEY, UNSIGNED))
            .unwrap()
            .replace(EXPECTED_MAC, &EXPECTED_MAC.to_uppercase());
        assert_eq!(verify(KEY, upper.as_bytes()), Err(AuthError::Malformed));
        let short = String::from_utf8(signed(KEY, UNSIGNED))
            .unwrap()
            .replace(EXPECTED_MAC, &EXPECTED_MAC[2..]);
        assert_eq!(verify(KEY, short.as_bytes()), Err(AuthError::Malformed));
        assert_eq!(verify(KEY, b"not json"), Err(AuthError::Malformed));
    }

    #[test]
    fn another_key_does_not_verify() {
        assert_eq!(
            verify(b"some other device's key", &signed(KEY, UNSIGNED)),
            Err(AuthError::Mismatch)
        );
    }

    #[derive(Debug, Clone)]
    struct Owned {
        ts: u64,
        seq: u64,
        kind: String,
        event: Option<String>,
        data: Vec<(String, f64)>,
    }

    impl Owned {
        fn encode(&self, mac: Option<&str>) -> Vec<u8> {
            let mut data = Readings::new();
            for (name, n) in &self.data {
                data.push(Reading {
                    name,
                    value: Value::Number(*n),
                })
                .unwrap();
            }
            let msg = Message {
                ts: self.ts,
                seq: self.seq,
                kind: &self.kind,
                event: self.event.as_deref(),
                data,
                mac,
            };
            let mut buf = [0u8; 2048];
            let n = wire::encode(&msg, &mut buf).unwrap();
            buf[..n].to_vec()
        }
    }

    fn message() -> impl Strategy<Value = Owned> {
        let name = "[a-z][a-z0-9_]{0,31}";
        (
            any::<u64>(),
            any::<u64>(),
            name,
            prop::option::of(name),
            prop::collection::btree_map(name, -1e6f64..1e6, 0..=4),
        )
            .prop_map(|(ts, seq, kind, event, data)| Owned {
                ts,
                seq,
                kind,
                event,
                data: data.into_iter().collect(),
            })
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(m in message(), key in prop::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(verify(&key, &signed(&key, &m.encode(None))), Ok(()));
        }

        #[test]
        fn a_signed_payload_is_the_message_encoded_with_its_mac(m in message()) {
            let unsigned = m.encode(None);
            let payload = signed(KEY, &unsigned);
            let decoded = wire::decode(&payload).unwrap();
            let mac = decoded.mac.unwrap();
            prop_assert_eq!(mac.len(), MAC_HEX_LEN);
            prop_assert_eq!(m.encode(Some(mac)), payload.clone());
            prop_assert_eq!(Message { mac: None, ..decoded }, wire::decode(&unsigned).unwrap());
        }

        #[test]
        fn changing_any_one_byte_fails_verification(m in message(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut payload = signed(KEY, &m.encode(None));
            let i = at.index(payload.len());
            prop_assume!(payload[i] != byte);
            payload[i] = byte;
            prop_assert!(verify(KEY, &payload).is_err());
        }
    }
}
