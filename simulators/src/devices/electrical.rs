//! A distribution box: the firmware's `ElectricalNode` with a residual current transformer and a
//! cable temperature probe (0.5–4.5 V transmitters, 0–1 000 mA and 0–200 °C), a line metering
//! IC, an arc-detection module's pulse counter and a 3.7 V backup cell.
//!
//! The world: the building's load follows the day, 4 A at night and 16 A at the evening peak
//! (the day starts at a phase the seed picks), and now and then someone runs a kettle or a
//! heater for 2–10 minutes (3–8 A more). A healthy installation leaks a little to earth, about
//! 12 mA plus 0.8 mA per ampere; the cable warms towards 25 °C plus 0.035 °C/A² with a
//! ten-minute time constant; the voltage sags 0.15 V/A below 225 V. All of it stays well inside
//! the firmware's settings (300 mA, 70 °C, 32 A rated).
//!
//! | action | what happens | the firmware sees |
//! |---|---|---|
//! | `leak` (`residual_ma = 400`) | damaged insulation leaks `residual_ma` to earth until the incident ends | `residual_current_high` after 2 s (over 300 mA) |
//! | `overheat` (`temp_c = 85`) | a loose terminal heats the cable towards `temp_c` (a minute's time constant) until the incident ends, then it cools | `cable_temp_high` once over 70 °C for 5 s |
//! | `arc` | a damaged wire arcs: 20 fault-arc half-cycles in half a second, every 3 s, until the incident ends | `arc_fault` at the first burst |
//! | `overload` (`amps = 40`) | the circuit carries `amps` until the incident ends | `overcurrent` after a minute over 32 A |
//! | `power_cut` | mains is lost until the incident ends; the node runs on its cell | `power_loss` after 2 s |
//!
//! An incident without a `for` lasts for the rest of the run.

use std::f32::consts::TAU;

use gridwatch_firmware::drivers::analog::{BatteryMonitor, LinearScale, ScaledInput};
use gridwatch_firmware::node::electrical::{
    self, ElectricalNode, ElectricalNodeConfig, ElectricalParts, Line,
};
use gridwatch_firmware::node::Node;
use gridwatch_firmware::seq::SeqCounter;
use serde::Deserialize;

use super::{BuildError, Physics, Rng, HALF, STEP_MS};
use crate::community::DeviceSpec;
use crate::hw::{Adc, ArcPulses, Meter};
use crate::link::Link;
use crate::store::DeviceStore;

const RESIDUAL_FULL_MA: f32 = 1_000.0;
const CABLE_FULL_C: f32 = 200.0;
const BATTERY_MV: u32 = 3_700;
const DAY_MS: u64 = 24 * 3_600_000;
/// How fast the cable follows its load, and a loose terminal its heat, in ms.
const CABLE_TAU_MS: f32 = 600_000.0;
const HOT_TAU_MS: f32 = 60_000.0;
/// One arc burst: half-cycles per step, steps, and the time between bursts.
const ARC_PER_STEP: u32 = 4;
const ARC_BURST_MS: u64 = 500;
const ARC_EVERY_MS: u64 = 3_000;

/// What a scenario can make happen in a distribution box (see the module header).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ElectricalIncident {
    /// Damaged insulation leaks current to earth.
    Leak {
        /// How much (default 400 mA).
        #[serde(default = "leak")]
        residual_ma: f32,
    },
    /// A loose terminal heats the cable.
    Overheat {
        /// Towards what temperature (default 85 °C).
        #[serde(default = "hot")]
        temp_c: f32,
    },
    /// A damaged wire arcs.
    Arc {},
    /// The circuit is overloaded.
    Overload {
        /// With what current (default 40 A).
        #[serde(default = "overload")]
        amps: f32,
    },
    /// Mains is lost.
    PowerCut {},
}

fn leak() -> f32 {
    400.0
}

fn hot() -> f32 {
    85.0
}

fn overload() -> f32 {
    40.0
}

/// The circuit behind the box.
#[derive(Debug)]
struct Circuit {
    phase_ms: u64,
    appliance: Option<(u64, f32)>,
    next_appliance: u64,
    cable_c: f32,
    leak_ma: Option<f32>,
    hot_c: Option<f32>,
    arcing: bool,
    next_burst: u64,
    burst_until: u64,
    overload_a: Option<f32>,
    power_cut: bool,
    rng: Rng,
}

