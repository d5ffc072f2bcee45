//! The rule engine: per-device state, fed messages and clock ticks, returning the alerts that
//! open, update, clear and resolve.
//!
//! Pure and deterministic: time is an argument, nothing reads a clock. Each device gets, once,
//! the list of rules whose selector matches it, so a message costs the rules that can match its
//! device and no others. State is kept only for rules that are doing something (a timer, a
//! window, an open alert), and can be saved and restored across a restart. Alert times are
//! derived from the data, not from when a tick happened to run (a `for` timer opens at the
//! instant it had held long enough), so replaying the same messages opens the same alerts.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::duration::show_ms;
use crate::expr::{Expr, Val, MAX_READINGS};
use crate::file::RuleSet;
use crate::rule::{Absence, AbsentFor, Direction, Rule, Trigger};
use crate::silence::Silence;

/// The longest rise/fall history kept per device and rule; older points drop first.
const MAX_SERIES: usize = 256;

/// The readings of a message, shared by every rule state and transition it caused.
pub type Readings = Arc<[(String, Val)]>;

/// A device as the rules see it: what selectors match against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device id.
    pub id: Arc<str>,
    /// Kind.
    pub kind: Arc<str>,
    /// Community id.
    pub community: Arc<str>,
    /// Building id.
    pub building: Arc<str>,
    /// Grid id.
    pub grid: Arc<str>,
    /// Registry tags (for example `living_alone`).
    pub tags: Vec<Arc<str>>,
    /// How often it reports when healthy, in milliseconds.
    pub report_every_ms: u64,
}

/// One message from a device.
#[derive(Clone, Copy, Debug)]
pub struct Msg<'a> {
    /// Device id.
    pub device: &'a str,
    /// The device's sequence number.
    pub seq: u64,
    /// When the gateway received it, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The event it reports, if any.
    pub event: Option<&'a str>,
    /// Its readings.
    pub data: &'a [(&'a str, Val)],
}

/// What happened to an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A new alert.
    Opened,
    /// The open alert's condition happened again (another press, another fault).
    Updated,
    /// The condition is over; the alert resolves itself.
    Resolved,
    /// The condition is over, but the rule needs a person to close the alert.
    Cleared,
}

/// One change to one device's alert for one rule, with the evidence behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// Index of the rule in the engine's rules.
    pub rule: usize,
    /// Device id.
    pub device: Arc<str>,
    /// What happened.
    pub change: Change,
    /// When it happened.
    pub at_ms: u64,
    /// When the alert opened: with `device`, `seq` and the rule, it identifies the alert.
    pub opened_ms: u64,
    /// Sequence number of the message that opened it (0 for absence alerts).
    pub seq: u64,
    /// The readings of the message behind this change.
    pub values: Readings,
    /// Why, in plain words: the comparisons, the timer, the window.
    pub why: Vec<String>,
    /// The maintenance window that keeps this from paging anyone, if one does.
    pub silenced_by: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    #[default]
    Idle,
    Pending,
    Firing,
    Latched,
    /// A person closed an absence alert: it opens again only after the device is heard from.
    Closed,
}

/// One rule's memory for one device.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Slot {
    #[serde(skip)]
    rule: u32,
    #[serde(default, skip_serializing_if = "Phase::is_idle")]
    phase: Phase,
    #[serde(default, skip_serializing_if = "is_zero")]
    since_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    seq: u64,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    values: Readings,
    #[serde(default, skip_serializing_if = "Memory::is_none")]
    memory: Memory,
}

/// What a rule remembers of a device between messages, by trigger; one of them, so a rule state
/// stays small (72 bytes) with 100,000 devices each holding one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Memory {
    #[default]
    None,
    /// The times of the last events, for `count`.
    Times(Vec<u64>),
    /// A monotonic queue of (time, value) whose first is the window's lowest (rise) or highest
    /// (fall) value, for `rise` and `fall`.
    Series(Vec<(u64, f64)>),
    /// The reading's last value and when it changed, for `absent.change`.
    Last { value: Val, changed_ms: u64 },
}

impl Phase {
    fn is_idle(&self) -> bool {
        *self == Phase::Idle
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Memory {
    fn is_none(&self) -> bool {
        *self == Memory::None
    }
}

impl Slot {
    fn idle(&self) -> bool {
        self.phase == Phase::Idle && self.memory.is_none()
    }

    fn times(&mut self) -> &mut Vec<u64> {
        if !matches!(self.memory, Memory::Times(_)) {
            self.memory = Memory::Times(Vec::new());
        }
        match &mut self.memory {
            Memory::Times(t) => t,
            _ => unreachable!("set above"),
        }
    }

    fn series(&mut self) -> &mut Vec<(u64, f64)> {
        if !matches!(self.memory, Memory::Series(_)) {
            self.memory = Memory::Series(Vec::new());
        }
        match &mut self.memory {
            Memory::Series(s) => s,
            _ => unreachable!("set above"),
        }
    }

    fn times_ref(&self) -> &[u64] {
        match &self.memory {
            Memory::Times(t) => t,
            _ => &[],
        }
    }

    fn last(&self) -> Option<(Val, u64)> {
        match self.memory {
            Memory::Last { value, changed_ms } => Some((value, changed_ms)),
            _ => None,
        }
    }
}

/// What the engine keeps of a device once its rules are chosen, 64 bytes: 100,000 devices cost
/// six megabytes.
#[derive(Debug)]
struct DeviceState {
    id: Arc<str>,
    /// Index of its building in the engine's `places`.
    building: u32,
    /// Index of its grid in the engine's `places`.
    grid: u32,
    report_every_s: u32,
    /// Index in the engine's `lists` of the rules that select it, shared by every device that
    /// the same rules select.
    list: u32,
    last_seen_ms: u64,
    slots: Vec<Slot>,
}

/// The rule's slot, made if it has none. Slots stay sorted by rule, so finding one is a binary
/// search however many rules a device has.
fn slot_of(slots: &mut Vec<Slot>, rule: u32) -> &mut Slot {
    match slots.binary_search_by_key(&rule, |s| s.rule) {
        Ok(i) => &mut slots[i],
        Err(i) => {
            // Grown one at a time: most devices hold one slot or none.
            slots.reserve_exact(1);
            slots.insert(
                i,
                Slot {
                    rule,
                    ..Slot::default()
                },
            );
            &mut slots[i]
        }
    }
}

/// The rule's slot, if it has one.
fn find_slot(slots: &mut [Slot], rule: u32) -> Option<&mut Slot> {
    let i = slots.binary_search_by_key(&rule, |s| s.rule).ok()?;
    Some(&mut slots[i])
}

impl DeviceState {
    fn tidy(&mut self) {
        let before = self.slots.len();
        self.slots.retain(|s| !s.idle());
        if self.slots.len() < before {
            self.slots.shrink_to_fit();
        }
    }
}

/// Saved engine state: what a restarted gateway needs to carry on (timers, windows, open alerts).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Per device.
    pub devices: Vec<DeviceSnapshot>,
}

/// One device's saved state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceSnapshot {
    /// Device id.
    pub id: String,
    /// When it was last heard from.
    pub last_seen_ms: u64,
    /// Per rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSnapshot>,
}

/// One rule's saved state for one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleSnapshot {
    /// Rule name.
    pub rule: String,
    /// The rule's fingerprint when saved: state of an edited rule is dropped.
    pub fingerprint: u64,
    #[serde(flatten)]
    slot: Slot,
}

/// [`Snapshot`] of every device, borrowed from the engine.
struct SnapshotView<'a> {
    engine: &'a Engine,
}

impl Serialize for SnapshotView<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = ser.serialize_struct("Snapshot", 1)?;
        st.serialize_field("devices", &DevicesView(self.engine))?;
        st.end()
    }
}

struct DevicesView<'a>(&'a Engine);

impl Serialize for DevicesView<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let engine = self.0;
        ser.collect_seq(engine.devices.iter().map(|dev| DeviceView {
            id: &dev.id,
            last_seen_ms: dev.last_seen_ms,
            rules: RulesView { engine, dev },
        }))
    }
}

#[derive(Serialize)]
struct DeviceView<'a> {
    id: &'a str,
    last_seen_ms: u64,
    #[serde(skip_serializing_if = "RulesView::is_empty")]
    rules: RulesView<'a>,
}

struct RulesView<'a> {
    engine: &'a Engine,
    dev: &'a DeviceState,
}

