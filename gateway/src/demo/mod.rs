//! `gridwatch demo`: everything in one process, nothing to install.
//!
//! An in-process MQTT broker (rumqttd), the gateway wired to it with the local on-disk store, a
//! generated community whose virtual devices run the real firmware (`gridwatch-simulators`),
//! a shipped scenario played on a loop so that every kind of alert comes up within minutes, and
//! a stand-in for the grid workers' phone app that receives the webhooks and prints them. At the
//! end of each round the demo's duty officer closes the round's alerts, so the next round opens
//! them afresh.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};
use gridwatch_simulators::community::Community;
use gridwatch_simulators::fleet::Broker;
use gridwatch_simulators::scenario::run::{self, Closer, Progress, RunOptions, Target};
use gridwatch_simulators::scenario::{self, Scenario};

use crate::config::{Config, Secrets};
use crate::registry::Registry;
use crate::Gateway;

/// The scenario the demo plays when it is given none.
pub const TOUR: &str = "tour";

/// What `gridwatch demo` can change.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The gateway's HTTP address.
    pub listen: SocketAddr,
    /// The embedded broker's port; a free one when `None`.
    pub mqtt_port: Option<u16>,
    /// Where the local store, the journal and the devices' memory go.
    pub data_dir: PathBuf,
    /// How much faster than real time the community lives; the scenario's own when `None`.
    pub speed: Option<f64>,
    /// The scenario played on a loop; the shipped tour when `None`.
    pub scenario: Option<Scenario>,
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

/// The scenario a demo plays.
pub fn tour() -> anyhow::Result<Scenario> {
    scenario::shipped(TOUR)
        .context("the tour scenario is not shipped")?
        .map_err(anyhow::Error::from)
}

/// The community of `scenario`, its workers reached at `worker_app`: the gateway's registry and
/// the simulator's devices (also what the control-room screen's browser test runs).
pub fn community(scenario: &Scenario, worker_app: &str) -> anyhow::Result<(Registry, Community)> {
    let text = scenario.community.registry_toml(Some(worker_app))?;
    let registry =
        Registry::parse(&text).map_err(|p| anyhow::anyhow!("demo registry: {}", p.join("; ")))?;
    Ok((registry, scenario.community.generate()?))
}

/// `m:ss` of simulated ms.
fn clock(ms: u64) -> String {
    format!("{}:{:02}", ms / 60_000, ms / 1000 % 60)
}

/// Prints what a round does, as it does it.
fn show(round: u64, progress: Progress<'_>) {
    match progress {
        Progress::Began {
            scenario,
            devices,
            speed,
        } => println!(
            "▶ 第{round}轮 / round {round}: {} — {devices} 台设备 / devices, 模拟时间 {speed}× 真实时间 / simulated time at {speed}× real time",
            scenario.title
        ),
        Progress::Started(step) => println!(
            "⏱ {}  {}",
            clock(step.at_ms),
            step.say.clone().unwrap_or_else(|| format!(
                "{} {}",
                step.device,
                step.incident.action()
            ))
        ),
        Progress::Ended(_) => {}
        Progress::Decided(expectation, verdict) => {
            println!("   {}", run::verdict_line(expectation, verdict))
        }
        Progress::Unexpected(a) => println!(
            "   ⚠ 意外告警 / unexpected alert: {} on {}",
            a.rule, a.device.id
        ),
    }
}