impl Circuit {
    fn load_a(&self, now: u64) -> f32 {
        if self.power_cut {
            return 0.0;
        }
        if let Some(amps) = self.overload_a {
            return amps;
        }
        let day = ((now + self.phase_ms) % DAY_MS) as f32 / DAY_MS as f32;
        let base = 4.0 + 12.0 * (0.5 - 0.5 * (TAU * day).cos());
        base + self.appliance.map_or(0.0, |(_, a)| a)
    }

    /// Moves on one step to `now`; returns the line and the arc half-cycles of the step.
    fn advance(&mut self, now: u64) -> (Line, u32) {
        if now >= self.next_appliance {
            let amps = 3.0 + 5.0 * self.rng.uniform() as f32;
            self.appliance = Some((now + self.rng.between(120_000, 600_000), amps));
            self.next_appliance = now + self.rng.between(600_000, 3_600_000);
        }
        if self.appliance.is_some_and(|(until, _)| now >= until) {
            self.appliance = None;
        }
        let amps = self.load_a(now);
        let (target, tau) = match self.hot_c {
            Some(c) => (c, HOT_TAU_MS),
            None => (25.0 + 0.035 * amps * amps, CABLE_TAU_MS),
        };
        self.cable_c += (target - self.cable_c) * (STEP_MS as f32 / tau);
        let mut arcs = 0;
        if self.arcing && now >= self.next_burst {
            self.burst_until = now + ARC_BURST_MS;
            self.next_burst = now + ARC_EVERY_MS;
        }
        if self.arcing && now < self.burst_until {
            arcs = ARC_PER_STEP;
        }
        let volts = if self.power_cut {
            0.0
        } else {
            225.0 - 0.15 * amps + self.noise(1.0)
        };
        let line = Line {
            voltage_v: volts,
            current_a: amps + self.noise(0.1),
        };
        (line, arcs)
    }

    fn residual_ma(&mut self, amps: f32) -> f32 {
        self.leak_ma
            .unwrap_or_else(|| 12.0 + 0.8 * amps + self.noise(3.0))
    }

    /// Noise in ±`amplitude`.
    fn noise(&mut self, amplitude: f32) -> f32 {
        (self.rng.uniform() as f32 * 2.0 - 1.0) * amplitude
    }
}

/// The millivolts a 0.5–4.5 V transmitter with range `full` gives for `value`.
fn transmitter_mv(value: f32, full: f32) -> u32 {
    (500.0 + value.clamp(0.0, full) / full * 4_000.0).round() as u32
}

/// A virtual electrical fire monitor in a distribution box.
pub struct Electrical {
    node: ElectricalNode<'static, ScaledInput<Adc>, ScaledInput<Adc>, Meter, ArcPulses, Adc>,
    residual: Adc,
    cable: Adc,
    meter: Meter,
    arcs: ArcPulses,
    battery: Adc,
    circuit: Circuit,
}

