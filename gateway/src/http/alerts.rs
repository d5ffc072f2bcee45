//! `/api/v1/alerts`: the alerts, one alert with its timeline, and what people do to them
//! (acknowledge, on site, resolve, close), token-checked, with a clear 409 for a wrong step.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{error, refused, AppState};
use crate::alerts::lifecycle::Action;
use crate::alerts::ActError;
use crate::metrics::events::CaseStep;

/// Every alert, most severe first, then oldest.
pub async fn list(State(s): State<AppState>) -> impl IntoResponse {
    let alerts = s.alerts.read().unwrap_or_else(|e| e.into_inner()).list();
    Json(serde_json::json!({ "alerts": alerts }))
}

/// One alert with its timeline.
pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let book = s.alerts.read().unwrap_or_else(|e| e.into_inner());
    match book.get(&id) {
        Some(alert) => Json(alert).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("there is no alert {id}")),
    }
}

/// Tells the resident's SOS button that a worker has taken the call: the node shows or says
/// "help is coming" (`{"v":1,"ts":…,"cmd":"help_coming","alert_id":"…","by":"王芳"}`).
fn help_is_coming(s: &AppState, alert: &crate::alerts::Alert, by: &str) {
    let payload = serde_json::json!({
        "v": 1,
        "ts": crate::clock::now_ms(),
        "cmd": "help_coming",
        "alert_id": alert.alert_id,
        "by": by,
    });
    let sent = s.commander.send(
        &alert.device.community,
        &alert.device.id,
        payload.to_string().into_bytes(),
    );
    if !sent {
        tracing::warn!(alert_id = %alert.alert_id, "cannot queue \"help is coming\" for the device: the broker queue is full");
    }
}

/// A person's action, as posted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Act {
    /// Who acts.
    by: String,
    /// What they found or did; required to close.
    note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/{action}` (needs the API token). Closing tells the rules too, so
/// that the next occurrence of the condition opens a new alert.
pub async fn act(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Result<Json<Act>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(denied) = refused(&s, &headers) {
        return denied;
    }
    let Some(action) = Action::parse(&action) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("there is no action `{action}`: acknowledge, on_site, resolve or close"),
        );
    };
    let Json(act) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let note = act.note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if act.by.trim().is_empty() || (action == Action::Close && note.is_none()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`by` is required, and `note` to close: a case is closed by someone, with what they found",
        );
    }
    let now = crate::clock::now_ms();
    let done = s.alerts.write().unwrap_or_else(|e| e.into_inner()).act(
        &id,
        action,
        act.by.trim(),
        note,
        now,
    );
    match done {
        Ok(alert) => {
            if action == Action::Acknowledge && &*alert.device.kind == "sos" {
                help_is_coming(&s, &alert, act.by.trim());
            }
            if action == Action::Close {
                let mut engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(rule) = engine.rule_index(&alert.rule) {
                    engine.close(&alert.device.id, rule);
                }
            }
            CaseStep {
                alert: &alert,
                step: alert.state.as_str(),
                at_ms: now,
            }
            .emit(&s.metrics);
            // Nobody listening is fine.
            let _ = s.alert_changes.send(alert.clone());
            Json(alert).into_response()
        }
        Err(e @ ActError::NotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ ActError::Wrong(_)) => error(StatusCode::CONFLICT, e.to_string()),
    }
}