impl RulesView<'_> {
    fn is_empty(&self) -> bool {
        self.dev.slots.is_empty()
    }
}

impl Serialize for RulesView<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.dev.slots.iter().map(|slot| {
            let rule = &self.engine.rules[slot.rule as usize];
            RuleView {
                rule: &rule.name,
                fingerprint: rule.fingerprint,
                slot,
            }
        }))
    }
}

#[derive(Serialize)]
struct RuleView<'a> {
    rule: &'a str,
    fingerprint: u64,
    #[serde(flatten)]
    slot: &'a Slot,
}

/// An alert the engine holds open, as listed by [`Engine::open_alerts`].
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAlert {
    /// Index of the rule.
    pub rule: usize,
    /// Device id.
    pub device: Arc<str>,
    /// When it opened.
    pub opened_ms: u64,
    /// Sequence number of the message that opened it.
    pub seq: u64,
    /// Whether its condition cleared and it waits for a person to close it.
    pub cleared: bool,
    /// The readings of the message that opened it.
    pub values: Readings,
}

/// The rule engine.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    utc_offset_min: i32,
    /// Sorted by id: found by binary search, visited by ticks in the same order on every run.
    devices: Vec<DeviceState>,
    /// The distinct lists of rules that select a device.
    lists: Vec<Box<[u32]>>,
    /// Building and grid ids, for maintenance windows.
    places: Vec<Arc<str>>,
    silences: Vec<Silence>,
}

impl Engine {
    /// An engine for `rules` watching `devices`, which count as last heard from at `now_ms`.
    pub fn new(rules: RuleSet, devices: impl IntoIterator<Item = DeviceInfo>, now_ms: u64) -> Self {
        let mut engine = Engine {
            rules: rules.rules,
            utc_offset_min: rules.utc_offset_min,
            devices: Vec::new(),
            lists: Vec::new(),
            places: Vec::new(),
            silences: Vec::new(),
        };
        let mut lists = HashMap::new();
        let mut places = HashMap::new();
        let devices = devices.into_iter();
        engine.devices.reserve_exact(devices.size_hint().0);
        for info in devices {
            let state = engine.state(info, now_ms, &mut lists, &mut places);
            engine.devices.push(state);
        }
        engine.devices.sort_by(|a, b| a.id.cmp(&b.id));
        engine
            .devices
            .dedup_by(|later, earlier| later.id == earlier.id);
        engine.devices.shrink_to_fit();
        engine
    }

    fn state(
        &mut self,
        info: DeviceInfo,
        now_ms: u64,
        lists: &mut HashMap<Box<[u32]>, u32>,
        places: &mut HashMap<Arc<str>, u32>,
    ) -> DeviceState {
        let list: Box<[u32]> = (0..self.rules.len() as u32)
            .filter(|r| selects(&self.rules[*r as usize], &info))
            .collect();
        let list = *lists.entry(list).or_insert_with_key(|l| {
            self.lists.push(l.clone());
            (self.lists.len() - 1) as u32
        });
        let mut place = |p: Arc<str>| {
            *places.entry(p).or_insert_with_key(|p| {
                self.places.push(p.clone());
                (self.places.len() - 1) as u32
            })
        };
        DeviceState {
            id: info.id,
            building: place(info.building),
            grid: place(info.grid),
            report_every_s: u32::try_from(info.report_every_ms / 1000).unwrap_or(u32::MAX),
            list,
            last_seen_ms: now_ms,
            slots: Vec::new(),
        }
    }

    fn device(&self, id: &str) -> Option<usize> {
        self.devices.binary_search_by(|d| (*d.id).cmp(id)).ok()
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The index of the rule named `name`.
    pub fn rule_index(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.name == name)
    }

    /// Replaces the maintenance windows.
    pub fn set_silences(&mut self, silences: Vec<Silence>) {
        self.silences = silences;
    }

    /// The maintenance windows.
    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    /// Runs one message through the rules that select its device, appending what changed to
    /// `out`. Messages from devices the engine does not know are ignored.
    pub fn observe(&mut self, msg: &Msg<'_>, out: &mut Vec<Transition>) {
        let Some(d) = self.device(msg.device) else {
            return;
        };
        let dev = &mut self.devices[d];
        let start = out.len();
        let mut cache = None;
        for &r in self.lists[dev.list as usize].iter() {
            let rule = &self.rules[r as usize];
            on_message(rule, r, dev, msg, self.utc_offset_min, &mut cache, out);
        }
        dev.last_seen_ms = dev.last_seen_ms.max(msg.at_ms);
        dev.tidy();
        if !self.silences.is_empty() && out.len() > start {
            let dev = &self.devices[d];
            for t in &mut out[start..] {
                t.silenced_by = silenced(&self.silences, &self.places, dev, t.at_ms);
            }
        }
    }

