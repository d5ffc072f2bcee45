//! Electrical fire monitoring (GB 14287, 电气火灾监控) in a distribution box: fault arcs, residual
//! current, hot cables, a circuit run overloaded, and mains lost.
//!
//! Most electrical fires start in one of three ways the standard's detectors watch for: current
//! leaking to earth through damaged insulation (a residual current monitor, GB 14287.2), a
//! conductor or a loose terminal running hot (temperature probes on the cables, GB 14287.3), or a
//! series or parallel arc at a damaged wire (an arc-fault detector, GB 14287.4). This detector
//! takes what such sensors measure and applies the standard's limits:
//!
//! - `arc_fault` when at least [`ElectricalConfig::arc_half_cycles`] fault-arc half-cycles fall
//!   within one second. GB 14287.4-2014 §5.4 asks an alarm for 14 or more half-cycles in 1 s and
//!   none for 9 or fewer, so the setting may lie anywhere from 10 to 14. Pulses are counted only
//!   within sample intervals that lie wholly inside the last second (a count read after a
//!   longer gap cannot be placed within one second, and is not counted), so a step of 100 ms or
//!   less catches every burst of 14 within 800 ms. Arcs come and go; after an alarm the next one
//!   needs [`ElectricalConfig::arc_rearm_ms`] without a half-cycle first.
//! - `residual_current_high` and `cable_temp_high` when the value stays over the alarm setting
//!   for a hold time, well inside the standard's response limits (30 s for residual current,
//!   40 s for temperature), and again only after it fell below a lower clear level.
//! - `overcurrent` after the current stayed above the circuit's rated current for a minute: the
//!   breaker tolerates that for up to an hour (GB/T 10963.1 lets a miniature breaker carry
//!   1.13 × its rated current for an hour without tripping), but a circuit that runs overloaded
//!   heats its cables. [`Electrical::overload`] tells whether it is above rated now.
//! - `power_loss` when the voltage stays below half its nominal value; the node then runs on its
//!   backup cell.
//!
//! Settings are checked against the ranges the standard allows before a detector is built:
//! [`ElectricalConfig::validate`] collects every setting that is out of range and returns a
//! [`ValidElectricalConfig`], the only config [`Electrical::new`] accepts. A value out of range
//! is an installer's mistake to be told about, not one to be quietly clamped into something else.
//! A NaN reading (a sensor that could not be read) changes nothing.

use core::fmt;

use heapless::Vec;

use super::timing::{CountWindow, Debounce, Dwell, Hysteresis};
use super::{raise, Event};

/// The window fault-arc half-cycles are counted in (GB 14287.4: "within 1 s").
pub const ARC_WINDOW_MS: u64 = 1_000;
/// The settings of [`ElectricalConfig::arc_half_cycles`] GB 14287.4 allows: an alarm is required
/// at 14 half-cycles in 1 s and forbidden at 9 or fewer.
pub const ARC_HALF_CYCLES: core::ops::RangeInclusive<u32> = 10..=14;
/// The residual-current alarm settings GB 14287.2 allows, in mA.
pub const RESIDUAL_CURRENT_MA: core::ops::RangeInclusive<f32> = 20.0..=1_000.0;
/// The longest a residual current may take to be reported (GB 14287.2: 30 s), in ms.
pub const RESIDUAL_CURRENT_RESPONSE_MS: u64 = 30_000;
/// The cable-temperature alarm settings GB 14287.3 allows, in °C.
pub const CABLE_TEMP_C: core::ops::RangeInclusive<f32> = 55.0..=140.0;
/// The longest a cable temperature may take to be reported (GB 14287.3: 40 s), in ms.
pub const CABLE_TEMP_RESPONSE_MS: u64 = 40_000;

/// How many half-cycles the arc window keeps: the largest allowed setting, plus room.
const ARC_CAP: usize = 16;

