//! The kind-agnostic core of a sensor node's loop: turns detector events and sensor readings into
//! v1 messages and hands them to a [`Transport`]; reads the gateway's downlink commands.
//!
//! A per-kind loop owns the drivers and the detectors, and calls into a [`Node`] with the current
//! monotonic time; the node does no I/O of its own besides the transport and store it is handed,
//! and never reads a clock. The loops, one per kind, each `step(now_ms, transport, store)`:
//!
//! | module | loop | parts |
//! |---|---|---|
//! | [`elevator`] | [`elevator::ElevatorNode`] | eight debounced inputs and a [`elevator::CarMotion`] source |
//! | [`manhole`] | [`manhole::ManholeNode`] | ADXL345 on I2C, cover contact, water, gas and battery ADC inputs; sleeps between samples |
//! | [`fire_passage`] | [`fire_passage::FirePassageNode`] | TFmini-S on a UART (or any [`crate::drivers::Distance`]), fire-door and smoke inputs |
//! | [`sos`] | [`sos::SosNode`] | the button, its LED and the battery |
//! | [`electrical`] | [`electrical::ElectricalNode`] | residual current and cable temperature (any [`crate::drivers::Measure`]), an [`electrical::LineMeter`], the arc detector's [`electrical::PulseCounter`] and the backup battery |
//! | [`parking`] | [`parking::SpaceNode`] and [`parking::GateNode`] | a space: any [`crate::drivers::Distance`] and the battery; the gate: two vehicle loops and the fire lane's presence input |
//! | [`perimeter`] | [`perimeter::PerimeterNode`] | a zone's contact and infrared beam, armed by the node's wall clock |
//!
//! [`runtime`] holds what they share: the event backlog, the sensor-fault watch (`tamper`),
//! their counters and the end of every step ([`runtime::Runtime::report`]). The board's main
//! loop owns the clock, the store and the transport.
//!
//! ```
//! use gridwatch_firmware::hal::NvStore;
//! use gridwatch_firmware::node::{Channel, Config, Delivery, Node, Transport};
//! use gridwatch_firmware::seq::SeqCounter;
//! use gridwatch_firmware::wire::{Reading, Value};
//!
//! struct Net(Vec<(Channel, String)>);
//! impl Transport for Net {
//!     type Error = ();
//!     fn publish(&mut self, channel: Channel, payload: &[u8]) -> Result<(), ()> {
//!         self.0.push((channel, String::from_utf8_lossy(payload).into_owned()));
//!         Ok(())
//!     }
//!     fn poll_cmd(&mut self, _buf: &mut [u8]) -> Result<Option<usize>, ()> {
//!         Ok(None)
//!     }
//! }
//! struct Eeprom(Option<u64>);
//! impl NvStore for Eeprom {
//!     type Error = ();
//!     fn read(&mut self, _slot: u8) -> Result<Option<u64>, ()> { Ok(self.0) }
//!     fn write(&mut self, _slot: u8, value: u64) -> Result<(), ()> { self.0 = Some(value); Ok(()) }
//! }
//!
//! let (mut net, mut eeprom) = (Net(Vec::new()), Eeprom(None));
//! let seq = SeqCounter::boot(&mut eeprom, 0).unwrap();
//! let mut node = Node::new(Config::new("sos"), seq, 0).unwrap();
//! node.set_wall_clock(0, 1_795_000_000_000); // from the RTC, SNTP, or the gateway's next cmd
//! node.announce(&mut net).unwrap();
//! // The loop, every few milliseconds (`now` from hal::Monotonic):
//! let now = 456;
//! let battery = [Reading { name: "battery_v", value: Value::Number(3.61) }];
//! node.telemetry(now, &battery, &mut net, &mut eeprom).unwrap(); // sends when due
//! if let Some(event) = Some("sos_pressed") {                      // a detector's output
//!     assert_eq!(node.event(now, event, &[], &mut net, &mut eeprom), Ok(Delivery::Sent));
//! }
//! node.tick(now, &mut net, &mut eeprom).unwrap(); // retries and heartbeats
//! while let Ok(Some(_cmd)) = node.poll(now, &mut net) { /* show "help is coming" */ }
//! assert_eq!(net.0[2].1, r#"{"v":1,"ts":1795000000456,"seq":2,"kind":"sos","event":"sos_pressed","data":{}}"#);
//! ```
//!
//! Invariants:
//! - Events are never dropped silently: [`Node::event`] either sends the event, queues it for retry
//!   (at most [`EVENT_QUEUE`] of them, resent byte for byte, so with the same `seq` and `mac`), or
//!   returns an error. Telemetry and heartbeats may be dropped; every drop is counted in [`Stats`].
//! - The payloads a transport accepts carry strictly increasing `seq`: nothing else is sent while an
//!   event waits for its retry, so a retried event is never older than what the gateway has seen,
//!   and a retry of something that did arrive is a duplicate `seq` the gateway drops.
//! - `ts` is the wall clock: the monotonic time plus an offset learnt from [`Node::set_wall_clock`]
//!   or from the `ts` of the gateway's latest cmd; before either, it is the monotonic time.
//!
//! Timing: telemetry goes out on the first call, then every `telemetry_period_ms`, or earlier
//! when a reading changed by more than its deadband, but not more often than every
//! `telemetry_min_gap_ms`; a failed attempt counts as an attempt, so a dead link is not hammered.
//! A heartbeat (telemetry with empty `data`) goes out after `heartbeat_ms` without any message.
//! Queued events are retried every `retry_ms`, and at once when a new event comes.

