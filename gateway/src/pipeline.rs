//! The one straight line a message takes: decode and verify, the journal, rules, alerts and
//! notification, then the ack to the broker once its journal record is on disk.
//!
//! The pipeline is a driver that handles one message at a time, events before telemetry. Accepted
//! messages are staged in the journal; a group of them is written and fsync'd while the next group
//! gathers, and the group's PUBACKs go out only after its fsync. Rules run on arrival, so an SOS
//! is not held up by the disk; once a second the engine's clock advances (`for` timers, absences).
//! Alert ids are derived from the data, so running the same messages again after a crash opens
//! the same alerts, which the alert book (restored from the case log) knows and leaves alone.
//! The engine's state is saved every few seconds; on start it is restored and the journal after
//! it is run through the rules again. Every alert change is written to the case log.
//! The time-series sink reads the journal on its own.
//!
//! Every message taken ends as exactly one of accepted or rejected; the ingest driver counts the
//! ones it shed as dropped. So `received = accepted + rejected + dropped` once the queues are empty.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use gridwatch_edge_rules::{Change, Engine, Msg, Rule, Severity, Transition, Val};
use rumqttc::Publish;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use crate::alerts::case_log::CaseLog;
use crate::alerts::text::Messages;
use crate::alerts::{
    alert_id, gateway_device, Alert, AlertBook, Evidence, Fired, Opening, State,
    JOURNAL_WRITE_FAILED,
};
use crate::backoff::Backoff;
use crate::config::Language;
use crate::decode::guard::{self, Guard, Verdict};
use crate::decode::{decode, Body, Channel, Decoded};
use crate::http::screen::TickerItem;
use crate::ingest::mqtt::{channel_label, Acker, Incoming};
use crate::journal::{self, Class, Group, JournalHandle, Position};
use crate::metrics::events::{
    AlertEnded, AlertEscalated, AlertOpened, AlertRepeated, AlertSilenced, CaseLogFailed,
    JournalCommitFailed, JournalShed, MessageAccepted, MessageDropped, MessageReceived,
    MessageRejected, NotifyUnroutable, RulesSaveFailed,
};
use crate::metrics::Metrics;
use crate::notify::health::ChannelHealth;
use crate::notify::{self, Delivery, Notifier};
use crate::registry::{Device, Registry, Worker};
use crate::roster::Role;
use crate::rules::{self, state};
use crate::sinks::occupancy::Occupancy;

/// The journal consumer name of the rule engine's saved state: the journal keeps the records
/// the saved state does not cover yet.
pub const RULES_CURSOR: &str = "rules";

/// How often the roster and the channels are checked for people nobody can reach.
const PEOPLE_EVERY: Duration = Duration::from_secs(5);

/// The gateway's own alerts about people, each followed by `.` and what it is about.
const NOBODY_ON_DUTY: &str = "nobody_on_duty";
const UNREACHABLE: &str = "worker_unreachable";
const CHANNEL_FAILING: &str = "channel_failing";
/// The gateway's alert on a device sending over its rate.
const FLOODING: &str = "device_flooding";

