//! What every kind's loop shares around a [`Node`]: events the node could not take yet, sensor
//! faults, downlink polling and the loop's own counters.
//!
//! Invariants, for every kind:
//! - A step never fails and never panics. Whatever goes wrong is counted in [`LoopStats`] (and in
//!   the node's [`crate::node::Stats`]) and the loop goes on with the next step.
//! - An event the node refused (its retry queue full, no sequence number from the store) waits in
//!   a backlog of [`BACKLOG`] names and is offered again at every step, in order, with the
//!   readings of that step. Only an event arriving at a full backlog is lost, and it is counted
//!   in [`LoopStats::events_lost`].
//! - A sensor read that fails leaves that input out of the step: a digital input keeps its last
//!   level, a measurement is left out of the sample (NaN or `None`, which the detectors ignore)
//!   and of the telemetry. When some sensor has failed at every read for `fault_after_ms`,
//!   the loop raises `tamper` once (a sensor cut off or taken away looks just
//!   like that); a step where every sensor read well re-arms it.
//!
//! A kind's step reads its sensors, runs its detectors, collects the event names with
//! [`Runtime::events`] and ends with [`Runtime::report`]: events out first, then the downlink,
//! telemetry, retries and heartbeats. `loop_accessors!` gives every loop the same `node`,
//! `node_mut` and `stats`, and `BatteryWatch` is the battery read every battery node shares.

use heapless::Deque;

use super::{Command, Config, Node, NodeError, PollError, Telemetry, Transport};
use crate::detect::battery::{Battery, BatteryConfig, BatteryEvent};
use crate::detect::timing::Dwell;
use crate::drivers::analog::BatteryMonitor;
use crate::hal::{AnalogIn, NvStore};
use crate::seq::SeqCounter;
use crate::wire::{EncodeError, Reading};

/// The event a loop raises when a sensor stays unreadable, as the kind catalogue spells it.
pub const TAMPER: &str = "tamper";
/// How many events the node refused may wait for their next try.
pub const BACKLOG: usize = 8;
/// The most downlink commands read in one step, so a flood cannot stall the sensors.
pub const CMDS_PER_STEP: usize = 4;

/// Counters a kind's loop keeps besides the node's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Sensor reads that failed; the step went on without that input.
    pub read_errors: u32,
    /// Writes to an output (LED) that failed; the next step drives it again.
    pub output_errors: u32,
    /// Downlink commands that could not be understood and were dropped.
    pub bad_cmds: u32,
    /// Telemetry or heartbeats that could not be built (no sequence number, encoding).
    pub build_errors: u32,
    /// Events lost because [`BACKLOG`] events already waited.
    pub events_lost: u32,
}

/// A node plus the backlog, fault watch and counters of a kind's loop.
pub struct Runtime<'a> {
    node: Node<'a>,
    backlog: Deque<&'static str, BACKLOG>,
    failing: Dwell,
    stats: LoopStats,
    bare_events: bool,
}

fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

impl<'a> Runtime<'a> {
    /// Wraps `node`; a sensor failing at every step for `fault_after_ms` raises [`TAMPER`].
    pub fn new(node: Node<'a>, fault_after_ms: u64) -> Self {
        Self {
            node,
            backlog: Deque::new(),
            failing: Dwell::new(fault_after_ms),
            stats: LoopStats::default(),
            bare_events: false,
        }
    }

    /// The runtime of a new node of `kind`: `messaging` with its kind set to `kind`, numbering
    /// with `seq`, started at `now_ms`; a sensor failing for `fault_after_ms` raises [`TAMPER`].
    pub fn start(
        kind: &'static str,
        messaging: Config<'a>,
        seq: SeqCounter,
        now_ms: u64,
        fault_after_ms: u64,
    ) -> Result<Self, EncodeError> {
        let node = Node::new(Config { kind, ..messaging }, seq, now_ms)?;
        Ok(Self::new(node, fault_after_ms))
    }

    /// Sends events without the step's readings, the smallest payload there is (the SOS
    /// button's calls must not wait for a byte more than they need).
    pub fn bare_events(mut self) -> Self {
        self.bare_events = true;
        self
    }