/// One reading of an electrical fire monitor's sensors. A quantity that could not be read is NaN
/// (or `None` for the arc count) and changes nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ElectricalSample {
    /// The residual (earth-leakage) current, in mA.
    pub residual_current_ma: f32,
    /// The hottest cable probe, in °C.
    pub cable_temp_c: f32,
    /// The line voltage, in V.
    pub voltage_v: f32,
    /// The line current, in A.
    pub current_a: f32,
    /// The fault-arc half-cycles the arc-detection module counted since the previous sample, or
    /// `None` if its counter could not be read (its pulses then belong to the next good read).
    pub arc_half_cycles: Option<u32>,
}

impl Default for ElectricalSample {
    /// A circuit at rest: no leakage, 25 °C, 220 V, no load, no arcs.
    fn default() -> Self {
        Self {
            residual_current_ma: 0.0,
            cable_temp_c: 25.0,
            voltage_v: 220.0,
            current_a: 0.0,
            arc_half_cycles: Some(0),
        }
    }
}

/// An event the electrical fire monitor raises; [`Event::name`] spells it as the kind
/// catalogue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectricalEvent {
    /// Fault arcs on the circuit.
    ArcFault,
    /// The residual current stayed over the alarm setting.
    ResidualCurrentHigh,
    /// A cable stayed hotter than the alarm setting.
    CableTempHigh,
    /// The circuit ran above its rated current.
    Overcurrent,
    /// Mains is gone.
    PowerLoss,
}

impl Event for ElectricalEvent {
    /// Most urgent first, the order [`Electrical::step`] returns them in.
    const ALL: &'static [Self] = &[
        Self::ArcFault,
        Self::ResidualCurrentHigh,
        Self::CableTempHigh,
        Self::Overcurrent,
        Self::PowerLoss,
    ];

    fn name(&self) -> &'static str {
        match self {
            Self::ArcFault => "arc_fault",
            Self::ResidualCurrentHigh => "residual_current_high",
            Self::CableTempHigh => "cable_temp_high",
            Self::Overcurrent => "overcurrent",
            Self::PowerLoss => "power_loss",
        }
    }
}

/// The events of one step, most urgent first.
pub type ElectricalEvents = Vec<ElectricalEvent, 5>;

/// Settings of the electrical fire monitor. `Default` holds the field-tested values; check them
/// with [`ElectricalConfig::validate`].
#[derive(Clone, Debug, PartialEq)]
pub struct ElectricalConfig {
    /// Fault-arc half-cycles within 1 s that make an arc fault. Default 14, the count at which
    /// GB 14287.4-2014 §5.4 requires an alarm; settable from 10 to 14 ([`ARC_HALF_CYCLES`]).
    pub arc_half_cycles: u32,
    /// How long no half-cycle may be seen before another `arc_fault`, in ms. Default 60 s: an
    /// arcing connection arcs again every few seconds, and one alarm is enough until it stops.
    pub arc_rearm_ms: u64,
    /// The residual-current alarm setting, in mA. Default 300 mA: GB 50116-2013 §9.2.3 suggests
    /// 300–500 mA for a monitor at the distribution box (a healthy system leaks 100–200 mA, and
    /// 300 mA of leakage can start a fire); GB 14287.2 allows 20–1 000 mA
    /// ([`RESIDUAL_CURRENT_MA`]).
    pub residual_current_alarm_ma: f32,
    /// Below this the residual current counts as cleared, in mA. Default 240 mA, 80 % of the
    /// alarm setting: a dead band against leakage that wanders with the load.
    pub residual_current_clear_ma: f32,
    /// How long the residual current must stay over the setting, in ms. Default 2 s: a
    /// switching spike (a motor, a power supply's filter charging) lasts milliseconds. At most
    /// 30 s ([`RESIDUAL_CURRENT_RESPONSE_MS`]), the standard's response limit, which the step
    /// period adds to.
    pub residual_current_hold_ms: u64,
    /// The cable-temperature alarm setting, in °C. Default 70 °C, the highest conductor
    /// temperature PVC-insulated cable is rated for in service (GB/T 5023, IEC 60227); GB 14287.3
    /// allows 55–140 °C ([`CABLE_TEMP_C`]): set 90 °C for XLPE cable.
    pub cable_temp_alarm_c: f32,
    /// Below this the cable counts as cooled down, in °C. Default 65 °C.
    pub cable_temp_clear_c: f32,
    /// How long a cable must stay over the setting, in ms. Default 5 s, against a probe's noise;
    /// at most 40 s ([`CABLE_TEMP_RESPONSE_MS`]), the standard's response limit.
    pub cable_temp_hold_ms: u64,
    /// The circuit's rated current, in A. Default 32 A, a common household distribution
    /// breaker; set the breaker's rating.
    pub rated_current_a: f32,
    /// Below this the overload counts as over, in A. Default 30 A, about 95 % of the rating.
    pub overload_clear_a: f32,
    /// How long the current must stay above rated before `overcurrent`, in ms. Default 60 s:
    /// a motor's or a kettle's inrush is over in seconds.
    pub overcurrent_after_ms: u64,
    /// Mains counts as lost below this voltage, in V. Default 110 V, half the nominal 220 V
    /// (GB/T 156): a sag is not a power loss.
    pub power_loss_below_v: f32,
    /// How long the voltage must stay low (or back) before it counts, in ms. Default 2 s, to
    /// ride through a sag when a large load starts.
    pub power_loss_hold_ms: u64,
}

