//! The fire-passage monitor: an evacuation passage blocked, a fire door left open, smoke.
//!
//! A passage is obstructed when its obstruction sensor says so or when its measured clear width
//! is below the minimum: GB 50016-2014 §5.5.30 asks at least 1.10 m of clear width for the
//! evacuation corridors and stairs of residential buildings (a fire-engine lane, §7.1.8, needs
//! 4 m: set [`FirePassageConfig::min_clear_width_cm`] to 400 for one). Only an obstruction that
//! stays is a blockage; a person walking through, or someone carrying a sofa past, is not.
//!
//! Fire doors on evacuation routes are normally closed (GB 50016-2014 §6.5.1): a door open for a
//! short while is a warning (`fire_door_open_too_long`), one held open for a minute has been
//! wedged or its closer is broken, a fault (`fire_door_held_open`).

use heapless::Vec;

use super::timing::{Debounce, Dwell, Hysteresis};
use super::{raise, Event};

/// One reading of a fire-passage node's sensors.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FirePassageSample {
    /// The measured clear width of the passage, in cm, if the node has a width sensor; `None`
    /// (or NaN) leaves the verdict of the last width in place.
    pub clear_width_cm: Option<f32>,
    /// The obstruction sensor (beam, camera box) sees something in the passage.
    pub obstructed: bool,
    /// The fire door's contact reads open.
    pub fire_door_open: bool,
    /// The smoke detector is in alarm.
    pub smoke: bool,
}

/// An event the fire-passage monitor raises; [`Event::name`] spells it as the kind catalogue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirePassageEvent {
    /// Smoke in the passage.
    SmokeDetected,
    /// The passage stayed obstructed.
    PassageBlocked,
    /// The fire door stayed open longer than a passage through it takes.
    FireDoorOpenTooLong,
    /// The fire door is held open: wedged, or its closer is broken.
    FireDoorHeldOpen,
}

impl Event for FirePassageEvent {
    /// Most urgent first, the order [`FirePassage::step`] returns them in.
    const ALL: &'static [Self] = &[
        Self::SmokeDetected,
        Self::PassageBlocked,
        Self::FireDoorOpenTooLong,
        Self::FireDoorHeldOpen,
    ];

    fn name(&self) -> &'static str {
        match self {
            Self::SmokeDetected => "smoke_detected",
            Self::PassageBlocked => "passage_blocked",
            Self::FireDoorOpenTooLong => "fire_door_open_too_long",
            Self::FireDoorHeldOpen => "fire_door_held_open",
        }
    }
}

/// The events of one step, most urgent first.
pub type FirePassageEvents = Vec<FirePassageEvent, 4>;

/// Limits of the fire-passage monitor. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct FirePassageConfig {
    /// Obstructed below this clear width, in cm. Default 110 cm, the minimum clear width of a
    /// residential evacuation corridor or stair (GB 50016-2014 §5.5.30).
    pub min_clear_width_cm: f32,
    /// Clear again above this width, in cm. Default 120 cm, the gateway's `passage_blocked`
    /// clear level: a dead band against a width sensor's noise.
    pub clear_again_cm: f32,
    /// How long an obstruction must stay before `passage_blocked`, in ms. Default 30 s
    /// (issue 4): people walking through or stopping for a chat are gone well before.
    pub blocked_after_ms: u64,
    /// How long the fire door may stand open before `fire_door_open_too_long`, in ms.
    /// Default 10 s (issue 4): walking through takes a few seconds, and the closer shuts it.
    pub door_open_too_long_ms: u64,
    /// How long the fire door may stand open before `fire_door_held_open`, in ms. Default 60 s
    /// (issue 4): no passage through a door takes that long.
    pub door_held_open_ms: u64,
    /// How long the smoke detector must stay in alarm, in ms. Default 2 s: one glitch of its
    /// output line is not smoke (the detector already verifies its own alarm).
    pub smoke_debounce_ms: u64,
}

