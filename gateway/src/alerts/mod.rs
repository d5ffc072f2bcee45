//! Stage 4: alerts, from the moment a rule fires to their close.
//!
//! [`AlertBook`] is pure: it takes a rule's firing, the device, the assignee, a fresh id and the
//! time, and says whether a new alert opened or an open one repeated. While an alert for a device
//! and rule is open, a new firing updates it instead of opening a second one.

pub mod text;

use std::collections::HashMap;

use gridwatch_edge_rules::{Firing, Severity};
use serde::Serialize;

use crate::config::Language;
use crate::registry::{Device, Worker};

/// Where an alert stands in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Nobody has taken it yet.
    Firing,
    /// A worker has taken it.
    Acknowledged,
    /// A worker is on site.
    OnSite,
    /// The cause is dealt with.
    Resolved,
    /// Closed with a note.
    Closed,
}

/// The person an alert is assigned to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Assignee {
    /// Worker id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Phone, when known.
    pub phone: Option<String>,
}

impl From<&Worker> for Assignee {
    fn from(w: &Worker) -> Self {
        Self {
            id: w.id.clone(),
            name: w.name.clone(),
            phone: w.phone.clone(),
        }
    }
}

/// An alert, as it leaves the gateway (webhooks, the API).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Globally unique id (UUID v7).
    pub alert_id: String,
    /// The rule that fired.
    pub rule: String,
    /// How urgent.
    pub severity: Severity,
    /// Where it stands.
    pub state: State,
    /// The device, with its place.
    pub device: Device,
    /// When it opened, in milliseconds since the Unix epoch.
    pub started_at: u64,
    /// When it last changed or repeated.
    pub updated_at: u64,
    /// How many times the rule fired while it was open.
    pub occurrences: u32,
    /// The message in the configured language.
    pub message: String,
    /// The message in every language: `zh-CN` and `en`.
    pub messages: text::Messages,
    /// Who it is assigned to; `None` when nobody is on duty for the grid.
    pub assignee: Option<Assignee>,
    /// 0 for the worker on duty; each escalation adds one.
    pub escalation_level: u8,
}

/// The rule of the gateway's own alert when its journal cannot be written.
pub const JOURNAL_WRITE_FAILED: &str = "journal_write_failed";

/// The gateway itself, as the device of its own alerts.
pub fn gateway_device(community: &str) -> Device {
    Device {
        id: "gateway".into(),
        kind: "gateway".into(),
        community: community.into(),
        building: "".into(),
        building_name: "".into(),
        grid: "".into(),
        grid_name: "".into(),
        location: "边缘网关 / edge gateway".into(),
    }
}

/// The id of the alert a firing opens: a UUID v7 whose time is when the message was received and
/// whose other bits come from the device, its `seq` and the rule. Replaying the same message after
/// a restart gives the same id, so receivers see the same alert and the same idempotency id.
pub fn alert_id(received_ms: u64, device: &str, seq: u64, rule: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{device}\n{seq}\n{rule}\n{received_ms}"));
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(received_ms, &bits)
        .into_uuid()
        .to_string()
}

/// What a firing did.
#[derive(Clone, Debug, PartialEq)]
pub enum Fired {
    /// A new alert opened.
    Opened(Alert),
    /// The open alert for the same device and rule repeated.
    Repeated(Alert),
}

/// Every alert the gateway holds, and which are open.
#[derive(Debug, Default)]
pub struct AlertBook {
    alerts: Vec<Alert>,
    open: HashMap<(String, String), usize>,
}

impl AlertBook {
    /// Records a firing for `device`; `new_id` is used only if a new alert opens.
    pub fn fire(
        &mut self,
        firing: &Firing,
        device: &Device,
        assignee: Option<&Worker>,
        new_id: String,
        language: Language,
    ) -> Fired {
        let key = (device.id.to_string(), firing.rule.to_owned());
        if let Some(&i) = self.open.get(&key) {
            let a = &mut self.alerts[i];
            a.occurrences += 1;
            a.updated_at = firing.at_ms;
            return Fired::Repeated(a.clone());
        }
        let messages = text::Messages::for_rule(firing.rule, device);
        let alert = Alert {
            alert_id: new_id,
            rule: firing.rule.to_owned(),
            severity: firing.severity,
            state: State::Firing,
            device: device.clone(),
            started_at: firing.at_ms,
            updated_at: firing.at_ms,
            occurrences: 1,
            message: messages.get(language).to_owned(),
            messages,
            assignee: assignee.map(Assignee::from),
            escalation_level: 0,
        };
        self.open.insert(key, self.alerts.len());
        self.alerts.push(alert.clone());
        Fired::Opened(alert)
    }

    /// All alerts, most severe first, then oldest first.
    pub fn list(&self) -> Vec<Alert> {
        let mut v = self.alerts.clone();
        v.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.started_at.cmp(&b.started_at))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_edge_rules::SOS_PRESSED;

    fn device(id: &str) -> Device {
        Device {
            id: id.into(),
            kind: "sos".into(),
            community: "yg".into(),
            building: "b1".into(),
            building_name: "1号楼".into(),
            grid: "g1".into(),
            grid_name: "一网格".into(),
            location: "101室".into(),
        }
    }

    fn firing(at_ms: u64) -> Firing {
        Firing {
            rule: SOS_PRESSED,
            severity: Severity::Critical,
            at_ms,
        }
    }

    #[test]
    fn alert_ids_are_time_ordered_uuids_that_a_replay_reproduces() {
        let a = alert_id(1_795_000_000_000, "s1", 7, SOS_PRESSED);
        assert_eq!(a, alert_id(1_795_000_000_000, "s1", 7, SOS_PRESSED));
        assert_ne!(a, alert_id(1_795_000_000_000, "s1", 8, SOS_PRESSED));
        assert!(a < alert_id(1_795_000_000_001, "s1", 7, SOS_PRESSED));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 7);
    }

    #[test]
    fn a_firing_opens_an_alert_assigned_to_the_worker_on_duty() {
        let mut book = AlertBook::default();
        let w = Worker {
            id: "w1".into(),
            name: "王芳".into(),
            phone: None,
            webhook: None,
        };
        let Fired::Opened(a) = book.fire(
            &firing(10),
            &device("s1"),
            Some(&w),
            "id-1".into(),
            Language::ZhCn,
        ) else {
            panic!("expected a new alert")
        };
        assert_eq!(
            (a.state, a.severity, a.started_at),
            (State::Firing, Severity::Critical, 10)
        );
        assert_eq!(a.assignee.unwrap().name, "王芳");
        assert!(a.message.contains("1号楼"), "{}", a.message);
        assert_eq!(a.message, a.messages.zh_cn);
    }

    #[test]
    fn a_second_firing_for_the_same_device_and_rule_updates_the_open_alert() {
        let mut book = AlertBook::default();
        book.fire(
            &firing(10),
            &device("s1"),
            None,
            "id-1".into(),
            Language::En,
        );
        let Fired::Repeated(a) = book.fire(
            &firing(20),
            &device("s1"),
            None,
            "id-2".into(),
            Language::En,
        ) else {
            panic!("expected a repeat")
        };
        assert_eq!(
            (a.alert_id.as_str(), a.occurrences, a.updated_at),
            ("id-1", 2, 20)
        );
        assert!(matches!(
            book.fire(
                &firing(30),
                &device("s2"),
                None,
                "id-3".into(),
                Language::En
            ),
            Fired::Opened(_)
        ));
        assert_eq!(book.list().len(), 2);
    }
}
