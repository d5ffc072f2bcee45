//! The electrical fire monitor's loop: residual current, a cable's temperature, the line's voltage
//! and current, and fault arcs, in a distribution box on mains with a backup cell.
//!
//! | part | connection | notes |
//! |---|---|---|
//! | residual current | a zero-sequence current transformer (零序电流互感器) around the circuit's live and neutral conductors (never the PE), through its signal conditioner to an ADC pin, as [`ScaledInput`], or any [`Measure`] in mA | the conditioner's range, e.g. 0–1 000 mA as 0.5–4.5 V |
//! | cable temperature | a probe on the hottest cable or terminal (NTC, PT100 with a transmitter), any [`Measure`] in °C | with several probes, a `Measure` that returns the hottest |
//! | voltage and current | a metering IC (HLW8032 on a UART, BL0942 on SPI, …), or a voltage and a current transformer on two ADC pins: any [`LineMeter`] | |
//! | fault arcs | the arc-detection module's pulse output, one pulse per fault-arc half-cycle, on a timer's external-count input or a counting interrupt: any [`PulseCounter`] | |
//! | backup battery | the cell the node runs on when mains is lost (or `power_loss` could not get out), on an ADC pin behind a divider, as [`BatteryMonitor`] | read every [`ElectricalNodeConfig::battery_every_ms`] |
//!
//! Call [`ElectricalNode::step`] every 100 ms: arc faults are counted within one second from
//! the pulses of whole steps, so a burst is caught only if the steps are short (see
//! [`crate::detect::electrical`]). A step reads every sensor, runs [`Electrical`], publishes its
//! events at once with the step's readings, and offers `residual_current_ma`, `cable_temp_c`,
//! `voltage_v`, `current_a`, `overload` (above the rated current) and the backup battery's
//! `battery_v` as telemetry: every 60 s (the kind's `report_every_secs`), or on a change (30 mA,
//! 2 °C, 10 V, 2 A, 0.05 V) at most every 10 s. Events: those of [`Electrical`], `low_battery`
//! (the backup cell) and `tamper`.
//! A measurement that could not be read is left out of the step and its message (`overload`
//! with the current); an arc count that could not be read joins the next one.
//!
//! [`ScaledInput`]: crate::drivers::analog::ScaledInput

use core::fmt::Debug;

use super::runtime::{flag, loop_accessors, number, BatteryWatch, Runtime};
use super::{Config, Transport};
use crate::detect::battery::{BatteryConfig, BatteryEvent};
use crate::detect::electrical::{
    Electrical, ElectricalEvent, ElectricalSample, ValidElectricalConfig,
};
use crate::detect::Event;
use crate::drivers::analog::BatteryMonitor;
use crate::drivers::Measure;
use crate::hal::{AnalogIn, NvStore};
use crate::seq::SeqCounter;
use crate::wire::{EncodeError, Reading};

/// The kind, as the catalogue spells it.
pub const KIND: &str = "electrical";

/// The messaging configuration of an electrical node: telemetry and heartbeat every 60 s, on
/// change at most every 10 s: the residual current by more than 30 mA (a tenth of the default
/// alarm setting), a cable by more than 2 °C, the voltage by more than 10 V, the current by more
/// than 2 A, the backup battery by more than 0.05 V.
pub fn config(key: Option<&[u8]>) -> Config<'_> {
    Config {
        key,
        telemetry_period_ms: 60_000,
        heartbeat_ms: 60_000,
        deadbands: &[
            ("residual_current_ma", 30.0),
            ("cable_temp_c", 2.0),
            ("voltage_v", 10.0),
            ("current_a", 2.0),
            ("battery_v", 0.05),
        ],
        ..Config::new(KIND)
    }
}

/// The line's voltage and current at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Line {
    /// The voltage, in V (RMS).
    pub voltage_v: f32,
    /// The current, in A (RMS).
    pub current_a: f32,
}

/// A source of the line's voltage and current: a metering IC, or a voltage and a current
/// transformer on two ADC pins.
pub trait LineMeter {
    /// The meter's error type.
    type Error: Debug;

    /// The line's voltage and current now.
    fn read(&mut self) -> Result<Line, Self::Error>;
}

/// A counter of the arc-detection module's pulses, one per fault-arc half-cycle.
pub trait PulseCounter {
    /// The counter's error type.
    type Error: Debug;

    /// The pulses since the previous call that returned `Ok`, and starts counting again.
    fn take(&mut self) -> Result<u32, Self::Error>;
}

/// Timings of the electrical node's loop. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct ElectricalNodeConfig {
    /// The detector's settings, checked against the standard's ranges
    /// ([`crate::detect::electrical::ElectricalConfig::validate`]).
    pub detector: ValidElectricalConfig,
    /// The backup battery's low-battery thresholds.
    pub battery: BatteryConfig,
    /// How often the backup battery is read, in ms. Default 60 s.
    pub battery_every_ms: u64,
    /// How long a read must keep failing before `tamper`, in ms. Default 60 s.
    pub fault_after_ms: u64,
}