    /// The node, for its counters and clock.
    pub fn node(&self) -> &Node<'a> {
        &self.node
    }

    /// The node, to announce it after a (re)connect or set its wall clock.
    pub fn node_mut(&mut self) -> &mut Node<'a> {
        &mut self.node
    }

    /// The loop's counters.
    pub fn stats(&self) -> LoopStats {
        self.stats
    }

    /// Events waiting in the backlog (not yet taken by the node).
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Records the `errors` reads that failed at this step and whether some sensor is failing
    /// now (a sensor read only every so often stays failing until its next good read); true
    /// when [`TAMPER`] should be raised now.
    pub fn sensors(&mut self, now_ms: u64, errors: u32, failing: bool) -> bool {
        self.stats.read_errors = self.stats.read_errors.saturating_add(errors);
        self.failing.update(failing, now_ms)
    }

    /// The names of a step's events: the detectors' `raised`, most urgent first, then
    /// [`TAMPER`] if a sensor has now failed for long enough (see [`Runtime::sensors`]).
    ///
    /// `N` must have room for every event the loop's detectors can raise in one step plus
    /// [`TAMPER`]: each loop spells it as their `Event::ALL` lengths plus one.
    pub fn events<const N: usize>(
        &mut self,
        now_ms: u64,
        raised: impl IntoIterator<Item = &'static str>,
        errors: u32,
        failing: bool,
    ) -> heapless::Vec<&'static str, N> {
        let tamper = self.sensors(now_ms, errors, failing).then_some(TAMPER);
        let mut events = heapless::Vec::new();
        for name in raised.into_iter().chain(tamper) {
            let pushed = events.push(name);
            debug_assert!(pushed.is_ok(), "{name} does not fit the step's events");
        }
        events
    }

    /// Records a failed output write.
    pub fn output_failed(&mut self) {
        bump(&mut self.stats.output_errors);
    }

    /// The end of a step: [`Runtime::publish`]es `events` with `data` (or bare, see
    /// [`Runtime::bare_events`]), reads the downlink into `on_cmd` (a cmd's `ts` sets the clock
    /// even where the kind has no command to act on), offers `data` as telemetry if it holds any
    /// reading, and [`Runtime::tick`]s.
    pub fn report<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        events: &[&'static str],
        data: &[Reading<'a>],
        transport: &mut T,
        store: &mut S,
        on_cmd: impl FnMut(Command<'_>),
    ) {
        let event_data = if self.bare_events { &[] } else { data };
        self.publish(now_ms, events, event_data, transport, store);
        self.poll(now_ms, transport, on_cmd);
        if !data.is_empty() {
            self.telemetry(now_ms, data, transport, store);
        }
        self.tick(now_ms, transport, store);
    }

    /// Offers the backlog and then `events` to the node, in order, each with `data`; returns how
    /// many the node took.
    pub fn publish<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        events: &[&'static str],
        data: &[Reading<'_>],
        transport: &mut T,
        store: &mut S,
    ) -> usize {
        for &name in events {
            if self.backlog.push_back(name).is_err() {
                bump(&mut self.stats.events_lost);
            }
        }
        let mut taken = 0;
        while let Some(&name) = self.backlog.front() {
            if self
                .node
                .event(now_ms, name, data, transport, store)
                .is_err()
            {
                break;
            }
            self.backlog.pop_front();
            taken += 1;
        }
        taken
    }

    /// Offers the step's readings as telemetry (see [`Node::telemetry`]).
    pub fn telemetry<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        data: &[Reading<'a>],
        transport: &mut T,
        store: &mut S,
    ) -> Telemetry {
        self.node
            .telemetry(now_ms, data, transport, store)
            .unwrap_or_else(|_: NodeError<S::Error>| {
                bump(&mut self.stats.build_errors);
                Telemetry::Dropped
            })
    }

    /// Retries the node's queued events and sends its heartbeat when due.
    pub fn tick<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
        store: &mut S,
    ) {
        if self.node.tick(now_ms, transport, store).is_err() {
            bump(&mut self.stats.build_errors);
        }
    }

    /// Reads up to [`CMDS_PER_STEP`] downlink commands and hands each to `on_cmd`.
    pub fn poll<T: Transport>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
        mut on_cmd: impl FnMut(Command<'_>),
    ) {
        for _ in 0..CMDS_PER_STEP {
            match self.node.poll(now_ms, transport) {
                Ok(Some(cmd)) => on_cmd(cmd),
                Ok(None) | Err(PollError::Transport(_)) => return,
                Err(PollError::Cmd(_)) => bump(&mut self.stats.bad_cmds),
            }
        }
    }
}

/// The accessors every kind's loop has, over its `runtime` field: `node`, `node_mut` and
/// `stats`. Expand it inside the loop's `impl<'a, …>` block.
macro_rules! loop_accessors {
    () => {
        /// The node, for its counters and clock.
        pub fn node(&self) -> &$crate::node::Node<'a> {
            self.runtime.node()
        }

        /// The node, to announce it after a (re)connect or set its wall clock.
        pub fn node_mut(&mut self) -> &mut $crate::node::Node<'a> {
            self.runtime.node_mut()
        }

        /// The loop's counters.
        pub fn stats(&self) -> $crate::node::runtime::LoopStats {
            self.runtime.stats()
        }
    };
}
pub(crate) use loop_accessors;

