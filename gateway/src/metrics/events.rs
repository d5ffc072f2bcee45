//! One small struct per internal event that matters: each logs itself and bumps its counter.
//!
//! Events that can repeat at message rate (rejections, drops, retries) log at most once per
//! [`LOG_INTERVAL`] per reason and say how many lines they held back, so a flood from one broken
//! device cannot flood the log; the counters always count every occurrence.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Metrics;

/// The shortest gap between two log lines for the same rate-limited reason.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Remembers when each rate-limited reason last logged.
#[derive(Default)]
pub struct LogLimiter {
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    /// `Some(held back since the last line)` when a line for `key` may be written now.
    fn allow(&self, key: &'static str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(key) {
            Some((at, held)) if now.duration_since(*at) < LOG_INTERVAL => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// Runs `log` if `key` may log now; otherwise counts the held-back line.
fn limited(m: &Metrics, key: &'static str, log: impl FnOnce(u64)) {
    match m.log_limit.allow(key, Instant::now()) {
        Some(held) => log(held),
        None => m.logs_suppressed.inc(),
    }
}

/// A message was taken from the broker.
pub struct MessageReceived<'a> {
    pub channel: &'a str,
}

impl MessageReceived<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.received_by[super::channel_index(self.channel)].inc();
    }
}

/// A message passed every check and was handed on.
pub struct MessageAccepted<'a> {
    pub channel: &'a str,
}

impl MessageAccepted<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.accepted_by[super::channel_index(self.channel)].inc();
    }
}

/// A message was refused.
pub struct MessageRejected<'a> {
    pub reason: &'static str,
    pub topic: &'a str,
    pub detail: &'a dyn Display,
}

impl MessageRejected<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.rejected.with_label_values(&[self.reason]).inc();
        limited(m, self.reason, |held| {
            tracing::warn!(
                reason = self.reason,
                topic = self.topic,
                held_back = held,
                "message rejected: {}",
                self.detail
            )
        });
    }
}

/// A message was shed under overload.
pub struct MessageDropped<'a> {
    pub reason: &'static str,
    pub topic: &'a str,
}

impl MessageDropped<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.dropped.with_label_values(&[self.reason]).inc();
        limited(m, self.reason, |held| {
            tracing::warn!(
                reason = self.reason,
                topic = self.topic,
                held_back = held,
                "message dropped"
            )
        });
    }
}

/// The broker accepted the gateway's connection.
pub struct MqttConnected {
    pub session_present: bool,
}

impl MqttConnected {
    pub fn emit(&self, m: &Metrics) {
        m.mqtt_connected.set(1);
        tracing::info!(
            session_present = self.session_present,
            "connected to the MQTT broker"
        );
    }
}

/// The broker connection failed or dropped.
pub struct MqttConnectionError<'a> {
    pub error: &'a dyn Display,
    pub reason: &'static str,
    pub retry_in: Duration,
}

impl MqttConnectionError<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.mqtt_connected.set(0);
        m.mqtt_connection_errors
            .with_label_values(&[self.reason])
            .inc();
        limited(m, "mqtt_connection_error", |held| {
            tracing::warn!(
                reason = self.reason,
                retry_in_ms = self.retry_in.as_millis() as u64,
                held_back = held,
                "MQTT connection error: {}",
                self.error
            )
        });
    }
}

/// A serial port with wired nodes was opened.
pub struct SerialPortOpened<'a> {
    pub port: &'a str,
    pub baud: u32,
}

impl SerialPortOpened<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.serial_port_open.with_label_values(&[self.port]).set(1);
        tracing::info!(port = self.port, baud = self.baud, "serial port open");
    }
}

/// A serial port could not be opened, or failed while read (an adapter unplugged).
pub struct SerialPortError<'a> {
    pub port: &'a str,
    pub error: &'a dyn Display,
    pub retry_in: Duration,
}

impl SerialPortError<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.serial_port_open.with_label_values(&[self.port]).set(0);
        m.serial_port_errors.with_label_values(&[self.port]).inc();
        limited(m, "serial_port_error", |held| {
            tracing::warn!(
                port = self.port,
                retry_in_ms = self.retry_in.as_millis() as u64,
                held_back = held,
                "serial port error: {}",
                self.error
            )
        });
    }
}

