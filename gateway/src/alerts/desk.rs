//! Where people's actions on alerts land, whether they come from the HTTP API, the control-room
//! screen or a worker app over MQTT: the lifecycle step, written to the case log and made
//! durable before anyone is told it happened; "help is coming" to a device whose kind shows it (an SOS
//! button); the rules told
//! of a close, so the next occurrence opens a new alert; the case metrics; the live views.

use std::sync::{Arc, Mutex, RwLock};

use gridwatch_edge_rules::Engine;
use tokio::sync::broadcast;

use super::case_log::{CaseLog, Sent};
use super::lifecycle::Action;
use super::{ActError, Alert, AlertBook};
use crate::catalogue::Catalogue;
use crate::ingest::mqtt::Commander;
use crate::metrics::events::{CaseLogFailed, CaseStep};
use crate::metrics::Metrics;

/// The handle every front end holds to act on alerts.
#[derive(Clone)]
pub struct Desk {
    /// Every alert.
    pub alerts: Arc<RwLock<AlertBook>>,
    /// Where changes are written down.
    pub cases: CaseLog,
    /// The rule engine.
    pub engine: Arc<Mutex<Engine>>,
    /// Sends commands to devices.
    pub commander: Commander,
    /// The kind catalogue: which kinds hear that help is coming.
    pub catalogue: Arc<Catalogue>,
    /// Alert changes, for live views and the MQTT alerts topic.
    pub alert_changes: broadcast::Sender<Alert>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl Desk {
    /// `by` takes `action` on the alert `id`, with an optional note.
    pub async fn act(
        &self,
        id: &str,
        action: Action,
        by: &str,
        note: Option<&str>,
    ) -> Result<Alert, ActError> {
        let now = crate::clock::now_ms();
        let (alert, written) = {
            // Written while the book is held, so changes reach the log in the order they
            // happened; made durable below, before anyone is told.
            let mut book = self.alerts.write().unwrap_or_else(|e| e.into_inner());
            let alert = book.act(id, action, by, note, now)?;
            (alert, self.cases.alerts(book.take_changes()))
        };
        if let Err(e) = written {
            CaseLogFailed {
                operation: "write",
                error: &e,
            }
            .emit(&self.metrics);
        }
        let cases = self.cases.clone();
        let written = tokio::task::spawn_blocking(move || cases.sync()).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => CaseLogFailed {
                operation: "sync",
                error: &e,
            }
            .emit(&self.metrics),
            Err(e) => CaseLogFailed {
                operation: "sync",
                error: &e,
            }
            .emit(&self.metrics),
        }
        let tells_device = self
            .catalogue
            .kind(&alert.device.kind)
            .is_some_and(|k| k.help_coming);
        if action == Action::Acknowledge && tells_device {
            self.help_is_coming(&alert, by);
        }
        if action == Action::Close {
            let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(rule) = engine.rule_index(&alert.rule) {
                engine.close(&alert.device.id, rule);
            }
        }
        CaseStep {
            alert: &alert,
            step: alert.state.as_str(),
            at_ms: now,
        }
        .emit(&self.metrics);
        // Nobody listening is fine.
        let _ = self.alert_changes.send(alert.clone());
        Ok(alert)
    }

    /// The alert `id`, with every notification sent about it.
    pub fn get(&self, id: &str) -> Option<(Alert, Vec<Sent>)> {
        let alert = self
            .alerts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)?
            .clone();
        Some((alert, self.cases.sent_for(id)))
    }

    /// Tells the resident's SOS button that a worker has taken the call: the node shows or says
    /// "help is coming" (`{"v":1,"ts":…,"cmd":"help_coming","alert_id":"…","by":"王芳"}`).
    fn help_is_coming(&self, alert: &Alert, by: &str) {
        let payload = serde_json::json!({
            "v": 1,
            "ts": crate::clock::now_ms(),
            "cmd": "help_coming",
            "alert_id": alert.alert_id,
            "by": by,
        });
        let sent = self.commander.send(
            &alert.device.community,
            &alert.device.id,
            payload.to_string().into_bytes(),
        );
        if !sent {
            tracing::warn!(alert_id = %alert.alert_id, "cannot queue \"help is coming\" for the device: the broker queue is full");
        }
    }
}
