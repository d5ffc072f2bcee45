//! Bad payloads made from good ones: cut short, another format version, re-encoded with a change
//! (another kind, a later `ts` on the same `seq`) and signed again, with the right key or a wrong
//! one, or padded past the gateway's size limit. Pure: bytes in, bytes out.

use gridwatch_firmware::auth;
use gridwatch_firmware::wire::{self, Message};

/// The largest message the re-encoder handles (a node's payloads are at most 512 bytes).
const MAX: usize = 1024;

/// The first half of `payload`: JSON that stops mid-way.
pub fn cut_in_half(payload: &[u8]) -> Vec<u8> {
    payload[..payload.len() / 2].to_vec()
}

/// `payload` claiming format version `version`, the rest unchanged (so a `mac` no longer fits).
pub fn with_version(payload: &[u8], version: u64) -> Vec<u8> {
    let rest = payload.strip_prefix(b"{\"v\":1,").unwrap_or(payload);
    let mut out = format!("{{\"v\":{version},").into_bytes();
    out.extend_from_slice(rest);
    out
}

/// A payload of exactly `size` bytes (at least 64) that starts as a v1 message of `kind` and is
/// padded with a string member.
pub fn oversize(kind: &str, size: usize) -> Vec<u8> {
    let head = format!("{{\"v\":1,\"kind\":\"{kind}\",\"pad\":\"");
    let pad = size.max(64).saturating_sub(head.len() + 2);
    let mut out = head.into_bytes();
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(b"\"}");
    out
}

/// `payload` decoded, changed by `edit`, encoded again and signed with `key` when given (any
/// `mac` it had is dropped first); `None` if it does not decode or no longer encodes.
pub fn reencode(
    payload: &[u8],
    edit: impl FnOnce(&mut Message<'_>),
    key: Option<&[u8]>,
) -> Option<Vec<u8>> {
    let mut msg = wire::decode(payload).ok()?;
    msg.mac = None;
    edit(&mut msg);
    let mut buf = [0u8; MAX];
    let len = wire::encode(&msg, &mut buf).ok()?;
    let len = match key {
        Some(key) => auth::sign_in_place(key, &mut buf, len).ok()?,
        None => len,
    };
    Some(buf[..len].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_firmware::wire::{DecodeError, Readings};
    use proptest::prelude::*;

    const KEY: &[u8] = b"sim-00001 device key, 32 bytes!!";

    fn genuine(ts: u64, seq: u64) -> Vec<u8> {
        reencode(
            br#"{"v":1,"ts":0,"seq":0,"kind":"manhole","data":{"water_cm":12.5}}"#,
            |m| {
                m.ts = ts;
                m.seq = seq;
            },
            Some(KEY),
        )
        .unwrap()
    }

    #[test]
    fn each_bad_payload_fails_the_way_it_is_meant_to() {
        let good = genuine(1_795_000_000_000, 42);
        assert_eq!(auth::verify(KEY, &good), Ok(()));
        assert!(matches!(
            wire::decode(&cut_in_half(&good)),
            Err(DecodeError::Syntax { .. })
        ));
        assert_eq!(
            wire::decode(&with_version(&good, 2)),
            Err(DecodeError::UnsupportedVersion { found: 2 })
        );
        let big = oversize("manhole", 8192);
        assert_eq!(big.len(), 8192);
        assert!(
            big.starts_with(br#"{"v":1,"kind":"manhole","pad":"xxx"#) && big.ends_with(b"x\"}")
        );
        let forged = reencode(&good, |_| {}, Some(b"another key, also 32 bytes long!")).unwrap();
        assert_eq!(wire::decode(&forged).unwrap().seq, 42);
        assert!(auth::verify(KEY, &forged).is_err());
        let same_seq = reencode(&good, |m| m.ts += 1, Some(KEY)).unwrap();
        assert_ne!(same_seq, good);
        assert_eq!(auth::verify(KEY, &same_seq), Ok(()));
        assert_eq!(wire::decode(&same_seq).unwrap().seq, 42);
        let other = reencode(&good, |m| m.kind = "sos", None).unwrap();
        assert_eq!(wire::decode(&other).unwrap().kind, "sos");
        assert_eq!(wire::decode(&other).unwrap().mac, None);
        assert_eq!(reencode(b"{", |_| {}, None), None);
    }

    proptest! {
        /// Whatever a node sent, its altered copies keep its sequence number and break in their
        /// one intended way.
        #[test]
        fn altered_copies_keep_the_seq_and_break_only_as_meant(ts in 0u64..1u64 << 50, seq in 1u64..1u64 << 50, cm in 0.0f64..1000.0) {
            let good = reencode(
                br#"{"v":1,"ts":0,"seq":0,"kind":"manhole","data":{}}"#,
                |m| {
                    m.ts = ts;
                    m.seq = seq;
                    let mut data = Readings::new();
                    let _ = data.push(wire::Reading { name: "water_cm", value: wire::Value::Number(cm) });
                    m.data = data;
                },
                Some(KEY),
            ).unwrap();
            prop_assert!(wire::decode(&cut_in_half(&good)).is_err());
            let v2 = with_version(&good, 2);
            prop_assert_eq!(wire::decode(&v2), Err(DecodeError::UnsupportedVersion { found: 2 }));
            let same = reencode(&good, |m| m.ts += 1, Some(KEY)).unwrap();
            prop_assert_eq!(wire::decode(&same).unwrap().seq, seq);
            prop_assert_eq!(auth::verify(KEY, &same), Ok(()));
            prop_assert_ne!(same, good);
        }
    }
}