/// A rule fired and a new alert opened.
pub struct AlertOpened<'a> {
    pub alert: &'a crate::alerts::Alert,
}

impl AlertOpened<'_> {
    pub fn emit(&self, m: &Metrics) {
        let a = self.alert;
        m.alerts_opened
            .with_label_values(&[a.rule.as_str(), a.severity.as_str()])
            .inc();
        tracing::info!(alert_id = %a.alert_id, rule = %a.rule, device = %a.device.id, "alert opened: {}", a.message);
    }
}

/// A rule fired again for an alert that is still open.
pub struct AlertRepeated<'a> {
    pub alert: &'a crate::alerts::Alert,
}

impl AlertRepeated<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.alerts_repeated
            .with_label_values(&[self.alert.rule.as_str()])
            .inc();
        tracing::info!(alert_id = %self.alert.alert_id, occurrences = self.alert.occurrences, "alert repeated");
    }
}

/// An open alert's condition ended: it resolved, or it cleared and waits for a person to close it.
pub struct AlertEnded<'a> {
    pub alert: &'a crate::alerts::Alert,
    /// `resolved` or `cleared`.
    pub how: &'static str,
}

impl AlertEnded<'_> {
    pub fn emit(&self, m: &Metrics) {
        let a = self.alert;
        m.alerts_ended
            .with_label_values(&[a.rule.as_str(), self.how])
            .inc();
        tracing::info!(alert_id = %a.alert_id, rule = %a.rule, device = %a.device.id, how = self.how, "alert condition ended");
    }
}

/// An alert opened during a maintenance window: it is listed, but pages nobody.
pub struct AlertSilenced<'a> {
    pub alert: &'a crate::alerts::Alert,
    pub silence: &'a str,
}

impl AlertSilenced<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.alerts_silenced
            .with_label_values(&[self.alert.rule.as_str()])
            .inc();
        tracing::warn!(alert_id = %self.alert.alert_id, silence = self.silence, "alert opened during a maintenance window: nobody is paged");
    }
}

/// Nobody acknowledged an alert in time: it went to the next level of its chain.
pub struct AlertEscalated<'a> {
    pub alert: &'a crate::alerts::Alert,
}

impl AlertEscalated<'_> {
    pub fn emit(&self, m: &Metrics) {
        let a = self.alert;
        let level = a.escalation_level.to_string();
        m.alerts_escalated
            .with_label_values(&[a.rule.as_str(), level.as_str()])
            .inc();
        tracing::warn!(alert_id = %a.alert_id, level = a.escalation_level, assignee = ?a.assignee.as_ref().map(|w| &w.name), "alert not acknowledged in time: escalated");
    }
}

/// A person moved an alert to `step` (acknowledged, on_site, resolved, closed).
pub struct CaseStep<'a> {
    pub alert: &'a crate::alerts::Alert,
    pub step: &'static str,
    pub at_ms: u64,
}

impl CaseStep<'_> {
    pub fn emit(&self, m: &Metrics) {
        let a = self.alert;
        let seconds = self.at_ms.saturating_sub(a.started_at) as f64 / 1000.0;
        m.case_seconds
            .with_label_values(&[self.step, &*a.device.kind, a.severity.as_str()])
            .observe(seconds);
        if self.step == "closed" {
            m.alerts_closed.with_label_values(&[a.rule.as_str()]).inc();
        }
        tracing::info!(alert_id = %a.alert_id, seconds, "alert {}", self.step);
    }
}

/// The rule engine's state could not be saved; a restart would forget timers since the last save.
pub struct RulesSaveFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl RulesSaveFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.rules_saves.with_label_values(&["failed"]).inc();
        limited(m, "rules_save", |held| {
            tracing::warn!(
                held_back = held,
                "cannot save the rule engine's state (a restart now would forget timers since the last save): {}",
                self.error
            )
        });
    }
}

/// The case log of alerts and notifications could not be written, synced or rewritten.
pub struct CaseLogFailed<'a> {
    pub operation: &'static str,
    pub error: &'a dyn std::fmt::Display,
}

