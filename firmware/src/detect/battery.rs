//! Low battery, shared by every kind of node: `low_battery` once when the voltage stays below a
//! threshold, and not again until the voltage came back above a higher one (a new battery).
//!
//! A radio transmission or a cold night pulls a lithium cell's voltage down for a moment, so the
//! low level must hold for [`BatteryConfig::hold_ms`] before it counts. A NaN reading changes
//! nothing.

use super::timing::{Dwell, Hysteresis};
use super::Event;

/// The battery detector's one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatteryEvent {
    /// The battery voltage stayed low: replace the battery (`low_battery`).
    LowBattery,
}

impl Event for BatteryEvent {
    const ALL: &'static [Self] = &[Self::LowBattery];

    fn name(&self) -> &'static str {
        match self {
            Self::LowBattery => "low_battery",
        }
    }
}

/// Thresholds of the low-battery detector. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct BatteryConfig {
    /// Low below this voltage, in volts. Default 3.3 V, the gateway's `low_battery` rule.
    pub low_below_v: f32,
    /// Re-armed above this voltage, in volts. Default 3.5 V, the gateway's `low_battery` rule:
    /// a lithium thionyl chloride cell (3.6 V nominal) only gets back there when replaced.
    pub recovered_above_v: f32,
    /// How long the voltage must stay low, in milliseconds. Default 60 s, far longer than the sag
    /// of a transmission (a few seconds at most).
    pub hold_ms: u64,
}

impl Default for BatteryConfig {
    /// The field-tested defaults: 3.3 V low, 3.5 V recovered, 60 s hold.
    fn default() -> Self {
        Self {
            low_below_v: 3.3,
            recovered_above_v: 3.5,
            hold_ms: 60_000,
        }
    }
}

/// The low-battery detector.
#[derive(Clone, Debug)]
pub struct Battery {
    low: Hysteresis,
    dwell: Dwell,
}

impl Battery {
    /// A detector with the given thresholds.
    pub fn new(config: &BatteryConfig) -> Self {
        Self {
            low: Hysteresis::falling(config.low_below_v, config.recovered_above_v),
            dwell: Dwell::new(config.hold_ms),
        }
    }

    /// Feeds one voltage reading taken at `now_ms`; returns the event to send, if any.
    pub fn step(&mut self, now_ms: u64, battery_v: f32) -> Option<BatteryEvent> {
        self.low.update(battery_v);
        self.dwell
            .update(self.low.is_active(), now_ms)
            .then_some(BatteryEvent::LowBattery)
    }

    /// Whether a low reading is being timed (the node may measure again sooner).
    pub fn is_pending(&self) -> bool {
        self.dwell.is_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LOW: Option<BatteryEvent> = Some(BatteryEvent::LowBattery);

    #[test]
    fn a_battery_that_stays_low_is_reported_once_until_it_is_replaced() {
        let mut b = Battery::new(&BatteryConfig::default());
        let script = [
            (0, 3.60, None),
            (10_000, 3.25, None),
            (69_999, 3.20, None),
            (70_000, 3.20, LOW),
            (200_000, 3.10, None),
            (300_000, 3.45, None),
            (400_000, 3.20, None),
            (500_000, 3.62, None),
            (600_000, 3.20, None),
            (660_000, 3.20, LOW),
        ];
        for (t, v, want) in script {
            assert_eq!(b.step(t, v), want, "at {t} ms");
        }
    }

    #[test]
    fn a_sag_during_a_transmission_is_not_low_battery() {
        let mut b = Battery::new(&BatteryConfig::default());
        assert_eq!(b.step(0, 3.0), None);
        assert!(b.is_pending());
        assert_eq!(b.step(2_000, 3.6), None);
        assert!(!b.is_pending());
        assert_eq!(b.step(70_000, 3.6), None);
    }

    proptest! {
        #[test]
        fn low_battery_is_never_raised_twice_without_a_recovery_in_between(
            steps in proptest::collection::vec((0u64..120_000, 2.8f32..3.8), 1..300),
        ) {
            let mut b = Battery::new(&BatteryConfig::default());
            let mut t = 0;
            let mut raised = false;
            for (gap, v) in steps {
                t += gap;
                if v > 3.5 {
                    raised = false;
                }
                if b.step(t, v).is_some() {
                    prop_assert!(!raised, "raised twice, at {} ms", t);
                    prop_assert!(v <= 3.5);
                    raised = true;
                }
            }
        }
    }
}
