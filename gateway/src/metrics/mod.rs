//! The gateway's own Prometheus metrics, served at `/metrics`.
//!
//! One [`Metrics`] value per gateway (no process-wide registry, so tests run side by side). Code
//! does not bump these counters directly: it emits an event from [`events`], which logs and counts
//! in one place so neither half is forgotten.

pub mod events;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// Messages taken from the broker, by channel (telemetry, event, status, other).
    pub received: IntCounterVec,
    /// Messages decoded, verified and handed on, by channel.
    pub accepted: IntCounterVec,
    /// `received` for each of [`CHANNELS`], resolved once: the label lookup costs more than the count.
    pub received_by: [IntCounter; 4],
    /// `accepted` for each of [`CHANNELS`].
    pub accepted_by: [IntCounter; 4],
    /// Messages refused, by reason.
    pub rejected: IntCounterVec,
    /// Messages shed under overload, by reason.
    pub dropped: IntCounterVec,
    /// Whether the broker connection is up (1) or not (0).
    pub mqtt_connected: IntGauge,
    /// Broker connection failures, by reason (`crate::ingest::mqtt::FAILURE_REASONS`).
    pub mqtt_connection_errors: IntCounterVec,
    /// Whether each configured serial port is open (1) or not (0), by port.
    pub serial_port_open: IntGaugeVec,
    /// Serial ports that could not be opened or failed while read, by port.
    pub serial_port_errors: IntCounterVec,
    /// Alerts opened, by rule and severity.
    pub alerts_opened: IntCounterVec,
    /// Repeats of an already open alert, by rule.
    pub alerts_repeated: IntCounterVec,
    /// Alerts whose condition ended, by rule and how (`resolved`, or `cleared` for one a person
    /// must close).
    pub alerts_ended: IntCounterVec,
    /// Alerts opened during a maintenance window, which paged nobody, by rule.
    pub alerts_silenced: IntCounterVec,
    /// Alerts a person closed, by rule.
    pub alerts_closed: IntCounterVec,
    /// Escalations of alerts nobody acknowledged in time, by rule and the level reached.
    pub alerts_escalated: IntCounterVec,
    /// Seconds from an alert's opening to each step people take, by step, kind and severity.
    pub case_seconds: HistogramVec,
    /// Rule engine timers, windows and open alerts held (device and rule pairs).
    pub rules_active: IntGauge,
    /// Saves of the rule engine's state, by outcome (saved, failed).
    pub rules_saves: IntCounterVec,
    /// Worker apps' actions on alerts over MQTT, by outcome (done, refused, bad, not_found,
    /// conflict).
    pub worker_actions: IntCounterVec,
    /// Readings of a changed registry file, by outcome (applied, refused).
    pub roster_reloads: IntCounterVec,
    /// Case log writes and syncs that failed, by operation (write, sync, compact, recover).
    pub case_log_errors: IntCounterVec,
    /// Bytes the case log holds on disk.
    pub case_log_bytes: IntGauge,
    /// Delivery attempts, by channel and outcome (delivered, failed).
    pub notify_attempts: IntCounterVec,
    /// Deliveries not yet accepted by their receiver.
    pub notify_pending: IntGauge,
    /// Alerts with nobody on duty or no webhook to reach them.
    pub notify_unroutable: IntCounter,
    /// Lines written to the time-series store.
    pub tsdb_lines_written: IntCounter,
    /// Batch write attempts, by outcome (ok, retry, rejected).
    pub tsdb_batches: IntCounterVec,
    /// Journal bytes the store has not yet acknowledged.
    pub tsdb_backlog_bytes: IntGauge,
    /// How long the oldest reading not yet in the store has waited, in seconds.
    pub tsdb_lag_seconds: Gauge,
    /// Lines given up, by reason (rejected, unwritable, journal_budget).
    pub tsdb_lines_dropped: IntCounterVec,
    /// Journal groups written and fsync'd.
    pub journal_commits: IntCounter,
    /// Journal groups that could not be written (the messages stay unacknowledged).
    pub journal_commit_failures: IntCounter,
    /// Records written to the journal.
    pub journal_records: IntCounter,
    /// Bytes written to the journal.
    pub journal_written_bytes: IntCounter,
    /// Bytes the journal holds on disk.
    pub journal_bytes: IntGauge,
    /// Age of the oldest record the journal holds, in seconds.
    pub journal_oldest_age_seconds: Gauge,
    /// Bytes cut off a torn journal tail at start.
    pub journal_torn_bytes: IntCounter,
    /// Journal segments moved to quarantine at start.
    pub journal_quarantined_segments: IntCounter,
    /// Log lines held back by rate limiting.
    pub logs_suppressed: IntCounter,
    log_limit: events::LogLimiter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric definition is valid");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("metric definition is valid");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric definition is valid");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

