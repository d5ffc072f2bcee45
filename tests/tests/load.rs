//! The simulator's load and fault modes against a real Mosquitto and the real gateway, checked
//! by accounting: every message the simulator sent is received, and ends accepted (and stored),
//! rejected under the reason the simulator expected, or dropped as over the device's rate; the
//! sums add up, a flooding device is raised as `device_flooding`, and a device that vanished
//! leaves `offline` through its last will. Also: what every simulated kind reports is what the
//! gateway's kind catalogue accepts.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use gridwatch_e2e::payload::now_ms;
use gridwatch_e2e::{eventually, get_json, metric_sum, test_config, Mosquitto, TestGateway};
use gridwatch_gateway::catalogue::Catalogue;
use gridwatch_gateway::config::{Config, StoreBackend};
use gridwatch_gateway::registry::Registry;
use gridwatch_simulators::faults::Faults;
use gridwatch_simulators::load::pool::Broker;
use gridwatch_simulators::load::readings::{Kind, Walk};
use gridwatch_simulators::load::registry::{self, DeviceSpec, Keys};
use gridwatch_simulators::load::report::{Expect, Label, Summary};
use gridwatch_simulators::load::{self, Group, Plan, Steady};
use rumqttc::QoS;

const COMMUNITY: &str = "sim";

#[test]
fn every_simulated_kind_reports_what_the_catalogue_accepts() {
    let catalogue = Catalogue::builtin();
    let mut names: Vec<&str> = catalogue.names();
    names.sort_unstable();
    let mut simulated: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    simulated.sort_unstable();
    assert_eq!(
        simulated, names,
        "a kind in kinds.toml the simulator cannot be, or the reverse"
    );
    for kind in Kind::ALL {
        let spec = catalogue.kind(kind.as_str()).expect("listed");
        for seed in 0..50 {
            let mut walk = Walk::new(seed);
            for step in 0..200u64 {
                for r in walk.next(kind, now_ms() + step * 60_000) {
                    spec.check_reading(r.name, r.value)
                        .unwrap_or_else(|e| panic!("{kind}: {e}"));
                }
            }
        }
        let bad = kind.out_of_range();
        assert!(
            spec.check_reading(bad.name, bad.value).is_err(),
            "{kind}: {bad:?} is in range"
        );
    }
}

/// The gateway's config for these tests: the broker, the embedded store and the journal under
/// `dir`, every device signing with its key.
fn gateway_config(mosquitto: &Mosquitto, dir: &Path, keys: &Keys) -> anyhow::Result<Config> {
    let mut c = test_config(mosquitto.port, "http://127.0.0.1:9", dir);
    c.store.backend = StoreBackend::Local;
    c.store.local.path = dir.join("tsdb");
    let path = dir.join("device-keys.toml");
    std::fs::write(&path, registry::keys_toml(keys))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    c.ingest.device_keys_path = Some(path);
    c.ingest.require_mac = true;
    Ok(c)
}

fn plan(mosquitto: &Mosquitto, duration: Duration) -> Plan {
    Plan {
        broker: Broker {
            host: "127.0.0.1".into(),
            port: mosquitto.port,
            username: None,
            password: None,
        },
        community: COMMUNITY.into(),
        qos: QoS::AtLeastOnce,
        duration,
        connections: 2,
        client_prefix: "load-test".into(),
        drain: Duration::from_secs(10),
        progress: false,
    }
}

/// Waits until the gateway received `n` messages and its queues are empty (received = accepted +
/// rejected + dropped), then returns its metrics.
async fn settled(gw: &TestGateway, n: u64) -> anyhow::Result<String> {
    eventually(Duration::from_secs(30), || async {
        let m = gw.metrics().await?;
        let sum = |p| metric_sum(&m, p);
        let received = sum("gridwatch_messages_received_total");
        let ended = sum("gridwatch_messages_accepted_total")
            + sum("gridwatch_messages_rejected_total")
            + sum("gridwatch_messages_dropped_total");
        Ok((received >= n as f64 && received == ended).then_some(m))
    })
    .await
}

/// Waits until the store holds every accepted message (one line each).
async fn all_stored(gw: &TestGateway) -> anyhow::Result<()> {
    eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_tsdb_lines_written_total")
            == metric_sum(&m, "gridwatch_messages_accepted_total"))
        .then_some(()))
    })
    .await
}

