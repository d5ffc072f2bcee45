//! A lift: the firmware's `ElevatorNode` on a car that carries passengers between floors.
//!
//! The world: every 20–90 s of idling, a passenger calls the car to a floor and rides to another;
//! the car accelerates at 0.8 m/s² to 1.5 m/s (the rated speed is 1.75), stops level with the
//! floor, and opens its doors for 5 s. Floors are 3 m apart and the door zone is ±0.1 m around a
//! floor's level. None of that is an incident to the firmware's detectors.
//!
//! The parts: eight pins (door, door zone, top and bottom limit, alarm button, occupancy, e-bike,
//! mains), each a `DebouncedInput` with 50 ms, and [`Car`], the controller's view of the car
//! (speed, direction, floor) as the loop's `CarMotion`.
//!
//! | action | what happens | the firmware sees |
//! |---|---|---|
//! | `stuck` (`passenger = true`) | on its next run the car stops between two floors, with a passenger aboard unless `passenger = false`, until the incident ends; then it creeps to the nearest floor and lets them out | `stopped_outside_door_zone` after 45 s, `trapped_passenger` after 60 s |
//! | `alarm` | someone in the car holds the alarm button for 2 s | `emergency_call` |
//! | `power_loss` | mains fails: the rescue device brings a moving car to the nearest floor at 0.3 m/s and opens the doors, and the car stays until power returns | `power_loss` after 2 s |
//! | `ebike` | the camera box sees an e-bike in the car while the incident lasts | `ebike_detected` |
//! | `overspeed` | the car runs at 2.3 m/s while the incident lasts (trips at 2.01) | `overspeed` |
//!
//! An incident without a `for` lasts for the rest of the run.

use std::sync::{Arc, Mutex, PoisonError};

use gridwatch_firmware::drivers::input::DebouncedInput;
use gridwatch_firmware::drivers::Polarity;
use gridwatch_firmware::node::elevator::{
    self, CarMotion, ElevatorNode, ElevatorNodeConfig, ElevatorParts, Motion,
};
use gridwatch_firmware::node::Node;
use gridwatch_firmware::seq::SeqCounter;
use serde::Deserialize;

use super::{BuildError, Physics, Rng, STEP_MS};
use crate::community::DeviceSpec;
use crate::hw::{CutOff, Pin, Wire};
use crate::link::Link;
use crate::store::DeviceStore;

const FLOOR_M: f32 = 3.0;
const CRUISE_MPS: f32 = 1.5;
const RESCUE_MPS: f32 = 0.3;
const OVERSPEED_MPS: f32 = 2.3;
const ACCEL_MPS2: f32 = 0.8;
const ZONE_M: f32 = 0.1;
const DOORS_MS: u64 = 5_000;
const ALARM_MS: u64 = 2_000;
const DEBOUNCE_MS: u64 = 50;

/// What a scenario can make happen to a lift (see the module header).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ElevatorIncident {
    /// The car stops between floors on its next run.
    Stuck {
        /// Whether a passenger is aboard (default true).
        #[serde(default = "aboard")]
        passenger: bool,
    },
    /// The alarm button is held for 2 s.
    Alarm {},
    /// Mains power fails.
    PowerLoss {},
    /// An e-bike is in the car.
    Ebike {},
    /// The car runs too fast.
    Overspeed {},
}

fn aboard() -> bool {
    true
}

/// The controller's view of the car, as the firmware's `CarMotion`.
#[derive(Clone, Debug, Default)]
pub struct Car {
    motion: Arc<Mutex<Motion>>,
    wire: Wire,
}

impl Car {
    fn set(&self, motion: Motion) {
        *self.motion.lock().unwrap_or_else(PoisonError::into_inner) = motion;
    }
}

impl CarMotion for Car {
    type Error = CutOff;

