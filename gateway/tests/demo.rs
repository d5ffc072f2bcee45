//! `gridwatch demo`, the README's first command, runs end to end: the embedded broker, the
//! generated community on the real firmware playing the tour scenario, alerts, webhooks to the
//! stand-in worker app, and the local store.

use std::time::Duration;

use gridwatch_gateway::demo::{self, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_opens_alerts_reaches_workers_and_stores_readings() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let opts = DemoOptions {
        listen: "127.0.0.1:0".parse()?,
        mqtt_port: None,
        data_dir: dir.path().to_owned(),
        // Four simulated minutes of the tour in eight real seconds: the SOS, the e-bike, the
        // alarm, the gas and the wedged fire door at least, each decided by the firmware.
        speed: Some(30.0),
        scenario: None,
    };
    let summary = demo::run(opts, tokio::time::sleep(Duration::from_secs(8))).await?;
    assert!(summary.alerts_opened >= 5, "{summary:?}");
    assert!(summary.webhooks_delivered >= 5, "{summary:?}");
    assert!(summary.expectations_met >= 5, "{summary:?}");
    assert_eq!(summary.expectations_failed, 0, "{summary:?}");
    // Telemetry and heartbeats of nine devices over four simulated minutes.
    assert!(summary.readings_stored > 50, "{summary:?}");
    // rumqttd drops a client that acknowledges out of order; the gateway must not.
    assert_eq!(summary.connection_errors, 0, "{summary:?}");
    Ok(())
}
