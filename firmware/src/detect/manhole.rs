//! The manhole-cover monitor: cover displaced, water rising to overflow, flammable gas, low
//! battery; and [`Schedule`], when a battery node that sleeps most of the time should report.
//!
//! A cover is out of its seat when it tilts past its threshold or its contact opens, and back in
//! it only when the tilt is below a lower threshold with the contact closed (the same clear as
//! the gateway's rule). It is displaced when out of its seat for longer than a passing vehicle
//! rocks it (about 2 s). Every threshold has a dead band, so a reading hovering at it raises one
//! event, not one per sample. NaN readings change nothing.
//!
//! A node on a battery samples rarely; while a condition is being timed ([`Manhole::is_pending`])
//! it should sample again within the hold time, or the event comes only at the next sample.

use heapless::Vec;

use super::battery::{Battery, BatteryConfig, BatteryEvent};
use super::timing::{Dwell, Hysteresis};
use super::{raise, Event};

/// One reading of a manhole node's sensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ManholeSample {
    /// The cover's tilt from its resting angle, in degrees (the node subtracts the rest angle).
    pub tilt_deg: f32,
    /// The cover contact reads open.
    pub cover_open: bool,
    /// Water depth in the well, in centimetres.
    pub water_cm: f32,
    /// Flammable gas, in ppm (methane equivalent).
    pub gas_ppm: f32,
    /// Battery voltage, in volts.
    pub battery_v: f32,
}

/// An event the manhole monitor raises; [`Event::name`] spells it as the kind catalogue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManholeEvent {
    /// Flammable gas above the alarm level.
    GasHigh,
    /// The cover is tilted or open.
    CoverDisplaced,
    /// The water is close to overflowing.
    WaterOverflow,
    /// The battery is low.
    LowBattery,
}

impl Event for ManholeEvent {
    /// Most urgent first, the order [`Manhole::step`] returns them in.
    const ALL: &'static [Self] = &[
        Self::GasHigh,
        Self::CoverDisplaced,
        Self::WaterOverflow,
        Self::LowBattery,
    ];

    fn name(&self) -> &'static str {
        match self {
            Self::GasHigh => "gas_high",
            Self::CoverDisplaced => "cover_displaced",
            Self::WaterOverflow => "water_overflow",
            Self::LowBattery => BatteryEvent::LowBattery.name(),
        }
    }
}

/// The events of one step, most urgent first.
pub type ManholeEvents = Vec<ManholeEvent, 4>;

/// Thresholds of the manhole monitor. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct ManholeConfig {
    /// Tilted above this angle, in degrees. Default 10° (issue 4): a seated cover rocks a few
    /// degrees under traffic; one lifted off its seat sits at 10° or more.
    pub tilt_on_deg: f32,
    /// Back in place below this angle, in degrees. Default 5°, the gateway's `cover_displaced`
    /// clear level.
    pub tilt_off_deg: f32,
    /// How long the cover must stay tilted or open, in ms. Default 2 s (issue 4): a vehicle
    /// passing over a loose cover rocks it for well under that.
    pub displaced_hold_ms: u64,
    /// Overflow above this depth, in cm. Default 80 cm, the gateway's `water_overflow` rule; set
    /// it per well from the depth to the lowest inlet.
    pub water_on_cm: f32,
    /// Overflow cleared below this depth, in cm. Default 60 cm, the gateway's clear level.
    pub water_off_cm: f32,
    /// How long the water must stay high, in ms. Default 10 s, longer than a wave or a false
    /// ultrasonic echo from a ladder rung.
    pub water_hold_ms: u64,
    /// Gas alarm above this level, in ppm. Default 5 000 ppm: 10 % of methane's lower explosive
    /// limit, the usual first alarm level and the gateway's `gas_high` rule.
    pub gas_on_ppm: f32,
    /// Gas alarm cleared below this level, in ppm. Default 2 500 ppm, the gateway's clear level.
    pub gas_off_ppm: f32,
    /// How long the gas must stay high, in ms. Default 2 s: one spike of the sensor is not gas.
    pub gas_hold_ms: u64,
    /// The low-battery thresholds.
    pub battery: BatteryConfig,
}

impl Default for ManholeConfig {
    /// The field-tested defaults; see each field for its value and source.
    fn default() -> Self {
        Self {
            tilt_on_deg: 10.0,
            tilt_off_deg: 5.0,
            displaced_hold_ms: 2_000,
            water_on_cm: 80.0,
            water_off_cm: 60.0,
            water_hold_ms: 10_000,
            gas_on_ppm: 5_000.0,
            gas_off_ppm: 2_500.0,
            gas_hold_ms: 2_000,
            battery: BatteryConfig::default(),
        }
    }
}

