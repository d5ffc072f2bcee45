//! The HTTP surface: health, readiness, Prometheus metrics and the alert API under `/api/v1`.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::alerts::AlertBook;
use crate::catalogue::Catalogue;
use crate::metrics::Metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Metrics, also the source of readiness.
    pub metrics: Arc<Metrics>,
    /// Every alert.
    pub alerts: Arc<RwLock<AlertBook>>,
    /// The kind catalogue.
    pub catalogue: Arc<Catalogue>,
}

/// The router for every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/kinds", get(list_kinds))
        .with_state(state)
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

async fn list_alerts(State(s): State<AppState>) -> impl IntoResponse {
    let alerts = s.alerts.read().unwrap_or_else(|e| e.into_inner()).list();
    Json(serde_json::json!({ "alerts": alerts }))
}

/// The kind catalogue: readings with types, units and ranges, events with severities, labels.
async fn list_kinds(State(s): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "kinds": s.catalogue.kinds() }))
}
