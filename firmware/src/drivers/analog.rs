//! Analog inputs in millivolts: battery voltage, water level, gas concentration, and filters.
//!
//! - Battery: the ADC sees the battery through a resistor divider; [`Divider`] scales back up.
//! - Water level and gas: a transmitter's output maps linearly onto its measuring range;
//!   [`LinearScale`] holds the two end points and the band of millivolts a working sensor can
//!   produce. A reading outside that band is a [`SensorFault`] (broken wire, dead transmitter,
//!   short), never a value: a 4–20 mA loop that reads 0 mA has not measured an empty well. Inside
//!   the band but just beyond an end point (the transmitter's tolerance) clamps to that end point.
//! - [`MovingAverage`] and [`Median`] smooth a noisy input over the last `N` samples in fixed
//!   memory; the median also ignores a single spike (a wave in the manhole, a pump starting).
//!
//! Conversions are pure functions; [`BatteryMonitor`] and [`ScaledInput`] are the thin shells
//! that read a [`crate::hal::AnalogIn`].

use core::fmt;
use core::num::{NonZeroU16, NonZeroU32};

use super::Measure;
use crate::hal::AnalogIn;

/// A resistor divider between a source (the battery) and the ADC pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Divider {
    top_ohm: u32,
    bottom_ohm: NonZeroU32,
}

impl Divider {
    /// The divider with `top_ohm` from the source to the pin and `bottom_ohm` from the pin to ground.
    pub const fn new(top_ohm: u32, bottom_ohm: NonZeroU32) -> Self {
        Divider {
            top_ohm,
            bottom_ohm,
        }
    }

    /// The source's voltage in mV for a pin voltage in mV, rounded to the nearest millivolt.
    pub fn source_mv(&self, pin_mv: u32) -> u32 {
        let bottom = u64::from(self.bottom_ohm.get());
        let total = u64::from(self.top_ohm) + bottom;
        let mv = (u64::from(pin_mv) * total + bottom / 2) / bottom;
        u32::try_from(mv).unwrap_or(u32::MAX)
    }
}

/// Why a reading is not a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SensorFault {
    /// Below what a working sensor outputs (open loop, broken wire, no supply).
    BelowRange {
        /// The millivolts read.
        mv: u32,
    },
    /// Above what a working sensor outputs (short to the supply, failed transmitter).
    AboveRange {
        /// The millivolts read.
        mv: u32,
    },
}

impl fmt::Display for SensorFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SensorFault::BelowRange { mv } => write!(f, "sensor fault: {mv} mV is below range"),
            SensorFault::AboveRange { mv } => write!(f, "sensor fault: {mv} mV is above range"),
        }
    }
}

/// A linear sensor: `zero_mv` means 0, `full_mv` means `full_value` (cm, ppm, ...).
///
/// Invariant: `min_valid_mv <= zero_mv < full_mv <= max_valid_mv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearScale {
    zero_mv: u32,
    full_mv: u32,
    full_value: f32,
    min_valid_mv: u32,
    max_valid_mv: u32,
}

impl LinearScale {
    /// A scale from its end points and valid band; `None` unless
    /// `min_valid_mv <= zero_mv < full_mv <= max_valid_mv`.
    pub const fn new(
        zero_mv: u32,
        full_mv: u32,
        full_value: f32,
        min_valid_mv: u32,
        max_valid_mv: u32,
    ) -> Option<Self> {
        if min_valid_mv <= zero_mv && zero_mv < full_mv && full_mv <= max_valid_mv {
            Some(LinearScale {
                zero_mv,
                full_mv,
                full_value,
                min_valid_mv,
                max_valid_mv,
            })
        } else {
            None
        }
    }

    /// A 0.5–4.5 V transmitter (the common ratiometric pressure sensor) measuring up to
    /// `full_value`. Valid from 0.4 to 4.6 V: 2.5 % of the span either side covers the
    /// transmitters' output tolerance, and an open or shorted wire pulls the output to a rail.
    pub const fn transmitter_0v5_4v5(full_value: f32) -> Self {
        LinearScale {
            zero_mv: 500,
            full_mv: 4500,
            full_value,
            min_valid_mv: 400,
            max_valid_mv: 4600,
        }
    }