/// The manhole monitor's state.
#[derive(Clone, Debug)]
pub struct Manhole {
    tilt_on_deg: f32,
    tilt_off_deg: f32,
    out_of_seat: bool,
    displaced: Dwell,
    water: Hysteresis,
    overflow: Dwell,
    gas: Hysteresis,
    gas_high: Dwell,
    battery: Battery,
}

impl Manhole {
    /// A monitor with the given thresholds.
    pub fn new(config: &ManholeConfig) -> Self {
        Self {
            tilt_on_deg: config.tilt_on_deg,
            tilt_off_deg: config.tilt_off_deg.min(config.tilt_on_deg),
            out_of_seat: false,
            displaced: Dwell::new(config.displaced_hold_ms),
            water: Hysteresis::rising(config.water_on_cm, config.water_off_cm),
            overflow: Dwell::new(config.water_hold_ms),
            gas: Hysteresis::rising(config.gas_on_ppm, config.gas_off_ppm),
            gas_high: Dwell::new(config.gas_hold_ms),
            battery: Battery::new(&config.battery),
        }
    }

    /// Feeds one sample taken at `now_ms`; returns the events to send, most urgent first.
    pub fn step(&mut self, now_ms: u64, s: &ManholeSample) -> ManholeEvents {
        let mut events = ManholeEvents::new();
        self.gas.update(s.gas_ppm);
        if self.gas_high.update(self.gas.is_active(), now_ms) {
            raise(&mut events, ManholeEvent::GasHigh);
        }
        if s.cover_open || s.tilt_deg > self.tilt_on_deg {
            self.out_of_seat = true;
        } else if s.tilt_deg < self.tilt_off_deg {
            self.out_of_seat = false;
        }
        if self.displaced.update(self.out_of_seat, now_ms) {
            raise(&mut events, ManholeEvent::CoverDisplaced);
        }
        self.water.update(s.water_cm);
        if self.overflow.update(self.water.is_active(), now_ms) {
            raise(&mut events, ManholeEvent::WaterOverflow);
        }
        if self.battery.step(now_ms, s.battery_v).is_some() {
            raise(&mut events, ManholeEvent::LowBattery);
        }
        events
    }

    /// Whether some condition is being timed and has not fired yet: sample again soon.
    pub fn is_pending(&self) -> bool {
        self.displaced.is_pending()
            || self.overflow.is_pending()
            || self.gas_high.is_pending()
            || self.battery.is_pending()
    }
}

/// When a battery node reports. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// The longest silence, in ms: a heartbeat (a telemetry message with the current readings)
    /// goes out when nothing else was sent for this long. Default 30 min: the gateway marks a
    /// device offline after three of its kind's `report_every_secs`, and the manhole kind says
    /// 1 800 s (`gateway/kinds.toml`), so a stolen or drowned node is noticed within 90 minutes
    /// rather than the 18 hours the 6 h of issue 4 would give. 48 short uplinks a day still leave
    /// a node on two lithium cells years of life. Keep it equal to `report_every_secs`.
    pub heartbeat_every_ms: u64,
}

impl Default for ScheduleConfig {
    /// The default: a heartbeat every 30 min, the manhole kind's reporting interval.
    fn default() -> Self {
        Self {
            heartbeat_every_ms: 30 * 60_000,
        }
    }
}

/// What the node should send now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Nothing: sleep until [`Schedule::next_due_ms`] or the next sample.
    Nothing,
    /// The events of this step, at once (life-safety messages never wait).
    Events,
    /// A heartbeat: telemetry with the current readings.
    Heartbeat,
}

/// The reporting schedule of a node that sleeps: events at once, a heartbeat after a silence.
///
/// Invariant: between two calls of [`Schedule::sent`], at most one heartbeat is due; the first
/// one is due at start, so the gateway hears from a node as soon as it boots.
#[derive(Clone, Debug)]
pub struct Schedule {
    every_ms: u64,
    next_ms: u64,
}

impl Schedule {
    /// A schedule whose first heartbeat is due at `now_ms`.
    pub fn new(config: &ScheduleConfig, now_ms: u64) -> Self {
        Self {
            every_ms: config.heartbeat_every_ms,
            next_ms: now_ms,
        }
    }

    /// What to send at `now_ms`, given whether the step raised any events.
    pub fn due(&self, now_ms: u64, has_events: bool) -> Report {
        if has_events {
            Report::Events
        } else if now_ms >= self.next_ms {
            Report::Heartbeat
        } else {
            Report::Nothing
        }
    }

    /// Records that a message went out at `now_ms` (any message shows the node is alive), which
    /// pushes the next heartbeat back by a full period.
    pub fn sent(&mut self, now_ms: u64) {
        self.next_ms = now_ms.saturating_add(self.every_ms);
    }

