//! Stage 4: alerts, from the moment a rule opens one to its close.
//!
//! [`AlertBook`] is pure: the rule engine says an alert opened, happened again, cleared or
//! resolved, and the book keeps the alert as the API and the webhooks show it, with the evidence
//! behind it. While an alert for a device and rule is open, a new opening updates it instead of
//! opening a second one.
//!
//! Two things keep people from drowning, neither ever applied to an alert that needs a person
//! (SOS, trapped passenger, smoke, gas): a storm (many devices of one building opening the same
//! rule within a short window, as in a power cut) becomes one grouped alert that pages once,
//! and a condition that keeps opening and ending (flapping) stops paging after a few times.

pub mod case_log;
pub mod desk;
pub mod lifecycle;
pub mod text;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use gridwatch_edge_rules::{Level, Severity, Val};
use serde::{Deserialize, Serialize};

use crate::config::Language;
use crate::registry::{Device, Worker};

/// Where an alert stands in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// A life-safety alert: it stays open until a person closes it.
    pub needs_person: bool,
    /// How long it may wait for an acknowledgement, in milliseconds; each time it passes, the
    /// alert goes to the next level of `escalation`.
    pub ack_deadline_ms: Option<u64>,
    /// How long, once acknowledged, it may wait for someone on site before it escalates.
    pub on_site_deadline_ms: Option<u64>,
    /// Who it goes to, in order, while nobody acknowledges it.
    pub escalation: Vec<Level>,
    /// Why it opened: the readings, and the rule's comparisons, timer or window in plain words.
    pub evidence: Evidence,
    /// When its condition cleared, for an alert that waits for a person to close it.
    pub condition_cleared_at: Option<u64>,
    /// When it resolved.
    pub resolved_at: Option<u64>,
    /// The maintenance window that kept it from paging anyone, if one did.
    pub silenced_by: Option<String>,
    /// Who closed it, when, and the note they left.
    pub closed: Option<Step>,
    /// Everything that happened to it, oldest first: who moved it where, when, with what note.
    pub timeline: Vec<Step>,
    /// The storm alert this one is part of: it pages and escalates no more on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouped_into: Option<String>,
    /// For a storm alert, the alerts it groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// How many on-site deadlines have passed since it was acknowledged.
    #[serde(skip)]
    late_on_site: u8,
    /// How many acknowledgement deadlines have passed with a move up the chain.
    #[serde(skip)]
    late_ack: u8,
}

/// One entry of an alert's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The state after it.
    pub state: State,
    /// Who: a worker's name, or `gridwatch` for the rules.
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What was found, done or seen.
    pub note: Option<String>,
}

/// The rules' name in timelines.
pub const RULES: &str = "gridwatch";

/// Why a person's action was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActError {
    /// No alert has this id.
    #[error("there is no alert {0}")]
    NotFound(String),
    /// The action does not apply in the alert's state.
    #[error(transparent)]
    Wrong(#[from] lifecycle::WrongTransition),
}

/// The readings and reasons behind an alert.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The readings of the message that opened it.
    pub readings: BTreeMap<String, Val>,
    /// The rule's comparisons, timer or window, in plain words.
    pub why: Vec<String>,
    /// The sequence number of the message that opened it (0 when nothing came).
    pub seq: u64,
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
        tags: Box::default(),
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

/// A new alert, as the pipeline asks for it.
pub struct Opening<'a> {
    /// Its id (see [`alert_id`]).
    pub alert_id: String,
    /// The rule's name.
    pub rule: &'a str,
    /// How urgent.
    pub severity: Severity,
    /// The device.
    pub device: &'a Device,
    /// The worker on duty, if any.
    pub assignee: Option<Arc<Worker>>,
    /// When it opened.
    pub opened_ms: u64,
    /// Its texts.
    pub messages: text::Messages,
    /// Which text is `message`.
    pub language: Language,
    /// Whether only a person may close it.
    pub needs_person: bool,
    /// The acknowledgement deadline.
    pub ack_deadline_ms: Option<u64>,
    /// The on-site deadline.
    pub on_site_deadline_ms: Option<u64>,
    /// The escalation levels.
    pub escalation: Vec<Level>,
    /// Why.
    pub evidence: Evidence,
    /// The maintenance window holding it back, if any.
    pub silenced_by: Option<String>,
}

/// What an opening did.
#[derive(Clone, Debug, PartialEq)]
pub enum Fired {
    /// A new alert opened.
    Opened(Alert),
    /// The open alert for the same device and rule repeated.
    Repeated(Alert),
    /// A new alert opened as part of a storm, which pages instead of it: the storm alert, new
    /// (`true`, with every member so far) or grown by one.
    Grouped {
        /// The new alert.
        alert: Box<Alert>,
        /// The storm alert.
        storm: Box<Alert>,
        /// Whether the storm started with this alert.
        new: bool,
    },
    /// The book already has an alert with this id: the opening is a replay of one it has seen
    /// (the journal run through the rules again after a restart), and changes nothing.
    Known(Alert),
}

/// An alert as the case log keeps it: the alert, whether it still holds its device and rule
/// (a second opening updates it), and what the alert does not show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The alert.
    pub alert: Alert,
    /// Whether a new opening for its device and rule updates it.
    pub open: bool,
    /// How many on-site deadlines have passed since it was acknowledged.
    pub late_on_site: u8,
    /// How many acknowledgement deadlines have passed with a move up the chain.
    #[serde(default)]
    pub late_ack: u8,
}

