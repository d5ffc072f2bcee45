//! When each virtual device sends: the devices of a group share one reporting period and their
//! sends are spread evenly over it, so the broker sees a steady stream rather than every device
//! at once at the top of each period.
//!
//! The group's sends are numbered k = 0, 1, 2, …; send k is device `k mod n` at
//! `(k div n) × period + ⌊(k mod n) × period / n⌋` after the start. So each device sends exactly
//! once per period, and consecutive sends of the group are `period / n` apart (to the nanosecond).
//! Pure: elapsed time in, send numbers out.

use std::time::Duration;

/// The send times of `n` devices that each send once per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spread {
    devices: u64,
    period_ns: u128,
}

impl Spread {
    /// `devices` devices, each sending once per `period`; `None` if either is zero.
    pub fn new(devices: usize, period: Duration) -> Option<Self> {
        let period_ns = period.as_nanos();
        (devices > 0 && period_ns > 0).then_some(Self {
            devices: devices as u64,
            period_ns,
        })
    }

    /// The device of send `k`.
    pub fn device(&self, k: u64) -> usize {
        (k % self.devices) as usize
    }

    /// How many times the device of send `k` sent before it.
    pub fn turn(&self, k: u64) -> u64 {
        k / self.devices
    }

    /// When send `k` is due, after the start.
    pub fn at(&self, k: u64) -> Duration {
        let n = u128::from(self.devices);
        let (round, slot) = (u128::from(k) / n, u128::from(k) % n);
        nanos(round * self.period_ns + slot * self.period_ns / n)
    }

    /// How many sends are due strictly before `elapsed`: sends `0..due(elapsed)`.
    pub fn due(&self, elapsed: Duration) -> u64 {
        let (t, n, p) = (elapsed.as_nanos(), u128::from(self.devices), self.period_ns);
        // Within a round, slot i is due before `rem` when ⌊i·p/n⌋ < rem, that is i·p < rem·n.
        let (rounds, rem) = (t / p, t % p);
        let in_round = (rem * n).div_ceil(p);
        u64::try_from(rounds * n + in_round).unwrap_or(u64::MAX)
    }

    /// The fleet's rate in sends per second.
    pub fn rate(&self) -> f64 {
        self.devices as f64 * 1e9 / self.period_ns as f64
    }
}

fn nanos(ns: u128) -> Duration {
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (ns % 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn four_devices_a_second_send_every_quarter_second_in_turn() {
        let s = Spread::new(4, Duration::from_secs(1)).unwrap();
        let at: Vec<u128> = (0..6).map(|k| s.at(k).as_millis()).collect();
        assert_eq!(at, [0, 250, 500, 750, 1000, 1250]);
        let devices: Vec<usize> = (0..6).map(|k| s.device(k)).collect();
        assert_eq!(devices, [0, 1, 2, 3, 0, 1]);
        assert_eq!((s.turn(3), s.turn(4)), (0, 1));
        assert_eq!(s.due(Duration::ZERO), 0);
        assert_eq!(s.due(Duration::from_nanos(1)), 1);
        assert_eq!(s.due(Duration::from_millis(250)), 1);
        assert_eq!(s.due(Duration::from_millis(251)), 2);
        assert_eq!(s.due(Duration::from_secs(60)), 240);
        assert_eq!(s.rate(), 4.0);
    }

    #[test]
    fn an_empty_group_or_a_zero_period_has_no_schedule() {
        assert_eq!(Spread::new(0, Duration::from_secs(1)), None);
        assert_eq!(Spread::new(5, Duration::ZERO), None);
    }

    proptest! {
        /// `due` agrees with counting the sends whose time is before `elapsed`, one by one.
        #[test]
        fn due_counts_exactly_the_sends_before_a_time(
            n in 1usize..50,
            period_us in 1u64..5_000_000,
            elapsed_us in 0u64..20_000_000,
        ) {
            let s = Spread::new(n, Duration::from_micros(period_us)).unwrap();
            let elapsed = Duration::from_micros(elapsed_us);
            let due = s.due(elapsed);
            prop_assert!(due == 0 || s.at(due - 1) < elapsed);
            prop_assert!(s.at(due) >= elapsed);
        }

        /// Every device sends once per period, and the group's sends never bunch up: the gap
        /// between two consecutive sends is the period over n, give or take a nanosecond.
        #[test]
        fn each_device_sends_once_a_period_and_sends_are_evenly_spaced(
            n in 1usize..10_000,
            period_ms in 1u64..600_000,
            k in 0u64..1_000_000,
        ) {
            let period = Duration::from_millis(period_ms);
            let s = Spread::new(n, period).unwrap();
            prop_assert_eq!(s.device(k + n as u64), s.device(k));
            prop_assert_eq!(s.at(k + n as u64) - s.at(k), period);
            let gap = (s.at(k + 1) - s.at(k)).as_nanos();
            let even = period.as_nanos() / n as u128;
            prop_assert!(gap == even || gap == even + 1, "gap {} vs {}", gap, even);
        }
    }
}