impl Default for ElectricalNodeConfig {
    /// The defaults: see each field.
    fn default() -> Self {
        Self {
            detector: ValidElectricalConfig::default(),
            battery: BatteryConfig::default(),
            battery_every_ms: 60_000,
            fault_after_ms: 60_000,
        }
    }
}

/// The parts an electrical node is built from.
pub struct ElectricalParts<R, T, L, C, A> {
    /// The residual current transformer, in mA.
    pub residual: R,
    /// The cable temperature probe, in °C.
    pub cable_temp: T,
    /// The line's voltage and current.
    pub line: L,
    /// The arc-detection module's pulse counter.
    pub arcs: C,
    /// The backup battery.
    pub battery: BatteryMonitor<A>,
}

/// An electrical fire monitor node: its parts, its detector and its [`Runtime`].
pub struct ElectricalNode<'a, R, T, L, C, A> {
    parts: ElectricalParts<R, T, L, C, A>,
    runtime: Runtime<'a>,
    detector: Electrical,
    battery: BatteryWatch,
}

/// A measurement, or NaN (and one more error) if it could not be read.
fn measured<E>(read: Result<f32, E>, errors: &mut u32) -> f32 {
    read.unwrap_or_else(|_| {
        *errors += 1;
        f32::NAN
    })
}

