//! The lift monitor's loop: the car's contacts and a motion source, on a mains-powered node.
//!
//! | part | connection | notes |
//! |---|---|---|
//! | door contact | GPIO input, active = open | a contact on the car door (not the safety chain itself: tap it through an optocoupler) |
//! | door zone | GPIO input, active = in the zone | the levelling vane sensor |
//! | top / bottom limit | GPIO inputs, active = made | the final limit switches, through optocouplers |
//! | alarm button | GPIO input, active = pressed | the car's emergency button, in parallel with the intercom |
//! | occupancy | GPIO input, active = someone inside | a presence sensor or the camera box's output |
//! | e-bike | GPIO input, active = e-bike seen | the camera box's output |
//! | mains | GPIO input, active = mains present | a mains-detect optocoupler; the node runs on its backup cell |
//! | motion | any [`CarMotion`]: an encoder on the governor rope, the controller's bus, or the accelerometer integrated | speed, direction, floor |
//!
//! All eight inputs are [`DebouncedInput`]s over one pin type (the HAL's type-erased input:
//! embassy's and esp-hal's `Input`, the stm32 HALs' `ErasedPin`); 50 ms is a good debounce.
//! Call [`ElevatorNode::step`] every 100–200 ms: the overspeed check holds for 500 ms. A step
//! reads every input and the motion, runs [`Elevator`], publishes its events at once with the
//! step's readings, and offers `floor`, `moving`, `direction`, `speed_mps`, `door_open`,
//! `in_door_zone` and `occupied` as telemetry: every 60 s (the kind's `report_every_secs`), or
//! on a change (speed by more than 0.2 m/s) at most every 10 s. A motion source that cannot be
//! read leaves the last motion in place; an input that cannot be read keeps its last level.

use embedded_hal::digital::InputPin;

use super::runtime::{flag, loop_accessors, number, Runtime};
use super::{Config, Transport};
use crate::detect::elevator::{Elevator, ElevatorConfig, ElevatorEvent, ElevatorSample};
use crate::detect::Event;
use crate::drivers::input::DebouncedInput;
use crate::hal::NvStore;
use crate::seq::SeqCounter;
use crate::wire::{EncodeError, Reading};

/// The kind, as the catalogue spells it.
pub const KIND: &str = "elevator";

/// The messaging configuration of a lift node: telemetry and heartbeat every 60 s, on change
/// at most every 10 s, the speed changing by more than 0.2 m/s.
pub fn config(key: Option<&[u8]>) -> Config<'_> {
    Config {
        key,
        telemetry_period_ms: 60_000,
        heartbeat_ms: 60_000,
        deadbands: &[("speed_mps", 0.2)],
        ..Config::new(KIND)
    }
}

/// How the car moves, as a [`CarMotion`] source measures it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Motion {
    /// The car is moving.
    pub moving: bool,
    /// Its speed, in m/s (unsigned).
    pub speed_mps: f32,
    /// Up 1, down -1, standing 0.
    pub direction: i8,
    /// The floor it is at or passing, if the source knows.
    pub floor: Option<i16>,
}

/// A source of the car's motion: an encoder, the controller's bus, an integrated accelerometer.
pub trait CarMotion {
    /// The source's error type.
    type Error: core::fmt::Debug;

    /// The car's motion at `now_ms`.
    fn read(&mut self, now_ms: u64) -> Result<Motion, Self::Error>;
}

/// Timings of the lift node's loop. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct ElevatorNodeConfig {
    /// The detector's limits.
    pub detector: ElevatorConfig,
    /// How long a read must keep failing before `tamper`, in ms. Default 60 s.
    pub fault_after_ms: u64,
}

impl Default for ElevatorNodeConfig {
    /// The defaults: see each field.
    fn default() -> Self {
        Self {
            detector: ElevatorConfig::default(),
            fault_after_ms: 60_000,
        }
    }
}

/// The parts a lift node is built from.
pub struct ElevatorParts<P, M> {
    /// The car door (active = open).
    pub door: DebouncedInput<P>,
    /// The door-zone sensor (active = in the zone).
    pub door_zone: DebouncedInput<P>,
    /// The top final limit switch (active = made).
    pub top_limit: DebouncedInput<P>,
    /// The bottom final limit switch (active = made).
    pub bottom_limit: DebouncedInput<P>,
    /// The alarm button (active = pressed).
    pub alarm: DebouncedInput<P>,
    /// Occupancy (active = someone in the car).
    pub occupied: DebouncedInput<P>,
    /// The camera box's e-bike output (active = e-bike).
    pub ebike: DebouncedInput<P>,
    /// Mains detect (active = mains present).
    pub mains: DebouncedInput<P>,
    /// The motion source.
    pub motion: M,
}

