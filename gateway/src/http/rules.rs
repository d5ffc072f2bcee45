//! `/api/v1/rules` and `/api/v1/silences`: the rules in force, why a rule has or has not fired
//! for a device, and the maintenance windows that keep alerts from paging anyone.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gridwatch_edge_rules::duration::parse_ms;
use gridwatch_edge_rules::{Scope, Silence};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{error, refused, AppState, ErrorBody};
use crate::rules::describe;

/// Every rule: name, severity, what it selects, its trigger, deadline and escalation.
#[utoipa::path(get, path = "/api/v1/rules", operation_id = "list_rules", tag = "rules", responses(
    (status = 200, description = "`{\"rules\": [...]}`: each rule's `name`, `severity`, selector \
        (`kinds`, `buildings`, `grids`, `devices`, `tags`), `trigger`, `ack_deadline_ms`, \
        `escalation`, `needs_person`, `line`", body = Object),
))]
pub async fn list(State(s): State<AppState>) -> impl IntoResponse {
    let engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
    let rules: Vec<_> = engine
        .rules()
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "severity": r.severity,
                "kinds": r.select.kinds,
                "buildings": r.select.buildings,
                "grids": r.select.grids,
                "devices": r.select.devices,
                "tags": r.select.tags,
                "trigger": describe(r),
                "ack_deadline_ms": r.ack_deadline_ms,
                "escalation": r.escalation,
                "needs_person": r.needs_person,
                "line": r.line,
            })
        })
        .collect();
    Json(serde_json::json!({ "rules": rules }))
}

/// Why `rule` has or has not opened an alert for `device`, now.
#[utoipa::path(get, path = "/api/v1/rules/{rule}/why/{device}", operation_id = "why_rule", tag = "rules",
    params(
        ("rule" = String, Path, description = "The rule's name"),
        ("device" = String, Path, description = "The device's id"),
    ),
    responses(
        (status = 200, description = "`{\"rule\", \"device\", \"why\": [...]}`: where the rule stands \
            for the device now", body = Object),
        (status = 404, description = "No such rule or device", body = ErrorBody),
    ))]
pub async fn why(
    State(s): State<AppState>,
    Path((rule, device)): Path<(String, String)>,
) -> Response {
    let engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
    if engine.rule_index(&rule).is_none() {
        return error(StatusCode::NOT_FOUND, format!("there is no rule `{rule}`"));
    }
    let Some(d) = s.registry.device(&device) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("there is no device `{device}`"),
        );
    };
    let info = crate::rules::device_info(d, s.registry.catalogue());
    let why = engine.explain(&info, &rule, crate::clock::now_ms());
    Json(serde_json::json!({ "rule": rule, "device": device, "why": why })).into_response()
}

/// The maintenance windows, current and coming.
#[utoipa::path(get, path = "/api/v1/silences", operation_id = "list_silences", tag = "rules", responses(
    (status = 200, description = "`{\"silences\": [...]}`: each window's `id`, `scope`, `from_ms`, \
        `until_ms`, `by`, `reason`", body = Object),
))]
pub async fn list_silences(State(s): State<AppState>) -> impl IntoResponse {
    let now = crate::clock::now_ms();
    let engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
    let silences: Vec<&Silence> = engine
        .silences()
        .iter()
        .filter(|x| x.until_ms > now)
        .collect();
    Json(serde_json::json!({ "silences": silences }))
}

/// A new maintenance window, as posted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// What it covers: `{"device": id}`, `{"building": id}` or `{"grid": id}`.
    #[schema(value_type = Object)]
    scope: Scope,
    /// How long from now, e.g. `"2h"`.
    #[serde(rename = "for")]
    duration: String,
    /// Who sets it.
    by: String,
    /// Why, for the control room.
    reason: String,
}

/// Longest maintenance window: a week; a longer one is a device to take out of the registry.
const MAX_SILENCE_MS: u64 = 7 * 86_400_000;

/// Starts a maintenance window (needs the API token).
#[utoipa::path(post, path = "/api/v1/silences", operation_id = "add_silence", tag = "rules",
    request_body = NewSilence,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The window started: `id`, `scope`, `from_ms`, `until_ms`, \
            `by`, `reason`", body = Object),
        (status = 400, description = "The body is not a maintenance window", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Writes are off: no GRIDWATCH_API_TOKEN", body = ErrorBody),
        (status = 422, description = "A bad duration (more than 0, at most 7d), no `by` or \
            `reason`, or a scope with no devices", body = ErrorBody),
    ))]
pub async fn add_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(denied) = refused(&s, &headers) {
        return denied;
    }
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let duration = match parse_ms(&new.duration) {
        Ok(ms) if ms > 0 && ms <= MAX_SILENCE_MS => ms,
        Ok(_) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "`for` must be more than 0 and at most 7d",
            )
        }
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("`for`: {e}")),
    };
    if new.by.trim().is_empty() || new.reason.trim().is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`by` and `reason` are required: the control room shows who silenced what, and why",
        );
    }
    let known = match &new.scope {
        Scope::Device(id) => s.registry.device(id).is_some(),
        Scope::Building(id) => s.registry.devices().any(|d| &*d.building == id),
        Scope::Grid(id) => s.registry.devices().any(|d| &*d.grid == id),
    };
    if !known {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the scope names no device, building or grid with devices in the registry",
        );
    }
    let now = crate::clock::now_ms();
    let silence = Silence {
        id: uuid::Uuid::now_v7().to_string(),
        scope: new.scope,
        from_ms: now,
        until_ms: now + duration,
        by: new.by,
        reason: new.reason,
    };
    let mut engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<Silence> = engine
        .silences()
        .iter()
        .filter(|x| x.until_ms > now)
        .cloned()
        .collect();
    all.push(silence.clone());
    engine.set_silences(all);
    tracing::warn!(id = %silence.id, by = %silence.by, reason = %silence.reason, scope = ?silence.scope, until_ms = silence.until_ms, "maintenance window started: alerts there page nobody");
    (StatusCode::CREATED, Json(silence)).into_response()
}

/// Ends a maintenance window early (needs the API token).
#[utoipa::path(delete, path = "/api/v1/silences/{id}", operation_id = "end_silence", tag = "rules",
    params(("id" = String, Path, description = "The window's `id`")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "Writes are off: no GRIDWATCH_API_TOKEN", body = ErrorBody),
        (status = 404, description = "No such window", body = ErrorBody),
    ))]
pub async fn end_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(denied) = refused(&s, &headers) {
        return denied;
    }
    let mut engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
    let before = engine.silences().len();
    let kept: Vec<Silence> = engine
        .silences()
        .iter()
        .filter(|x| x.id != id)
        .cloned()
        .collect();
    if kept.len() == before {
        return error(
            StatusCode::NOT_FOUND,
            format!("there is no maintenance window `{id}`"),
        );
    }
    engine.set_silences(kept);
    tracing::warn!(%id, "maintenance window ended early");
    StatusCode::NO_CONTENT.into_response()
}