impl Default for ElectricalConfig {
    /// The field-tested defaults; see each field for its value and source.
    fn default() -> Self {
        Self {
            arc_half_cycles: 14,
            arc_rearm_ms: 60_000,
            residual_current_alarm_ma: 300.0,
            residual_current_clear_ma: 240.0,
            residual_current_hold_ms: 2_000,
            cable_temp_alarm_c: 70.0,
            cable_temp_clear_c: 65.0,
            cable_temp_hold_ms: 5_000,
            rated_current_a: 32.0,
            overload_clear_a: 30.0,
            overcurrent_after_ms: 60_000,
            power_loss_below_v: 110.0,
            power_loss_hold_ms: 2_000,
        }
    }
}

/// A setting of [`ElectricalConfig`] that is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectricalConfigError {
    /// `arc_half_cycles` is outside [`ARC_HALF_CYCLES`].
    ArcHalfCycles,
    /// `residual_current_alarm_ma` is outside [`RESIDUAL_CURRENT_MA`].
    ResidualCurrentAlarm,
    /// `residual_current_clear_ma` is negative or not below the alarm setting.
    ResidualCurrentClear,
    /// `residual_current_hold_ms` is longer than [`RESIDUAL_CURRENT_RESPONSE_MS`].
    ResidualCurrentHold,
    /// `cable_temp_alarm_c` is outside [`CABLE_TEMP_C`].
    CableTempAlarm,
    /// `cable_temp_clear_c` is not below the alarm setting.
    CableTempClear,
    /// `cable_temp_hold_ms` is longer than [`CABLE_TEMP_RESPONSE_MS`].
    CableTempHold,
    /// `rated_current_a` is not a positive number.
    RatedCurrent,
    /// `overload_clear_a` is negative or not below the rated current.
    OverloadClear,
    /// `power_loss_below_v` is not a positive number.
    PowerLossVoltage,
}

impl fmt::Display for ElectricalConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ArcHalfCycles => write!(
                f,
                "arc_half_cycles must be {}–{} (GB 14287.4)",
                ARC_HALF_CYCLES.start(),
                ARC_HALF_CYCLES.end()
            ),
            Self::ResidualCurrentAlarm => write!(
                f,
                "residual_current_alarm_ma must be {}–{} mA (GB 14287.2)",
                RESIDUAL_CURRENT_MA.start(),
                RESIDUAL_CURRENT_MA.end()
            ),
            Self::ResidualCurrentClear => {
                f.write_str("residual_current_clear_ma must be 0 or more and below the alarm")
            }
            Self::ResidualCurrentHold => write!(
                f,
                "residual_current_hold_ms must be at most {RESIDUAL_CURRENT_RESPONSE_MS} (GB 14287.2)"
            ),
            Self::CableTempAlarm => write!(
                f,
                "cable_temp_alarm_c must be {}–{} °C (GB 14287.3)",
                CABLE_TEMP_C.start(),
                CABLE_TEMP_C.end()
            ),
            Self::CableTempClear => f.write_str("cable_temp_clear_c must be below the alarm"),
            Self::CableTempHold => write!(
                f,
                "cable_temp_hold_ms must be at most {CABLE_TEMP_RESPONSE_MS} (GB 14287.3)"
            ),
            Self::RatedCurrent => f.write_str("rated_current_a must be a positive number"),
            Self::OverloadClear => {
                f.write_str("overload_clear_a must be 0 or more and below the rated current")
            }
            Self::PowerLossVoltage => f.write_str("power_loss_below_v must be a positive number"),
        }
    }
}

