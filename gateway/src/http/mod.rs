//! The HTTP surface: health, readiness, Prometheus metrics and the API under `/api/v1`: alerts
//! (and people's actions on them), kinds, rules (with "why did this (not) fire") and maintenance
//! windows.
//!
//! Every route is registered through `utoipa_axum`'s `routes!` from a handler that carries its
//! `#[utoipa::path]`, so the router and the OpenAPI 3 description served at
//! `GET /api/v1/openapi.json` come from the same registration and cannot list different routes.

mod alerts;
mod rules;
pub mod screen;

use std::sync::{Arc, Mutex, RwLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json, Router};
use gridwatch_edge_rules::Engine;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// Which watched spaces are taken, for the screen.
    pub occupancy: Arc<crate::sinks::occupancy::Occupancy>,
    /// Turns true when the gateway stops: live streams end, so the server can.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The OpenAPI document's fixed parts; the paths come from the handlers as they are routed.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gridwatch gateway HTTP API",
        description = "Alerts and people's actions on them, device kinds, alert rules, maintenance \
                       windows, the control-room screen and its live events, health and metrics. \
                       Writes need `Authorization: Bearer <GRIDWATCH_API_TOKEN>`."
    ),
    modifiers(&BearerToken),
    components(schemas(screen::TickerItem)),
    tags(
        (name = "alerts", description = "Alerts and what people do to them"),
        (name = "rules", description = "Kinds, rules and maintenance windows"),
        (name = "screen", description = "The control-room screen and its live feed"),
        (name = "operations", description = "Health, readiness, metrics, this description"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme the writes name.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The token in GRIDWATCH_API_TOKEN; without it writes are refused.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every endpoint with its OpenAPI description.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(screen::index))
        .routes(routes!(screen::script))
        .routes(routes!(screen::style))
        .routes(routes!(screen::events))
        .routes(routes!(screen::overview))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::get))
        .routes(routes!(alerts::act))
        .routes(routes!(list_kinds))
        .routes(routes!(rules::list))
        .routes(routes!(rules::why))
        .routes(routes!(rules::list_silences, rules::add_silence))
        .routes(routes!(rules::end_silence))
}

/// The OpenAPI 3 description of every endpoint, as `GET /api/v1/openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// The router for every endpoint.
pub fn router(state: AppState) -> Router {
    let (router, spec) = routes().split_for_parts();
    let spec = Spec(Arc::from(spec.to_json().expect(
        "an OpenAPI document of plain strings and maps always serializes",
    )));
    router.layer(Extension(spec)).with_state(state)
}

/// The OpenAPI description as JSON text, for its handler.
#[derive(Clone)]
struct Spec(Arc<str>);

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, and what to do instead.
    error: String,
}

/// A JSON error body: `{"error": "..."}` with the status.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> axum::response::Response {
    let body = ErrorBody {
        error: message.into(),
    };
    (status, Json(body)).into_response()
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

/// The process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once the broker connection is up: before that no message can arrive.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Connected to the MQTT broker", content_type = "text/plain", body = String),
    (status = 503, description = "Not connected yet, with the reason", content_type = "text/plain", body = String),
))]
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

/// The gateway's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
))]
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.encode(),
    )
}

/// This description of the HTTP API (OpenAPI 3).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses(
    (status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = Object),
))]
async fn openapi_json(Extension(Spec(spec)): Extension<Spec>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        spec.to_string(),
    )
}

/// The kind catalogue: readings with types, units and ranges, events with severities, labels.
#[utoipa::path(get, path = "/api/v1/kinds", tag = "rules", responses(
    (status = 200, description = "`{\"kinds\": [...]}`: each kind's readings (type, unit, range), events (severity) and labels", body = Object),
))]
async fn list_kinds(State(s): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "kinds": s.catalogue.kinds() }))
}