/// Everything the pipeline needs, built by [`crate::app`].
pub struct Pipeline {
    /// The community registry.
    pub registry: Arc<Registry>,
    /// Payloads above this are rejected as oversized.
    pub max_payload_bytes: usize,
    /// The per-device checks: key, sequence, clock, rate.
    pub guard: Guard,
    /// The language of alert messages.
    pub language: Language,
    /// The community's offset from UTC in minutes, for times written for people.
    pub utc_offset_min: i32,
    /// The most messages one fsync covers.
    pub max_group: usize,
    /// The journal.
    pub journal: JournalHandle,
    /// Where alert changes and notifications are written down before they are acted on.
    pub cases: CaseLog,
    /// How long an alert that is over stays in the book (and the API) after its last change.
    pub keep_ended: Duration,
    /// Which channels keep failing, as the notifier finds.
    pub health: ChannelHealth,
    /// How far ahead a grid with nobody on duty, or a worker on duty nobody can reach, is raised.
    pub warn_ahead: Duration,
    /// How long a channel must keep failing (three attempts at least) to raise an alert.
    pub channel_failing_after: Duration,
    /// Where notifications go.
    pub notifier: Notifier,
    /// Sends PUBACKs.
    pub acker: Acker,
    /// Every alert, shared with the HTTP API.
    pub alerts: Arc<RwLock<AlertBook>>,
    /// Alert changes, for live views.
    pub alert_changes: broadcast::Sender<Alert>,
    /// Devices' events, for the screen's ticker.
    pub ticker: broadcast::Sender<TickerItem>,
    /// Which watched spaces are taken, for the screen.
    pub occupancy: Arc<Occupancy>,
    /// Waits between attempts when the journal cannot be written.
    pub retry: Backoff,
    /// The rule engine, shared with the HTTP API (rules, explanations, maintenance windows).
    pub engine: Arc<Mutex<Engine>>,
    /// Where the saved engine state ends: the journal is run through the rules from here on
    /// start (`None`: nothing saved, start at the rules' journal cursor).
    pub resume_from: Option<Position>,
    /// How often the engine's state is saved.
    pub save_every: Duration,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

type Writing = (JoinHandle<(Group, io::Result<Position>)>, Vec<Publish>);

impl Pipeline {
    /// Runs the journal after the saved rule state through the rules again, then handles
    /// messages until `shutdown` turns true or both queues close.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Incoming>,
        mut telemetry: mpsc::Receiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.replay().await;
        // Acks for the staged records, and for the group being written.
        let mut staged: Vec<Publish> = Vec::new();
        let mut writing: Option<Writing> = None;
        let mut retry_at: Option<Instant> = None;
        let mut clock = tokio::time::interval(Duration::from_secs(1));
        clock.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut saved_at = Instant::now();
        let mut people_at: Option<Instant> = None;
        loop {
            let quiet = events.is_empty() && telemetry.is_empty();
            if writing.is_none()
                && retry_at.is_none()
                && !staged.is_empty()
                && (quiet || staged.len() >= self.max_group)
            {
                writing = self.start_write(&mut staged, &mut retry_at);
            }
            // While the disk refuses writes, stop taking telemetry once a few groups are waiting.
            let room = staged.len() < 4 * self.max_group;
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                done = async { (&mut writing.as_mut().expect("guarded").0).await }, if writing.is_some() => {
                    let (_, acks) = writing.take().expect("guarded");
                    self.finish_write(done, acks, &mut staged, &mut retry_at).await;
                }
                () = async { sleep_until(retry_at.expect("guarded")).await }, if retry_at.is_some() => retry_at = None,
                _ = clock.tick() => {
                    let now = crate::clock::now_ms();
                    self.tick(now);
                    if people_at.is_none_or(|at| at.elapsed() >= PEOPLE_EVERY) {
                        people_at = Some(Instant::now());
                        self.check_people(now);
                    }
                    if saved_at.elapsed() >= self.save_every {
                        saved_at = Instant::now();
                        self.save().await;
                    }
                }
                // Events are always taken: their alerts fire on arrival even while the disk stalls.
                Some(m) = events.recv() => self.handle(m, &mut staged).await,
                Some(m) = telemetry.recv(), if room => self.handle(m, &mut staged).await,
                else => break,
            }
        }
        // A clean stop still acknowledges what reaches the disk.
        if let Some((task, acks)) = writing.take() {
            self.finish_write(task.await, acks, &mut staged, &mut retry_at)
                .await;
        }
        if !staged.is_empty() {
            if let Some((task, acks)) = self.start_write(&mut staged, &mut retry_at) {
                self.finish_write(task.await, acks, &mut staged, &mut retry_at)
                    .await;
            }
        }
        self.save().await;
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Advances the engine's clock (`for` timers, absences, count windows) and the alerts'
    /// acknowledgement deadlines.
    fn tick(&self, now_ms: u64) {
        let mut out = Vec::new();
        self.engine().tick(now_ms, &mut out);
        if !out.is_empty() {
            self.apply_transitions(out);
        }
        self.escalate(now_ms);
        let settled = self
            .alerts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .wake_flapping(now_ms);
        for alert in settled {
            // Flapping, then down for good: it pages after all.
            self.notify(&alert);
            let _ = self.alert_changes.send(alert);
        }
        self.record();
        self.tidy(now_ms);
    }

    /// Writes the alerts changed since the last call to the case log.
    fn record(&self) {
        // Written while the book is held, so changes reach the log in the order they happened.
        let mut book = self.alerts.write().unwrap_or_else(|e| e.into_inner());
        let changed = book.take_changes();
        let written = self.cases.alerts(changed);
        drop(book);
        if let Err(e) = written {
            CaseLogFailed {
                operation: "write",
                error: &e,
            }
            .emit(&self.metrics);
        }
    }

