//! A manhole cover: the firmware's `ManholeNode` under a cover in the street.
//!
//! The world: the cover lies flat; every 1–5 minutes a passing vehicle rocks it by 1–3° for
//! under a second; water stands about 20 cm deep and drifts by a few cm; a trace of gas
//! (under 50 ppm); a fresh 3.6 V battery. None of that is an incident to the firmware.
//!
//! The parts: an ADXL345 on I2C ([`crate::hw::Adxl345`]) measuring the cover's gravity vector,
//! the cover contact pin, a 0.5–4.5 V water-level transmitter for 0–5 m and a gas transmitter for
//! 0–10,000 ppm on ADC inputs, and the battery behind a 100 kΩ / 100 kΩ divider.
//!
//! | action | what happens | the firmware sees |
//! |---|---|---|
//! | `knocked_aside` (`tilt_deg = 30`) | the cover is knocked off its seat and lies tilted, contact open, until the incident ends, when it is put back | `cover_displaced` within the next sample (10 s) and 2 s |
//! | `storm` (`water_cm = 95`, `rise = "2m"`) | the water rises steadily to `water_cm` over `rise`, and drains back as fast once the incident ends | `water_overflow` once it has stood at 80 cm for 10 s |
//! | `gas` (`ppm = 8000`) | gas builds up to `ppm`, and clears once the incident ends | `gas_high` at 5,000 ppm for 2 s |
//! | `battery` (`volts = 3.1`) | the battery runs down to `volts`; a fresh one is fitted once the incident ends | `low_battery` below 3.3 V for 60 s |
//!
//! An incident without a `for` lasts for the rest of the run.

use gridwatch_firmware::drivers::adxl345::{self, Address};
use gridwatch_firmware::drivers::analog::{BatteryMonitor, LinearScale, ScaledInput};
use gridwatch_firmware::drivers::input::DebouncedInput;
use gridwatch_firmware::drivers::Polarity;
use gridwatch_firmware::node::manhole::{self, ManholeNode, ManholeNodeConfig, ManholeParts};
use gridwatch_firmware::node::Node;
use gridwatch_firmware::seq::SeqCounter;
use serde::Deserialize;

use super::{BuildError, Millis, Physics, Rng, HALF, STEP_MS};
use crate::community::DeviceSpec;
use crate::hw::{Accel, Adc, Adxl345, Pin};
use crate::link::Link;
use crate::store::DeviceStore;

const WATER_FULL_CM: f32 = 500.0;
const GAS_FULL_PPM: f32 = 10_000.0;
const FRESH_BATTERY_MV: u32 = 3_600;

/// What a scenario can make happen to a manhole (see the module header).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ManholeIncident {
    /// The cover is knocked off its seat.
    KnockedAside {
        /// How far it lies tilted (default 30°).
        #[serde(default = "tilt")]
        tilt_deg: f32,
    },
    /// Heavy rain floods the well.
    Storm {
        /// How high the water rises (default 95 cm).
        #[serde(default = "flood")]
        water_cm: f32,
        /// How long it takes to get there (default 2 min).
        #[serde(default = "two_minutes")]
        rise: Millis,
    },
    /// Gas builds up in the well.
    Gas {
        /// To how much (default 8,000 ppm).
        #[serde(default = "gas")]
        ppm: f32,
    },
    /// The battery runs down.
    Battery {
        /// To what voltage (default 3.1 V).
        #[serde(default = "low")]
        volts: f32,
    },
}

fn tilt() -> f32 {
    30.0
}
fn flood() -> f32 {
    95.0
}
fn two_minutes() -> Millis {
    Millis(120_000)
}
fn gas() -> f32 {
    8_000.0
}
fn low() -> f32 {
    3.1
}

/// A quantity that moves steadily toward a target.
#[derive(Clone, Copy, Debug)]
struct Ramp {
    now: f32,
    target: f32,
    per_ms: f32,
}

impl Ramp {
    fn at(value: f32) -> Self {
        Self {
            now: value,
            target: value,
            per_ms: 0.0,
        }
    }

