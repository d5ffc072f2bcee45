//! Every shipped scenario (`simulators/scenarios/*.toml`) against a real gateway and a real
//! Mosquitto: the scenario's community of virtual devices runs the real firmware, its incidents
//! happen on time, and every alert it expects must open in time, with nothing unexpected (the
//! shipped scenarios are strict).
//!
//! To keep this to about a minute, the scenarios run at 20 times real time and the gateway runs
//! the built-in rules with its own timers shortened ([`quick_rules`]): the scenarios' deadlines
//! for those timers are written for the real ones, so shorter timers only pass sooner.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gridwatch_e2e::{test_config, Mosquitto, TestGateway, WebhookReceiver, API_TOKEN};
use gridwatch_gateway::registry::Registry;
use gridwatch_simulators::fleet::Broker;
use gridwatch_simulators::scenario::run::{self, Closer, Outcome, Progress, RunOptions, Target};
use gridwatch_simulators::scenario::Scenario;

const SPEED: f64 = 20.0;

/// The built-in rules with the gateway's real-time timers shortened: acknowledgement deadlines
/// 60 s to 3 s, `for` 5 min (passage blocked) to 5 s, 1 min (water overflow) to 3 s, 10 s
/// (cover displaced) to 2 s.
fn quick_rules() -> String {
    gridwatch_gateway::rules::BUILTIN
        .replace("ack_deadline = \"60s\"", "ack_deadline = \"3s\"")
        .replace("for = \"5m\"", "for = \"5s\"")
        .replace("for = \"1m\"", "for = \"3s\"")
        .replace("for = \"10s\"", "for = \"2s\"")
}

fn shipped() -> anyhow::Result<Vec<Scenario>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulators/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    Ok(files
        .iter()
        .map(|f| Scenario::load(f))
        .collect::<Result<_, _>>()?)
}

/// A gateway for `scenario`'s community with the quick rules, its workers' webhooks at `hook`.
async fn gateway(
    scenario: &Scenario,
    mosquitto: &Mosquitto,
    hook: &WebhookReceiver,
    dir: &Path,
) -> anyhow::Result<TestGateway> {
    let text = scenario
        .community
        .registry_toml(Some(&format!("http://{}", hook.addr)))?;
    let registry = Registry::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, quick_rules())?;
    let mut config = test_config(mosquitto.port, "http://127.0.0.1:9", dir);
    config.rules.path = Some(rules);
    TestGateway::start_registry(config, registry).await
}

async fn play(
    scenario: &Scenario,
    mosquitto: &Mosquitto,
    gw: &TestGateway,
    opts: &RunOptions,
) -> anyhow::Result<Outcome> {
    let target = Target {
        broker: Broker {
            host: "127.0.0.1".into(),
            port: mosquitto.port,
        },
        gateway: gw.url.clone(),
    };
    let name = scenario.name.clone();
    let outcome = run::run(scenario, &target, opts, |p| {
        if let Progress::Decided(e, v) = p {
            eprintln!("{name}: {}", run::verdict_line(e, v));
        }
    })
    .await?;
    eprintln!("{outcome}");
    Ok(outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_passes_against_the_gateway() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let opts = RunOptions {
        speed: Some(SPEED),
        poll_every: Duration::from_millis(250),
        ..RunOptions::default()
    };
    let mut failed = Vec::new();
    let scenarios = shipped()?;
    assert!(scenarios.len() >= 5, "{} scenarios", scenarios.len());
    for scenario in &scenarios {
        let dir = tempfile::tempdir()?;
        let gw = gateway(scenario, &mosquitto, &hook, dir.path()).await?;
        let outcome = play(scenario, &mosquitto, &gw, &opts).await?;
        assert!(!outcome.verdicts.is_empty(), "{}", scenario.name);
        assert_eq!(outcome.fleet.lost, 0, "{outcome}");
        if !outcome.passed() {
            failed.push(outcome.to_string());
        }
        gw.gateway.shutdown().await;
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_runs_again_on_the_same_gateway_with_its_numbers_carried_on(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let scenario = shipped()?
        .into_iter()
        .find(|s| s.name == "sos-unanswered")
        .ok_or_else(|| anyhow::anyhow!("sos-unanswered is not shipped"))?;
    let dir = tempfile::tempdir()?;
    let gw = gateway(&scenario, &mosquitto, &hook, dir.path()).await?;
    let opts = RunOptions {
        speed: Some(SPEED),
        poll_every: Duration::from_millis(250),
        state_dir: Some(dir.path().join("devices")),
        close: Some(Closer {
            token: API_TOKEN.into(),
            by: "测试 / test".into(),
        }),
        ..RunOptions::default()
    };
    let first = play(&scenario, &mosquitto, &gw, &opts).await?;
    assert!(first.passed(), "{first}");
    assert!(first.closed >= 2, "{first}");
    // New virtual devices, the same gateway: without their numbers carried on, every message
    // would be refused as a replay; without the first run's alerts closed, none would open anew.
    let second = play(&scenario, &mosquitto, &gw, &opts).await?;
    assert!(second.passed(), "{second}");
    let m = gw.metrics().await?;
    assert_eq!(
        gridwatch_e2e::metric_sum(&m, "gridwatch_messages_rejected_total"),
        0.0,
        "{m}"
    );
    gw.gateway.shutdown().await;
    Ok(())
}