    /// Raises the gateway's own alerts about people, before they matter: a grid that will have
    /// nobody on duty within `warn_ahead`, a worker on duty now or then whom nothing can reach,
    /// a channel that keeps failing; and resolves each once it is no longer so. They go to the
    /// duty officer.
    fn check_people(&self, now_ms: u64) {
        let staff = self.registry.staff();
        let grids: Vec<&str> = self.registry.grids().collect();
        let ahead = self.warn_ahead.as_millis() as u64;
        let clock = |ms: u64| {
            let (_, minute) = staff.zone().local(ms);
            format!("{:02}:{:02}", minute / 60, minute % 60)
        };
        let mut wanted: Vec<(String, Messages)> = Vec::new();
        for gap in staff.gaps(&grids, now_ms, ahead) {
            let name = self.registry.grid_name(&gap.grid);
            wanted.push((
                format!("{NOBODY_ON_DUTY}.{}", gap.grid),
                Messages::nobody_on_duty(name, &clock(gap.starts_ms), &clock(gap.ends_ms)),
            ));
        }
        for grid in &grids {
            for at in [now_ms, now_ms + ahead] {
                if let Some(w) = staff.holder(grid, Role::OnDuty, at) {
                    if w.reach.is_empty() {
                        wanted.push((
                            format!("{UNREACHABLE}.{}", w.id),
                            Messages::unreachable(&w.name),
                        ));
                    }
                }
            }
        }
        let after = self.channel_failing_after.as_millis() as u64;
        for f in self.health.failing(now_ms, 3, after) {
            let name = staff
                .worker(&f.worker)
                .map_or(f.worker.as_str(), |w| &w.name);
            wanted.push((
                format!("{CHANNEL_FAILING}.{}.{}", f.worker, f.channel.as_str()),
                Messages::channel_failing(
                    name,
                    f.channel.as_str(),
                    f.failures,
                    &clock(f.since_ms),
                    &f.last_error,
                ),
            ));
        }
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        wanted.dedup_by(|a, b| a.0 == b.0);

        let device = gateway_device(&self.registry.community);
        let mut fired = Vec::new();
        let mut ended = Vec::new();
        {
            let mut book = self.alerts.write().unwrap_or_else(|e| e.into_inner());
            for (rule, messages) in wanted.iter() {
                if book.is_open(&device.id, rule) {
                    continue;
                }
                fired.push(book.open(Opening {
                    alert_id: alert_id(now_ms, &device.id, 0, rule),
                    rule,
                    severity: Severity::Major,
                    device: &device,
                    assignee: staff.holder("", Role::DutyOfficer, now_ms).cloned(),
                    opened_ms: now_ms,
                    messages: messages.clone(),
                    language: self.language,
                    needs_person: false,
                    ack_deadline_ms: None,
                    on_site_deadline_ms: None,
                    escalation: Vec::new(),
                    evidence: Evidence::default(),
                    silenced_by: None,
                }));
            }
            for rule in book.open_rules(&device.id) {
                let ours = [NOBODY_ON_DUTY, UNREACHABLE, CHANNEL_FAILING]
                    .iter()
                    .any(|p| rule.starts_with(&format!("{p}.")));
                if ours && !wanted.iter().any(|(r, _)| *r == rule) {
                    ended.extend(book.resolve(&device.id, &rule, now_ms));
                }
            }
        }
        self.check_floods(now_ms, &mut fired, &mut ended);
        for f in fired {
            self.announce(f);
        }
        for alert in ended {
            AlertEnded {
                alert: &alert,
                how: "resolved",
            }
            .emit(&self.metrics);
            let _ = self.alert_changes.send(alert);
        }
        self.record();
    }