    /// A 4–20 mA transmitter read across a `shunt_ohm` resistor, measuring up to `full_value`.
    /// Valid from 3.6 to 21 mA, the failure thresholds of NAMUR NE 43 that loop transmitters
    /// signal their own faults with.
    pub const fn current_loop(shunt_ohm: NonZeroU16, full_value: f32) -> Self {
        let ohm = shunt_ohm.get() as u32;
        LinearScale {
            zero_mv: 4 * ohm,
            full_mv: 20 * ohm,
            full_value,
            min_valid_mv: 36 * ohm / 10,
            max_valid_mv: 21 * ohm,
        }
    }

    /// The value for a reading in mV, or the fault it shows.
    pub fn convert(&self, mv: u32) -> Result<f32, SensorFault> {
        if mv < self.min_valid_mv {
            return Err(SensorFault::BelowRange { mv });
        }
        if mv > self.max_valid_mv {
            return Err(SensorFault::AboveRange { mv });
        }
        let above_zero = mv.clamp(self.zero_mv, self.full_mv) - self.zero_mv;
        let span = self.full_mv - self.zero_mv;
        Ok(above_zero as f32 * self.full_value / span as f32)
    }
}

/// What can go wrong reading a scaled input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// The ADC failed.
    Adc(E),
    /// The ADC worked and the sensor did not.
    Sensor(SensorFault),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Adc(e) => write!(f, "ADC error: {e:?}"),
            Error::Sensor(fault) => write!(f, "{fault}"),
        }
    }
}

/// The battery's voltage, read through a divider on an ADC pin the monitor owns.
#[derive(Debug)]
pub struct BatteryMonitor<A> {
    adc: A,
    divider: Divider,
}

impl<A: AnalogIn> BatteryMonitor<A> {
    /// Takes the ADC input; does no I/O.
    pub fn new(adc: A, divider: Divider) -> Self {
        BatteryMonitor { adc, divider }
    }

    /// Reads the battery's voltage in mV.
    pub fn read_mv(&mut self) -> Result<u32, A::Error> {
        Ok(self.divider.source_mv(self.adc.read_mv()?))
    }

    /// Gives the ADC input back.
    pub fn release(self) -> A {
        self.adc
    }
}

/// A linear sensor (water level, gas) on an ADC pin the input owns.
#[derive(Debug)]
pub struct ScaledInput<A> {
    adc: A,
    scale: LinearScale,
}

impl<A: AnalogIn> ScaledInput<A> {
    /// Takes the ADC input; does no I/O.
    pub fn new(adc: A, scale: LinearScale) -> Self {
        ScaledInput { adc, scale }
    }

    /// Reads the sensor's value in its unit.
    pub fn read(&mut self) -> Result<f32, Error<A::Error>> {
        let mv = self.adc.read_mv().map_err(Error::Adc)?;
        self.scale.convert(mv).map_err(Error::Sensor)
    }

    /// Gives the ADC input back.
    pub fn release(self) -> A {
        self.adc
    }
}

impl<A: AnalogIn> Measure for ScaledInput<A> {
    type Error = Error<A::Error>;

    fn read(&mut self) -> Result<f32, Self::Error> {
        ScaledInput::read(self)
    }
}

/// The mean of the last `N` samples (fewer until `N` have arrived), in fixed memory.
#[derive(Clone, Debug)]
pub struct MovingAverage<const N: usize> {
    window: [u32; N],
    next: usize,
    len: usize,
    sum: u64,
}

impl<const N: usize> MovingAverage<N> {
    /// An empty filter. `N` must be at least 1 (checked at compile time).
    pub const fn new() -> Self {
        const { assert!(N > 0, "a filter needs at least one sample") };
        MovingAverage {
            window: [0; N],
            next: 0,
            len: 0,
            sum: 0,
        }
    }

    /// Adds a sample and returns the mean of the window, rounded to the nearest integer.
    pub fn push(&mut self, sample: u32) -> u32 {
        if self.len == N {
            self.sum -= u64::from(self.window[self.next]);
        } else {
            self.len += 1;
        }
        self.window[self.next] = sample;
        self.sum += u64::from(sample);
        self.next = (self.next + 1) % N;
        let len = self.len as u64;
        ((self.sum + len / 2) / len) as u32
    }
}

impl<const N: usize> Default for MovingAverage<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The median of the last `N` samples (fewer until `N` have arrived), in fixed memory.
#[derive(Clone, Debug)]
pub struct Median<const N: usize> {
    window: [u32; N],
    next: usize,
    len: usize,
}

