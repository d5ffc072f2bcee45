//! The Gridwatch edge gateway.
//!
//! ```text
//!  MQTT broker ──▶ ingest ──▶ decode+verify ──▶ rules ──▶ alerts ──▶ notify ──▶ worker app webhooks,
//!                 (manual        (topic,          (edge-   (open /    (case   group robots, e-mail
//!                  acks)          payload,         rules    update /   log)
//!                                 registry)        engine)  storms)
//!                               └──────────────────────▶ sinks/tsdb ──▶ InfluxDB v2 API
//!                                                                                    or local files
//!  people act on alerts: http /api/v1/alerts/{id}/{action}, or MQTT gw/v1/{c}/alerts/{id}/act
//!                        ──▶ alerts::desk (case log, "help is coming" on the device's cmd topic)
//!  http: /healthz /readyz /metrics /api/v1/alerts /api/v1/rules /api/v1/silences /api/v1/openapi.json
//! ```
//!
//! Modules follow a message's way through the gateway; [`app`] wires them together and
//! [`pipeline`] is the loop that walks each message down the line.

pub mod app;
pub mod auth;
pub mod backoff;
pub mod catalogue;
pub mod clock;
pub mod config;
pub mod config_cli;
pub mod config_keys;
pub mod demo;
pub mod init;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod roster;

// stage 1: bytes in
pub mod ingest;
// stage 2: topic, payload and registry checks
pub mod decode;
// stage 3: the rules (language and engine in the gridwatch-edge-rules crate)
pub mod rules;
// stage 4: alerts
pub mod alerts;
// stage 5: reach the worker
pub mod notify;
// stage 6: the time-series store
pub mod sinks;
// beside the line: the HTTP API
pub mod http;
// beside the line: durable before acknowledged
pub mod journal;

pub use app::Gateway;
