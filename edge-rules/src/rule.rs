//! A checked rule: what it selects, what opens and clears it, and how its alert is handled.

use crate::expr::Expr;
use crate::template::Template;
use crate::Severity;

/// Which devices a rule applies to. An empty list puts no limit on that field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    /// Device kinds.
    pub kinds: Vec<String>,
    /// Community ids.
    pub communities: Vec<String>,
    /// Building ids.
    pub buildings: Vec<String>,
    /// Grid ids.
    pub grids: Vec<String>,
    /// Device ids.
    pub devices: Vec<String>,
    /// Registry tags the device must all have (for example `living_alone`).
    pub tags: Vec<String>,
}

/// Whether a rule watches a rise or a fall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The value went up by at least `by`.
    Rise,
    /// The value went down by at least `by`.
    Fall,
}

/// What a rule waits to be absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Absence {
    /// Any message from the device.
    Messages,
    /// A change in this reading's value (for example a presence sensor's last motion).
    Change(String),
}

/// How long the absence must last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbsentFor {
    /// A fixed time.
    Ms(u64),
    /// This many times the device's reporting interval.
    Intervals(u32),
}

/// What opens (and clears) a rule's alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// A condition over the readings of each message, held for `hold_ms`; it clears when
    /// `clear` holds (or, without `clear`, when the condition no longer does).
    Condition {
        /// The condition.
        when: Expr,
        /// How long it must hold before the alert opens.
        hold_ms: u64,
        /// The condition that clears it (hysteresis).
        clear: Option<Expr>,
    },
    /// An event the device detected, optionally only when `filter` holds on its data and only
    /// once it came `count.at_least` times within `count.within_ms`.
    Event {
        /// The event's name.
        event: String,
        /// A condition over the event's data.
        filter: Option<Expr>,
        /// The event that clears the alert (for example `sos_cancelled`).
        clear_event: Option<String>,
        /// How many times within a window.
        count: Option<Count>,
    },
    /// A reading changed by at least `by` within `within_ms`.
    Change {
        /// The reading.
        reading: String,
        /// Up or down.
        direction: Direction,
        /// The smallest change that opens the alert.
        by: f64,
        /// The window.
        within_ms: u64,
    },
    /// Something expected did not come.
    Absent {
        /// What did not come.
        what: Absence,
        /// For how long.
        after: AbsentFor,
    },
}

/// "At least N within a window".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// How many.
    pub at_least: u32,
    /// The window.
    pub within_ms: u64,
}

/// A time of day window in the community's time zone, in minutes after midnight; `end` before
/// `start` wraps past midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First minute inside.
    pub start: u32,
    /// First minute outside.
    pub end: u32,
}

impl Window {
    /// Whether minute-of-day `m` is inside.
    pub fn contains(self, m: u32) -> bool {
        if self.start <= self.end {
            (self.start..self.end).contains(&m)
        } else {
            m >= self.start || m < self.end
        }
    }
}

/// Who an unacknowledged alert goes to next, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The grid worker on duty.
    OnDuty,
    /// The grid's backup worker.
    Backup,
    /// The grid leader.
    GridLeader,
    /// The community's duty officer.
    DutyOfficer,
}

/// One checked rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Name, unique in the file; alerts are deduplicated by device and rule.
    pub name: String,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Which devices it applies to.
    pub select: Selector,
    /// What opens and clears it.
    pub trigger: Trigger,
    /// Only open during this time of day.
    pub during: Option<Window>,
    /// How long the alert may wait for an acknowledgement before it escalates.
    pub ack_deadline_ms: Option<u64>,
    /// How long an acknowledged alert may wait for someone to be on site before it escalates.
    pub on_site_deadline_ms: Option<u64>,
    /// Who is told, in order, as deadlines pass.
    pub escalation: Vec<Level>,
    /// A life-safety alert: it stays open until a person closes it, even when the condition clears.
    pub needs_person: bool,
    /// The alert message in Simplified Chinese.
    pub message_zh: Template,
    /// The alert message in English.
    pub message_en: Template,
    /// Changes when the rule's text changes: saved state of an edited rule is not restored.
    pub fingerprint: u64,
    /// The line of the rule file where it starts.
    pub line: usize,
}