pub mod electrical;
pub mod elevator;
pub mod fire_passage;
pub mod manhole;
pub mod parking;
pub mod perimeter;
pub mod runtime;
pub mod sos;
#[cfg(test)]
pub(crate) mod testkit;

use core::fmt;

use heapless::Deque;

use crate::auth::{self, SignError};
use crate::hal::NvStore;
use crate::seq::{SeqCounter, SeqError};
use crate::wire::{self, EncodeError, Message, Reading, Readings, Value};

/// The largest payload the node builds, signed.
pub const MAX_PAYLOAD: usize = 512;
/// How many events wait for the transport before new ones are refused.
pub const EVENT_QUEUE: usize = 4;
/// The largest downlink cmd payload the node reads.
pub const MAX_CMD: usize = 256;

/// The topic a payload goes to (`gw/v1/{community}/{device}/{channel}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Periodic readings and heartbeats.
    Telemetry,
    /// Detected events (QoS 1: life-safety).
    Event,
    /// `online` / `offline`, retained.
    Status,
}

/// The node's link to the gateway: MQTT, a serial bridge, or a simulator's channel.
pub trait Transport {
    /// The link's error type.
    type Error: fmt::Debug;

    /// Publishes `payload` on `channel`; `Ok` only once the link has taken responsibility for it
    /// (for events over MQTT: the broker's PUBACK).
    fn publish(&mut self, channel: Channel, payload: &[u8]) -> Result<(), Self::Error>;

    /// Copies the next downlink cmd payload into `buf` and returns its length, if one arrived.
    fn poll_cmd(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error>;
}

/// What a node is and how often it speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config<'a> {
    /// The device kind, as the wire format spells it.
    pub kind: &'a str,
    /// The device key; when present every message carries a `mac` (see [`crate::auth`]).
    pub key: Option<&'a [u8]>,
    /// Telemetry goes out at least this often.
    pub telemetry_period_ms: u64,
    /// Telemetry on change goes out at most this often.
    pub telemetry_min_gap_ms: u64,
    /// A heartbeat goes out after this long without any message.
    pub heartbeat_ms: u64,
    /// Queued events are retried this often.
    pub retry_ms: u64,
    /// Per reading, how far a number must move to count as a change; unlisted readings change
    /// on any difference.
    pub deadbands: &'a [(&'a str, f64)],
}

impl<'a> Config<'a> {
    /// A configuration for `kind` with no key, telemetry every 5 minutes and on change at most
    /// every 10 s, a heartbeat after 5 quiet minutes and retries every 2 s.
    pub fn new(kind: &'a str) -> Self {
        Self {
            kind,
            key: None,
            telemetry_period_ms: 300_000,
            telemetry_min_gap_ms: 10_000,
            heartbeat_ms: 300_000,
            retry_ms: 2_000,
            deadbands: &[],
        }
    }
}

/// Counters a node keeps about itself, for its own telemetry or a debug console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events the transport accepted.
    pub events_sent: u32,
    /// Events the node refused (queue full, store or encoding failure); the caller was told.
    pub events_refused: u32,
    /// Telemetry messages the transport accepted.
    pub telemetry_sent: u32,
    /// Telemetry messages dropped because the transport failed or events were waiting.
    pub telemetry_dropped: u32,
    /// Heartbeats the transport accepted.
    pub heartbeats_sent: u32,
    /// Publishes the transport refused, of any kind.
    pub publish_failures: u32,
}

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The transport accepted it.
    Sent,
    /// It waits in the retry queue.
    Queued,
}

/// What became of a telemetry sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Telemetry {
    /// It was due and the transport accepted it.
    Sent,
    /// Neither the period nor a change made it due.
    NotDue,
    /// It was due but could not be sent (counted in [`Stats::telemetry_dropped`]).
    Dropped,
}

/// Why the node could not build a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeError<E> {
    /// No sequence number could be reserved in the store.
    Seq(SeqError<E>),
    /// The message breaks the wire format or does not fit [`MAX_PAYLOAD`].
    Encode(EncodeError),
    /// The message could not be signed.
    Sign(SignError),
    /// More than [`wire::MAX_READINGS`] readings.
    TooManyReadings,
    /// [`EVENT_QUEUE`] events already wait for the transport.
    QueueFull,
}

impl<E: fmt::Debug> fmt::Display for NodeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Seq(e) => write!(f, "no sequence number: {e}"),
            Self::Encode(e) => write!(f, "cannot encode the message: {e}"),
            Self::Sign(e) => write!(f, "cannot sign the message: {e}"),
            Self::TooManyReadings => write!(f, "more than {} readings", wire::MAX_READINGS),
            Self::QueueFull => write!(f, "{EVENT_QUEUE} events already wait for the transport"),
        }
    }
}