impl CaseLogFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.case_log_errors.with_label_values(&[self.operation]).inc();
        limited(m, "case_log", |held| {
            tracing::error!(
                operation = self.operation,
                held_back = held,
                "case log: {} (alerts still go out; a restart now may forget or repeat some)",
                self.error
            )
        });
    }
}

/// An alert has nobody to go to: no worker on duty for its grid, or no webhook for that worker.
pub struct NotifyUnroutable<'a> {
    pub alert_id: &'a str,
    pub grid: &'a str,
    pub why: &'static str,
}

impl NotifyUnroutable<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.notify_unroutable.inc();
        tracing::error!(
            alert_id = self.alert_id,
            grid = self.grid,
            "alert cannot be delivered: {}",
            self.why
        );
    }
}

/// A delivery attempt failed and will be retried.
pub struct DeliveryFailed<'a> {
    pub delivery_id: &'a str,
    pub channel: &'static str,
    pub attempt: u32,
    pub error: &'a dyn Display,
    pub retry_in: Duration,
}

impl DeliveryFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.notify_attempts
            .with_label_values(&[self.channel, "failed"])
            .inc();
        limited(m, "delivery_failed", |held| {
            tracing::warn!(
                delivery_id = self.delivery_id,
                channel = self.channel,
                attempt = self.attempt,
                retry_in_ms = self.retry_in.as_millis() as u64,
                held_back = held,
                "delivery failed: {}",
                self.error
            )
        });
    }
}

/// A receiver accepted a delivery.
pub struct DeliverySucceeded<'a> {
    pub delivery_id: &'a str,
    pub channel: &'static str,
    pub attempt: u32,
}

impl DeliverySucceeded<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.notify_attempts
            .with_label_values(&[self.channel, "delivered"])
            .inc();
        tracing::info!(
            delivery_id = self.delivery_id,
            channel = self.channel,
            attempt = self.attempt,
            "delivered"
        );
    }
}

/// The store acknowledged a batch.
pub struct TsdbBatchWritten {
    pub lines: usize,
}

impl TsdbBatchWritten {
    pub fn emit(&self, m: &Metrics) {
        m.tsdb_batches.with_label_values(&["ok"]).inc();
        m.tsdb_lines_written.inc_by(self.lines as u64);
        tracing::debug!(lines = self.lines, "batch written");
    }
}

/// A batch write failed in a way worth retrying (timeout, 429, 5xx, connection refused).
pub struct TsdbBatchFailed<'a> {
    pub lines: usize,
    pub error: &'a dyn Display,
    pub retry_in: Duration,
}

impl TsdbBatchFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.tsdb_batches.with_label_values(&["retry"]).inc();
        limited(m, "tsdb_batch_failed", |held| {
            tracing::warn!(
                lines = self.lines,
                retry_in_ms = self.retry_in.as_millis() as u64,
                held_back = held,
                "time-series write failed, will retry: {}",
                self.error
            )
        });
    }
}

/// The store refused a batch as malformed; it went to the dead-letter folder instead.
pub struct TsdbBatchRejected<'a> {
    pub lines: usize,
    pub error: &'a dyn Display,
    pub dead_letter: &'a dyn Display,
}

impl TsdbBatchRejected<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.tsdb_batches.with_label_values(&["rejected"]).inc();
        m.tsdb_lines_dropped
            .with_label_values(&["rejected"])
            .inc_by(self.lines as u64);
        tracing::error!(lines = self.lines, dead_letter = %self.dead_letter, "time-series store rejected a batch: {}", self.error);
    }
}

/// A journal record could not become a line (the registry changed, or a value line protocol
/// cannot carry); it is skipped.
pub struct LineUnwritable<'a> {
    pub error: &'a dyn Display,
}

impl LineUnwritable<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.tsdb_lines_dropped
            .with_label_values(&["unwritable"])
            .inc();
        limited(m, "line_unwritable", |held| {
            tracing::warn!(
                held_back = held,
                "reading cannot be written as line protocol: {}",
                self.error
            )
        });
    }
}

/// A group could not be written to the journal; its messages stay unacknowledged and it is retried.
pub struct JournalCommitFailed<'a> {
    pub error: &'a dyn Display,
    pub waiting: usize,
}