    /// When the next heartbeat is due, in ms on the node's clock: the node may sleep until then.
    pub fn next_due_ms(&self) -> u64 {
        self.next_ms
    }
}

#[cfg(test)]
mod tests {
    use super::ManholeEvent::*;
    use super::*;
    use proptest::prelude::*;

    fn at_rest() -> ManholeSample {
        ManholeSample {
            tilt_deg: 0.5,
            cover_open: false,
            water_cm: 20.0,
            gas_ppm: 10.0,
            battery_v: 3.6,
        }
    }

    fn tilted(tilt_deg: f32) -> ManholeSample {
        ManholeSample {
            tilt_deg,
            ..at_rest()
        }
    }

    fn run(script: &[(u64, ManholeSample, &[ManholeEvent])]) {
        let mut m = Manhole::new(&ManholeConfig::default());
        for (t, s, want) in script {
            assert_eq!(m.step(*t, s).as_slice(), *want, "at {t} ms");
        }
    }

    #[test]
    fn a_tilt_shorter_than_two_seconds_is_ignored() {
        run(&[
            (0, at_rest(), &[]),
            (100, tilted(14.0), &[]),
            (600, tilted(18.0), &[]),
            (2_099, tilted(12.0), &[]),
            (2_100, tilted(2.0), &[]),
            (2_200, tilted(14.0), &[]),
            (3_000, at_rest(), &[]),
            (60_000, at_rest(), &[]),
        ]);
    }

    #[test]
    fn a_cover_tilted_for_two_seconds_is_displaced_once_until_it_is_back_in_its_seat() {
        run(&[
            (0, at_rest(), &[]),
            (1_000, tilted(11.0), &[]),
            (2_999, tilted(11.0), &[]),
            (3_000, tilted(11.0), &[CoverDisplaced]),
            (10_000, tilted(30.0), &[]),
            (20_000, tilted(7.0), &[]),
            (30_000, tilted(12.0), &[]),
            (40_000, tilted(4.0), &[]),
            (50_000, tilted(12.0), &[]),
            (52_000, tilted(12.0), &[CoverDisplaced]),
        ]);
    }

    #[test]
    fn an_open_contact_is_a_displaced_cover_even_lying_flat() {
        let open = ManholeSample {
            cover_open: true,
            ..at_rest()
        };
        run(&[
            (0, open, &[]),
            (1_000, at_rest(), &[]),
            (2_000, open, &[]),
            (4_000, open, &[CoverDisplaced]),
        ]);
    }

    #[test]
    fn a_cover_that_was_open_is_back_in_its_seat_only_when_closed_and_level() {
        let open = ManholeSample {
            cover_open: true,
            ..at_rest()
        };
        run(&[
            (0, open, &[]),
            (2_000, open, &[CoverDisplaced]),
            (3_000, tilted(7.0), &[]),
            (4_000, open, &[]),
            (10_000, tilted(4.0), &[]),
            (11_000, tilted(7.0), &[]),
            (20_000, tilted(7.0), &[]),
        ]);
    }

    #[test]
    fn rising_water_overflows_once_and_clears_below_the_dead_band() {
        let water = |water_cm: f32| ManholeSample {
            water_cm,
            ..at_rest()
        };
        run(&[
            (0, water(79.0), &[]),
            (1_000, water(85.0), &[]),
            (5_000, water(70.0), &[]),
            (10_999, water(81.0), &[]),
            (11_000, water(81.0), &[WaterOverflow]),
            (20_000, water(61.0), &[]),
            (30_000, water(59.0), &[]),
            (40_000, water(90.0), &[]),
            (50_000, water(90.0), &[WaterOverflow]),
        ]);
    }

    #[test]
    fn gas_above_ten_percent_of_the_lower_explosive_limit_is_gas_high() {
        let gas = |gas_ppm: f32| ManholeSample {
            gas_ppm,
            ..at_rest()
        };
        run(&[
            (0, gas(4_000.0), &[]),
            (1_000, gas(6_000.0), &[]),
            (2_000, gas(1_000.0), &[]),
            (3_000, gas(5_500.0), &[]),
            (5_000, gas(5_500.0), &[GasHigh]),
            (6_000, gas(3_000.0), &[]),
            (7_000, gas(5_500.0), &[]),
        ]);
    }

    #[test]
    fn gas_comes_before_the_cover_and_the_battery_in_one_step() {
        let everything = ManholeSample {
            tilt_deg: 40.0,
            cover_open: true,
            water_cm: 200.0,
            gas_ppm: 20_000.0,
            battery_v: 3.0,
        };
        run(&[
            (0, everything, &[]),
            (
                60_000,
                everything,
                &[GasHigh, CoverDisplaced, WaterOverflow, LowBattery],
            ),
        ]);
    }

