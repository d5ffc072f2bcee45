//! The checks that need a device's past: its key, its sequence number, its clock and its rate.
//!
//! [`super::decode`] decides whether a message is well-formed and from a registered device; the
//! [`Guard`] then decides whether it is genuine, new and welcome, in this order:
//!
//! 1. **Authentication.** A device with a key (the `ingest.device_keys_path` file) must sign every
//!    telemetry and event message (HMAC-SHA256, `gridwatch_firmware::auth`); with
//!    `ingest.require_mac` every device must have a key. Status words (`online`/`offline`) are the
//!    broker's last will and cannot be signed; the broker's ACL guards them.
//! 2. **Sequence.** `seq` must be above the last accepted one from the device, or one of the
//!    [`WINDOW`] numbers just below it that was never accepted: the gateway takes a device's
//!    events before its telemetry, so a reading a node sent just before an event can arrive after
//!    it. One of the last few accepted again, byte for byte, is a redelivery (MQTT QoS 1 is
//!    at-least-once: after a reconnect the broker sends again what was not acknowledged, and a
//!    message staged but lost in a crash comes again) and passes; anything else already accepted,
//!    or further below, is a replay. The marks are saved with the rule state and brought up to
//!    date from the journal on start ([`Guard::observe`]), so a replay after a restart is still
//!    caught (below a saved mark, every number counts as accepted).
//! 3. **Clock.** `ts` may lead the gateway's clock by at most `ingest.max_clock_ahead_secs` and lag
//!    it by at most `ingest.max_clock_behind_secs` (a node keeps events while its link is down).
//!    A life-safety event (a `critical` event in the kind catalogue) is never refused for its
//!    timestamp alone: its `seq` and `mac` already prove it new and genuine, and a node that has
//!    just booted may not know the time yet.
//! 4. **Rate.** Each device has a token bucket (`ingest.device_rate_per_min`, `ingest.device_burst`);
//!    what exceeds it is dropped and counted, and the device is reported as flooding
//!    ([`Guard::flooding`]). Life-safety events are never rate-limited.
//!
//! Pure: time is an argument. Memory is bounded per registered device (a few words each),
//! whatever a device sends; unregistered devices never get this far.

use std::collections::HashMap;
use std::path::Path;

use gridwatch_edge_rules::Severity;
use serde::{Deserialize, Serialize};

use super::{reject, Body, Decoded, Reason, Rejection};
use crate::registry::{Registry, Text};

/// The guard's limits, from `[ingest]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Every device must have a key and sign.
    pub require_mac: bool,
    /// How far a device's clock may run ahead, in ms.
    pub max_ahead_ms: u64,
    /// How far behind, in ms.
    pub max_behind_ms: u64,
    /// Sustained messages per minute per device.
    pub rate_per_min: u32,
    /// How many may come at once.
    pub burst: u32,
}

/// A device's last accepted sequence number and a digest of that message's payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The sequence number.
    pub seq: u64,
    /// FNV-1a of the payload: tells a redelivery from a replay with the same number.
    pub digest: u64,
}

/// How many accepted messages below the mark still count as redeliveries.
const RECENT: usize = 4;

/// How far below the mark a number never accepted may still arrive.
pub const WINDOW: u64 = 64;

/// How long a device must stay under its rate to stop counting as flooding.
const QUIET_MS: u64 = 60_000;

/// What the guard keeps per device.
#[derive(Clone, Debug, Default)]
struct DeviceState {
    mark: Option<Mark>,
    /// The last few accepted below the mark, oldest overwritten first: after a reconnect the
    /// broker sends again what the gateway had not acknowledged yet, in order, so several
    /// messages just below the mark come again.
    recent: [Mark; RECENT],
    /// Bit `i` set: `mark.seq - 1 - i` was accepted (or lies below a saved mark).
    seen: u64,
    tokens: f64,
    refilled_ms: u64,
    dropped: u64,
    flooding_since_ms: Option<u64>,
    last_drop_ms: u64,
}

