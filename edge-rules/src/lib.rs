//! Gridwatch's alert rules: the rule file language, its checker and the engine that runs it.
//!
//! Everything here is pure and deterministic: the time comes in as an argument and nothing reads
//! a clock or does I/O (apart from [`RuleSet::load`] reading the file), so rules can be
//! unit-tested and backtested over recorded data, and a restarted gateway can carry on from a
//! saved [`Snapshot`].

pub mod duration;
pub mod engine;
pub mod expr;
pub mod file;
pub mod rule;
pub mod schema;
pub mod silence;
pub mod template;

use serde::{Deserialize, Serialize};

pub use engine::{Change, DeviceInfo, Engine, Msg, OpenAlert, Snapshot, Transition};
pub use expr::{Type, Val};
pub use file::{Problem, RuleSet, RulesError};
pub use rule::{Level, Rule};
pub use schema::{KindSchema, Schema};
pub use silence::{Scope, Silence};

/// How urgent an alert is; `Critical` is for threats to life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record; nobody needs to act now.
    Info,
    /// Someone should look during the shift.
    Minor,
    /// Someone should go now.
    Major,
    /// A life may be at stake: reach a person at once.
    Critical,
}

impl Severity {
    /// The label used in metrics and line protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Minor => "minor",
            Self::Major => "major",
            Self::Critical => "critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_by_urgency() {
        assert!(Severity::Critical > Severity::Major && Severity::Major > Severity::Minor);
        assert!(Severity::Minor > Severity::Info);
    }
}
