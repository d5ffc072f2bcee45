//! Stage 3: the alert rules, wired to the gateway.
//!
//! The rule language and engine live in `gridwatch-edge-rules`; this module gives them what they
//! need from the gateway: the rule file (built in, or `[rules] path`), the kind schema from the
//! catalogue, the registry's devices, readings from decoded payloads, the alert texts from each
//! rule's templates, and the engine's saved state next to the journal.

pub mod backtest;
pub mod state;

#[cfg(test)]
mod default_rules;

use gridwatch_edge_rules::duration::show_ms;
use gridwatch_edge_rules::{
    DeviceInfo, Engine, KindSchema, Rule, RuleSet, RulesError, Schema, Type, Val,
};
use gridwatch_firmware::wire::{Message, Value};

use crate::alerts::text::Messages;
use crate::catalogue::{Catalogue, ReadingType};
use crate::config::RulesConfig;
use crate::registry::{Device, Registry};

/// The rules shipped with the gateway.
pub const BUILTIN: &str = include_str!("../../rules.toml");

/// The name the built-in rule file goes by in messages.
pub const BUILTIN_NAME: &str = "built-in rules.toml";

/// What rule files may name: the catalogue's kinds, readings and events.
pub fn schema(catalogue: &Catalogue) -> Schema {
    let kinds = catalogue
        .kinds()
        .into_iter()
        .map(|k| {
            let readings = k
                .readings
                .iter()
                .map(|r| {
                    let ty = match r.value {
                        ReadingType::Number { .. } => Type::Number,
                        ReadingType::Bool => Type::Bool,
                    };
                    (r.name.clone(), ty)
                })
                .collect();
            let events = k.events.iter().map(|e| e.name.clone()).collect();
            (k.name.clone(), KindSchema { readings, events })
        })
        .collect();
    Schema { kinds }
}

/// Loads the rule file `[rules] path` names, or the built-in rules, checked against `catalogue`.
pub fn load(cfg: &RulesConfig, catalogue: &Catalogue) -> Result<RuleSet, RulesError> {
    let schema = schema(catalogue);
    match &cfg.path {
        Some(path) => RuleSet::load(path, &schema),
        None => {
            // With the user's own catalogue, the built-in rules for kinds it lacks are left out.
            let (set, left_out) = RuleSet::parse_partly(BUILTIN, &schema);
            for p in &left_out {
                tracing::warn!(
                    "{BUILTIN_NAME}:{}: rule left out, the kind catalogue does not fit it: {}",
                    p.line,
                    p.message
                );
            }
            Ok(set)
        }
    }
}

/// A registry device as the engine sees it.
pub fn device_info(d: &Device, catalogue: &Catalogue) -> DeviceInfo {
    let every = catalogue.kind(&d.kind).map_or(60, |k| k.report_every_secs);
    DeviceInfo {
        id: d.id.clone(),
        kind: d.kind.clone(),
        community: d.community.clone(),
        building: d.building.clone(),
        grid: d.grid.clone(),
        tags: d.tags.to_vec(),
        report_every_ms: every.saturating_mul(1000),
    }
}

/// An engine watching every device of the registry, which count as heard from at `now_ms`.
pub fn engine(rules: RuleSet, registry: &Registry, now_ms: u64) -> Engine {
    let catalogue = registry.catalogue();
    Engine::new(
        rules,
        registry.devices().map(|d| device_info(d, catalogue)),
        now_ms,
    )
}

/// A payload's readings, as conditions see them.
pub fn readings<'a>(msg: &Message<'a>) -> Vec<(&'a str, Val)> {
    msg.data
        .iter()
        .map(|r| {
            let v = match r.value {
                Value::Number(n) => Val::Num(n),
                Value::Bool(b) => Val::Bool(b),
            };
            (r.name, v)
        })
        .collect()
}

/// Local time of day `HH:MM` at `ms`, `offset_min` east of UTC.
pub fn clock_time(ms: u64, offset_min: i32) -> String {
    let minute = ((ms / 60_000) as i64 + i64::from(offset_min)).rem_euclid(1440);
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// The alert texts of `rule` for `device`, filled from the readings behind it.
pub fn messages(
    rule: &Rule,
    device: &Device,
    values: &[(String, Val)],
    opened_ms: u64,
    offset_min: i32,
) -> Messages {
    let field = |name: &str| -> Option<String> {
        Some(match name {
            "device" => device.id.to_string(),
            "kind" => device.kind.to_string(),
            "community" => device.community.to_string(),
            "building" => device.building.to_string(),
            "building_name" => device.building_name.to_string(),
            "grid" => device.grid.to_string(),
            "grid_name" => device.grid_name.to_string(),
            "location" => device.location.to_string(),
            "rule" => rule.name.clone(),
            "severity" => rule.severity.as_str().to_string(),
            "since" => clock_time(opened_ms, offset_min),
            reading => values
                .iter()
                .find(|(n, _)| n == reading)
                .map(|(_, v)| v.to_string())?,
        })
    };
    Messages {
        zh_cn: rule.message_zh.render(&field),
        en: rule.message_en.render(&field),
    }
}

/// A one-line description of a rule for listings: its trigger and timer.
pub fn describe(rule: &Rule) -> String {
    use gridwatch_edge_rules::rule::{AbsentFor, Trigger};
    match &rule.trigger {
        Trigger::Condition { when, hold_ms, .. } if *hold_ms > 0 => {
            format!("when `{}` for {}", when.source(), show_ms(*hold_ms))
        }
        Trigger::Condition { when, .. } => format!("when `{}`", when.source()),
        Trigger::Event { event, count, .. } => match count {
            Some(c) => format!("{} × {event} within {}", c.at_least, show_ms(c.within_ms)),
            None => format!("on {event}"),
        },
        Trigger::Change {
            reading,
            by,
            within_ms,
            ..
        } => format!("{reading} changes by {by} within {}", show_ms(*within_ms)),
        Trigger::Absent { after, .. } => match after {
            AbsentFor::Ms(ms) => format!("nothing for {}", show_ms(*ms)),
            AbsentFor::Intervals(n) => format!("nothing for {n} reporting intervals"),
        },
    }
}