    fn to(&mut self, target: f32, over_ms: u64) {
        self.target = target;
        self.per_ms = (target - self.now).abs() / over_ms.max(1) as f32;
    }

    fn advance(&mut self, dt_ms: u64) {
        let step = self.per_ms * dt_ms as f32;
        if (self.target - self.now).abs() <= step {
            self.now = self.target;
        } else {
            self.now += step.copysign(self.target - self.now);
        }
    }
}

/// The well under the cover.
#[derive(Debug)]
struct Well {
    tilt_deg: f32,
    knocked: Option<f32>,
    rocking_until: u64,
    next_vehicle: u64,
    water: Ramp,
    storm_rise_ms: u64,
    gas: Ramp,
    battery_mv: u32,
    rng: Rng,
}

impl Well {
    fn advance(&mut self, now: u64) {
        if now >= self.next_vehicle {
            self.rocking_until = now + self.rng.between(300, 900);
            self.next_vehicle = now + self.rng.between(60_000, 300_000);
            self.tilt_deg = 1.0 + 2.0 * self.rng.uniform() as f32;
        }
        if now >= self.rocking_until {
            self.tilt_deg = 0.0;
        }
        if let Some(tilt) = self.knocked {
            self.tilt_deg = tilt;
        }
        // Standing water drifts a little when nothing drives it.
        if self.water.per_ms == 0.0 && self.rng.chance(0.001) {
            self.water.now =
                (self.water.now + self.rng.uniform() as f32 * 4.0 - 2.0).clamp(15.0, 25.0);
            self.water.target = self.water.now;
        }
        self.water.advance(STEP_MS);
        self.gas.advance(STEP_MS);
    }
}

/// A virtual manhole node.
pub struct Manhole {
    node: ManholeNode<'static, Adxl345, Pin, Adc, Adc, Adc>,
    accel: Accel,
    cover: Pin,
    water: Adc,
    gas: Adc,
    battery: Adc,
    well: Well,
}

/// The millivolts a 0.5–4.5 V transmitter puts out for `value` of `full`.
fn transmitter_mv(value: f32, full: f32) -> u32 {
    (500.0 + 4_000.0 * (value / full).clamp(0.0, 1.0)).round() as u32
}