/// A lift node: its parts, its detector and its [`Runtime`].
pub struct ElevatorNode<'a, P, M> {
    parts: ElevatorParts<P, M>,
    runtime: Runtime<'a>,
    detector: Elevator,
    motion: Motion,
}

impl<'a, P: InputPin, M: CarMotion> ElevatorNode<'a, P, M> {
    /// A node over `parts`, numbering with `seq`, started at `now_ms`. `messaging.kind` is set
    /// to [`KIND`]; start from [`config`].
    pub fn new(
        messaging: Config<'a>,
        seq: SeqCounter,
        parts: ElevatorParts<P, M>,
        config: &ElevatorNodeConfig,
        now_ms: u64,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            parts,
            runtime: Runtime::start(KIND, messaging, seq, now_ms, config.fault_after_ms)?,
            detector: Elevator::new(&config.detector),
            motion: Motion::default(),
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
        for input in [
            &mut p.door,
            &mut p.door_zone,
            &mut p.top_limit,
            &mut p.bottom_limit,
            &mut p.alarm,
            &mut p.occupied,
            &mut p.ebike,
            &mut p.mains,
        ] {
            if input.sample(now_ms).is_err() {
                errors += 1;
            }
        }
        match p.motion.read(now_ms) {
            Ok(motion) => self.motion = motion,
            Err(_) => errors += 1,
        }
        let sample = ElevatorSample {
            moving: self.motion.moving,
            speed_mps: self.motion.speed_mps,
            door_open: p.door.is_active(),
            in_door_zone: p.door_zone.is_active(),
            occupied: p.occupied.is_active(),
            at_top_limit: p.top_limit.is_active(),
            at_bottom_limit: p.bottom_limit.is_active(),
            emergency_button: p.alarm.is_active(),
            ebike: p.ebike.is_active(),
            mains_ok: p.mains.is_active(),
        };
        let raised = self.detector.step(now_ms, &sample);
        let events = self.runtime.events::<{ ElevatorEvent::ALL.len() + 1 }>(
            now_ms,
            raised.iter().map(Event::name),
            errors,
            errors > 0,
        );

        let readings = [
            self.motion
                .floor
                .and_then(|f| number("floor", f32::from(f), 0)),
            Some(flag("moving", sample.moving)),
            number("direction", f32::from(self.motion.direction.signum()), 0),
            number("speed_mps", sample.speed_mps, 2),
            Some(flag("door_open", sample.door_open)),
            Some(flag("in_door_zone", sample.in_door_zone)),
            Some(flag("occupied", sample.occupied)),
        ];
        let data: heapless::Vec<Reading<'static>, 7> = readings.into_iter().flatten().collect();
        self.runtime
            .report(now_ms, &events, &data, transport, store, |_| {});
    }

    loop_accessors!();

