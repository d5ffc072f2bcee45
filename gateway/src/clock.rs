//! The only reader of the wall clock: everything else takes the time as an argument.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new globally unique, time-ordered alert id (UUID v7 from the wall clock).
pub fn new_alert_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
