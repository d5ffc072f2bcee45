//! A garage: the two firmware loops of the `parking` kind. A device whose id ends in `-gate` is
//! the box at the gate (`GateNode`: two vehicle loops across the lane and the fire lane's
//! presence input, on pins); any other is a space sensor (`SpaceNode`: a TFmini-S on the ceiling
//! 250 cm over the space, and a 3.6 V cell). The registry only says `kind = "parking"`, so the id
//! decides; the generated community names its gate boxes that way (`park-gate`).
//!
//! The world at a space: a car parks for 20 minutes to 5 hours (its roof 120–145 cm under the
//! sensor), then the space stays free for 5 minutes to 2 hours; a space starts taken or free at
//! random. Now and then someone walks under the sensor for 2–3 s, less than the 5 s a vehicle
//! must stay.
//!
//! The world at the gate: every 1–6 minutes a car drives in (over loop A, then both, then loop B,
//! about a second each) or out (B, then A). Every 10–40 minutes someone stops in the fire lane
//! for 30 s to 4 minutes to drop off a passenger or a parcel: less than the firmware's 5 minutes.
//!
//! | action | device | what happens | the firmware sees |
//! |---|---|---|---|
//! | `fire_lane_parked` | gate | a car stops in the fire lane until the incident ends | `fire_lane_blocked` after 5 minutes |
//! | `car_arrives` | space | a car parks in the space, and stays until the incident ends | `occupied` after 5 s |
//! | `car_leaves` | space | the car drives off, and the space stays free until the incident ends | `occupied: false` after 5 s |
//!
//! An action for the other sort of device does nothing. An incident without a `for` lasts for
//! the rest of the run.

use gridwatch_firmware::drivers::analog::BatteryMonitor;
use gridwatch_firmware::drivers::input::DebouncedInput;
use gridwatch_firmware::drivers::tfmini::Tfmini;
use gridwatch_firmware::drivers::Polarity;
use gridwatch_firmware::node::parking::{
    self, GateNode, GateNodeConfig, GateParts, SpaceNode, SpaceNodeConfig, SpaceParts,
};
use gridwatch_firmware::node::Node;
use gridwatch_firmware::seq::SeqCounter;
use serde::Deserialize;

use super::{BuildError, Physics, Rng, HALF};
use crate::community::DeviceSpec;
use crate::hw::{Adc, Beam, Pin, TfminiUart};
use crate::link::Link;
use crate::store::DeviceStore;

/// The id suffix that makes a parking device the gate box.
pub const GATE_SUFFIX: &str = "-gate";

const FLOOR_CM: u16 = 250;
const STRENGTH: u16 = 2_000;
const BATTERY_MV: u32 = 3_600;
/// How long a car is over each stage of the gate's two loops, in ms.
const LOOP_STAGE_MS: u64 = 1_000;

/// What a scenario can make happen in the garage (see the module header).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ParkingIncident {
    /// A car stops in the fire lane (at the gate box).
    FireLaneParked {},
    /// A car parks in the space (at a space sensor).
    CarArrives {},
    /// The car in the space drives off (at a space sensor).
    CarLeaves {},
}

/// What a scenario holds a space to, for as long as its incident lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Free,
    Taken,
}

/// One space and the cars that use it.
#[derive(Debug)]
struct Bay {
    car_cm: Option<u16>,
    until: u64,
    person_until: u64,
    next_person: u64,
    held: Option<Held>,
    rng: Rng,
}

impl Bay {
    fn park(&mut self, now: u64) {
        self.car_cm = Some(self.rng.between(120, 146) as u16);
        self.until = now + self.rng.between(1_200_000, 18_000_000);
    }

    fn leave(&mut self, now: u64) {
        self.car_cm = None;
        self.until = now + self.rng.between(300_000, 7_200_000);
    }

    fn advance(&mut self, now: u64) {
        if now >= self.until {
            match (self.held, self.car_cm) {
                (Some(Held::Taken), _) | (None, None) => self.park(now),
                (Some(Held::Free), _) | (None, Some(_)) => self.leave(now),
            }
        }
        if now >= self.next_person {
            self.person_until = now + self.rng.between(2_000, 3_000);
            self.next_person = now + self.rng.between(1_800_000, 7_200_000);
        }
    }

    /// What the ceiling sensor sees: the floor, a car's roof, or the head of someone walking by.
    fn distance_cm(&self, now: u64) -> u16 {
        let person = (now < self.person_until).then_some(FLOOR_CM - 170);
        [Some(FLOOR_CM), self.car_cm, person]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(FLOOR_CM)
    }
}

