//! The one straight line a message takes: decode and verify, the journal, rules, alerts and
//! notification, then the ack to the broker once its journal record is on disk.
//!
//! The pipeline is a driver that handles one message at a time, events before telemetry. Accepted
//! messages are staged in the journal; a group of them is written and fsync'd while the next group
//! gathers, and the group's PUBACKs go out only after its fsync. Rules run on arrival, so an SOS
//! is not held up by the disk; the alert ids are derived from the message, so running the same
//! message again after a crash opens the same alert. The time-series sink reads the journal on
//! its own.
//!
//! Every message taken ends as exactly one of accepted or rejected; the ingest driver counts the
//! ones it shed as dropped. So `received = accepted + rejected + dropped` once the queues are empty.

use std::io;
use std::sync::{Arc, RwLock};

use gridwatch_edge_rules::{evaluate, Firing, Observation, Severity};
use rumqttc::Publish;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::alerts::{alert_id, gateway_device, Alert, AlertBook, Fired, JOURNAL_WRITE_FAILED};
use crate::backoff::Backoff;
use crate::config::Language;
use crate::decode::{decode, Body, Channel, Decoded};
use crate::ingest::mqtt::{channel_label, Acker, Incoming};
use crate::journal::{self, Class, Group, JournalHandle, Position};
use crate::metrics::events::{
    AlertOpened, AlertRepeated, JournalCommitFailed, JournalShed, MessageAccepted, MessageReceived,
    MessageRejected, NotifyUnroutable,
};
use crate::metrics::Metrics;
use crate::notify::outbox::{self, Outbox};
use crate::notify::{Delivery, Notifier};
use crate::registry::Registry;

/// Everything the pipeline needs, built by [`crate::app`].
pub struct Pipeline {
    /// The community registry.
    pub registry: Arc<Registry>,
    /// Payloads above this are rejected as oversized.
    pub max_payload_bytes: usize,
    /// The language of alert messages.
    pub language: Language,
    /// The most messages one fsync covers.
    pub max_group: usize,
    /// The journal.
    pub journal: JournalHandle,
    /// Pending deliveries, which hold their records in the journal.
    pub outbox: Outbox,
    /// Where notifications go.
    pub notifier: Notifier,
    /// Sends PUBACKs.
    pub acker: Acker,
    /// Every alert, shared with the HTTP API.
    pub alerts: Arc<RwLock<AlertBook>>,
    /// Alert changes, for live views.
    pub alert_changes: broadcast::Sender<Alert>,
    /// Waits between attempts when the journal cannot be written.
    pub retry: Backoff,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

type Writing = (JoinHandle<(Group, io::Result<Position>)>, Vec<Publish>);

impl Pipeline {
    /// Replays the events the alert outbox had not finished with, then handles messages until
    /// `shutdown` turns true or both queues close.
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
                self.outbox.committed(end);
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
        let firing = Firing {
            rule: JOURNAL_WRITE_FAILED,
            severity: Severity::Critical,
            at_ms: now,
        };
        let device = gateway_device(&self.registry.community);
        let id = alert_id(now, &device.id, 0, firing.rule);
        let fired = self.alerts.write().unwrap_or_else(|e| e.into_inner()).fire(
            &firing,
            &device,
            None,
            id,
            self.language,
        );
        self.announce(fired, None);
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
        let accepted = match decode(topic, &m.publish.payload, &registry, self.max_payload_bytes) {
            Err(rejection) => {
                MessageRejected {
                    reason: rejection.reason.as_str(),
                    topic,
                    detail: &rejection.detail,
                }
                .emit(&self.metrics);
                false
            }
            Ok(decoded) => {
                let class = if decoded.channel == Channel::Event {
                    Class::Event
                } else {
                    Class::Telemetry
                };
                let pos =
                    self.journal
                        .lock()
                        .stage(class, m.received_ms, topic, &m.publish.payload);
                self.apply_rules(&decoded, &registry, m.received_ms, pos);
                MessageAccepted { channel }.emit(&self.metrics);
                true
            }
        };
        if accepted {
            staged.push(m.publish);
        } else {
            // Nothing to keep: acknowledged at once, so the broker does not send it again.
            self.acker.ack(m.publish);
        }
    }

