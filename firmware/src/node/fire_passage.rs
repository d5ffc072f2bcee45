//! The fire-passage node's loop: a distance sensor across an evacuation passage, the fire door's
//! contact and the smoke detector's alarm output.
//!
//! | part | connection | notes |
//! |---|---|---|
//! | clear width | TFmini-S on a UART at 115 200 baud 8N1, as [`Tfmini`], or any [`Distance`] | mounted on one wall, aimed at the opposite one: the distance is the clear width |
//! | fire door | a GPIO input, as [`DebouncedInput`] (active = open) | a reed contact; 50 ms debounce |
//! | smoke | a GPIO input, as [`DebouncedInput`] (active = alarm) | the detector's relay or open-collector output |
//!
//! Call [`FirePassageNode::step`] every 100–500 ms. A step reads one distance, both inputs, runs
//! [`FirePassage`], publishes its events at once with the step's readings, and offers
//! `clear_width_cm`, `obstructed` (narrower than the minimum width), `fire_door_open` and
//! `smoke` as telemetry: every 60 s (the kind's `report_every_secs`), or on a change (the width
//! by more than 10 cm) at most every 10 s. A distance without a reliable return (too weak,
//! saturated) leaves the last verdict and the last width in place; a UART error or a damaged
//! frame counts as a failed read. There is no width reading until the first reliable one.
//!
//! The TFmini streams 100 frames a second and [`Tfmini::read_frame`] returns the oldest one
//! the UART buffered: on a board that steps slower than that, lower the sensor's frame rate
//! (its `0x5A 0x06 0x03` command) to the step rate so the width read is a fresh one.
//!
//! [`Tfmini`]: crate::drivers::tfmini::Tfmini
//! [`Tfmini::read_frame`]: crate::drivers::tfmini::Tfmini::read_frame

use embedded_hal::digital::InputPin;

use super::runtime::{flag, loop_accessors, number, Runtime};
use super::{Config, Transport};
use crate::detect::fire_passage::{
    FirePassage, FirePassageConfig, FirePassageEvent, FirePassageSample,
};
use crate::detect::Event;
use crate::drivers::input::DebouncedInput;
pub use crate::drivers::Distance;
use crate::hal::NvStore;
use crate::seq::SeqCounter;
use crate::wire::{EncodeError, Reading};

/// The kind, as the catalogue spells it.
pub const KIND: &str = "fire_passage";

/// The messaging configuration of a fire-passage node: telemetry and heartbeat every 60 s, on
/// change at most every 10 s, the width changing by more than 10 cm.
pub fn config(key: Option<&[u8]>) -> Config<'_> {
    Config {
        key,
        telemetry_period_ms: 60_000,
        heartbeat_ms: 60_000,
        deadbands: &[("clear_width_cm", 10.0)],
        ..Config::new(KIND)
    }
}

/// Timings of the fire-passage node's loop. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct FirePassageNodeConfig {
    /// The detector's limits.
    pub detector: FirePassageConfig,
    /// How long a read must keep failing before `tamper`, in ms. Default 60 s.
    pub fault_after_ms: u64,
}

impl Default for FirePassageNodeConfig {
    /// The defaults: see each field.
    fn default() -> Self {
        Self {
            detector: FirePassageConfig::default(),
            fault_after_ms: 60_000,
        }
    }
}

/// The parts a fire-passage node is built from.
pub struct FirePassageParts<D, P> {
    /// The distance sensor across the passage.
    pub width: D,
    /// The fire door's contact (active = open).
    pub door: DebouncedInput<P>,
    /// The smoke detector's output (active = alarm).
    pub smoke: DebouncedInput<P>,
}

/// A fire-passage node: its parts, its detector and its [`Runtime`].
pub struct FirePassageNode<'a, D, P> {
    parts: FirePassageParts<D, P>,
    runtime: Runtime<'a>,
    detector: FirePassage,
    min_clear_width_cm: f32,
    width_cm: Option<u16>,
}

impl<'a, D: Distance, P: InputPin> FirePassageNode<'a, D, P> {
    /// A node over `parts`, numbering with `seq`, started at `now_ms`. `messaging.kind` is set
    /// to [`KIND`]; start from [`config`].
    pub fn new(
        messaging: Config<'a>,
        seq: SeqCounter,
        parts: FirePassageParts<D, P>,
        config: &FirePassageNodeConfig,
        now_ms: u64,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            parts,
            runtime: Runtime::start(KIND, messaging, seq, now_ms, config.fault_after_ms)?,
            detector: FirePassage::new(&config.detector),
            min_clear_width_cm: config.detector.min_clear_width_cm,
            width_cm: None,
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
        let width = match self.parts.width.read_cm() {
            Ok(width) => width,
            Err(_) => {
                errors += 1;
                None
            }
        };
        if width.is_some() {
            self.width_cm = width;
        }
        for input in [&mut self.parts.door, &mut self.parts.smoke] {
            if input.sample(now_ms).is_err() {
                errors += 1;
            }
        }
        let sample = FirePassageSample {
            clear_width_cm: width.map(f32::from),
            obstructed: false,
            fire_door_open: self.parts.door.is_active(),
            smoke: self.parts.smoke.is_active(),
        };
        let raised = self.detector.step(now_ms, &sample);
        let events = self.runtime.events::<{ FirePassageEvent::ALL.len() + 1 }>(
            now_ms,
            raised.iter().map(Event::name),
            errors,
            errors > 0,
        );

        let width = self.width_cm.map(f32::from);
        let readings = [
            width.and_then(|cm| number("clear_width_cm", cm, 0)),
            width.map(|cm| flag("obstructed", cm < self.min_clear_width_cm)),
            Some(flag("fire_door_open", sample.fire_door_open)),
            Some(flag("smoke", sample.smoke)),
        ];
        let data: heapless::Vec<Reading<'static>, 4> = readings.into_iter().flatten().collect();
        self.runtime
            .report(now_ms, &events, &data, transport, store, |_| {});
    }

