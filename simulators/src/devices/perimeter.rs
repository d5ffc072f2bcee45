//! A perimeter zone: the firmware's `PerimeterNode` over a fence contact and an infrared beam
//! pair's relay, both on pins that read high when open or broken.
//!
//! The simulated zones are armed around the clock (`ArmedHours::Always`), like the fence of a
//! substation or a building site: the wall clock a scenario runs under is the real one, and a
//! demo watched at three in the afternoon must still show what an intrusion looks like. The
//! firmware's default night-time hours (22:00–06:00) are tested in the firmware. The zone's
//! number is the number the device id ends with (`pz-2`: zone 2), or 1.
//!
//! The world: nobody comes near the fence, but every 5–30 minutes a cat or a blown leaf crosses
//! the beam for 10–40 ms, less than the 50 ms it must stay broken to count.
//!
//! | action | what happens | the firmware sees |
//! |---|---|---|
//! | `intrusion` | someone climbs the fence (its contact opens for 3 s) and, once over, walks through the beam (broken for 0.6 s) | `intrusion` when the contact opens; the beam falls within the 60 s hold-off |

use gridwatch_firmware::detect::perimeter::ArmedHours;
use gridwatch_firmware::drivers::Polarity;
use gridwatch_firmware::node::perimeter::{
    self, PerimeterNode, PerimeterNodeConfig, PerimeterParts,
};
use gridwatch_firmware::node::Node;
use gridwatch_firmware::seq::SeqCounter;
use serde::Deserialize;

use super::{BuildError, Physics, Rng};
use crate::community::DeviceSpec;
use crate::hw::Pin;
use crate::link::Link;
use crate::store::DeviceStore;

/// When the climber's contact opens and closes, and the beam breaks and is whole again, after
/// the incident starts, in ms.
const CLIMB_MS: (u64, u64) = (0, 3_000);
const WALK_MS: (u64, u64) = (4_000, 4_600);

/// What a scenario can make happen at a perimeter zone (see the module header).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PerimeterIncident {
    /// Someone climbs the fence and crosses the beam.
    Intrusion {},
}

/// The fence, and what crosses it.
#[derive(Debug)]
struct Fence {
    /// When the intruder began climbing.
    intruder: Option<u64>,
    /// When a cat crosses the beam: from, until.
    cat: (u64, u64),
    rng: Rng,
}

impl Fence {
    fn advance(&mut self, now: u64) {
        if now >= self.cat.1 {
            let from = now + self.rng.between(300_000, 1_800_000);
            self.cat = (from, from + self.rng.between(10, 40));
        }
    }

    fn during(&self, now: u64, (from, until): (u64, u64)) -> bool {
        self.intruder
            .is_some_and(|at| (at + from..at + until).contains(&now))
    }

    fn contact_open(&self, now: u64) -> bool {
        self.during(now, CLIMB_MS)
    }

    fn beam_broken(&self, now: u64) -> bool {
        self.during(now, WALK_MS) || (self.cat.0..self.cat.1).contains(&now)
    }
}

/// The zone number a device id ends with, or 1.
fn zone_of(id: &str) -> u8 {
    let digits = id.len() - id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    id[id.len() - digits..].parse().unwrap_or(1)
}

/// A virtual perimeter node.
pub struct Perimeter {
    node: PerimeterNode<'static, Pin>,
    contact: Pin,
    beam: Pin,
    fence: Fence,
}

impl Physics for Perimeter {
    const KIND: &'static str = perimeter::KIND;
    const ACTIONS: &'static [&'static str] = &["intrusion"];
    type Incident = PerimeterIncident;

    fn build(
        device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        seed: u64,
    ) -> Result<Self, BuildError> {
        let (contact, beam) = (Pin::new(false), Pin::new(false));
        let parts = PerimeterParts {
            contact: contact.clone(),
            contact_polarity: Polarity::ActiveHigh,
            beam: beam.clone(),
            beam_polarity: Polarity::ActiveHigh,
        };
        let mut config = PerimeterNodeConfig {
            zone: zone_of(&device.id),
            ..PerimeterNodeConfig::default()
        };
        config.detector.armed = ArmedHours::Always;
        let node = PerimeterNode::new(perimeter::config(None), seq, parts, &config, now_ms)
            .map_err(BuildError::Firmware)?;
        let mut rng = Rng::new(seed);
        let from = now_ms + rng.between(60_000, 1_800_000);
        let fence = Fence {
            intruder: None,
            cat: (from, from + rng.between(10, 40)),
            rng,
        };
        Ok(Self {
            node,
            contact,
            beam,
            fence,
        })
    }

    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>) {
        self.fence.advance(now_ms);
        self.contact.set(self.fence.contact_open(now_ms));
        self.beam.set(self.fence.beam_broken(now_ms));
        self.node.step(now_ms, link, store);
    }

    fn start(&mut self, incident: &PerimeterIncident, now_ms: u64) {
        match incident {
            PerimeterIncident::Intrusion {} => self.fence.intruder = Some(now_ms),
        }
    }

    fn end(&mut self, _incident: &PerimeterIncident, _now_ms: u64) {}

    fn cut_off(&mut self, cut: bool) {
        self.contact.cut(cut);
        self.beam.cut(cut);
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
    fn hours_of_cats_and_leaves_in_the_beam_raise_no_event() {
        let mut pz: Perimeter = build("pz-1");
        let sent = run(&mut pz, 0, 6 * 3_600_000);
        assert_eq!(events(&sent), Vec::<String>::new());
        assert!(
            sent.iter().any(|m| m.contains("\"armed\":true")),
            "{sent:?}"
        );
    }

    #[test]
    fn someone_climbing_the_fence_is_one_intrusion_at_any_hour() {
        let mut pz: Perimeter = build("pz-2");
        run(&mut pz, 0, 10_000);
        pz.start(&PerimeterIncident::Intrusion {}, 10_000);
        let sent = run(&mut pz, 10_000, 60_000);
        assert_eq!(events(&sent), ["intrusion"]);
        assert!(sent.iter().any(|m| m.contains("\"zone\":2")), "{sent:?}");
    }

    #[test]
    fn a_zone_number_comes_from_the_id_or_is_one() {
        assert_eq!(zone_of("pz-12"), 12);
        assert_eq!(zone_of("back-fence"), 1);
        assert_eq!(zone_of("pz-999"), 1);
    }
}
