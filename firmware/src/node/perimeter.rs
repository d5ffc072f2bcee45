//! The perimeter loop: one zone (防区) per node, a fence or door contact and an active infrared
//! beam pair, armed by the hour.
//!
//! | part | connection | notes |
//! |---|---|---|
//! | contact | a GPIO input (`embedded_hal::digital::InputPin`) | a door's reed contact or a fence's vibration/tension contact; normally closed to ground with a pull-up, so open (or a cut wire) reads high: [`Polarity::ActiveHigh`] |
//! | beam | a GPIO input | the beam receiver's alarm relay (normally closed: [`Polarity::ActiveHigh`] as above), with its own interruption time at its shortest |
//!
//! A zone with only one of the two ties the other input to its inactive level. Both inputs are
//! read raw and debounced by [`Perimeter`] (50 ms each), so call [`PerimeterNode::step`] every
//! 10 ms or so, or on a pin interrupt and then every 10 ms until the inputs are quiet. A step
//! reads both inputs (one that cannot be read keeps its last level), runs [`Perimeter`] with
//! the node's wall clock ([`crate::node::Node::known_wall_ms`]: set it from the RTC or SNTP at
//! boot; until then the zone is armed), publishes `intrusion` at once with the step's readings,
//! and offers `zone`, `armed`, `beam_broken` and `contact_open` as telemetry: every 5 minutes
//! (the kind's `report_every_secs`), or on a change at most every 10 s.

use embedded_hal::digital::InputPin;

use super::runtime::{flag, integer, loop_accessors, Runtime};
use super::{Config, Transport};
use crate::detect::perimeter::{Perimeter, PerimeterConfig, PerimeterEvent, PerimeterSample};
use crate::detect::Event;
use crate::drivers::Polarity;
use crate::hal::NvStore;
use crate::seq::SeqCounter;
use crate::wire::EncodeError;

/// The kind, as the catalogue spells it.
pub const KIND: &str = "perimeter";

/// The messaging configuration of a perimeter node: telemetry and heartbeat every 5 minutes
/// (the kind's `report_every_secs` is 300), on change at most every 10 s.
pub fn config(key: Option<&[u8]>) -> Config<'_> {
    Config {
        key,
        telemetry_period_ms: 300_000,
        heartbeat_ms: 300_000,
        ..Config::new(KIND)
    }
}

/// Settings of the perimeter node's loop. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct PerimeterNodeConfig {
    /// The zone's armed hours, debounce and hold-off.
    pub detector: PerimeterConfig,
    /// The zone's number on the site's plan, sent as the `zone` reading. Default 1.
    pub zone: u8,
    /// How long a read must keep failing before `tamper`, in ms. Default 60 s.
    pub fault_after_ms: u64,
}

impl Default for PerimeterNodeConfig {
    /// The defaults: see each field.
    fn default() -> Self {
        Self {
            detector: PerimeterConfig::default(),
            zone: 1,
            fault_after_ms: 60_000,
        }
    }
}

/// The parts a perimeter node is built from.
pub struct PerimeterParts<P> {
    /// The fence or door contact's pin.
    pub contact: P,
    /// Which level of the contact's pin means open.
    pub contact_polarity: Polarity,
    /// The beam receiver's pin.
    pub beam: P,
    /// Which level of the beam's pin means broken.
    pub beam_polarity: Polarity,
}

/// A perimeter node: its parts, its detector and its [`Runtime`].
pub struct PerimeterNode<'a, P> {
    parts: PerimeterParts<P>,
    runtime: Runtime<'a>,
    detector: Perimeter,
    zone: u8,
    /// The inputs' raw levels, kept when a read fails.
    raw: PerimeterSample,
}

impl<'a, P: InputPin> PerimeterNode<'a, P> {
    /// A node over `parts`, numbering with `seq`, started at `now_ms`. `messaging.kind` is set
    /// to [`KIND`]; start from [`config`].
    pub fn new(
        messaging: Config<'a>,
        seq: SeqCounter,
        parts: PerimeterParts<P>,
        config: &PerimeterNodeConfig,
        now_ms: u64,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            parts,
            runtime: Runtime::start(KIND, messaging, seq, now_ms, config.fault_after_ms)?,
            detector: Perimeter::new(&config.detector),
            zone: config.zone,
            raw: PerimeterSample::default(),
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
        let p = &mut self.parts;
        for (pin, polarity, level) in [
            (
                &mut p.contact,
                p.contact_polarity,
                &mut self.raw.contact_open,
            ),
            (&mut p.beam, p.beam_polarity, &mut self.raw.beam_broken),
        ] {
            match pin.is_high() {
                Ok(high) => *level = polarity.is_active(high),
                Err(_) => errors += 1,
            }
        }
        let wall_ms = self.runtime.node().known_wall_ms(now_ms);
        let raised = self.detector.step(now_ms, wall_ms, &self.raw);
        let events = self.runtime.events::<{ PerimeterEvent::ALL.len() + 1 }>(
            now_ms,
            raised.iter().map(Event::name),
            errors,
            errors > 0,
        );

        let d = &self.detector;
        let data = [
            integer("zone", u64::from(self.zone)),
            flag("armed", d.armed()),
            flag("beam_broken", d.beam_broken()),
            flag("contact_open", d.contact_open()),
        ];
        self.runtime
            .report(now_ms, &events, &data, transport, store, |_| {});
    }

