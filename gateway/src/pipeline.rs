//! The one straight line a message takes: decode and verify, rules, alerts and notification,
//! time-series batching, then the ack to the broker.
//!
//! The pipeline is a driver that owns the per-message state (the open batch) and handles one
//! message at a time, events before telemetry. Every message it takes ends as exactly one of
//! accepted or rejected; the ingest driver counts the ones it shed as dropped. So
//! `received = accepted + rejected + dropped`, per channel, at every moment nothing is in a queue.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use gridwatch_edge_rules::{evaluate, Observation};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::{sleep_until, Instant};

use crate::alerts::{Alert, AlertBook, Fired};
use crate::config::Language;
use crate::decode::{decode, Body, Decoded};
use crate::ingest::mqtt::{channel_label, Acker, Incoming};
use crate::metrics::events::{
    AlertOpened, AlertRepeated, LineUnwritable, MessageAccepted, MessageReceived, MessageRejected,
    NotifyUnroutable, TsdbLinesDropped,
};
use crate::metrics::Metrics;
use crate::notify::{Delivery, Notifier};
use crate::registry::Registry;
use crate::sinks::tsdb::writer::SinkHandle;
use crate::sinks::tsdb::{Batch, Batcher};

/// Everything the pipeline needs, built by [`crate::app`].
pub struct Pipeline {
    /// The community registry.
    pub registry: Arc<Registry>,
    /// Payloads above this are rejected as oversized.
    pub max_payload_bytes: usize,
    /// The language of alert messages.
    pub language: Language,
    /// How long a batch may stay open.
    pub flush_interval: Duration,
    /// The open batch.
    pub batcher: Batcher,
    /// Where full batches go.
    pub sink: SinkHandle,
    /// Where notifications go.
    pub notifier: Notifier,
    /// Sends PUBACKs.
    pub acker: Acker,
    /// Every alert, shared with the HTTP API.
    pub alerts: Arc<RwLock<AlertBook>>,
    /// Alert changes, for live views.
    pub alert_changes: broadcast::Sender<Alert>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl Pipeline {
    /// Handles messages until `shutdown` turns true or both queues close; then sends the open batch.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Incoming>,
        mut telemetry: mpsc::Receiver<Incoming>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let deadline = self.batcher.deadline(self.flush_interval);
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                Some(m) = events.recv() => self.handle(m).await,
                Some(m) = telemetry.recv() => self.handle(m).await,
                () = async { sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {
                    if let Some(b) = self.batcher.take() {
                        self.send(b).await;
                    }
                }
                else => break,
            }
        }
        if let Some(b) = self.batcher.take() {
            self.send(b).await;
        }
    }

    async fn send(&self, batch: Batch) {
        if let Err(b) = self.sink.send(batch).await {
            TsdbLinesDropped {
                lines: b.lines,
                reason: "sink_stopped",
            }
            .emit(&self.metrics);
        }
    }

    async fn handle(&mut self, m: Incoming) {
        let topic = m.publish.topic.as_str();
        let channel = channel_label(topic);
        MessageReceived { channel }.emit(&self.metrics);
        let registry = Arc::clone(&self.registry);
        match decode(topic, &m.publish.payload, &registry, self.max_payload_bytes) {
            Err(rejection) => MessageRejected {
                reason: rejection.reason.as_str(),
                topic,
                detail: &rejection.detail,
            }
            .emit(&self.metrics),
            Ok(decoded) => {
                self.apply_rules(&decoded, &registry, m.received_ms);
                match self.batcher.push(&decoded, m.received_ms, Instant::now()) {
                    Ok(Some(batch)) => self.send(batch).await,
                    Ok(None) => {}
                    Err(e) => LineUnwritable {
                        device: &decoded.device.id,
                        error: &e,
                    }
                    .emit(&self.metrics),
                }
                MessageAccepted { channel }.emit(&self.metrics);
            }
        }
        self.acker.ack(&m.publish).await;
    }

    fn apply_rules(&self, d: &Decoded<'_>, registry: &Registry, received_ms: u64) {
        let Body::Message(msg) = &d.body else { return };
        let obs = Observation {
            kind: &d.device.kind,
            event: msg.event,
            at_ms: received_ms,
        };
        let Some(firing) = evaluate(&obs) else { return };
        let worker = registry.on_duty(&d.device.grid);
        let fired = self.alerts.write().unwrap_or_else(|e| e.into_inner()).fire(
            &firing,
            d.device,
            worker.map(|w| &**w),
            crate::clock::new_alert_id(),
            self.language,
        );
        let alert = match fired {
            Fired::Opened(alert) => {
                AlertOpened { alert: &alert }.emit(&self.metrics);
                self.notify(&alert, registry);
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

    fn notify(&self, alert: &Alert, registry: &Registry) {
        let grid = alert.device.grid.as_str();
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
        };
        if !self.notifier.send(delivery) {
            unroutable("the notifier has stopped");
        }
    }
}