/// Every setting that is out of range, in the order of [`ElectricalConfig`]'s fields.
pub type ElectricalConfigErrors = Vec<ElectricalConfigError, 10>;

/// An [`ElectricalConfig`] whose settings are in range: what [`ElectricalConfig::validate`]
/// returns and the only config [`Electrical::new`] accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidElectricalConfig(ElectricalConfig);

impl ValidElectricalConfig {
    /// The settings.
    pub fn get(&self) -> &ElectricalConfig {
        &self.0
    }
}

impl Default for ValidElectricalConfig {
    /// The defaults of [`ElectricalConfig`], which are in range (tested).
    fn default() -> Self {
        Self(ElectricalConfig::default())
    }
}

impl ElectricalConfig {
    /// Checks every setting against the range the standard allows; returns the config, validated,
    /// or every setting that is out of range at once.
    pub fn validate(self) -> Result<ValidElectricalConfig, ElectricalConfigErrors> {
        use ElectricalConfigError as E;
        let checks = [
            (
                ARC_HALF_CYCLES.contains(&self.arc_half_cycles),
                E::ArcHalfCycles,
            ),
            (
                RESIDUAL_CURRENT_MA.contains(&self.residual_current_alarm_ma),
                E::ResidualCurrentAlarm,
            ),
            (
                (0.0..self.residual_current_alarm_ma).contains(&self.residual_current_clear_ma),
                E::ResidualCurrentClear,
            ),
            (
                self.residual_current_hold_ms <= RESIDUAL_CURRENT_RESPONSE_MS,
                E::ResidualCurrentHold,
            ),
            (
                CABLE_TEMP_C.contains(&self.cable_temp_alarm_c),
                E::CableTempAlarm,
            ),
            (
                self.cable_temp_clear_c < self.cable_temp_alarm_c,
                E::CableTempClear,
            ),
            (
                self.cable_temp_hold_ms <= CABLE_TEMP_RESPONSE_MS,
                E::CableTempHold,
            ),
            (
                self.rated_current_a > 0.0 && self.rated_current_a.is_finite(),
                E::RatedCurrent,
            ),
            (
                (0.0..self.rated_current_a).contains(&self.overload_clear_a),
                E::OverloadClear,
            ),
            (
                self.power_loss_below_v > 0.0 && self.power_loss_below_v.is_finite(),
                E::PowerLossVoltage,
            ),
        ];
        let errors: ElectricalConfigErrors = checks
            .into_iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, error)| error)
            .collect();
        if errors.is_empty() {
            Ok(ValidElectricalConfig(self))
        } else {
            Err(errors)
        }
    }
}

/// The electrical fire monitor's state.
#[derive(Clone, Debug)]
pub struct Electrical {
    /// One entry per half-cycle, stamped with the start of the interval it was counted in.
    arcs: CountWindow<ARC_CAP>,
    arc_half_cycles: usize,
    /// The start of the interval the next arc count covers: the previous good read.
    arc_from: Option<u64>,
    arc_armed: bool,
    arc_quiet: Dwell,
    residual: Hysteresis,
    residual_high: Dwell,
    temp: Hysteresis,
    temp_high: Dwell,
    overload: Hysteresis,
    overcurrent: Dwell,
    mains: Debounce,
    power_loss_below_v: f32,
}

