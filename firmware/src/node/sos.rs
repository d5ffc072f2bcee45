//! The SOS button's loop: a push button, an LED and a battery, in an elderly resident's home.
//!
//! | part | connection | notes |
//! |---|---|---|
//! | button | a GPIO input (`embedded_hal::digital::InputPin`) | usually to ground with a pull-up: [`Polarity::ActiveLow`]; debounced by [`Sos`] (50 ms) |
//! | LED | a GPIO output, as [`Led`] | off = idle, slow blink = "sent", double blink = "help is coming" |
//! | battery | an ADC pin behind a divider, as [`BatteryMonitor`] | read every [`SosNodeConfig::battery_every_ms`] |
//!
//! Call [`SosNode::step`] every 10 ms or so (the button is sampled at each step; a button
//! interrupt that wakes the loop works as well). A step: reads the button and runs [`Sos`];
//! reads the battery when due; publishes `sos_pressed` / `sos_cancelled` at once (with empty
//! `data`, the smallest payload), `low_battery` and `tamper` when raised; reads the downlink
//! (`help_coming` switches the LED to help-is-coming); offers `battery_v` as telemetry (every
//! 10 minutes, or on a change of more than 0.05 V); retries and heartbeats; drives the LED.

use embedded_hal::digital::{InputPin, OutputPin};

use super::runtime::{loop_accessors, BatteryWatch, Runtime};
use super::{Command, Config, Transport};
use crate::detect::battery::{BatteryConfig, BatteryEvent};
use crate::detect::sos::{Led as LedState, Sos, SosConfig, SosEvent};
use crate::detect::Event;
use crate::drivers::analog::BatteryMonitor;
use crate::drivers::output::{Led, LedPattern};
use crate::drivers::Polarity;
use crate::hal::{AnalogIn, NvStore};
use crate::seq::SeqCounter;
use crate::wire::{EncodeError, Reading};

/// The kind, as the catalogue spells it.
pub const KIND: &str = "sos";

/// The messaging configuration of an SOS node: telemetry and heartbeat every 10 minutes (the
/// kind's `report_every_secs` is 600), battery changes beyond 0.05 V at most every 10 s.
pub fn config(key: Option<&[u8]>) -> Config<'_> {
    Config {
        key,
        telemetry_period_ms: 600_000,
        heartbeat_ms: 600_000,
        deadbands: &[("battery_v", 0.05)],
        ..Config::new(KIND)
    }
}

/// Timings of the SOS node's loop. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct SosNodeConfig {
    /// The button's timings.
    pub sos: SosConfig,
    /// The low-battery thresholds.
    pub battery: BatteryConfig,
    /// How often the battery is read, in ms. Default 60 s: it changes over months.
    pub battery_every_ms: u64,
    /// How long a read must keep failing before `tamper`, in ms. Default 60 s.
    pub fault_after_ms: u64,
}

impl Default for SosNodeConfig {
    /// The defaults: see each field.
    fn default() -> Self {
        Self {
            sos: SosConfig::default(),
            battery: BatteryConfig::default(),
            battery_every_ms: 60_000,
            fault_after_ms: 60_000,
        }
    }
}

/// The parts an SOS node is built from.
pub struct SosParts<B, L, A> {
    /// The button's pin.
    pub button: B,
    /// Which level of the button's pin means pressed.
    pub button_polarity: Polarity,
    /// The LED.
    pub led: Led<L>,
    /// The battery's ADC input.
    pub battery: BatteryMonitor<A>,
}

/// An SOS node: its parts, its detectors and its [`Runtime`].
pub struct SosNode<'a, B, L, A> {
    parts: SosParts<B, L, A>,
    runtime: Runtime<'a>,
    sos: Sos,
    battery: BatteryWatch,
    pressed: bool,
}

impl<'a, B: InputPin, L: OutputPin, A: AnalogIn> SosNode<'a, B, L, A> {
    /// A node over `parts`, numbering with `seq`, started at `now_ms`. `messaging.kind` is set
    /// to [`KIND`]; start from [`config`].
    pub fn new(
        messaging: Config<'a>,
        seq: SeqCounter,
        parts: SosParts<B, L, A>,
        config: &SosNodeConfig,
        now_ms: u64,
    ) -> Result<Self, EncodeError> {
        let runtime = Runtime::start(KIND, messaging, seq, now_ms, config.fault_after_ms)?;
        Ok(Self {
            parts,
            // The button's events carry no readings: the smallest payload goes out first.
            runtime: runtime.bare_events(),
            sos: Sos::new(&config.sos),
            battery: BatteryWatch::new(&config.battery, config.battery_every_ms, now_ms),
            pressed: false,
        })
    }