    /// Advances timers to `now_ms`: `for` conditions that have now held long enough, absences,
    /// and count windows that have emptied.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Transition>) {
        let start = out.len();
        for dev in &mut self.devices {
            for &r in self.lists[dev.list as usize].iter() {
                let rule = &self.rules[r as usize];
                on_tick(rule, r, dev, now_ms, self.utc_offset_min, out);
            }
            dev.tidy();
        }
        if !self.silences.is_empty() {
            for t in &mut out[start..] {
                if let Some(d) = self.device(&t.device) {
                    t.silenced_by =
                        silenced(&self.silences, &self.places, &self.devices[d], t.at_ms);
                }
            }
        }
    }

    /// The gateway was not listening until `now_ms` (a restart): devices count as heard from
    /// then, so its own downtime does not read as every device going offline.
    pub fn resume(&mut self, now_ms: u64) {
        for dev in &mut self.devices {
            dev.last_seen_ms = dev.last_seen_ms.max(now_ms);
        }
    }

    /// A person closed the alert of `rule` on `device`: the next occurrence opens a new one.
    pub fn close(&mut self, device: &str, rule: usize) {
        if let Some(d) = self.device(device) {
            let dev = &mut self.devices[d];
            let absence = matches!(
                self.rules.get(rule).map(|r| &r.trigger),
                Some(Trigger::Absent { .. })
            );
            if let Some(slot) = dev.slots.iter_mut().find(|s| s.rule as usize == rule) {
                if matches!(slot.phase, Phase::Firing | Phase::Latched) {
                    // An absence alert would open again at once: the device is still silent.
                    slot.phase = if absence { Phase::Closed } else { Phase::Idle };
                    slot.values = Readings::default();
                    slot.memory = Memory::None;
                }
            }
            dev.tidy();
        }
    }

    /// Every alert the engine holds open.
    pub fn open_alerts(&self) -> Vec<OpenAlert> {
        let mut out = Vec::new();
        for dev in &self.devices {
            for s in &dev.slots {
                if matches!(s.phase, Phase::Firing | Phase::Latched) {
                    out.push(OpenAlert {
                        rule: s.rule as usize,
                        device: dev.id.clone(),
                        opened_ms: s.since_ms,
                        seq: s.seq,
                        cleared: s.phase == Phase::Latched,
                        values: s.values.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (a.opened_ms, &a.device).cmp(&(b.opened_ms, &b.device)));
        out
    }

    /// The community's offset from UTC in minutes, for times of day.
    pub fn utc_offset_min(&self) -> i32 {
        self.utc_offset_min
    }

    /// How many device and rule pairs hold a timer, a window or an open alert.
    pub fn active(&self) -> usize {
        self.devices.iter().map(|d| d.slots.len()).sum()
    }

    /// [`Engine::snapshot`] without building it, for saving: it serializes to the same form,
    /// read back as a [`Snapshot`], and costs no memory beyond the output however many devices
    /// there are.
    pub fn view(&self) -> impl Serialize + '_ {
        SnapshotView { engine: self }
    }

    /// Every device's state, its last-heard time included: replaying the journal after a
    /// restart needs to know how long each device had been quiet.
    pub fn snapshot(&self) -> Snapshot {
        let devices = self
            .devices
            .iter()
            .map(|dev| DeviceSnapshot {
                id: dev.id.to_string(),
                last_seen_ms: dev.last_seen_ms,
                rules: dev
                    .slots
                    .iter()
                    .map(|s| {
                        let rule = &self.rules[s.rule as usize];
                        RuleSnapshot {
                            rule: rule.name.clone(),
                            fingerprint: rule.fingerprint,
                            slot: s.clone(),
                        }
                    })
                    .collect(),
            })
            .collect();
        Snapshot { devices }
    }

    /// Puts saved state back: devices and rules that no longer exist, rules whose text changed
    /// and rules that no longer select the device are skipped. Returns how many rule states
    /// were restored.
    pub fn restore(&mut self, snapshot: &Snapshot) -> usize {
        let mut restored = 0;
        for saved in &snapshot.devices {
            let Some(d) = self.device(&saved.id) else {
                continue;
            };
            let dev = &mut self.devices[d];
            dev.last_seen_ms = saved.last_seen_ms;
            dev.slots.clear();
            for rs in &saved.rules {
                let Some(r) = self.rules.iter().position(|r| r.name == rs.rule) else {
                    continue;
                };
                if self.rules[r].fingerprint != rs.fingerprint
                    || !self.lists[dev.list as usize].contains(&(r as u32))
                {
                    continue;
                }
                dev.slots.push(Slot {
                    rule: r as u32,
                    ..rs.slot.clone()
                });
                restored += 1;
            }
            dev.slots.sort_by_key(|s| s.rule);
        }
        restored
    }

    /// Why `rule` has or has not opened an alert for `info`'s device at `now_ms`, in plain words.
    pub fn explain(&self, info: &DeviceInfo, rule: &str, now_ms: u64) -> Vec<String> {
        let device = &*info.id;
        let Some(r) = self.rule_index(rule) else {
            return vec![format!("there is no rule `{rule}`")];
        };
        let rule = &self.rules[r];
        if !selects(rule, info) {
            return vec![format!(
                "rule `{}` does not select device `{device}`: {}",
                rule.name,
                mismatch(rule, info)
            )];
        }
        let Some(dev) = self.device(device).map(|d| &self.devices[d]) else {
            return vec![format!("the rule engine does not watch device `{device}`")];
        };
        let mut out = Vec::new();
        if let Some(s) = silenced(&self.silences, &self.places, dev, now_ms) {
            let s = self
                .silences
                .iter()
                .find(|x| x.id == s)
                .expect("found above");
            out.push(format!(
                "silenced by `{}` ({}, set by {}) until {}",
                s.id, s.reason, s.by, s.until_ms
            ));
        }
        if let Some(w) = rule.during {
            let m = minute_of_day(now_ms, self.utc_offset_min);
            if !w.contains(m) {
                out.push(format!(
                    "outside its hours {:02}:{:02}-{:02}:{:02}",
                    w.start / 60,
                    w.start % 60,
                    w.end / 60,
                    w.end % 60
                ));
            }
        }
        let slot = dev.slots.iter().find(|s| s.rule as usize == r);
        let phase = slot.map_or(Phase::Idle, |s| s.phase);
        match phase {
            Phase::Firing => out.push(format!("firing since {}", slot.map_or(0, |s| s.since_ms))),
            Phase::Latched => {
                out.push("its condition cleared; the alert waits for a person to close it".into())
            }
            Phase::Pending => {
                let s = slot.expect("pending has a slot");
                if let Trigger::Condition { hold_ms, .. } = &rule.trigger {
                    out.push(format!(
                        "the condition has held for {} of the {} it needs",
                        show_ms(now_ms.saturating_sub(s.since_ms)),
                        show_ms(*hold_ms)
                    ));
                }
            }
            Phase::Closed => out.push(
                "a person closed its alert; it opens again only after the device is heard from"
                    .into(),
            ),
            Phase::Idle => {}
        }
        match &rule.trigger {
            Trigger::Condition { when, .. } => {
                if let Some(s) = slot.filter(|s| !s.values.is_empty()) {
                    if let Some(values) = gather(when, &s.values[..]) {
                        out.extend(when.explain(&values));
                    }
                } else if phase == Phase::Idle {
                    out.push(format!(
                        "the condition `{}` was false (or its readings missing) at the last message, received at {}",
                        when.readings().join(", "),
                        dev.last_seen_ms
                    ));
                }
            }
            Trigger::Event { event, count, .. } => match count {
                Some(c) => out.push(format!(
                    "{} `{event}` in the last {}; it needs {}",
                    slot.map_or(0, |s| s
                        .times_ref()
                        .iter()
                        .filter(|t| **t + c.within_ms > now_ms)
                        .count()),
                    show_ms(c.within_ms),
                    c.at_least
                )),
                None if phase == Phase::Idle => {
                    out.push(format!("no `{event}` since the alert was last closed"))
                }
                None => {}
            },
            Trigger::Change {
                reading,
                by,
                within_ms,
                ..
            } => {
                let points = slot.map_or(0, |s| match &s.memory {
                    Memory::Series(v) => v.len(),
                    _ => 0,
                });
                out.push(format!(
                    "{points} values of `{reading}` in the last {}; it opens on a change of {by}",
                    show_ms(*within_ms)
                ));
            }
            Trigger::Absent { what, after } => {
                let limit = absent_limit(after, dev.report_every_s);
                let since = match what {
                    Absence::Messages => dev.last_seen_ms,
                    Absence::Change(_) => slot
                        .and_then(Slot::last)
                        .map_or(dev.last_seen_ms, |(_, changed)| changed),
                };
                out.push(format!(
                    "quiet for {} of the {} it allows",
                    show_ms(now_ms.saturating_sub(since)),
                    show_ms(limit)
                ));
            }
        }
        out
    }
}

fn silenced(
    silences: &[Silence],
    places: &[Arc<str>],
    dev: &DeviceState,
    at_ms: u64,
) -> Option<String> {
    let (building, grid) = (&places[dev.building as usize], &places[dev.grid as usize]);
    silences
        .iter()
        .find(|s| s.covers(&dev.id, building, grid, at_ms))
        .map(|s| s.id.clone())
}

fn listed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v == value)
}

fn selects(rule: &Rule, d: &DeviceInfo) -> bool {
    let s = &rule.select;
    listed(&s.kinds, &d.kind)
        && listed(&s.communities, &d.community)
        && listed(&s.buildings, &d.building)
        && listed(&s.grids, &d.grid)
        && listed(&s.devices, &d.id)
        && s.tags.iter().all(|t| d.tags.iter().any(|x| **x == **t))
}

fn mismatch(rule: &Rule, d: &DeviceInfo) -> String {
    let s = &rule.select;
    let checks: [(&str, &[String], &str); 5] = [
        ("kind", &s.kinds, &d.kind),
        ("community", &s.communities, &d.community),
        ("building", &s.buildings, &d.building),
        ("grid", &s.grids, &d.grid),
        ("device", &s.devices, &d.id),
    ];
    for (field, list, value) in checks {
        if !listed(list, value) {
            return format!(
                "it selects {field} {}, the device's is `{value}`",
                list.join("/")
            );
        }
    }
    format!("it needs the tags {}", s.tags.join(", "))
}

fn minute_of_day(ms: u64, offset_min: i32) -> u32 {
    ((ms / 60_000) as i64 + i64::from(offset_min)).rem_euclid(1440) as u32
}

fn in_hours(rule: &Rule, at_ms: u64, offset_min: i32) -> bool {
    rule.during
        .is_none_or(|w| w.contains(minute_of_day(at_ms, offset_min)))
}

/// The first instant at or after `t` inside the rule's hours: when a timer that ran out at `t`
/// opens its alert, whenever the clock happens to tick.
fn next_in_hours(rule: &Rule, t: u64, offset_min: i32) -> u64 {
    let Some(w) = rule.during else { return t };
    let m = minute_of_day(t, offset_min);
    if w.contains(m) {
        return t;
    }
    let wait = u64::from((w.start + 1440 - m) % 1440);
    t - t % 60_000 + wait * 60_000
}

/// When `limit` of time inside the rule's hours has passed since `from` (all time counts
/// without hours): a night's sleep is not inactivity, and yesterday's quiet hours count.
fn reached(rule: &Rule, from: u64, limit: u64, offset_min: i32) -> u64 {
    let Some(w) = rule.during else {
        return from.saturating_add(limit);
    };
    let (mut t, mut left) = (from, limit);
    // Each turn uses up one day's window; limits are at most 30 days, windows never empty.
    for _ in 0..400 {
        t = next_in_hours(rule, t, offset_min);
        let m = minute_of_day(t, offset_min);
        let window_end = t - t % 60_000 + u64::from((w.end + 1440 - m) % 1440) * 60_000;
        let available = window_end - t;
        if left <= available {
            return t + left;
        }
        left -= available;
        t = window_end;
    }
    u64::MAX
}