impl Default for FirePassageConfig {
    /// The field-tested defaults; see each field for its value and source.
    fn default() -> Self {
        Self {
            min_clear_width_cm: 110.0,
            clear_again_cm: 120.0,
            blocked_after_ms: 30_000,
            door_open_too_long_ms: 10_000,
            door_held_open_ms: 60_000,
            smoke_debounce_ms: 2_000,
        }
    }
}

/// The fire-passage monitor's state.
#[derive(Clone, Debug)]
pub struct FirePassage {
    narrow: Hysteresis,
    blocked: Dwell,
    door_open_too_long: Dwell,
    door_held_open: Dwell,
    smoke: Debounce,
}

impl FirePassage {
    /// A monitor with the given limits.
    pub fn new(config: &FirePassageConfig) -> Self {
        Self {
            narrow: Hysteresis::falling(config.min_clear_width_cm, config.clear_again_cm),
            blocked: Dwell::new(config.blocked_after_ms),
            door_open_too_long: Dwell::new(config.door_open_too_long_ms),
            door_held_open: Dwell::new(config.door_held_open_ms),
            smoke: Debounce::new(false, config.smoke_debounce_ms),
        }
    }

    /// Feeds one sample taken at `now_ms`; returns the events to send, most urgent first.
    pub fn step(&mut self, now_ms: u64, s: &FirePassageSample) -> FirePassageEvents {
        let mut events = FirePassageEvents::new();
        if self.smoke.update(s.smoke, now_ms) == Some(true) {
            raise(&mut events, FirePassageEvent::SmokeDetected);
        }
        if let Some(width) = s.clear_width_cm {
            self.narrow.update(width);
        }
        if self
            .blocked
            .update(s.obstructed || self.narrow.is_active(), now_ms)
        {
            raise(&mut events, FirePassageEvent::PassageBlocked);
        }
        if self.door_open_too_long.update(s.fire_door_open, now_ms) {
            raise(&mut events, FirePassageEvent::FireDoorOpenTooLong);
        }
        if self.door_held_open.update(s.fire_door_open, now_ms) {
            raise(&mut events, FirePassageEvent::FireDoorHeldOpen);
        }
        events
    }

