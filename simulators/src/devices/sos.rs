//! An SOS button: the firmware's `SosNode` in an elderly resident's home.
//!
//! The world: the resident, the button (to ground with a pull-up: pressed reads low), its LED,
//! whose pattern ([`Sos::led_pattern`]) says whether the call went out and whether help is
//! coming, and a 3.6 V lithium cell behind a 100 kΩ / 100 kΩ divider. Nobody presses the
//! button unless a scenario says so.
//!
//! | action | what happens | the firmware sees |
//! |---|---|---|
//! | `press` | the resident presses the button for 0.4 s | `sos_pressed` at once; a second press within 10 s, `sos_cancelled` |
//! | `battery` (`volts = 3.1`) | the cell runs down to `volts`; a fresh one is fitted once the incident ends | `low_battery` below 3.3 V for 60 s |

use gridwatch_firmware::drivers::analog::BatteryMonitor;
use gridwatch_firmware::drivers::output::{Led, LedPattern};
use gridwatch_firmware::drivers::Polarity;
use gridwatch_firmware::node::sos::{self, SosNode, SosNodeConfig, SosParts};
use gridwatch_firmware::node::Node;
use gridwatch_firmware::seq::SeqCounter;
use serde::Deserialize;

use super::{BuildError, Physics, HALF};
use crate::community::DeviceSpec;
use crate::hw::{Adc, Pin};
use crate::link::Link;
use crate::store::DeviceStore;

const PRESS_MS: u64 = 400;
const FRESH_BATTERY_MV: u32 = 3_600;

/// What a scenario can make happen at an SOS button (see the module header).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SosIncident {
    /// The resident presses the button.
    Press {},
    /// The cell runs down.
    Battery {
        /// To what voltage (default 3.1 V).
        #[serde(default = "low")]
        volts: f32,
    },
}

fn low() -> f32 {
    3.1
}

/// A virtual SOS button.
pub struct Sos {
    node: SosNode<'static, Pin, Pin, Adc>,
    button: Pin,
    led: Pin,
    battery: Adc,
    pressed_until: u64,
    battery_mv: u32,
}

impl Sos {
    /// What the LED shows now.
    pub fn led_pattern(&self) -> LedPattern {
        self.node.led_pattern()
    }
}

impl Physics for Sos {
    const KIND: &'static str = sos::KIND;
    const ACTIONS: &'static [&'static str] = &["press", "battery"];
    type Incident = SosIncident;

    fn build(
        _device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        _seed: u64,
    ) -> Result<Self, BuildError> {
        let (button, led, battery) = (Pin::new(true), Pin::new(false), Adc::default());
        let parts = SosParts {
            button: button.clone(),
            button_polarity: Polarity::ActiveLow,
            led: Led::new(led.clone(), Polarity::ActiveHigh),
            battery: BatteryMonitor::new(battery.clone(), HALF),
        };
        let node = SosNode::new(
            sos::config(None),
            seq,
            parts,
            &SosNodeConfig::default(),
            now_ms,
        )
        .map_err(BuildError::Firmware)?;
        Ok(Self {
            node,
            button,
            led,
            battery,
            pressed_until: 0,
            battery_mv: FRESH_BATTERY_MV,
        })
    }

    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>) {
        self.button.set(now_ms >= self.pressed_until);
        self.battery.set_mv(self.battery_mv / 2);
        self.node.step(now_ms, link, store);
    }

    fn start(&mut self, incident: &SosIncident, now_ms: u64) {
        match *incident {
            SosIncident::Press {} => self.pressed_until = now_ms + PRESS_MS,
            SosIncident::Battery { volts } => self.battery_mv = (volts * 1000.0).round() as u32,
        }
    }

    fn end(&mut self, incident: &SosIncident, _now_ms: u64) {
        if let SosIncident::Battery { .. } = incident {
            self.battery_mv = FRESH_BATTERY_MV;
        }
    }

    fn cut_off(&mut self, cut: bool) {
        self.button.cut(cut);
        self.led.cut(cut);
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
    fn a_press_calls_at_once_and_a_second_within_ten_seconds_cancels() {
        let mut sos: Sos = build("sos-b1-0301");
        assert_eq!(
            run(&mut sos, 0, 60_000).len(),
            1,
            "the battery reading at boot"
        );
        sos.start(&SosIncident::Press {}, 60_000);
        let sent = run(&mut sos, 60_000, 60_500);
        assert_eq!(events(&sent), ["sos_pressed"]);
        assert_eq!(sos.led_pattern(), LedPattern::SlowBlink);
        sos.start(&SosIncident::Press {}, 63_000);
        assert_eq!(events(&run(&mut sos, 60_500, 64_000)), ["sos_cancelled"]);
        assert_eq!(sos.led_pattern(), LedPattern::Off);
    }

    #[test]
    fn help_coming_from_the_gateway_changes_the_led() {
        let mut sos: Sos = build("sos-b1-0301");
        sos.start(&SosIncident::Press {}, 0);
        run(&mut sos, 0, 1_000);
        let mut link = Link::new(true);
        link.push_cmd(
            br#"{"v":1,"ts":1795000001000,"cmd":"help_coming","alert_id":"a-1"}"#.to_vec(),
        );
        sos.step(
            1_100,
            &mut link,
            &mut crate::store::SeqStore::in_memory().device("s"),
        );
        assert_eq!(sos.led_pattern(), LedPattern::DoubleBlink);
    }

    #[test]
    fn a_run_down_cell_is_reported() {
        let mut sos: Sos = build("sos-b1-0301");
        sos.start(&SosIncident::Battery { volts: 3.1 }, 0);
        assert_eq!(events(&run(&mut sos, 0, 200_000)), ["low_battery"]);
    }
}
