//! `/api/v1/alerts`: the alerts, one alert with its timeline, and what people do to them
//! (acknowledge, on site, resolve, close), token-checked, with a clear 409 for a wrong step.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{error, refused, AppState, ErrorBody};
use crate::alerts::lifecycle::Action;
use crate::alerts::ActError;

/// Every alert, most severe first, then oldest.
#[utoipa::path(get, path = "/api/v1/alerts", operation_id = "list_alerts", tag = "alerts", responses(
    (status = 200, description = "`{\"alerts\": [...]}`: each alert with `alert_id`, `rule`, `severity`, \
        `state`, `device`, `started_at`, `message`, `assignee`, `escalation_level`", body = Object),
))]
pub async fn list(State(s): State<AppState>) -> impl IntoResponse {
    let alerts = s.alerts.read().unwrap_or_else(|e| e.into_inner()).list();
    Json(serde_json::json!({ "alerts": alerts }))
}

/// One alert with its timeline and every notification sent about it, with each attempt.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", operation_id = "get_alert", tag = "alerts",
    params(("id" = String, Path, description = "The alert's `alert_id`")),
    responses(
        (status = 200, description = "The alert with its `timeline` (every state it went through, \
            who moved it, when, with what note) and `deliveries` (each notification and every \
            attempt)", body = Object),
        (status = 404, description = "No such alert", body = ErrorBody),
    ))]
pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.desk.get(&id) {
        Some((alert, sent)) => {
            let mut body = serde_json::to_value(alert).unwrap_or_default();
            body["deliveries"] = serde_json::to_value(sent).unwrap_or_default();
            Json(body).into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("there is no alert {id}")),
    }
}

/// A person's action, as posted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Act {
    /// Who acts.
    by: String,
    /// What they found or did; required to close.
    note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/{action}` (needs the API token). Closing tells the rules too, so
/// that the next occurrence of the condition opens a new alert.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/{action}", operation_id = "act_on_alert", tag = "alerts",
    description = "A person moves the case along. Acknowledging an SOS sends \"help is coming\" \
        to the button; closing lets the rule's next occurrence open a new alert.",
    params(
        ("id" = String, Path, description = "The alert's `alert_id`"),
        ("action" = String, Path, description = "`acknowledge`, `on_site`, `resolve` or `close`"),
    ),
    request_body = Act,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The alert after the action", body = Object),
        (status = 400, description = "The body is not an action", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Writes are off: no GRIDWATCH_API_TOKEN", body = ErrorBody),
        (status = 404, description = "No such alert or action", body = ErrorBody),
        (status = 409, description = "A wrong step (e.g. acknowledging twice), with what to do instead", body = ErrorBody),
        (status = 422, description = "`by` is empty, or closing without a `note`", body = ErrorBody),
    ))]
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
    match s.desk.act(&id, action, act.by.trim(), note).await {
        Ok(alert) => Json(alert).into_response(),
        Err(e @ ActError::NotFound(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ ActError::Wrong(_)) => error(StatusCode::CONFLICT, e.to_string()),
    }
}