impl Physics for Manhole {
    const KIND: &'static str = manhole::KIND;
    const ACTIONS: &'static [&'static str] = &["knocked_aside", "storm", "gas", "battery"];
    type Incident = ManholeIncident;

    fn build(
        _device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        seed: u64,
    ) -> Result<Self, BuildError> {
        let (accel, cover) = (Accel::default(), Pin::new(false));
        let (water, gas, battery) = (Adc::default(), Adc::default(), Adc::default());
        let parts = ManholeParts {
            accel: adxl345::Adxl345::new(Adxl345::new(accel.clone()), Address::AltLow),
            cover: DebouncedInput::new(cover.clone(), Polarity::ActiveHigh, 0),
            water: ScaledInput::new(
                water.clone(),
                LinearScale::transmitter_0v5_4v5(WATER_FULL_CM),
            ),
            gas: ScaledInput::new(gas.clone(), LinearScale::transmitter_0v5_4v5(GAS_FULL_PPM)),
            battery: BatteryMonitor::new(battery.clone(), HALF),
        };
        let node = ManholeNode::new(
            manhole::config(None),
            seq,
            parts,
            &ManholeNodeConfig::default(),
            now_ms,
        )
        .map_err(BuildError::Firmware)?;
        let mut rng = Rng::new(seed);
        let well = Well {
            tilt_deg: 0.0,
            knocked: None,
            rocking_until: 0,
            next_vehicle: now_ms + rng.between(60_000, 300_000),
            water: Ramp::at(18.0 + 4.0 * rng.uniform() as f32),
            storm_rise_ms: 0,
            gas: Ramp::at(10.0 + 40.0 * rng.uniform() as f32),
            battery_mv: FRESH_BATTERY_MV,
            rng,
        };
        Ok(Self {
            node,
            accel,
            cover,
            water,
            gas,
            battery,
            well,
        })
    }

    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>) {
        let w = &mut self.well;
        w.advance(now_ms);
        let rad = f64::from(w.tilt_deg).to_radians();
        self.accel
            .set_mg([(rad.sin() * 1000.0) as i32, 0, (rad.cos() * 1000.0) as i32]);
        self.cover.set(w.knocked.is_some());
        self.water
            .set_mv(transmitter_mv(w.water.now, WATER_FULL_CM));
        self.gas.set_mv(transmitter_mv(w.gas.now, GAS_FULL_PPM));
        self.battery.set_mv(w.battery_mv / 2);
        // The node's answer (when it wants to wake) only saves a board's battery: the
        // simulation steps every node at the same pace, and the node samples when it is due.
        self.node.step(now_ms, link, store);
    }

    fn start(&mut self, incident: &ManholeIncident, _now_ms: u64) {
        let w = &mut self.well;
        match *incident {
            ManholeIncident::KnockedAside { tilt_deg } => w.knocked = Some(tilt_deg),
            ManholeIncident::Storm { water_cm, rise } => {
                w.storm_rise_ms = rise.0;
                w.water.to(water_cm, rise.0);
            }
            ManholeIncident::Gas { ppm } => w.gas.to(ppm, 30_000),
            ManholeIncident::Battery { volts } => w.battery_mv = (volts * 1000.0).round() as u32,
        }
    }

    fn end(&mut self, incident: &ManholeIncident, _now_ms: u64) {
        let w = &mut self.well;
        match incident {
            ManholeIncident::KnockedAside { .. } => w.knocked = None,
            ManholeIncident::Storm { .. } => w.water.to(20.0, w.storm_rise_ms),
            ManholeIncident::Gas { .. } => w.gas.to(20.0, 60_000),
            ManholeIncident::Battery { .. } => w.battery_mv = FRESH_BATTERY_MV,
        }
    }

    fn cut_off(&mut self, cut: bool) {
        self.accel.cut(cut);
        self.cover.cut(cut);
        for adc in [&self.water, &self.gas, &self.battery] {
            adc.cut(cut);
        }
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
    fn a_day_under_traffic_raises_no_event_and_sends_a_heartbeat_every_half_hour() {
        let mut mh: Manhole = build("mh-1");
        let sent = run(&mut mh, 0, 86_400_000);
        assert_eq!(events(&sent), Vec::<String>::new());
        assert_eq!(sent.len(), 48, "one at boot, then one every 30 minutes");
        assert!(
            sent[0].contains("\"tilt_deg\":0") && sent[0].contains("\"battery_v\":3.6"),
            "{}",
            sent[0]
        );
    }

    #[test]
    fn a_cover_knocked_aside_is_displaced_within_a_sample_and_the_hold() {
        let mut mh: Manhole = build("mh-1");
        run(&mut mh, 0, 60_000);
        mh.start(&ManholeIncident::KnockedAside { tilt_deg: 30.0 }, 60_000);
        let sent = run(&mut mh, 60_000, 75_000);
        assert_eq!(events(&sent), ["cover_displaced"]);
        assert!(
            sent[0].contains("\"tilt_deg\":30") && sent[0].contains("\"cover_open\":true"),
            "{}",
            sent[0]
        );
    }

    #[test]
    fn a_storm_overflows_gas_builds_up_and_a_battery_runs_down() {
        for (incident, event, within) in [
            (
                ManholeIncident::Storm {
                    water_cm: 95.0,
                    rise: Millis(120_000),
                },
                "water_overflow",
                150_000,
            ),
            (ManholeIncident::Gas { ppm: 8_000.0 }, "gas_high", 60_000),
            (
                ManholeIncident::Battery { volts: 3.1 },
                "low_battery",
                90_000,
            ),
        ] {
            let mut mh: Manhole = build("mh-2");
            mh.start(&incident, 0);
            assert_eq!(events(&run(&mut mh, 0, within)), [event], "{incident:?}");
        }
    }
}
