//! The HTTP surface: health, readiness, Prometheus metrics and the API under `/api/v1`: alerts
//! (and people's actions on them), kinds, rules (with "why did this (not) fire") and maintenance
//! windows.

mod alerts;
mod rules;
pub mod screen;

use std::sync::{Arc, Mutex, RwLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gridwatch_edge_rules::Engine;

use crate::alerts::AlertBook;
use crate::catalogue::Catalogue;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Metrics, also the source of readiness.
    pub metrics: Arc<Metrics>,
    /// Every alert.
    pub alerts: Arc<RwLock<AlertBook>>,
    /// The kind catalogue.
    pub catalogue: Arc<Catalogue>,
    /// The community registry.
    pub registry: Arc<Registry>,
    /// The rule engine.
    pub engine: Arc<Mutex<Engine>>,
    /// Where people's actions on alerts land.
    pub desk: crate::alerts::desk::Desk,
    /// The bearer token writes need; `None` refuses every write.
    pub api_token: Option<String>,
    /// Devices' events as they arrive, for the screen's ticker.
    pub ticker: tokio::sync::broadcast::Sender<screen::TickerItem>,
    /// Turns true when the gateway stops: live streams end, so the server can.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The router for every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(screen::index))
        .route("/screen/app.js", get(screen::script))
        .route("/screen/style.css", get(screen::style))
        .route("/api/v1/events", get(screen::events))
        .route("/api/v1/overview", get(screen::overview))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{id}", get(alerts::get))
        .route("/api/v1/alerts/{id}/{action}", post(alerts::act))
        .route("/api/v1/kinds", get(list_kinds))
        .route("/api/v1/rules", get(rules::list))
        .route("/api/v1/rules/{rule}/why/{device}", get(rules::why))
        .route(
            "/api/v1/silences",
            get(rules::list_silences).post(rules::add_silence),
        )
        .route("/api/v1/silences/{id}", delete(rules::end_silence))
        .with_state(state)
}

/// A JSON error body: `{"error": "..."}` with the status.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> axum::response::Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The answer to a write whose `Authorization: Bearer` token is missing or wrong; `None` lets
/// it through.
pub(crate) fn refused(s: &AppState, headers: &HeaderMap) -> Option<axum::response::Response> {
    let Some(token) = &s.api_token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "writes are turned off: start the gateway with GRIDWATCH_API_TOKEN set",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if crate::auth::token_matches(given, token) {
        None
    } else {
        Some(error(
            StatusCode::UNAUTHORIZED,
            "a write needs the header `Authorization: Bearer <GRIDWATCH_API_TOKEN>`",
        ))
    }
}

/// Ready once the broker connection is up: before that no message can arrive.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.metrics.mqtt_connected.get() == 1 {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no connection to the MQTT broker\n",
        )
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.encode(),
    )
}

/// The kind catalogue: readings with types, units and ranges, events with severities, labels.
async fn list_kinds(State(s): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "kinds": s.catalogue.kinds() }))
}