fn absent_limit(after: &AbsentFor, report_every_s: u32) -> u64 {
    match after {
        AbsentFor::Ms(ms) => *ms,
        AbsentFor::Intervals(n) => u64::from(*n) * u64::from(report_every_s) * 1000,
    }
}

/// A condition's values, on the stack: evaluating allocates nothing.
struct Values {
    buf: [Val; MAX_READINGS],
    len: usize,
}

impl std::ops::Deref for Values {
    type Target = [Val];

    fn deref(&self) -> &[Val] {
        &self.buf[..self.len]
    }
}

/// The values of an expression's readings in `data`, in its order; `None` if one is missing.
fn gather<S: AsRef<str>>(e: &Expr, data: &[(S, Val)]) -> Option<Values> {
    let mut values = Values {
        buf: [Val::Bool(false); MAX_READINGS],
        len: 0,
    };
    for r in e.readings() {
        let (_, v) = data.iter().find(|(n, _)| n.as_ref() == r)?;
        *values.buf.get_mut(values.len)? = *v;
        values.len += 1;
    }
    Some(values)
}

/// The message's readings as [`Readings`], made once per message however many rules keep them.
fn shared(cache: &mut Option<Readings>, data: &[(&str, Val)]) -> Readings {
    cache
        .get_or_insert_with(|| data.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect())
        .clone()
}

struct Emit<'a> {
    rule: usize,
    device: &'a Arc<str>,
    needs_person: bool,
}

impl Emit<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        out: &mut Vec<Transition>,
        change: Change,
        at_ms: u64,
        slot: &Slot,
        values: Readings,
        why: Vec<String>,
    ) {
        out.push(Transition {
            rule: self.rule,
            device: self.device.clone(),
            change,
            at_ms,
            opened_ms: slot.since_ms,
            seq: slot.seq,
            values,
            why,
            silenced_by: None,
        });
    }

    /// The condition is over: resolve, or latch until a person closes it.
    fn end(
        &self,
        out: &mut Vec<Transition>,
        slot: &mut Slot,
        at_ms: u64,
        values: Readings,
        why: Vec<String>,
    ) {
        let change = if self.needs_person {
            Change::Cleared
        } else {
            Change::Resolved
        };
        self.push(out, change, at_ms, slot, values, why);
        slot.phase = if self.needs_person {
            Phase::Latched
        } else {
            Phase::Idle
        };
        if !self.needs_person {
            slot.values = Readings::default();
        }
    }
}

fn on_message(
    rule: &Rule,
    r: u32,
    dev: &mut DeviceState,
    msg: &Msg<'_>,
    offset: i32,
    cache: &mut Option<Readings>,
    out: &mut Vec<Transition>,
) {
    let DeviceState { id, slots, .. } = dev;
    let emit = Emit {
        rule: r as usize,
        device: id,
        needs_person: rule.needs_person,
    };
    let hours = in_hours(rule, msg.at_ms, offset);
    match &rule.trigger {
        Trigger::Condition {
            when,
            hold_ms,
            clear,
        } => {
            // A timer that ran out before this message opens first: the condition held until now.
            if let Some(slot) = find_slot(slots, r).filter(|s| s.phase == Phase::Pending) {
                let opens = next_in_hours(rule, slot.since_ms + hold_ms, offset);
                if msg.at_ms >= opens {
                    open_pending(&emit, when, *hold_ms, slot, msg.at_ms, opens, out);
                }
            }
            let Some(values) = gather(when, msg.data) else {
                // A message without the readings says nothing about the condition.
                if let (Some(c), Some(slot)) = (clear, find_slot(slots, r)) {
                    if slot.phase == Phase::Firing {
                        if let Some(cv) = gather(c, msg.data).filter(|cv| c.eval(cv)) {
                            emit.end(
                                out,
                                slot,
                                msg.at_ms,
                                shared(cache, msg.data),
                                c.explain(&cv),
                            );
                        }
                    }
                }
                return;
            };
            let held = when.eval(&values);
            let slot = slot_of(slots, r);
            match slot.phase {
                Phase::Idle | Phase::Pending if held => {
                    if slot.phase == Phase::Idle {
                        slot.phase = Phase::Pending;
                        slot.since_ms = msg.at_ms;
                        slot.seq = msg.seq;
                    }
                    slot.values = shared(cache, msg.data);
                    let opens = next_in_hours(rule, slot.since_ms + hold_ms, offset);
                    if msg.at_ms >= opens {
                        let mut why = when.explain(&values);
                        if *hold_ms > 0 {
                            why.push(format!(
                                "held for {} (for = {})",
                                show_ms(msg.at_ms.saturating_sub(slot.since_ms)),
                                show_ms(*hold_ms)
                            ));
                        }
                        slot.phase = Phase::Firing;
                        slot.since_ms = opens;
                        emit.push(
                            out,
                            Change::Opened,
                            msg.at_ms,
                            slot,
                            slot.values.clone(),
                            why,
                        );
                    }
                }
                Phase::Pending => {
                    slot.phase = Phase::Idle;
                    slot.values = Readings::default();
                }
                Phase::Firing => {
                    let cleared = match clear {
                        None => Some(!held).filter(|c| *c).map(|_| when.explain(&values)),
                        Some(c) => gather(c, msg.data)
                            .filter(|cv| c.eval(cv))
                            .map(|cv| c.explain(&cv)),
                    };
                    if let Some(why) = cleared {
                        emit.end(out, slot, msg.at_ms, shared(cache, msg.data), why);
                    }
                }
                Phase::Latched if held => {
                    // Back while it waits for a person: the same alert, firing again.
                    slot.phase = Phase::Firing;
                    let why = when.explain(&values);
                    emit.push(
                        out,
                        Change::Updated,
                        msg.at_ms,
                        slot,
                        shared(cache, msg.data),
                        why,
                    );
                }
                Phase::Idle | Phase::Latched | Phase::Closed => {}
            }
        }
        Trigger::Event {
            event,
            filter,
            clear_event,
            count,
        } => {
            if msg.event == Some(event.as_str()) {
                let why_filter = match filter {
                    None => Some(Vec::new()),
                    Some(f) => gather(f, msg.data)
                        .filter(|v| f.eval(v))
                        .map(|v| f.explain(&v)),
                };
                let Some(mut why) = why_filter else { return };
                let slot = slot_of(slots, r);
                let enough = match count {
                    None => true,
                    Some(c) => {
                        let times = slot.times();
                        times.reserve_exact(1);
                        times.push(msg.at_ms);
                        if times.len() > c.at_least as usize {
                            times.remove(0);
                        }
                        let first = times[0];
                        let enough = times.len() >= c.at_least as usize
                            && msg.at_ms.saturating_sub(first) < c.within_ms;
                        if enough {
                            why.push(format!(
                                "{} times `{event}` within {}",
                                c.at_least,
                                show_ms(msg.at_ms.saturating_sub(first))
                            ));
                        }
                        enough
                    }
                };
                if !enough {
                    return;
                }
                why.insert(0, format!("the device reported `{event}`"));
                match slot.phase {
                    Phase::Firing | Phase::Latched => {
                        slot.phase = Phase::Firing;
                        emit.push(
                            out,
                            Change::Updated,
                            msg.at_ms,
                            slot,
                            shared(cache, msg.data),
                            why,
                        );
                    }
                    _ if hours => {
                        slot.phase = Phase::Firing;
                        slot.since_ms = msg.at_ms;
                        slot.seq = msg.seq;
                        slot.values = shared(cache, msg.data);
                        emit.push(
                            out,
                            Change::Opened,
                            msg.at_ms,
                            slot,
                            slot.values.clone(),
                            why,
                        );
                    }
                    _ => {}
                }
            } else if clear_event.is_some() && msg.event == clear_event.as_deref() {
                if let Some(slot) = find_slot(slots, r).filter(|s| s.phase == Phase::Firing) {
                    let why = vec![format!(
                        "the device reported `{}`",
                        msg.event.unwrap_or_default()
                    )];
                    emit.end(out, slot, msg.at_ms, shared(cache, msg.data), why);
                }
            }
        }
        Trigger::Change {
            reading,
            direction,
            by,
            within_ms,
        } => {
            let Some(Val::Num(v)) = msg.data.iter().find(|(n, _)| n == reading).map(|(_, v)| *v)
            else {
                return;
            };
            let slot = slot_of(slots, r);
            let rise = *direction == Direction::Rise;
            // A monotonic queue: its front is the window's lowest (rise) or highest (fall) value.
            let series = slot.series();
            while series
                .last()
                .is_some_and(|(_, b)| if rise { *b >= v } else { *b <= v })
            {
                series.pop();
            }
            series.reserve_exact(1);
            series.push((msg.at_ms, v));
            let stale = series
                .iter()
                .take_while(|(t, _)| t + within_ms < msg.at_ms)
                .count()
                .max(series.len().saturating_sub(MAX_SERIES));
            series.drain(..stale);
            let (t0, v0) = series[0];
            let moved = if rise { v - v0 } else { v0 - v };
            // Written only when something changes: this runs on every message with the reading.
            let why = || {
                vec![format!(
                    "{reading} went from {v0} to {v} in {} ({} by {by} within {})",
                    show_ms(msg.at_ms.saturating_sub(t0)),
                    if rise { "rise" } else { "fall" },
                    show_ms(*within_ms)
                )]
            };
            match slot.phase {
                Phase::Idle | Phase::Pending if moved >= *by && hours => {
                    slot.phase = Phase::Firing;
                    slot.since_ms = msg.at_ms;
                    slot.seq = msg.seq;
                    slot.values = shared(cache, msg.data);
                    emit.push(
                        out,
                        Change::Opened,
                        msg.at_ms,
                        slot,
                        slot.values.clone(),
                        why(),
                    );
                }
                Phase::Firing if moved < *by => {
                    emit.end(out, slot, msg.at_ms, shared(cache, msg.data), why())
                }
                Phase::Latched if moved >= *by => {
                    slot.phase = Phase::Firing;
                    emit.push(
                        out,
                        Change::Updated,
                        msg.at_ms,
                        slot,
                        shared(cache, msg.data),
                        why(),
                    );
                }
                _ => {}
            }
        }
        Trigger::Absent { what, .. } => {
            let changed = match what {
                Absence::Messages => true,
                Absence::Change(reading) => {
                    let Some(v) = msg.data.iter().find(|(n, _)| n == reading).map(|(_, v)| *v)
                    else {
                        return;
                    };
                    let slot = slot_of(slots, r);
                    let changed = slot.last().map(|(last, _)| last) != Some(v);
                    if changed {
                        slot.memory = Memory::Last {
                            value: v,
                            changed_ms: msg.at_ms,
                        };
                    }
                    changed
                }
            };
            if changed {
                if let Some(slot) = find_slot(slots, r).filter(|s| s.phase == Phase::Closed) {
                    // Heard from again: the next silence may open a new alert.
                    slot.phase = Phase::Idle;
                }
                if let Some(slot) = find_slot(slots, r).filter(|s| s.phase == Phase::Firing) {
                    let why = match what {
                        Absence::Messages => "the device reported again".to_string(),
                        Absence::Change(r) => format!("`{r}` changed"),
                    };
                    emit.end(out, slot, msg.at_ms, shared(cache, msg.data), vec![why]);
                }
            }
        }
    }
}

