//! A fire passage: the firmware's `FirePassageNode` with a TFmini-S across an evacuation passage,
//! the fire door's contact and the smoke detector's output.
//!
//! The world: the passage is 150 cm wide; every 20–120 s someone walks through, standing in the
//! beam for 1–2 s (it then reads 40–90 cm), and one in three opens the fire door for 3–6 s.
//! None of that is an incident to the firmware: it waits 30 s before calling a passage
//! blocked, and 10 s before a door open too long.
//!
//! The parts: the TFmini-S streaming frames on a UART ([`crate::hw::TfminiUart`]), the door's reed
//! contact and the smoke detector's output on pins.
//!
//! | action | what happens | the firmware sees |
//! |---|---|---|
//! | `blocked` (`width_cm = 60`) | boxes are left in the passage, `width_cm` clear, until the incident ends | `passage_blocked` after 30 s |
//! | `door_propped` | the fire door is wedged open until the incident ends | `fire_door_open_too_long` after 10 s, `fire_door_held_open` after 60 s |
//! | `smoke` | the smoke detector alarms until the incident ends | `smoke_detected` after 2 s |
//!
//! An incident without a `for` lasts for the rest of the run.

use gridwatch_firmware::drivers::input::DebouncedInput;
use gridwatch_firmware::drivers::tfmini::Tfmini;
use gridwatch_firmware::drivers::Polarity;
use gridwatch_firmware::node::fire_passage::{
    self, FirePassageNode, FirePassageNodeConfig, FirePassageParts,
};
use gridwatch_firmware::node::Node;
use gridwatch_firmware::seq::SeqCounter;
use serde::Deserialize;

use super::{BuildError, Physics, Rng};
use crate::community::DeviceSpec;
use crate::hw::{Beam, Pin, TfminiUart};
use crate::link::Link;
use crate::store::DeviceStore;

const WIDTH_CM: u16 = 150;
const STRENGTH: u16 = 2_000;

/// What a scenario can make happen to a fire passage (see the module header).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum FirePassageIncident {
    /// Boxes are left in the passage.
    Blocked {
        /// The width they leave clear (default 60 cm).
        #[serde(default = "boxes")]
        width_cm: u16,
    },
    /// The fire door is wedged open.
    DoorPropped {},
    /// The smoke detector alarms.
    Smoke {},
}

fn boxes() -> u16 {
    60
}

/// The passage and the people in it.
#[derive(Debug)]
struct Passage {
    boxes_cm: Option<u16>,
    person: Option<(u64, u16)>,
    next_person: u64,
    door_open_until: u64,
    propped: bool,
    smoke: bool,
    rng: Rng,
}

impl Passage {
    fn advance(&mut self, now: u64) {
        if now >= self.next_person {
            let at_cm = self.rng.between(40, 90) as u16;
            self.person = Some((now + self.rng.between(1_000, 2_000), at_cm));
            if self.rng.chance(1.0 / 3.0) {
                self.door_open_until = now + self.rng.between(3_000, 6_000);
            }
            self.next_person = now + self.rng.between(20_000, 120_000);
        }
        if self.person.is_some_and(|(until, _)| now >= until) {
            self.person = None;
        }
    }

    /// What the beam hits: the far wall, the boxes, or someone walking through.
    fn beam_cm(&self) -> u16 {
        [Some(WIDTH_CM), self.boxes_cm, self.person.map(|(_, cm)| cm)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(WIDTH_CM)
    }
}

/// A virtual fire-passage node.
pub struct FirePassage {
    node: FirePassageNode<'static, Tfmini<TfminiUart>, Pin>,
    beam: Beam,
    door: Pin,
    smoke: Pin,
    passage: Passage,
}

impl Physics for FirePassage {
    const KIND: &'static str = fire_passage::KIND;
    const ACTIONS: &'static [&'static str] = &["blocked", "door_propped", "smoke"];
    type Incident = FirePassageIncident;