/// When alerts are grouped into a storm, and when a flapping condition stops paging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damping {
    /// This many alerts of one rule opening in one building within `storm_window_ms` make a
    /// storm.
    pub storm_threshold: usize,
    /// See `storm_threshold`.
    pub storm_window_ms: u64,
    /// An alert of a device and rule that opened this many times within `flap_window_ms`
    /// before opens without paging.
    pub flap_limit: usize,
    /// See `flap_limit`.
    pub flap_window_ms: u64,
}

impl Default for Damping {
    fn default() -> Self {
        Self {
            storm_threshold: 5,
            storm_window_ms: 60_000,
            flap_limit: 3,
            flap_window_ms: 30 * 60_000,
        }
    }
}

/// How `silenced_by` starts for an alert held back because its condition flaps.
const FLAPPING: &str = "flapping";

/// A recent opening: when, and which alert.
type Recent = (u64, String);

/// Every alert the gateway holds, and which are open.
#[derive(Debug, Default)]
pub struct AlertBook {
    alerts: Vec<Alert>,
    by_id: HashMap<String, usize>,
    open: HashMap<(Arc<str>, String), usize>,
    changed: BTreeSet<String>,
    damping: Damping,
    /// Recent openings by (rule, building).
    recent: HashMap<(String, Arc<str>), Vec<Recent>>,
    /// Recent openings by (device, rule).
    flaps: HashMap<(Arc<str>, String), Vec<u64>>,
}

impl AlertBook {
    /// An empty book that damps storms and flapping as `damping` says.
    pub fn new(damping: Damping) -> Self {
        Self {
            damping,
            ..Self::default()
        }
    }

    /// A book holding the alerts a case log kept.
    pub fn restore(kept: Vec<Kept>, damping: Damping) -> Self {
        let mut book = Self::new(damping);
        for k in kept {
            let mut alert = k.alert;
            alert.late_on_site = k.late_on_site;
            alert.late_ack = k.late_ack;
            if k.open {
                let key = (alert.device.id.clone(), alert.rule.clone());
                book.open.insert(key, book.alerts.len());
            }
            book.by_id.insert(alert.alert_id.clone(), book.alerts.len());
            book.alerts.push(alert);
        }
        book
    }