    /// Gives the parts back.
    pub fn release(self) -> ElevatorParts<P, M> {
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::drivers::Polarity;
    use crate::node::runtime::TAMPER;
    use crate::node::testkit::{FakeNet, Pin, Source};
    use crate::seq::tests::MemStore;

    const WALL: u64 = 1_795_000_000_000;

    /// The car's motion as the test sets it.
    type Car = Source<Motion>;

    impl CarMotion for Car {
        type Error = ();

        fn read(&mut self, _now_ms: u64) -> Result<Motion, ()> {
            Source::read(self)
        }
    }

    struct Rig {
        door: Pin,
        zone: Pin,
        alarm: Pin,
        car: Car,
        net: FakeNet,
        store: MemStore,
        node: ElevatorNode<'static, Pin, Car>,
    }

    fn moving(floor: i16) -> Motion {
        Motion {
            moving: true,
            speed_mps: 1.0,
            direction: 1,
            floor: Some(floor),
        }
    }

    fn standing(floor: i16) -> Motion {
        Motion {
            floor: Some(floor),
            ..Motion::default()
        }
    }

    /// A car leaving floor 3 upwards with a passenger, door shut, mains on.
    fn rig() -> Rig {
        let input = |pin: &Pin| DebouncedInput::new(pin.clone(), Polarity::ActiveHigh, 50);
        let (door, zone, alarm) = (Pin::at(false), Pin::at(false), Pin::at(false));
        let car = Car::at(moving(3));
        let parts = ElevatorParts {
            door: input(&door),
            door_zone: input(&zone),
            top_limit: input(&Pin::at(false)),
            bottom_limit: input(&Pin::at(false)),
            alarm: input(&alarm),
            occupied: input(&Pin::at(true)),
            ebike: input(&Pin::at(false)),
            mains: input(&Pin::at(true)),
            motion: car.clone(),
        };
        let mut store = MemStore::default();
        let seq = SeqCounter::boot(&mut store, 0).unwrap();
        let mut node =
            ElevatorNode::new(config(None), seq, parts, &ElevatorNodeConfig::default(), 0).unwrap();
        node.node_mut().set_wall_clock(0, WALL);
        Rig {
            door,
            zone,
            alarm,
            car,
            net: FakeNet::default(),
            store,
            node,
        }
    }

    impl Rig {
        fn step(&mut self, now: u64) {
            self.node.step(now, &mut self.net, &mut self.store);
        }

        fn events(&self) -> Vec<(&str, u64)> {
            self.net.timeline(WALL)
        }
    }

    #[test]
    fn a_car_stopped_between_floors_with_a_passenger_for_60_seconds_publishes_trapped_passenger() {
        let mut r = rig();
        for t in (0..=80_000).step_by(500) {
            if t == 10_000 {
                r.car.set(standing(3));
            }
            r.step(t);
        }
        assert_eq!(
            r.events(),
            [
                ("stopped_outside_door_zone", 55_000),
                ("trapped_passenger", 70_000)
            ]
        );
        let trapped = r.net.on(crate::node::Channel::Event)[1];
        assert_eq!(
            trapped,
            r#"{"v":1,"ts":1795000070000,"seq":4,"kind":"elevator","event":"trapped_passenger","data":{"floor":3,"moving":false,"direction":0,"speed_mps":0,"door_open":false,"in_door_zone":false,"occupied":true}}"#
        );
        r.net.assert_readings_listed(KIND);
    }

    #[test]
    fn a_car_that_reaches_its_floor_and_opens_the_door_raises_nothing() {
        let mut r = rig();
        for t in (0..=120_000).step_by(500) {
            if t == 10_000 {
                r.car.set(standing(4));
                r.zone.set(true);
            }
            if t == 12_000 {
                r.door.set(true);
            }
            r.step(t);
        }
        assert_eq!(r.events(), []);
    }

    #[test]
    fn the_alarm_button_publishes_emergency_call_at_once_and_a_dead_motion_source_raises_tamper() {
        let mut r = rig();
        r.car.set(standing(3));
        r.zone.set(true);
        r.step(0);
        r.alarm.set(true);
        // 50 ms of the input's debounce, then 100 ms of the detector's.
        for t in [1_000, 1_050, 1_100, 1_150] {
            r.step(t);
        }
        assert_eq!(r.events(), [("emergency_call", 1_150)]);
        r.car.fail();
        for t in (2_000..=62_000).step_by(1_000) {
            r.step(t);
        }
        assert_eq!(r.events(), [("emergency_call", 1_150), ("tamper", 62_000)]);
        assert_eq!(r.node.stats().read_errors, 61);
    }

    /// One step of a random script: the levels of the door, door-zone and alarm inputs, the
    /// car's motion (or a failed read), whether the link is up, and the time to the next step.
    type Step = (bool, bool, bool, Option<(bool, f32)>, bool, u64);

    fn script() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                prop::option::of((any::<bool>(), 0.0f32..3.0)),
                prop::bool::weighted(0.8),
                0u64..20_000,
            ),
            0..150,
        )
    }

    proptest! {
        /// Whatever the inputs and the link do, the loop goes on, names only catalogue events,
        /// puts strictly increasing seq on the wire, and every event it raised arrives once the
        /// link is back.
        #[test]
        fn any_script_keeps_seq_increasing_and_loses_no_event(steps in script()) {
            let mut r = rig();
            let mut t = 0;
            for (door, zone, alarm, motion, up, gap) in steps {
                r.door.set(door);
                r.zone.set(zone);
                r.alarm.set(alarm);
                match motion {
                    Some((moving, speed_mps)) => r.car.set(Motion { moving, speed_mps, direction: 1, floor: Some(2) }),
                    None => r.car.fail(),
                }
                r.net.down = !up;
                r.step(t);
                t += gap;
            }
            r.net.down = false;
            for _ in 0..10 {
                t += 2_000;
                r.step(t);
            }
            let sent = r.node.node().stats().events_sent as usize;
            prop_assert_eq!(r.net.events().len(), sent);
            prop_assert_eq!(r.node.node().pending_events(), 0);
            prop_assert_eq!(r.node.stats().events_lost, 0);
            prop_assert_eq!(r.node.runtime.backlog(), 0);
            let allowed: Vec<&str> = ElevatorEvent::ALL.iter().map(Event::name).chain([TAMPER]).collect();
            for m in r.net.events() {
                prop_assert!(allowed.contains(&m.event.unwrap()), "{:?}", m.event);
            }
            let seqs: Vec<u64> = r.net.sent.iter().map(|(_, p)| crate::wire::decode(p.as_bytes()).unwrap().seq).collect();
            prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{:?}", seqs);
        }
    }
}
