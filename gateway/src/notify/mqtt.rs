//! The MQTT channel for worker apps and screens: every alert change is published on
//! `gw/v1/{community}/alerts/{alert_id}` as `{"type":"alert.changed","data":<alert>}`, QoS 1.
//!
//! Best effort for now: a change missed while the gateway was down is not sent again (the
//! webhook and the API are the durable paths).

use tokio::sync::{broadcast, watch};

use crate::alerts::Alert;
use crate::ingest::mqtt::Commander;

/// Publishes alert changes until `shutdown` turns true.
pub async fn publish_changes(
    mut changes: broadcast::Receiver<Alert>,
    commander: Commander,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let alert = tokio::select! {
            _ = shutdown.changed() => return,
            a = changes.recv() => a,
        };
        match alert {
            Ok(alert) => {
                let topic = format!("gw/v1/{}/alerts/{}", alert.device.community, alert.alert_id);
                let body = serde_json::json!({ "type": "alert.changed", "data": alert });
                if !commander.publish(topic, body.to_string().into_bytes()) {
                    tracing::warn!(alert_id = %alert.alert_id, "alert change not published: the broker queue is full");
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "alert changes came faster than they were published"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