impl DeviceState {
    /// Takes `mark` as accepted: the new mark if it is above the old one, which then joins the
    /// recent ones.
    fn remember(&mut self, mark: Mark) {
        match self.mark {
            Some(last) if last.seq == mark.seq => {}
            Some(last) if last.seq > mark.seq => {
                self.seen |= bit(last.seq - mark.seq);
                self.recent.rotate_right(1);
                self.recent[0] = mark;
            }
            Some(last) => {
                let up = mark.seq - last.seq;
                self.seen = self.seen.checked_shl(up as u32).unwrap_or(0) | bit(up);
                self.recent.rotate_right(1);
                self.recent[0] = last;
                self.mark = Some(mark);
            }
            None => self.mark = Some(mark),
        }
    }

    /// Whether `seq` was accepted already (or is too far below the mark to tell).
    fn seen(&self, seq: u64) -> bool {
        self.mark.is_some_and(|last| {
            let below = last.seq.saturating_sub(seq);
            seq <= last.seq && (below == 0 || below > WINDOW || self.seen & bit(below) != 0)
        })
    }
}

/// The bit of [`DeviceState::seen`] for the number `below` under the mark (1 to [`WINDOW`]).
fn bit(below: u64) -> u64 {
    if (1..=WINDOW).contains(&below) {
        1 << (below - 1)
    } else {
        0
    }
}

/// A device dropping messages over its rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flooding {
    /// The device.
    pub device: Text,
    /// Dropped since it began.
    pub dropped: u64,
    /// When it began.
    pub since_ms: u64,
}

/// The guard's verdict on a message that is genuine and new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Take it.
    Pass,
    /// Over the device's rate: drop it and count it (`reason` is the metric label).
    Drop {
        /// The metric label.
        reason: &'static str,
    },
}

/// Device keys, read from a file the gateway alone may read.
#[derive(Clone, Debug, Default)]
pub struct Keys(HashMap<String, Vec<u8>>);

/// The keys file: `device-id = "hex"`, 16 to 64 bytes each.
#[derive(Deserialize)]
struct KeysFile {
    #[serde(flatten)]
    keys: HashMap<String, String>,
}

