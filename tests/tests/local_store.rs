//! The embedded store keeps readings on local disk, and `gridwatch replay` sends them to a real
//! server later.

use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, telemetry};
use gridwatch_e2e::{
    eventually, metric_sum, stored_values, test_config, Device, Mosquitto, TestGateway,
    VictoriaMetrics, WebhookReceiver,
};
use gridwatch_firmware::wire::Value;
use gridwatch_gateway::config::{InfluxConfig, StoreBackend};
use gridwatch_gateway::sinks::tsdb::{replay, HttpStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_kept_locally_replay_into_victoriametrics() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let mut config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    config.store.backend = StoreBackend::Local;
    config.store.local.path = dir.path().join("tsdb");
    config.store.local.rotate_bytes = 2000;
    let gw = TestGateway::start_config(config, &hook).await?;

    let t0 = now_ms() - 60_000;
    let dev = Device::connect(mosquitto.port, "mh-2");
    for i in 1..=200u64 {
        let gas = [("gas_ppm", Value::Number(i as f64))];
        dev.publish(
            "gw/v1/yg/mh-2/telemetry",
            telemetry("manhole", t0 + i, i, &gas),
        )
        .await?;
    }
    eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_tsdb_lines_written_total") >= 200.0).then_some(()))
    })
    .await?;
    gw.gateway.shutdown().await;
    let files = std::fs::read_dir(dir.path().join("tsdb"))?.count();
    assert!(files > 1, "the local store rotated its files");

    let vm = VictoriaMetrics::start()?;
    gridwatch_gateway::app::install_crypto_provider();
    let store = HttpStore::new(
        &InfluxConfig {
            url: vm.url(),
            ..InfluxConfig::default()
        },
        None,
    )?;
    let mut reports = 0;
    let done = replay::replay(&dir.path().join("tsdb"), &store, 50, |_, _| reports += 1).await?;
    assert_eq!(done.lines, 200);
    assert_eq!(done.refused, 0);
    assert!(reports >= 4, "progress reported per chunk");
    let values = stored_values(&vm, "manhole_gas_ppm").await?;
    assert_eq!(values, (1..=200).collect());
    Ok(())
}