/// A car passing the gate's loops: when it started and whether it drives in.
#[derive(Debug)]
struct Lane {
    passing: Option<(u64, bool)>,
    next_car: u64,
    stopped_until: u64,
    next_stop: u64,
    parked: bool,
    rng: Rng,
}

impl Lane {
    fn advance(&mut self, now: u64) {
        if now >= self.next_car {
            self.passing = Some((now, self.rng.chance(0.5)));
            self.next_car = now + self.rng.between(60_000, 360_000);
        }
        if now >= self.next_stop {
            self.stopped_until = now + self.rng.between(30_000, 240_000);
            self.next_stop = now + self.rng.between(600_000, 2_400_000);
        }
    }

    /// Which loops the passing car covers: (A, B).
    fn loops(&self, now: u64) -> (bool, bool) {
        let Some((from, inward)) = self.passing else {
            return (false, false);
        };
        let (first, both, last) = match (now - from) / LOOP_STAGE_MS {
            0 => (true, false, false),
            1 => (false, true, false),
            2 => (false, false, true),
            _ => return (false, false),
        };
        let outer = first || both;
        let inner = both || last;
        if inward {
            (outer, inner)
        } else {
            (inner, outer)
        }
    }

    fn fire_lane(&self, now: u64) -> bool {
        self.parked || now < self.stopped_until
    }
}

enum Loop {
    Space {
        node: SpaceNode<'static, Tfmini<TfminiUart>, Adc>,
        beam: Beam,
        battery: Adc,
        bay: Bay,
    },
    Gate {
        node: GateNode<'static, Pin>,
        loop_a: Pin,
        loop_b: Pin,
        fire_lane: Pin,
        lane: Lane,
    },
}

/// A virtual parking device: a space sensor or the gate box.
pub struct Parking(Loop);

impl Parking {
    /// Whether the space sensor holds its space taken (`None` at the gate).
    pub fn occupied(&self) -> Option<bool> {
        match &self.0 {
            Loop::Space { node, .. } => Some(node.occupied()),
            Loop::Gate { .. } => None,
        }
    }
}

