//! Perimeter intrusion for one zone (防区): a fence or door contact and an active infrared beam
//! pair (红外对射), armed during set hours of the day.
//!
//! `intrusion` is raised when the contact opens or the beam is broken while the zone is armed,
//! and then not again for [`PerimeterConfig::hold_off_ms`]: someone climbing a fence breaks the
//! beam several times, and one alarm brings the guard. Nothing is raised while the zone is
//! disarmed, and what happened then does not count later. An edge is what counts: a contact
//! already open when the zone arms (a gate left open) raises nothing, though the node's
//! `contact_open` reading shows it.
//!
//! A beam counts as broken only once it stayed broken for [`PerimeterConfig::beam_debounce_ms`]:
//! a bird flying through, a falling leaf or blown debris breaks it for less. GB 10408.4-2000 asks a
//! beam detector to alarm when its beam is interrupted for more than 40 ms, and commercial beam
//! pairs make the interruption time adjustable upwards from there for the same reason (Optex's
//! note on its AX series: a longer time against leaves, debris, birds and animals, but too long
//! and a quickly moving intruder gets through). A person running through takes 60 ms or more.
//!
//! The zone is armed by the local time of day: [`ArmedHours`] in local time, the node's UTC
//! offset to get there, and the wall clock passed to [`Perimeter::step`] (the detector reads no
//! clock). A node that does not know the time yet is armed: a missed intrusion cannot be made
//! good afterwards, a visit from the guard for nothing can.

use super::timing::{Debounce, HoldOff};
use super::Event;

/// Minutes in a day.
const DAY_MIN: u16 = 24 * 60;

/// A time of day, to the minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// `hour`:`minute`, or `None` past 23:59.
    pub const fn hm(hour: u8, minute: u8) -> Option<Self> {
        if hour < 24 && minute < 60 {
            Some(Self(hour as u16 * 60 + minute as u16))
        } else {
            None
        }
    }

    /// Minutes since midnight.
    pub const fn minutes(self) -> u16 {
        self.0
    }
}

/// When a zone is armed, in local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmedHours {
    /// Around the clock: a wall nobody should cross at any hour (a 24-hour zone).
    Always,
    /// Every day from `from` until just before `until`, past midnight when `from` is the later
    /// of the two; never when they are equal.
    Daily {
        /// The first minute armed.
        from: TimeOfDay,
        /// The first minute disarmed again.
        until: TimeOfDay,
    },
}

impl ArmedHours {
    /// Whether the zone is armed at `time`.
    pub fn contains(&self, time: TimeOfDay) -> bool {
        match *self {
            Self::Always => true,
            Self::Daily { from, until } if from <= until => from <= time && time < until,
            Self::Daily { from, until } => time >= from || time < until,
        }
    }
}

/// The local time of day at `wall_ms` (ms since the Unix epoch) for a UTC offset in minutes.
pub fn local_time(wall_ms: u64, utc_offset_min: i16) -> TimeOfDay {
    let minutes = i64::try_from(wall_ms / 60_000).unwrap_or(i64::MAX) + i64::from(utc_offset_min);
    // In 0..1440 by rem_euclid, so the cast cannot truncate.
    TimeOfDay(minutes.rem_euclid(i64::from(DAY_MIN)) as u16)
}

/// One reading of a perimeter zone's inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerimeterSample {
    /// The fence or door contact reads open.
    pub contact_open: bool,
    /// The infrared beam does not reach its receiver.
    pub beam_broken: bool,
}

/// The perimeter detector's one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerimeterEvent {
    /// Someone crossed the armed zone.
    Intrusion,
}

impl Event for PerimeterEvent {
    const ALL: &'static [Self] = &[Self::Intrusion];

    fn name(&self) -> &'static str {
        match self {
            Self::Intrusion => "intrusion",
        }
    }
}

/// Settings of a perimeter zone. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct PerimeterConfig {
    /// When the zone is armed, in local time. Default 22:00 until 06:00, the night of
    /// GB 3096-2008 (夜间: 22:00 to 6:00 the next day), when nobody should be at the fence.
    pub armed: ArmedHours,
    /// The node's offset from UTC, in minutes (taken modulo a day). Default 480: China Standard
    /// Time, UTC+8, the whole country's time.
    pub utc_offset_min: i16,
    /// How long the contact must read open before it counts, in ms. Default 50 ms, well over
    /// a reed contact's bounce (5–20 ms).
    pub contact_debounce_ms: u64,
    /// How long the beam must stay broken before it counts, in ms. Default 50 ms: just over the
    /// 40 ms GB 10408.4-2000 asks a beam detector to alarm at, longer than a bird takes through
    /// the beam and shorter than a running person.
    pub beam_debounce_ms: u64,
    /// How long after an `intrusion` the next one waits, in ms. Default 60 s: one alarm per
    /// crossing, not one per beam break while someone climbs.
    pub hold_off_ms: u64,
}

