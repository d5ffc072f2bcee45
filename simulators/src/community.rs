//! The virtual community: its devices, generated from a few numbers (buildings, floors, lifts per
//! building, manhole covers, fire passages, homes with an SOS button, distribution boxes, parking
//! spaces, perimeter zones) together with the registry
//! file a gateway needs for them (grids, workers, who is on duty), or taken from a device list
//! the caller read from its own registry.
//!
//! Generated ids follow one pattern, so scenarios can name devices before they exist:
//!
//! | device | id | location |
//! |---|---|---|
//! | lift `k` of building `b` | `elev-b{b}-{k}` | `{k}号客梯` |
//! | manhole cover `n` (buildings in turn) | `mh-{n}` | `东侧雨水井`, `南门污水井`, … |
//! | fire passage of unit `u` of building `b` (buildings in turn) | `fp-b{b}-{u}` | `{u}单元消防通道` |
//! | SOS button in the `j`-th home of building `b` (buildings in turn) | `sos-b{b}-{floor:02}{room:02}`, the first home on floor 3 | `1单元301室`, every other one `（独居老人）` and tagged `living_alone` |
//! | distribution box of unit `u` of building `b` (buildings in turn) | `eb-b{b}-{u}` | `{u}单元配电箱` |
//! | parking space `n` in the garage | `park-{n:03}` | `B1-{n:03}号车位` |
//! | the garage's gate box (when it has spaces) | `park-gate` | `车库出入口` |
//! | perimeter zone `n` (buildings in turn) | `pz-{n}` | `东侧围墙`, `北侧围墙`, … |
//!
//! Buildings are `b1`, `b2`, … (`1号楼`), and `garage` (`地下车库`) when there are parking
//! spaces: the screen counts free spaces per building. Grids `g1`, `g2`, … cover
//! `buildings_per_grid` buildings each (the garage is in `g1`), with a worker on duty per grid,
//! the next grid's worker as backup, and a duty officer last in every escalation.

use serde::Deserialize;

use crate::devices::parking::GATE_SUFFIX;

/// What a community is generated from; each field has a default, so `[community]` in a scenario
/// names only what it changes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommunitySpec {
    /// The community id (`[A-Za-z0-9_-]{1,64}`), in every topic. Default `yangguang`.
    pub id: String,
    /// Its name, for people. Default `阳光社区`.
    pub name: String,
    /// How many buildings. Default 2.
    pub buildings: u16,
    /// Floors per building. Default 18.
    pub floors: u16,
    /// Lifts per building. Default 1.
    pub elevators_per_building: u16,
    /// Manhole covers, spread over the buildings. Default 2.
    pub manholes: u16,
    /// Fire passages, spread over the buildings. Default 2.
    pub fire_passages: u16,
    /// Homes with an SOS button, spread over the buildings. Default 3.
    pub sos_homes: u16,
    /// Distribution boxes with an electrical fire monitor, spread over the buildings. Default 2.
    pub distribution_boxes: u16,
    /// Parking spaces with a sensor, in a garage of their own with one gate box; none and no
    /// garage when 0. Default 4.
    pub parking_spaces: u16,
    /// Perimeter zones, spread over the buildings. Default 2.
    pub perimeter_zones: u16,
    /// Buildings in one grid. Default 1.
    pub buildings_per_grid: u16,
}

impl Default for CommunitySpec {
    fn default() -> Self {
        Self {
            id: "yangguang".into(),
            name: "阳光社区".into(),
            buildings: 2,
            floors: 18,
            elevators_per_building: 1,
            manholes: 2,
            fire_passages: 2,
            sos_homes: 3,
            distribution_boxes: 2,
            parking_spaces: 4,
            perimeter_zones: 2,
            buildings_per_grid: 1,
        }
    }
}

/// A virtual device: what it is and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Device id.
    pub id: String,
    /// Device kind, as the catalogue spells it.
    pub kind: String,
    /// Building id.
    pub building: String,
    /// Grid id.
    pub grid: String,
    /// Where in the building, for people.
    pub location: String,
    /// Registry tags (`living_alone`).
    pub tags: Vec<String>,
    /// Floors of the building (what a lift travels).
    pub floors: u16,
}

/// The devices of one community.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Community {
    /// The community id.
    pub id: String,
    /// Its devices.
    pub devices: Vec<DeviceSpec>,
}