impl Electrical {
    /// A monitor with the given settings, starting with mains present.
    pub fn new(config: &ValidElectricalConfig) -> Self {
        let c = config.get();
        Self {
            arcs: CountWindow::new(ARC_WINDOW_MS),
            // In range (validated), so it fits.
            arc_half_cycles: c.arc_half_cycles as usize,
            arc_from: None,
            arc_armed: true,
            arc_quiet: Dwell::new(c.arc_rearm_ms),
            residual: Hysteresis::rising(c.residual_current_alarm_ma, c.residual_current_clear_ma),
            residual_high: Dwell::new(c.residual_current_hold_ms),
            temp: Hysteresis::rising(c.cable_temp_alarm_c, c.cable_temp_clear_c),
            temp_high: Dwell::new(c.cable_temp_hold_ms),
            overload: Hysteresis::rising(c.rated_current_a, c.overload_clear_a),
            overcurrent: Dwell::new(c.overcurrent_after_ms),
            mains: Debounce::new(true, c.power_loss_hold_ms),
            power_loss_below_v: c.power_loss_below_v,
        }
    }

    /// Feeds one sample taken at `now_ms`; returns the events to send, most urgent first.
    pub fn step(&mut self, now_ms: u64, s: &ElectricalSample) -> ElectricalEvents {
        let mut events = ElectricalEvents::new();
        if self.arc_fault(now_ms, s.arc_half_cycles) {
            raise(&mut events, ElectricalEvent::ArcFault);
        }
        self.residual.update(s.residual_current_ma);
        if self.residual_high.update(self.residual.is_active(), now_ms) {
            raise(&mut events, ElectricalEvent::ResidualCurrentHigh);
        }
        self.temp.update(s.cable_temp_c);
        if self.temp_high.update(self.temp.is_active(), now_ms) {
            raise(&mut events, ElectricalEvent::CableTempHigh);
        }
        self.overload.update(s.current_a);
        if self.overcurrent.update(self.overload.is_active(), now_ms) {
            raise(&mut events, ElectricalEvent::Overcurrent);
        }
        if !s.voltage_v.is_nan()
            && self
                .mains
                .update(s.voltage_v >= self.power_loss_below_v, now_ms)
                == Some(false)
        {
            raise(&mut events, ElectricalEvent::PowerLoss);
        }
        events
    }

    /// Counts `half_cycles` into the window; true when an arc fault is to be raised now.
    fn arc_fault(&mut self, now_ms: u64, half_cycles: Option<u32>) -> bool {
        if let Some(n) = half_cycles {
            // The first read's pulses cover an unknown stretch of time: they only start the count.
            if let Some(from) = self.arc_from {
                for _ in 0..n.min(ARC_CAP as u32) {
                    self.arcs.record(from);
                }
            }
            self.arc_from = Some(now_ms);
            if self.arc_quiet.update(n == 0, now_ms) {
                self.arc_armed = true;
            }
        }
        let fault = self.arc_armed && self.arcs.count(now_ms) >= self.arc_half_cycles;
        if fault {
            self.arc_armed = false;
        }
        fault
    }

    /// Whether the current is above the rated current now (the `overload` reading).
    pub fn overload(&self) -> bool {
        self.overload.is_active()
    }
}

#[cfg(test)]
mod tests {
    use super::ElectricalEvent::*;
    use super::*;
    use proptest::prelude::*;

    fn run(script: &[(u64, ElectricalSample, &[ElectricalEvent])]) {
        let mut e = Electrical::new(&ValidElectricalConfig::default());
        for (t, s, want) in script {
            assert_eq!(e.step(*t, s).as_slice(), *want, "at {t} ms");
        }
    }

    fn arcs(n: u32) -> ElectricalSample {
        ElectricalSample {
            arc_half_cycles: Some(n),
            ..ElectricalSample::default()
        }
    }

    fn residual(ma: f32) -> ElectricalSample {
        ElectricalSample {
            residual_current_ma: ma,
            ..ElectricalSample::default()
        }
    }

    fn temp(c: f32) -> ElectricalSample {
        ElectricalSample {
            cable_temp_c: c,
            ..ElectricalSample::default()
        }
    }

    fn current(a: f32) -> ElectricalSample {
        ElectricalSample {
            current_a: a,
            ..ElectricalSample::default()
        }
    }