impl<const N: usize> Median<N> {
    /// An empty filter. `N` must be at least 1 (checked at compile time).
    pub const fn new() -> Self {
        const { assert!(N > 0, "a filter needs at least one sample") };
        Median {
            window: [0; N],
            next: 0,
            len: 0,
        }
    }

    /// Adds a sample and returns the median of the window; with an even count, the mean of the
    /// two middle samples rounded down.
    pub fn push(&mut self, sample: u32) -> u32 {
        self.window[self.next] = sample;
        self.next = (self.next + 1) % N;
        self.len = (self.len + 1).min(N);
        let mut sorted = self.window;
        let sorted = &mut sorted[..self.len];
        sorted.sort_unstable();
        let mid = self.len / 2;
        if self.len % 2 == 1 {
            sorted[mid]
        } else {
            ((u64::from(sorted[mid - 1]) + u64::from(sorted[mid])) / 2) as u32
        }
    }
}

impl<const N: usize> Default for Median<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ADC that returns scripted readings, then panics if read again.
    struct Script(Vec<Result<u32, &'static str>>);

    impl AnalogIn for Script {
        type Error = &'static str;
        fn read_mv(&mut self) -> Result<u32, Self::Error> {
            self.0.remove(0)
        }
    }

    const fn nz16(n: u16) -> NonZeroU16 {
        match NonZeroU16::new(n) {
            Some(n) => n,
            None => panic!("zero"),
        }
    }

    #[test]
    fn a_divider_scales_the_pin_voltage_back_to_the_battery() {
        // 100 kΩ over 100 kΩ halves; 1.805 V at the pin is a 3.61 V cell.
        let half = Divider::new(100_000, NonZeroU32::new(100_000).unwrap());
        assert_eq!(half.source_mv(1805), 3610);
        // 470 kΩ over 100 kΩ: 1000 mV * 5.7; 1 mV at the pin rounds 5.7 up to 6.
        let wide = Divider::new(470_000, NonZeroU32::new(100_000).unwrap());
        assert_eq!(wide.source_mv(1000), 5700);
        assert_eq!(wide.source_mv(1), 6);
        assert_eq!(wide.source_mv(u32::MAX), u32::MAX);
    }

    #[test]
    fn a_half_to_four_and_a_half_volt_transmitter_scales_linearly() {
        let level = LinearScale::transmitter_0v5_4v5(400.0);
        assert_eq!(level.convert(500), Ok(0.0));
        assert_eq!(level.convert(2500), Ok(200.0));
        assert_eq!(level.convert(4500), Ok(400.0));
        assert_eq!(level.convert(600), Ok(10.0));
    }

    #[test]
    fn a_transmitter_just_beyond_its_end_points_clamps_and_far_beyond_is_a_fault() {
        let level = LinearScale::transmitter_0v5_4v5(400.0);
        assert_eq!(level.convert(400), Ok(0.0));
        assert_eq!(level.convert(4600), Ok(400.0));
        assert_eq!(level.convert(399), Err(SensorFault::BelowRange { mv: 399 }));
        assert_eq!(level.convert(0), Err(SensorFault::BelowRange { mv: 0 }));
        assert_eq!(
            level.convert(4601),
            Err(SensorFault::AboveRange { mv: 4601 })
        );
        assert_eq!(
            SensorFault::BelowRange { mv: 0 }.to_string(),
            "sensor fault: 0 mV is below range"
        );
    }

    #[test]
    fn a_four_to_twenty_milliamp_loop_uses_namur_fault_thresholds() {
        // 150 Ω shunt: 4 mA = 600 mV, 12 mA = 1800 mV, 20 mA = 3000 mV.
        let level = LinearScale::current_loop(nz16(150), 500.0);
        assert_eq!(level.convert(600), Ok(0.0));
        assert_eq!(level.convert(1800), Ok(250.0));
        assert_eq!(level.convert(3000), Ok(500.0));
        // 3.6 mA = 540 mV and 21 mA = 3150 mV are the last readings still trusted.
        assert_eq!(level.convert(540), Ok(0.0));
        assert_eq!(level.convert(3150), Ok(500.0));
        assert_eq!(level.convert(539), Err(SensorFault::BelowRange { mv: 539 }));
        assert_eq!(
            level.convert(3151),
            Err(SensorFault::AboveRange { mv: 3151 })
        );
    }

    #[test]
    fn a_gas_scale_has_a_zero_offset() {
        // An electrochemical board: 400 mV at 0 ppm, 2000 mV at 1000 ppm.
        let gas = LinearScale::new(400, 2000, 1000.0, 300, 2100).unwrap();
        assert_eq!(gas.convert(400), Ok(0.0));
        assert_eq!(gas.convert(560), Ok(100.0));
        assert_eq!(gas.convert(2000), Ok(1000.0));
        assert_eq!(gas.convert(299), Err(SensorFault::BelowRange { mv: 299 }));
    }

    #[test]
    fn a_scale_whose_end_points_are_out_of_order_is_refused() {
        assert_eq!(LinearScale::new(500, 500, 1.0, 0, 5000), None);
        assert_eq!(LinearScale::new(500, 400, 1.0, 0, 5000), None);
        assert_eq!(LinearScale::new(500, 4500, 1.0, 600, 5000), None);
        assert_eq!(LinearScale::new(500, 4500, 1.0, 0, 4000), None);
    }

    #[test]
    fn the_battery_monitor_reads_through_its_divider_and_passes_adc_errors_on() {
        let divider = Divider::new(100_000, NonZeroU32::new(100_000).unwrap());
        let mut battery = BatteryMonitor::new(Script(vec![Ok(1805), Err("busy")]), divider);
        assert_eq!(battery.read_mv(), Ok(3610));
        assert_eq!(battery.read_mv(), Err("busy"));
        assert!(battery.release().0.is_empty());
    }

    #[test]
    fn a_scaled_input_gives_values_sensor_faults_and_adc_errors_apart() {
        let adc = Script(vec![Ok(2500), Ok(100), Err("busy")]);
        let mut water = ScaledInput::new(adc, LinearScale::transmitter_0v5_4v5(400.0));
        assert_eq!(water.read(), Ok(200.0));
        assert_eq!(
            water.read(),
            Err(Error::Sensor(SensorFault::BelowRange { mv: 100 }))
        );
        assert_eq!(water.read(), Err(Error::Adc("busy")));
        assert!(water.release().0.is_empty());
    }

    #[test]
    fn the_moving_average_covers_the_samples_so_far_then_the_last_n() {
        let mut avg = MovingAverage::<4>::new();
        let out: Vec<u32> = [100, 200, 300, 400, 500, 600, 0]
            .into_iter()
            .map(|s| avg.push(s))
            .collect();
        assert_eq!(out, vec![100, 150, 200, 250, 350, 450, 375]);
    }

    #[test]
    fn the_moving_average_rounds_to_the_nearest() {
        let mut avg = MovingAverage::<3>::new();
        avg.push(1);
        assert_eq!(avg.push(2), 2);
        assert_eq!(avg.push(2), 2);
        assert_eq!(avg.push(0), 1);
    }

    #[test]
    fn the_median_ignores_a_single_spike() {
        let mut median = Median::<5>::default();
        let out: Vec<u32> = [120, 121, 4000, 119, 122, 120]
            .into_iter()
            .map(|s| median.push(s))
            .collect();
        assert_eq!(out, vec![120, 120, 121, 120, 121, 121]);
    }

    /// The filters against the obvious definition over a growing list.
    fn window_of<const N: usize>(samples: &[u32], i: usize) -> Vec<u64> {
        samples[(i + 1).saturating_sub(N)..=i]
            .iter()
            .map(|&s| u64::from(s))
            .collect()
    }

    proptest! {
        #[test]
        fn the_moving_average_matches_the_mean_of_the_window(samples in prop::collection::vec(any::<u32>(), 1..40)) {
            let mut avg = MovingAverage::<5>::new();
            for (i, &s) in samples.iter().enumerate() {
                let w = window_of::<5>(&samples, i);
                let len = w.len() as u64;
                prop_assert_eq!(u64::from(avg.push(s)), (w.iter().sum::<u64>() + len / 2) / len);
            }
        }

        #[test]
        fn the_median_matches_the_sorted_window(samples in prop::collection::vec(any::<u32>(), 1..40)) {
            let mut median = Median::<4>::new();
            for (i, &s) in samples.iter().enumerate() {
                let mut w = window_of::<4>(&samples, i);
                w.sort();
                let m = w.len() / 2;
                let expected = if w.len() % 2 == 1 { w[m] } else { (w[m - 1] + w[m]) / 2 };
                prop_assert_eq!(u64::from(median.push(s)), expected);
            }
        }
    }
}
