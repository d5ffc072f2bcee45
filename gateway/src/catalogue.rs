//! The kind catalogue: the one list of device kinds, their readings (type, unit, valid range) and
//! events (default severity), with labels in Chinese and English.
//!
//! The gateway ships `gateway/kinds.toml` built in; `[catalogue] path` replaces it with the user's
//! own file. The registry accepts only kinds listed here, and decoding rejects readings and events
//! a kind does not have, or values outside their range.

use std::collections::HashMap;
use std::path::Path;

use gridwatch_edge_rules::Severity;
use gridwatch_firmware::wire::{is_name, Value};
use serde::{Deserialize, Serialize};

/// The catalogue shipped with the gateway.
pub const BUILTIN: &str = include_str!("../kinds.toml");

/// A label in every language.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// Simplified Chinese.
    #[serde(rename = "zh-CN")]
    pub zh_cn: String,
    /// English.
    pub en: String,
}

/// What a reading holds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReadingType {
    /// A number in `unit`, valid from `min` to `max`.
    Number {
        /// Unit, for people and dashboards.
        unit: String,
        /// Smallest valid value.
        min: f64,
        /// Largest valid value.
        max: f64,
    },
    /// A flag.
    Bool,
}

/// One reading of a kind.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ReadingSpec {
    /// Name, as in the payload's `data` and in the time-series field.
    pub name: String,
    /// Type and range.
    #[serde(flatten)]
    pub value: ReadingType,
    /// Label.
    pub label: Label,
}

/// One event of a kind.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Name, as in the payload's `event`.
    pub name: String,
    /// Default severity of an alert about it.
    pub severity: Severity,
    /// Label.
    pub label: Label,
}

/// One kind of device.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Kind {
    /// Name, as in the registry and the payload's `kind`.
    pub name: String,
    /// Label.
    pub label: Label,
    /// How often a healthy device reports, in seconds.
    pub report_every_secs: u64,
    /// Its readings.
    #[serde(default)]
    pub readings: Vec<ReadingSpec>,
    /// Its events.
    #[serde(default)]
    pub events: Vec<EventSpec>,
    /// A bool reading that says whether the space a device watches is taken (parking's
    /// `occupied`): the screen counts free and taken spaces per building.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupancy: Option<String>,
    /// Whether a worker's acknowledgement is sent down to the device (the `help_coming` cmd), so
    /// the person who pressed it sees that help is on its way.
    #[serde(default)]
    pub help_coming: bool,
}

impl Kind {
    /// Why `name = value` is not a valid reading of this kind, if it is not.
    pub fn check_reading(&self, name: &str, value: Value) -> Result<(), String> {
        let spec = self
            .readings
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| format!("{:?} has no reading {name:?}", self.name))?;
        match (&spec.value, value) {
            (ReadingType::Bool, Value::Bool(_)) => Ok(()),
            (ReadingType::Number { min, max, unit }, Value::Number(n)) => {
                if (*min..=*max).contains(&n) {
                    Ok(())
                } else {
                    Err(format!("{name} = {n} {unit} is outside {min}..={max}"))
                }
            }
            (ReadingType::Bool, Value::Number(_)) => Err(format!("{name} must be true or false")),
            (ReadingType::Number { .. }, Value::Bool(_)) => Err(format!("{name} must be a number")),
        }
    }

    /// The event named `name`, if this kind has it.
    pub fn event(&self, name: &str) -> Option<&EventSpec> {
        self.events.iter().find(|e| e.name == name)
    }
}

/// Every kind the gateway accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct Catalogue {
    kinds: HashMap<String, Kind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    kinds: Vec<Kind>,
}