    #[test]
    fn a_pending_condition_asks_for_the_next_sample_soon() {
        let mut m = Manhole::new(&ManholeConfig::default());
        assert!(!m.is_pending());
        m.step(0, &tilted(20.0));
        assert!(m.is_pending());
        assert_eq!(m.step(2_000, &tilted(20.0)).as_slice(), [CoverDisplaced]);
        assert!(!m.is_pending());
    }

    #[test]
    fn the_schedule_sends_at_boot_then_every_half_hour_and_events_at_once() {
        const MIN: u64 = 60_000;
        let mut s = Schedule::new(&ScheduleConfig::default(), 1_000);
        assert_eq!(s.due(1_000, false), Report::Heartbeat);
        s.sent(1_000);
        assert_eq!(s.next_due_ms(), 1_000 + 30 * MIN);
        assert_eq!(s.due(10 * MIN, false), Report::Nothing);
        assert_eq!(s.due(10 * MIN, true), Report::Events);
        s.sent(10 * MIN);
        assert_eq!(s.due(1_000 + 30 * MIN, false), Report::Nothing);
        assert_eq!(s.due(40 * MIN - 1, false), Report::Nothing);
        assert_eq!(s.due(40 * MIN, false), Report::Heartbeat);
        assert_eq!(s.next_due_ms(), 40 * MIN);
    }

    fn sample() -> impl Strategy<Value = ManholeSample> {
        (
            0.0f32..30.0,
            any::<bool>(),
            0.0f32..150.0,
            0.0f32..10_000.0,
            3.0f32..3.7,
        )
            .prop_map(|(tilt_deg, cover_open, water_cm, gas_ppm, battery_v)| {
                ManholeSample {
                    tilt_deg,
                    cover_open,
                    water_cm,
                    gas_ppm,
                    battery_v,
                }
            })
    }

    proptest! {
        #[test]
        fn a_tilt_shorter_than_the_ignore_time_never_raises_cover_displaced(
            start in 0u64..1_000_000,
            steps in proptest::collection::vec((0u64..500, 10.1f32..90.0), 1..20),
            after in 0.0f32..4.99,
        ) {
            let mut m = Manhole::new(&ManholeConfig::default());
            prop_assert!(m.step(start, &at_rest()).is_empty());
            let mut t = start + 1;
            let first = t;
            for (gap, tilt) in steps {
                if t + gap - first >= 2_000 {
                    break;
                }
                t += gap;
                prop_assert!(m.step(t, &tilted(tilt)).is_empty(), "at {} ms", t);
            }
            for i in 1..100 {
                prop_assert!(m.step(t + i * 1_000, &tilted(after)).is_empty());
            }
        }

        #[test]
        fn no_manhole_event_is_raised_twice_without_a_clear_in_between(
            steps in proptest::collection::vec((0u64..30_000, sample()), 1..300),
        ) {
            let mut m = Manhole::new(&ManholeConfig::default());
            let mut t = 0;
            let mut armed = [true; 4];
            for (gap, s) in steps {
                t += gap;
                if s.gas_ppm < 2_500.0 { armed[0] = true; }
                if s.tilt_deg < 5.0 && !s.cover_open { armed[1] = true; }
                if s.water_cm < 60.0 { armed[2] = true; }
                if s.battery_v > 3.5 { armed[3] = true; }
                for ev in m.step(t, &s) {
                    let i = ManholeEvent::ALL.iter().position(|e| *e == ev).unwrap();
                    prop_assert!(armed[i], "{:?} twice, at {} ms", ev, t);
                    armed[i] = false;
                }
            }
        }

        #[test]
        fn a_heartbeat_is_never_more_than_a_period_after_the_last_message(
            gaps in proptest::collection::vec((1u64..3_600_000, any::<bool>()), 1..100),
        ) {
            let config = ScheduleConfig::default();
            let mut s = Schedule::new(&config, 0);
            let mut last_sent = None::<u64>;
            let mut t = 0;
            for (gap, has_events) in gaps {
                t += gap;
                let report = s.due(t, has_events);
                let silent_for_a_period =
                    last_sent.is_none_or(|l| t - l >= config.heartbeat_every_ms);
                match report {
                    Report::Events => prop_assert!(has_events),
                    Report::Heartbeat => prop_assert!(!has_events && silent_for_a_period),
                    Report::Nothing => prop_assert!(!has_events && !silent_for_a_period),
                }
                if report != Report::Nothing {
                    s.sent(t);
                    last_sent = Some(t);
                }
            }
        }
    }
}