    /// Whether some condition is being timed and has not fired yet: sample again soon.
    pub fn is_pending(&self) -> bool {
        self.blocked.is_pending()
            || self.door_open_too_long.is_pending()
            || self.door_held_open.is_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::FirePassageEvent::*;
    use super::*;
    use proptest::prelude::*;

    fn clear() -> FirePassageSample {
        FirePassageSample {
            clear_width_cm: Some(150.0),
            ..FirePassageSample::default()
        }
    }

    fn width(cm: f32) -> FirePassageSample {
        FirePassageSample {
            clear_width_cm: Some(cm),
            ..clear()
        }
    }

    fn run(script: &[(u64, FirePassageSample, &[FirePassageEvent])]) {
        let mut f = FirePassage::new(&FirePassageConfig::default());
        for (t, s, want) in script {
            assert_eq!(f.step(*t, s).as_slice(), *want, "at {t} ms");
        }
    }

    #[test]
    fn people_walking_through_do_not_block_the_passage() {
        let mut script = std::vec::Vec::new();
        for i in 0..50u64 {
            let t = i * 20_000;
            script.push((t, width(60.0), &[][..]));
            script.push((t + 5_000, width(80.0), &[][..]));
            script.push((t + 10_000, clear(), &[][..]));
        }
        run(&script);
    }

    #[test]
    fn a_passage_narrowed_below_110_cm_for_30_seconds_is_blocked_once() {
        run(&[
            (0, clear(), &[]),
            (1_000, width(90.0), &[]),
            (20_000, width(115.0), &[]),
            (30_999, width(100.0), &[]),
            (31_000, width(100.0), &[PassageBlocked]),
            (100_000, width(115.0), &[]),
            (200_000, width(100.0), &[]),
            (300_000, width(121.0), &[]),
            (301_000, width(100.0), &[]),
            (331_000, width(100.0), &[PassageBlocked]),
        ]);
    }

    #[test]
    fn a_node_without_a_width_sensor_uses_its_obstruction_flag() {
        let flag = |obstructed: bool| FirePassageSample {
            clear_width_cm: None,
            obstructed,
            ..clear()
        };
        run(&[
            (0, flag(true), &[]),
            (29_999, flag(true), &[]),
            (30_000, flag(true), &[PassageBlocked]),
            (40_000, flag(false), &[]),
        ]);
    }

    #[test]
    fn a_fire_door_open_too_long_warns_at_10_seconds_and_is_a_fault_at_60() {
        let open = FirePassageSample {
            fire_door_open: true,
            ..clear()
        };
        run(&[
            (0, open, &[]),
            (5_000, clear(), &[]),
            (6_000, open, &[]),
            (15_999, open, &[]),
            (16_000, open, &[FireDoorOpenTooLong]),
            (65_999, open, &[]),
            (66_000, open, &[FireDoorHeldOpen]),
            (600_000, open, &[]),
            (601_000, clear(), &[]),
            (602_000, open, &[]),
            (662_000, open, &[FireDoorOpenTooLong, FireDoorHeldOpen]),
        ]);
    }

    #[test]
    fn smoke_is_reported_after_two_seconds_and_again_only_after_it_cleared() {
        let smoke = FirePassageSample {
            smoke: true,
            ..clear()
        };
        run(&[
            (0, smoke, &[]),
            (1_000, clear(), &[]),
            (2_000, smoke, &[]),
            (4_000, smoke, &[SmokeDetected]),
            (5_000, clear(), &[]),
            (6_000, smoke, &[]),
            (10_000, clear(), &[]),
            (12_000, clear(), &[]),
            (13_000, smoke, &[]),
            (15_000, smoke, &[SmokeDetected]),
        ]);
    }

    fn sample() -> impl Strategy<Value = FirePassageSample> {
        (
            proptest::option::of(50.0f32..200.0),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(clear_width_cm, obstructed, fire_door_open, smoke)| {
                FirePassageSample {
                    clear_width_cm,
                    obstructed,
                    fire_door_open,
                    smoke,
                }
            })
    }

    proptest! {
        #[test]
        fn an_obstruction_shorter_than_30_seconds_never_blocks_the_passage(
            start in 0u64..1_000_000,
            steps in proptest::collection::vec((0u64..5_000, 0.0f32..110.0, any::<bool>()), 1..20),
        ) {
            let mut f = FirePassage::new(&FirePassageConfig::default());
            prop_assert!(f.step(start, &clear()).is_empty());
            let first = start + 1;
            let mut t = first;
            for (gap, cm, flag) in steps {
                if t + gap - first >= 30_000 {
                    break;
                }
                t += gap;
                let s = FirePassageSample { obstructed: flag, ..width(cm) };
                prop_assert!(f.step(t, &s).is_empty(), "at {} ms", t);
            }
            prop_assert!(f.step(t + 1, &clear()).is_empty());
        }

        #[test]
        fn no_fire_passage_event_is_raised_twice_without_a_clear_in_between(
            steps in proptest::collection::vec((0u64..40_000, sample()), 1..300),
        ) {
            let mut f = FirePassage::new(&FirePassageConfig::default());
            let mut t = 0;
            let mut armed = [true; 4];
            let mut smoke_clear_since = None::<u64>;
            let mut narrow = false;
            for (gap, s) in steps {
                t += gap;
                if s.smoke {
                    smoke_clear_since = None;
                } else if t - *smoke_clear_since.get_or_insert(t) >= 2_000 {
                    armed[0] = true;
                }
                match s.clear_width_cm {
                    Some(w) if w < 110.0 => narrow = true,
                    Some(w) if w > 120.0 => narrow = false,
                    _ => {}
                }
                if !s.obstructed && !narrow { armed[1] = true; }
                if !s.fire_door_open { armed[2] = true; armed[3] = true; }
                for ev in f.step(t, &s) {
                    let i = FirePassageEvent::ALL.iter().position(|e| *e == ev).unwrap();
                    prop_assert!(armed[i], "{:?} twice, at {} ms", ev, t);
                    armed[i] = false;
                }
            }
        }
    }
}