    /// The alerts changed since the last call, as the case log keeps them.
    pub fn take_changes(&mut self) -> Vec<Kept> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|id| self.kept(&id))
            .collect()
    }

    /// Every alert, as the case log keeps them.
    pub fn kept_all(&self) -> Vec<Kept> {
        self.alerts
            .iter()
            .filter_map(|a| self.kept(&a.alert_id))
            .collect()
    }

    fn kept(&self, alert_id: &str) -> Option<Kept> {
        let &i = self.by_id.get(alert_id)?;
        let alert = &self.alerts[i];
        Some(Kept {
            alert: alert.clone(),
            open: self.holds(i),
            late_on_site: alert.late_on_site,
            late_ack: alert.late_ack,
        })
    }

    /// Forgets the alerts that are over (resolved or closed) and unchanged for `keep_ms`;
    /// returns how many.
    pub fn prune(&mut self, now_ms: u64, keep_ms: u64) -> usize {
        let before = self.alerts.len();
        let open: HashSet<String> = self
            .open
            .values()
            .map(|&i| self.alerts[i].alert_id.clone())
            .collect();
        self.alerts.retain(|a| {
            open.contains(&a.alert_id) || a.updated_at.saturating_add(keep_ms) > now_ms
        });
        if self.alerts.len() != before {
            self.by_id.clear();
            self.open.clear();
            for (i, a) in self.alerts.iter().enumerate() {
                self.by_id.insert(a.alert_id.clone(), i);
                if open.contains(&a.alert_id) {
                    self.open.insert((a.device.id.clone(), a.rule.clone()), i);
                }
            }
        }
        before - self.alerts.len()
    }

    /// Opens an alert, or updates the one open for the same device and rule.
    pub fn open(&mut self, o: Opening<'_>) -> Fired {
        if let Some(&i) = self.by_id.get(&o.alert_id) {
            return Fired::Known(self.alerts[i].clone());
        }
        let key = (o.device.id.clone(), o.rule.to_owned());
        if let Some(&i) = self.open.get(&key) {
            let a = &mut self.alerts[i];
            a.occurrences += 1;
            a.updated_at = a.updated_at.max(o.opened_ms);
            self.changed.insert(a.alert_id.clone());
            return Fired::Repeated(a.clone());
        }
        let alert = Alert {
            alert_id: o.alert_id,
            rule: o.rule.to_owned(),
            severity: o.severity,
            state: State::Firing,
            device: o.device.clone(),
            started_at: o.opened_ms,
            updated_at: o.opened_ms,
            occurrences: 1,
            message: o.messages.get(o.language).to_owned(),
            messages: o.messages,
            assignee: o.assignee.as_deref().map(Assignee::from),
            escalation_level: 0,
            needs_person: o.needs_person,
            ack_deadline_ms: o.ack_deadline_ms,
            on_site_deadline_ms: o.on_site_deadline_ms,
            escalation: o.escalation,
            evidence: o.evidence,
            condition_cleared_at: None,
            resolved_at: None,
            silenced_by: o.silenced_by,
            closed: None,
            timeline: vec![Step {
                state: State::Firing,
                by: RULES.into(),
                at_ms: o.opened_ms,
                note: None,
            }],
            grouped_into: None,
            members: Vec::new(),
            late_on_site: 0,
            late_ack: 0,
        };
        let mut alert = alert;
        if !alert.needs_person && alert.silenced_by.is_none() {
            let times = self.flaps.entry(key.clone()).or_default();
            let window = self.damping.flap_window_ms;
            times.retain(|&t| t.saturating_add(window) > o.opened_ms);
            if times.len() >= self.damping.flap_limit {
                alert.silenced_by = Some(format!(
                    "{FLAPPING}: opened {} times in {} min; not paged again until it settles",
                    times.len() + 1,
                    window / 60_000
                ));
            }
            times.push(o.opened_ms);
        }
        self.open.insert(key, self.alerts.len());
        self.by_id.insert(alert.alert_id.clone(), self.alerts.len());
        self.changed.insert(alert.alert_id.clone());
        self.alerts.push(alert.clone());
        if alert.needs_person || alert.silenced_by.is_some() {
            return Fired::Opened(alert);
        }
        self.storm(alert, o.language)
    }

    /// Counts `alert` among the recent openings of its rule in its building, and groups it
    /// into a storm once there are enough of them.
    fn storm(&mut self, alert: Alert, language: Language) -> Fired {
        let place = (alert.rule.clone(), alert.device.building.clone());
        let recent = self.recent.entry(place.clone()).or_default();
        let window = self.damping.storm_window_ms;
        recent.retain(|(t, _)| t.saturating_add(window) > alert.started_at);
        recent.push((alert.started_at, alert.alert_id.clone()));
        if recent.len() < self.damping.storm_threshold {
            return Fired::Opened(alert);
        }
        let members: Vec<String> = recent.iter().map(|(_, id)| id.clone()).collect();
        let storm_device: Arc<str> = format!("building-{}", alert.device.building).into();
        let storm_rule = format!("{}.storm", alert.rule);
        let (storm_i, new) = match self.open.get(&(storm_device.clone(), storm_rule.clone())) {
            Some(&i) => {
                // Every alert of the window joins, not only this one: the storm ends only when
                // all it groups have ended.
                for id in &members {
                    if !self.alerts[i].members.contains(id) {
                        self.alerts[i].members.push(id.clone());
                    }
                }
                self.alerts[i].occurrences = self.alerts[i].members.len() as u32;
                self.alerts[i].updated_at = alert.started_at;
                (i, false)
            }
            None => {
                let mut storm = alert.clone();
                storm.alert_id = format!("{}.storm", alert.alert_id);
                storm.rule = storm_rule.clone();
                storm.device.id = storm_device.clone();
                storm.device.kind = "building".into();
                storm.device.location = format!("{}（全楼）", alert.device.building_name).into();
                storm.evidence = Evidence::default();
                storm.members = members.clone();
                storm.occurrences = members.len() as u32;
                let i = self.alerts.len();
                self.open.insert((storm_device, storm_rule), i);
                self.by_id.insert(storm.alert_id.clone(), i);
                self.alerts.push(storm);
                (i, true)
            }
        };
        let n = self.alerts[storm_i].members.len();
        let storm_id = self.alerts[storm_i].alert_id.clone();
        let building = self.alerts[storm_i].device.building_name.clone();
        self.alerts[storm_i].messages = text::Messages::storm(&building, n, &alert.rule);
        self.alerts[storm_i].message = self.alerts[storm_i].messages.get(language).to_owned();
        self.changed.insert(storm_id.clone());
        for id in &members {
            if let Some(&i) = self.by_id.get(id) {
                if self.alerts[i].grouped_into.is_none() {
                    self.alerts[i].grouped_into = Some(storm_id.clone());
                    self.changed.insert(id.clone());
                }
            }
        }
        let alert = self.alerts[self.by_id[&alert.alert_id]].clone();
        Fired::Grouped {
            alert: Box::new(alert),
            storm: Box::new(self.alerts[storm_i].clone()),
            new,
        }
    }

    /// Whether an alert is open for `device` and `rule`.
    pub fn is_open(&self, device: &str, rule: &str) -> bool {
        self.open
            .contains_key(&(Arc::from(device), rule.to_owned()))
    }

    /// The open alert of `device` and `rule`.
    pub fn open_alert(&self, device: &str, rule: &str) -> Option<&Alert> {
        let &i = self.open.get(&(Arc::from(device), rule.to_owned()))?;
        Some(&self.alerts[i])
    }

    /// Every alert, in no particular order, without copying them.
    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter()
    }

    /// Whether the alert at `i` is the open one of its device and rule.
    fn holds(&self, i: usize) -> bool {
        let a = &self.alerts[i];
        self.open.get(&(a.device.id.clone(), a.rule.clone())) == Some(&i)
    }

    /// The rules with an alert open for `device`.
    pub fn open_rules(&self, device: &str) -> Vec<String> {
        let mut rules: Vec<String> = self
            .open
            .keys()
            .filter(|(d, _)| &**d == device)
            .map(|(_, r)| r.clone())
            .collect();
        rules.sort();
        rules
    }

    /// The open alert's condition happened again at `at_ms`.
    pub fn repeat(&mut self, device: &str, rule: &str, at_ms: u64) -> Option<Alert> {
        let a = self.open_mut(device, rule)?;
        a.occurrences += 1;
        a.updated_at = a.updated_at.max(at_ms);
        if a.condition_cleared_at.take().is_some() {
            a.timeline.push(Step {
                state: a.state,
                by: RULES.into(),
                at_ms,
                note: Some("the condition is back".into()),
            });
        }
        Some(a.clone())
    }

    /// The open alert's condition cleared at `at_ms`, but a person must close it.
    pub fn cleared(&mut self, device: &str, rule: &str, at_ms: u64) -> Option<Alert> {
        let a = self.open_mut(device, rule)?;
        if a.condition_cleared_at == Some(at_ms) {
            // The journal run through the rules again after a restart.
            return None;
        }
        a.condition_cleared_at = Some(at_ms);
        a.updated_at = a.updated_at.max(at_ms);
        a.timeline.push(Step {
            state: a.state,
            by: RULES.into(),
            at_ms,
            note: Some("the condition cleared; a person closes the case".into()),
        });
        Some(a.clone())
    }

    /// The open alert resolved itself at `at_ms`; the next opening is a new alert. Returns it,
    /// and its storm alert too when that was the storm's last open member.
    pub fn resolve(&mut self, device: &str, rule: &str, at_ms: u64) -> Vec<Alert> {
        let Some(i) = self.open.remove(&(Arc::from(device), rule.to_owned())) else {
            return Vec::new();
        };
        self.end(i, at_ms, "the condition ended");
        let mut out = vec![self.alerts[i].clone()];
        out.extend(self.storm_over(i, at_ms));
        out
    }

    /// Ends the storm alert of member `i` once none of its members is open, and returns it.
    fn storm_over(&mut self, i: usize, at_ms: u64) -> Option<Alert> {
        let s = *self.by_id.get(self.alerts[i].grouped_into.as_ref()?)?;
        let any_open = self.alerts[s]
            .members
            .iter()
            .any(|m| self.by_id.get(m).is_some_and(|&j| self.holds(j)));
        if any_open || !self.holds(s) {
            return None;
        }
        let key = (
            self.alerts[s].device.id.clone(),
            self.alerts[s].rule.clone(),
        );
        self.open.remove(&key);
        self.end(s, at_ms, "every device in the storm is back to normal");
        Some(self.alerts[s].clone())
    }

    /// Lets the alerts held back for flapping page after all once they have stayed open for
    /// the whole flap window: a condition that flapped and then stayed is real. Returns them.
    pub fn wake_flapping(&mut self, now_ms: u64) -> Vec<Alert> {
        let window = self.damping.flap_window_ms;
        let mut out = Vec::new();
        for &i in self.open.values() {
            let a = &mut self.alerts[i];
            let flapping = a
                .silenced_by
                .as_deref()
                .is_some_and(|s| s.starts_with(FLAPPING));
            if flapping && now_ms >= a.started_at.saturating_add(window) {
                a.silenced_by = None;
                a.updated_at = a.updated_at.max(now_ms);
                a.timeline.push(Step {
                    state: a.state,
                    by: RULES.into(),
                    at_ms: now_ms,
                    note: Some("it stopped flapping and stayed: paged now".into()),
                });
                self.changed.insert(a.alert_id.clone());
                out.push(a.clone());
            }
        }
        out.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
        out
    }

    fn end(&mut self, i: usize, at_ms: u64, why: &str) {
        let a = &mut self.alerts[i];
        self.changed.insert(a.alert_id.clone());
        a.resolved_at = Some(at_ms);
        a.updated_at = a.updated_at.max(at_ms);
        if a.state != State::Resolved {
            a.state = State::Resolved;
            a.timeline.push(Step {
                state: State::Resolved,
                by: RULES.into(),
                at_ms,
                note: Some(why.into()),
            });
        }
    }

    /// Moves every open alert that nobody acknowledged within its deadline to the next level of
    /// its chain, and returns each one moved with everyone to tell (the new level and those
    /// before it). `chain` gives who fills each of the alert's `escalation` levels now (`None`
    /// for a level nobody fills), so `escalation_level` is a position in the rule's list: an
    /// empty level is passed over, and one that fills later is not skipped for good. An alert
    /// escalates once per deadline; at a deadline with nobody further up, it waits and goes up
    /// as soon as someone is there.
    pub fn escalate(
        &mut self,
        now_ms: u64,
        chain: impl Fn(&Alert) -> Vec<Option<Arc<Worker>>>,
    ) -> Vec<(Alert, Vec<Arc<Worker>>)> {
        let mut out = Vec::new();
        for &i in self.open.values() {
            let a = &mut self.alerts[i];
            if a.grouped_into.is_some() {
                // Its storm goes up the chain for it.
                continue;
            }
            // Waiting for an acknowledgement, or acknowledged and waiting for someone on site.
            let (deadline, from, passed) = match a.state {
                State::Firing => (a.ack_deadline_ms, a.started_at, a.late_ack),
                State::Acknowledged => {
                    let acked = a
                        .timeline
                        .iter()
                        .rev()
                        .find(|s| s.state == State::Acknowledged)
                        .map_or(a.started_at, |s| s.at_ms);
                    (a.on_site_deadline_ms, acked, a.late_on_site)
                }
                _ => continue,
            };
            let Some(deadline) = deadline.filter(|d| *d > 0) else {
                continue;
            };
            let due = from.saturating_add(deadline.saturating_mul(u64::from(passed) + 1));
            if a.silenced_by.is_some() || now_ms < due {
                continue;
            }
            let workers = chain(a);
            let from_level = usize::from(a.escalation_level) + 1;
            let Some((next, worker)) = workers
                .iter()
                .enumerate()
                .skip(from_level)
                .find_map(|(i, w)| Some((i, w.clone()?)))
            else {
                continue;
            };
            a.escalation_level = next as u8;
            if a.state == State::Acknowledged {
                a.late_on_site += 1;
            } else {
                a.late_ack += 1;
            }
            a.assignee = Some(Assignee::from(&*worker));
            a.updated_at = a.updated_at.max(now_ms);
            self.changed.insert(a.alert_id.clone());
            a.timeline.push(Step {
                state: a.state,
                by: RULES.into(),
                at_ms: now_ms,
                note: Some(if a.state == State::Firing {
                    format!(
                        "not acknowledged within {} s: escalated to {}",
                        (now_ms - a.started_at) / 1000,
                        worker.name
                    )
                } else {
                    format!(
                        "nobody on site {} min after the acknowledgement: escalated to {}",
                        deadline * (u64::from(passed) + 1) / 60_000,
                        worker.name
                    )
                }),
            });
            let tell = workers.into_iter().take(next + 1).flatten().collect();
            out.push((a.clone(), tell));
        }
        out.sort_by(|a, b| a.0.alert_id.cmp(&b.0.alert_id));
        out
    }

    /// The alert with this id.
    pub fn get(&self, alert_id: &str) -> Option<&Alert> {
        Some(&self.alerts[*self.by_id.get(alert_id)?])
    }

    /// A person acts on the alert `alert_id`. A closed alert makes room: the next occurrence of
    /// its condition opens a new one.
    pub fn act(
        &mut self,
        alert_id: &str,
        action: lifecycle::Action,
        by: &str,
        note: Option<&str>,
        at_ms: u64,
    ) -> Result<Alert, ActError> {
        let i = *self
            .by_id
            .get(alert_id)
            .ok_or_else(|| ActError::NotFound(alert_id.to_owned()))?;
        let a = &mut self.alerts[i];
        a.state = lifecycle::next(a.state, action)?;
        self.changed.insert(a.alert_id.clone());
        a.updated_at = a.updated_at.max(at_ms);
        let step = Step {
            state: a.state,
            by: by.to_owned(),
            at_ms,
            note: note.map(str::to_owned),
        };
        match a.state {
            State::Resolved => a.resolved_at = Some(at_ms),
            State::Closed => a.closed = Some(step.clone()),
            _ => {}
        }
        a.timeline.push(step);
        if a.state == State::Closed {
            let key = (a.device.id.clone(), a.rule.clone());
            if self.open.get(&key) == Some(&i) {
                self.open.remove(&key);
            }
            self.storm_over(i, at_ms);
        }
        Ok(self.alerts[i].clone())
    }

    /// The open alert of `device` and `rule`, marked as changed.
    fn open_mut(&mut self, device: &str, rule: &str) -> Option<&mut Alert> {
        let i = *self.open.get(&(Arc::from(device), rule.to_owned()))?;
        let a = &mut self.alerts[i];
        self.changed.insert(a.alert_id.clone());
        Some(a)
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
pub(crate) mod tests {
    use super::*;

    /// An SOS button `id` in building b1, grid g1: the fixture of the alert tests.
    pub(crate) fn device(id: &str) -> Device {
        Device {
            id: id.into(),
            kind: "sos".into(),
            community: "yg".into(),
            building: "b1".into(),
            building_name: "1号楼".into(),
            grid: "g1".into(),
            grid_name: "一网格".into(),
            location: "101室".into(),
            tags: Box::default(),
        }
    }

    /// An SOS opening for `d` with id `id` at `at`, assigned to `w`.
    pub(crate) fn opening<'a>(
        d: &'a Device,
        w: Option<&'a Worker>,
        id: &str,
        at: u64,
    ) -> Opening<'a> {
        Opening {
            alert_id: id.into(),
            rule: "sos_pressed",
            severity: Severity::Critical,
            device: d,
            assignee: w.map(|w| Arc::new(w.clone())),
            opened_ms: at,
            messages: text::Messages {
                zh_cn: "1号楼101室求助".into(),
                en: "SOS at 101".into(),
            },
            language: Language::ZhCn,
            needs_person: true,
            ack_deadline_ms: Some(60_000),
            on_site_deadline_ms: Some(1_800_000),
            escalation: vec![Level::OnDuty, Level::Backup, Level::GridLeader],
            evidence: Evidence::default(),
            silenced_by: None,
        }
    }

    #[test]
    fn alert_ids_are_time_ordered_uuids_that_a_replay_reproduces() {
        let a = alert_id(1_795_000_000_000, "s1", 7, "sos_pressed");
        assert_eq!(a, alert_id(1_795_000_000_000, "s1", 7, "sos_pressed"));
        assert_ne!(a, alert_id(1_795_000_000_000, "s1", 8, "sos_pressed"));
        assert!(a < alert_id(1_795_000_000_001, "s1", 7, "sos_pressed"));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 7);
    }

    #[test]
    fn an_opening_makes_an_alert_assigned_to_the_worker_on_duty() {
        let mut book = AlertBook::default();
        let w = Worker {
            id: "w1".into(),
            name: "王芳".into(),
            phone: None,
            reach: Vec::new(),
        };
        let d = device("s1");
        let Fired::Opened(a) = book.open(opening(&d, Some(&w), "id-1", 10)) else {
            panic!("expected a new alert")
        };
        assert_eq!(
            (a.state, a.severity, a.started_at),
            (State::Firing, Severity::Critical, 10)
        );
        assert_eq!(a.assignee.unwrap().name, "王芳");
        assert_eq!(a.message, a.messages.zh_cn);
    }

    #[test]
    fn a_second_opening_for_the_same_device_and_rule_updates_the_open_alert() {
        let mut book = AlertBook::default();
        let (s1, s2) = (device("s1"), device("s2"));
        book.open(opening(&s1, None, "id-1", 10));
        let Fired::Repeated(a) = book.open(opening(&s1, None, "id-2", 20)) else {
            panic!("expected a repeat")
        };
        assert_eq!(
            (a.alert_id.as_str(), a.occurrences, a.updated_at),
            ("id-1", 2, 20)
        );
        assert!(matches!(
            book.open(opening(&s2, None, "id-3", 30)),
            Fired::Opened(_)
        ));
        assert_eq!(book.list().len(), 2);
    }

    #[test]
    fn people_move_an_alert_along_its_timeline_and_a_closed_one_makes_room() {
        use lifecycle::Action;
        let mut book = AlertBook::default();
        let d = device("s1");
        book.open(opening(&d, None, "id-1", 10));
        book.act("id-1", Action::Acknowledge, "王芳", None, 20)
            .unwrap();
        let err = book
            .act("id-1", Action::Acknowledge, "李军", None, 25)
            .unwrap_err();
        assert!(matches!(err, ActError::Wrong(_)), "{err}");
        book.act("id-1", Action::OnSite, "王芳", None, 30).unwrap();
        assert!(matches!(
            book.open(opening(&d, None, "id-x", 35)),
            Fired::Repeated(_)
        ));
        let closed = book
            .act(
                "id-1",
                Action::Close,
                "王芳",
                Some("老人误按，已上门确认安全"),
                40,
            )
            .unwrap();
        assert_eq!(closed.state, State::Closed);
        assert_eq!(closed.closed.as_ref().unwrap().by, "王芳");
        let states: Vec<State> = closed.timeline.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [
                State::Firing,
                State::Acknowledged,
                State::OnSite,
                State::Closed
            ]
        );
        assert_eq!(closed.timeline[1].at_ms, 20);
        assert!(matches!(
            book.act("nope", Action::Close, "x", None, 50),
            Err(ActError::NotFound(_))
        ));
        assert!(matches!(
            book.open(opening(&d, None, "id-2", 60)),
            Fired::Opened(_)
        ));
        assert_eq!(book.get("id-1").unwrap().state, State::Closed);
    }

    #[test]
    fn an_unacknowledged_alert_climbs_its_chain_once_per_deadline_and_stops_when_taken() {
        let worker = |id: &str| {
            Arc::new(Worker {
                id: id.into(),
                name: id.into(),
                phone: None,
                reach: Vec::new(),
            })
        };
        let chain = vec![
            Some(worker("on-duty")),
            Some(worker("backup")),
            Some(worker("leader")),
        ];
        let mut book = AlertBook::default();
        let d = device("s1");
        book.open(opening(&d, None, "id-1", 0));
        assert!(book.escalate(59_999, |_| chain.clone()).is_empty());
        let up = book.escalate(60_000, |_| chain.clone());
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].0.escalation_level, 1);
        assert_eq!(up[0].0.assignee.as_ref().unwrap().id, "backup");
        assert!(
            book.escalate(90_000, |_| chain.clone()).is_empty(),
            "once per deadline"
        );
        assert_eq!(
            book.escalate(120_000, |_| chain.clone())[0]
                .0
                .escalation_level,
            2
        );
        assert!(
            book.escalate(600_000, |_| chain.clone()).is_empty(),
            "the chain ends"
        );

        book.open(opening(&device("s2"), None, "id-2", 0));
        book.act(
            "id-2",
            lifecycle::Action::Acknowledge,
            "on-duty",
            None,
            30_000,
        )
        .unwrap();
        assert!(
            book.escalate(60_000, |_| chain.clone()).is_empty(),
            "taken in time"
        );
        // Taken, but nobody there 30 minutes after: it goes up once per on-site deadline.
        let late_for = |book: &mut AlertBook, at| {
            book.escalate(at, |_| chain.clone())
                .into_iter()
                .filter(|(a, _)| a.alert_id == "id-2")
                .collect::<Vec<_>>()
        };
        assert!(late_for(&mut book, 1_829_999).is_empty());
        let late = late_for(&mut book, 1_830_000);
        assert_eq!(late[0].0.escalation_level, 1);
        let note = late[0].0.timeline.last().unwrap().note.clone().unwrap();
        assert!(note.contains("on site"), "{note}");
        assert!(
            late_for(&mut book, 1_900_000).is_empty(),
            "once per deadline"
        );
        book.act("id-2", lifecycle::Action::OnSite, "backup", None, 2_000_000)
            .unwrap();
        assert!(
            late_for(&mut book, 9_000_000).is_empty(),
            "someone is there"
        );
    }

    #[test]
    fn a_resolved_alert_makes_room_for_a_new_one() {
        let mut book = AlertBook::default();
        let d = device("s1");
        book.open(opening(&d, None, "id-1", 10));
        assert_eq!(
            book.cleared("s1", "sos_pressed", 15)
                .unwrap()
                .condition_cleared_at,
            Some(15)
        );
        let r = book.resolve("s1", "sos_pressed", 20).remove(0);
        assert_eq!((r.state, r.resolved_at), (State::Resolved, Some(20)));
        assert!(book.repeat("s1", "sos_pressed", 25).is_none());
        assert!(matches!(
            book.open(opening(&d, None, "id-2", 30)),
            Fired::Opened(_)
        ));
    }

    #[test]
    fn a_restored_book_knows_its_alerts_and_which_still_take_repeats() {
        use lifecycle::Action;
        let mut book = AlertBook::default();
        let (s1, s2, s3) = (device("s1"), device("s2"), device("s3"));
        book.open(opening(&s1, None, "id-1", 10));
        book.open(opening(&s2, None, "id-2", 10));
        book.open(opening(&s3, None, "id-3", 10));
        book.act("id-2", Action::Resolve, "王芳", None, 20).unwrap();
        book.act("id-3", Action::Close, "王芳", Some("ok"), 20)
            .unwrap();
        let changed = book.take_changes();
        assert_eq!(changed.len(), 3);
        assert!(book.take_changes().is_empty());
        let open: Vec<bool> = changed.iter().map(|k| k.open).collect();
        assert_eq!(
            open,
            [true, true, false],
            "a person's resolve still waits for a close"
        );

        let mut again = AlertBook::restore(book.kept_all(), Damping::default());
        assert!(
            matches!(again.open(opening(&s1, None, "id-1", 10)), Fired::Known(_)),
            "the journal run again after a restart opens nothing twice"
        );
        assert!(matches!(
            again.open(opening(&s1, None, "id-9", 30)),
            Fired::Repeated(_)
        ));
        assert!(matches!(
            again.open(opening(&s3, None, "id-10", 30)),
            Fired::Opened(_)
        ));
        assert_eq!(again.get("id-2").unwrap().state, State::Resolved);
    }

    #[test]
    fn alerts_long_over_are_forgotten_and_open_ones_never() {
        use lifecycle::Action;
        let mut book = AlertBook::default();
        let (s1, s2) = (device("s1"), device("s2"));
        book.open(opening(&s1, None, "old-open", 0));
        book.open(opening(&s2, None, "old-closed", 0));
        book.act("old-closed", Action::Close, "王芳", Some("ok"), 100)
            .unwrap();
        assert_eq!(book.prune(1_000, 1_000), 0, "not yet");
        assert_eq!(book.prune(1_101, 1_000), 1);
        assert!(book.get("old-closed").is_none());
        assert!(matches!(
            book.open(opening(&s1, None, "new", 2_000)),
            Fired::Repeated(_)
        ));
    }

    fn offline<'a>(d: &'a Device, id: &str, at: u64) -> Opening<'a> {
        Opening {
            rule: "device_offline",
            severity: Severity::Minor,
            needs_person: false,
            ack_deadline_ms: Some(60_000),
            ..opening(d, None, id, at)
        }
    }

    #[test]
    fn a_building_going_dark_is_one_storm_alert_that_ends_with_its_last_device() {
        let mut book = AlertBook::new(Damping::default());
        let devices: Vec<Device> = (0..200).map(|i| device(&format!("d{i}"))).collect();
        let mut paged = 0;
        let mut storms = Vec::new();
        for (i, d) in devices.iter().enumerate() {
            match book.open(offline(d, &format!("id-{i}"), 1_000 + i as u64)) {
                Fired::Opened(_) => paged += 1,
                Fired::Grouped { storm, new, .. } => {
                    if new {
                        paged += 1;
                        storms.push(storm.alert_id.clone());
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(storms.len(), 1, "one storm");
        assert_eq!(paged, 5, "four alone, then the storm instead of 196 more");
        let storm = book.get(&storms[0]).unwrap().clone();
        assert_eq!(storm.members.len(), 200);
        assert_eq!(storm.rule, "device_offline.storm");
        assert!(storm.message.contains("200台"), "{}", storm.message);
        assert!(book
            .get("id-0")
            .is_some_and(|a| a.grouped_into.as_deref() == Some(storms[0].as_str())));
        // Members escalate no more on their own: only the storm does.
        let up = book.escalate(70_000, |_| {
            vec![
                Some(Arc::new(Worker::with_webhook("a", "a", None))),
                Some(Arc::new(Worker::with_webhook("b", "b", None))),
            ]
        });
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].0.alert_id, storms[0]);

        for i in 0..199 {
            let ended = book.resolve(&format!("d{i}"), "device_offline", 90_000);
            assert_eq!(ended.len(), 1);
        }
        let ended = book.resolve("d199", "device_offline", 90_000);
        assert_eq!(ended.len(), 2, "the last one ends the storm");
        assert_eq!(ended[1].state, State::Resolved);
        // A storm an hour later is a new one.
        for (i, d) in devices.iter().take(5).enumerate() {
            book.open(offline(d, &format!("later-{i}"), 3_700_000));
        }
        assert_eq!(
            book.list().iter().filter(|a| !a.members.is_empty()).count(),
            2
        );
    }

    #[test]
    fn life_safety_alerts_are_never_grouped_or_damped() {
        let mut book = AlertBook::new(Damping::default());
        for i in 0..20 {
            let d = device(&format!("s{i}"));
            assert!(matches!(
                book.open(opening(&d, None, &format!("id-{i}"), 1_000)),
                Fired::Opened(ref a) if a.silenced_by.is_none()
            ));
        }
        // The same button pressed, closed and pressed again, ten times: it pages every time.
        let d = device("s0");
        book.act("id-0", lifecycle::Action::Close, "x", Some("n"), 2_000)
            .unwrap();
        for round in 1..=10u64 {
            let id = format!("again-{round}");
            let Fired::Opened(a) = book.open(opening(&d, None, &id, 2_000 + round)) else {
                panic!("a press after a close opens anew")
            };
            assert!(a.silenced_by.is_none(), "round {round}");
            book.act(&id, lifecycle::Action::Close, "x", Some("n"), 2_000 + round)
                .unwrap();
        }
    }

    #[test]
    fn a_flapping_condition_stops_paging_after_a_few_times_and_pages_again_once_settled() {
        let mut book = AlertBook::new(Damping::default());
        let d = device("w1");
        let mut silenced = Vec::new();
        for i in 0..6u64 {
            let Fired::Opened(a) = book.open(offline(&d, &format!("id-{i}"), i * 60_000)) else {
                panic!("opens")
            };
            silenced.push(a.silenced_by.is_some());
            book.resolve("w1", "device_offline", i * 60_000 + 30_000);
        }
        assert_eq!(silenced, [false, false, false, true, true, true]);
        let note = book.get("id-5").unwrap().silenced_by.clone().unwrap();
        assert!(note.starts_with("flapping"), "{note}");
        let Fired::Opened(a) = book.open(offline(&d, "calm", 6 * 60_000 + 31 * 60_000)) else {
            panic!("opens")
        };
        assert!(
            a.silenced_by.is_none(),
            "quiet for the window: it pages again"
        );

        // Flapping, then down for good: held back, and paged once it has stayed a window long.
        let d2 = device("w2");
        for i in 0..4u64 {
            book.open(offline(&d2, &format!("f-{i}"), i * 60_000));
            if i < 3 {
                book.resolve("w2", "device_offline", i * 60_000 + 30_000);
            }
        }
        assert!(book.get("f-3").unwrap().silenced_by.is_some());
        assert!(book.wake_flapping(3 * 60_000 + 29 * 60_000).is_empty());
        let woke = book.wake_flapping(3 * 60_000 + 30 * 60_000);
        assert_eq!(woke.len(), 1);
        assert!(woke[0].silenced_by.is_none());
        assert!(book.wake_flapping(99 * 60_000).is_empty(), "once");
    }

    #[test]
    fn a_storm_ends_only_when_everything_it_grouped_has_ended_closed_or_resolved() {
        let mut book = AlertBook::new(Damping::default());
        let devices: Vec<Device> = (0..8).map(|i| device(&format!("d{i}"))).collect();
        let mut storm_id = String::new();
        for (i, d) in devices.iter().enumerate() {
            if let Fired::Grouped { storm, .. } = book.open(offline(d, &format!("id-{i}"), 1_000)) {
                storm_id = storm.alert_id.clone();
            }
        }
        let storm = book.get(&storm_id).unwrap().clone();
        assert_eq!(storm.members.len(), 8);
        for i in 0..7 {
            book.resolve(&format!("d{i}"), "device_offline", 2_000);
        }
        assert_eq!(book.get(&storm_id).unwrap().state, State::Firing);
        book.act(
            "id-7",
            lifecycle::Action::Close,
            "王芳",
            Some("换了电池"),
            3_000,
        )
        .unwrap();
        assert_eq!(
            book.get(&storm_id).unwrap().state,
            State::Resolved,
            "a member closed by a person counts as ended"
        );
    }

    #[test]
    fn an_empty_level_is_passed_over_and_one_that_fills_later_is_not_lost() {
        let w = |id: &str| Some(Arc::new(Worker::with_webhook(id, id, None)));
        let mut book = AlertBook::default();
        let d = device("s1");
        book.open(opening(&d, None, "id-1", 0));
        // Nobody above the worker on duty at the first deadline: it waits.
        assert!(book
            .escalate(60_000, |_| vec![w("duty"), None, None])
            .is_empty());
        // The backup's shift starts: it goes up at once, and the next deadline still counts
        // from the opening.
        let up = book.escalate(75_000, |_| vec![w("duty"), w("backup"), None]);
        assert_eq!(up[0].0.escalation_level, 1);
        assert_eq!(
            up[0].1.len(),
            2,
            "the backup and the worker on duty hear of it"
        );
        assert!(book
            .escalate(119_999, |_| vec![w("duty"), w("backup"), w("leader")])
            .is_empty());
        // At the second deadline the backup's shift is over: straight to the leader, level 2.
        let up = book.escalate(120_000, |_| vec![w("duty"), None, w("leader")]);
        assert_eq!(up[0].0.escalation_level, 2);
        assert_eq!(up[0].0.assignee.as_ref().unwrap().id, "leader");
        let told: Vec<&str> = up[0].1.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(told, ["duty", "leader"]);
    }
}
