//! The timing primitives every detector is built from: debounce, dwell, accumulate, hysteresis,
//! hold-off and a sliding count window.
//!
//! All of them are sample-driven: they see the input only when a step is called, with the time of
//! that step, and they assume the input held its value between two steps. A condition therefore
//! "held for N ms" once two steps at least N ms apart both saw it (or one step, when N is 0).
//! Time is `now_ms` from a monotonic clock; should it ever go back, every elapsed time saturates at
//! 0 instead of wrapping, so a bad clock delays an event but never panics or fires one early.

use heapless::Deque;

/// A boolean input that changes its reported level only after the raw input held the new level
/// for `hold_ms` (contact bounce, a flickering sensor).
#[derive(Clone, Debug)]
pub struct Debounce {
    hold_ms: u64,
    level: bool,
    /// When the raw input was first seen differing from `level`, if it still differs.
    differs_since: Option<u64>,
}

impl Debounce {
    /// A debouncer whose level starts at `initial`.
    pub const fn new(initial: bool, hold_ms: u64) -> Self {
        Self {
            hold_ms,
            level: initial,
            differs_since: None,
        }
    }

    /// Feeds the raw level at `now_ms`; returns the new level when the debounced level changes.
    pub fn update(&mut self, raw: bool, now_ms: u64) -> Option<bool> {
        if raw == self.level {
            self.differs_since = None;
            return None;
        }
        let since = *self.differs_since.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) >= self.hold_ms {
            self.level = raw;
            self.differs_since = None;
            Some(raw)
        } else {
            None
        }
    }

    /// The debounced level.
    pub fn level(&self) -> bool {
        self.level
    }

    /// When the raw input was first seen differing from the level, if it still does: where a
    /// change that is being timed began (a car arriving, not the moment it was believed).
    pub fn differs_since(&self) -> Option<u64> {
        self.differs_since
    }
}

/// Fires once when a condition has held continuously for `dwell_ms`, and re-arms only after the
/// condition was seen false.
#[derive(Clone, Debug)]
pub struct Dwell {
    dwell_ms: u64,
    true_since: Option<u64>,
    fired: bool,
}

impl Dwell {
    /// A dwell timer that fires after `dwell_ms` of the condition.
    pub const fn new(dwell_ms: u64) -> Self {
        Self {
            dwell_ms,
            true_since: None,
            fired: false,
        }
    }

    /// Feeds the condition at `now_ms`; true exactly on the step where it fires.
    pub fn update(&mut self, condition: bool, now_ms: u64) -> bool {
        if !condition {
            self.true_since = None;
            self.fired = false;
            return false;
        }
        let since = *self.true_since.get_or_insert(now_ms);
        if !self.fired && now_ms.saturating_sub(since) >= self.dwell_ms {
            self.fired = true;
            true
        } else {
            false
        }
    }

    /// Whether the condition is true but has not fired yet (a node may wake sooner to time it).
    pub fn is_pending(&self) -> bool {
        self.true_since.is_some() && !self.fired
    }
}

/// Fires once when a condition has held for `limit_ms` in total, counting only time between two
/// steps that both saw it, and re-arms only after a separate reset condition was seen.
///
/// Unlike [`Dwell`], a pause in the condition does not restart the count; only the reset does.
/// The lift's door-open-while-moving uses it: each trip with a bridged door contact adds its
/// moving time until the door is finally seen closed.
#[derive(Clone, Debug)]
pub struct Accumulate {
    limit_ms: u64,
    total_ms: u64,
    /// The time of the previous step if the condition held there.
    held_at: Option<u64>,
    fired: bool,
}

impl Accumulate {
    /// An accumulator that fires after `limit_ms` of the condition in total.
    pub const fn new(limit_ms: u64) -> Self {
        Self {
            limit_ms,
            total_ms: 0,
            held_at: None,
            fired: false,
        }
    }

    /// Feeds the condition and the reset at `now_ms`; true exactly on the step where it fires.
    /// A reset wins over the condition on the same step.
    pub fn update(&mut self, condition: bool, reset: bool, now_ms: u64) -> bool {
        if reset {
            *self = Self::new(self.limit_ms);
            return false;
        }
        if !condition {
            self.held_at = None;
            return false;
        }
        if let Some(prev) = self.held_at {
            self.total_ms = self.total_ms.saturating_add(now_ms.saturating_sub(prev));
        }
        self.held_at = Some(now_ms);
        if !self.fired && self.total_ms >= self.limit_ms {
            self.fired = true;
            true
        } else {
            false
        }
    }
}