impl Keys {
    /// Keys from a file of `device-id = "<hex>"` lines. The file must not be readable by others.
    pub fn load(path: &Path) -> Result<Self, String> {
        let at = path.display();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("{at}: {e}"))?
                .permissions()
                .mode();
            if mode & 0o007 != 0 {
                return Err(format!(
                    "{at} is readable by every user (mode {:o}): device keys are secrets; chmod 600 it",
                    mode & 0o777
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{at}: {e}"))?;
        Self::parse(&text).map_err(|e| format!("{at}: {e}"))
    }

    /// Keys from the text of a keys file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: KeysFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut keys = HashMap::with_capacity(file.keys.len());
        let mut problems = Vec::new();
        for (device, hex) in file.keys {
            match decode_hex(&hex) {
                Some(key) if (16..=64).contains(&key.len()) => {
                    keys.insert(device, key);
                }
                _ => problems.push(format!(
                    "the key of {device:?} must be 32 to 128 hex digits (16 to 64 bytes)"
                )),
            }
        }
        problems.sort();
        if problems.is_empty() {
            Ok(Self(keys))
        } else {
            Err(problems.join("; "))
        }
    }

    /// How many devices have a key.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no device has a key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, device: &str) -> Option<&[u8]> {
        self.0.get(device).map(Vec::as_slice)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// FNV-1a, 64 bits: enough to tell two payloads with one sequence number apart.
fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `decoded` is a life-safety event: a `critical` event of its kind.
pub fn is_life_safety(registry: &Registry, decoded: &Decoded<'_>) -> bool {
    let Body::Message(msg) = &decoded.body else {
        return false;
    };
    msg.event.is_some_and(|e| {
        registry
            .catalogue()
            .kind(&decoded.device.kind)
            .and_then(|k| k.event(e))
            .is_some_and(|spec| spec.severity == Severity::Critical)
    })
}

/// The per-device checks, with the state they need.
#[derive(Debug)]
pub struct Guard {
    limits: Limits,
    keys: Keys,
    devices: HashMap<Text, DeviceState>,
}

impl Guard {
    /// A guard with `limits` and `keys`, resuming from saved sequence `marks`.
    pub fn new(limits: Limits, keys: Keys, marks: HashMap<String, Mark>) -> Self {
        let devices = marks
            .into_iter()
            .map(|(id, mark)| {
                (
                    Text::from(id.as_str()),
                    DeviceState {
                        mark: Some(mark),
                        seen: u64::MAX,
                        ..DeviceState::default()
                    },
                )
            })
            .collect();
        Self {
            limits,
            keys,
            devices,
        }
    }

    /// Checks an accepted-so-far message; `life_safety` exempts it from the clock and rate limits,
    /// `sent_again` is the broker's DUP flag.
    pub fn check(
        &mut self,
        decoded: &Decoded<'_>,
        payload: &[u8],
        life_safety: bool,
        sent_again: bool,
        now_ms: u64,
    ) -> Result<Verdict, Rejection> {
        let id = &decoded.device.id;
        let Body::Message(msg) = &decoded.body else {
            return Ok(self.rate(id, now_ms));
        };
        match self.keys.get(id) {
            Some(key) => gridwatch_firmware::auth::verify(key, payload).map_err(|e| {
                reject(
                    Reason::BadMac,
                    format!("{e} (the device's key is in ingest.device_keys_path)"),
                )
            })?,
            None if self.limits.require_mac => {
                return Err(reject(
                    Reason::BadMac,
                    format!(
                        "ingest.require_mac is on and {id:?} has no key in ingest.device_keys_path"
                    ),
                ))
            }
            None => {}
        }
        let mark = Mark {
            seq: msg.seq,
            digest: digest(payload),
        };
        let state = self.devices.entry(id.clone()).or_default();
        let redelivered = state.mark == Some(mark) || state.recent.contains(&mark);
        match state.mark {
            Some(_) if sent_again && !redelivered && state.seen(mark.seq) => {
                // The broker sending again what the gateway took but had not acknowledged when
                // its connection dropped: already in the journal, so nothing to take, and no
                // attack to report.
                return Ok(Verdict::Drop {
                    reason: "duplicate",
                });
            }
            Some(last) if !redelivered && state.seen(mark.seq) => {
                return Err(reject(
                    Reason::Replayed,
                    format!(
                        "seq {} was taken already, or is more than {WINDOW} below the last accepted {} (a replay, or a device reset: see the README, \"Device identity\")",
                        mark.seq, last.seq
                    ),
                ))
            }
            _ => {}
        }
        if !life_safety {
            if msg.ts > now_ms.saturating_add(self.limits.max_ahead_ms) {
                return Err(reject(
                    Reason::ClockSkew,
                    format!(
                        "ts {} is {} s ahead of the gateway's clock (ingest.max_clock_ahead_secs = {})",
                        msg.ts,
                        (msg.ts - now_ms) / 1000,
                        self.limits.max_ahead_ms / 1000
                    ),
                ));
            }
            if msg.ts < now_ms.saturating_sub(self.limits.max_behind_ms) {
                return Err(reject(
                    Reason::ClockSkew,
                    format!(
                        "ts {} is {} s behind the gateway's clock (ingest.max_clock_behind_secs = {})",
                        msg.ts,
                        (now_ms - msg.ts) / 1000,
                        self.limits.max_behind_ms / 1000
                    ),
                ));
            }
        }
        state.remember(mark);
        Ok(if life_safety {
            Verdict::Pass
        } else {
            self.rate(id, now_ms)
        })
    }

    /// Takes one token from the device's bucket.
    fn rate(&mut self, id: &Text, now_ms: u64) -> Verdict {
        let Limits {
            rate_per_min,
            burst,
            ..
        } = self.limits;
        let state = self
            .devices
            .entry(id.clone())
            .or_insert_with(|| DeviceState {
                tokens: f64::from(burst),
                refilled_ms: now_ms,
                ..DeviceState::default()
            });
        if state.refilled_ms == 0 {
            state.tokens = f64::from(burst);
            state.refilled_ms = now_ms;
        }
        let elapsed = now_ms.saturating_sub(state.refilled_ms) as f64;
        state.tokens =
            (state.tokens + elapsed * f64::from(rate_per_min) / 60_000.0).min(f64::from(burst));
        state.refilled_ms = now_ms.max(state.refilled_ms);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Verdict::Pass
        } else {
            if state
                .flooding_since_ms
                .is_none_or(|_| now_ms.saturating_sub(state.last_drop_ms) >= QUIET_MS)
            {
                state.flooding_since_ms = Some(now_ms);
                state.dropped = 0;
            }
            state.dropped += 1;
            state.last_drop_ms = now_ms;
            Verdict::Drop {
                reason: "rate_limited",
            }
        }
    }

    /// Brings a device's mark up to a message read back from the journal, without checking it.
    pub fn observe(&mut self, decoded: &Decoded<'_>, payload: &[u8]) {
        let Body::Message(msg) = &decoded.body else {
            return;
        };
        let mark = Mark {
            seq: msg.seq,
            digest: digest(payload),
        };
        self.devices
            .entry(decoded.device.id.clone())
            .or_default()
            .remember(mark);
    }

    /// The devices that dropped messages within the last minute; one quiet for a whole minute
    /// has stopped flooding.
    pub fn flooding(&self, now_ms: u64) -> Vec<Flooding> {
        let mut out: Vec<Flooding> = self
            .devices
            .iter()
            .filter(|(_, s)| now_ms.saturating_sub(s.last_drop_ms) < QUIET_MS)
            .filter_map(|(id, s)| {
                Some(Flooding {
                    device: id.clone(),
                    dropped: s.dropped,
                    since_ms: s.flooding_since_ms?,
                })
            })
            .collect();
        out.sort_by(|a, b| a.device.cmp(&b.device));
        out
    }

    /// Every device's mark, for the saved state.
    pub fn marks(&self) -> HashMap<&str, Mark> {
        self.devices
            .iter()
            .filter_map(|(id, s)| Some((&**id, s.mark?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;
    use crate::decode::tests::registry;
    use gridwatch_firmware::auth;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const NOW: u64 = 1_795_000_000_000;

    fn limits() -> Limits {
        Limits {
            require_mac: false,
            max_ahead_ms: 300_000,
            max_behind_ms: 86_400_000,
            rate_per_min: 60,
            burst: 3,
        }
    }

    fn keys() -> Keys {
        Keys::parse(&format!("\"sos-1\" = \"{KEY}\"\n")).unwrap()
    }

    fn signed(unsigned: &str) -> Vec<u8> {
        let key = decode_hex(KEY).unwrap();
        let mut out = vec![0; unsigned.len() + auth::SIGNATURE_OVERHEAD];
        let n = auth::sign(&key, unsigned.as_bytes(), &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn sos(seq: u64, ts: u64) -> Vec<u8> {
        signed(&format!(
            r#"{{"v":1,"ts":{ts},"seq":{seq},"kind":"sos","event":"sos_pressed"}}"#
        ))
    }

    fn water(seq: u64, ts: u64) -> Vec<u8> {
        format!(r#"{{"v":1,"ts":{ts},"seq":{seq},"kind":"manhole","data":{{"water_cm":1}}}}"#)
            .into_bytes()
    }

    /// Runs one message through decode and the guard.
    fn run(guard: &mut Guard, topic: &str, payload: &[u8], now: u64) -> Result<Verdict, Reason> {
        let r = registry();
        let d = decode(topic, payload, &r, 4096).map_err(|e| e.reason)?;
        let life = is_life_safety(&r, &d);
        guard
            .check(&d, payload, life, false, now)
            .map_err(|e| e.reason)
    }

    const SOS_TOPIC: &str = "gw/v1/yg/sos-1/event";
    const MH_TOPIC: &str = "gw/v1/yg/mh-1/telemetry";

    #[test]
    fn a_signed_message_passes_and_a_tampered_or_unsigned_one_is_refused() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        assert_eq!(run(&mut g, SOS_TOPIC, &sos(1, NOW), NOW), Ok(Verdict::Pass));
        let mut tampered = sos(2, NOW);
        let at = tampered.iter().position(|&b| b == b'2').unwrap();
        tampered[at] = b'3';
        assert_eq!(run(&mut g, SOS_TOPIC, &tampered, NOW), Err(Reason::BadMac));
        let unsigned = br#"{"v":1,"ts":1795000000000,"seq":4,"kind":"sos","event":"sos_pressed"}"#;
        assert_eq!(run(&mut g, SOS_TOPIC, unsigned, NOW), Err(Reason::BadMac));
        let other_key = Keys::parse(&format!("\"sos-1\" = \"{}\"\n", "ab".repeat(32))).unwrap();
        let mut g = Guard::new(limits(), other_key, HashMap::new());
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(1, NOW), NOW),
            Err(Reason::BadMac)
        );
    }

    #[test]
    fn a_device_without_a_key_passes_unless_every_device_must_sign() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        assert_eq!(
            run(&mut g, MH_TOPIC, &water(1, NOW), NOW),
            Ok(Verdict::Pass)
        );
        let strict = Limits {
            require_mac: true,
            ..limits()
        };
        let mut g = Guard::new(strict, keys(), HashMap::new());
        assert_eq!(
            run(&mut g, MH_TOPIC, &water(1, NOW), NOW),
            Err(Reason::BadMac)
        );
    }

    #[test]
    fn seq_must_go_forward_but_a_redelivery_of_the_last_message_passes() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        assert_eq!(run(&mut g, SOS_TOPIC, &sos(5, NOW), NOW), Ok(Verdict::Pass));
        assert_eq!(run(&mut g, SOS_TOPIC, &sos(5, NOW), NOW), Ok(Verdict::Pass));
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(5, NOW + 1), NOW),
            Err(Reason::Replayed)
        );
        assert_eq!(run(&mut g, SOS_TOPIC, &sos(6, NOW), NOW), Ok(Verdict::Pass));
    }

    #[test]
    fn a_message_taken_already_and_sent_again_by_the_broker_is_a_duplicate_not_a_replay() {
        let r = registry();
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        for seq in 1..=10 {
            run(&mut g, SOS_TOPIC, &sos(seq, NOW), NOW).unwrap();
        }
        let again = sos(2, NOW);
        let d = decode(SOS_TOPIC, &again, &r, 4096).unwrap();
        assert_eq!(
            g.check(&d, &again, true, true, NOW),
            Ok(Verdict::Drop {
                reason: "duplicate"
            })
        );
        assert_eq!(
            g.check(&d, &again, true, false, NOW).map_err(|e| e.reason),
            Err(Reason::Replayed),
            "without the broker's flag it is a replay"
        );
        let new = sos(11, NOW);
        let d = decode(SOS_TOPIC, &new, &r, 4096).unwrap();
        assert_eq!(
            g.check(&d, &new, true, true, NOW),
            Ok(Verdict::Pass),
            "a flagged message never taken is taken"
        );
    }

    #[test]
    fn a_number_below_the_mark_never_accepted_passes_once_within_the_window() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(70, NOW), NOW),
            Ok(Verdict::Pass)
        );
        // The reading sent just before the event, taken after it.
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(69, NOW), NOW),
            Ok(Verdict::Pass)
        );
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(69, NOW + 1), NOW),
            Err(Reason::Replayed),
            "the same number again, other bytes"
        );
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(70 - WINDOW, NOW), NOW),
            Ok(Verdict::Pass)
        );
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(69 - WINDOW, NOW), NOW),
            Err(Reason::Replayed),
            "older than the window"
        );
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(200, NOW), NOW),
            Ok(Verdict::Pass)
        );
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(71, NOW), NOW),
            Err(Reason::Replayed),
            "the window moved on"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever order numbers arrive in, none is taken twice with other bytes, and each one
        /// within the window of the highest so far is taken the first time.
        #[test]
        fn no_number_is_taken_twice(seqs in proptest::collection::vec(1u64..300, 1..200)) {
            let r = registry();
            let mut g = Guard::new(limits(), keys(), HashMap::new());
            let mut taken = std::collections::HashSet::new();
            let mut top = 0;
            for (i, seq) in seqs.into_iter().enumerate() {
                let fresh = !taken.contains(&seq) && seq + WINDOW >= top;
                let payload = sos(seq, NOW + i as u64);
                let d = decode(SOS_TOPIC, &payload, &r, 4096).expect("well-formed");
                let verdict = g.check(&d, &payload, true, false, NOW);
                proptest::prop_assert_eq!(verdict.is_ok(), fresh, "seq {} top {}", seq, top);
                if fresh {
                    taken.insert(seq);
                    top = top.max(seq);
                }
            }
        }
    }

    #[test]
    fn messages_just_below_the_mark_sent_again_after_a_reconnect_pass() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        for seq in 1..=6 {
            assert_eq!(
                run(&mut g, SOS_TOPIC, &sos(seq, NOW), NOW),
                Ok(Verdict::Pass)
            );
        }
        for seq in 2..=6 {
            assert_eq!(
                run(&mut g, SOS_TOPIC, &sos(seq, NOW), NOW),
                Ok(Verdict::Pass),
                "{seq} again"
            );
        }
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(1, NOW), NOW),
            Err(Reason::Replayed)
        );
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(4, NOW + 1), NOW),
            Err(Reason::Replayed)
        );
    }

    #[test]
    fn saved_marks_and_the_journal_catch_a_replay_after_a_restart() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        run(&mut g, SOS_TOPIC, &sos(7, NOW), NOW).unwrap();
        let saved: HashMap<String, Mark> = g
            .marks()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut restarted = Guard::new(limits(), keys(), saved);
        let r = registry();
        let later = sos(9, NOW);
        restarted.observe(&decode(SOS_TOPIC, &later, &r, 4096).unwrap(), &later);
        assert_eq!(
            run(&mut restarted, SOS_TOPIC, &sos(7, NOW + 1), NOW),
            Err(Reason::Replayed),
            "at or below a saved mark, every number counts as taken"
        );
        assert_eq!(
            run(&mut restarted, SOS_TOPIC, &sos(6, NOW), NOW),
            Err(Reason::Replayed)
        );
        assert_eq!(
            run(&mut restarted, SOS_TOPIC, &sos(9, NOW), NOW),
            Ok(Verdict::Pass),
            "the journal's last message redelivered"
        );
    }

    #[test]
    fn telemetry_outside_the_clock_window_is_refused_but_an_sos_never_is() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        assert_eq!(
            run(&mut g, MH_TOPIC, &water(1, NOW + 301_000), NOW),
            Err(Reason::ClockSkew)
        );
        assert_eq!(
            run(&mut g, MH_TOPIC, &water(2, NOW - 86_401_000), NOW),
            Err(Reason::ClockSkew)
        );
        assert_eq!(
            run(&mut g, MH_TOPIC, &water(3, NOW - 86_399_000), NOW),
            Ok(Verdict::Pass)
        );
        assert_eq!(
            run(&mut g, SOS_TOPIC, &sos(1, 12_345), NOW),
            Ok(Verdict::Pass),
            "a node that has just booted does not know the time"
        );
    }

    #[test]
    fn a_flood_is_dropped_past_the_burst_reported_and_forgotten_after_a_quiet_minute() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        let verdicts: Vec<Verdict> = (1..=5)
            .map(|seq| run(&mut g, MH_TOPIC, &water(seq, NOW), NOW).unwrap())
            .collect();
        let drop = Verdict::Drop {
            reason: "rate_limited",
        };
        assert_eq!(
            verdicts,
            [Verdict::Pass, Verdict::Pass, Verdict::Pass, drop, drop]
        );
        assert_eq!(
            g.flooding(NOW),
            [Flooding {
                device: "mh-1".into(),
                dropped: 2,
                since_ms: NOW
            }]
        );
        // One token a second comes back.
        assert_eq!(
            run(&mut g, MH_TOPIC, &water(6, NOW), NOW + 1_000),
            Ok(Verdict::Pass)
        );
        assert_eq!(g.flooding(NOW + 59_999).len(), 1);
        assert!(g.flooding(NOW + 60_000).is_empty());
    }

    #[test]
    fn an_sos_is_never_rate_limited() {
        let mut g = Guard::new(limits(), keys(), HashMap::new());
        for seq in 1..=20 {
            assert_eq!(
                run(&mut g, SOS_TOPIC, &sos(seq, NOW), NOW),
                Ok(Verdict::Pass)
            );
        }
    }

    #[test]
    fn keys_must_be_hex_of_a_sensible_length_and_private() {
        assert!(Keys::parse("\"a\" = \"zz\"").unwrap_err().contains("\"a\""));
        assert!(Keys::parse("\"a\" = \"0102\"").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, format!("\"sos-1\" = \"{KEY}\"\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Keys::load(&path).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Keys::load(&path).unwrap().len(), 1);
    }
}