    /// Runs the rules again over the events the alert outbox had not finished with before the
    /// last stop, so their alerts open and their webhooks go out (with the same ids as before).
    async fn replay(&mut self) {
        let journal = self.journal.clone();
        let records = tokio::task::spawn_blocking(move || {
            let (from, segments, dir) = {
                let j = journal.lock();
                let (from, _) = j.cursor(outbox::CURSOR);
                (from, j.segments_from(from), j.dir().to_owned())
            };
            let mut out = Vec::new();
            let read = journal::read(&dir, &segments, from, |pos, rec| {
                if rec.class == Class::Event {
                    out.push((
                        pos,
                        rec.received_ms,
                        rec.topic.to_owned(),
                        rec.payload.to_vec(),
                    ));
                }
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
                events = records.len(),
                "replaying events whose alerts were not yet delivered"
            );
        }
        let registry = Arc::clone(&self.registry);
        for (pos, received_ms, topic, payload) in records {
            if let Ok(decoded) = decode(&topic, &payload, &registry, self.max_payload_bytes) {
                self.apply_rules(&decoded, &registry, received_ms, pos);
            }
        }
    }

    fn apply_rules(&self, d: &Decoded<'_>, registry: &Registry, received_ms: u64, pos: Position) {
        let Body::Message(msg) = &d.body else { return };
        let obs = Observation {
            kind: &d.device.kind,
            event: msg.event,
            at_ms: received_ms,
        };
        let Some(firing) = evaluate(&obs) else { return };
        let worker = registry.on_duty(&d.device.grid);
        let id = alert_id(received_ms, &d.device.id, msg.seq, firing.rule);
        let fired = self.alerts.write().unwrap_or_else(|e| e.into_inner()).fire(
            &firing,
            d.device,
            worker.map(|w| &**w),
            id,
            self.language,
        );
        self.announce(fired, Some((registry, pos)));
    }

    /// Counts, logs and broadcasts what a firing did; a new alert is also sent to whoever is on
    /// duty for its device (`route`), when it has one.
    fn announce(&self, fired: Fired, route: Option<(&Registry, Position)>) {
        let alert = match fired {
            Fired::Opened(alert) => {
                AlertOpened { alert: &alert }.emit(&self.metrics);
                match route {
                    Some((registry, pos)) => self.notify(&alert, registry, pos),
                    None => NotifyUnroutable {
                        alert_id: &alert.alert_id,
                        grid: "",
                        why:
                            "the gateway's own alerts go to the control room (no duty officer yet)",
                    }
                    .emit(&self.metrics),
                }
                alert
            }
            Fired::Repeated(alert) => {
                AlertRepeated { alert: &alert }.emit(&self.metrics);
                alert
            }
        };
        // Nobody listening is fine: live views subscribe when they open.
        let _ = self.alert_changes.send(alert);
    }

    fn notify(&self, alert: &Alert, registry: &Registry, pos: Position) {
        let grid = &*alert.device.grid;
        let unroutable = |why| {
            NotifyUnroutable {
                alert_id: &alert.alert_id,
                grid,
                why,
            }
            .emit(&self.metrics)
        };
        let Some(worker) = registry.on_duty(grid) else {
            return unroutable("nobody is on duty for this grid");
        };
        let Some(url) = &worker.webhook else {
            return unroutable("the worker on duty has no webhook");
        };
        let body = serde_json::json!({ "type": "alert.opened", "data": alert });
        let delivery = Delivery {
            id: format!("{}.opened.{}", alert.alert_id, worker.id),
            url: url.clone(),
            body: serde_json::to_vec(&body).expect("alerts serialize").into(),
            position: pos,
        };
        self.outbox.add(pos);
        if !self.notifier.send(delivery) {
            self.outbox.done(pos);
            unroutable("the notifier has stopped");
        }
    }
}