impl<'a, R, T, L, C, A> ElectricalNode<'a, R, T, L, C, A>
where
    R: Measure,
    T: Measure,
    L: LineMeter,
    C: PulseCounter,
    A: AnalogIn,
{
    /// A node over `parts`, numbering with `seq`, started at `now_ms`. `messaging.kind` is set
    /// to [`KIND`]; start from [`config`].
    pub fn new(
        messaging: Config<'a>,
        seq: SeqCounter,
        parts: ElectricalParts<R, T, L, C, A>,
        config: &ElectricalNodeConfig,
        now_ms: u64,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            parts,
            runtime: Runtime::start(KIND, messaging, seq, now_ms, config.fault_after_ms)?,
            detector: Electrical::new(&config.detector),
            battery: BatteryWatch::new(&config.battery, config.battery_every_ms, now_ms),
        })
    }

    /// One turn of the loop at `now_ms` (see the module header).
    pub fn step<Tr: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        transport: &mut Tr,
        store: &mut S,
    ) {
        let mut errors = 0u32;
        let p = &mut self.parts;
        let residual_current_ma = measured(p.residual.read(), &mut errors);
        let cable_temp_c = measured(p.cable_temp.read(), &mut errors);
        let line = p.line.read().unwrap_or_else(|_| {
            errors += 1;
            Line {
                voltage_v: f32::NAN,
                current_a: f32::NAN,
            }
        });
        let arc_half_cycles = p.arcs.take().map_err(|_| errors += 1).ok();
        let sample = ElectricalSample {
            residual_current_ma,
            cable_temp_c,
            voltage_v: line.voltage_v,
            current_a: line.current_a,
            arc_half_cycles,
        };
        let sensors_failed = errors > 0;
        let raised = self.detector.step(now_ms, &sample);
        let low = self
            .battery
            .sample(now_ms, &mut self.parts.battery, &mut errors);
        let names = raised
            .iter()
            .map(Event::name)
            .chain(low.iter().map(Event::name));
        let failing = sensors_failed || self.battery.failed();
        let events = self
            .runtime
            .events::<{ ElectricalEvent::ALL.len() + BatteryEvent::ALL.len() + 1 }>(
                now_ms, names, errors, failing,
            );

        let current = number("current_a", sample.current_a, 2);
        let readings = [
            number("residual_current_ma", sample.residual_current_ma, 0),
            number("cable_temp_c", sample.cable_temp_c, 1),
            number("voltage_v", sample.voltage_v, 1),
            current,
            current.map(|_| flag("overload", self.detector.overload())),
            self.battery.reading(),
        ];
        let data: heapless::Vec<Reading<'static>, 6> = readings.into_iter().flatten().collect();
        self.runtime
            .report(now_ms, &events, &data, transport, store, |_| {});
    }

    loop_accessors!();

    /// Gives the parts back.
    pub fn release(self) -> ElectricalParts<R, T, L, C, A> {
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use core::num::NonZeroU32;
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::detect::electrical::ElectricalConfig;
    use crate::drivers::analog::{Divider, LinearScale, ScaledInput};
    use crate::node::testkit::{Adc, FakeNet, Source};
    use crate::node::Channel;
    use crate::seq::tests::MemStore;
    use crate::wire::Value;

    const WALL: u64 = 1_795_000_000_000;
    /// The divider's bottom resistor, equal to the top one.
    const HALF: NonZeroU32 = NonZeroU32::new(100_000).unwrap();

    /// A metering IC whose readings the test sets.
    type Meter = Source<Line>;

    impl LineMeter for Meter {
        type Error = ();

        fn read(&mut self) -> Result<Line, ()> {
            Source::read(self)
        }
    }

    /// A pulse counter the test adds pulses to.
    #[derive(Clone, Default)]
    struct Pulses(Rc<Cell<u32>>);

    impl PulseCounter for Pulses {
        type Error = ();

        fn take(&mut self) -> Result<u32, ()> {
            Ok(self.0.replace(0))
        }
    }

    type Node = ElectricalNode<'static, ScaledInput<Adc>, ScaledInput<Adc>, Meter, Pulses, Adc>;

    struct Rig {
        residual: Adc,
        battery: Adc,
        meter: Meter,
        pulses: Pulses,
        net: FakeNet,
        store: MemStore,
        node: Node,
    }

    /// 0.5–4.5 V transmitters: 0–1 000 mA of residual current, 0–200 °C; a 3.7 V backup cell
    /// behind a 1:1 divider.
    fn rig() -> Rig {
        let (residual, temp, battery) = (Adc::at(620), Adc::at(1_000), Adc::at(1_850));
        let meter = Meter::at(Line {
            voltage_v: 221.4,
            current_a: 12.25,
        });
        let pulses = Pulses::default();
        let parts = ElectricalParts {
            residual: ScaledInput::new(residual.clone(), LinearScale::transmitter_0v5_4v5(1_000.0)),
            cable_temp: ScaledInput::new(temp, LinearScale::transmitter_0v5_4v5(200.0)),
            line: meter.clone(),
            arcs: pulses.clone(),
            battery: BatteryMonitor::new(battery.clone(), Divider::new(100_000, HALF)),
        };
        let mut store = MemStore::default();
        let seq = SeqCounter::boot(&mut store, 0).unwrap();
        let mut node = ElectricalNode::new(
            config(None),
            seq,
            parts,
            &ElectricalNodeConfig::default(),
            0,
        )
        .unwrap();
        node.node_mut().set_wall_clock(0, WALL);
        Rig {
            residual,
            battery,
            meter,
            pulses,
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
    fn telemetry_carries_the_readings_at_start() {
        let mut r = rig();
        r.step(0);
        assert_eq!(
            r.net.on(Channel::Telemetry),
            [
                r#"{"v":1,"ts":1795000000000,"seq":1,"kind":"electrical","data":{"residual_current_ma":30,"cable_temp_c":25,"voltage_v":221.4,"current_a":12.25,"overload":false,"battery_v":3.7}}"#
            ]
        );
        r.net.assert_readings_listed(KIND);
    }

    #[test]
    fn a_burst_of_arcs_publishes_arc_fault_at_once_with_the_readings() {
        let mut r = rig();
        for t in (0..=2_000).step_by(100) {
            if (1_000..1_400).contains(&t) {
                // 4 half-cycles in each of four steps: 16 within 400 ms.
                r.pulses.0.set(4);
            }
            r.step(t);
        }
        assert_eq!(r.events(), [("arc_fault", 1_300)]);
        assert_eq!(
            r.net.on(Channel::Event),
            [
                r#"{"v":1,"ts":1795000001300,"seq":2,"kind":"electrical","event":"arc_fault","data":{"residual_current_ma":30,"cable_temp_c":25,"voltage_v":221.4,"current_a":12.25,"overload":false,"battery_v":3.7}}"#
            ]
        );
    }

    #[test]
    fn leakage_over_the_setting_for_two_seconds_publishes_residual_current_high() {
        let mut r = rig();
        for t in (0..=5_000).step_by(100) {
            if t == 1_000 {
                // 2.1 V: 400 mA.
                r.residual.set(2_100);
            }
            r.step(t);
        }
        assert_eq!(r.events(), [("residual_current_high", 3_000)]);
        assert_eq!(
            r.net.events()[0].reading("residual_current_ma"),
            Some(Value::Number(400.0))
        );
    }

    #[test]
    fn a_meter_that_stops_answering_is_left_out_and_raises_tamper_after_a_minute() {
        let mut r = rig();
        r.meter.fail();
        for t in (0..=61_000).step_by(1_000) {
            r.step(t);
        }
        assert_eq!(r.events(), [("tamper", 60_000)]);
        let tamper = &r.net.events()[0];
        assert_eq!(tamper.reading("voltage_v"), None);
        assert_eq!(tamper.reading("overload"), None);
        assert_eq!(
            tamper.reading("residual_current_ma"),
            Some(Value::Number(30.0))
        );
        assert_eq!(r.node.stats().read_errors, 62);
    }

    #[test]
    fn a_backup_battery_that_stays_low_publishes_low_battery() {
        let mut r = rig();
        r.battery.set(1_600);
        for t in (0..=60_000).step_by(1_000) {
            r.step(t);
        }
        assert_eq!(r.events(), [("low_battery", 60_000)]);
        assert_eq!(
            r.net.events()[0].reading("battery_v"),
            Some(Value::Number(3.2))
        );
    }

    #[test]
    fn a_site_setting_goes_through_the_standards_check() {
        let config = ElectricalConfig {
            residual_current_alarm_ma: 500.0,
            ..ElectricalConfig::default()
        };
        let node_config = ElectricalNodeConfig {
            detector: config.validate().unwrap(),
            ..ElectricalNodeConfig::default()
        };
        assert_eq!(node_config.detector.get().residual_current_alarm_ma, 500.0);
    }
}