impl Default for PerimeterConfig {
    /// The field-tested defaults; see each field for its value and source.
    fn default() -> Self {
        Self {
            armed: ArmedHours::Daily {
                from: TimeOfDay(22 * 60),
                until: TimeOfDay(6 * 60),
            },
            utc_offset_min: 8 * 60,
            contact_debounce_ms: 50,
            beam_debounce_ms: 50,
            hold_off_ms: 60_000,
        }
    }
}

/// One perimeter zone's state.
#[derive(Clone, Debug)]
pub struct Perimeter {
    hours: ArmedHours,
    utc_offset_min: i16,
    contact: Debounce,
    beam: Debounce,
    hold_off: HoldOff,
    armed: bool,
}

impl Perimeter {
    /// A zone with the given settings, contact closed and beam whole.
    pub fn new(config: &PerimeterConfig) -> Self {
        Self {
            hours: config.armed,
            utc_offset_min: config.utc_offset_min,
            contact: Debounce::new(false, config.contact_debounce_ms),
            beam: Debounce::new(false, config.beam_debounce_ms),
            hold_off: HoldOff::new(config.hold_off_ms),
            armed: true,
        }
    }

    /// Feeds one sample taken at monotonic `now_ms`, when the wall clock read `wall_ms` (ms since
    /// the Unix epoch; `None` if the node does not know it yet); returns the event to send, if any.
    pub fn step(
        &mut self,
        now_ms: u64,
        wall_ms: Option<u64>,
        s: &PerimeterSample,
    ) -> Option<PerimeterEvent> {
        self.armed =
            wall_ms.is_none_or(|wall| self.hours.contains(local_time(wall, self.utc_offset_min)));
        let opened = self.contact.update(s.contact_open, now_ms) == Some(true);
        let broken = self.beam.update(s.beam_broken, now_ms) == Some(true);
        (self.armed && (opened || broken) && self.hold_off.try_pass(now_ms))
            .then_some(PerimeterEvent::Intrusion)
    }

    /// Whether the zone was armed at the last step.
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// Whether the contact is open (debounced).
    pub fn contact_open(&self) -> bool {
        self.contact.level()
    }