/// A threshold with a dead band: active past `on`, inactive again only past `off` on the other
/// side, so a value hovering at the threshold does not toggle.
///
/// Invariant: `off` lies on the inactive side of `on` (or equals it); the constructors move `off`
/// onto `on` when given the wrong way round. A NaN value changes nothing.
#[derive(Clone, Debug)]
pub struct Hysteresis {
    on: f32,
    off: f32,
    rising: bool,
    active: bool,
}

impl Hysteresis {
    /// Active when the value goes above `on_above`, inactive when it goes below `off_below`.
    pub fn rising(on_above: f32, off_below: f32) -> Self {
        Self {
            on: on_above,
            off: off_below.min(on_above),
            rising: true,
            active: false,
        }
    }

    /// Active when the value goes below `on_below`, inactive when it goes above `off_above`.
    pub fn falling(on_below: f32, off_above: f32) -> Self {
        Self {
            on: on_below,
            off: off_above.max(on_below),
            rising: false,
            active: false,
        }
    }

    /// Feeds a value; returns the new state when it changes.
    pub fn update(&mut self, value: f32) -> Option<bool> {
        let (past_on, past_off) = if self.rising {
            (value > self.on, value < self.off)
        } else {
            (value < self.on, value > self.off)
        };
        if !self.active && past_on {
            self.active = true;
            Some(true)
        } else if self.active && past_off {
            self.active = false;
            Some(false)
        } else {
            None
        }
    }

    /// Whether the value is past the threshold (and has not come back past the dead band).
    pub fn is_active(&self) -> bool {
        self.active
    }
}

/// A hold-off for repeated events: lets one through, then none for `hold_off_ms`.
#[derive(Clone, Debug)]
pub struct HoldOff {
    hold_off_ms: u64,
    last_ms: Option<u64>,
}

impl HoldOff {
    /// A hold-off of `hold_off_ms` between two events.
    pub const fn new(hold_off_ms: u64) -> Self {
        Self {
            hold_off_ms,
            last_ms: None,
        }
    }

    /// Whether an event at `now_ms` would be let through.
    pub fn is_ready(&self, now_ms: u64) -> bool {
        self.last_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= self.hold_off_ms)
    }

    /// When the next event will be let through, in ms (0 if one would be now).
    pub fn ready_at_ms(&self) -> u64 {
        self.last_ms
            .map_or(0, |last| last.saturating_add(self.hold_off_ms))
    }

    /// Lets an event at `now_ms` through (true, and starts the hold-off) or holds it back (false).
    pub fn try_pass(&mut self, now_ms: u64) -> bool {
        let ready = self.is_ready(now_ms);
        if ready {
            self.last_ms = Some(now_ms);
        }
        ready
    }
}

/// Counts occurrences within the last `window_ms`, up to `CAP` of them (older ones beyond `CAP` are
/// forgotten, so the count saturates at `CAP`).
#[derive(Clone, Debug)]
pub struct CountWindow<const CAP: usize> {
    window_ms: u64,
    times: Deque<u64, CAP>,
}

impl<const CAP: usize> CountWindow<CAP> {
    /// An empty window of `window_ms`.
    pub const fn new(window_ms: u64) -> Self {
        Self {
            window_ms,
            times: Deque::new(),
        }
    }

    /// Records one occurrence at `now_ms` and returns the count within the window, this one
    /// included.
    pub fn record(&mut self, now_ms: u64) -> usize {
        if self.times.is_full() {
            self.times.pop_front();
        }
        // Cannot fail: a slot was freed above if the deque was full (and CAP 0 holds nothing).
        let _ = self.times.push_back(now_ms);
        self.count(now_ms)
    }

    /// Forgets occurrences older than the window and returns how many are left.
    pub fn count(&mut self, now_ms: u64) -> usize {
        while self
            .times
            .front()
            .is_some_and(|&t| now_ms.saturating_sub(t) >= self.window_ms)
        {
            self.times.pop_front();
        }
        self.times.len()
    }