/// The `channel` labels of the message counters.
pub const CHANNELS: [&str; 4] = ["telemetry", "event", "status", "other"];

/// The index of a channel label in [`CHANNELS`] (unknown labels count as `other`).
pub fn channel_index(label: &str) -> usize {
    CHANNELS.iter().position(|c| *c == label).unwrap_or(3)
}

impl Metrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        let r = Registry::new();
        let received = counter_vec(
            &r,
            "gridwatch_messages_received_total",
            "Messages taken from the broker.",
            &["channel"],
        );
        let accepted = counter_vec(
            &r,
            "gridwatch_messages_accepted_total",
            "Messages decoded, verified and handed on.",
            &["channel"],
        );
        Self {
            received_by: CHANNELS.map(|c| received.with_label_values(&[c])),
            accepted_by: CHANNELS.map(|c| accepted.with_label_values(&[c])),
            received,
            accepted,
            rejected: counter_vec(
                &r,
                "gridwatch_messages_rejected_total",
                "Messages refused, by reason.",
                &["reason"],
            ),
            dropped: counter_vec(
                &r,
                "gridwatch_messages_dropped_total",
                "Messages shed under overload.",
                &["reason"],
            ),
            mqtt_connected: gauge(
                &r,
                "gridwatch_mqtt_connected",
                "1 while the broker connection is up.",
            ),
            mqtt_connection_errors: counter_vec(
                &r,
                "gridwatch_mqtt_connection_errors_total",
                "Broker connection failures: tls, not_authorized, refused, network, protocol.",
                &["reason"],
            ),
            serial_port_open: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "gridwatch_serial_port_open",
                        "1 while a serial port with wired nodes is open.",
                    ),
                    &["port"],
                )
                .expect("metric definition is valid");
                r.register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            serial_port_errors: counter_vec(
                &r,
                "gridwatch_serial_port_errors_total",
                "Serial ports that could not be opened or failed while read.",
                &["port"],
            ),
            alerts_opened: counter_vec(
                &r,
                "gridwatch_alerts_opened_total",
                "Alerts opened.",
                &["rule", "severity"],
            ),
            alerts_repeated: counter_vec(
                &r,
                "gridwatch_alerts_repeated_total",
                "Repeats of an open alert.",
                &["rule"],
            ),
            alerts_ended: counter_vec(
                &r,
                "gridwatch_alerts_ended_total",
                "Alerts whose condition ended: resolved, or cleared and waiting for a person to close.",
                &["rule", "how"],
            ),
            alerts_silenced: counter_vec(
                &r,
                "gridwatch_alerts_silenced_total",
                "Alerts opened during a maintenance window; they paged nobody.",
                &["rule"],
            ),
            alerts_closed: counter_vec(
                &r,
                "gridwatch_alerts_closed_total",
                "Alerts a person closed.",
                &["rule"],
            ),
            alerts_escalated: counter_vec(
                &r,
                "gridwatch_alerts_escalated_total",
                "Escalations of alerts nobody acknowledged in time, by the level reached.",
                &["rule", "level"],
            ),
            case_seconds: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "gridwatch_case_seconds",
                        "Seconds from an alert's opening to each step people take.",
                    )
                    .buckets(vec![
                        10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
                        86400.0,
                    ]),
                    &["step", "kind", "severity"],
                )
                .expect("metric definition is valid");
                r.register(Box::new(h.clone()))
                    .expect("metric registered once");
                h
            },
            rules_active: gauge(
                &r,
                "gridwatch_rules_active",
                "Device and rule pairs with a running timer, a window or an open alert.",
            ),
            worker_actions: counter_vec(
                &r,
                "gridwatch_worker_actions_total",
                "Worker apps' actions on alerts over MQTT, by outcome.",
                &["outcome"],
            ),
            roster_reloads: counter_vec(
                &r,
                "gridwatch_roster_reloads_total",
                "Readings of a changed registry file (workers, duty, shifts), by outcome.",
                &["outcome"],
            ),
            rules_saves: counter_vec(
                &r,
                "gridwatch_rules_saves_total",
                "Saves of the rule engine's state.",
                &["outcome"],
            ),
            case_log_errors: counter_vec(
                &r,
                "gridwatch_case_log_errors_total",
                "Case log writes and syncs that failed (alerts and notifications may not survive a restart).",
                &["operation"],
            ),
            case_log_bytes: gauge(
                &r,
                "gridwatch_case_log_bytes",
                "Bytes the case log of alerts and notifications holds on disk.",
            ),
            notify_attempts: counter_vec(
                &r,
                "gridwatch_notify_attempts_total",
                "Delivery attempts, by channel and outcome.",
                &["channel", "outcome"],
            ),
            notify_pending: gauge(
                &r,
                "gridwatch_notify_pending",
                "Deliveries not yet accepted by their receiver.",
            ),
            notify_unroutable: counter(
                &r,
                "gridwatch_notify_unroutable_total",
                "Alerts with nobody on duty or no webhook.",
            ),
            tsdb_lines_written: counter(
                &r,
                "gridwatch_tsdb_lines_written_total",
                "Lines written to the time-series store.",
            ),
            tsdb_batches: counter_vec(
                &r,
                "gridwatch_tsdb_batches_total",
                "Batch write attempts.",
                &["outcome"],
            ),
            tsdb_backlog_bytes: gauge(
                &r,
                "gridwatch_tsdb_backlog_bytes",
                "Journal bytes the store has not yet acknowledged.",
            ),
            tsdb_lag_seconds: float_gauge(
                &r,
                "gridwatch_tsdb_lag_seconds",
                "Age of the oldest reading not yet in the store.",
            ),
            journal_oldest_age_seconds: float_gauge(
                &r,
                "gridwatch_journal_oldest_age_seconds",
                "Age of the oldest record the journal holds.",
            ),
            journal_commits: counter(
                &r,
                "gridwatch_journal_commits_total",
                "Journal groups written and fsync'd.",
            ),
            journal_commit_failures: counter(
                &r,
                "gridwatch_journal_commit_failures_total",
                "Journal groups that could not be written.",
            ),
            journal_records: counter(
                &r,
                "gridwatch_journal_records_total",
                "Records written to the journal.",
            ),
            journal_written_bytes: counter(
                &r,
                "gridwatch_journal_written_bytes_total",
                "Bytes written to the journal.",
            ),
            journal_bytes: gauge(
                &r,
                "gridwatch_journal_bytes",
                "Bytes the journal holds on disk.",
            ),
            journal_torn_bytes: counter(
                &r,
                "gridwatch_journal_torn_bytes_total",
                "Bytes cut off a torn journal tail at start.",
            ),
            journal_quarantined_segments: counter(
                &r,
                "gridwatch_journal_quarantined_segments_total",
                "Journal segments moved to quarantine at start.",
            ),
            tsdb_lines_dropped: counter_vec(
                &r,
                "gridwatch_tsdb_lines_dropped_total",
                "Lines given up.",
                &["reason"],
            ),
            logs_suppressed: counter(
                &r,
                "gridwatch_logs_suppressed_total",
                "Log lines held back by rate limiting.",
            ),
            log_limit: events::LogLimiter::default(),
            registry: r,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}