/// Why a community cannot be generated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("community: {0}")]
pub struct SpecError(String);

/// Whether `s` is a valid community or device id: `[A-Za-z0-9_-]{1,64}`.
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// The grid workers a generated community takes its staff from, in order, then numbered.
const WORKERS: [(&str, &str); 8] = [
    ("w-wangfang", "王芳"),
    ("w-lijun", "李军"),
    ("w-zhaomin", "赵敏"),
    ("w-chengang", "陈刚"),
    ("w-liuyang", "刘洋"),
    ("w-yangjing", "杨静"),
    ("w-huanglei", "黄磊"),
    ("w-zhoujie", "周杰"),
];
const DUTY_OFFICER: (&str, &str) = ("w-zhang", "张主任");
const MANHOLE_PLACES: [&str; 4] = ["东侧雨水井", "南门污水井", "西侧雨水井", "北侧污水井"];
const FENCES: [&str; 4] = ["东侧围墙", "北侧围墙", "配电房外墙", "西侧围墙"];
/// The garage's building id and name.
const GARAGE: (&str, &str) = ("garage", "地下车库");
const NUMERALS: [&str; 10] = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"];

/// A TOML string literal, escaped.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

impl CommunitySpec {
    /// Checks the numbers: a valid id, at least one building of at least two floors, a grid
    /// size of at least one.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !is_id(&self.id) {
            return Err(SpecError(format!(
                "id {:?} is not [A-Za-z0-9_-]{{1,64}}",
                self.id
            )));
        }
        if self.buildings == 0 || self.buildings_per_grid == 0 {
            return Err(SpecError(
                "buildings and buildings_per_grid must be at least 1".into(),
            ));
        }
        if !(2..=99).contains(&self.floors) {
            return Err(SpecError(format!(
                "floors is {}: a building has 2 to 99 floors",
                self.floors
            )));
        }
        Ok(())
    }

    fn grid_of(&self, building: u16) -> u16 {
        (building - 1) / self.buildings_per_grid + 1
    }

    fn grids(&self) -> u16 {
        self.grid_of(self.buildings)
    }

    fn worker(n: u16) -> (String, String) {
        let (id, name) = WORKERS[usize::from(n) % WORKERS.len()];
        let round = usize::from(n) / WORKERS.len();
        if round == 0 {
            (id.into(), name.into())
        } else {
            (
                format!("{id}-{}", round + 1),
                format!("{name}{}", round + 1),
            )
        }
    }

    /// The community's devices.
    pub fn generate(&self) -> Result<Community, SpecError> {
        self.validate()?;
        let mut devices = Vec::new();
        // A device in building `b` (its grid's number), or in the garage when `b` is 0.
        let mut device = |id: String, kind: &str, b: u16, location: String, tags: Vec<String>| {
            devices.push(DeviceSpec {
                id,
                kind: kind.into(),
                building: if b == 0 {
                    GARAGE.0.into()
                } else {
                    format!("b{b}")
                },
                grid: format!("g{}", self.grid_of(b.max(1))),
                location,
                tags,
                floors: self.floors,
            });
        };
        for b in 1..=self.buildings {
            for k in 1..=self.elevators_per_building {
                device(
                    format!("elev-b{b}-{k}"),
                    "elevator",
                    b,
                    format!("{k}号客梯"),
                    vec![],
                );
            }
        }
        // The i-th device of a kind spread over the buildings: its building and its number there.
        let spread = |i: u16| (i % self.buildings + 1, i / self.buildings);
        for n in 0..self.manholes {
            let (b, _) = spread(n);
            let place = MANHOLE_PLACES[usize::from(n) % MANHOLE_PLACES.len()];
            device(format!("mh-{}", n + 1), "manhole", b, place.into(), vec![]);
        }
        for n in 0..self.fire_passages {
            let (b, j) = spread(n);
            device(
                format!("fp-b{b}-{}", j + 1),
                "fire_passage",
                b,
                format!("{}单元消防通道", j + 1),
                vec![],
            );
        }
        for n in 0..self.sos_homes {
            let (b, j) = spread(n);
            let (floor, room) = ((j + 2) % self.floors + 1, (j + 2) / self.floors + 1);
            let alone = j % 2 == 0;
            device(
                format!("sos-b{b}-{floor:02}{room:02}"),
                "sos",
                b,
                format!(
                    "1单元{floor}{room:02}室{}",
                    if alone { "（独居老人）" } else { "" }
                ),
                if alone {
                    vec!["living_alone".into()]
                } else {
                    vec![]
                },
            );
        }
        for n in 0..self.distribution_boxes {
            let (b, j) = spread(n);
            device(
                format!("eb-b{b}-{}", j + 1),
                "electrical",
                b,
                format!("{}单元配电箱", j + 1),
                vec![],
            );
        }
        for n in 1..=self.parking_spaces {
            device(
                format!("park-{n:03}"),
                "parking",
                0,
                format!("B1-{n:03}号车位"),
                vec![],
            );
        }
        if self.parking_spaces > 0 {
            device(
                format!("park{GATE_SUFFIX}"),
                "parking",
                0,
                "车库出入口".into(),
                vec![],
            );
        }
        for n in 0..self.perimeter_zones {
            let (b, _) = spread(n);
            let fence = FENCES[usize::from(n) % FENCES.len()];
            device(
                format!("pz-{}", n + 1),
                "perimeter",
                b,
                fence.into(),
                vec![],
            );
        }
        Ok(Community {
            id: self.id.clone(),
            devices,
        })
    }

    /// The registry file for the community (see `gateway/src/registry`): buildings, grids,
    /// workers with a webhook at `{webhook_base}/{worker id}` when a base is given, duty, and
    /// every device.
    pub fn registry_toml(&self, webhook_base: Option<&str>) -> Result<String, SpecError> {
        let community = self.generate()?;
        let mut t = String::new();
        let mut line = |s: String| {
            t.push_str(&s);
            t.push('\n');
        };
        line(format!(
            "# Generated by gridwatch-simulators from {} buildings of {} floors.",
            self.buildings, self.floors
        ));
        line("[community]".into());
        line(format!("id = {}", quoted(&self.id)));
        line(format!("name = {}", quoted(&self.name)));
        line(format!("duty_officer = {}", quoted(DUTY_OFFICER.0)));
        for b in 1..=self.buildings {
            line(format!(
                "\n[[buildings]]\nid = \"b{b}\"\nname = \"{b}号楼\""
            ));
        }
        if self.parking_spaces > 0 {
            line(format!(
                "\n[[buildings]]\nid = {}\nname = {}",
                quoted(GARAGE.0),
                quoted(GARAGE.1)
            ));
        }
        let grids = self.grids();
        for g in 1..=grids {
            let name = NUMERALS
                .get(usize::from(g) - 1)
                .map_or_else(|| g.to_string(), |n| (*n).to_owned());
            line(format!(
                "\n[[grids]]\nid = \"g{g}\"\nname = \"第{name}网格\""
            ));
        }
        let staff = (0..grids).map(Self::worker).chain(std::iter::once((
            DUTY_OFFICER.0.to_owned(),
            DUTY_OFFICER.1.to_owned(),
        )));
        for (i, (id, name)) in staff.enumerate() {
            line(format!(
                "\n[[workers]]\nid = {}\nname = {}\nphone = \"138-0000-{:04}\"",
                quoted(&id),
                quoted(&name),
                i + 1
            ));
            if let Some(base) = webhook_base {
                line(format!("webhook = {}", quoted(&format!("{base}/{id}"))));
            }
        }
        for g in 1..=grids {
            line(format!(
                "\n[[duty]]\ngrid = \"g{g}\"\nworker = {}",
                quoted(&Self::worker(g - 1).0)
            ));
            if grids > 1 {
                line(format!("backup = {}", quoted(&Self::worker(g % grids).0)));
            }
        }
        for d in &community.devices {
            line(format!(
                "\n[[devices]]\nid = {}\nkind = {}\nbuilding = {}\ngrid = {}\nlocation = {}",
                quoted(&d.id),
                quoted(&d.kind),
                quoted(&d.building),
                quoted(&d.grid),
                quoted(&d.location)
            ));
            if !d.tags.is_empty() {
                let tags: Vec<String> = d.tags.iter().map(|t| quoted(t)).collect();
                line(format!("tags = [{}]", tags.join(", ")));
            }
        }
        Ok(t)
    }
}