    /// Whether the beam is broken (debounced).
    pub fn beam_broken(&self) -> bool {
        self.beam.level()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INTRUSION: Option<PerimeterEvent> = Some(PerimeterEvent::Intrusion);
    /// 2024-10-04 00:00 UTC.
    const DAY0: u64 = 1_728_000_000_000;

    /// The wall clock at `hour`:`minute` local time (UTC+8) on 2024-10-04, plus `ms`.
    fn at(hour: u64, minute: u64, ms: u64) -> u64 {
        DAY0 + (hour * 60 + minute) * 60_000 - 8 * 3_600_000 + ms
    }

    fn beam(broken: bool) -> PerimeterSample {
        PerimeterSample {
            beam_broken: broken,
            contact_open: false,
        }
    }

    fn contact(open: bool) -> PerimeterSample {
        PerimeterSample {
            contact_open: open,
            beam_broken: false,
        }
    }

    /// A step of a script: monotonic ms, wall clock, sample, the event wanted, armed after it.
    type Step = (
        u64,
        Option<u64>,
        PerimeterSample,
        Option<PerimeterEvent>,
        bool,
    );

    /// Runs a script against the defaults.
    fn run(script: &[Step]) {
        let mut p = Perimeter::new(&PerimeterConfig::default());
        for &(t, wall, s, want, armed) in script {
            assert_eq!(p.step(t, wall, &s), want, "at {t} ms");
            assert_eq!(p.armed(), armed, "at {t} ms");
        }
    }

    #[test]
    fn a_broken_beam_at_night_is_an_intrusion_and_by_day_it_is_not() {
        let w = |t: u64| Some(at(21, 59, 0) + t);
        run(&[
            (0, w(0), beam(true), None, false),
            (50, w(50), beam(true), None, false), // 21:59, disarmed
            (30_000, w(30_000), beam(false), None, false),
            (60_000, w(60_000), beam(false), None, true), // 22:00
            (61_000, w(61_000), beam(true), None, true),
            (61_050, w(61_050), beam(true), INTRUSION, true),
            (61_500, w(61_500), contact(true), None, true),
            (61_550, w(61_550), contact(true), None, true), // held off
            (100_000, w(100_000), beam(true), None, true),
            (100_050, w(100_050), beam(true), None, true), // held off
            (110_000, w(110_000), beam(false), None, true),
            (110_050, w(110_050), beam(false), None, true),
            (121_100, w(121_100), beam(true), None, true),
            (121_150, w(121_150), beam(true), INTRUSION, true), // after the hold-off
        ]);
    }

    #[test]
    fn a_bird_through_the_beam_is_no_intrusion() {
        let w = Some(at(23, 0, 0));
        run(&[
            (0, w, beam(false), None, true),
            (10, w, beam(true), None, true),
            (30, w, beam(true), None, true),
            (40, w, beam(false), None, true), // 30 ms
            (59, w, beam(true), None, true),
            (100, w, beam(true), None, true),
            (109, w, beam(true), INTRUSION, true), // 50 ms from 59
        ]);
    }

    #[test]
    fn the_armed_hours_cross_midnight_and_end_at_six() {
        let mut p = Perimeter::new(&PerimeterConfig::default());
        let cases = [
            (at(0, 0, 0), true),
            (at(5, 59, 59_999), true),
            (at(6, 0, 0), false),
            (at(12, 0, 0), false),
            (at(21, 59, 59_999), false),
            (at(22, 0, 0), true),
            (at(23, 59, 0), true),
        ];
        for (wall, armed) in cases {
            p.step(0, Some(wall), &PerimeterSample::default());
            assert_eq!(p.armed(), armed, "{:?}", local_time(wall, 480));
        }
    }

    #[test]
    fn a_door_opened_by_day_raises_nothing_and_counts_for_nothing_at_night() {
        let day = Some(at(17, 59, 59_000));
        let night = Some(at(22, 0, 0));
        run(&[
            (0, day, contact(true), None, false),
            (100, day, contact(true), None, false),
            (1_000, night, contact(true), None, true), // still open: no new edge
            (2_000, night, contact(false), None, true),
            (2_100, night, contact(false), None, true),
            (3_000, night, contact(true), None, true),
            (3_050, night, contact(true), INTRUSION, true),
        ]);
    }

    #[test]
    fn a_node_that_does_not_know_the_time_guards_its_zone() {
        run(&[
            (0, None, contact(true), None, true),
            (50, None, contact(true), INTRUSION, true),
        ]);
    }

    #[test]
    fn armed_hours_are_read_in_local_time() {
        let cases = [
            (ArmedHours::Always, (12, 0), true),
            (daily((8, 0), (18, 0)), (7, 59), false),
            (daily((8, 0), (18, 0)), (8, 0), true),
            (daily((8, 0), (18, 0)), (17, 59), true),
            (daily((8, 0), (18, 0)), (18, 0), false),
            (daily((22, 0), (6, 0)), (3, 0), true),
            (daily((6, 0), (6, 0)), (6, 0), false),
            (daily((6, 0), (6, 0)), (12, 0), false),
        ];
        for (hours, (h, m), want) in cases {
            let time = TimeOfDay::hm(h, m).unwrap();
            assert_eq!(hours.contains(time), want, "{hours:?} at {h}:{m}");
        }
        assert_eq!(TimeOfDay::hm(24, 0), None);
        assert_eq!(TimeOfDay::hm(23, 60), None);
        assert_eq!(local_time(DAY0, 480), TimeOfDay::hm(8, 0).unwrap());
        assert_eq!(local_time(DAY0, -300), TimeOfDay::hm(19, 0).unwrap());
        assert_eq!(local_time(DAY0 + 90_000, 0).minutes(), 1);
    }

    fn daily(from: (u8, u8), until: (u8, u8)) -> ArmedHours {
        ArmedHours::Daily {
            from: TimeOfDay::hm(from.0, from.1).unwrap(),
            until: TimeOfDay::hm(until.0, until.1).unwrap(),
        }
    }

    fn steps() -> impl Strategy<Value = Vec<(u64, u64, bool, bool)>> {
        proptest::collection::vec(
            (0u64..30_000, 0u64..86_400_000, any::<bool>(), any::<bool>()),
            1..300,
        )
    }

    proptest! {
        #[test]
        fn no_intrusion_is_raised_while_disarmed(steps in steps()) {
            let mut p = Perimeter::new(&PerimeterConfig::default());
            let mut t = 0;
            for (gap, wall, contact_open, beam_broken) in steps {
                t += gap;
                let wall = DAY0 + wall;
                let armed = ArmedHours::Daily {
                    from: TimeOfDay::hm(22, 0).unwrap(),
                    until: TimeOfDay::hm(6, 0).unwrap(),
                }
                .contains(local_time(wall, 480));
                let event = p.step(t, Some(wall), &PerimeterSample { contact_open, beam_broken });
                prop_assert_eq!(p.armed(), armed);
                prop_assert!(armed || event.is_none(), "an intrusion while disarmed, at {} ms", t);
            }
        }

        #[test]
        fn intrusion_is_never_raised_twice_within_the_hold_off_nor_without_an_edge(steps in steps()) {
            let mut p = Perimeter::new(&PerimeterConfig::default());
            let (mut t, mut last) = (0u64, None::<u64>);
            for (gap, _, contact_open, beam_broken) in steps {
                t += gap;
                let before = (p.contact_open(), p.beam_broken());
                let event = p.step(t, None, &PerimeterSample { contact_open, beam_broken });
                if event.is_some() {
                    prop_assert!(last.is_none_or(|l| t - l >= 60_000), "twice within the hold-off, at {} ms", t);
                    let opened = !before.0 && p.contact_open();
                    let broken = !before.1 && p.beam_broken();
                    prop_assert!(opened || broken, "no edge, at {} ms", t);
                    last = Some(t);
                }
            }
        }
    }
}
