//! Gridwatch's alert rules: what in a reading or an event opens an alert.
//!
//! Evaluation is pure and deterministic: everything it needs, the time included, comes in as an
//! argument, so rules can be unit-tested and backtested over recorded data. For now there is one
//! built-in rule, "an SOS button was pressed"; the rule language replaces it.

use serde::{Deserialize, Serialize};

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

/// One thing a device reported, as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// The device's kind, from the registry (not from the payload).
    pub kind: &'a str,
    /// The event the device detected, if any.
    pub event: Option<&'a str>,
    /// When the gateway received it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A rule that matched: the alert it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firing {
    /// The rule's name, stable across releases: alerts are deduplicated by device and rule.
    pub rule: &'static str,
    /// How urgent the alert is.
    pub severity: Severity,
    /// When the condition was seen, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// The built-in SOS rule's name.
pub const SOS_PRESSED: &str = "sos_pressed";

/// Evaluates the built-in rules against one observation.
pub fn evaluate(obs: &Observation<'_>) -> Option<Firing> {
    (obs.kind == "sos" && obs.event == Some("sos_pressed")).then_some(Firing {
        rule: SOS_PRESSED,
        severity: Severity::Critical,
        at_ms: obs.at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs<'a>(kind: &'a str, event: Option<&'a str>) -> Observation<'a> {
        Observation {
            kind,
            event,
            at_ms: 1_000,
        }
    }

    #[test]
    fn a_pressed_sos_button_fires_a_critical_alert() {
        assert_eq!(
            evaluate(&obs("sos", Some("sos_pressed"))),
            Some(Firing {
                rule: SOS_PRESSED,
                severity: Severity::Critical,
                at_ms: 1_000
            })
        );
    }

    #[test]
    fn telemetry_and_other_events_fire_nothing() {
        assert_eq!(evaluate(&obs("sos", None)), None);
        assert_eq!(evaluate(&obs("sos", Some("sos_cancelled"))), None);
        assert_eq!(evaluate(&obs("manhole", Some("sos_pressed"))), None);
    }

    #[test]
    fn severities_order_by_urgency() {
        assert!(Severity::Critical > Severity::Major && Severity::Major > Severity::Minor);
        assert!(Severity::Minor > Severity::Info);
    }
}