impl Community {
    /// A community of devices the caller lists (from its own registry): lifts get `floors`.
    pub fn from_devices(
        id: &str,
        devices: impl IntoIterator<Item = DeviceSpec>,
    ) -> Result<Self, SpecError> {
        if !is_id(id) {
            return Err(SpecError(format!("id {id:?} is not [A-Za-z0-9_-]{{1,64}}")));
        }
        let devices: Vec<DeviceSpec> = devices.into_iter().collect();
        if let Some(bad) = devices.iter().find(|d| !is_id(&d.id)) {
            return Err(SpecError(format!(
                "device id {:?} is not [A-Za-z0-9_-]{{1,64}}",
                bad.id
            )));
        }
        Ok(Self {
            id: id.into(),
            devices,
        })
    }

    /// The device with this id.
    pub fn device(&self, id: &str) -> Option<&DeviceSpec> {
        self.devices.iter().find(|d| d.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_community_has_the_devices_scenarios_name() {
        let c = CommunitySpec::default().generate().unwrap();
        let ids: Vec<&str> = c.devices.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "elev-b1-1",
                "elev-b2-1",
                "mh-1",
                "mh-2",
                "fp-b1-1",
                "fp-b2-1",
                "sos-b1-0301",
                "sos-b2-0301",
                "sos-b1-0401",
                "eb-b1-1",
                "eb-b2-1",
                "park-001",
                "park-002",
                "park-003",
                "park-004",
                "park-gate",
                "pz-1",
                "pz-2"
            ]
        );
        let gate = c.device("park-gate").unwrap();
        assert_eq!((&*gate.building, &*gate.grid), ("garage", "g1"));
        let sos = c.device("sos-b1-0301").unwrap();
        assert_eq!(sos.location, "1单元301室（独居老人）");
        assert_eq!(sos.tags, ["living_alone"]);
        assert_eq!(c.device("sos-b1-0401").unwrap().tags, Vec::<String>::new());
        assert_eq!(c.device("mh-2").unwrap().building, "b2");
    }

