//! What a healthy device of each kind reports: plausible readings that stay inside the ranges of
//! the gateway's built-in kind catalogue (`gateway/kinds.toml`) and inside the default rules'
//! normal bands (no low battery, no rising water, no blocked passage), so a load run measures
//! everyday traffic, not an alert storm. Also, per kind, one reading that breaks its range.
//!
//! The end-to-end tests check every kind here against the catalogue, so a kind or a range that
//! changes there fails them until this follows. Pure: a seeded generator and the wall time in.

use std::fmt;
use std::str::FromStr;

use gridwatch_firmware::wire::{Reading, Readings, Value};

/// A kind of device the simulator can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A lift monitor.
    Elevator,
    /// A manhole-cover monitor.
    Manhole,
    /// A fire-passage monitor.
    FirePassage,
    /// A one-tap SOS button in a home.
    Sos,
    /// An electrical fire monitor.
    Electrical,
    /// A parking space sensor or gate box.
    Parking,
    /// A perimeter zone.
    Perimeter,
}

impl Kind {
    /// Every kind, in catalogue order.
    pub const ALL: [Kind; 7] = [
        Kind::Elevator,
        Kind::Manhole,
        Kind::FirePassage,
        Kind::Sos,
        Kind::Electrical,
        Kind::Parking,
        Kind::Perimeter,
    ];

    /// The name, as the catalogue and the wire format spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Elevator => "elevator",
            Kind::Manhole => "manhole",
            Kind::FirePassage => "fire_passage",
            Kind::Sos => "sos",
            Kind::Electrical => "electrical",
            Kind::Parking => "parking",
            Kind::Perimeter => "perimeter",
        }
    }

    /// A reading the kind has, with a value beyond its catalogue range.
    pub fn out_of_range(self) -> Reading<'static> {
        let (name, value) = match self {
            Kind::Elevator => ("speed_mps", 99.0),
            Kind::Manhole => ("water_cm", 5000.0),
            Kind::FirePassage => ("clear_width_cm", 99_999.0),
            Kind::Sos | Kind::Parking => ("battery_v", 99.0),
            Kind::Electrical => ("cable_temp_c", 999.0),
            Kind::Perimeter => ("zone", 999.0),
        };
        Reading {
            name,
            value: Value::Number(value),
        }
    }

    /// Another kind, for a payload that disagrees with the registry.
    pub fn other(self) -> Kind {
        if self == Kind::Sos {
            Kind::Manhole
        } else {
            Kind::Sos
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a kind the simulator knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?}: one of elevator, manhole, fire_passage, sos, electrical, parking, perimeter")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// One device's readings over time: a slow random walk per device, so values drift the way a
/// sensor's do, with counters that only go up.
#[derive(Clone, Debug)]
pub struct Walk {
    rng: u64,
    level: f64,
    count: f64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Walk {
    /// A walk that `seed` makes repeatable.
    pub fn new(seed: u64) -> Self {
        let mut walk = Self {
            rng: seed,
            level: 0.0,
            count: 0.0,
        };
        walk.level = walk.uniform();
        walk.count = (walk.uniform() * 10_000.0).floor();
        walk
    }

    /// splitmix64, scaled to [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
    }

    /// The readings a device of `kind` reports at wall time `wall_ms`.
    pub fn next(&mut self, kind: Kind, wall_ms: u64) -> Readings<'static> {
        self.level = (self.level + (self.uniform() - 0.5) * 0.05).clamp(0.0, 1.0);
        let l = self.level;
        let coin = self.uniform() < 0.5;
        let wall = wall_ms as f64;
        let num = |name, v: f64| (name, Value::Number(round2(v)));
        let flag = |name, b| (name, Value::Bool(b));
        let list: &[(&'static str, Value)] = match kind {
            Kind::Elevator => {
                if coin {
                    self.count += 1.0;
                }
                &[
                    num("floor", (1.0 + l * 17.0).round()),
                    flag("moving", coin),
                    num("direction", if coin { 1.0 } else { 0.0 }),
                    num("speed_mps", if coin { 1.0 + l * 0.5 } else { 0.0 }),
                    flag("door_open", false),
                    flag("in_door_zone", !coin),
                    flag("occupied", coin),
                    num("run_count", self.count),
                ]
            }
            Kind::Manhole => &[
                num("tilt_deg", l * 2.0),
                flag("cover_open", false),
                num("water_cm", 10.0 + l * 4.0),
                num("gas_ppm", l * 50.0),
                num("battery_v", 3.55 + l * 0.15),
            ],
            Kind::FirePassage => &[
                num("clear_width_cm", 120.0 + l * 30.0),
                flag("obstructed", false),
                flag("fire_door_open", false),
                flag("smoke", false),
                num("battery_v", 3.55 + l * 0.15),
            ],
            Kind::Sos => &[
                num("battery_v", 3.55 + l * 0.15),
                num("last_motion_ts", (wall - l * 600_000.0).max(0.0).floor()),
            ],
            Kind::Electrical => &[
                num("residual_current_ma", 5.0 + l * 25.0),
                num("cable_temp_c", 25.0 + l * 20.0),
                num("voltage_v", 215.0 + l * 20.0),
                num("current_a", 2.0 + l * 18.0),
                flag("overload", false),
            ],
            Kind::Parking => {
                if coin {
                    self.count += 1.0;
                }
                &[
                    flag("occupied", coin),
                    num(
                        "occupied_since_ts",
                        (wall - l * 3_600_000.0).max(0.0).floor(),
                    ),
                    num("vehicles_in", self.count),
                    num("vehicles_out", self.count),
                    flag("fire_lane_occupied", false),
                    num("fire_lane_dwell_s", 0.0),
                    num("battery_v", 3.55 + l * 0.15),
                ]
            }
            Kind::Perimeter => &[
                num("zone", (self.count % 256.0).floor()),
                flag("armed", true),
                flag("beam_broken", false),
                flag("contact_open", false),
                num("battery_v", 3.55 + l * 0.15),
            ],
        };
        list.iter()
            .map(|&(name, value)| Reading { name, value })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_firmware::wire::{self, Message, MAX_READINGS};
    use proptest::prelude::*;

    #[test]
    fn kinds_read_back_from_their_names() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>(), Ok(kind));
            assert_ne!(kind.other(), kind);
        }
        assert!("toaster".parse::<Kind>().is_err());
    }

    proptest! {
        /// Whatever the seed and however long the walk, every kind's readings encode (finite,
        /// names by the grammar, few enough) and the counters never go back.
        #[test]
        fn every_kind_reports_encodable_readings_on_any_walk(seed in any::<u64>(), steps in 1usize..200) {
            for kind in Kind::ALL {
                let mut walk = Walk::new(seed);
                let mut last_count = 0.0;
                for step in 0..steps {
                    let data = walk.next(kind, 1_795_000_000_000 + step as u64 * 1000);
                    prop_assert!(!data.is_empty() && data.len() <= MAX_READINGS);
                    let msg = Message { ts: 1, seq: 1, kind: kind.as_str(), event: None, data: data.clone(), mac: None };
                    let mut buf = [0u8; 1024];
                    prop_assert!(wire::encode(&msg, &mut buf).is_ok());
                    for r in &data {
                        if let ("run_count" | "vehicles_in", Value::Number(n)) = (r.name, r.value) {
                            prop_assert!(n >= last_count);
                            last_count = n;
                        }
                    }
                }
            }
        }
    }
}
