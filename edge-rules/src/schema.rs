//! What the rules may name: each device kind's readings (with their types) and events.
//!
//! The gateway builds this from its kind catalogue; rule files are checked against it, so a rule
//! cannot name a reading its kind does not have.

use std::collections::{BTreeMap, BTreeSet};

use crate::expr::Type;

/// One device kind, as the rules see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindSchema {
    /// Reading names and their types.
    pub readings: BTreeMap<String, Type>,
    /// Event names.
    pub events: BTreeSet<String>,
}

/// Every kind the rules may select.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schema {
    /// Kinds by name.
    pub kinds: BTreeMap<String, KindSchema>,
}

impl Schema {
    /// The kinds a selector names, or every kind when it names none.
    pub fn selected<'a>(&'a self, kinds: &'a [String]) -> Vec<(&'a str, &'a KindSchema)> {
        if kinds.is_empty() {
            self.kinds.iter().map(|(k, s)| (k.as_str(), s)).collect()
        } else {
            kinds
                .iter()
                .filter_map(|k| self.kinds.get(k).map(|s| (k.as_str(), s)))
                .collect()
        }
    }

    /// The type of `reading` in every one of `kinds`, or a hint naming what those kinds have.
    pub fn reading_type(&self, kinds: &[String], reading: &str) -> Result<Type, String> {
        let selected = self.selected(kinds);
        let mut found: Option<Type> = None;
        for (name, kind) in &selected {
            match (kind.readings.get(reading), found) {
                (None, _) => {
                    let common = common_readings(&selected);
                    return Err(if common.is_empty() {
                        format!("kind `{name}` has no reading `{reading}`")
                    } else {
                        format!("write one of: {}", common.join(", "))
                    });
                }
                (Some(t), Some(f)) if *t != f => {
                    return Err(format!(
                        "`{reading}` has different types in the selected kinds"
                    ))
                }
                (Some(t), _) => found = Some(*t),
            }
        }
        found.ok_or_else(|| "the rule selects no kind".to_string())
    }

    /// Whether every one of `kinds` has `event`, or a hint naming the events they share.
    pub fn check_event(&self, kinds: &[String], event: &str) -> Result<(), String> {
        let selected = self.selected(kinds);
        if selected.iter().all(|(_, k)| k.events.contains(event)) && !selected.is_empty() {
            return Ok(());
        }
        let mut common: Option<BTreeSet<&String>> = None;
        for (_, k) in &selected {
            let these: BTreeSet<&String> = k.events.iter().collect();
            common = Some(match common {
                None => these,
                Some(c) => c.intersection(&these).copied().collect(),
            });
        }
        let common: Vec<&str> = common
            .unwrap_or_default()
            .into_iter()
            .map(String::as_str)
            .collect();
        Err(if common.is_empty() {
            "the selected kinds share no event; select one kind".to_string()
        } else {
            format!("write one of: {}", common.join(", "))
        })
    }
}

fn common_readings(selected: &[(&str, &KindSchema)]) -> Vec<String> {
    let Some((_, first)) = selected.first() else {
        return Vec::new();
    };
    first
        .readings
        .keys()
        .filter(|r| selected.iter().all(|(_, k)| k.readings.contains_key(*r)))
        .cloned()
        .collect()
}

/// A small schema for tests: a manhole, an elevator and an SOS button.
#[cfg(test)]
pub(crate) fn test_schema() -> Schema {
    let kind = |readings: &[(&str, Type)], events: &[&str]| KindSchema {
        readings: readings.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
        events: events.iter().map(|e| e.to_string()).collect(),
    };
    let mut kinds = BTreeMap::new();
    kinds.insert(
        "manhole".into(),
        kind(
            &[
                ("water_cm", Type::Number),
                ("tilt_deg", Type::Number),
                ("cover_open", Type::Bool),
                ("battery_v", Type::Number),
            ],
            &["cover_displaced", "low_battery"],
        ),
    );
    kinds.insert(
        "elevator".into(),
        kind(
            &[
                ("speed_mps", Type::Number),
                ("door_open", Type::Bool),
                ("moving", Type::Bool),
                ("floor", Type::Number),
            ],
            &["trapped_passenger", "stopped_outside_door_zone"],
        ),
    );
    kinds.insert(
        "sos".into(),
        kind(
            &[
                ("battery_v", Type::Number),
                ("last_motion_ts", Type::Number),
            ],
            &["sos_pressed", "sos_cancelled", "low_battery"],
        ),
    );
    Schema { kinds }
}