fn open_pending(
    emit: &Emit<'_>,
    when: &Expr,
    hold_ms: u64,
    slot: &mut Slot,
    at_ms: u64,
    opened_ms: u64,
    out: &mut Vec<Transition>,
) {
    let mut why = gather(when, &slot.values[..])
        .map(|v| when.explain(&v))
        .unwrap_or_default();
    why.push(format!(
        "held for {} with no message saying otherwise (for = {})",
        show_ms(opened_ms.saturating_sub(slot.since_ms)),
        show_ms(hold_ms)
    ));
    slot.phase = Phase::Firing;
    slot.since_ms = opened_ms;
    emit.push(out, Change::Opened, at_ms, slot, slot.values.clone(), why);
}

fn on_tick(
    rule: &Rule,
    r: u32,
    dev: &mut DeviceState,
    now: u64,
    offset: i32,
    out: &mut Vec<Transition>,
) {
    let DeviceState {
        id,
        slots,
        last_seen_ms,
        report_every_s,
        ..
    } = dev;
    let emit = Emit {
        rule: r as usize,
        device: id,
        needs_person: rule.needs_person,
    };
    match &rule.trigger {
        Trigger::Condition { when, hold_ms, .. } => {
            let Some(slot) = find_slot(slots, r).filter(|s| s.phase == Phase::Pending) else {
                return;
            };
            // The instant it had held long enough (or its hours began after that), whenever the
            // clock happens to tick: a replay opens the same alert.
            let opens = next_in_hours(rule, slot.since_ms + hold_ms, offset);
            if now >= opens {
                open_pending(&emit, when, *hold_ms, slot, now, opens, out);
            }
        }
        Trigger::Event {
            event,
            count: Some(c),
            ..
        } => {
            let Some(slot) = find_slot(slots, r) else {
                return;
            };
            if let Memory::Times(times) = &mut slot.memory {
                times.retain(|t| t + c.within_ms > now);
                if times.is_empty() {
                    slot.memory = Memory::None;
                }
            }
            if slot.phase == Phase::Firing && (slot.times_ref().len() as u32) < c.at_least {
                let why = vec![format!(
                    "fewer than {} `{event}` in the last {}",
                    c.at_least,
                    show_ms(c.within_ms)
                )];
                emit.end(out, slot, now, Readings::default(), why);
            }
        }
        Trigger::Absent { what, after } => {
            let limit = absent_limit(after, *report_every_s);
            let slot = slots
                .binary_search_by_key(&r, |s| s.rule)
                .ok()
                .map(|i| &slots[i]);
            if slot.is_some_and(|s| s.phase != Phase::Idle) {
                return;
            }
            // Before the first value of the reading, the device's last message stands in.
            let quiet_since = match (what, slot) {
                (Absence::Change(_), Some(s)) if s.last().is_some() => {
                    s.last().map_or(*last_seen_ms, |(_, changed)| changed)
                }
                _ => *last_seen_ms,
            };
            let opens = reached(rule, quiet_since, limit, offset);
            if now >= opens {
                let what_text = match what {
                    Absence::Messages => "no message from the device".to_string(),
                    Absence::Change(r) => format!("no change in `{r}`"),
                };
                let hours = if rule.during.is_some() {
                    " of its hours"
                } else {
                    ""
                };
                let why = vec![format!(
                    "{what_text} for {}{hours} since {quiet_since}",
                    show_ms(limit)
                )];
                let slot = slot_of(slots, r);
                slot.phase = Phase::Firing;
                slot.since_ms = opens;
                slot.seq = 0;
                emit.push(out, Change::Opened, now, slot, Readings::default(), why);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::test_schema;
    use crate::silence::Scope;
    use proptest::prelude::*;

    const MIN: u64 = 60_000;
    /// 2026-11-27 00:00 in Beijing (UTC+8), so times of day read plainly.
    const DAY: u64 = 1_795_708_800_000;

    const RULES: &str = r#"
[[rule]]
name = "water_high"
severity = "major"
kind = "manhole"
when = "water_cm >= 80"
for = "2m"
clear = "water_cm < 60"
message = { zh-CN = "水位 {water_cm}", en = "water {water_cm}" }

[[rule]]
name = "sos"
severity = "critical"
kind = "sos"
event = "sos_pressed"
clear_event = "sos_cancelled"
message = { zh-CN = "求助", en = "SOS" }

[[rule]]
name = "stops"
severity = "major"
kind = "elevator"
event = "stopped_outside_door_zone"
count = { at_least = 3, within = "10m" }
message = { zh-CN = "x", en = "x" }

[[rule]]
name = "rising"
severity = "major"
kind = "manhole"
rise = { reading = "water_cm", by = 10, within = "5m" }
message = { zh-CN = "x", en = "x" }

[[rule]]
name = "offline"
severity = "minor"
absent = { intervals = 3 }
message = { zh-CN = "x", en = "x" }

[[rule]]
name = "no_activity"
severity = "major"
kind = "sos"
tags = ["living_alone"]
absent = { change = "last_motion_ts", for = "4h" }
during = "07:00-21:00"
message = { zh-CN = "x", en = "x" }
"#;

    fn device(id: &str, kind: &str, tags: &[&str]) -> DeviceInfo {
        DeviceInfo {
            id: id.into(),
            kind: kind.into(),
            community: "c".into(),
            building: "b1".into(),
            grid: "g1".into(),
            tags: tags.iter().map(|t| Arc::from(*t)).collect(),
            report_every_ms: 5 * MIN,
        }
    }

    fn engine_with(rules: &str, now: u64) -> Engine {
        let set = RuleSet::parse(rules, &test_schema()).expect("rules load");
        Engine::new(
            set,
            [
                device("mh1", "manhole", &[]),
                device("sos1", "sos", &["living_alone"]),
                device("sos2", "sos", &[]),
                device("el1", "elevator", &[]),
            ],
            now,
        )
    }

    fn engine(now: u64) -> Engine {
        engine_with(RULES, now)
    }

    fn feed(
        e: &mut Engine,
        device: &str,
        seq: u64,
        at: u64,
        event: Option<&str>,
        data: &[(&str, Val)],
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        e.observe(
            &Msg {
                device,
                seq,
                at_ms: at,
                event,
                data,
            },
            &mut out,
        );
        out
    }

    fn tick(e: &mut Engine, at: u64) -> Vec<Transition> {
        let mut out = Vec::new();
        e.tick(at, &mut out);
        out
    }

    fn changes(e: &Engine, ts: &[Transition]) -> Vec<(String, String, Change)> {
        ts.iter()
            .map(|t| {
                (
                    e.rules()[t.rule].name.clone(),
                    t.device.to_string(),
                    t.change,
                )
            })
            .collect()
    }

    fn water(cm: f64) -> [(&'static str, Val); 2] {
        [("water_cm", Val::Num(cm)), ("cover_open", Val::Bool(false))]
    }

    #[test]
    fn a_condition_opens_after_holding_for_its_time_and_clears_with_hysteresis() {
        let t0 = DAY + 10 * 60 * MIN;
        let mut e = engine(t0);
        assert!(feed(&mut e, "mh1", 1, t0, None, &water(85.0)).is_empty());
        assert!(tick(&mut e, t0 + MIN).is_empty(), "held 1 of 2 minutes");
        let opened = tick(&mut e, t0 + 2 * MIN + 700);
        assert_eq!(
            changes(&e, &opened),
            [("water_high".into(), "mh1".into(), Change::Opened)]
        );
        // The alert opens at the instant the condition had held 2 minutes, whenever the tick ran.
        assert_eq!((opened[0].opened_ms, opened[0].seq), (t0 + 2 * MIN, 1));
        assert!(
            opened[0].why[0].contains("water_cm (85) >= 80 is true"),
            "{:?}",
            opened[0].why
        );
        assert!(opened[0]
            .values
            .contains(&("water_cm".into(), Val::Num(85.0))));
        // 70 cm is below the opening level but above the clear level: still open.
        assert!(feed(&mut e, "mh1", 2, t0 + 3 * MIN, None, &water(70.0)).is_empty());
        let cleared = feed(&mut e, "mh1", 3, t0 + 4 * MIN, None, &water(55.0));
        assert_eq!(cleared[0].change, Change::Resolved);
        assert_eq!(cleared[0].opened_ms, t0 + 2 * MIN);
        assert!(e.open_alerts().is_empty());
    }

    #[test]
    fn a_condition_that_lapses_before_its_time_opens_nothing() {
        let mut e = engine(DAY);
        feed(&mut e, "mh1", 1, DAY, None, &water(85.0));
        feed(&mut e, "mh1", 2, DAY + MIN, None, &water(50.0));
        assert!(tick(&mut e, DAY + 3 * MIN).is_empty());
        // A message without the reading says nothing either way.
        feed(&mut e, "mh1", 3, DAY + 4 * MIN, None, &water(85.0));
        feed(
            &mut e,
            "mh1",
            4,
            DAY + 5 * MIN,
            None,
            &[("battery_v", Val::Num(3.6))],
        );
        let opened = feed(&mut e, "mh1", 5, DAY + 6 * MIN, None, &water(90.0));
        assert_eq!(opened[0].change, Change::Opened);
        assert_eq!(opened[0].opened_ms, DAY + 6 * MIN);
        assert_eq!(opened[0].seq, 3);
    }

    #[test]
    fn a_life_safety_alert_stays_open_until_a_person_closes_it() {
        let mut e = engine(DAY);
        let sos = e.rule_index("sos").unwrap();
        let opened = feed(&mut e, "sos1", 7, DAY, Some("sos_pressed"), &[]);
        assert_eq!(
            changes(&e, &opened),
            [("sos".into(), "sos1".into(), Change::Opened)]
        );
        assert_eq!(
            feed(&mut e, "sos1", 8, DAY + 1, Some("sos_pressed"), &[])[0].change,
            Change::Updated
        );
        assert_eq!(
            feed(&mut e, "sos1", 9, DAY + 2, Some("sos_cancelled"), &[])[0].change,
            Change::Cleared
        );
        assert!(e.open_alerts()[0].cleared);
        assert_eq!(
            feed(&mut e, "sos1", 10, DAY + 3, Some("sos_pressed"), &[])[0].change,
            Change::Updated
        );
        e.close("sos1", sos);
        let again = feed(&mut e, "sos1", 11, DAY + 4, Some("sos_pressed"), &[]);
        assert_eq!((again[0].change, again[0].seq), (Change::Opened, 11));
    }

    #[test]
    fn counts_open_on_the_nth_event_within_the_window_and_resolve_when_it_empties() {
        let mut e = engine(DAY);
        let ev = Some("stopped_outside_door_zone");
        assert!(feed(&mut e, "el1", 1, DAY, ev, &[]).is_empty());
        assert!(feed(&mut e, "el1", 2, DAY + 4 * MIN, ev, &[]).is_empty());
        // The first has left the 10-minute window by the third.
        assert!(feed(&mut e, "el1", 3, DAY + 11 * MIN, ev, &[]).is_empty());
        let opened = feed(&mut e, "el1", 4, DAY + 12 * MIN, ev, &[]);
        assert_eq!(opened[0].change, Change::Opened);
        assert!(
            opened[0].why.iter().any(|w| w.contains("3 times")),
            "{:?}",
            opened[0].why
        );
        assert!(tick(&mut e, DAY + 13 * MIN).is_empty());
        // The event at minute 4 leaves the window at minute 14.
        assert_eq!(tick(&mut e, DAY + 14 * MIN)[0].change, Change::Resolved);
    }

    #[test]
    fn a_rise_within_the_window_opens() {
        let mut e = engine(DAY);
        let rising = |ts: &[Transition]| {
            ts.iter()
                .filter(|t| t.rule == 3)
                .map(|t| t.change)
                .collect::<Vec<_>>()
        };
        assert!(rising(&feed(&mut e, "mh1", 1, DAY, None, &water(20.0))).is_empty());
        assert!(rising(&feed(&mut e, "mh1", 2, DAY + 6 * MIN, None, &water(29.0))).is_empty());
        // 29 → 35 is only 6 cm; the 20 left the window.
        assert!(rising(&feed(&mut e, "mh1", 3, DAY + 9 * MIN, None, &water(35.0))).is_empty());
        assert_eq!(
            rising(&feed(&mut e, "mh1", 4, DAY + 10 * MIN, None, &water(39.5))),
            [Change::Opened]
        );
        assert_eq!(
            rising(&feed(&mut e, "mh1", 5, DAY + 16 * MIN, None, &water(39.5))),
            [Change::Resolved]
        );
    }

    #[test]
    fn a_silent_device_goes_offline_after_three_intervals_and_comes_back() {
        let mut e = engine(DAY);
        feed(&mut e, "mh1", 1, DAY + MIN, None, &water(1.0));
        let offline = |ts: Vec<Transition>| {
            ts.into_iter()
                .filter(|t| t.rule == 4 && &*t.device == "mh1")
                .collect::<Vec<_>>()
        };
        assert!(offline(tick(&mut e, DAY + 15 * MIN)).is_empty());
        let opened = offline(tick(&mut e, DAY + 16 * MIN + 5));
        assert_eq!(opened[0].opened_ms, DAY + 16 * MIN);
        assert!(
            offline(tick(&mut e, DAY + 30 * MIN)).is_empty(),
            "opens once"
        );
        let back = offline(feed(&mut e, "mh1", 2, DAY + 31 * MIN, None, &water(1.0)));
        assert_eq!(back[0].change, Change::Resolved);
    }

    #[test]
    fn inactivity_counts_only_daytime_hours_and_only_for_tagged_devices() {
        let evening = DAY - 3 * 60 * MIN; // 21:00 the day before
        let mut e = engine(evening);
        let motion = |ts: f64| [("last_motion_ts", Val::Num(ts))];
        feed(&mut e, "sos1", 1, evening, None, &motion(1.0));
        feed(&mut e, "sos2", 1, evening, None, &motion(1.0));
        let no_activity =
            |ts: Vec<Transition>| ts.into_iter().filter(|t| t.rule == 5).collect::<Vec<_>>();
        // The night does not count, nor the first 4 hours after 07:00.
        for h in [1, 6, 9, 10] {
            let keep_alive = feed(
                &mut e,
                "sos1",
                100 + h,
                DAY + h * 60 * MIN,
                None,
                &motion(1.0),
            );
            assert!(no_activity(keep_alive).is_empty());
            assert!(
                no_activity(tick(&mut e, DAY + h * 60 * MIN + 1)).is_empty(),
                "{h}:00"
            );
        }
        let opened = no_activity(tick(&mut e, DAY + 11 * 60 * MIN));
        assert_eq!(opened.len(), 1, "sos2 is not tagged living_alone");
        assert_eq!(
            (&*opened[0].device, opened[0].opened_ms),
            ("sos1", DAY + 11 * 60 * MIN)
        );
        let moved = no_activity(feed(
            &mut e,
            "sos1",
            200,
            DAY + 12 * 60 * MIN,
            None,
            &motion(2.0),
        ));
        assert_eq!(moved[0].change, Change::Resolved);
    }

    #[test]
    fn devices_only_carry_the_rules_that_select_them() {
        let e = engine(DAY);
        let names = |id: &str| {
            e.lists[e.devices[e.device(id).unwrap()].list as usize]
                .iter()
                .map(|r| e.rules[*r as usize].name.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("mh1"), ["water_high", "rising", "offline"]);
        assert_eq!(names("sos1"), ["sos", "offline", "no_activity"]);
        assert_eq!(names("sos2"), ["sos", "offline"]);
        assert!(
            e.explain(&device("sos2", "sos", &[]), "no_activity", DAY)[0]
                .contains("tags living_alone")
        );
        assert!(
            e.explain(&device("el1", "elevator", &[]), "sos", DAY)[0].contains("selects kind sos")
        );
    }

    #[test]
    fn explanations_say_where_a_rule_stands() {
        let mut e = engine(DAY);
        feed(&mut e, "mh1", 1, DAY, None, &water(85.0));
        let why = e.explain(&device("mh1", "manhole", &[]), "water_high", DAY + MIN);
        assert!(
            why.iter().any(|w| w.contains("held for 1m of the 2m")),
            "{why:?}"
        );
        assert!(
            why.iter()
                .any(|w| w.contains("water_cm (85) >= 80 is true")),
            "{why:?}"
        );
        let why = e.explain(&device("mh1", "manhole", &[]), "offline", DAY + MIN);
        assert!(why[0].contains("quiet for 1m of the 15m"), "{why:?}");
        assert_eq!(
            e.explain(&device("mh1", "manhole", &[]), "nope", DAY),
            ["there is no rule `nope`"]
        );
    }

    #[test]
    fn silences_mark_what_they_hold_back() {
        let mut e = engine(DAY);
        e.set_silences(vec![Silence {
            id: "m1".into(),
            scope: Scope::Building("b1".into()),
            from_ms: DAY,
            until_ms: DAY + 60 * MIN,
            by: "w-wangfang".into(),
            reason: "电梯维保".into(),
        }]);
        let held = feed(&mut e, "sos1", 1, DAY + MIN, Some("sos_pressed"), &[]);
        assert_eq!(held[0].silenced_by.as_deref(), Some("m1"));
        assert!(
            e.explain(&device("sos1", "sos", &["living_alone"]), "sos", DAY + MIN)[0]
                .contains("电梯维保")
        );
        let later = feed(
            &mut e,
            "el1",
            1,
            DAY + 61 * MIN,
            Some("stopped_outside_door_zone"),
            &[],
        );
        assert!(later.is_empty());
        let t = tick(&mut e, DAY + 61 * MIN);
        assert!(t.iter().all(|t| t.silenced_by.is_none()));
    }

    #[test]
    fn the_borrowed_view_reads_back_as_the_snapshot() {
        let mut e = engine(DAY);
        feed(&mut e, "mh1", 1, DAY, None, &water(85.0));
        feed(&mut e, "sos1", 1, DAY, Some("sos_pressed"), &[]);
        let view = serde_json::to_string(&e.view()).unwrap();
        assert_eq!(view, serde_json::to_string(&e.snapshot()).unwrap());
        let back: Snapshot = serde_json::from_str(&view).unwrap();
        assert_eq!(back.devices.len(), 4);
        assert_eq!(
            back.devices.iter().filter(|d| !d.rules.is_empty()).count(),
            2
        );
    }

    const HOURS: &str = r#"
[[rule]]
name = "door_at_night"
severity = "major"
kind = "manhole"
when = "cover_open"
for = "10m"
during = "22:00-06:00"
message = { zh-CN = "x", en = "x" }

[[rule]]
name = "quiet"
severity = "major"
kind = "sos"
absent = { change = "last_motion_ts", for = "4h" }
during = "07:00-21:00"
message = { zh-CN = "x", en = "x" }

[[rule]]
name = "gone"
severity = "minor"
kind = "elevator"
absent = { for = "10m" }
message = { zh-CN = "x", en = "x" }

[[rule]]
name = "gas"
severity = "critical"
kind = "manhole"
when = "water_cm >= 50"
clear = "water_cm < 20"
message = { zh-CN = "x", en = "x" }
"#;

    /// The transitions of one rule.
    fn only(rule: usize, ts: Vec<Transition>) -> Vec<Transition> {
        ts.into_iter().filter(|t| t.rule == rule).collect()
    }

    #[test]
    fn a_timer_that_runs_out_outside_its_hours_opens_when_they_begin_on_every_path() {
        let h = |hh: u64, mm: u64| DAY + (hh * 60 + mm) * MIN;
        let open = [("cover_open", Val::Bool(true))];
        // By the clock.
        let mut e = engine_with(HOURS, h(21, 0));
        feed(&mut e, "mh1", 1, h(21, 55), None, &open);
        assert!(
            only(0, tick(&mut e, h(21, 59))).is_empty(),
            "due at 22:05, not yet"
        );
        assert!(only(0, tick(&mut e, h(22, 4))).is_empty());
        let by_clock = only(0, tick(&mut e, h(22, 7)));
        assert_eq!(by_clock[0].opened_ms, h(22, 5));
        // By a message that came after the timer ran out, with no tick between.
        let mut e = engine_with(HOURS, h(21, 0));
        feed(&mut e, "mh1", 1, h(21, 55), None, &open);
        let by_message = feed(&mut e, "mh1", 2, h(22, 30), None, &open);
        assert_eq!(by_message[0].opened_ms, h(22, 5));
        // Due at 21:00 (outside), it opens when the hours begin at 22:00, not at the tick.
        let mut e = engine_with(HOURS, h(20, 0));
        feed(&mut e, "mh1", 1, h(20, 50), None, &open);
        assert_eq!(only(0, tick(&mut e, h(22, 0) + 700))[0].opened_ms, h(22, 0));
    }

    #[test]
    fn a_message_exactly_at_the_due_time_opens_as_a_tick_would() {
        let mut e = engine(DAY);
        feed(&mut e, "mh1", 1, DAY, None, &water(85.0));
        let at_due = feed(&mut e, "mh1", 2, DAY + 2 * MIN, None, &water(10.0));
        let changes: Vec<Change> = at_due
            .iter()
            .filter(|t| t.rule == 0)
            .map(|t| t.change)
            .collect();
        assert_eq!(changes, [Change::Opened, Change::Resolved]);
    }

    #[test]
    fn quiet_hours_add_up_across_days() {
        let h = |hh: u64, mm: u64| DAY + (hh * 60 + mm) * MIN;
        let mut e = engine_with(HOURS, h(17, 0));
        feed(
            &mut e,
            "sos1",
            1,
            h(18, 0),
            None,
            &[("last_motion_ts", Val::Num(1.0))],
        );
        // 18:00–21:00 counts 3 hours; the night none; 07:00–08:00 the fourth.
        let sos1 = |ts: Vec<Transition>| {
            only(1, ts)
                .into_iter()
                .filter(|t| &*t.device == "sos1")
                .collect::<Vec<_>>()
        };
        // sos2 was last heard at 17:00, so it opens at 21:00; sos1 moved at 18:00.
        assert!(sos1(tick(&mut e, h(21, 0))).is_empty());
        assert!(sos1(tick(&mut e, h(24 + 7, 59))).is_empty());
        let opened = sos1(tick(&mut e, h(24 + 8, 0) + 500));
        assert_eq!(opened[0].opened_ms, h(24 + 8, 0));
    }

    #[test]
    fn a_closed_absence_alert_waits_for_the_device_before_opening_again() {
        let mut e = engine_with(HOURS, DAY);
        let gone = e.rule_index("gone").unwrap();
        let opened = tick(&mut e, DAY + 11 * MIN);
        assert!(opened
            .iter()
            .any(|t| t.rule == gone && t.change == Change::Opened));
        e.close("el1", gone);
        assert!(
            tick(&mut e, DAY + 12 * MIN).iter().all(|t| t.rule != gone),
            "not the same alert again"
        );
        feed(&mut e, "el1", 1, DAY + 13 * MIN, None, &[]);
        let again = tick(&mut e, DAY + 24 * MIN);
        assert!(again
            .iter()
            .any(|t| t.rule == gone && t.opened_ms == DAY + 23 * MIN));
    }

    #[test]
    fn a_latched_alert_fires_again_when_its_condition_returns() {
        let mut e = engine_with(HOURS, DAY);
        let level = |cm: f64| [("water_cm", Val::Num(cm))];
        assert_eq!(
            feed(&mut e, "mh1", 1, DAY, None, &level(60.0))[0].change,
            Change::Opened
        );
        assert_eq!(
            feed(&mut e, "mh1", 2, DAY + 1, None, &level(10.0))[0].change,
            Change::Cleared
        );
        assert_eq!(
            feed(&mut e, "mh1", 3, DAY + 2, None, &level(70.0))[0].change,
            Change::Updated
        );
        assert!(!e.open_alerts()[0].cleared, "firing again, not cleared");
        assert_eq!(
            feed(&mut e, "mh1", 4, DAY + 3, None, &level(10.0))[0].change,
            Change::Cleared
        );
    }

    #[test]
    fn a_clock_that_steps_back_does_not_panic() {
        let mut e = engine(DAY);
        let ev = Some("stopped_outside_door_zone");
        feed(&mut e, "el1", 1, DAY + 10 * MIN, ev, &[]);
        feed(&mut e, "el1", 2, DAY + 5 * MIN, ev, &[]);
        feed(&mut e, "el1", 3, DAY, ev, &[]);
        feed(&mut e, "mh1", 1, DAY + 10 * MIN, None, &water(10.0));
        feed(&mut e, "mh1", 2, DAY, None, &water(90.0));
        tick(&mut e, DAY - MIN);
    }

    #[test]
    fn device_and_rule_states_stay_small() {
        // 100,000 devices, each with one rule state, must fit the gateway's memory budget.
        assert!(
            std::mem::size_of::<DeviceState>() <= 64,
            "{}",
            std::mem::size_of::<DeviceState>()
        );
        assert!(
            std::mem::size_of::<Slot>() <= 72,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn a_restored_engine_carries_on_a_half_run_timer() {
        let mut e = engine(DAY);
        feed(&mut e, "mh1", 1, DAY, None, &water(85.0));
        let saved = serde_json::to_string(&e.snapshot()).unwrap();
        let mut restarted = engine(DAY + MIN);
        let restored = restarted.restore(&serde_json::from_str(&saved).unwrap());
        assert!(restored >= 1);
        let opened = tick(&mut restarted, DAY + 2 * MIN);
        assert_eq!(
            changes(&restarted, &opened),
            [("water_high".into(), "mh1".into(), Change::Opened)]
        );
        // An edited rule starts afresh.
        let edited = RULES.replace("for = \"2m\"", "for = \"3m\"");
        let mut changed = engine_with(&edited, DAY + MIN);
        changed.restore(&serde_json::from_str(&saved).unwrap());
        assert!(tick(&mut changed, DAY + 4 * MIN)
            .iter()
            .all(|t| t.rule != 0));
    }

    #[derive(Clone, Debug)]
    enum Step {
        Water(u8, f64),
        Sos(u8, bool),
        Stop(u8),
        Motion(u8, f64),
        Tick(u8),
        Close(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1u8..90, 0f64..120.0).prop_map(|(d, v)| Step::Water(d, v)),
            (1u8..90, any::<bool>()).prop_map(|(d, c)| Step::Sos(d, c)),
            (1u8..90).prop_map(Step::Stop),
            (1u8..90, 0f64..3.0).prop_map(|(d, v)| Step::Motion(d, v.floor())),
            (1u8..200).prop_map(Step::Tick),
            (0u8..6).prop_map(Step::Close),
        ]
    }

    fn run(e: &mut Engine, steps: &[Step], mut now: u64, seq: &mut u64) -> (Vec<Transition>, u64) {
        let mut out = Vec::new();
        for s in steps {
            *seq += 1;
            let mut go =
                |dev: &str, dt: u8, event: Option<&str>, data: &[(&str, Val)], now: &mut u64| {
                    *now += u64::from(dt) * 1000;
                    e.observe(
                        &Msg {
                            device: dev,
                            seq: *seq,
                            at_ms: *now,
                            event,
                            data,
                        },
                        &mut out,
                    );
                };
            match s {
                Step::Water(dt, v) => go("mh1", *dt, None, &water(*v), &mut now),
                Step::Sos(dt, cancel) => {
                    let ev = if *cancel {
                        "sos_cancelled"
                    } else {
                        "sos_pressed"
                    };
                    go("sos1", *dt, Some(ev), &[], &mut now)
                }
                Step::Stop(dt) => go("el1", *dt, Some("stopped_outside_door_zone"), &[], &mut now),
                Step::Motion(dt, v) => go(
                    "sos1",
                    *dt,
                    None,
                    &[("last_motion_ts", Val::Num(*v))],
                    &mut now,
                ),
                Step::Tick(dt) => {
                    now += u64::from(*dt) * 10_000;
                    e.tick(now, &mut out);
                }
                Step::Close(r) => {
                    for d in ["mh1", "sos1", "el1"] {
                        e.close(d, *r as usize);
                    }
                }
            }
        }
        (out, now)
    }

    proptest! {
        #[test]
        fn a_save_and_restore_anywhere_changes_nothing(
            steps in proptest::collection::vec(step(), 1..80),
            cut in any::<prop::sample::Index>(),
        ) {
            let cut = cut.index(steps.len());
            let mut straight = engine(DAY);
            let (all, _) = run(&mut straight, &steps, DAY, &mut 0);

            let mut first = engine(DAY);
            let mut seq = 0;
            let (mut joined, now) = run(&mut first, &steps[..cut], DAY, &mut seq);
            let saved = serde_json::to_string(&first.snapshot()).unwrap();
            let mut second = engine(now);
            second.restore(&serde_json::from_str(&saved).unwrap());
            let (rest, _) = run(&mut second, &steps[cut..], now, &mut seq);
            joined.extend(rest);
            prop_assert_eq!(all, joined);
            prop_assert_eq!(straight.snapshot(), second.snapshot());
        }

        #[test]
        fn transitions_follow_the_lifecycle(steps in proptest::collection::vec(step(), 1..120)) {
            let mut e = engine(DAY);
            let (out, _) = run(&mut e, &steps, DAY, &mut 0);
            // Per device and rule: Opened, then Updated/Cleared, then Resolved or a close.
            let mut open: HashMap<(usize, Arc<str>), bool> = HashMap::new();
            for t in &out {
                let key = (t.rule, t.device.clone());
                match t.change {
                    Change::Opened => prop_assert!(!open.get(&key).copied().unwrap_or(false) || steps.iter().any(|s| matches!(s, Step::Close(_)))),
                    Change::Updated | Change::Cleared | Change::Resolved => prop_assert!(open.get(&key).copied().unwrap_or(false) || steps.iter().any(|s| matches!(s, Step::Close(_)))),
                }
                open.insert(key, matches!(t.change, Change::Opened | Change::Updated | Change::Cleared));
            }
        }
    }
}
