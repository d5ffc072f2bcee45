//! The parking loops, two nodes of the one `parking` kind: a battery sensor over each space
//! ([`SpaceNode`]) and a box at the gate ([`GateNode`]) that counts vehicles and watches the
//! fire lane.
//!
//! A space node:
//!
//! | part | connection | notes |
//! |---|---|---|
//! | distance | any [`Distance`]: a TFmini-S on a UART ([`Tfmini`]), an ultrasonic or radar ranger | on the ceiling over the space looking down, or in the ground looking up ([`Mounting`]) |
//! | battery | an ADC pin behind a divider, as [`BatteryMonitor`] | read every [`SpaceNodeConfig::battery_every_ms`] |
//!
//! Call [`SpaceNode::step`] every second or so (a vehicle must stay 5 s to count). A step
//! measures the distance, runs [`Space`], reads the battery when due, and offers `occupied`,
//! `occupied_since_ts` (the wall-clock time the vehicle arrived, while there is one) and
//! `battery_v` as telemetry: every 5 minutes (the kind's `report_every_secs`), or on a change
//! at most every 10 s. Events: `low_battery`, `tamper`. A distance read that fails changes
//! nothing (a ground sensor's missing return is not a failure, it means no vehicle).
//!
//! A gate node:
//!
//! | part | connection | notes |
//! |---|---|---|
//! | loop A, loop B | two vehicle-loop detectors' relay outputs (or two beams) across the lane, as [`DebouncedInput`]s (active = vehicle) | A on the outside: a vehicle coming in meets A first; 50 ms debounce |
//! | fire lane | a camera box's zone output or a ground loop in the fire lane, as a [`DebouncedInput`] (active = vehicle) | |
//!
//! Call [`GateNode::step`] every 20–100 ms, so the loops' order is seen. A step reads the three
//! inputs, runs [`Gate`], publishes `fire_lane_blocked` at once with the step's readings, and
//! offers `vehicles_in`, `vehicles_out` (counts since the node started), `fire_lane_occupied`
//! and `fire_lane_dwell_s` as telemetry: every 5 minutes, or on a change (the dwell by more than
//! 60 s) at most every 10 s. An input that cannot be read keeps its last level.
//!
//! [`Tfmini`]: crate::drivers::tfmini::Tfmini
//! [`Mounting`]: crate::detect::parking::Mounting

use embedded_hal::digital::InputPin;

use super::runtime::{flag, integer, loop_accessors, BatteryWatch, Runtime};
use super::{Config, Transport};
use crate::detect::battery::{BatteryConfig, BatteryEvent};
use crate::detect::parking::{Gate, GateConfig, GateSample, ParkingEvent, Space, SpaceConfig};
use crate::detect::Event;
use crate::drivers::analog::BatteryMonitor;
use crate::drivers::input::DebouncedInput;
use crate::drivers::Distance;
use crate::hal::{AnalogIn, NvStore};
use crate::seq::SeqCounter;
use crate::wire::{EncodeError, Reading};

/// The kind, as the catalogue spells it.
pub const KIND: &str = "parking";

/// The messaging configuration of both parking nodes: telemetry and heartbeat every 5 minutes
/// (the kind's `report_every_secs` is 300), on change at most every 10 s: the battery by more
/// than 0.05 V, the fire lane's dwell by more than 60 s.
pub fn config(key: Option<&[u8]>) -> Config<'_> {
    Config {
        key,
        telemetry_period_ms: 300_000,
        heartbeat_ms: 300_000,
        deadbands: &[("battery_v", 0.05), ("fire_lane_dwell_s", 60.0)],
        ..Config::new(KIND)
    }
}

/// Timings of a space node's loop. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceNodeConfig {
    /// The space's thresholds.
    pub space: SpaceConfig,
    /// The low-battery thresholds.
    pub battery: BatteryConfig,
    /// How often the battery is read, in ms. Default 60 s: it changes over months.
    pub battery_every_ms: u64,
    /// How long a read must keep failing before `tamper`, in ms. Default 60 s.
    pub fault_after_ms: u64,
}