/// A battery read every so often through its divider, with the low-battery detector over it.
pub(crate) struct BatteryWatch {
    low: Battery,
    every_ms: u64,
    next_ms: u64,
    mv: Option<u32>,
    failed: bool,
}

impl BatteryWatch {
    /// A watch with the given thresholds that reads every `every_ms`, first at `now_ms`.
    pub(crate) fn new(config: &BatteryConfig, every_ms: u64, now_ms: u64) -> Self {
        Self {
            low: Battery::new(config),
            every_ms,
            next_ms: now_ms,
            mv: None,
            failed: false,
        }
    }

    /// Reads `monitor` if a read is due at `now_ms`; returns `low_battery` when it is raised.
    /// A failed read adds one to `errors`.
    pub(crate) fn sample<A: AnalogIn>(
        &mut self,
        now_ms: u64,
        monitor: &mut BatteryMonitor<A>,
        errors: &mut u32,
    ) -> Option<BatteryEvent> {
        if now_ms < self.next_ms {
            return None;
        }
        self.next_ms = now_ms.saturating_add(self.every_ms);
        match monitor.read_mv() {
            Ok(mv) => {
                self.failed = false;
                self.mv = Some(mv);
                self.low.step(now_ms, mv as f32 / 1000.0)
            }
            Err(_) => {
                *errors += 1;
                self.failed = true;
                None
            }
        }
    }

    /// Whether the last read failed: the battery counts as failing until its next good read.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The last voltage read, as the `battery_v` reading.
    pub(crate) fn reading(&self) -> Option<Reading<'static>> {
        self.mv.map(|mv| volts("battery_v", mv))
    }
}

