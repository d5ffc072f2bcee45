//! Parking: whether a space is taken and since when ([`Space`]), and at the gate ([`Gate`]) the
//! vehicles in and out and a car left standing in the fire lane.
//!
//! A space sensor measures the distance to whatever is below it (mounted on the ceiling over the
//! space) or above it (set in the ground). Something nearer than a threshold is a vehicle, but
//! only once it stayed for [`SpaceConfig::debounce_ms`]: a person walking under a ceiling sensor
//! or a car manoeuvring over a ground one is there for less. Leaving is debounced the same way,
//! so a sensor that loses the car for a moment does not free the space. The space remembers when
//! the vehicle arrived (the first sample that saw it, not the one that confirmed it); the node
//! sends that as `occupied_since_ts`.
//!
//! The gate has two vehicle loops (or beams) one after the other across the lane: a vehicle that
//! meets loop A first and leaves loop B last drove in, one that meets B first and leaves A last
//! drove out. A vehicle that turns back leaves over the loop it came in on and is not counted,
//! nor is a passage whose direction the samples could not tell (both loops changing between two
//! samples: step at least every 100 ms). Two vehicles nose to tail that keep a loop covered
//! between them count as one. The counts start at zero when the node starts and never go down:
//! the gateway reads them as counters, like any counter that restarts with its process. Keeping
//! them across a reboot would write the store once per vehicle, thousands of times a day.
//!
//! The fire lane is watched by a presence input (a camera box's zone output or a ground loop),
//! debounced like a space. A vehicle standing in it for [`GateConfig::fire_lane_blocked_after_ms`]
//! raises `fire_lane_blocked` once; the lane must clear before the next one. Fire lanes must be
//! kept free (Fire Protection Law of the PRC, art. 28: nobody may occupy, block or close one),
//! but a delivery or a drop-off stopping for a few minutes is no alarm.

use super::timing::{Debounce, Hysteresis};
use super::Event;

/// An event the parking detectors raise; [`Event::name`] spells it as the kind catalogue does.
/// A battery space sensor's `low_battery` comes from [`super::battery`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParkingEvent {
    /// A vehicle stayed in the fire lane.
    FireLaneBlocked,
}

impl Event for ParkingEvent {
    const ALL: &'static [Self] = &[Self::FireLaneBlocked];

    fn name(&self) -> &'static str {
        match self {
            Self::FireLaneBlocked => "fire_lane_blocked",
        }
    }
}

/// A presence that changes only once the new state held for the debounce time, either way, and
/// remembers when the present one began.
#[derive(Clone, Debug)]
struct Presence {
    debounce: Debounce,
    since: Option<u64>,
}

impl Presence {
    fn new(debounce_ms: u64) -> Self {
        Self {
            debounce: Debounce::new(false, debounce_ms),
            since: None,
        }
    }

    /// Feeds the raw presence at `now_ms`; returns the new state when it changes.
    fn update(&mut self, raw: bool, now_ms: u64) -> Option<bool> {
        let began = self.debounce.differs_since().unwrap_or(now_ms);
        let change = self.debounce.update(raw, now_ms);
        match change {
            Some(true) => self.since = Some(began),
            Some(false) => self.since = None,
            None => {}
        }
        change
    }

    /// When the present thing arrived, if something is present.
    fn since(&self) -> Option<u64> {
        self.since
    }
}

/// Where a space sensor is mounted, which decides what a missing return means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mounting {
    /// On the ceiling over the space, looking down: it always sees the floor or a vehicle, so a
    /// missing return (a dark car that swallows the beam) tells nothing and changes nothing.
    Ceiling,
    /// In the ground, looking up: with no vehicle above, nothing is in range, so a missing return
    /// means the space is free.
    Ground,
}

/// Thresholds of a parking-space sensor. `Default` holds the field-tested values, for a ceiling
/// sensor.
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceConfig {
    /// How the sensor is mounted. Default [`Mounting::Ceiling`].
    pub mounting: Mounting,
    /// A vehicle is nearer than this, in cm. Default 150 cm, for a sensor 2.2–2.8 m above the
    /// floor (JGJ 100-2015 asks at least 2.2 m of clear height for small cars): a car's roof or
    /// bonnet is 0.7–1.6 m below it, the floor more than 2 m. Set it to the mounting height less
    /// about a metre; for a ground sensor, to 60 cm (a car's underside is 12–30 cm up).
    pub occupied_below_cm: f32,
    /// The space is free again beyond this, in cm. Default 170 cm: a dead band against a bonnet
    /// that sits near the threshold.
    pub free_above_cm: f32,
    /// How long a vehicle must be seen (or not seen) before the space changes, in ms. Default
    /// 5 s: a person walking under the sensor is gone sooner, and parking takes longer.
    pub debounce_ms: u64,
}

