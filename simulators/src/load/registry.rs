//! The simulated fleet's names, and the files a gateway needs to accept it: a registry listing
//! every device (the gateway refuses unknown ones) and, when devices sign, the device keys file
//! (`ingest.device_keys_path`: `"device-id" = "<hex key>"`, mode 600).
//!
//! Healthy devices are `sim-00000`, `sim-00001`, …, their kinds taken in turn from the kinds
//! asked for; faulty ones are named after their fault (`flood-000`, …). Devices are placed 50 to
//! a building (`b0001`, …) and 10 buildings to a grid (`g001`, …). The registry has no workers:
//! a load run is not about reaching people (the gateway raises `nobody_on_duty` for its grids).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use rand::RngCore;

use super::readings::Kind;

/// Devices per building in the registry.
pub const DEVICES_PER_BUILDING: usize = 50;
/// Buildings per grid.
pub const BUILDINGS_PER_GRID: usize = 10;
/// The length of every generated device key, in bytes.
pub const KEY_LEN: usize = 32;

/// A device of the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Device id.
    pub id: String,
    /// Its kind.
    pub kind: Kind,
}

pub use crate::community::is_id;

/// `count` healthy devices, their kinds taken in turn from `kinds` (every kind if empty).
pub fn healthy(count: usize, kinds: &[Kind]) -> Vec<DeviceSpec> {
    let kinds = if kinds.is_empty() {
        &Kind::ALL[..]
    } else {
        kinds
    };
    (0..count)
        .map(|i| DeviceSpec {
            id: format!("sim-{i:05}"),
            kind: kinds[i % kinds.len()],
        })
        .collect()
}

/// `count` devices of `kind` named `{prefix}-000`, `{prefix}-001`, ….
pub fn named(prefix: &str, count: usize, kind: Kind) -> Vec<DeviceSpec> {
    (0..count)
        .map(|i| DeviceSpec {
            id: format!("{prefix}-{i:03}"),
            kind,
        })
        .collect()
}

/// The registry TOML for `devices` in `community`.
pub fn registry_toml(community: &str, devices: &[DeviceSpec]) -> String {
    let buildings = devices.len().div_ceil(DEVICES_PER_BUILDING).max(1);
    let grids = buildings.div_ceil(BUILDINGS_PER_GRID);
    let mut out = String::with_capacity(200 + devices.len() * 110);
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# Written by gridwatch-sim for a load run: {} devices.\n\n[community]\nid = \"{community}\"\nname = \"模拟社区 {community}\"",
        devices.len()
    );
    for g in 0..grids {
        let _ = writeln!(
            out,
            "\n[[grids]]\nid = \"g{:03}\"\nname = \"第{}网格\"",
            g + 1,
            g + 1
        );
    }
    for b in 0..buildings {
        let _ = writeln!(
            out,
            "\n[[buildings]]\nid = \"b{:04}\"\nname = \"{}号楼\"",
            b + 1,
            b + 1
        );
    }
    for (i, d) in devices.iter().enumerate() {
        let building = i / DEVICES_PER_BUILDING;
        let _ = writeln!(
            out,
            "\n[[devices]]\nid = \"{}\"\nkind = \"{}\"\nbuilding = \"b{:04}\"\ngrid = \"g{:03}\"\nlocation = \"模拟{}\"",
            d.id,
            d.kind,
            building + 1,
            building / BUILDINGS_PER_GRID + 1,
            d.id
        );
    }
    out
}

/// Device keys by device id.
pub type Keys = HashMap<String, Vec<u8>>;

/// A fresh random key for every device.
pub fn new_keys(devices: &[DeviceSpec]) -> Keys {
    let mut rng = rand::rng();
    devices
        .iter()
        .map(|d| {
            let mut key = vec![0u8; KEY_LEN];
            rng.fill_bytes(&mut key);
            (d.id.clone(), key)
        })
        .collect()
}

/// The keys file the gateway reads (`ingest.device_keys_path`), sorted by device.
pub fn keys_toml(keys: &Keys) -> String {
    let sorted: BTreeMap<&String, &Vec<u8>> = keys.iter().collect();
    let mut out =
        String::from("# Device keys written by gridwatch-sim: keep this file mode 600.\n");
    for (id, key) in sorted {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "\"{id}\" = \"{hex}\"");
    }
    out
}

/// Why a keys file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Not TOML of `"id" = "hex"` lines.
    #[error("not a keys file of \"device-id\" = \"<hex>\" lines: {0}")]
    Syntax(#[from] toml::de::Error),
    /// A key that is not 32 to 128 hex digits.
    #[error("the key of {0:?} must be 32 to 128 hex digits (16 to 64 bytes)")]
    BadKey(String),
}

/// Reads a keys file as [`keys_toml`] writes it (and the gateway reads it).
pub fn parse_keys(text: &str) -> Result<Keys, KeysError> {
    let raw: HashMap<String, String> = toml::from_str(text)?;
    raw.into_iter()
        .map(|(id, hex)| match decode_hex(&hex) {
            Some(key) if (16..=64).contains(&key.len()) => Ok((id, key)),
            _ => Err(KeysError::BadKey(id)),
        })
        .collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_devices_take_the_kinds_in_turn() {
        let d = healthy(3, &[Kind::Manhole, Kind::Sos]);
        assert_eq!(
            d[0],
            DeviceSpec {
                id: "sim-00000".into(),
                kind: Kind::Manhole
            }
        );
        assert_eq!(d[1].kind, Kind::Sos);
        assert_eq!(d[2].kind, Kind::Manhole);
        assert_eq!(healthy(8, &[])[7].kind, Kind::ALL[0]);
        assert_eq!(named("flood", 2, Kind::Sos)[1].id, "flood-001");
        assert!(healthy(100_001, &[]).iter().all(|d| is_id(&d.id)));
    }

    #[test]
    fn the_registry_places_fifty_devices_a_building_and_ten_buildings_a_grid() {
        let devices = healthy(501, &[Kind::Manhole]);
        let text = registry_toml("yg", &devices);
        let value: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(value["community"]["id"].as_str(), Some("yg"));
        assert_eq!(value["buildings"].as_array().unwrap().len(), 11);
        assert_eq!(value["grids"].as_array().unwrap().len(), 2);
        let listed = value["devices"].as_array().unwrap();
        assert_eq!(listed.len(), 501);
        assert_eq!(listed[500]["building"].as_str(), Some("b0011"));
        assert_eq!(listed[500]["grid"].as_str(), Some("g002"));
        assert_eq!(listed[499]["grid"].as_str(), Some("g001"));
        assert_eq!(listed[0]["kind"].as_str(), Some("manhole"));
    }

    #[test]
    fn keys_round_trip_through_the_file() {
        let devices = healthy(5, &[]);
        let keys = new_keys(&devices);
        assert!(keys.values().all(|k| k.len() == KEY_LEN));
        assert_ne!(keys["sim-00000"], keys["sim-00001"]);
        assert_eq!(parse_keys(&keys_toml(&keys)).unwrap(), keys);
        assert!(matches!(parse_keys("\"a\" = \"abc\""), Err(KeysError::BadKey(id)) if id == "a"));
        assert!(parse_keys("\"a\" = ").is_err());
    }
}