impl Default for SpaceNodeConfig {
    /// The defaults: see each field.
    fn default() -> Self {
        Self {
            space: SpaceConfig::default(),
            battery: BatteryConfig::default(),
            battery_every_ms: 60_000,
            fault_after_ms: 60_000,
        }
    }
}

/// The parts a space node is built from.
pub struct SpaceParts<D, A> {
    /// The distance sensor over (or under) the space.
    pub distance: D,
    /// The battery.
    pub battery: BatteryMonitor<A>,
}

/// A parking-space node: its parts, its detectors and its [`Runtime`].
pub struct SpaceNode<'a, D, A> {
    parts: SpaceParts<D, A>,
    runtime: Runtime<'a>,
    space: Space,
    battery: BatteryWatch,
}

impl<'a, D: Distance, A: AnalogIn> SpaceNode<'a, D, A> {
    /// A node over `parts`, numbering with `seq`, started at `now_ms`. `messaging.kind` is set
    /// to [`KIND`]; start from [`config`].
    pub fn new(
        messaging: Config<'a>,
        seq: SeqCounter,
        parts: SpaceParts<D, A>,
        config: &SpaceNodeConfig,
        now_ms: u64,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            parts,
            runtime: Runtime::start(KIND, messaging, seq, now_ms, config.fault_after_ms)?,
            space: Space::new(&config.space),
            battery: BatteryWatch::new(&config.battery, config.battery_every_ms, now_ms),
        })
    }

    /// One turn of the loop at `now_ms` (see the module header).
    pub fn step<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
        store: &mut S,
    ) {
        let mut errors = 0u32;
        match self.parts.distance.read_cm() {
            Ok(cm) => {
                self.space.step(now_ms, cm.map(f32::from));
            }
            Err(_) => errors += 1,
        }
        let distance_failed = errors > 0;
        let low = self
            .battery
            .sample(now_ms, &mut self.parts.battery, &mut errors);
        let failing = distance_failed || self.battery.failed();
        let events = self.runtime.events::<{ BatteryEvent::ALL.len() + 1 }>(
            now_ms,
            low.iter().map(Event::name),
            errors,
            failing,
        );

        let node = self.runtime.node();
        let since = self.space.occupied_since_ms();
        let readings = [
            Some(flag("occupied", self.space.occupied())),
            since.map(|ms| integer("occupied_since_ts", node.wall_ms(ms))),
            self.battery.reading(),
        ];
        let data: heapless::Vec<Reading<'static>, 3> = readings.into_iter().flatten().collect();
        self.runtime
            .report(now_ms, &events, &data, transport, store, |_| {});
    }

    /// Whether a vehicle is in the space.
    pub fn occupied(&self) -> bool {
        self.space.occupied()
    }

    loop_accessors!();

    /// Gives the parts back.
    pub fn release(self) -> SpaceParts<D, A> {
        self.parts
    }
}

/// Timings of a gate node's loop. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct GateNodeConfig {
    /// The gate's timings.
    pub gate: GateConfig,
    /// How long a read must keep failing before `tamper`, in ms. Default 60 s.
    pub fault_after_ms: u64,
}

impl Default for GateNodeConfig {
    /// The defaults: see each field.
    fn default() -> Self {
        Self {
            gate: GateConfig::default(),
            fault_after_ms: 60_000,
        }
    }
}

/// The parts a gate node is built from.
pub struct GateParts<P> {
    /// Loop A, the outer one (active = vehicle).
    pub loop_a: DebouncedInput<P>,
    /// Loop B, the inner one (active = vehicle).
    pub loop_b: DebouncedInput<P>,
    /// The fire lane's presence input (active = vehicle).
    pub fire_lane: DebouncedInput<P>,
}

/// A parking gate node: its parts, its detector and its [`Runtime`].
pub struct GateNode<'a, P> {
    parts: GateParts<P>,
    runtime: Runtime<'a>,
    gate: Gate,
}