    #[test]
    fn the_registry_names_a_webhook_per_worker_and_a_backup_per_grid() {
        let text = CommunitySpec::default()
            .registry_toml(Some("http://127.0.0.1:9/hooks"))
            .unwrap();
        let doc: toml::Table = text.parse().unwrap();
        let workers = doc["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 3);
        assert_eq!(
            workers[0]["webhook"].as_str(),
            Some("http://127.0.0.1:9/hooks/w-wangfang")
        );
        let duty = doc["duty"].as_array().unwrap();
        assert_eq!(duty[1]["worker"].as_str(), Some("w-lijun"));
        assert_eq!(duty[1]["backup"].as_str(), Some("w-wangfang"));
        assert_eq!(doc["devices"].as_array().unwrap().len(), 18);
        let buildings = doc["buildings"].as_array().unwrap();
        assert_eq!(buildings[2]["name"].as_str(), Some("地下车库"));
    }

    #[test]
    fn bad_numbers_are_refused_with_what_is_wrong() {
        let spec = CommunitySpec {
            floors: 1,
            ..CommunitySpec::default()
        };
        assert!(spec.generate().unwrap_err().to_string().contains("floors"));
        let spec = CommunitySpec {
            id: "阳光".into(),
            ..CommunitySpec::default()
        };
        assert!(spec.registry_toml(None).is_err());
    }

    proptest! {
        #[test]
        fn generated_ids_are_unique_and_valid(
            buildings in 1u16..6, floors in 2u16..40, lifts in 0u16..4,
            manholes in 0u16..20, passages in 0u16..20, homes in 0u16..200, per_grid in 1u16..4,
            boxes in 0u16..20, spaces in 0u16..200, zones in 0u16..20,
        ) {
            let spec = CommunitySpec {
                buildings, floors, elevators_per_building: lifts, manholes,
                fire_passages: passages, sos_homes: homes, buildings_per_grid: per_grid,
                distribution_boxes: boxes, parking_spaces: spaces, perimeter_zones: zones,
                ..CommunitySpec::default()
            };
            let c = spec.generate().unwrap();
            let mut ids: Vec<&str> = c.devices.iter().map(|d| d.id.as_str()).collect();
            prop_assert!(ids.iter().all(|id| is_id(id)));
            let n = ids.len();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), n);
            prop_assert!(spec.registry_toml(None).unwrap().parse::<toml::Table>().is_ok());
        }
    }
}