/// A downlink command from the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// A worker took the SOS call: show or say "help is coming".
    HelpComing {
        /// The gateway's alert.
        alert_id: &'a str,
        /// The worker's name, if it needed no JSON escapes.
        by: Option<&'a str>,
    },
    /// A command this firmware does not know (from a newer gateway); ignore it.
    Unknown {
        /// The command's name.
        cmd: &'a str,
    },
}

/// A parsed cmd payload: the command and the gateway's clock when it sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Downlink<'a> {
    /// The gateway's `ts`, milliseconds since the Unix epoch.
    pub ts: Option<u64>,
    /// The command.
    pub command: Command<'a>,
}

/// Why a cmd payload could not be understood. `at` is a byte offset into the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdError {
    /// The payload is not UTF-8.
    NotUtf8,
    /// The JSON is malformed here.
    Syntax { at: usize },
    /// `v` names a version this firmware does not speak.
    UnsupportedVersion,
    /// A required field is missing.
    MissingField { field: &'static str },
    /// A field has the wrong type, an escape where none belongs, or a bad number.
    BadField { field: &'static str },
    /// The transport reported a payload longer than [`MAX_CMD`].
    TooLong,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("cmd payload is not UTF-8"),
            Self::Syntax { at } => write!(f, "malformed cmd JSON at byte {at}"),
            Self::UnsupportedVersion => f.write_str("cmd is not format version 1"),
            Self::MissingField { field } => write!(f, "cmd has no `{field}`"),
            Self::BadField { field } => write!(f, "cmd field `{field}` is malformed"),
            Self::TooLong => write!(f, "cmd longer than {MAX_CMD} bytes"),
        }
    }
}

/// Why [`Node::poll`] returned no command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollError<E> {
    /// The transport failed.
    Transport(E),
    /// A cmd arrived but could not be understood; it is dropped.
    Cmd(CmdError),
}

impl<E: fmt::Debug> fmt::Display for PollError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport failed: {e:?}"),
            Self::Cmd(e) => write!(f, "{e}"),
        }
    }
}

enum JsonValue<'a> {
    Str { raw: &'a str, escaped: bool },
    Number(&'a str),
    Other,
}

/// A lenient reader for the gateway's cmd objects: any member order, unknown members skipped.
struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn syntax(&self) -> CmdError {
        CmdError::Syntax { at: self.pos }
    }

    fn expect(&mut self, byte: u8) -> Result<(), CmdError> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    /// A string's raw text between its quotes, escapes left in place.
    fn string(&mut self) -> Result<(&'a str, bool), CmdError> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(c) if c >= 0x20 => self.pos += 1,
                _ => return Err(self.syntax()),
            }
        }
        let raw = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| self.syntax())?;
        self.pos += 1;
        Ok((raw, escaped))
    }

    /// Skips a nested object or array, minding strings that contain brackets.
    fn skip_nested(&mut self) -> Result<(), CmdError> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                    continue;
                }
                Some(b'{' | b'[') => depth += 1,
                Some(b'}' | b']') => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(());
                    }
                }
                Some(_) => {}
                None => return Err(self.syntax()),
            }
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<JsonValue<'a>, CmdError> {
        self.skip_ws();
        let rest = &self.text.as_bytes()[self.pos..];
        match rest.first() {
            Some(b'"') => {
                let (raw, escaped) = self.string()?;
                Ok(JsonValue::Str { raw, escaped })
            }
            Some(b'{' | b'[') => self.skip_nested().map(|()| JsonValue::Other),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.pos += 1;
                }
                Ok(JsonValue::Number(&self.text[start..self.pos]))
            }
            _ => {
                for literal in ["true", "false", "null"] {
                    if rest.starts_with(literal.as_bytes()) {
                        self.pos += literal.len();
                        return Ok(JsonValue::Other);
                    }
                }
                Err(self.syntax())
            }
        }
    }
}

fn plain_str<'a>(v: JsonValue<'a>, field: &'static str) -> Result<&'a str, CmdError> {
    match v {
        JsonValue::Str {
            raw,
            escaped: false,
        } => Ok(raw),
        _ => Err(CmdError::BadField { field }),
    }
}

fn integer(v: JsonValue<'_>, field: &'static str) -> Result<u64, CmdError> {
    match v {
        JsonValue::Number(n) => n.parse().map_err(|_| CmdError::BadField { field }),
        _ => Err(CmdError::BadField { field }),
    }
}