impl Default for SpaceConfig {
    /// The field-tested defaults; see each field for its value and source.
    fn default() -> Self {
        Self {
            mounting: Mounting::Ceiling,
            occupied_below_cm: 150.0,
            free_above_cm: 170.0,
            debounce_ms: 5_000,
        }
    }
}

/// One parking space's state.
#[derive(Clone, Debug)]
pub struct Space {
    mounting: Mounting,
    near: Hysteresis,
    presence: Presence,
}

impl Space {
    /// A free space watched with the given thresholds.
    pub fn new(config: &SpaceConfig) -> Self {
        Self {
            mounting: config.mounting,
            near: Hysteresis::falling(config.occupied_below_cm, config.free_above_cm),
            presence: Presence::new(config.debounce_ms),
        }
    }

    /// Feeds one distance measured at `now_ms` (`None`: no reliable return; NaN changes
    /// nothing); returns whether the space is now occupied, when that changes.
    pub fn step(&mut self, now_ms: u64, distance_cm: Option<f32>) -> Option<bool> {
        match (distance_cm, self.mounting) {
            (Some(cm), _) => {
                self.near.update(cm);
            }
            (None, Mounting::Ground) => {
                self.near.update(f32::INFINITY);
            }
            (None, Mounting::Ceiling) => {}
        }
        self.presence.update(self.near.is_active(), now_ms)
    }

    /// Whether a vehicle is in the space.
    pub fn occupied(&self) -> bool {
        self.presence.since().is_some()
    }

    /// When the vehicle in the space arrived (monotonic ms), if there is one.
    pub fn occupied_since_ms(&self) -> Option<u64> {
        self.presence.since()
    }
}

/// One reading of the gate's inputs, each already debounced against contact bounce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateSample {
    /// Loop A, the outer one (a vehicle coming in meets it first), sees a vehicle.
    pub loop_a: bool,
    /// Loop B, the inner one, sees a vehicle.
    pub loop_b: bool,
    /// The fire lane's presence input sees a vehicle.
    pub fire_lane: bool,
}

/// Timings of the gate. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct GateConfig {
    /// How long a vehicle must be seen (or not) in the fire lane before it counts, in ms.
    /// Default 5 s: a vehicle driving along the lane, or a camera's zone output flickering when
    /// someone walks past the car, changes nothing.
    pub fire_lane_debounce_ms: u64,
    /// How long a vehicle may stand in the fire lane before `fire_lane_blocked`, in ms, counted
    /// from its arrival. Default 300 s: a delivery or a drop-off stops for less.
    pub fire_lane_blocked_after_ms: u64,
}

impl Default for GateConfig {
    /// The field-tested defaults; see each field for its value and source.
    fn default() -> Self {
        Self {
            fire_lane_debounce_ms: 5_000,
            fire_lane_blocked_after_ms: 300_000,
        }
    }
}

/// One of the gate's two loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// A vehicle over the loops: the loop it met first and the one it was last over alone (`None`
/// where both changed between two samples).
#[derive(Clone, Copy, Debug)]
struct Passage {
    first: Option<Side>,
    last_alone: Option<Side>,
}

/// The gate's state: the passage under way, the counts and the fire lane.
#[derive(Clone, Debug)]
pub struct Gate {
    passage: Option<Passage>,
    vehicles_in: u32,
    vehicles_out: u32,
    fire_lane: Presence,
    blocked_after_ms: u64,
    blocked_raised: bool,
}

impl Gate {
    /// A gate with no vehicle counted yet and a clear fire lane.
    pub fn new(config: &GateConfig) -> Self {
        Self {
            passage: None,
            vehicles_in: 0,
            vehicles_out: 0,
            fire_lane: Presence::new(config.fire_lane_debounce_ms),
            blocked_after_ms: config.fire_lane_blocked_after_ms,
            blocked_raised: false,
        }
    }

    /// Feeds one sample taken at `now_ms`; returns the event to send, if any.
    pub fn step(&mut self, now_ms: u64, s: &GateSample) -> Option<ParkingEvent> {
        self.count(s.loop_a, s.loop_b);
        self.fire_lane.update(s.fire_lane, now_ms);
        let Some(since) = self.fire_lane.since() else {
            self.blocked_raised = false;
            return None;
        };
        if self.blocked_raised || now_ms.saturating_sub(since) < self.blocked_after_ms {
            return None;
        }
        self.blocked_raised = true;
        Some(ParkingEvent::FireLaneBlocked)
    }