    fn volts(v: f32) -> ElectricalSample {
        ElectricalSample {
            voltage_v: v,
            ..ElectricalSample::default()
        }
    }

    #[test]
    fn fourteen_arc_half_cycles_within_a_second_are_an_arc_fault_and_thirteen_are_not() {
        run(&[
            (0, arcs(0), &[]),
            (100, arcs(5), &[]),
            (200, arcs(4), &[]),
            (300, arcs(4), &[]),   // 13 in 300 ms
            (1_100, arcs(0), &[]), // the first 5 left the window
            (1_200, arcs(0), &[]),
            (5_000, arcs(0), &[]),
            (5_100, arcs(7), &[]),
            (5_200, arcs(7), &[ArcFault]),
            (5_300, arcs(9), &[]), // still arcing: one alarm
        ]);
    }

    #[test]
    fn half_cycles_spread_over_more_than_a_second_are_no_arc_fault() {
        run(&[
            (0, arcs(0), &[]),
            (500, arcs(7), &[]),
            (1_000, arcs(0), &[]),
            (1_500, arcs(7), &[]), // 14 in 1.5 s: the first 7 were counted from 0, too long ago
            (2_000, arcs(0), &[]),
        ]);
    }

    #[test]
    fn a_count_read_after_a_long_gap_cannot_be_placed_within_a_second() {
        run(&[
            (0, arcs(0), &[]),
            (3_000, arcs(40), &[]),
            (
                3_100,
                ElectricalSample {
                    arc_half_cycles: None,
                    ..arcs(0)
                },
                &[],
            ),
            // The unread interval joins the next read: 14 half-cycles over 200 ms.
            (3_200, arcs(14), &[ArcFault]),
        ]);
    }

    #[test]
    fn the_first_count_only_starts_the_clock() {
        run(&[(0, arcs(30), &[]), (100, arcs(0), &[])]);
    }

    #[test]
    fn another_arc_fault_needs_a_minute_without_arcs_first() {
        run(&[
            (0, arcs(0), &[]),
            (100, arcs(14), &[ArcFault]),
            (30_000, arcs(0), &[]),
            (30_100, arcs(14), &[]), // arcing again within the minute
            (30_200, arcs(0), &[]),
            (90_199, arcs(0), &[]),
            (90_200, arcs(0), &[]), // a minute of reads without a half-cycle
            (90_300, arcs(14), &[ArcFault]),
        ]);
    }

    #[test]
    fn residual_current_over_300_ma_for_two_seconds_is_reported_once_until_it_falls_below_240() {
        run(&[
            (0, residual(150.0), &[]),
            (1_000, residual(900.0), &[]), // a switching spike
            (1_500, residual(150.0), &[]),
            (2_000, residual(310.0), &[]),
            (3_999, residual(320.0), &[]),
            (4_000, residual(320.0), &[ResidualCurrentHigh]),
            (10_000, residual(250.0), &[]), // inside the dead band
            (11_000, residual(320.0), &[]),
            (20_000, residual(239.0), &[]),
            (21_000, residual(301.0), &[]),
            (22_999, residual(f32::NAN), &[]),
            (23_000, residual(301.0), &[ResidualCurrentHigh]),
        ]);
    }

    #[test]
    fn a_cable_over_70_degrees_for_five_seconds_is_too_hot() {
        run(&[
            (0, temp(60.0), &[]),
            (1_000, temp(71.0), &[]),
            (5_999, temp(72.0), &[]),
            (6_000, temp(72.0), &[CableTempHigh]),
            (7_000, temp(66.0), &[]),
            (8_000, temp(71.0), &[]),
            (20_000, temp(64.9), &[]),
            (21_000, temp(75.0), &[]),
            (26_000, temp(75.0), &[CableTempHigh]),
        ]);
    }

