//! `gridwatch demo`: everything in one process, nothing to install.
//!
//! An in-process MQTT broker (rumqttd), the gateway wired to it with the local on-disk store, a
//! small simulated community publishing telemetry with an SOS press now and then, and a stand-in
//! for the grid workers' phone app that receives the webhooks and prints them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};
use gridwatch_simulators::node::VirtualNode;
use gridwatch_simulators::publisher::{self, Behaviour};
use tokio::sync::watch;

use crate::config::{Config, Secrets};
use crate::registry::Registry;
use crate::Gateway;

const REGISTRY: &str = include_str!("registry.toml");

/// What `gridwatch demo` can change.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The gateway's HTTP address.
    pub listen: SocketAddr,
    /// The embedded broker's port; a free one when `None`.
    pub mqtt_port: Option<u16>,
    /// Where the local store and dead letters go.
    pub data_dir: PathBuf,
    /// How often each device sends telemetry.
    pub telemetry_every: Duration,
    /// How often a simulated resident presses an SOS button.
    pub sos_every: Duration,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts rumqttd on its own threads (it has no shutdown API; it ends with the process).
fn start_broker(port: u16) -> anyhow::Result<()> {
    use rumqttd::{ConnectionSettings, RouterConfig, ServerSettings};
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let server = ServerSettings {
        name: "demo".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = rumqttd::Config {
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("demo".to_owned(), server)])),
        ..rumqttd::Config::default()
    };
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            if let Err(e) = rumqttd::Broker::new(config).start() {
                tracing::error!("embedded MQTT broker stopped: {e}");
            }
        })
        .context("cannot start the embedded MQTT broker")?;
    Ok(())
}

/// The demo's stand-in for the workers' phones: prints each webhook it receives.
async fn worker_app() -> anyhow::Result<SocketAddr> {
    let app = Router::new().route(
        "/{worker}",
        post(
            |Path(worker): Path<String>, Json(body): Json<serde_json::Value>| async move {
                let a = &body["data"];
                println!(
                    "📱 {worker} 的手机收到告警 / {worker}'s phone got: [{}] {}",
                    a["severity"].as_str().unwrap_or("?"),
                    a["message"].as_str().unwrap_or("?")
                );
                "ok"
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The demo community, its workers reached at `worker_app`, and a virtual node for each of its
/// devices (also what the control-room screen's browser test runs).
pub fn community(worker_app: &str) -> anyhow::Result<(Registry, Vec<VirtualNode>)> {
    let registry = Registry::parse(&REGISTRY.replace("{WORKER_APP}", worker_app))
        .map_err(|p| anyhow::anyhow!("demo registry: {}", p.join("; ")))?;
    let mut devices: Vec<_> = registry.devices().collect();
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    let nodes = devices
        .iter()
        .enumerate()
        .filter_map(|(i, d)| VirtualNode::new(&d.community, &d.id, &d.kind, i as u64 + 1))
        .collect();
    Ok((registry, nodes))
}

/// Runs the demo until `stop` resolves.
pub async fn run(
    opts: DemoOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Summary> {
    let mqtt_port = match opts.mqtt_port {
        Some(p) => p,
        None => free_port()?,
    };
    start_broker(mqtt_port)?;
    let phones = worker_app().await?;
    let (registry, nodes) = community(&format!("http://{phones}"))?;
    let mut config = Config::default();
    config.mqtt.port = mqtt_port;
    config.mqtt.client_id = "gridwatch-demo".into();
    config.http.listen = opts.listen;
    config.store.local.path = opts.data_dir.join("tsdb");
    config.store.dead_letter_path = opts.data_dir.join("dead-letter");
    config.journal.path = opts.data_dir.join("journal");
    // The screen's actions need a token; the demo makes one up for this run and prints it.
    let token = format!("demo-{:08x}", rand::random::<u32>());
    let secrets = Secrets {
        api_token: Some(token.clone()),
        ..Secrets::default()
    };
    let gateway = Gateway::start(config, registry, secrets).await?;
    let api = format!("http://{}", gateway.http_addr());
    println!(
        "Gridwatch demo — {} devices, embedded MQTT broker on 127.0.0.1:{mqtt_port}",
        nodes.len()
    );
    println!("  control room: {api}/  (operator token for its buttons: {token})");
    println!("  alerts:   {api}/api/v1/alerts");
    println!("  metrics:  {api}/metrics");
    println!("  readings: {}", opts.data_dir.join("tsdb").display());
    println!(
        "An SOS button is pressed every {} s. Ctrl-C stops.",
        opts.sos_every.as_secs()
    );

    let (stop_sim, sim_rx) = watch::channel(false);
    let behaviour = Behaviour {
        telemetry_every: opts.telemetry_every,
        sos_every: opts.sos_every,
    };
    let sim = tokio::spawn(async move {
        publisher::run("127.0.0.1", mqtt_port, nodes, behaviour, sim_rx).await
    });
    let mut alerts = gateway.subscribe_alerts();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            a = alerts.recv() => match a {
                Ok(a) => println!(
                    "🚨 告警 {} [{}] {} — 指派给 {}",
                    &a.alert_id[a.alert_id.len().saturating_sub(8)..],
                    a.severity.as_str(),
                    a.message,
                    a.assignee.as_ref().map_or("（无人值班）", |w| w.name.as_str())
                ),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    let _ = stop_sim.send(true);
    let _ = sim.await;
    let m = gateway.metrics();
    let summary = Summary {
        alerts_opened: m
            .alerts_opened
            .with_label_values(&["sos_pressed", "critical"])
            .get(),
        webhooks_delivered: m
            .notify_attempts
            .with_label_values(&["webhook", "delivered"])
            .get(),
        readings_stored: m.tsdb_lines_written.get(),
        connection_errors: crate::ingest::mqtt::FAILURE_REASONS
            .iter()
            .map(|r| m.mqtt_connection_errors.with_label_values(&[r]).get())
            .sum(),
    };
    println!(
        "stopping: {} alerts opened, {} webhooks delivered, {} readings stored",
        summary.alerts_opened, summary.webhooks_delivered, summary.readings_stored
    );
    gateway.shutdown().await;
    Ok(summary)
}

/// What a demo run did, printed when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// SOS alerts opened.
    pub alerts_opened: u64,
    /// Webhooks the stand-in worker app accepted.
    pub webhooks_delivered: u64,
    /// Readings written to the local store.
    pub readings_stored: u64,
    /// Times the gateway lost its connection to the embedded broker.
    pub connection_errors: u64,
}