/// A number reading rounded to `decimals` places, or nothing for a value that is not finite
/// (a sensor that could not be read).
pub(crate) fn number(name: &'static str, value: f32, decimals: i32) -> Option<Reading<'static>> {
    let scale = libm::pow(10.0, f64::from(decimals));
    let value = libm::round(f64::from(value) * scale) / scale;
    value.is_finite().then_some(Reading {
        name,
        value: crate::wire::Value::Number(value),
    })
}

/// A whole number reading, exactly (a count, a time in ms since the epoch: an `f64` holds every
/// whole number up to 2^53).
pub(crate) fn integer(name: &'static str, value: u64) -> Reading<'static> {
    Reading {
        name,
        value: crate::wire::Value::Number(value as f64),
    }
}

/// A boolean reading.
pub(crate) fn flag(name: &'static str, value: bool) -> Reading<'static> {
    Reading {
        name,
        value: crate::wire::Value::Bool(value),
    }
}

/// Millivolts as volts with three decimals, exactly (3610 mV is 3.61, not 3.6099998…).
pub(crate) fn volts(name: &'static str, mv: u32) -> Reading<'static> {
    Reading {
        name,
        value: crate::wire::Value::Number(f64::from(mv) / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testkit::FakeNet;
    use crate::node::Config;
    use crate::seq::tests::MemStore;
    use crate::seq::SeqCounter;
    use crate::wire::Value;

    fn runtime(store: &mut MemStore) -> Runtime<'static> {
        let node = Node::new(Config::new("sos"), SeqCounter::boot(store, 0).unwrap(), 0).unwrap();
        Runtime::new(node, 10_000)
    }

    fn names(net: &FakeNet) -> Vec<&str> {
        net.events().iter().map(|m| m.event.unwrap()).collect()
    }

    #[test]
    fn events_the_node_cannot_number_wait_in_the_backlog_and_go_out_in_order() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut rt = runtime(&mut store);
        store.fail = true;
        assert_eq!(
            rt.publish(0, &["sos_pressed"], &[], &mut net, &mut store),
            0
        );
        assert_eq!(
            rt.publish(10, &["low_battery"], &[], &mut net, &mut store),
            0
        );
        assert_eq!(rt.backlog(), 2);
        store.fail = false;
        assert_eq!(rt.publish(20, &["tamper"], &[], &mut net, &mut store), 3);
        assert_eq!(names(&net), ["sos_pressed", "low_battery", "tamper"]);
        assert_eq!(rt.backlog(), 0);
        assert_eq!(rt.stats().events_lost, 0);
    }

    #[test]
    fn an_event_arriving_at_a_full_backlog_is_counted_as_lost() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut rt = runtime(&mut store);
        store.fail = true;
        let events = ["sos_pressed"; BACKLOG + 1];
        rt.publish(0, &events, &[], &mut net, &mut store);
        assert_eq!(rt.backlog(), BACKLOG);
        assert_eq!(rt.stats().events_lost, 1);
    }

    #[test]
    fn tamper_is_due_once_after_a_sensor_failed_for_the_whole_hold() {
        let mut rt = runtime(&mut MemStore::default());
        let script = [
            (0, 1, true, false),
            (5_000, 1, true, false),
            (6_000, 0, false, false),
            (7_000, 1, true, false),
            (16_999, 1, true, false),
            (17_000, 1, true, true),
            (30_000, 1, true, false),
        ];
        for (t, errors, failing, want) in script {
            assert_eq!(rt.sensors(t, errors, failing), want, "at {t} ms");
        }
        assert_eq!(rt.stats().read_errors, 6);
    }

    #[test]
    fn bad_commands_are_counted_and_good_ones_after_them_still_read() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut rt = runtime(&mut store);
        net.cmds.push_back(b"not json".to_vec());
        net.cmds
            .push_back(br#"{"v":1,"cmd":"help_coming","alert_id":"a1"}"#.to_vec());
        let mut seen = Vec::new();
        rt.poll(0, &mut net, |cmd| seen.push(format!("{cmd:?}")));
        assert_eq!(seen, [r#"HelpComing { alert_id: "a1", by: None }"#]);
        assert_eq!(rt.stats().bad_cmds, 1);
    }

    #[test]
    fn a_step_reports_its_events_with_the_readings_then_the_telemetry() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut rt = runtime(&mut store);
        let data = [flag("smoke", true)];
        let events = rt.events::<2>(0, ["smoke_detected"], 0, false);
        rt.report(0, &events, &data, &mut net, &mut store, |_| {});
        assert_eq!(
            net.sent.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>(),
            [
                r#"{"v":1,"ts":0,"seq":1,"kind":"sos","event":"smoke_detected","data":{"smoke":true}}"#,
                r#"{"v":1,"ts":0,"seq":2,"kind":"sos","data":{"smoke":true}}"#,
            ]
        );
    }

    #[test]
    fn bare_events_carry_no_readings_and_no_readings_send_no_telemetry() {
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut rt = runtime(&mut store).bare_events();
        rt.report(
            0,
            &["sos_pressed"],
            &[flag("x", true)],
            &mut net,
            &mut store,
            |_| {},
        );
        rt.report(20_000, &["sos_pressed"], &[], &mut net, &mut store, |_| {});
        assert_eq!(
            net.sent.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>(),
            [
                r#"{"v":1,"ts":0,"seq":1,"kind":"sos","event":"sos_pressed","data":{}}"#,
                r#"{"v":1,"ts":0,"seq":2,"kind":"sos","data":{"x":true}}"#,
                r#"{"v":1,"ts":20000,"seq":3,"kind":"sos","event":"sos_pressed","data":{}}"#,
            ]
        );
    }

    #[test]
    fn tamper_comes_after_the_detectors_events() {
        let mut rt = runtime(&mut MemStore::default());
        assert!(rt.events::<2>(0, ["a"], 1, true).len() == 1);
        assert_eq!(rt.events::<2>(10_000, ["a"], 1, true), ["a", TAMPER]);
    }

    #[test]
    fn readings_are_rounded_and_a_missing_value_is_left_out() {
        assert_eq!(
            number("tilt_deg", 14.94, 1).map(|r| r.value),
            Some(Value::Number(14.9))
        );
        assert_eq!(number("water_cm", f32::NAN, 1), None);
        assert_eq!(volts("battery_v", 3_610).value, Value::Number(3.61));
    }
}