    /// Whether the zone is armed (as of the last step).
    pub fn armed(&self) -> bool {
        self.detector.armed()
    }

    loop_accessors!();

    /// Gives the parts back.
    pub fn release(self) -> PerimeterParts<P> {
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testkit::{FakeNet, Pin};
    use crate::node::Channel;
    use crate::seq::tests::MemStore;

    /// 2024-10-04 23:00 in UTC+8.
    const NIGHT: u64 = 1_728_000_000_000 + 15 * 3_600_000;
    /// 2024-10-04 12:00 in UTC+8.
    const NOON: u64 = 1_728_000_000_000 + 4 * 3_600_000;

    struct Rig {
        contact: Pin,
        beam: Pin,
        net: FakeNet,
        store: MemStore,
        node: PerimeterNode<'static, Pin>,
    }

    /// A zone whose inputs read high when open or broken; the wall clock at `wall` if given.
    fn rig(wall: Option<u64>) -> Rig {
        let (contact, beam) = (Pin::at(false), Pin::at(false));
        let parts = PerimeterParts {
            contact: contact.clone(),
            contact_polarity: Polarity::ActiveHigh,
            beam: beam.clone(),
            beam_polarity: Polarity::ActiveHigh,
        };
        let mut store = MemStore::default();
        let seq = SeqCounter::boot(&mut store, 0).unwrap();
        let node_config = PerimeterNodeConfig {
            zone: 7,
            ..PerimeterNodeConfig::default()
        };
        let mut node = PerimeterNode::new(config(None), seq, parts, &node_config, 0).unwrap();
        if let Some(wall) = wall {
            node.node_mut().set_wall_clock(0, wall);
        }
        Rig {
            contact,
            beam,
            net: FakeNet::default(),
            store,
            node,
        }
    }

    impl Rig {
        /// Steps every 10 ms from `from` up to `until`.
        fn run(&mut self, from: u64, until: u64) {
            for t in (from..=until).step_by(10) {
                self.node.step(t, &mut self.net, &mut self.store);
            }
        }
    }

    #[test]
    fn a_broken_beam_at_night_publishes_intrusion_once_with_the_zones_readings() {
        let mut r = rig(Some(NIGHT));
        r.run(0, 1_000);
        r.beam.set(true);
        r.run(1_010, 1_500);
        r.beam.set(false);
        r.run(1_510, 2_000);
        r.beam.set(true);
        r.run(2_010, 2_500);
        assert_eq!(
            r.net.on(Channel::Event),
            [
                r#"{"v":1,"ts":1728054001060,"seq":2,"kind":"perimeter","event":"intrusion","data":{"zone":7,"armed":true,"beam_broken":true,"contact_open":false}}"#
            ],
            "the second break falls in the hold-off"
        );
        assert_eq!(
            r.net.on(Channel::Telemetry)[0],
            r#"{"v":1,"ts":1728054000000,"seq":1,"kind":"perimeter","data":{"zone":7,"armed":true,"beam_broken":false,"contact_open":false}}"#
        );
        r.net.assert_readings_listed(KIND);
    }

    #[test]
    fn a_door_opened_at_noon_raises_nothing() {
        let mut r = rig(Some(NOON));
        r.contact.set(true);
        r.run(0, 5_000);
        assert!(!r.node.armed());
        assert!(r.net.on(Channel::Event).is_empty());
    }

    #[test]
    fn a_node_that_has_not_learnt_the_time_is_armed() {
        let mut r = rig(None);
        r.contact.set(true);
        r.run(0, 100);
        assert!(r.node.armed());
        assert_eq!(r.net.events()[0].event, Some("intrusion"));
    }

    #[test]
    fn a_beam_input_that_cannot_be_read_raises_tamper_after_a_minute() {
        let mut r = rig(Some(NOON));
        r.beam.fail();
        for t in (0..=60_000).step_by(1_000) {
            r.node.step(t, &mut r.net, &mut r.store);
        }
        assert_eq!(r.net.timeline(NOON), [("tamper", 60_000)]);
        assert_eq!(r.node.stats().read_errors, 61);
    }
}