impl Physics for Electrical {
    const KIND: &'static str = electrical::KIND;
    const ACTIONS: &'static [&'static str] = &["leak", "overheat", "arc", "overload", "power_cut"];
    type Incident = ElectricalIncident;

    fn build(
        _device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        seed: u64,
    ) -> Result<Self, BuildError> {
        let (residual, cable, battery) = (Adc::default(), Adc::default(), Adc::default());
        let (meter, arcs) = (Meter::default(), ArcPulses::default());
        let parts = ElectricalParts {
            residual: ScaledInput::new(
                residual.clone(),
                LinearScale::transmitter_0v5_4v5(RESIDUAL_FULL_MA),
            ),
            cable_temp: ScaledInput::new(
                cable.clone(),
                LinearScale::transmitter_0v5_4v5(CABLE_FULL_C),
            ),
            line: meter.clone(),
            arcs: arcs.clone(),
            battery: BatteryMonitor::new(battery.clone(), HALF),
        };
        let node = ElectricalNode::new(
            electrical::config(None),
            seq,
            parts,
            &ElectricalNodeConfig::default(),
            now_ms,
        )
        .map_err(BuildError::Firmware)?;
        let mut rng = Rng::new(seed);
        let mut circuit = Circuit {
            phase_ms: rng.between(0, DAY_MS),
            appliance: None,
            next_appliance: now_ms + rng.between(60_000, 1_800_000),
            cable_c: 0.0,
            leak_ma: None,
            hot_c: None,
            arcing: false,
            next_burst: 0,
            burst_until: 0,
            overload_a: None,
            power_cut: false,
            rng,
        };
        let amps = circuit.load_a(now_ms);
        circuit.cable_c = 25.0 + 0.035 * amps * amps;
        Ok(Self {
            node,
            residual,
            cable,
            meter,
            arcs,
            battery,
            circuit,
        })
    }

    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>) {
        let (line, arcs) = self.circuit.advance(now_ms);
        let residual = self.circuit.residual_ma(line.current_a);
        self.residual
            .set_mv(transmitter_mv(residual, RESIDUAL_FULL_MA));
        self.cable
            .set_mv(transmitter_mv(self.circuit.cable_c, CABLE_FULL_C));
        self.meter.set(line);
        self.arcs.add(arcs);
        self.battery.set_mv(BATTERY_MV / 2);
        self.node.step(now_ms, link, store);
    }

    fn start(&mut self, incident: &ElectricalIncident, now_ms: u64) {
        let c = &mut self.circuit;
        match *incident {
            ElectricalIncident::Leak { residual_ma } => c.leak_ma = Some(residual_ma),
            ElectricalIncident::Overheat { temp_c } => c.hot_c = Some(temp_c),
            ElectricalIncident::Arc {} => {
                c.arcing = true;
                c.next_burst = now_ms;
            }
            ElectricalIncident::Overload { amps } => c.overload_a = Some(amps),
            ElectricalIncident::PowerCut {} => c.power_cut = true,
        }
    }

    fn end(&mut self, incident: &ElectricalIncident, _now_ms: u64) {
        let c = &mut self.circuit;
        match incident {
            ElectricalIncident::Leak { .. } => c.leak_ma = None,
            ElectricalIncident::Overheat { .. } => c.hot_c = None,
            ElectricalIncident::Arc {} => c.arcing = false,
            ElectricalIncident::Overload { .. } => c.overload_a = None,
            ElectricalIncident::PowerCut {} => c.power_cut = false,
        }
    }

    fn cut_off(&mut self, cut: bool) {
        self.residual.cut(cut);
        self.cable.cut(cut);
        self.meter.cut(cut);
        self.arcs.cut(cut);
        self.battery.cut(cut);
    }

    fn node_mut(&mut self) -> &mut Node<'static> {
        self.node.node_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testkit::{build, events, run};

    #[test]
    fn a_day_of_ordinary_load_raises_no_event() {
        let mut eb: Electrical = build("eb-b1-1");
        let sent = run(&mut eb, 0, DAY_MS);
        assert_eq!(events(&sent), Vec::<String>::new());
        assert!(
            sent.iter().any(|m| m.contains("\"current_a\":")),
            "{sent:?}"
        );
    }

    #[test]
    fn each_fault_raises_its_event() {
        for (incident, seen) in [
            (
                ElectricalIncident::Leak { residual_ma: 400.0 },
                "residual_current_high",
            ),
            (
                ElectricalIncident::Overheat { temp_c: 85.0 },
                "cable_temp_high",
            ),
            (ElectricalIncident::Arc {}, "arc_fault"),
            (ElectricalIncident::Overload { amps: 40.0 }, "overcurrent"),
            (ElectricalIncident::PowerCut {}, "power_loss"),
        ] {
            let mut eb: Electrical = build("eb-b2-1");
            run(&mut eb, 0, 10_000);
            eb.start(&incident, 10_000);
            assert_eq!(
                events(&run(&mut eb, 10_000, 190_000)),
                [seen],
                "{incident:?}"
            );
        }
    }

    #[test]
    fn a_mended_circuit_goes_back_to_normal_readings() {
        let mut eb: Electrical = build("eb-b1-1");
        let cut = ElectricalIncident::PowerCut {};
        eb.start(&cut, 0);
        run(&mut eb, 0, 10_000);
        eb.end(&cut, 10_000);
        let sent = run(&mut eb, 10_000, 30_000);
        assert!(
            sent.iter().any(|m| m.contains("\"voltage_v\":22")),
            "{sent:?}"
        );
    }
}