impl Catalogue {
    /// The catalogue shipped with the gateway.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN).expect("the built-in catalogue is valid (tested)")
    }

    /// Reads a catalogue file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read kind catalogue {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("kind catalogue {}: {e}", path.display()))
    }

    /// Parses and checks catalogue text; every problem is listed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut problems = Vec::new();
        let mut kinds = HashMap::new();
        for k in file.kinds {
            if !is_name(&k.name) {
                problems.push(format!(
                    "kind {:?} must match [a-z][a-z0-9_]{{0,31}}",
                    k.name
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for name in k
                .readings
                .iter()
                .map(|r| &r.name)
                .chain(k.events.iter().map(|e| &e.name))
            {
                if !is_name(name) {
                    problems.push(format!(
                        "{}: {name:?} must match [a-z][a-z0-9_]{{0,31}}",
                        k.name
                    ));
                }
                if !seen.insert(name.clone()) {
                    problems.push(format!("{}: {name:?} is listed twice", k.name));
                }
            }
            for r in &k.readings {
                if let ReadingType::Number { min, max, .. } = r.value {
                    if !(min.is_finite() && max.is_finite() && min <= max) {
                        problems.push(format!(
                            "{}.{}: min {min} must not be above max {max}",
                            k.name, r.name
                        ));
                    }
                }
            }
            if let Some(o) = &k.occupancy {
                if !k
                    .readings
                    .iter()
                    .any(|r| &r.name == o && r.value == ReadingType::Bool)
                {
                    problems.push(format!(
                        "{}: occupancy {o:?} must name one of its true/false readings",
                        k.name
                    ));
                }
            }
            if k.report_every_secs == 0 {
                problems.push(format!(
                    "{}: report_every_secs must be greater than 0",
                    k.name
                ));
            }
            if let Some(old) = kinds.insert(k.name.clone(), k) {
                problems.push(format!("kind {:?} is listed twice", old.name));
            }
        }
        if problems.is_empty() {
            Ok(Self { kinds })
        } else {
            Err(problems.join("; "))
        }
    }

    /// The kind named `name`.
    pub fn kind(&self, name: &str) -> Option<&Kind> {
        self.kinds.get(name)
    }

    /// Every kind, sorted by name.
    pub fn kinds(&self) -> Vec<&Kind> {
        let mut v: Vec<&Kind> = self.kinds.values().collect();
        v.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every kind's name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_has_its_seven_kinds() {
        let c = Catalogue::builtin();
        assert_eq!(
            c.names(),
            [
                "electrical",
                "elevator",
                "fire_passage",
                "manhole",
                "parking",
                "perimeter",
                "sos"
            ]
        );
        let sos = c.kind("sos").unwrap();
        assert_eq!(
            sos.event("sos_pressed").unwrap().severity,
            Severity::Critical
        );
        assert_eq!(sos.label.zh_cn, "一键呼救");
    }

    #[test]
    fn readings_are_checked_for_name_type_and_range() {
        let c = Catalogue::builtin();
        let m = c.kind("manhole").unwrap();
        assert!(m.check_reading("tilt_deg", Value::Number(3.2)).is_ok());
        assert!(m.check_reading("cover_open", Value::Bool(true)).is_ok());
        assert!(m
            .check_reading("tilt_deg", Value::Number(-1.0))
            .unwrap_err()
            .contains("outside"));
        assert!(m
            .check_reading("cover_open", Value::Number(1.0))
            .unwrap_err()
            .contains("true or false"));
        assert!(m
            .check_reading("floor", Value::Number(1.0))
            .unwrap_err()
            .contains("no reading"));
    }

    #[test]
    fn a_bad_catalogue_lists_every_problem() {
        let text = r#"
[[kinds]]
name = "Bad"
label = { zh-CN = "坏", en = "Bad" }
report_every_secs = 0
readings = [
  { name = "x", type = "number", unit = "", min = 5, max = 1, label = { zh-CN = "x", en = "x" } },
  { name = "x", type = "bool", label = { zh-CN = "x", en = "x" } },
]
occupancy = "y"
"#;
        let err = Catalogue::parse(text).unwrap_err();
        for want in [
            "must match",
            "listed twice",
            "min 5",
            "report_every_secs",
            "occupancy \"y\"",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