    /// One turn of the loop at `now_ms` (see the module header).
    pub fn step<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
        store: &mut S,
    ) {
        let mut errors = 0u32;
        match self.parts.button.is_high() {
            Ok(high) => self.pressed = self.parts.button_polarity.is_active(high),
            Err(_) => errors += 1,
        }
        let button_failed = errors > 0;
        let call = self.sos.step(now_ms, self.pressed);
        let low = self
            .battery
            .sample(now_ms, &mut self.parts.battery, &mut errors);
        let raised = call
            .iter()
            .map(Event::name)
            .chain(low.iter().map(Event::name));
        let failing = button_failed || self.battery.failed();
        let events = self
            .runtime
            .events::<{ SosEvent::ALL.len() + BatteryEvent::ALL.len() + 1 }>(
                now_ms, raised, errors, failing,
            );

        let data: heapless::Vec<Reading<'static>, 1> = self.battery.reading().into_iter().collect();
        let sos = &mut self.sos;
        self.runtime
            .report(now_ms, &events, &data, transport, store, |cmd| {
                if let Command::HelpComing { .. } = cmd {
                    sos.help_coming(now_ms);
                }
            });
        if self.parts.led.set(self.led_pattern(), now_ms).is_err() {
            self.runtime.output_failed();
        }
    }

    /// The pattern the LED shows for the call's state.
    pub fn led_pattern(&self) -> LedPattern {
        match self.sos.led() {
            LedState::Idle => LedPattern::Off,
            LedState::Sent => LedPattern::SlowBlink,
            LedState::HelpComing => LedPattern::DoubleBlink,
        }
    }

    loop_accessors!();

    /// Gives the parts back.
    pub fn release(self) -> SosParts<B, L, A> {
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use core::num::NonZeroU32;

    use super::*;
    use crate::auth;
    use crate::drivers::analog::Divider;
    use crate::node::testkit::{Adc, FakeNet, Pin};
    use crate::node::Channel;
    use crate::seq::tests::MemStore;
    use crate::seq::{FIRST, LEASE};

    const WALL: u64 = 1_795_000_000_000;
    const KEY: &[u8] = b"yg-sos-0001 device key, 32 bytes";

    struct Rig {
        button: Pin,
        led: Pin,
        adc: Adc,
        net: FakeNet,
        store: MemStore,
    }

    type Node = SosNode<'static, Pin, Pin, Adc>;

    fn rig() -> Rig {
        Rig {
            // Pulled up: high while released.
            button: Pin::at(true),
            led: Pin::default(),
            adc: Adc::at(3_610),
            net: FakeNet::default(),
            store: MemStore::default(),
        }
    }

    fn boot(r: &mut Rig) -> Node {
        let parts = SosParts {
            button: r.button.clone(),
            button_polarity: Polarity::ActiveLow,
            led: Led::new(r.led.clone(), Polarity::ActiveHigh),
            battery: BatteryMonitor::new(r.adc.clone(), Divider::new(0, NonZeroU32::MIN)),
        };
        let seq = SeqCounter::boot(&mut r.store, 0).unwrap();
        let mut node =
            SosNode::new(config(Some(KEY)), seq, parts, &SosNodeConfig::default(), 0).unwrap();
        node.node_mut().set_wall_clock(0, WALL);
        node
    }

    fn step(node: &mut Node, r: &mut Rig, now: u64) {
        node.step(now, &mut r.net, &mut r.store);
    }

    #[test]
    fn a_press_publishes_sos_pressed_at_once_signed_and_the_led_blinks_sent() {
        let mut r = rig();
        let mut node = boot(&mut r);
        step(&mut node, &mut r, 0);
        assert_eq!(r.led.level(), Some(false), "idle: dark");
        r.button.set(false);
        step(&mut node, &mut r, 1_000);
        assert!(r.net.on(Channel::Event).is_empty(), "still debouncing");
        step(&mut node, &mut r, 1_050);
        let events = r.net.on(Channel::Event);
        assert_eq!(events.len(), 1);
        let unsigned =
            r#"{"v":1,"ts":1795000001050,"seq":2,"kind":"sos","event":"sos_pressed","data":{}"#;
        assert!(
            events[0].starts_with(&format!("{unsigned},\"mac\":\"")),
            "{}",
            events[0]
        );
        assert_eq!(auth::verify(KEY, events[0].as_bytes()), Ok(()));
        assert!(auth::verify(b"another device's key, 32 bytes!!", events[0].as_bytes()).is_err());
        assert_eq!(node.led_pattern(), LedPattern::SlowBlink);
        assert_eq!(r.led.level(), Some(true), "the blink starts lit");
        step(&mut node, &mut r, 1_600);
        assert_eq!(r.led.level(), Some(false), "500 ms on, then dark");
        for t in (1_700..5_000).step_by(100) {
            step(&mut node, &mut r, t);
        }
        assert_eq!(
            r.net.on(Channel::Event).len(),
            1,
            "a held button calls once"
        );
    }

    #[test]
    fn help_coming_from_the_gateway_switches_the_led_to_a_double_blink() {
        let mut r = rig();
        let mut node = boot(&mut r);
        r.button.set(false);
        step(&mut node, &mut r, 0);
        step(&mut node, &mut r, 50);
        r.button.set(true);
        step(&mut node, &mut r, 200);
        assert_eq!(node.led_pattern(), LedPattern::SlowBlink);
        r.net.cmds.push_back(
            br#"{"alert_id":"a-7f3e","by":"wang","cmd":"help_coming","ts":1795000009000,"v":1}"#
                .to_vec(),
        );
        step(&mut node, &mut r, 3_000);
        assert_eq!(node.led_pattern(), LedPattern::DoubleBlink);
        assert_eq!(r.led.level(), Some(true));
        step(&mut node, &mut r, 3_200);
        assert_eq!(r.led.level(), Some(false), "150 ms flash, 150 ms dark");
        step(&mut node, &mut r, 3_350);
        assert_eq!(r.led.level(), Some(true), "the second flash");
        assert_eq!(
            node.node().wall_ms(3_000),
            1_795_000_009_000,
            "the cmd set the clock"
        );
    }

    #[test]
    fn a_second_press_within_ten_seconds_publishes_sos_cancelled_and_the_led_goes_dark() {
        let mut r = rig();
        let mut node = boot(&mut r);
        for (t, level) in [(0, false), (50, false), (300, true), (400, true)] {
            r.button.set(level);
            step(&mut node, &mut r, t);
        }
        for (t, level) in [(9_000, false), (9_050, false)] {
            r.button.set(level);
            step(&mut node, &mut r, t);
        }
        let names: Vec<_> = r
            .net
            .events()
            .iter()
            .map(|m| (m.event, m.ts - WALL))
            .collect();
        assert_eq!(
            names,
            [(Some("sos_pressed"), 50), (Some("sos_cancelled"), 9_050)]
        );
        assert_eq!(node.led_pattern(), LedPattern::Off);
    }

    #[test]
    fn battery_voltage_goes_out_as_telemetry_in_exact_volts() {
        let mut r = rig();
        let mut node = boot(&mut r);
        step(&mut node, &mut r, 0);
        assert_eq!(
            r.net.on(Channel::Telemetry)[0].split(",\"mac\"").next(),
            Some(r#"{"v":1,"ts":1795000000000,"seq":1,"kind":"sos","data":{"battery_v":3.61}"#)
        );
        r.net.assert_readings_listed(KIND);
    }

    #[test]
    fn a_battery_that_cannot_be_read_for_a_minute_raises_tamper_once_and_the_button_still_works() {
        let mut r = rig();
        let mut node = boot(&mut r);
        r.adc.fail();
        for t in (0..=180_000).step_by(1_000) {
            step(&mut node, &mut r, t);
        }
        let tampers: Vec<u64> = r
            .net
            .events()
            .iter()
            .filter(|m| m.event == Some("tamper"))
            .map(|m| m.ts - WALL)
            .collect();
        assert_eq!(tampers, [60_000], "battery read at 0 and 60 s, both failed");
        assert_eq!(node.stats().read_errors, 4, "reads at 0, 60, 120 and 180 s");
        assert!(
            r.net.on(Channel::Telemetry).is_empty(),
            "no battery_v to send, and no heartbeat due in 3 minutes"
        );
        r.button.set(false);
        step(&mut node, &mut r, 181_000);
        step(&mut node, &mut r, 181_050);
        assert_eq!(r.net.events().last().unwrap().event, Some("sos_pressed"));
    }

    #[test]
    fn the_sequence_survives_a_reboot_over_the_same_store() {
        let mut r = rig();
        let mut node = boot(&mut r);
        r.button.set(false);
        step(&mut node, &mut r, 0);
        step(&mut node, &mut r, 50);
        let before: Vec<u64> = r.net.events().iter().map(|m| m.seq).collect();
        assert_eq!(before, [2]);
        drop(node);
        r.net = FakeNet::default();
        r.button.set(true);
        let mut node = boot(&mut r);
        step(&mut node, &mut r, 0);
        let after = crate::wire::decode(r.net.on(Channel::Telemetry)[0].as_bytes())
            .unwrap()
            .seq;
        assert_eq!(
            after,
            FIRST + LEASE,
            "above everything the first boot may have sent"
        );
    }
}