    #[test]
    fn a_circuit_above_its_rated_current_for_a_minute_runs_overloaded() {
        let mut e = Electrical::new(&ValidElectricalConfig::default());
        let script = [
            (0, 20.0, false, &[][..]),
            (1_000, 45.0, true, &[]), // inrush
            (3_000, 20.0, false, &[]),
            (10_000, 33.0, true, &[]),
            (40_000, 31.0, true, &[]), // still within the dead band
            (69_999, 33.0, true, &[]),
            (70_000, 33.0, true, &[Overcurrent]),
            (80_000, 29.0, false, &[]),
        ];
        for (t, a, overload, want) in script {
            assert_eq!(e.step(t, &current(a)).as_slice(), want, "at {t} ms");
            assert_eq!(e.overload(), overload, "at {t} ms");
        }
    }

    #[test]
    fn mains_below_half_its_voltage_for_two_seconds_is_lost_and_a_sag_is_not() {
        run(&[
            (0, volts(220.0), &[]),
            (1_000, volts(150.0), &[]), // a sag
            (2_000, volts(0.0), &[]),
            (3_000, volts(215.0), &[]),
            (4_000, volts(0.0), &[]),
            (5_999, volts(f32::NAN), &[]),
            (6_000, volts(0.0), &[PowerLoss]),
            (9_000, volts(0.0), &[]),
            (10_000, volts(220.0), &[]),
            (11_000, volts(0.0), &[]), // back for only a second
            (13_000, volts(0.0), &[]),
            (14_000, volts(220.0), &[]),
            (16_000, volts(220.0), &[]),
            (17_000, volts(0.0), &[]),
            (19_000, volts(0.0), &[PowerLoss]),
        ]);
    }

    #[test]
    fn everything_at_once_comes_most_urgent_first() {
        let config = ElectricalConfig {
            residual_current_hold_ms: 30_000,
            cable_temp_hold_ms: 30_000,
            overcurrent_after_ms: 30_000,
            power_loss_hold_ms: 30_000,
            ..ElectricalConfig::default()
        };
        let mut e = Electrical::new(&config.validate().unwrap());
        let worst = ElectricalSample {
            residual_current_ma: 500.0,
            cable_temp_c: 90.0,
            voltage_v: 0.0,
            current_a: 50.0,
            arc_half_cycles: Some(0),
        };
        assert!(e.step(0, &worst).is_empty());
        assert!(e.step(29_900, &worst).is_empty());
        let arcing = ElectricalSample {
            arc_half_cycles: Some(20),
            ..worst
        };
        let events = e.step(30_000, &arcing);
        assert_eq!(events.as_slice(), ElectricalEvent::ALL);
        assert_eq!(events.capacity(), ElectricalEvent::ALL.len());
    }

    #[test]
    fn the_defaults_are_in_range() {
        assert_eq!(
            ElectricalConfig::default().validate(),
            Ok(ValidElectricalConfig::default())
        );
    }

    #[test]
    fn every_setting_out_of_range_is_reported_at_once() {
        use ElectricalConfigError as E;
        let bad = ElectricalConfig {
            arc_half_cycles: 9,
            arc_rearm_ms: 0,
            residual_current_alarm_ma: 1_500.0,
            residual_current_clear_ma: 1_600.0,
            residual_current_hold_ms: 30_001,
            cable_temp_alarm_c: f32::NAN,
            cable_temp_clear_c: 65.0,
            cable_temp_hold_ms: 40_001,
            rated_current_a: 0.0,
            overload_clear_a: 0.0,
            overcurrent_after_ms: 0,
            power_loss_below_v: f32::INFINITY,
            power_loss_hold_ms: 0,
        };
        assert_eq!(
            bad.validate().unwrap_err().as_slice(),
            [
                E::ArcHalfCycles,
                E::ResidualCurrentAlarm,
                E::ResidualCurrentClear,
                E::ResidualCurrentHold,
                E::CableTempAlarm,
                E::CableTempClear,
                E::CableTempHold,
                E::RatedCurrent,
                E::OverloadClear,
                E::PowerLossVoltage,
            ]
        );
        assert_eq!(
            E::ResidualCurrentAlarm.to_string(),
            "residual_current_alarm_ma must be 20–1000 mA (GB 14287.2)"
        );
    }

