//! Fault tests against the real servers. Each one publishes numbered readings under load, breaks
//! something in the middle, and then checks by number that every reading the broker acknowledged
//! reached VictoriaMetrics.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, telemetry};
use gridwatch_e2e::{
    eventually, metric_sum, stored_values, test_config, AckedPublisher, GatewayProcess, Mosquitto,
    TestGateway, VictoriaMetrics, WebhookReceiver,
};
use gridwatch_firmware::wire::Value;

const N: u64 = 3000;
const METRIC: &str = "manhole_gas_ppm";

/// Reading `seq` carries `seq` as its value, so the store can be checked by number (gas in ppm:
/// its valid range holds every number a test sends).
fn reading(t0: u64, seq: u64) -> Vec<u8> {
    telemetry(
        "manhole",
        t0 + seq,
        seq,
        &[("gas_ppm", Value::Number(seq as f64))],
    )
}

fn t0() -> u64 {
    now_ms() - 600_000
}

/// Publishes readings 1..=n one by one, each acknowledged by the broker; counts them in `acked`.
fn load(port: u16, n: u64, acked: Arc<AtomicU64>) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let t0 = t0();
        let mut device = AckedPublisher::new(port, "mh-1");
        for seq in 1..=n {
            device
                .publish("gw/v1/yg/mh-1/telemetry", &reading(t0, seq))
                .await?;
            acked.store(seq, Ordering::SeqCst);
        }
        Ok(())
    })
}

async fn until_acked(acked: &AtomicU64, at_least: u64) -> anyhow::Result<()> {
    eventually(Duration::from_secs(60), || async {
        Ok((acked.load(Ordering::SeqCst) >= at_least).then_some(()))
    })
    .await
}

/// Waits until the store holds every reading 1..=n, or says which are missing.
async fn all_stored(vm: &VictoriaMetrics, n: u64) -> anyhow::Result<()> {
    let want: BTreeSet<u64> = (1..=n).collect();
    let result = eventually(Duration::from_secs(60), || async {
        Ok(want
            .is_subset(&stored_values(vm, METRIC).await?)
            .then_some(()))
    })
    .await;
    if result.is_err() {
        let got = stored_values(vm, METRIC).await?;
        let missing: Vec<u64> = want.difference(&got).copied().collect();
        anyhow::bail!(
            "{} acknowledged readings missing, first ones: {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_stopped_during_load_loses_nothing() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let mut vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start(&mosquitto, &vm, &hook).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let publisher = load(mosquitto.port, N, acked.clone());

    until_acked(&acked, N / 3).await?;
    vm.stop()?;
    until_acked(&acked, 2 * N / 3).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    vm.start_again()?;
    publisher.await??;

    all_stored(&vm, N).await?;
    let m = gw.metrics().await?;
    assert!(
        metric_sum(&m, "gridwatch_tsdb_batches_total{outcome=\"retry\"") >= 1.0,
        "the outage was felt: {m}"
    );
    assert_eq!(metric_sum(&m, "gridwatch_tsdb_lines_dropped_total"), 0.0);
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_killed_during_load_loses_nothing() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let mut gw = GatewayProcess::start(mosquitto.port, &vm.url(), &hook, dir.path()).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let publisher = load(mosquitto.port, N, acked.clone());

    until_acked(&acked, N / 3).await?;
    gw.kill()?;
    until_acked(&acked, N / 2).await?;
    gw.restart().await?;
    publisher.await??;

    all_stored(&vm, N).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restarted_during_load_loses_nothing() -> anyhow::Result<()> {
    let mut mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start(&mosquitto, &vm, &hook).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let publisher = load(mosquitto.port, N, acked.clone());

    until_acked(&acked, N / 3).await?;
    mosquitto.restart(Duration::from_millis(500))?;
    publisher.await??;

    all_stored(&vm, N).await?;
    let m = gw.metrics().await?;
    assert!(metric_sum(&m, "gridwatch_mqtt_connection_errors_total") >= 1.0);
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_journal_segment_is_moved_aside_and_the_gateway_starts() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    // Held until the store starts, so that no other test's server takes the port meanwhile; a
    // listener that never accepts is a store that does not answer.
    let hold = std::net::TcpListener::bind("127.0.0.1:0")?;
    let store_port = hold.local_addr()?.port();
    let mut config = test_config(
        mosquitto.port,
        &format!("http://127.0.0.1:{store_port}"),
        dir.path(),
    );
    config.journal.segment_bytes = 4096;
    // A segment ends after the group that fills it: small groups, so 300 readings make several
    // segments however fast they arrive (all at once, they fit in two groups).
    config.journal.max_group = 8;

    // With the store down, 300 readings wait in the journal, over several segments.
    let gw = TestGateway::start_config(config.clone(), &hook).await?;
    let n = 300;
    let acked = Arc::new(AtomicU64::new(0));
    load(mosquitto.port, n, acked).await??;
    eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_journal_records_total") >= n as f64).then_some(()))
    })
    .await?;
    let first_metrics = gw.metrics().await?;
    gw.gateway.shutdown().await;

    let journal = dir.path().join("journal");
    let mut segments: Vec<_> = std::fs::read_dir(&journal)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    if segments.len() < 3 {
        // Say what took them: the consumers' cursors and what the first gateway counted.
        let cursors: Vec<(String, String)> = std::fs::read_dir(&journal)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cursor"))
            .map(|p| (p.display().to_string(), format!("{:?}", std::fs::read(&p))))
            .collect();
        anyhow::bail!(
            "expected several journal segments, found {segments:?}; cursors {cursors:?}; \
             first gateway's metrics:\n{first_metrics}"
        );
    }
    let mut bytes = std::fs::read(&segments[0])?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&segments[0], bytes)?;

    drop(hold);
    let vm = VictoriaMetrics::start_on(store_port)?;
    let gw = TestGateway::start_config(config, &hook).await?;
    let m = gw.metrics().await?;
    assert_eq!(
        metric_sum(&m, "gridwatch_journal_quarantined_segments_total"),
        1.0
    );
    assert!(journal.join("quarantine").read_dir()?.next().is_some());

    // Everything outside the bad segment arrives: the newest readings, with only the oldest missing.
    let got = eventually(Duration::from_secs(30), || async {
        let got = stored_values(&vm, METRIC).await?;
        Ok(got.contains(&n).then_some(got))
    })
    .await?;
    let lost = n - got.len() as u64;
    assert!(lost > 0 && lost < n / 2, "lost {lost}");
    assert_eq!(
        got,
        (lost + 1..=n).collect::<BTreeSet<_>>(),
        "only the oldest segment's readings are missing"
    );
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_the_queue_drains_without_dropping() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let mut config = test_config(mosquitto.port, &vm.url(), dir.path());
    config.ingest.telemetry_queue = 8;
    // Leave a persistent session, then let a backlog pile up at the broker while the gateway is away.
    TestGateway::start_config(config.clone(), &hook)
        .await?
        .gateway
        .shutdown()
        .await;
    let n = 1000;
    load(mosquitto.port, n, Arc::new(AtomicU64::new(0))).await??;

    let gw = TestGateway::start_config(config, &hook).await?;
    all_stored(&vm, n).await?;
    let m = gw.metrics().await?;
    assert_eq!(
        metric_sum(&m, "gridwatch_messages_dropped_total"),
        0.0,
        "{m}"
    );
    gw.gateway.shutdown().await;
    Ok(())
}