/// Parses the gateway's cmd payload, e.g.
/// `{"alert_id":"a-7f3e","by":"王芳","cmd":"help_coming","ts":1795000000999,"v":1}`.
///
/// Members may come in any order and unknown ones are skipped, so a newer gateway can add some.
pub fn parse_cmd(payload: &[u8]) -> Result<Downlink<'_>, CmdError> {
    let text = core::str::from_utf8(payload).map_err(|_| CmdError::NotUtf8)?;
    let mut s = Scan { text, pos: 0 };
    let (mut version, mut ts, mut cmd, mut alert_id, mut by) = (None, None, None, None, None);
    s.expect(b'{')?;
    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.skip_ws();
            let (key, _) = s.string()?;
            s.expect(b':')?;
            let value = s.value()?;
            match key {
                "v" => version = Some(integer(value, "v")?),
                "ts" => ts = Some(integer(value, "ts")?),
                "cmd" => cmd = Some(plain_str(value, "cmd")?),
                "alert_id" => alert_id = Some(plain_str(value, "alert_id")?),
                "by" => {
                    by = match value {
                        JsonValue::Str {
                            raw,
                            escaped: false,
                        } => Some(raw),
                        // A name that needed escapes is left out rather than shown wrong.
                        JsonValue::Str { escaped: true, .. } => None,
                        _ => return Err(CmdError::BadField { field: "by" }),
                    }
                }
                _ => {}
            }
            s.skip_ws();
            match s.peek() {
                Some(b',') => s.pos += 1,
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                _ => return Err(s.syntax()),
            }
        }
    }
    s.skip_ws();
    if s.pos != text.len() {
        return Err(s.syntax());
    }
    match version {
        Some(wire::VERSION) => {}
        Some(_) => return Err(CmdError::UnsupportedVersion),
        None => return Err(CmdError::MissingField { field: "v" }),
    }
    let command = match cmd.ok_or(CmdError::MissingField { field: "cmd" })? {
        "help_coming" => Command::HelpComing {
            alert_id: alert_id.ok_or(CmdError::MissingField { field: "alert_id" })?,
            by,
        },
        other => Command::Unknown { cmd: other },
    };
    Ok(Downlink { ts, command })
}

/// One encoded event waiting for the transport.
struct Frame {
    len: usize,
    bytes: [u8; MAX_PAYLOAD],
}

/// Builds one v1 message into `out`: the next `seq`, encoded, signed when there is a key.
fn build<S: NvStore>(
    config: &Config<'_>,
    seq: &mut SeqCounter,
    store: &mut S,
    ts: u64,
    event: Option<&str>,
    data: &[Reading<'_>],
    out: &mut [u8],
) -> Result<usize, NodeError<S::Error>> {
    let data = Readings::from_slice(data).map_err(|_| NodeError::TooManyReadings)?;
    let msg = Message {
        ts,
        seq: seq.next(store).map_err(NodeError::Seq)?,
        kind: config.kind,
        event,
        data,
        mac: None,
    };
    let len = wire::encode(&msg, out).map_err(NodeError::Encode)?;
    match config.key {
        Some(key) => auth::sign_in_place(key, out, len).map_err(NodeError::Sign),
        None => Ok(len),
    }
}

fn changed(last: &Readings<'_>, now: &[Reading<'_>], deadbands: &[(&str, f64)]) -> bool {
    last.len() != now.len()
        || now.iter().any(|r| {
            let Some(before) = last.iter().find(|l| l.name == r.name) else {
                return true;
            };
            match (before.value, r.value) {
                (Value::Number(a), Value::Number(b)) => {
                    let band = deadbands
                        .iter()
                        .find(|(name, _)| *name == r.name)
                        .map_or(0.0, |(_, band)| *band);
                    (a - b).abs() > band
                }
                (a, b) => a != b,
            }
        })
}

/// The node's messaging state: sequence, clock offset, event retry queue, telemetry timing.
pub struct Node<'a> {
    config: Config<'a>,
    seq: SeqCounter,
    wall_offset: Option<u64>,
    events: Deque<Frame, EVENT_QUEUE>,
    retry_at: u64,
    last_telemetry: Option<Readings<'a>>,
    telemetry_attempt: Option<u64>,
    quiet_since: u64,
    buf: [u8; MAX_PAYLOAD],
    cmd: [u8; MAX_CMD],
    stats: Stats,
}

impl<'a> Node<'a> {
    /// A node for `config`, numbering messages with `seq`, started at monotonic time `now_ms`.
    pub fn new(config: Config<'a>, seq: SeqCounter, now_ms: u64) -> Result<Self, EncodeError> {
        if !wire::is_name(config.kind) {
            return Err(EncodeError::BadName { field: "kind" });
        }
        Ok(Self {
            config,
            seq,
            wall_offset: None,
            events: Deque::new(),
            retry_at: 0,
            last_telemetry: None,
            telemetry_attempt: None,
            quiet_since: now_ms,
            buf: [0; MAX_PAYLOAD],
            cmd: [0; MAX_CMD],
            stats: Stats::default(),
        })
    }

    /// Sets the wall clock: at monotonic `now_ms` it is `wall_ms` since the Unix epoch.
    pub fn set_wall_clock(&mut self, now_ms: u64, wall_ms: u64) {
        self.wall_offset = Some(wall_ms.saturating_sub(now_ms));
    }