    /// Forgets every occurrence.
    pub fn clear(&mut self) {
        self.times.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_debounced_level_changes_only_after_holding_for_the_whole_time() {
        let mut d = Debounce::new(false, 100);
        let script = [
            (0, true, None),
            (50, true, None),
            (60, false, None),
            (70, true, None),
            (169, true, None),
            (170, true, Some(true)),
            (200, true, None),
            (210, false, None),
            (310, false, Some(false)),
        ];
        for (t, raw, want) in script {
            assert_eq!(d.update(raw, t), want, "at {t} ms");
        }
        assert!(!d.level());
    }

    #[test]
    fn a_debounce_tells_when_the_change_it_is_timing_began() {
        let mut d = Debounce::new(false, 100);
        assert_eq!(d.differs_since(), None);
        d.update(true, 40);
        d.update(true, 90);
        assert_eq!(d.differs_since(), Some(40));
        d.update(false, 95);
        assert_eq!(d.differs_since(), None);
    }

    #[test]
    fn a_zero_debounce_follows_the_input_at_once() {
        let mut d = Debounce::new(false, 0);
        assert_eq!(d.update(true, 5), Some(true));
        assert_eq!(d.update(true, 6), None);
        assert_eq!(d.update(false, 7), Some(false));
    }

    #[test]
    fn a_dwell_fires_once_after_the_condition_held_and_rearms_after_it_cleared() {
        let mut d = Dwell::new(1_000);
        let script = [
            (0, true, false),
            (500, true, false),
            (999, true, false),
            (1_000, true, true),
            (5_000, true, false),
            (5_001, false, false),
            (6_000, true, false),
            (6_999, true, false),
            (7_000, true, true),
        ];
        for (t, c, want) in script {
            assert_eq!(d.update(c, t), want, "at {t} ms");
        }
    }

    #[test]
    fn a_dwell_restarts_when_the_condition_breaks_before_it_fires() {
        let mut d = Dwell::new(1_000);
        assert!(!d.update(true, 0));
        assert!(d.is_pending());
        assert!(!d.update(false, 900));
        assert!(!d.is_pending());
        assert!(!d.update(true, 1_000));
        assert!(!d.update(true, 1_999));
        assert!(d.update(true, 2_000));
        assert!(!d.is_pending());
    }

    #[test]
    fn an_accumulator_adds_up_interrupted_stretches_until_reset() {
        let mut a = Accumulate::new(1_000);
        let script = [
            // (time, condition, reset, fires)
            (0, true, false, false),
            (400, true, false, false),   // 400
            (500, false, false, false),  // paused
            (2_000, true, false, false), // the gap does not count
            (2_500, true, false, false), // 900
            (2_600, true, false, true),  // 1000
            (2_700, true, false, false), // once only
            (2_800, true, true, false),  // reset
            (2_900, true, false, false),
            (3_899, true, false, false),
            (3_900, true, false, true),
        ];
        for (t, c, r, want) in script {
            assert_eq!(a.update(c, r, t), want, "at {t} ms");
        }
    }

    #[test]
    fn a_rising_hysteresis_turns_on_above_and_off_below_the_dead_band() {
        let mut h = Hysteresis::rising(10.0, 5.0);
        let script = [
            (9.0, None),
            (10.0, None),
            (10.5, Some(true)),
            (6.0, None),
            (5.0, None),
            (4.9, Some(false)),
            (f32::NAN, None),
            (11.0, Some(true)),
            (f32::NAN, None),
        ];
        for (v, want) in script {
            assert_eq!(h.update(v), want, "at {v}");
        }
        assert!(h.is_active());
    }

    #[test]
    fn a_falling_hysteresis_turns_on_below_and_off_above_the_dead_band() {
        let mut h = Hysteresis::falling(3.3, 3.5);
        assert_eq!(h.update(3.4), None);
        assert_eq!(h.update(3.29), Some(true));
        assert_eq!(h.update(3.5), None);
        assert_eq!(h.update(3.51), Some(false));
    }

    #[test]
    fn thresholds_given_the_wrong_way_round_collapse_to_one_threshold() {
        let mut h = Hysteresis::rising(10.0, 12.0);
        assert_eq!(h.update(11.0), Some(true));
        assert_eq!(h.update(11.0), None);
        assert_eq!(h.update(9.9), Some(false));
    }

    #[test]
    fn a_hold_off_lets_one_event_through_per_period() {
        let mut h = HoldOff::new(1_000);
        assert!(h.try_pass(0));
        assert!(!h.try_pass(1));
        assert!(!h.try_pass(999));
        assert!(h.is_ready(1_000));
        assert!(h.try_pass(1_000));
        assert!(!h.try_pass(1_500));
        assert_eq!(h.ready_at_ms(), 2_000);
        assert_eq!(HoldOff::new(1_000).ready_at_ms(), 0);
    }

    #[test]
    fn a_count_window_forgets_old_occurrences_and_saturates_at_its_capacity() {
        let mut w = CountWindow::<3>::new(1_000);
        assert_eq!(w.record(0), 1);
        assert_eq!(w.record(100), 2);
        assert_eq!(w.record(200), 3);
        assert_eq!(w.record(300), 3);
        assert_eq!(w.count(1_099), 3);
        assert_eq!(w.count(1_100), 2);
        assert_eq!(w.count(1_300), 0);
        w.record(1_400);
        w.clear();
        assert_eq!(w.count(1_400), 0);
    }

    /// Sorted step times from gaps, so the clock never goes back.
    fn times(gaps: &[u64]) -> impl Iterator<Item = u64> + '_ {
        gaps.iter().scan(0u64, |t, g| {
            *t += g;
            Some(*t)
        })
    }