    fn read(&mut self, _now_ms: u64) -> Result<Motion, CutOff> {
        self.wire.check()?;
        Ok(*self.motion.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// At a floor with the doors shut, until the next call.
    Idle { until: u64 },
    /// At a floor with the doors open.
    Doors { until: u64 },
    /// Travelling to floor `to` at up to `cruise` m/s.
    Moving { to: u16, cruise: f32 },
    /// Stopped where it is.
    Halted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Trip {
    from: u16,
    to: u16,
    aboard: bool,
}

/// The car in its shaft.
#[derive(Debug)]
struct Shaft {
    floors: u16,
    pos_m: f32,
    vel: f32,
    phase: Phase,
    trip: Option<Trip>,
    /// Stopping between floors is due, with a passenger or without.
    stuck: Option<bool>,
    mains: bool,
    overspeed: bool,
    ebike: bool,
    alarm_until: u64,
    rng: Rng,
}

fn level(floor: u16) -> f32 {
    f32::from(floor - 1) * FLOOR_M
}

impl Shaft {
    fn floor(&self) -> u16 {
        ((self.pos_m / FLOOR_M).round() as i64 + 1).clamp(1, i64::from(self.floors)) as u16
    }

    fn idle(&mut self, now: u64) -> Phase {
        Phase::Idle {
            until: now + self.rng.between(20_000, 90_000),
        }
    }

    fn cruise(&self) -> f32 {
        if self.overspeed {
            OVERSPEED_MPS
        } else {
            CRUISE_MPS
        }
    }

    /// A floor at least two away from `from` where the building has one, so that a run passes
    /// at least one point between floors.
    fn far_from(&mut self, from: u16) -> u16 {
        let (from, top) = (u64::from(from), u64::from(self.floors));
        let to = if from + 2 <= top {
            self.rng.between(from + 2, top + 1)
        } else if from >= 3 {
            self.rng.between(1, from - 1)
        } else if from == 1 {
            2
        } else {
            1
        };
        to as u16
    }

    /// Whether the car must stop between floors now.
    fn halts(&self) -> bool {
        match self.stuck {
            Some(with_passenger) => !with_passenger || self.trip.is_some_and(|t| t.aboard),
            None => false,
        }
    }

    fn advance(&mut self, now: u64) {
        let dt = STEP_MS as f32 / 1000.0;
        self.phase = match self.phase {
            Phase::Idle { until } if self.mains => {
                let here = self.floor();
                if self.stuck.is_some() && self.trip.is_none() {
                    let to = self.far_from(here);
                    self.trip = Some(Trip {
                        from: here,
                        to,
                        aboard: false,
                    });
                    if self.stuck == Some(true) {
                        Phase::Doors {
                            until: now + DOORS_MS,
                        }
                    } else {
                        Phase::Moving {
                            to,
                            cruise: self.cruise(),
                        }
                    }
                } else if now >= until {
                    let from = self.rng.between(1, u64::from(self.floors) + 1) as u16;
                    let to = self.far_from(from);
                    self.trip = Some(Trip {
                        from,
                        to,
                        aboard: false,
                    });
                    if from == here {
                        Phase::Doors {
                            until: now + DOORS_MS,
                        }
                    } else {
                        Phase::Moving {
                            to: from,
                            cruise: self.cruise(),
                        }
                    }
                } else {
                    self.phase
                }
            }
            Phase::Idle { .. } => self.phase,
            Phase::Doors { until } if now >= until => {
                let here = self.floor();
                match self.trip {
                    Some(t) if self.mains && !t.aboard && t.from == here => {
                        self.trip = Some(Trip { aboard: true, ..t });
                        Phase::Moving {
                            to: t.to,
                            cruise: self.cruise(),
                        }
                    }
                    Some(t) if self.mains && !t.aboard => Phase::Moving {
                        to: t.from,
                        cruise: self.cruise(),
                    },
                    _ => {
                        self.trip = None;
                        self.idle(now)
                    }
                }
            }
            Phase::Doors { .. } => self.phase,
            Phase::Moving { to, cruise } => self.travel(now, to, cruise, dt),
            Phase::Halted if self.stuck.is_none() => {
                // Released: creep to the nearest floor and let whoever is aboard out there.
                let to = self.floor();
                self.trip = self.trip.filter(|t| t.aboard).map(|t| Trip { to, ..t });
                Phase::Moving {
                    to,
                    cruise: RESCUE_MPS,
                }
            }
            Phase::Halted => self.phase,
        };
    }

    fn travel(&mut self, now: u64, to: u16, cruise: f32, dt: f32) -> Phase {
        let remaining = level(to) - self.pos_m;
        let mut speed = self.vel.abs();
        if remaining.abs() <= speed * speed / (2.0 * ACCEL_MPS2) + 0.01 {
            speed = (speed - ACCEL_MPS2 * dt).max(0.05);
        } else {
            speed = (speed + ACCEL_MPS2 * dt).min(cruise);
        }
        let step = speed * dt * remaining.signum();
        if step.abs() >= remaining.abs() {
            self.pos_m = level(to);
            self.vel = 0.0;
            return Phase::Doors {
                until: now + DOORS_MS,
            };
        }
        let before = self.pos_m;
        self.pos_m += step;
        self.vel = speed * remaining.signum();
        let gap = |pos: f32| (pos / FLOOR_M - 0.5).floor();
        if self.halts() && gap(before) != gap(self.pos_m) {
            self.pos_m = (gap(before).max(gap(self.pos_m)) + 0.5) * FLOOR_M;
            self.vel = 0.0;
            return Phase::Halted;
        }
        Phase::Moving { to, cruise }
    }

    fn motion(&self) -> Motion {
        Motion {
            moving: self.vel.abs() > 0.02,
            speed_mps: self.vel.abs(),
            direction: if self.vel.abs() > 0.02 {
                self.vel.signum() as i8
            } else {
                0
            },
            floor: i16::try_from(self.floor()).ok(),
        }
    }

    fn in_door_zone(&self) -> bool {
        (self.pos_m - level(self.floor())).abs() <= ZONE_M
    }
}

/// The lift's pins, as the world sets them.
struct Pins {
    door: Pin,
    door_zone: Pin,
    top_limit: Pin,
    bottom_limit: Pin,
    alarm: Pin,
    occupied: Pin,
    ebike: Pin,
    mains: Pin,
}

impl Pins {
    fn all(&self) -> [&Pin; 8] {
        [
            &self.door,
            &self.door_zone,
            &self.top_limit,
            &self.bottom_limit,
            &self.alarm,
            &self.occupied,
            &self.ebike,
            &self.mains,
        ]
    }
}

/// A virtual lift.
pub struct Elevator {
    node: ElevatorNode<'static, Pin, Car>,
    pins: Pins,
    car: Car,
    shaft: Shaft,
}

impl Physics for Elevator {
    const KIND: &'static str = elevator::KIND;
    const ACTIONS: &'static [&'static str] =
        &["stuck", "alarm", "power_loss", "ebike", "overspeed"];
    type Incident = ElevatorIncident;

    fn build(
        device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        seed: u64,
    ) -> Result<Self, BuildError> {
        let pins = Pins {
            door: Pin::new(false),
            door_zone: Pin::new(true),
            top_limit: Pin::new(false),
            bottom_limit: Pin::new(false),
            alarm: Pin::new(false),
            occupied: Pin::new(false),
            ebike: Pin::new(false),
            mains: Pin::new(true),
        };
        let car = Car::default();
        let input = |p: &Pin| DebouncedInput::new(p.clone(), Polarity::ActiveHigh, DEBOUNCE_MS);
        let parts = ElevatorParts {
            door: input(&pins.door),
            door_zone: input(&pins.door_zone),
            top_limit: input(&pins.top_limit),
            bottom_limit: input(&pins.bottom_limit),
            alarm: input(&pins.alarm),
            occupied: input(&pins.occupied),
            ebike: input(&pins.ebike),
            mains: input(&pins.mains),
            motion: car.clone(),
        };
        let node = ElevatorNode::new(
            elevator::config(None),
            seq,
            parts,
            &ElevatorNodeConfig::default(),
            now_ms,
        )
        .map_err(BuildError::Firmware)?;
        let mut shaft = Shaft {
            floors: device.floors.max(2),
            pos_m: 0.0,
            vel: 0.0,
            phase: Phase::Halted,
            trip: None,
            stuck: None,
            mains: true,
            overspeed: false,
            ebike: false,
            alarm_until: 0,
            rng: Rng::new(seed),
        };
        shaft.phase = Phase::Idle {
            until: now_ms + shaft.rng.between(5_000, 40_000),
        };
        Ok(Self {
            node,
            pins,
            car,
            shaft,
        })
    }

    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>) {
        let s = &mut self.shaft;
        s.advance(now_ms);
        let p = &self.pins;
        p.door.set(matches!(s.phase, Phase::Doors { .. }));
        p.door_zone.set(s.in_door_zone());
        p.alarm.set(now_ms < s.alarm_until);
        p.occupied.set(s.trip.is_some_and(|t| t.aboard));
        p.ebike.set(s.ebike);
        p.mains.set(s.mains);
        self.car.set(s.motion());
        self.node.step(now_ms, link, store);
    }

    fn start(&mut self, incident: &ElevatorIncident, now_ms: u64) {
        let s = &mut self.shaft;
        match incident {
            ElevatorIncident::Stuck { passenger } => s.stuck = Some(*passenger),
            ElevatorIncident::Alarm {} => s.alarm_until = now_ms + ALARM_MS,
            ElevatorIncident::PowerLoss {} => {
                s.mains = false;
                if let Phase::Moving { .. } = s.phase {
                    s.phase = Phase::Moving {
                        to: s.floor(),
                        cruise: RESCUE_MPS,
                    };
                }
            }
            ElevatorIncident::Ebike {} => s.ebike = true,
            ElevatorIncident::Overspeed {} => s.overspeed = true,
        }
    }

    fn end(&mut self, incident: &ElevatorIncident, _now_ms: u64) {
        let s = &mut self.shaft;
        match incident {
            ElevatorIncident::Stuck { .. } => s.stuck = None,
            ElevatorIncident::Alarm {} => {}
            ElevatorIncident::PowerLoss {} => s.mains = true,
            ElevatorIncident::Ebike {} => s.ebike = false,
            ElevatorIncident::Overspeed {} => s.overspeed = false,
        }
    }

    fn cut_off(&mut self, cut: bool) {
        for pin in self.pins.all() {
            pin.cut(cut);
        }
        self.car.wire.cut(cut);
    }

    fn node_mut(&mut self) -> &mut Node<'static> {
        self.node.node_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::testkit::{build, events, run};

    fn lift() -> Elevator {
        build("elev-b1-1")
    }

    #[test]
    fn an_hour_of_ordinary_service_raises_no_event() {
        let mut lift = lift();
        let sent = run(&mut lift, 0, 3_600_000);
        assert_eq!(events(&sent), Vec::<String>::new());
        let moves = sent
            .iter()
            .filter(|m| m.contains("\"moving\":true"))
            .count();
        assert!(
            moves > 20,
            "the car carries passengers: {moves} messages while moving"
        );
    }

    #[test]
    fn a_car_stuck_between_floors_with_a_passenger_is_reported_trapped() {
        let mut lift = lift();
        lift.start(&ElevatorIncident::Stuck { passenger: true }, 0);
        let sent = run(&mut lift, 0, 180_000);
        assert_eq!(
            events(&sent),
            ["stopped_outside_door_zone", "trapped_passenger"]
        );
        let trapped = sent.iter().find(|m| m.contains("trapped")).unwrap();
        assert!(
            trapped.contains("\"occupied\":true") && trapped.contains("\"in_door_zone\":false"),
            "{trapped}"
        );
        lift.end(&ElevatorIncident::Stuck { passenger: true }, 180_000);
        let after = run(&mut lift, 180_000, 600_000);
        assert_eq!(events(&after), Vec::<String>::new());
        assert!(lift.shaft.in_door_zone(), "released cars go on to a floor");
    }

    #[test]
    fn alarm_ebike_power_loss_and_overspeed_are_each_seen_by_the_firmware() {
        for (incident, event) in [
            (ElevatorIncident::Alarm {}, "emergency_call"),
            (ElevatorIncident::Ebike {}, "ebike_detected"),
            (ElevatorIncident::PowerLoss {}, "power_loss"),
            (ElevatorIncident::Overspeed {}, "overspeed"),
        ] {
            let mut lift = lift();
            lift.start(&incident, 1_000);
            let sent = run(&mut lift, 0, 300_000);
            assert!(
                events(&sent).contains(&event.to_owned()),
                "{incident:?}: {:?}",
                events(&sent)
            );
            assert!(
                !events(&sent).contains(&"trapped_passenger".to_owned()),
                "{incident:?}"
            );
        }
    }

    #[test]
    fn a_lift_whose_wires_are_cut_reports_tamper() {
        let mut lift = lift();
        run(&mut lift, 0, 5_000);
        lift.cut_off(true);
        assert_eq!(events(&run(&mut lift, 5_000, 90_000)), ["tamper"]);
    }
}
