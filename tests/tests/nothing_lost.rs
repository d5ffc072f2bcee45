//! Nothing is lost when the gateway or the store is away for a while.

use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, sos_pressed, water};
use gridwatch_e2e::{
    eventually, free_port, get_text, metric_sum, stored_values, test_config, Device, Mosquitto,
    TestGateway, VictoriaMetrics, WebhookReceiver,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sos_sent_while_the_gateway_is_down_is_delivered_when_it_returns() -> anyhow::Result<()>
{
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    // The first start leaves a persistent session with the gateway's subscriptions at the broker.
    TestGateway::start(&mosquitto, &vm, &hook)
        .await?
        .gateway
        .shutdown()
        .await;

    Device::connect(mosquitto.port, "sos-301")
        .publish("gw/v1/yg/sos-301/event", sos_pressed(1))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let gw = TestGateway::start(&mosquitto, &vm, &hook).await?;
    let got = hook.next(Duration::from_secs(20)).await?;
    assert_eq!(got.json()["data"]["device"]["id"], "sos-301");
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_wait_for_a_store_that_is_down_and_arrive_when_it_starts() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let port = free_port();
    let gw = TestGateway::start_with_store(&mosquitto, &format!("http://127.0.0.1:{port}"), &hook)
        .await?;

    let t0 = now_ms() - 10_000;
    let dev = Device::connect(mosquitto.port, "mh-1");
    for i in 0..300u64 {
        dev.publish("gw/v1/yg/mh-1/telemetry", water(t0 + i, i + 1, i as f64))
            .await?;
    }
    eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_tsdb_batches_total{outcome=\"retry\"") >= 2.0).then_some(()))
    })
    .await?;

    let vm = VictoriaMetrics::start_on(port)?;
    let series = eventually(Duration::from_secs(30), || async {
        let s = vm.export(r#"{__name__="manhole_water_cm"}"#).await?;
        Ok((s.iter().map(|s| s.values.len()).sum::<usize>() >= 300).then_some(s))
    })
    .await?;
    assert_eq!(series[0].values.len(), 300);
    assert_eq!(
        series[0].values[..3],
        [0.0, 1.0, 2.0],
        "in order, from the first"
    );
    let m = gw.metrics().await?;
    assert_eq!(metric_sum(&m, "gridwatch_tsdb_lines_written_total"), 300.0);
    assert_eq!(metric_sum(&m, "gridwatch_tsdb_lines_dropped_total"), 0.0);
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_written_holds_back_acks_raises_an_alert_and_recovers(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let gw = TestGateway::start_config(test_config(mosquitto.port, &vm.url(), dir.path()), &hook)
        .await?;
    // The first segment is /dev/full: every write fails with "no space left on device".
    let segment = dir.path().join("journal/00000000000000000001.seg");
    std::os::unix::fs::symlink("/dev/full", &segment)?;

    let t0 = now_ms() - 10_000;
    let dev = Device::connect(mosquitto.port, "mh-1");
    for i in 0..5u64 {
        dev.publish("gw/v1/yg/mh-1/telemetry", water(t0 + i, i + 1, i as f64))
            .await?;
    }

    // An SOS still reaches the worker while nothing can be written: rules do not wait for the disk.
    Device::connect(mosquitto.port, "sos-301")
        .publish("gw/v1/yg/sos-301/event", sos_pressed(1))
        .await?;
    let got = hook.next(Duration::from_secs(20)).await?;
    assert_eq!(got.json()["data"]["rule"], "sos_pressed");

    let alert = eventually(Duration::from_secs(20), || async {
        let list: serde_json::Value =
            serde_json::from_str(&get_text(&format!("{}/api/v1/alerts", gw.url)).await?)?;
        Ok(list["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["rule"] == "journal_write_failed"))
            .cloned())
    })
    .await?;
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["device"]["id"], "gateway");
    let m = gw.metrics().await?;
    assert!(metric_sum(&m, "gridwatch_journal_commit_failures_total") >= 1.0);
    assert_eq!(metric_sum(&m, "gridwatch_journal_commits_total"), 0.0);
    assert!(stored_values(&vm, "manhole_water_cm").await?.is_empty());

    std::fs::remove_file(&segment)?;
    eventually(Duration::from_secs(20), || async {
        Ok((stored_values(&vm, "manhole_water_cm").await?.len() == 5).then_some(()))
    })
    .await?;
    gw.gateway.shutdown().await;
    Ok(())
}