    /// Follows a vehicle over the loops and counts it when it has left them.
    fn count(&mut self, a: bool, b: bool) {
        let alone = match (a, b) {
            (true, false) => Some(Side::A),
            (false, true) => Some(Side::B),
            _ => None,
        };
        match (&mut self.passage, a || b) {
            (None, false) => {}
            (None, true) => {
                self.passage = Some(Passage {
                    first: alone,
                    last_alone: alone,
                })
            }
            (Some(p), true) => p.last_alone = alone.or(p.last_alone),
            (Some(p), false) => {
                match (p.first, p.last_alone) {
                    (Some(Side::A), Some(Side::B)) => {
                        self.vehicles_in = self.vehicles_in.saturating_add(1);
                    }
                    (Some(Side::B), Some(Side::A)) => {
                        self.vehicles_out = self.vehicles_out.saturating_add(1);
                    }
                    _ => {}
                }
                self.passage = None;
            }
        }
    }

    /// Vehicles that drove in since the node started.
    pub fn vehicles_in(&self) -> u32 {
        self.vehicles_in
    }

    /// Vehicles that drove out since the node started.
    pub fn vehicles_out(&self) -> u32 {
        self.vehicles_out
    }

    /// Whether a vehicle stands in the fire lane.
    pub fn fire_lane_occupied(&self) -> bool {
        self.fire_lane.since().is_some()
    }