    /// Opens `device_flooding` on each device dropping messages over its rate, for the worker on
    /// duty in its grid (someone should look at a node that floods: broken, or tampered with),
    /// and resolves it once the device has kept to its rate for a minute.
    fn check_floods(&self, now_ms: u64, fired: &mut Vec<Fired>, ended: &mut Vec<Alert>) {
        let floods = self.guard.flooding(now_ms);
        let staff = self.registry.staff();
        let mut book = self.alerts.write().unwrap_or_else(|e| e.into_inner());
        for f in &floods {
            let Some(device) = self.registry.device(&f.device) else {
                continue;
            };
            if book.is_open(&device.id, FLOODING) {
                continue;
            }
            let messages = Messages::flooding(
                &format!("{}{}", device.building_name, device.location),
                f.dropped,
            );
            fired.push(book.open(Opening {
                alert_id: alert_id(now_ms, &device.id, 0, FLOODING),
                rule: FLOODING,
                severity: Severity::Minor,
                device,
                assignee: staff.holder(&device.grid, Role::OnDuty, now_ms).cloned(),
                opened_ms: now_ms,
                messages,
                language: self.language,
                needs_person: false,
                ack_deadline_ms: None,
                on_site_deadline_ms: None,
                escalation: Vec::new(),
                evidence: Evidence::default(),
                silenced_by: None,
            }));
        }
        let open: Vec<Arc<str>> = book
            .iter()
            .filter(|a| a.rule == FLOODING && a.resolved_at.is_none())
            .map(|a| a.device.id.clone())
            .collect();
        for id in open {
            if !floods.iter().any(|f| f.device == id) {
                ended.extend(book.resolve(&id, FLOODING, now_ms));
            }
        }
    }

    /// Forgets alerts long over, and rewrites the case log once it has grown well past what it
    /// holds. Rare, and small enough to do here, holding the book so no change slips between
    /// the snapshot and the rewrite.
    fn tidy(&self, now_ms: u64) {
        let keep_ms = self.keep_ended.as_millis() as u64;
        let mut book = self.alerts.write().unwrap_or_else(|e| e.into_inner());
        book.prune(now_ms, keep_ms);
        if !self.cases.wants_compaction() {
            return;
        }
        match self.cases.compact(book.kept_all()) {
            Ok(bytes) => self.metrics.case_log_bytes.set(bytes as i64),
            Err(e) => CaseLogFailed {
                operation: "compact",
                error: &e,
            }
            .emit(&self.metrics),
        }
    }