    proptest! {
        #[test]
        fn a_dwell_never_fires_twice_without_the_condition_clearing(
            steps in proptest::collection::vec((0u64..3_000, any::<bool>()), 1..200),
        ) {
            let mut d = Dwell::new(1_000);
            let mut armed = true;
            let mut since = None;
            let gaps: Vec<u64> = steps.iter().map(|s| s.0).collect();
            for (t, &(_, c)) in times(&gaps).zip(&steps) {
                let fired = d.update(c, t);
                if !c {
                    armed = true;
                    since = None;
                    prop_assert!(!fired);
                    continue;
                }
                let s = *since.get_or_insert(t);
                prop_assert_eq!(fired, armed && t - s >= 1_000, "at {} ms", t);
                if fired {
                    armed = false;
                }
            }
        }

        #[test]
        fn a_debounced_level_always_held_raw_for_the_hold_time_before_changing(
            steps in proptest::collection::vec((0u64..300, any::<bool>()), 1..200),
        ) {
            let mut d = Debounce::new(false, 100);
            let mut raw_since = (false, 0u64);
            let gaps: Vec<u64> = steps.iter().map(|s| s.0).collect();
            for (t, &(_, raw)) in times(&gaps).zip(&steps) {
                if raw != raw_since.0 {
                    raw_since = (raw, t);
                }
                if let Some(level) = d.update(raw, t) {
                    prop_assert_eq!(level, raw);
                    prop_assert!(t - raw_since.1 >= 100);
                }
            }
        }

        #[test]
        fn a_hold_off_never_lets_two_events_through_closer_than_its_period(
            gaps in proptest::collection::vec(0u64..2_000, 1..200),
        ) {
            let mut h = HoldOff::new(1_000);
            let mut last: Option<u64> = None;
            for t in times(&gaps) {
                if h.try_pass(t) {
                    prop_assert!(last.is_none_or(|l| t - l >= 1_000));
                    last = Some(t);
                } else {
                    prop_assert!(last.is_some_and(|l| t - l < 1_000));
                }
            }
        }

        #[test]
        fn a_hysteresis_only_changes_past_its_thresholds(
            values in proptest::collection::vec(-20.0f32..40.0, 1..200),
        ) {
            let mut h = Hysteresis::rising(10.0, 5.0);
            for v in values {
                match h.update(v) {
                    Some(true) => prop_assert!(v > 10.0),
                    Some(false) => prop_assert!(v < 5.0),
                    None => {
                        let unchanged = if h.is_active() { v >= 5.0 } else { v <= 10.0 };
                        prop_assert!(unchanged, "{} crossed a threshold unnoticed", v);
                    }
                }
            }
        }

        #[test]
        fn a_clock_going_back_never_panics_and_never_fires_early(
            ts in proptest::collection::vec(0u64..1_000_000, 1..100),
        ) {
            let mut d = Dwell::new(1_000_000);
            let mut a = Accumulate::new(1_000_000);
            let mut b = Debounce::new(false, 1_000_000);
            let mut h = HoldOff::new(10);
            let mut w = CountWindow::<4>::new(10);
            for t in ts {
                prop_assert!(!d.update(true, t));
                a.update(true, false, t);
                prop_assert_eq!(b.update(true, t), None);
                h.try_pass(t);
                prop_assert!(w.record(t) <= 4);
            }
        }
    }
}