    /// How long the vehicle in the fire lane has stood there at `now_ms`, in ms (0 if none).
    pub fn fire_lane_dwell_ms(&self, now_ms: u64) -> u64 {
        self.fire_lane
            .since()
            .map_or(0, |since| now_ms.saturating_sub(since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_car_parking_under_a_ceiling_sensor_occupies_the_space_from_its_arrival() {
        let mut s = Space::new(&SpaceConfig::default());
        // (time, distance, change, occupied since)
        let script = [
            (0, Some(250.0), None, None),
            (1_000, Some(80.0), None, None), // someone walks under
            (3_000, Some(250.0), None, None),
            (10_000, Some(160.0), None, None), // within the dead band: still free
            (20_000, Some(110.0), None, None), // a car's roof
            (22_000, None, None, None),        // a dark car swallows the beam
            (24_999, Some(110.0), None, None),
            (25_000, Some(110.0), Some(true), Some(20_000)),
            (60_000, Some(160.0), None, Some(20_000)),
            (70_000, Some(250.0), None, Some(20_000)), // the car leaves
            (74_000, Some(90.0), None, Some(20_000)),  // a flicker resets the leaving
            (75_000, Some(250.0), None, Some(20_000)),
            (80_000, Some(250.0), Some(false), None),
        ];
        for (t, cm, change, since) in script {
            assert_eq!(s.step(t, cm), change, "at {t} ms");
            assert_eq!(s.occupied_since_ms(), since, "at {t} ms");
            assert_eq!(s.occupied(), since.is_some(), "at {t} ms");
        }
    }

    #[test]
    fn a_ground_sensor_takes_a_missing_return_for_a_free_space() {
        let mut s = Space::new(&SpaceConfig {
            mounting: Mounting::Ground,
            occupied_below_cm: 60.0,
            free_above_cm: 80.0,
            ..SpaceConfig::default()
        });
        let script = [
            (0, None, None),
            (1_000, Some(25.0), None),
            (6_000, Some(f32::NAN), Some(true)),
            (10_000, None, None),
            (15_000, None, Some(false)),
        ];
        for (t, cm, change) in script {
            assert_eq!(s.step(t, cm), change, "at {t} ms");
        }
    }

    /// A gate sample with the two loops.
    fn loops(a: bool, b: bool) -> GateSample {
        GateSample {
            loop_a: a,
            loop_b: b,
            fire_lane: false,
        }
    }

    #[test]
    fn a_vehicle_over_a_then_b_drove_in_and_over_b_then_a_drove_out() {
        let mut g = Gate::new(&GateConfig::default());
        // (a, b, in, out) at 100 ms steps.
        let script = [
            (true, false, 0, 0),
            (true, true, 0, 0),
            (false, true, 0, 0),
            (false, false, 1, 0), // in
            (false, true, 1, 0),
            (true, true, 1, 0),
            (true, false, 1, 0),
            (false, false, 1, 1), // out
            (true, false, 1, 1),
            (true, true, 1, 1),
            (true, false, 1, 1), // turns back
            (false, false, 1, 1),
            (true, false, 1, 1),
            (false, false, 1, 1), // a vehicle over loop A only: no passage
        ];
        for (i, (a, b, vin, vout)) in script.into_iter().enumerate() {
            assert_eq!(g.step(i as u64 * 100, &loops(a, b)), None);
            assert_eq!((g.vehicles_in(), g.vehicles_out()), (vin, vout), "step {i}");
        }
    }

    #[test]
    fn a_passage_whose_direction_the_samples_missed_is_not_counted() {
        let mut g = Gate::new(&GateConfig::default());
        for (a, b) in [(true, true), (false, true), (false, false)] {
            g.step(0, &loops(a, b));
        }
        for (a, b) in [(true, false), (true, true), (false, false)] {
            g.step(0, &loops(a, b));
        }
        assert_eq!((g.vehicles_in(), g.vehicles_out()), (0, 0));
    }

    #[test]
    fn a_car_standing_in_the_fire_lane_for_five_minutes_blocks_it_once() {
        let mut g = Gate::new(&GateConfig::default());
        let lane = |occupied: bool| GateSample {
            fire_lane: occupied,
            ..GateSample::default()
        };
        // (time, vehicle in the lane, event, occupied, dwell)
        let script = [
            (0, false, None, false, 0),
            (10_000, true, None, false, 0), // a delivery van
            (14_999, true, None, false, 0),
            (15_000, true, None, true, 5_000),
            (200_000, false, None, true, 190_000),
            (205_000, false, None, false, 0), // gone after 3 minutes
            (400_000, true, None, false, 0),  // a car parks
            (402_000, false, None, false, 0), // someone walks past: the camera loses it
            (403_000, true, None, false, 0),
            (408_000, true, None, true, 5_000),
            (702_999, true, None, true, 299_999),
            (
                703_000,
                true,
                Some(ParkingEvent::FireLaneBlocked),
                true,
                300_000,
            ),
            (800_000, true, None, true, 397_000),
            (900_000, false, None, true, 497_000),
            (905_000, false, None, false, 0),
            (906_000, true, None, false, 0),
            (
                1_206_000,
                true,
                Some(ParkingEvent::FireLaneBlocked),
                true,
                300_000,
            ),
        ];
        for (t, occupied, event, seen, dwell) in script {
            assert_eq!(g.step(t, &lane(occupied)), event, "at {t} ms");
            assert_eq!(g.fire_lane_occupied(), seen, "at {t} ms");
            assert_eq!(g.fire_lane_dwell_ms(t), dwell, "at {t} ms");
        }
    }

    proptest! {
        #[test]
        fn the_counts_never_go_down_and_each_passage_counts_at_most_once(
            steps in proptest::collection::vec((any::<bool>(), any::<bool>()), 1..400),
        ) {
            let mut g = Gate::new(&GateConfig::default());
            let (mut before, mut was_clear) = ((0, 0), true);
            for (i, (a, b)) in steps.into_iter().enumerate() {
                g.step(i as u64 * 50, &loops(a, b));
                let now = (g.vehicles_in(), g.vehicles_out());
                prop_assert!(now.0 >= before.0 && now.1 >= before.1);
                let clear = !a && !b;
                let counted = now.0 + now.1 - before.0 - before.1;
                prop_assert!(counted <= 1);
                prop_assert!(counted == 0 || (clear && !was_clear), "counted without a vehicle leaving");
                before = now;
                was_clear = clear;
            }
        }

        #[test]
        fn a_vehicle_crossing_a_then_b_at_any_pace_is_counted_in(
            gaps in proptest::collection::vec(1usize..20, 3),
        ) {
            let mut g = Gate::new(&GateConfig::default());
            let mut t = 0;
            for (phase, &steps) in [(true, false), (true, true), (false, true)].iter().zip(&gaps) {
                for _ in 0..steps {
                    t += 50;
                    g.step(t, &loops(phase.0, phase.1));
                }
            }
            g.step(t + 50, &loops(false, false));
            prop_assert_eq!((g.vehicles_in(), g.vehicles_out()), (1, 0));
        }

        #[test]
        fn the_fire_lane_is_never_blocked_twice_without_clearing_in_between(
            steps in proptest::collection::vec((0u64..120_000, any::<bool>()), 1..200),
        ) {
            let mut g = Gate::new(&GateConfig::default());
            let (mut t, mut armed) = (0, true);
            for (gap, occupied) in steps {
                t += gap;
                let lane = GateSample { fire_lane: occupied, ..GateSample::default() };
                let event = g.step(t, &lane);
                if !g.fire_lane_occupied() {
                    armed = true;
                }
                if event.is_some() {
                    prop_assert!(armed, "blocked twice, at {} ms", t);
                    prop_assert!(g.fire_lane_dwell_ms(t) >= 300_000);
                    armed = false;
                }
            }
        }
    }
}