impl JournalCommitFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.journal_commit_failures.inc();
        limited(m, "journal_commit_failed", |held| {
            tracing::error!(
                waiting = self.waiting,
                held_back = held,
                "cannot write the journal; not acknowledging anything until it works: {}",
                self.error
            )
        });
    }
}

/// The journal went over its disk budget and shed its oldest unsent telemetry.
pub struct JournalShed {
    pub telemetry_lost: u64,
    pub events_kept: u64,
}

impl JournalShed {
    pub fn emit(&self, m: &Metrics) {
        m.tsdb_lines_dropped
            .with_label_values(&["journal_budget"])
            .inc_by(self.telemetry_lost);
        limited(m, "journal_shed", |held| {
            tracing::warn!(
                telemetry_lost = self.telemetry_lost,
                events_kept = self.events_kept,
                held_back = held,
                "journal over its disk budget: oldest unsent telemetry dropped, events kept"
            )
        });
    }
}

/// A worker app's action on an alert over MQTT was handled.
pub struct WorkerActed<'a> {
    pub topic: &'a str,
    pub outcome: &'static str,
    pub error: Option<&'a str>,
}

impl WorkerActed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.worker_actions.with_label_values(&[self.outcome]).inc();
        match self.error {
            None => tracing::info!(topic = self.topic, "worker app action done"),
            Some(e) => limited(m, "worker_action", |held| {
                tracing::warn!(
                    topic = self.topic,
                    outcome = self.outcome,
                    held_back = held,
                    "worker app action not done: {e}"
                )
            }),
        }
    }
}

/// A changed registry file was read and its staff taken.
pub struct RosterReloaded {
    pub workers: usize,
    pub shifts: usize,
    pub devices_differ: bool,
}

impl RosterReloaded {
    pub fn emit(&self, m: &Metrics) {
        m.roster_reloads.with_label_values(&["applied"]).inc();
        tracing::info!(
            workers = self.workers,
            shifts = self.shifts,
            "registry file changed: workers, duty and shifts now follow it"
        );
        if self.devices_differ {
            tracing::warn!(
                "registry file changed its devices too: those take effect after a restart"
            );
        }
    }
}

/// A changed registry file has problems; the staff read before stays.
pub struct RosterReloadFailed<'a> {
    pub error: &'a dyn Display,
}

impl RosterReloadFailed<'_> {
    pub fn emit(&self, m: &Metrics) {
        m.roster_reloads.with_label_values(&["refused"]).inc();
        tracing::error!(
            "registry file changed but cannot be used; the roster stays as it was: {}",
            self.error
        );
    }
}

/// What opening the journal found and repaired.
pub struct JournalRecovered<'a> {
    pub recovery: &'a crate::journal::Recovery,
}

impl JournalRecovered<'_> {
    pub fn emit(&self, m: &Metrics) {
        let r = self.recovery;
        m.journal_torn_bytes.inc_by(r.torn_bytes);
        m.journal_quarantined_segments
            .inc_by(r.quarantined.len() as u64);
        if r.torn_bytes > 0 {
            tracing::warn!(
                bytes = r.torn_bytes,
                "journal: cut off a torn write at the end"
            );
        }
        for q in &r.quarantined {
            tracing::error!(segment = %q.display(), "journal: segment with a corrupt record moved aside; its messages will not reach the store");
        }
        tracing::info!(records = r.records, "journal opened");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_logs_once_per_interval_and_reports_what_it_held_back() {
        let l = LogLimiter::default();
        let t0 = Instant::now();
        assert_eq!(l.allow("x", t0), Some(0));
        assert_eq!(l.allow("x", t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow("x", t0 + Duration::from_secs(2)), None);
        assert_eq!(l.allow("y", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(l.allow("x", t0 + LOG_INTERVAL), Some(2));
    }

    #[test]
    fn rejections_count_every_time_even_when_the_log_is_quiet() {
        let m = Metrics::new();
        for _ in 0..5 {
            MessageRejected {
                reason: "bad_topic",
                topic: "t",
                detail: &"d",
            }
            .emit(&m);
        }
        assert_eq!(m.rejected.with_label_values(&["bad_topic"]).get(), 5);
        assert_eq!(m.logs_suppressed.get(), 4);
    }
}