    /// Saves the engine's state with the journal position after the last record it has seen,
    /// written yet or not. A record staged but lost in a crash was not acknowledged, so the
    /// broker sends it again; the engine then sees it twice, which at worst counts one event
    /// twice in a `count` window.
    async fn save(&self) {
        let (written, covered, active, dir) = {
            let engine = self.engine();
            let (fed, dir) = {
                let j = self.journal.lock();
                (j.staged_end(), j.dir().to_owned())
            };
            // Written from the engine as it stands, not copied first: with 100,000 devices
            // holding state a copy would cost tens of megabytes. The page cache takes even that
            // in milliseconds, so it is written here; the fsync comes after, off this task.
            let view = state::SavedView {
                segment: fed.segment,
                offset: fed.offset,
                saved_ms: crate::clock::now_ms(),
                silences: engine.silences(),
                engine: engine.view(),
                seq: self.guard.marks(),
            };
            let written = state::write(&dir, &view);
            (written, fed, engine.active(), dir)
        };
        self.metrics.rules_active.set(active as i64);
        let written = match written {
            Ok(f) => f,
            Err(e) => return RulesSaveFailed { error: &e }.emit(&self.metrics),
        };
        let journal = self.journal.clone();
        let metrics = self.metrics.clone();
        let done = tokio::task::spawn_blocking(move || {
            let generation = journal.lock().cursor(RULES_CURSOR).1;
            state::commit(&dir, written)?;
            metrics.rules_saves.with_label_values(&["saved"]).inc();
            let mut j = journal.lock();
            let covered = covered.min(j.end());
            j.advance(RULES_CURSOR, covered, generation)
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => RulesSaveFailed { error: &e }.emit(&self.metrics),
            Err(e) => RulesSaveFailed { error: &e }.emit(&self.metrics),
        }
    }

    fn start_write(
        &mut self,
        staged: &mut Vec<Publish>,
        retry_at: &mut Option<Instant>,
    ) -> Option<Writing> {
        let taken = self.journal.lock().take_group();
        match taken {
            Ok(Some(group)) => {
                let task = tokio::task::spawn_blocking(move || {
                    let result = group.write();
                    (group, result)
                });
                Some((task, std::mem::take(staged)))
            }
            Ok(None) => None,
            Err(e) => {
                let wait = self.retry.next_wait();
                JournalCommitFailed {
                    error: &e,
                    waiting: staged.len(),
                }
                .emit(&self.metrics);
                *retry_at = Some(Instant::now() + wait);
                None
            }
        }
    }

    async fn finish_write(
        &mut self,
        done: Result<(Group, io::Result<Position>), tokio::task::JoinError>,
        acks: Vec<Publish>,
        staged: &mut Vec<Publish>,
        retry_at: &mut Option<Instant>,
    ) {
        let result = match done {
            Ok((group, result)) => {
                let records = acks.len();
                let bytes = group.bytes();
                self.journal.lock().finish(group, &result);
                result.map(|end| (end, records, bytes))
            }
            Err(e) => Err(io::Error::other(e)),
        };
        match result {
            Ok((end, records, bytes)) => {
                self.retry.reset();
                self.metrics.journal_commits.inc();
                self.metrics.journal_records.inc_by(records as u64);
                self.metrics.journal_written_bytes.inc_by(bytes as u64);
                for publish in acks {
                    self.acker.ack(publish);
                }
                self.journal.committed(end);
                self.enforce_budget().await;
            }
            Err(e) => {
                // The journal staged the group again; its acks wait in front of the newer ones.
                let wait = self.retry.next_wait();
                JournalCommitFailed {
                    error: &e,
                    waiting: acks.len() + staged.len(),
                }
                .emit(&self.metrics);
                let newer = std::mem::replace(staged, acks);
                staged.extend(newer);
                self.journal_failed();
                *retry_at = Some(Instant::now() + wait);
            }
        }
    }

    /// Raises the gateway's own critical alert: while the journal fails nothing is acknowledged,
    /// so the broker holds every device's messages, SOS included, until the disk works again.
    fn journal_failed(&self) {
        let now = crate::clock::now_ms();
        let device = gateway_device(&self.registry.community);
        let fired = self
            .alerts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .open(Opening {
                alert_id: alert_id(now, &device.id, 0, JOURNAL_WRITE_FAILED),
                rule: JOURNAL_WRITE_FAILED,
                severity: Severity::Critical,
                device: &device,
                assignee: None,
                opened_ms: now,
                messages: Messages::journal_write_failed(),
                language: self.language,
                needs_person: true,
                ack_deadline_ms: None,
                on_site_deadline_ms: None,
                escalation: Vec::new(),
                evidence: Evidence::default(),
                silenced_by: None,
            });
        self.announce(fired);
        self.record();
    }

    async fn enforce_budget(&self) {
        {
            // The common case, checked in memory: no need for a blocking task after every commit.
            let j = self.journal.lock();
            self.metrics.journal_bytes.set(j.disk_bytes() as i64);
            if !j.over_budget() {
                return;
            }
        }
        let j = self.journal.clone();
        let metrics = self.metrics.clone();
        let shed = tokio::task::spawn_blocking(move || {
            let mut j = j.lock();
            let shed = j.enforce_budget();
            metrics.journal_bytes.set(j.disk_bytes() as i64);
            shed
        })
        .await;
        match shed {
            Ok(Ok(shed)) if shed.telemetry_lost > 0 || shed.events_kept > 0 => JournalShed {
                telemetry_lost: shed.telemetry_lost,
                events_kept: shed.events_kept,
            }
            .emit(&self.metrics),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("journal budget: {e}"),
            Err(e) => tracing::error!("journal budget task: {e}"),
        }
    }

    async fn handle(&mut self, m: Incoming, staged: &mut Vec<Publish>) {
        let topic = m.publish.topic.as_str();
        let channel = channel_label(topic);
        MessageReceived { channel }.emit(&self.metrics);
        let registry = Arc::clone(&self.registry);
        let accepted = {
            let checked = decode(topic, &m.publish.payload, &registry, self.max_payload_bytes)
                .and_then(|decoded| {
                    let life_safety = guard::is_life_safety(&registry, &decoded);
                    let verdict = self.guard.check(
                        &decoded,
                        &m.publish.payload,
                        life_safety,
                        m.publish.dup,
                        m.received_ms,
                    )?;
                    Ok((decoded, verdict))
                });
            match checked {
                Err(rejection) => {
                    MessageRejected {
                        reason: rejection.reason.as_str(),
                        topic,
                        detail: &rejection.detail,
                    }
                    .emit(&self.metrics);
                    false
                }
                Ok((_decoded, Verdict::Drop { reason })) => {
                    MessageDropped { reason, topic }.emit(&self.metrics);
                    false
                }
                Ok((decoded, Verdict::Pass)) => {
                    let class = if decoded.channel == Channel::Event {
                        Class::Event
                    } else {
                        Class::Telemetry
                    };
                    self.journal
                        .lock()
                        .stage(class, m.received_ms, topic, &m.publish.payload);
                    self.apply_rules(&decoded, m.received_ms);
                    if let Body::Message(msg) = &decoded.body {
                        self.occupancy.observe(
                            self.registry.catalogue(),
                            decoded.device,
                            &msg.data,
                        );
                        if let Some(event) = msg.event {
                            // Nobody watching is fine.
                            let _ = self.ticker.send(TickerItem {
                                at_ms: m.received_ms,
                                device: decoded.device.id.to_string(),
                                kind: decoded.device.kind.to_string(),
                                event: event.to_owned(),
                                building_name: decoded.device.building_name.to_string(),
                                location: decoded.device.location.to_string(),
                            });
                        }
                    }
                    MessageAccepted { channel }.emit(&self.metrics);
                    true
                }
            }
        };
        if accepted {
            staged.push(m.publish);
        } else {
            // Nothing to keep: acknowledged at once, so the broker does not send it again.
            self.acker.ack(m.publish);
        }
    }

    /// Runs the journal after the saved engine state through the rules again (or, with nothing
    /// saved, what the alert outbox had not finished with), so timers carry on and undelivered
    /// alerts open again with the same ids; then lists the alerts the saved state held open.
    async fn replay(&mut self) {
        self.restore_open_alerts();
        let journal = self.journal.clone();
        let resume_from = self.resume_from;
        let records = tokio::task::spawn_blocking(move || {
            let (from, segments, dir) = {
                let j = journal.lock();
                let from = resume_from.unwrap_or_else(|| j.cursor(RULES_CURSOR).0);
                (from, j.segments_from(from), j.dir().to_owned())
            };
            let mut out = Vec::new();
            let read = journal::read(&dir, &segments, from, |_, rec| {
                out.push((rec.received_ms, rec.topic.to_owned(), rec.payload.to_vec()));
                true
            });
            (out, read)
        })
        .await;
        let (records, read) = match records {
            Ok(r) => r,
            Err(e) => return tracing::error!("journal replay task: {e}"),
        };
        if let Err(e) = read {
            tracing::error!("journal replay stopped early: {e}");
        }
        if !records.is_empty() {
            tracing::info!(
                records = records.len(),
                "running the journal after the saved rule state through the rules again"
            );
        }
        let registry = Arc::clone(&self.registry);
        let mut ticked = 0;
        for (received_ms, topic, payload) in records {
            if received_ms >= ticked + 1000 {
                ticked = received_ms;
                let mut out = Vec::new();
                self.engine().tick(received_ms, &mut out);
                self.apply_transitions(out);
            }
            if let Ok(decoded) = decode(&topic, &payload, &registry, self.max_payload_bytes) {
                self.guard.observe(&decoded, &payload);
                self.apply_rules(&decoded, received_ms);
            }
        }
        self.record();
        // The gateway heard nothing while it was down: that is not every device going offline.
        self.engine().resume(crate::clock::now_ms());
        self.page_restored();
    }

    /// Sends again, for every alert still waiting for someone, what its current step calls for.
    /// Notifications the case log already has are not sent twice (their ids are derived), so
    /// this only fills in what a crash cut short between writing an alert and writing its
    /// notifications.
    fn page_restored(&self) {
        let waiting: Vec<Alert> = self
            .alerts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .list()
            .into_iter()
            .filter(|a| {
                a.state == State::Firing
                    && a.resolved_at.is_none()
                    && a.silenced_by.is_none()
                    && a.grouped_into.is_none()
            })
            .collect();
        let staff = self.registry.staff();
        let now = crate::clock::now_ms();
        for a in waiting {
            let level = usize::from(a.escalation_level);
            if level == 0 {
                self.notify(&a);
                continue;
            }
            let chain = staff.chain(&a.device.grid, &a.escalation, now);
            for worker in chain.iter().take(level + 1).flatten() {
                self.deliver(&a, worker, "alert.escalated", &format!("escalated{level}"));
            }
        }
    }

    /// Puts the alerts the saved engine state holds open back into the alert book.
    fn restore_open_alerts(&self) {
        let mut engine = self.engine();
        let open = engine.open_alerts();
        let mut book = self.alerts.write().unwrap_or_else(|e| e.into_inner());
        let mut closed = Vec::new();
        for a in &open {
            let rule = &engine.rules()[a.rule];
            let Some(device) = self.registry.device(&a.device) else {
                continue;
            };
            let fired = book.open(self.opening(
                &engine,
                rule,
                device,
                a.opened_ms,
                a.seq,
                &a.values,
                vec!["open before the gateway restarted".into()],
                None,
            ));
            match fired {
                Fired::Known(alert) if alert.state == State::Closed => {
                    closed.push((a.device.clone(), a.rule));
                }
                Fired::Opened(_) if a.cleared => {
                    book.cleared(&a.device, &rule.name, a.opened_ms);
                }
                _ => {}
            }
        }
        // Closed by a person after the rules' state was saved: the rules hear of it again.
        for (device, rule) in closed {
            engine.close(&device, rule);
        }
        if !open.is_empty() {
            tracing::info!(
                alerts = open.len(),
                "alerts open before the restart are open again"
            );
        }
    }

    /// The alert `rule` opens for `device`: one place for what an alert takes from its rule, for
    /// alerts opening now and for those open before a restart.
    #[allow(clippy::too_many_arguments)]
    fn opening<'a>(
        &'a self,
        engine: &Engine,
        rule: &'a Rule,
        device: &'a Device,
        opened_ms: u64,
        seq: u64,
        values: &[(String, Val)],
        why: Vec<String>,
        silenced_by: Option<String>,
    ) -> Opening<'a> {
        Opening {
            alert_id: alert_id(opened_ms, &device.id, seq, &rule.name),
            rule: &rule.name,
            severity: rule.severity,
            device,
            assignee: self.registry.on_duty(&device.grid, opened_ms),
            opened_ms,
            messages: rules::messages(rule, device, values, opened_ms, engine.utc_offset_min()),
            language: self.language,
            needs_person: rule.needs_person,
            ack_deadline_ms: rule.ack_deadline_ms,
            on_site_deadline_ms: rule.on_site_deadline_ms,
            escalation: rule.escalation.clone(),
            evidence: Evidence {
                readings: values.iter().cloned().collect(),
                why,
                seq,
            },
            silenced_by,
        }
    }

    fn apply_rules(&self, d: &Decoded<'_>, received_ms: u64) {
        let Body::Message(msg) = &d.body else { return };
        let data = rules::readings(msg);
        let mut out = Vec::new();
        self.engine().observe(
            &Msg {
                device: &d.device.id,
                seq: msg.seq,
                at_ms: received_ms,
                event: msg.event,
                data: &data,
            },
            &mut out,
        );
        if !out.is_empty() {
            self.apply_transitions(out);
        }
    }

    /// Turns what the engine says into alerts, written to the case log.
    fn apply_transitions(&self, out: Vec<Transition>) {
        let mut engine = self.engine();
        let mut closed = Vec::new();
        for t in out {
            let rule = &engine.rules()[t.rule];
            let Some(device) = self.registry.device(&t.device) else {
                continue;
            };
            let mut book = self.alerts.write().unwrap_or_else(|e| e.into_inner());
            match t.change {
                Change::Opened => {
                    let fired = book.open(self.opening(
                        &engine,
                        rule,
                        device,
                        t.opened_ms,
                        t.seq,
                        &t.values,
                        t.why,
                        t.silenced_by,
                    ));
                    drop(book);
                    if let Fired::Known(alert) = &fired {
                        // Closed by a person after the rules' state was saved.
                        if alert.state == State::Closed {
                            closed.push((t.device.clone(), t.rule));
                        }
                    }
                    self.announce(fired);
                }
                Change::Updated => {
                    if let Some(alert) = book.repeat(&t.device, &rule.name, t.at_ms) {
                        drop(book);
                        AlertRepeated { alert: &alert }.emit(&self.metrics);
                        let _ = self.alert_changes.send(alert);
                    }
                }
                Change::Cleared | Change::Resolved => {
                    let (ended, how) = if t.change == Change::Cleared {
                        let cleared = book.cleared(&t.device, &rule.name, t.at_ms);
                        (cleared.into_iter().collect(), "cleared")
                    } else {
                        (book.resolve(&t.device, &rule.name, t.at_ms), "resolved")
                    };
                    drop(book);
                    for alert in ended {
                        AlertEnded { alert: &alert, how }.emit(&self.metrics);
                        let _ = self.alert_changes.send(alert);
                    }
                }
            }
        }
        for (device, rule) in closed {
            engine.close(&device, rule);
        }
        drop(engine);
        self.record();
    }

    /// Counts, logs and broadcasts what an opening did; a new alert is also sent to whoever is
    /// on duty for its device, unless a maintenance window holds it back.
    fn announce(&self, fired: Fired) {
        let alert = match fired {
            Fired::Opened(alert) => {
                AlertOpened { alert: &alert }.emit(&self.metrics);
                match &alert.silenced_by {
                    Some(silence) => AlertSilenced {
                        alert: &alert,
                        silence,
                    }
                    .emit(&self.metrics),
                    None => self.notify(&alert),
                }
                alert
            }
            Fired::Repeated(alert) => {
                AlertRepeated { alert: &alert }.emit(&self.metrics);
                alert
            }
            Fired::Grouped { alert, storm, new } => {
                AlertOpened { alert: &alert }.emit(&self.metrics);
                if new {
                    AlertOpened { alert: &storm }.emit(&self.metrics);
                    self.notify(&storm);
                }
                let _ = self.alert_changes.send(*storm);
                *alert
            }
            // Seen before the restart: said and sent then.
            Fired::Known(_) => return,
        };
        // Nobody listening is fine: live views subscribe when they open.
        let _ = self.alert_changes.send(alert);
    }

    /// Sends a new alert to the worker on duty for its grid; with nobody on duty, to the first
    /// of backup, grid leader and duty officer who is there (the gateway's own alerts, which
    /// belong to no grid, go to the duty officer).
    fn notify(&self, alert: &Alert) {
        let staff = self.registry.staff();
        let now = crate::clock::now_ms();
        let first = [Role::OnDuty, Role::Backup, Role::Leader, Role::DutyOfficer]
            .into_iter()
            .filter_map(|role| staff.holder(&alert.device.grid, role, now))
            .find(|w| !w.reach.is_empty());
        match first {
            Some(worker) => self.deliver(alert, worker, "alert.opened", "opened"),
            None => NotifyUnroutable {
                alert_id: &alert.alert_id,
                grid: &alert.device.grid,
                why: "nobody is on duty for this grid, and no backup, leader or duty officer",
            }
            .emit(&self.metrics),
        }
    }

    /// Sends `alert` to `worker` on every channel they have: their app's webhook gets
    /// `{"type": kind, "data": alert}`, group robots and e-mail a text for people. Idempotency
    /// ids are `{alert_id}.{step}.{worker}` for the webhook, with `.{channel}` after it for the
    /// others. Each is written to the case log first (after the alert itself); an id the log
    /// already has was sent before a restart and is not sent again.
    fn deliver(&self, alert: &Alert, worker: &Worker, kind: &str, step: &str) {
        if worker.reach.is_empty() {
            return NotifyUnroutable {
                alert_id: &alert.alert_id,
                grid: &alert.device.grid,
                why: "the worker has no webhook, robot or e-mail",
            }
            .emit(&self.metrics);
        }
        self.record();
        let (title, text) = crate::alerts::text::notice(
            alert,
            step != "opened",
            self.language,
            self.utc_offset_min,
        );
        for reach in &worker.reach {
            let mut id = format!("{}.{step}.{}", alert.alert_id, worker.id);
            let (title, body) = if reach.channel == notify::Channel::Webhook {
                let body = serde_json::json!({ "type": kind, "data": alert });
                (String::new(), body.to_string())
            } else {
                id = format!("{id}.{}", reach.channel.as_str());
                (title.clone(), text.clone())
            };
            let delivery = Delivery {
                id,
                alert_id: alert.alert_id.clone(),
                worker: worker.id.clone(),
                channel: reach.channel,
                target: reach.target.clone(),
                title,
                body,
                secret: reach.secret.clone(),
                mention: worker.phone.iter().cloned().collect(),
            };
            match self.cases.queue(&delivery, crate::clock::now_ms()) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => CaseLogFailed {
                    operation: "write",
                    error: &e,
                }
                .emit(&self.metrics),
            }
            if !self.notifier.send(delivery) {
                NotifyUnroutable {
                    alert_id: &alert.alert_id,
                    grid: &alert.device.grid,
                    why: "the notifier has stopped",
                }
                .emit(&self.metrics);
            }
        }
    }

    /// Moves alerts nobody acknowledged in time up their chain; the new level and everyone
    /// before it hear of it.
    fn escalate(&self, now_ms: u64) {
        let staff = self.registry.staff();
        let moved = self
            .alerts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .escalate(now_ms, |a| {
                staff.chain(&a.device.grid, &a.escalation, now_ms)
            });
        if moved.is_empty() {
            return;
        }
        for (alert, chain) in moved {
            AlertEscalated { alert: &alert }.emit(&self.metrics);
            let level = usize::from(alert.escalation_level);
            let step = format!("escalated{level}");
            for worker in &chain {
                self.deliver(&alert, worker, "alert.escalated", &step);
            }
            let _ = self.alert_changes.send(alert);
        }
    }
}
