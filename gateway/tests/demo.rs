//! `gridwatch demo`, the README's first command, runs end to end: the embedded broker, the
//! simulated community, alerts, webhooks to the stand-in worker app, and the local store.

use std::time::Duration;

use gridwatch_gateway::demo::{self, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_opens_alerts_reaches_workers_and_stores_readings() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let opts = DemoOptions {
        listen: "127.0.0.1:0".parse()?,
        mqtt_port: None,
        data_dir: dir.path().to_owned(),
        telemetry_every: Duration::from_millis(200),
        sos_every: Duration::from_millis(700),
    };
    let summary = demo::run(opts, tokio::time::sleep(Duration::from_secs(6))).await?;
    assert!(summary.alerts_opened >= 3, "{summary:?}");
    assert!(summary.webhooks_delivered >= 3, "{summary:?}");
    assert!(summary.readings_stored > 100, "{summary:?}");
    // rumqttd drops a client that acknowledges out of order; the gateway must not.
    assert_eq!(summary.connection_errors, 0, "{summary:?}");
    Ok(())
}