/// Runs the demo until `stop` resolves.
pub async fn run(
    opts: DemoOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Summary> {
    let scenario = match opts.scenario {
        Some(s) => s,
        None => tour()?,
    };
    let speed = opts.speed.unwrap_or(scenario.speed);
    let mqtt_port = match opts.mqtt_port {
        Some(p) => p,
        None => free_port()?,
    };
    start_broker(mqtt_port)?;
    let phones = worker_app().await?;
    let (registry, community) = community(&scenario, &format!("http://{phones}"))?;
    let mut config = Config::default();
    config.mqtt.port = mqtt_port;
    config.mqtt.client_id = "gridwatch-demo".into();
    config.http.listen = opts.listen;
    config.store.local.path = opts.data_dir.join("tsdb");
    config.store.dead_letter_path = opts.data_dir.join("dead-letter");
    config.journal.path = opts.data_dir.join("journal");
    // The devices live `speed` times faster, so they may send that much more often.
    let scale = |n: u32| (f64::from(n) * speed.max(1.0)).ceil() as u32;
    config.ingest.device_rate_per_min = scale(config.ingest.device_rate_per_min);
    config.ingest.device_burst = scale(config.ingest.device_burst);
    // The screen's actions need a token; the demo makes one up for this run and prints it.
    let token = format!("demo-{:08x}", rand::random::<u32>());
    let secrets = Secrets {
        api_token: Some(token.clone()),
        ..Secrets::default()
    };
    let gateway = Gateway::start(config, registry, secrets).await?;
    let api = format!("http://{}", gateway.http_addr());
    println!(
        "Gridwatch demo — {} ({} 台设备 / devices, 真实固件 / the real firmware), embedded MQTT broker on 127.0.0.1:{mqtt_port}",
        community.id,
        community.devices.len()
    );
    println!("  control room: {api}/  (operator token for its buttons: {token})");
    println!("  alerts:   {api}/api/v1/alerts");
    println!("  metrics:  {api}/metrics");
    println!("  readings: {}", opts.data_dir.join("tsdb").display());
    println!(
        "Plays the scenario \"{}\" on a loop; acknowledge an alert on the screen before it escalates. Ctrl-C stops.",
        scenario.name
    );

    let target = Target {
        broker: Broker {
            host: "127.0.0.1".into(),
            port: mqtt_port,
        },
        gateway: api.clone(),
    };
    let run_opts = RunOptions {
        speed: Some(speed),
        state_dir: Some(opts.data_dir.join("devices")),
        close: Some(Closer {
            token,
            by: "演示值班员 / demo duty officer".into(),
        }),
        ..RunOptions::default()
    };
    let (rounds_done, met, failed) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let rounds = async {
        for round in 1.. {
            let outcome = run::run(&scenario, &target, &run_opts, |p| {
                if let Progress::Decided(_, v) = &p {
                    let counter = if v.passed { &met } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                show(round, p);
            })
            .await?;
            rounds_done.store(round, Ordering::Relaxed);
            println!(
                "■ 第{round}轮结束 / round {round} over: {}; 已关闭 {} 条告警 / closed {} alerts",
                outcome.to_string().lines().last().unwrap_or_default(),
                outcome.closed,
                outcome.closed
            );
        }
        anyhow::Ok(())
    };
    tokio::pin!(rounds);
    let mut alerts = gateway.subscribe_alerts();
    let mut levels: HashMap<String, u8> = HashMap::new();
    tokio::pin!(stop);
    let ended = loop {
        tokio::select! {
            () = &mut stop => break Ok(()),
            r = &mut rounds => break r,
            a = alerts.recv() => match a {
                Ok(a) => {
                    let short = &a.alert_id[a.alert_id.len().saturating_sub(8)..];
                    let who = a.assignee.as_ref().map_or("（无人值班）", |w| w.name.as_str());
                    match levels.insert(a.alert_id.clone(), a.escalation_level) {
                        None => println!(
                            "🚨 告警 {short} [{}] {} — 指派给 {who}",
                            a.severity.as_str(),
                            a.message,
                        ),
                        Some(before) if a.escalation_level > before => println!(
                            "⬆ 告警 {short} 无人接单，升级到第{}级 — 指派给 {who} / nobody acknowledged: escalated to level {}, {who}",
                            a.escalation_level, a.escalation_level
                        ),
                        Some(_) => {}
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break Ok(()),
            },
        }
    };
    let m = gateway.metrics();
    let summary = Summary {
        alerts_opened: levels.len() as u64,
        webhooks_delivered: m
            .notify_attempts
            .with_label_values(&["webhook", "delivered"])
            .get(),
        readings_stored: m.tsdb_lines_written.get(),
        connection_errors: crate::ingest::mqtt::FAILURE_REASONS
            .iter()
            .map(|r| m.mqtt_connection_errors.with_label_values(&[r]).get())
            .sum(),
        rounds: rounds_done.load(Ordering::Relaxed),
        expectations_met: met.load(Ordering::Relaxed),
        expectations_failed: failed.load(Ordering::Relaxed),
    };
    println!(
        "stopping: {} alerts opened, {} webhooks delivered, {} readings stored",
        summary.alerts_opened, summary.webhooks_delivered, summary.readings_stored
    );
    gateway.shutdown().await;
    ended.map(|()| summary)
}

/// What a demo run did, printed when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Alerts opened.
    pub alerts_opened: u64,
    /// Webhooks the stand-in worker app accepted.
    pub webhooks_delivered: u64,
    /// Readings written to the local store.
    pub readings_stored: u64,
    /// Times the gateway lost its connection to the embedded broker.
    pub connection_errors: u64,
    /// Rounds of the scenario that finished.
    pub rounds: u64,
    /// Expected alerts that came in time, over every round (the one cut short included).
    pub expectations_met: u64,
    /// Expected alerts that did not.
    pub expectations_failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_simulators::community::CommunitySpec;

    #[test]
    fn generated_communities_are_registries_the_gateway_takes() {
        for spec in [
            CommunitySpec::default(),
            CommunitySpec {
                buildings: 7,
                floors: 33,
                elevators_per_building: 3,
                manholes: 12,
                fire_passages: 9,
                sos_homes: 150,
                distribution_boxes: 14,
                parking_spaces: 120,
                perimeter_zones: 6,
                buildings_per_grid: 2,
                ..CommunitySpec::default()
            },
            CommunitySpec {
                id: "yg-2".into(),
                name: "阳光\"二期\"".into(),
                buildings: 1,
                floors: 2,
                buildings_per_grid: 3,
                ..CommunitySpec::default()
            },
        ] {
            let text = spec.registry_toml(Some("http://127.0.0.1:9")).unwrap();
            let registry = Registry::parse(&text).unwrap_or_else(|p| panic!("{p:?}\n{text}"));
            let devices = spec.generate().unwrap().devices;
            assert_eq!(registry.devices().count(), devices.len());
            for d in &devices {
                let r = registry.device(&d.id).unwrap();
                assert_eq!((&*r.kind, &*r.grid), (d.kind.as_str(), d.grid.as_str()));
            }
            assert!(registry.staff().workers().count() >= 2);
        }
    }

    #[test]
    fn every_shipped_scenario_names_only_rules_the_gateway_has() {
        let schema = crate::rules::schema(&crate::catalogue::Catalogue::builtin());
        let rules = gridwatch_edge_rules::RuleSet::parse(crate::rules::BUILTIN, &schema).unwrap();
        for (name, _) in scenario::SHIPPED {
            let s = scenario::shipped(name).unwrap().unwrap();
            for e in s.steps.iter().flat_map(|st| &st.expect) {
                assert!(
                    rules.rules.iter().any(|r| r.name == e.rule),
                    "{name}: {} is not a default rule",
                    e.rule
                );
            }
            community(&s, "http://127.0.0.1:9").unwrap();
        }
    }
}