impl Physics for Parking {
    const KIND: &'static str = parking::KIND;
    const ACTIONS: &'static [&'static str] = &["fire_lane_parked", "car_arrives", "car_leaves"];
    type Incident = ParkingIncident;

    fn build(
        device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        seed: u64,
    ) -> Result<Self, BuildError> {
        let mut rng = Rng::new(seed);
        if device.id.ends_with(GATE_SUFFIX) {
            let (loop_a, loop_b, fire_lane) = (Pin::new(false), Pin::new(false), Pin::new(false));
            let input = |pin: &Pin| DebouncedInput::new(pin.clone(), Polarity::ActiveHigh, 50);
            let parts = GateParts {
                loop_a: input(&loop_a),
                loop_b: input(&loop_b),
                fire_lane: input(&fire_lane),
            };
            let node = GateNode::new(
                parking::config(None),
                seq,
                parts,
                &GateNodeConfig::default(),
                now_ms,
            )
            .map_err(BuildError::Firmware)?;
            let lane = Lane {
                passing: None,
                next_car: now_ms + rng.between(10_000, 120_000),
                stopped_until: 0,
                next_stop: now_ms + rng.between(300_000, 1_800_000),
                parked: false,
                rng,
            };
            return Ok(Self(Loop::Gate {
                node,
                loop_a,
                loop_b,
                fire_lane,
                lane,
            }));
        }
        let (beam, battery) = (Beam::new(FLOOR_CM), Adc::default());
        let parts = SpaceParts {
            distance: Tfmini::new(TfminiUart::new(beam.clone())),
            battery: BatteryMonitor::new(battery.clone(), HALF),
        };
        let node = SpaceNode::new(
            parking::config(None),
            seq,
            parts,
            &SpaceNodeConfig::default(),
            now_ms,
        )
        .map_err(BuildError::Firmware)?;
        let next_person = now_ms + rng.between(60_000, 3_600_000);
        let mut bay = Bay {
            car_cm: None,
            until: 0,
            person_until: 0,
            next_person,
            held: None,
            rng,
        };
        if bay.rng.chance(0.5) {
            bay.park(now_ms);
        } else {
            bay.leave(now_ms);
        }
        Ok(Self(Loop::Space {
            node,
            beam,
            battery,
            bay,
        }))
    }

    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>) {
        match &mut self.0 {
            Loop::Space {
                node,
                beam,
                battery,
                bay,
            } => {
                bay.advance(now_ms);
                beam.set(bay.distance_cm(now_ms), STRENGTH);
                battery.set_mv(BATTERY_MV / 2);
                node.step(now_ms, link, store);
            }
            Loop::Gate {
                node,
                loop_a,
                loop_b,
                fire_lane,
                lane,
            } => {
                lane.advance(now_ms);
                let (a, b) = lane.loops(now_ms);
                loop_a.set(a);
                loop_b.set(b);
                fire_lane.set(lane.fire_lane(now_ms));
                node.step(now_ms, link, store);
            }
        }
    }

    fn start(&mut self, incident: &ParkingIncident, now_ms: u64) {
        match (&mut self.0, incident) {
            (Loop::Gate { lane, .. }, ParkingIncident::FireLaneParked {}) => lane.parked = true,
            (Loop::Space { bay, .. }, ParkingIncident::CarArrives {}) => {
                bay.held = Some(Held::Taken);
                bay.park(now_ms);
            }
            (Loop::Space { bay, .. }, ParkingIncident::CarLeaves {}) => {
                bay.held = Some(Held::Free);
                bay.leave(now_ms);
            }
            _ => {}
        }
    }

    fn end(&mut self, incident: &ParkingIncident, _now_ms: u64) {
        match (&mut self.0, incident) {
            (Loop::Gate { lane, .. }, ParkingIncident::FireLaneParked {}) => lane.parked = false,
            (
                Loop::Space { bay, .. },
                ParkingIncident::CarArrives {} | ParkingIncident::CarLeaves {},
            ) => {
                bay.held = None;
            }
            _ => {}
        }
    }

    fn cut_off(&mut self, cut: bool) {
        match &self.0 {
            Loop::Space { beam, battery, .. } => {
                beam.cut(cut);
                battery.cut(cut);
            }
            Loop::Gate {
                loop_a,
                loop_b,
                fire_lane,
                ..
            } => {
                loop_a.cut(cut);
                loop_b.cut(cut);
                fire_lane.cut(cut);
            }
        }
    }

    fn node_mut(&mut self) -> &mut Node<'static> {
        match &mut self.0 {
            Loop::Space { node, .. } => node.node_mut(),
            Loop::Gate { node, .. } => node.node_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testkit::{build, events, run};

    /// The last value of `reading` among `sent`.
    fn last<'a>(sent: &'a [String], reading: &str) -> Option<&'a str> {
        let key = format!("\"{reading}\":");
        sent.iter().rev().find_map(|m| {
            let rest = &m[m.find(&key)? + key.len()..];
            Some(&rest[..rest.find([',', '}'])?])
        })
    }

    #[test]
    fn a_few_hours_of_cars_coming_and_going_raise_no_event() {
        let mut gate: Parking = build("park-gate");
        let sent = run(&mut gate, 0, 4 * 3_600_000);
        assert_eq!(events(&sent), Vec::<String>::new());
        let (cars_in, cars_out) = (last(&sent, "vehicles_in"), last(&sent, "vehicles_out"));
        assert!(
            cars_in.is_some_and(|n| n != "0") && cars_out.is_some_and(|n| n != "0"),
            "{cars_in:?} in, {cars_out:?} out"
        );
        let mut changes = 0;
        for id in ["park-001", "park-002", "park-003", "park-004"] {
            let mut space: Parking = build(id);
            let sent = run(&mut space, 0, 4 * 3_600_000);
            assert_eq!(events(&sent), Vec::<String>::new(), "{id}");
            changes += sent
                .windows(2)
                .filter(|w| last(&w[..1], "occupied") != last(&w[1..], "occupied"))
                .count();
        }
        assert!(changes > 0, "no car came or went in four hours");
    }

    #[test]
    fn a_car_left_in_the_fire_lane_blocks_it_after_five_minutes() {
        let mut gate: Parking = build("park-gate");
        let parked = ParkingIncident::FireLaneParked {};
        gate.start(&parked, 0);
        assert_eq!(events(&run(&mut gate, 0, 290_000)), Vec::<String>::new());
        assert_eq!(
            events(&run(&mut gate, 290_000, 320_000)),
            ["fire_lane_blocked"]
        );
        gate.end(&parked, 320_000);
        let sent = run(&mut gate, 320_000, 340_000);
        assert_eq!(last(&sent, "fire_lane_occupied"), Some("false"));
    }

    #[test]
    fn a_space_is_taken_when_a_car_arrives_and_free_when_it_leaves() {
        let mut space: Parking = build("park-001");
        let arrives = ParkingIncident::CarArrives {};
        space.start(&arrives, 0);
        run(&mut space, 0, 10_000);
        assert_eq!(space.occupied(), Some(true));
        space.end(&arrives, 10_000);
        space.start(&ParkingIncident::CarLeaves {}, 10_000);
        let sent = run(&mut space, 10_000, 30_000);
        assert_eq!(space.occupied(), Some(false));
        assert_eq!(last(&sent, "occupied"), Some("false"));
    }
}