    loop_accessors!();

    /// Gives the parts back.
    pub fn release(self) -> FirePassageParts<D, P> {
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::tfmini::{Frame, Tfmini};
    use crate::drivers::Polarity;
    use crate::node::testkit::{FakeNet, Pin, Uart};
    use crate::node::Channel;
    use crate::seq::tests::MemStore;

    const WALL: u64 = 1_795_000_000_000;

    struct Rig {
        uart: Uart,
        door: Pin,
        smoke: Pin,
        net: FakeNet,
        store: MemStore,
        node: FirePassageNode<'static, Tfmini<Uart>, Pin>,
    }

    fn rig() -> Rig {
        let (uart, door, smoke) = (Uart::default(), Pin::at(false), Pin::at(false));
        let mut store = MemStore::default();
        let parts = FirePassageParts {
            width: Tfmini::new(uart.clone()),
            door: DebouncedInput::new(door.clone(), Polarity::ActiveHigh, 50),
            smoke: DebouncedInput::new(smoke.clone(), Polarity::ActiveHigh, 50),
        };
        let seq = SeqCounter::boot(&mut store, 0).unwrap();
        let mut node = FirePassageNode::new(
            config(None),
            seq,
            parts,
            &FirePassageNodeConfig::default(),
            0,
        )
        .unwrap();
        node.node_mut().set_wall_clock(0, WALL);
        Rig {
            uart,
            door,
            smoke,
            net: FakeNet::default(),
            store,
            node,
        }
    }

    impl Rig {
        /// One step at `now` with the LiDAR seeing `width_cm` (with a weak return if `None`).
        fn step(&mut self, now: u64, width_cm: Option<u16>) {
            let frame = Frame {
                raw_distance_cm: width_cm.unwrap_or(1_200),
                strength: if width_cm.is_some() { 500 } else { 20 },
                raw_temperature: 2_304,
            };
            self.uart.0.borrow_mut().extend(frame.encode());
            self.node.step(now, &mut self.net, &mut self.store);
        }

        fn events(&self) -> Vec<(&str, u64)> {
            self.net.timeline(WALL)
        }
    }

    #[test]
    fn a_box_left_in_the_passage_for_31_seconds_publishes_passage_blocked_but_a_passer_by_does_not()
    {
        let mut r = rig();
        for t in (0..=45_000).step_by(500) {
            let width = match t {
                2_000..=6_500 => 70,   // someone walks through
                10_000..=41_000 => 60, // a box, then it is taken away
                _ => 150,
            };
            r.step(t, Some(width));
        }
        assert_eq!(r.events(), [("passage_blocked", 40_000)]);
        assert_eq!(
            r.net.on(Channel::Event),
            [
                r#"{"v":1,"ts":1795000040000,"seq":3,"kind":"fire_passage","event":"passage_blocked","data":{"clear_width_cm":60,"obstructed":true,"fire_door_open":false,"smoke":false}}"#
            ]
        );
        r.net.assert_readings_listed(KIND);
    }

    #[test]
    fn telemetry_goes_out_at_start_on_a_change_after_ten_seconds_and_every_minute() {
        let mut r = rig();
        for t in (0..=90_000).step_by(500) {
            r.step(
                t,
                Some(if (3_000..20_000).contains(&t) {
                    60
                } else {
                    150
                }),
            );
        }
        let sent: Vec<(u64, Option<crate::wire::Value>)> = r
            .net
            .on(Channel::Telemetry)
            .iter()
            .map(|p| {
                let m = crate::wire::decode(p.as_bytes()).unwrap();
                (m.ts - WALL, m.reading("clear_width_cm"))
            })
            .collect();
        let cm = |v: f64| Some(crate::wire::Value::Number(v));
        assert_eq!(
            sent,
            [
                (0, cm(150.0)),
                (10_000, cm(60.0)),
                (20_000, cm(150.0)),
                (80_000, cm(150.0))
            ]
        );
    }

    #[test]
    fn a_weak_return_keeps_the_last_width_and_a_silent_uart_raises_tamper() {
        let mut r = rig();
        r.step(0, Some(150));
        r.step(500, None);
        assert_eq!(r.node.stats().read_errors, 0, "a weak return is no error");
        for t in (1_000..=61_000).step_by(1_000) {
            // Nothing arrives on the UART: the stream ends at once.
            r.node.step(t, &mut r.net, &mut r.store);
        }
        assert_eq!(r.events(), [("tamper", 61_000)]);
        assert_eq!(r.node.stats().read_errors, 61);
        let tamper = r.net.events()[0].clone();
        assert_eq!(
            tamper.reading("clear_width_cm"),
            Some(crate::wire::Value::Number(150.0))
        );
    }

    #[test]
    fn a_fire_door_open_for_a_minute_is_first_too_long_then_held_open_and_smoke_comes_first() {
        let mut r = rig();
        r.door.set(true);
        for t in (0..=61_000).step_by(1_000) {
            if t == 30_000 {
                r.smoke.set(true);
            }
            r.step(t, Some(150));
        }
        assert_eq!(
            r.events(),
            [
                ("fire_door_open_too_long", 11_000),
                ("smoke_detected", 33_000),
                ("fire_door_held_open", 61_000)
            ]
        );
    }
}