fn assert_delivered(s: &Summary) {
    assert_eq!(s.errors(), 0, "{s}");
    assert_eq!(s.total.acked, s.total.sent, "{s}");
    let handed: u64 = s.by_label.iter().map(|(_, n)| n).sum();
    assert_eq!(handed, s.total.sent, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_load_is_acknowledged_accepted_and_stored() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let dir = tempfile::tempdir()?;
    let specs = registry::healthy(200, &[]);
    let keys = registry::new_keys(&specs);
    let registry = Registry::parse(&registry::registry_toml(COMMUNITY, &specs))
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(gateway_config(&mosquitto, dir.path(), &keys)?, registry)
        .await?;

    let wall = now_ms();
    let group = Group {
        devices: load::devices(COMMUNITY, &specs, Some(&keys), Some(wall), wall)?,
        period: Duration::from_millis(500),
        vanish_at: None,
        behaviour: Box::new(Steady(Label::Telemetry)),
    };
    let summary = load::run(&plan(&mosquitto, Duration::from_secs(3)), vec![group]).await;
    assert_delivered(&summary);
    assert_eq!(
        summary.scheduled, 1200,
        "200 devices, 2 a second, 3 s: {summary}"
    );
    assert_eq!(summary.total.sent, 1200, "{summary}");
    assert!(summary.latency.is_some(), "{summary}");

    let m = settled(&gw, 1200).await?;
    let sum = |p| metric_sum(&m, p);
    assert_eq!(sum("gridwatch_messages_received_total"), 1200.0, "{m}");
    assert_eq!(sum("gridwatch_messages_accepted_total"), 1200.0, "{m}");
    assert_eq!(sum("gridwatch_messages_rejected_total"), 0.0, "{m}");
    assert_eq!(sum("gridwatch_messages_dropped_total"), 0.0, "{m}");
    all_stored(&gw).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_rejected_dropped_or_taken_as_the_simulator_expects() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let dir = tempfile::tempdir()?;
    let faults = Faults {
        flood: 2,
        malformed: 2,
        replay: 2,
        offline: 2,
        kind: Kind::Manhole,
        flood_period: Duration::from_millis(5),
        offline_after: Duration::from_secs(2),
        oversize_bytes: 8192,
    };
    let healthy = registry::healthy(10, &[]);
    let mut specs: Vec<DeviceSpec> = healthy.clone();
    specs.extend(faults.devices().into_iter().flat_map(|(_, d)| d));
    let keys = registry::new_keys(&specs);
    let registry = Registry::parse(&registry::registry_toml(COMMUNITY, &specs))
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let mut config = gateway_config(&mosquitto, dir.path(), &keys)?;
    // Healthy devices send 5 a second for 4 s: within a burst of 20 and 10 a second after it.
    config.ingest.device_rate_per_min = 600;
    config.ingest.device_burst = 20;
    let gw = TestGateway::start_registry(config, registry).await?;

    let wall = now_ms();
    let period = Duration::from_millis(200);
    let mut groups = vec![Group {
        devices: load::devices(COMMUNITY, &healthy, Some(&keys), Some(wall), wall)?,
        period,
        vanish_at: None,
        behaviour: Box::new(Steady(Label::Telemetry)),
    }];
    groups.extend(faults.groups(COMMUNITY, period, Some(&keys), Some(wall), wall)?);
    let summary = load::run(&plan(&mosquitto, Duration::from_secs(4)), groups).await;
    assert_delivered(&summary);
    assert_eq!(summary.wills, 2, "{summary}");
    let by_label: BTreeMap<Label, u64> = summary.by_label.iter().copied().collect();
    for label in Label::ALL {
        assert!(
            by_label.get(&label).is_some_and(|n| *n > 0),
            "no {label:?} sent: {summary}"
        );
    }

    // What the simulator says the gateway must do, reason by reason.
    let mut rejected: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut accepted, mut flood) = (summary.wills as u64, 0);
    for (label, n) in &summary.by_label {
        match label.expect() {
            Expect::Accepted => accepted += n,
            Expect::Rejected(reason) => *rejected.entry(reason).or_default() += n,
            Expect::RateLimited => flood += n,
        }
    }
    let received = summary.total.sent + summary.wills as u64;
    let m = settled(&gw, received).await?;
    let sum = |p: &str| metric_sum(&m, p);
    assert_eq!(
        sum("gridwatch_messages_received_total"),
        received as f64,
        "{summary}\n{m}"
    );
    for (reason, n) in &rejected {
        assert_eq!(
            sum(&format!(
                "gridwatch_messages_rejected_total{{reason=\"{reason}\"}}"
            )),
            *n as f64,
            "{reason}: {summary}\n{m}"
        );
    }
    assert_eq!(
        sum("gridwatch_messages_rejected_total"),
        rejected.values().sum::<u64>() as f64,
        "no other rejections: {m}"
    );
    let dropped = sum("gridwatch_messages_dropped_total{reason=\"rate_limited\"}");
    assert_eq!(sum("gridwatch_messages_dropped_total"), dropped, "{m}");
    assert!(
        dropped > 0.0 && dropped < flood as f64,
        "{dropped} of {flood} dropped: {m}"
    );
    assert_eq!(
        sum("gridwatch_messages_accepted_total"),
        (accepted + flood) as f64 - dropped,
        "{summary}\n{m}"
    );
    assert_eq!(
        sum("gridwatch_messages_accepted_total{channel=\"status\"}"),
        4.0,
        "two online, two last wills: {m}"
    );

    let flooding = eventually(Duration::from_secs(20), || async {
        let alerts = get_json(&format!("{}/api/v1/alerts", gw.url)).await?;
        let mut ids: Vec<String> = alerts["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["rule"] == "device_flooding")
            .filter_map(|a| a["device"]["id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        Ok((ids.len() >= 2).then_some(ids))
    })
    .await?;
    assert_eq!(flooding, ["flood-000", "flood-001"]);
    all_stored(&gw).await?;
    Ok(())
}