    #[test]
    fn the_ends_of_the_standards_ranges_are_allowed() {
        for (alarm_ma, clear_ma, alarm_c, clear_c, half_cycles) in [
            (20.0, 0.0, 55.0, 50.0, 10),
            (1_000.0, 800.0, 140.0, 130.0, 14),
        ] {
            let config = ElectricalConfig {
                arc_half_cycles: half_cycles,
                residual_current_alarm_ma: alarm_ma,
                residual_current_clear_ma: clear_ma,
                residual_current_hold_ms: RESIDUAL_CURRENT_RESPONSE_MS,
                cable_temp_alarm_c: alarm_c,
                cable_temp_clear_c: clear_c,
                cable_temp_hold_ms: CABLE_TEMP_RESPONSE_MS,
                ..ElectricalConfig::default()
            };
            assert!(config.clone().validate().is_ok(), "{config:?}");
        }
    }

    /// A step: the gap since the previous one and the half-cycles read (`None`: unread).
    fn arc_steps() -> impl Strategy<Value = std::vec::Vec<(u64, Option<u32>)>> {
        proptest::collection::vec(
            (1u64..700, proptest::option::weighted(0.9, 0u32..8)),
            1..300,
        )
    }

    proptest! {
        /// Against a naive model: an arc fault is raised exactly when the model, which adds up
        /// the counts of the read intervals starting less than a second ago, sees 14 or more
        /// while armed; armed again after a minute of reads that saw none.
        #[test]
        fn an_arc_fault_needs_fourteen_half_cycles_within_one_second(steps in arc_steps()) {
            let mut e = Electrical::new(&ValidElectricalConfig::default());
            let mut intervals: std::vec::Vec<(u64, u32)> = std::vec::Vec::new();
            let (mut t, mut from, mut armed, mut quiet_since) = (0u64, None::<u64>, true, None::<u64>);
            for (gap, n) in steps {
                t += gap;
                if let Some(n) = n {
                    if let Some(f) = from {
                        intervals.push((f, n));
                    }
                    from = Some(t);
                    if n == 0 {
                        let since = *quiet_since.get_or_insert(t);
                        if t - since >= 60_000 {
                            armed = true;
                        }
                    } else {
                        quiet_since = None;
                    }
                }
                let within: u32 = intervals.iter().filter(|(f, _)| t - f < 1_000).map(|(_, n)| n).sum();
                let expect = armed && within >= 14;
                if expect {
                    armed = false;
                }
                let raised = e.step(t, &ElectricalSample { arc_half_cycles: n, ..ElectricalSample::default() });
                prop_assert_eq!(raised.contains(&ArcFault), expect, "at {} ms, {} within 1 s", t, within);
            }
        }

        #[test]
        fn no_electrical_event_is_raised_twice_without_a_clear_in_between(
            steps in proptest::collection::vec(
                (0u64..30_000, 0.0f32..600.0, 20.0f32..100.0, 0.0f32..250.0, 0.0f32..50.0),
                1..300,
            ),
        ) {
            let mut e = Electrical::new(&ValidElectricalConfig::default());
            let (mut t, mut armed) = (0u64, [true; 4]);
            let mut volts_back_since = None::<u64>;
            for (gap, ma, c, v, a) in steps {
                t += gap;
                if ma < 240.0 { armed[0] = true; }
                if c < 65.0 { armed[1] = true; }
                if a < 30.0 { armed[2] = true; }
                if v >= 110.0 {
                    if t - *volts_back_since.get_or_insert(t) >= 2_000 { armed[3] = true; }
                } else {
                    volts_back_since = None;
                }
                let s = ElectricalSample {
                    residual_current_ma: ma,
                    cable_temp_c: c,
                    voltage_v: v,
                    current_a: a,
                    arc_half_cycles: Some(0),
                };
                for ev in e.step(t, &s) {
                    let i = [ResidualCurrentHigh, CableTempHigh, Overcurrent, PowerLoss]
                        .iter()
                        .position(|x| *x == ev)
                        .unwrap();
                    prop_assert!(armed[i], "{:?} twice, at {} ms", ev, t);
                    armed[i] = false;
                }
            }
        }
    }
}