    fn build(
        _device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        seed: u64,
    ) -> Result<Self, BuildError> {
        let (beam, door, smoke) = (Beam::new(WIDTH_CM), Pin::new(false), Pin::new(false));
        let parts = FirePassageParts {
            width: Tfmini::new(TfminiUart::new(beam.clone())),
            door: DebouncedInput::new(door.clone(), Polarity::ActiveHigh, 50),
            smoke: DebouncedInput::new(smoke.clone(), Polarity::ActiveHigh, 50),
        };
        let node = FirePassageNode::new(
            fire_passage::config(None),
            seq,
            parts,
            &FirePassageNodeConfig::default(),
            now_ms,
        )
        .map_err(BuildError::Firmware)?;
        let mut rng = Rng::new(seed);
        let passage = Passage {
            boxes_cm: None,
            person: None,
            next_person: now_ms + rng.between(5_000, 60_000),
            door_open_until: 0,
            propped: false,
            smoke: false,
            rng,
        };
        Ok(Self {
            node,
            beam,
            door,
            smoke,
            passage,
        })
    }

    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>) {
        let p = &mut self.passage;
        p.advance(now_ms);
        self.beam.set(p.beam_cm(), STRENGTH);
        self.door.set(p.propped || now_ms < p.door_open_until);
        self.smoke.set(p.smoke);
        self.node.step(now_ms, link, store);
    }

    fn start(&mut self, incident: &FirePassageIncident, _now_ms: u64) {
        let p = &mut self.passage;
        match *incident {
            FirePassageIncident::Blocked { width_cm } => p.boxes_cm = Some(width_cm),
            FirePassageIncident::DoorPropped {} => p.propped = true,
            FirePassageIncident::Smoke {} => p.smoke = true,
        }
    }

    fn end(&mut self, incident: &FirePassageIncident, _now_ms: u64) {
        let p = &mut self.passage;
        match incident {
            FirePassageIncident::Blocked { .. } => p.boxes_cm = None,
            FirePassageIncident::DoorPropped {} => p.propped = false,
            FirePassageIncident::Smoke {} => p.smoke = false,
        }
    }

    fn cut_off(&mut self, cut: bool) {
        self.beam.cut(cut);
        self.door.cut(cut);
        self.smoke.cut(cut);
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
    fn an_hour_of_people_walking_through_raises_no_event() {
        let mut fp: FirePassage = build("fp-b1-1");
        let sent = run(&mut fp, 0, 3_600_000);
        assert_eq!(events(&sent), Vec::<String>::new());
        assert!(
            sent.iter().any(|m| m.contains("\"obstructed\":true")),
            "someone was seen in the beam"
        );
    }

    #[test]
    fn boxes_block_the_passage_a_wedged_door_is_held_open_and_smoke_is_smoke() {
        for (incident, seen) in [
            (
                FirePassageIncident::Blocked { width_cm: 60 },
                vec!["passage_blocked"],
            ),
            (
                FirePassageIncident::DoorPropped {},
                vec!["fire_door_open_too_long", "fire_door_held_open"],
            ),
            (FirePassageIncident::Smoke {}, vec!["smoke_detected"]),
        ] {
            let mut fp: FirePassage = build("fp-b2-1");
            fp.start(&incident, 0);
            assert_eq!(events(&run(&mut fp, 0, 90_000)), seen, "{incident:?}");
        }
    }

    #[test]
    fn the_passage_is_clear_again_once_the_boxes_are_gone() {
        let mut fp: FirePassage = build("fp-b1-1");
        let blocked = FirePassageIncident::Blocked { width_cm: 60 };
        fp.start(&blocked, 0);
        run(&mut fp, 0, 60_000);
        fp.end(&blocked, 60_000);
        let sent = run(&mut fp, 60_000, 80_000);
        assert!(
            sent.iter().any(|m| m.contains("\"clear_width_cm\":150")),
            "{sent:?}"
        );
    }
}