    /// The wall-clock time at monotonic `now_ms`, as messages carry it in `ts`.
    pub fn wall_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.wall_offset.unwrap_or(0))
    }

    /// The wall-clock time at monotonic `now_ms` if the node has learnt it, for what must not
    /// guess (a zone armed by the hour); `None` before the first [`Node::set_wall_clock`] or cmd.
    pub fn known_wall_ms(&self, now_ms: u64) -> Option<u64> {
        self.wall_offset.map(|offset| now_ms.saturating_add(offset))
    }

    /// The node's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// How many events wait for the transport.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Publishes the retained `online` status; call it after every (re)connect.
    pub fn announce<T: Transport>(&mut self, transport: &mut T) -> Result<(), T::Error> {
        transport.publish(Channel::Status, b"online")
    }

    /// Sends the queued events in order until the transport refuses one.
    fn flush<T: Transport>(&mut self, now_ms: u64, transport: &mut T) {
        while let Some(frame) = self.events.front() {
            if transport
                .publish(Channel::Event, &frame.bytes[..frame.len])
                .is_err()
            {
                self.stats.publish_failures = self.stats.publish_failures.saturating_add(1);
                self.retry_at = now_ms.saturating_add(self.config.retry_ms);
                return;
            }
            self.events.pop_front();
            self.stats.events_sent = self.stats.events_sent.saturating_add(1);
            self.quiet_since = now_ms;
        }
    }

    /// Sends the event `name` detected at `now_ms`, with `data` as context, now or from the
    /// retry queue. An error means the event was not taken; the caller still holds it.
    pub fn event<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        name: &str,
        data: &[Reading<'_>],
        transport: &mut T,
        store: &mut S,
    ) -> Result<Delivery, NodeError<S::Error>> {
        if self.events.is_full() {
            self.flush(now_ms, transport);
        }
        if let Err(e) = self.enqueue(now_ms, name, data, store) {
            self.stats.events_refused = self.stats.events_refused.saturating_add(1);
            return Err(e);
        }
        self.flush(now_ms, transport);
        Ok(if self.events.is_empty() {
            Delivery::Sent
        } else {
            Delivery::Queued
        })
    }

    /// Builds the event into a new frame at the back of the queue; room is checked first so a
    /// full queue costs no sequence number.
    fn enqueue<S: NvStore>(
        &mut self,
        now_ms: u64,
        name: &str,
        data: &[Reading<'_>],
        store: &mut S,
    ) -> Result<(), NodeError<S::Error>> {
        if self.events.is_full() {
            return Err(NodeError::QueueFull);
        }
        let mut frame = Frame {
            len: 0,
            bytes: [0; MAX_PAYLOAD],
        };
        let ts = self.wall_ms(now_ms);
        frame.len = build(
            &self.config,
            &mut self.seq,
            store,
            ts,
            Some(name),
            data,
            &mut frame.bytes,
        )?;
        self.events
            .push_back(frame)
            .map_err(|_| NodeError::QueueFull)
    }

    /// Offers the current readings; they go out if the period elapsed or one of them changed
    /// (see the module header for the timing).
    pub fn telemetry<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        data: &[Reading<'a>],
        transport: &mut T,
        store: &mut S,
    ) -> Result<Telemetry, NodeError<S::Error>> {
        let due = match self.telemetry_attempt {
            None => true,
            Some(at) => {
                let gap = now_ms.saturating_sub(at);
                gap >= self.config.telemetry_period_ms
                    || (gap >= self.config.telemetry_min_gap_ms
                        && self
                            .last_telemetry
                            .as_ref()
                            .is_none_or(|last| changed(last, data, self.config.deadbands)))
            }
        };
        if !due {
            return Ok(Telemetry::NotDue);
        }
        self.telemetry_attempt = Some(now_ms);
        if self.send_plain(now_ms, data, transport, store)? {
            self.stats.telemetry_sent = self.stats.telemetry_sent.saturating_add(1);
            // `send_plain` encoded `data`, so it holds at most MAX_READINGS.
            self.last_telemetry = Readings::from_slice(data).ok();
            Ok(Telemetry::Sent)
        } else {
            self.stats.telemetry_dropped = self.stats.telemetry_dropped.saturating_add(1);
            Ok(Telemetry::Dropped)
        }
    }

    /// Retries queued events when their retry is due and sends a heartbeat after a quiet spell.
    pub fn tick<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
        store: &mut S,
    ) -> Result<(), NodeError<S::Error>> {
        if now_ms.saturating_sub(self.quiet_since) < self.config.heartbeat_ms {
            if !self.events.is_empty() && now_ms >= self.retry_at {
                self.flush(now_ms, transport);
            }
            return Ok(());
        }
        // Even a failed heartbeat restarts the quiet spell: a dead link gets one try per period.
        self.quiet_since = now_ms;
        if self.send_plain(now_ms, &[], transport, store)? {
            self.stats.heartbeats_sent = self.stats.heartbeats_sent.saturating_add(1);
        }
        Ok(())
    }

    /// Sends telemetry (or a heartbeat, with no data) unless events wait; true if it went out.
    fn send_plain<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        data: &[Reading<'_>],
        transport: &mut T,
        store: &mut S,
    ) -> Result<bool, NodeError<S::Error>> {
        if !self.events.is_empty() && now_ms >= self.retry_at {
            self.flush(now_ms, transport);
        }
        if !self.events.is_empty() {
            // Sending now would put a higher seq on the wire ahead of a waiting event.
            return Ok(false);
        }
        let ts = self.wall_ms(now_ms);
        let len = build(
            &self.config,
            &mut self.seq,
            store,
            ts,
            None,
            data,
            &mut self.buf,
        )?;
        if transport
            .publish(Channel::Telemetry, &self.buf[..len])
            .is_err()
        {
            self.stats.publish_failures = self.stats.publish_failures.saturating_add(1);
            return Ok(false);
        }
        self.quiet_since = now_ms;
        Ok(true)
    }

    /// Reads one downlink cmd, if one arrived, and learns the wall clock from its `ts`.
    pub fn poll<T: Transport>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
    ) -> Result<Option<Command<'_>>, PollError<T::Error>> {
        let Some(len) = transport
            .poll_cmd(&mut self.cmd)
            .map_err(PollError::Transport)?
        else {
            return Ok(None);
        };
        let payload = self
            .cmd
            .get(..len)
            .ok_or(PollError::Cmd(CmdError::TooLong))?;
        let downlink = parse_cmd(payload).map_err(PollError::Cmd)?;
        if let Some(ts) = downlink.ts {
            self.wall_offset = Some(ts.saturating_sub(now_ms));
        }
        Ok(Some(downlink.command))
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::FakeNet;
    use super::*;
    use crate::seq::tests::MemStore;
    use proptest::prelude::*;

    const WALL: u64 = 1_795_000_000_000;
    const KEY: &[u8] = b"yg-sos-0001 device key, 32 bytes";

    fn node(config: Config<'static>, store: &mut MemStore) -> Node<'static> {
        let mut node = Node::new(config, SeqCounter::boot(store, 0).unwrap(), 0).unwrap();
        node.set_wall_clock(0, WALL);
        node
    }

    fn seqs(net: &FakeNet) -> Vec<u64> {
        net.sent
            .iter()
            .filter(|(c, _)| *c != Channel::Status)
            .map(|(_, p)| wire::decode(p.as_bytes()).unwrap().seq)
            .collect()
    }

    fn battery(v: f64) -> [Reading<'static>; 1] {
        [Reading {
            name: "battery_v",
            value: Value::Number(v),
        }]
    }

    #[test]
    fn an_event_goes_out_at_once_as_exact_bytes() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(Config::new("sos"), &mut store);
        node.announce(&mut net).unwrap();
        assert_eq!(
            node.event(456, "sos_pressed", &[], &mut net, &mut store),
            Ok(Delivery::Sent)
        );
        assert_eq!(
            net.sent,
            [
                (Channel::Status, "online".to_string()),
                (
                    Channel::Event,
                    r#"{"v":1,"ts":1795000000456,"seq":1,"kind":"sos","event":"sos_pressed","data":{}}"#
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_node_with_a_key_signs_what_it_sends() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(
            Config {
                key: Some(KEY),
                ..Config::new("sos")
            },
            &mut store,
        );
        node.event(456, "sos_pressed", &[], &mut net, &mut store)
            .unwrap();
        node.telemetry(500, &battery(3.61), &mut net, &mut store)
            .unwrap();
        let sent: Vec<&str> = net.sent.iter().map(|(_, p)| p.as_str()).collect();
        // The mac computed independently, with Python's hmac over the payload without it.
        assert_eq!(
            sent[0],
            r#"{"v":1,"ts":1795000000456,"seq":1,"kind":"sos","event":"sos_pressed","data":{},"mac":"6905a235971b7f1908936913c1f45c1bd6f058a9b942c4c2dda8646d9f62c49c"}"#
        );
        assert!(sent[1].starts_with(
            r#"{"v":1,"ts":1795000000500,"seq":2,"kind":"sos","data":{"battery_v":3.61},"mac":""#
        ));
        for payload in sent {
            assert_eq!(auth::verify(KEY, payload.as_bytes()), Ok(()));
        }
    }

    #[test]
    fn an_event_is_retried_with_the_same_bytes_after_a_transport_failure() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(Config::new("sos"), &mut store);
        net.down = true;
        assert_eq!(
            node.event(1_000, "sos_pressed", &[], &mut net, &mut store),
            Ok(Delivery::Queued)
        );
        assert_eq!(node.pending_events(), 1);
        net.down = false;
        node.tick(2_999, &mut net, &mut store).unwrap();
        assert_eq!(net.attempts, 1, "no retry before retry_ms");
        node.tick(3_000, &mut net, &mut store).unwrap();
        assert_eq!(
            net.sent,
            [(
                Channel::Event,
                r#"{"v":1,"ts":1795000001000,"seq":1,"kind":"sos","event":"sos_pressed","data":{}}"#
                    .to_string()
            )]
        );
        assert_eq!(node.pending_events(), 0);
        node.telemetry(3_000, &battery(3.6), &mut net, &mut store)
            .unwrap();
        assert_eq!(seqs(&net), [1, 2]);
        assert_eq!(node.stats().publish_failures, 1);
        assert_eq!(node.stats().events_sent, 1);
    }

    #[test]
    fn telemetry_waits_behind_a_queued_event_and_is_dropped_without_a_seq() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(Config::new("sos"), &mut store);
        net.down = true;
        node.event(0, "sos_pressed", &[], &mut net, &mut store)
            .unwrap();
        net.down = false;
        assert_eq!(
            node.telemetry(1_000, &battery(3.6), &mut net, &mut store),
            Ok(Telemetry::Dropped)
        );
        assert!(net.sent.is_empty());
        assert_eq!(node.stats().telemetry_dropped, 1);
        node.tick(2_000, &mut net, &mut store).unwrap();
        node.telemetry(12_000, &battery(3.5), &mut net, &mut store)
            .unwrap();
        assert_eq!(seqs(&net), [1, 2]);
    }

    #[test]
    fn a_full_queue_refuses_new_events_without_spending_a_seq() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(Config::new("sos"), &mut store);
        net.down = true;
        for _ in 0..EVENT_QUEUE {
            assert_eq!(
                node.event(0, "sos_pressed", &[], &mut net, &mut store),
                Ok(Delivery::Queued)
            );
        }
        assert_eq!(
            node.event(0, "sos_cancelled", &[], &mut net, &mut store),
            Err(NodeError::QueueFull)
        );
        assert_eq!(node.stats().events_refused, 1);
        net.down = false;
        assert_eq!(
            node.event(10, "sos_cancelled", &[], &mut net, &mut store),
            Ok(Delivery::Sent)
        );
        assert_eq!(seqs(&net), [1, 2, 3, 4, 5]);
        assert!(net.sent[4].1.contains("sos_cancelled"));
    }

    #[test]
    fn an_event_the_store_cannot_number_is_refused() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(Config::new("sos"), &mut store);
        store.fail = true;
        assert!(matches!(
            node.event(0, "sos_pressed", &[], &mut net, &mut store),
            Err(NodeError::Seq(SeqError::Store(_)))
        ));
        assert_eq!(node.stats().events_refused, 1);
        assert!(net.sent.is_empty());
    }

    #[test]
    fn telemetry_goes_out_periodically_and_on_change_beyond_the_deadband() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(
            Config {
                telemetry_period_ms: 60_000,
                telemetry_min_gap_ms: 1_000,
                deadbands: &[("battery_v", 0.05)],
                ..Config::new("sos")
            },
            &mut store,
        );
        let script = [
            (0, 3.60, Telemetry::Sent),
            (500, 3.30, Telemetry::NotDue),
            (1_000, 3.60, Telemetry::NotDue),
            (1_500, 3.50, Telemetry::Sent),
            (2_600, 3.54, Telemetry::NotDue),
            (3_000, 3.45, Telemetry::NotDue),
            (3_100, 3.44, Telemetry::Sent),
            (63_099, 3.44, Telemetry::NotDue),
            (63_100, 3.44, Telemetry::Sent),
        ];
        for (now, v, want) in script {
            assert_eq!(
                node.telemetry(now, &battery(v), &mut net, &mut store),
                Ok(want),
                "at {now} ms"
            );
        }
        let ts: Vec<u64> = net
            .sent
            .iter()
            .map(|(_, p)| wire::decode(p.as_bytes()).unwrap().ts - WALL)
            .collect();
        assert_eq!(ts, [0, 1_500, 3_100, 63_100]);
        assert_eq!(seqs(&net), [1, 2, 3, 4]);
    }

    #[test]
    fn a_failed_telemetry_is_retried_only_after_the_minimum_gap() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(
            Config {
                telemetry_min_gap_ms: 1_000,
                ..Config::new("sos")
            },
            &mut store,
        );
        net.down = true;
        assert_eq!(
            node.telemetry(0, &battery(3.6), &mut net, &mut store),
            Ok(Telemetry::Dropped)
        );
        net.down = false;
        assert_eq!(
            node.telemetry(999, &battery(3.6), &mut net, &mut store),
            Ok(Telemetry::NotDue)
        );
        assert_eq!(
            node.telemetry(1_000, &battery(3.6), &mut net, &mut store),
            Ok(Telemetry::Sent)
        );
        assert_eq!(seqs(&net), [2], "the failed attempt spent seq 1");
    }

    #[test]
    fn a_heartbeat_goes_out_after_a_quiet_spell() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = node(Config::new("sos"), &mut store);
        node.tick(299_999, &mut net, &mut store).unwrap();
        assert!(net.sent.is_empty());
        node.tick(300_000, &mut net, &mut store).unwrap();
        assert_eq!(
            net.sent,
            [(
                Channel::Telemetry,
                r#"{"v":1,"ts":1795000300000,"seq":1,"kind":"sos","data":{}}"#.to_string()
            )]
        );
        node.event(400_000, "sos_pressed", &[], &mut net, &mut store)
            .unwrap();
        node.tick(699_999, &mut net, &mut store).unwrap();
        assert_eq!(net.sent.len(), 2, "the event restarted the quiet spell");
        node.tick(700_000, &mut net, &mut store).unwrap();
        assert_eq!(seqs(&net), [1, 2, 3]);
        assert_eq!(node.stats().heartbeats_sent, 2);
    }

    #[test]
    fn help_coming_from_the_gateway_is_parsed_and_sets_the_clock() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = Node::new(
            Config::new("sos"),
            SeqCounter::boot(&mut store, 0).unwrap(),
            0,
        )
        .unwrap();
        // What the gateway's alerts::desk sends: serde_json with its keys in sorted order.
        let sent = serde_json::json!({"v": 1, "ts": 1_795_000_000_999u64, "cmd": "help_coming", "alert_id": "a-7f3e", "by": "王芳"});
        assert_eq!(node.known_wall_ms(4_000), None);
        assert_eq!(
            node.wall_ms(4_000),
            4_000,
            "the monotonic time until it knows"
        );
        net.cmds.push_back(sent.to_string().into_bytes());
        assert_eq!(
            node.poll(5_000, &mut net),
            Ok(Some(Command::HelpComing {
                alert_id: "a-7f3e",
                by: Some("王芳")
            }))
        );
        assert_eq!(node.poll(5_000, &mut net), Ok(None));
        assert_eq!(node.wall_ms(6_000), 1_795_000_001_999);
        assert_eq!(node.known_wall_ms(6_000), Some(1_795_000_001_999));
    }

    #[test]
    fn cmd_payloads_are_read_leniently_but_not_blindly() {
        fn ok(s: &str) -> Result<Downlink<'_>, CmdError> {
            parse_cmd(s.as_bytes())
        }
        assert_eq!(
            ok(r#" { "cmd" : "config", "x": {"a":[1,"]}"]}, "n": null, "v":1 } "#),
            Ok(Downlink {
                ts: None,
                command: Command::Unknown { cmd: "config" }
            })
        );
        assert_eq!(
            ok(r#"{"v":1,"cmd":"help_coming","alert_id":"a1","by":"\"Li\""}"#),
            Ok(Downlink {
                ts: None,
                command: Command::HelpComing {
                    alert_id: "a1",
                    by: None
                }
            })
        );
        let cases = [
            (r#"{"v":2,"cmd":"x"}"#, CmdError::UnsupportedVersion),
            (r#"{"cmd":"x"}"#, CmdError::MissingField { field: "v" }),
            (r#"{"v":1}"#, CmdError::MissingField { field: "cmd" }),
            (
                r#"{"v":1,"cmd":"help_coming"}"#,
                CmdError::MissingField { field: "alert_id" },
            ),
            (
                r#"{"v":1,"ts":-5,"cmd":"x"}"#,
                CmdError::BadField { field: "ts" },
            ),
            (
                r#"{"v":1,"cmd":"help\u005fcoming"}"#,
                CmdError::BadField { field: "cmd" },
            ),
            (r#"{"v":1,"cmd":"x"} {"#, CmdError::Syntax { at: 18 }),
            (r#"{"v":1,"cmd":"x""#, CmdError::Syntax { at: 16 }),
            (r#"{"v":1,"cmd":tru}"#, CmdError::Syntax { at: 13 }),
        ];
        for (input, want) in cases {
            assert_eq!(ok(input), Err(want), "{input}");
        }
        assert_eq!(
            parse_cmd(b"{\"v\":1,\"cmd\":\"\xff\"}"),
            Err(CmdError::NotUtf8)
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Event,
        Telemetry(f64),
        Tick,
        Wait(u64),
        Link(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Event),
            (3.0f64..4.0).prop_map(Op::Telemetry),
            Just(Op::Tick),
            (0u64..5_000).prop_map(Op::Wait),
            any::<bool>().prop_map(Op::Link),
        ]
    }

    proptest! {
        /// The conservation oracle: every event the node took arrives exactly once, and what the
        /// transport accepted has strictly increasing seq.
        #[test]
        fn every_accepted_event_arrives_once_and_seq_only_goes_up(ops in prop::collection::vec(op(), 0..200)) {
            let (mut net, mut store) = (FakeNet::default(), MemStore::default());
            let mut node = node(Config { key: Some(KEY), ..Config::new("sos") }, &mut store);
            let (mut now, mut taken) = (0u64, 0usize);
            for op in ops {
                match op {
                    Op::Event => {
                        if node.event(now, "sos_pressed", &[], &mut net, &mut store).is_ok() {
                            taken += 1;
                        }
                    }
                    Op::Telemetry(v) => {
                        node.telemetry(now, &battery(v), &mut net, &mut store).unwrap();
                    }
                    Op::Tick => node.tick(now, &mut net, &mut store).unwrap(),
                    Op::Wait(ms) => now += ms,
                    Op::Link(up) => net.down = !up,
                }
            }
            net.down = false;
            now += 2_000;
            node.tick(now, &mut net, &mut store).unwrap();
            let delivered = net.sent.iter().filter(|(c, _)| *c == Channel::Event).count();
            prop_assert_eq!(delivered, taken);
            prop_assert_eq!(node.stats().events_sent as usize, taken);
            let seqs = seqs(&net);
            prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{:?}", seqs);
            for (_, payload) in &net.sent {
                prop_assert_eq!(auth::verify(KEY, payload.as_bytes()), Ok(()));
            }
        }

        #[test]
        fn any_cmd_bytes_are_parsed_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_cmd(&bytes);
        }

        #[test]
        fn help_coming_as_serde_json_writes_it_is_understood(
            alert_id in "[A-Za-z0-9_-]{1,40}",
            by in any::<String>(),
            ts in any::<u64>(),
            extra in prop::collection::btree_map("[a-z_]{1,8}", any::<i32>(), 0..4),
        ) {
            let mut obj = serde_json::json!({"v": 1, "ts": ts, "cmd": "help_coming", "alert_id": alert_id, "by": by});
            for (k, v) in &extra {
                if obj.get(k).is_none() {
                    obj[k] = serde_json::json!({"nested": [v, "}"]});
                }
            }
            let text = obj.to_string();
            let got = parse_cmd(text.as_bytes()).unwrap();
            let plain = !serde_json::to_string(&by).unwrap()[1..].contains('\\');
            prop_assert_eq!(got, Downlink {
                ts: Some(ts),
                command: Command::HelpComing { alert_id: &alert_id, by: plain.then_some(by.as_str()) },
            });
        }
    }
}