impl<'a, P: InputPin> GateNode<'a, P> {
    /// A node over `parts`, numbering with `seq`, started at `now_ms`. `messaging.kind` is set
    /// to [`KIND`]; start from [`config`].
    pub fn new(
        messaging: Config<'a>,
        seq: SeqCounter,
        parts: GateParts<P>,
        config: &GateNodeConfig,
        now_ms: u64,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            parts,
            runtime: Runtime::start(KIND, messaging, seq, now_ms, config.fault_after_ms)?,
            gate: Gate::new(&config.gate),
        })
    }

    /// One turn of the loop at `now_ms` (see the module header).
    pub fn step<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
        store: &mut S,
    ) {
        let mut errors = 0u32;
        let p = &mut self.parts;
        for input in [&mut p.loop_a, &mut p.loop_b, &mut p.fire_lane] {
            if input.sample(now_ms).is_err() {
                errors += 1;
            }
        }
        let sample = GateSample {
            loop_a: p.loop_a.is_active(),
            loop_b: p.loop_b.is_active(),
            fire_lane: p.fire_lane.is_active(),
        };
        let raised = self.gate.step(now_ms, &sample);
        let events = self.runtime.events::<{ ParkingEvent::ALL.len() + 1 }>(
            now_ms,
            raised.iter().map(Event::name),
            errors,
            errors > 0,
        );

        let g = &self.gate;
        let data = [
            integer("vehicles_in", u64::from(g.vehicles_in())),
            integer("vehicles_out", u64::from(g.vehicles_out())),
            flag("fire_lane_occupied", g.fire_lane_occupied()),
            integer("fire_lane_dwell_s", g.fire_lane_dwell_ms(now_ms) / 1_000),
        ];
        self.runtime
            .report(now_ms, &events, &data, transport, store, |_| {});
    }

    /// Vehicles that drove in since the node started.
    pub fn vehicles_in(&self) -> u32 {
        self.gate.vehicles_in()
    }

    /// Vehicles that drove out since the node started.
    pub fn vehicles_out(&self) -> u32 {
        self.gate.vehicles_out()
    }

    loop_accessors!();

    /// Gives the parts back.
    pub fn release(self) -> GateParts<P> {
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use core::num::NonZeroU32;

    use super::*;
    use crate::drivers::analog::Divider;
    use crate::drivers::Polarity;
    use crate::node::testkit::{Adc, FakeNet, Pin, Source};
    use crate::node::Channel;
    use crate::seq::tests::MemStore;
    use crate::wire::Value;

    const WALL: u64 = 1_795_000_000_000;

    struct SpaceRig {
        ruler: Source<Option<u16>>,
        adc: Adc,
        net: FakeNet,
        store: MemStore,
        node: SpaceNode<'static, Source<Option<u16>>, Adc>,
    }

    fn space_rig() -> SpaceRig {
        let (ruler, adc) = (Source::at(Some(250)), Adc::at(3_600));
        let parts = SpaceParts {
            distance: ruler.clone(),
            battery: BatteryMonitor::new(adc.clone(), Divider::new(0, NonZeroU32::MIN)),
        };
        let mut store = MemStore::default();
        let seq = SeqCounter::boot(&mut store, 0).unwrap();
        let mut node =
            SpaceNode::new(config(None), seq, parts, &SpaceNodeConfig::default(), 0).unwrap();
        node.node_mut().set_wall_clock(0, WALL);
        SpaceRig {
            ruler,
            adc,
            net: FakeNet::default(),
            store,
            node,
        }
    }

    impl SpaceRig {
        fn step(&mut self, now: u64) {
            self.node.step(now, &mut self.net, &mut self.store);
        }
    }

    #[test]
    fn a_car_parking_is_reported_with_the_time_it_arrived_and_a_passer_by_is_not() {
        let mut r = space_rig();
        for t in (0..=30_000).step_by(1_000) {
            r.ruler.set(Some(match t {
                3_000..=4_000 => 80, // someone walks under
                12_000.. => 110,     // a car's roof
                _ => 250,
            }));
            r.step(t);
        }
        assert!(r.node.occupied());
        assert_eq!(
            r.net.on(Channel::Telemetry),
            [
                r#"{"v":1,"ts":1795000000000,"seq":1,"kind":"parking","data":{"occupied":false,"battery_v":3.6}}"#,
                r#"{"v":1,"ts":1795000017000,"seq":2,"kind":"parking","data":{"occupied":true,"occupied_since_ts":1795000012000,"battery_v":3.6}}"#,
            ]
        );
        r.net.assert_readings_listed(KIND);
    }

    #[test]
    fn a_flat_battery_publishes_low_battery_and_a_dead_sensor_tamper() {
        let mut r = space_rig();
        r.adc.set(3_200);
        r.ruler.fail();
        for t in (0..=60_000).step_by(1_000) {
            r.step(t);
        }
        assert_eq!(
            r.net.timeline(WALL),
            [("low_battery", 60_000), ("tamper", 60_000)]
        );
        assert_eq!(
            r.net.events()[0].reading("battery_v"),
            Some(Value::Number(3.2))
        );
        assert_eq!(r.node.stats().read_errors, 61);
    }

    struct GateRig {
        a: Pin,
        b: Pin,
        lane: Pin,
        net: FakeNet,
        store: MemStore,
        node: GateNode<'static, Pin>,
    }

    fn gate_rig() -> GateRig {
        let (a, b, lane) = (Pin::at(false), Pin::at(false), Pin::at(false));
        let input = |pin: &Pin| DebouncedInput::new(pin.clone(), Polarity::ActiveHigh, 50);
        let parts = GateParts {
            loop_a: input(&a),
            loop_b: input(&b),
            fire_lane: input(&lane),
        };
        let mut store = MemStore::default();
        let seq = SeqCounter::boot(&mut store, 0).unwrap();
        let mut node =
            GateNode::new(config(None), seq, parts, &GateNodeConfig::default(), 0).unwrap();
        node.node_mut().set_wall_clock(0, WALL);
        GateRig {
            a,
            b,
            lane,
            net: FakeNet::default(),
            store,
            node,
        }
    }

    impl GateRig {
        fn step(&mut self, now: u64) {
            self.node.step(now, &mut self.net, &mut self.store);
        }
    }

    #[test]
    fn a_car_driving_in_is_counted_and_telemetry_carries_the_counts() {
        let mut r = gate_rig();
        let mut t = 0;
        for (a, b) in [
            (false, false),
            (true, false),
            (true, true),
            (false, true),
            (false, false),
        ] {
            r.a.set(a);
            r.b.set(b);
            for _ in 0..10 {
                r.step(t);
                t += 100;
            }
        }
        assert_eq!((r.node.vehicles_in(), r.node.vehicles_out()), (1, 0));
        r.step(10_000);
        let last = r.net.on(Channel::Telemetry).last().copied().unwrap();
        assert_eq!(
            last,
            r#"{"v":1,"ts":1795000010000,"seq":2,"kind":"parking","data":{"vehicles_in":1,"vehicles_out":0,"fire_lane_occupied":false,"fire_lane_dwell_s":0}}"#
        );
        r.net.assert_readings_listed(KIND);
    }

    #[test]
    fn a_car_left_in_the_fire_lane_for_five_minutes_publishes_fire_lane_blocked() {
        let mut r = gate_rig();
        r.lane.set(true);
        for t in (0..=320_000).step_by(1_000) {
            r.step(t);
        }
        assert_eq!(
            r.net.timeline(WALL),
            [("fire_lane_blocked", 301_000)],
            "seen from the second step, 1 s in"
        );
        let events = r.net.events();
        assert_eq!(
            events[0].reading("fire_lane_dwell_s"),
            Some(Value::Number(300.0))
        );
        assert_eq!(
            events[0].reading("fire_lane_occupied"),
            Some(Value::Bool(true))
        );
    }

    #[test]
    fn a_gate_input_that_cannot_be_read_raises_tamper_after_a_minute() {
        let mut r = gate_rig();
        r.step(0);
        r.b.fail();
        for t in (1_000..=61_000).step_by(1_000) {
            r.step(t);
        }
        assert_eq!(r.net.timeline(WALL), [("tamper", 61_000)]);
    }
}
