//! Which watched spaces are taken: the latest value of each kind's occupancy reading (the
//! catalogue's `occupancy`, `occupied` for parking spaces) per device, counted per building for
//! the control-room screen.
//!
//! Held in memory only: after a restart a space counts as unknown until its sensor reports again,
//! which it does on every change and at least every reporting interval.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use utoipa::ToSchema;

use crate::catalogue::Catalogue;
use crate::registry::{Device, Registry, Text};
use gridwatch_firmware::wire::{Reading, Value};

/// Spaces of one building (a garage or lot is a building in the registry) and how many are free.
#[derive(Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Spaces {
    /// The building's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Spaces watched by a sensor.
    pub total: usize,
    /// Reported free.
    pub free: usize,
    /// Reported taken.
    pub taken: usize,
}

/// The latest occupancy of every device whose kind has an occupancy reading, shared by the
/// pipeline that writes it and the HTTP API that reads it.
#[derive(Debug, Default)]
pub struct Occupancy {
    taken: Mutex<HashMap<Text, bool>>,
}

impl Occupancy {
    /// Notes what `device` reported, if its kind has an occupancy reading among `data`; takes
    /// the lock only then, since every accepted message comes through here.
    pub fn observe(&self, catalogue: &Catalogue, device: &Device, data: &[Reading<'_>]) {
        let Some(reading) = catalogue
            .kind(&device.kind)
            .and_then(|k| k.occupancy.as_deref())
        else {
            return;
        };
        let latest = data.iter().rev().find_map(|r| match r.value {
            Value::Bool(taken) if r.name == reading => Some(taken),
            _ => None,
        });
        if let Some(taken) = latest {
            self.taken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(Arc::clone(&device.id), taken);
        }
    }

    /// Spaces per building, for the buildings that have any; a space whose sensor has reported
    /// an occupancy (a gate box has none) counts, the others are left out until it does.
    pub fn per_building(&self, registry: &Registry) -> Vec<Spaces> {
        let taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let mut buildings: BTreeMap<&str, Spaces> = BTreeMap::new();
        for d in registry.devices() {
            let Some(&taken) = taken.get(&*d.id) else {
                continue;
            };
            let s = buildings.entry(&d.building).or_insert_with(|| Spaces {
                id: d.building.to_string(),
                name: d.building_name.to_string(),
                ..Spaces::default()
            });
            s.total += 1;
            if taken {
                s.taken += 1;
            } else {
                s.free += 1;
            }
        }
        buildings.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let mut text = String::from(
            r#"
[community]
id = "yg"
name = "阳光社区"
[[buildings]]
id = "p1"
name = "地下车库"
[[buildings]]
id = "b1"
name = "1号楼"
[[grids]]
id = "g1"
name = "第一网格"
[[devices]]
id = "gate"
kind = "parking"
building = "p1"
grid = "g1"
location = "入口"
[[devices]]
id = "mh-1"
kind = "manhole"
building = "b1"
grid = "g1"
location = "东门"
"#,
        );
        for i in 1..=3 {
            text.push_str(&format!(
                "[[devices]]\nid = \"space-{i}\"\nkind = \"parking\"\nbuilding = \"p1\"\ngrid = \"g1\"\nlocation = \"B1-{i}\"\n"
            ));
        }
        Registry::parse(&text).expect("the test registry is valid")
    }

    fn occupied(taken: bool) -> [Reading<'static>; 1] {
        [Reading {
            name: "occupied",
            value: Value::Bool(taken),
        }]
    }

    #[test]
    fn spaces_are_counted_per_building_from_their_latest_report() {
        let registry = registry();
        let catalogue = registry.catalogue().clone();
        let device = |id: &str| registry.device(id).expect("registered").clone();
        let o = Occupancy::default();
        assert_eq!(o.per_building(&registry), []);
        o.observe(&catalogue, &device("space-1"), &occupied(true));
        o.observe(&catalogue, &device("space-2"), &occupied(true));
        o.observe(&catalogue, &device("space-2"), &occupied(false));
        o.observe(
            &catalogue,
            &device("gate"),
            &[Reading {
                name: "vehicles_in",
                value: Value::Number(4.0),
            }],
        );
        o.observe(
            &catalogue,
            &device("mh-1"),
            &[Reading {
                name: "cover_open",
                value: Value::Bool(true),
            }],
        );
        assert_eq!(
            o.per_building(&registry),
            [Spaces {
                id: "p1".into(),
                name: "地下车库".into(),
                total: 2,
                free: 1,
                taken: 1,
            }]
        );
    }
}
