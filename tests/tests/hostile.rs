//! Hostile devices against the real gateway binary and a real Mosquitto: forged and unsigned
//! messages, replays (also after the gateway was killed and restarted), clocks far off and a
//! flood are each refused or dropped, counted by reason, and change nothing for the SOS that
//! follows, which is never rate-limited.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use gridwatch_e2e::payload::{encode, now_ms, telemetry};
use gridwatch_e2e::{
    eventually, get_json, metric_sum, registry_text, Device, GatewayProcess, Mosquitto,
    WebhookReceiver,
};
use gridwatch_firmware::auth;
use gridwatch_firmware::wire::{Message, Readings, Value};

const SOS_KEY: &str = "5a0f1c2d3e4f5061728394a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9";
const MH_KEY: &str = "0123456789abcdef0123456789abcdef";

fn key(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn signed(key_hex: &str, unsigned: &[u8]) -> Vec<u8> {
    let mut out = vec![0; unsigned.len() + auth::SIGNATURE_OVERHEAD];
    let n = auth::sign(&key(key_hex), unsigned, &mut out).expect("a valid message");
    out.truncate(n);
    out
}

fn water(ts: u64, seq: u64) -> Vec<u8> {
    telemetry("manhole", ts, seq, &[("water_cm", Value::Number(12.0))])
}

fn sos(ts: u64, seq: u64) -> Vec<u8> {
    signed(
        SOS_KEY,
        &encode(&Message {
            ts,
            seq,
            kind: "sos",
            event: Some("sos_pressed"),
            data: Readings::new(),
            mac: None,
        }),
    )
}

fn rejected(metrics: &str, reason: &str) -> f64 {
    metric_sum(
        metrics,
        &format!("gridwatch_messages_rejected_total{{reason=\"{reason}\"}}"),
    )
}

/// received = accepted + rejected + dropped.
fn assert_accounted(metrics: &str) {
    let sum = |m| metric_sum(metrics, m);
    assert_eq!(
        sum("gridwatch_messages_received_total"),
        sum("gridwatch_messages_accepted_total")
            + sum("gridwatch_messages_rejected_total")
            + sum("gridwatch_messages_dropped_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_counted_and_leaves_the_next_sos_untouched() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("device-keys.toml");
    std::fs::write(
        &keys,
        format!("\"sos-301\" = \"{SOS_KEY}\"\n\"mh-1\" = \"{MH_KEY}\"\n"),
    )?;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600))?;
    let config = format!(
        "[mqtt]\nport = {}\nreconnect_max_ms = 1000\n\
         [store]\nbackend = \"local\"\ndead_letter_path = \"{dead}\"\n\
         [store.local]\npath = \"{tsdb}\"\n\
         [journal]\npath = \"{journal}\"\n\
         [notify]\nretry_min_ms = 100\n\
         [ingest]\ndevice_keys_path = \"{keys}\"\ndevice_rate_per_min = 60\ndevice_burst = 10\n",
        mosquitto.port,
        dead = dir.path().join("dead-letter").display(),
        tsdb = dir.path().join("tsdb").display(),
        journal = dir.path().join("journal").display(),
        keys = keys.display(),
    );
    let mut gw = GatewayProcess::start_with(&config, &registry_text(&hook), dir.path()).await?;
    let now = now_ms();
    let mh1 = Device::connect(mosquitto.port, "mh-1");
    let topic = "gw/v1/yg/mh-1/telemetry";

    // Forged: signed with another key, and not signed at all.
    mh1.publish(topic, signed(SOS_KEY, &water(now, 1))).await?;
    mh1.publish(topic, water(now, 2)).await?;
    // Genuine, 1 to 6; then the first one again, and one with its clock an hour ahead.
    let genuine: Vec<Vec<u8>> = (1..=6).map(|s| signed(MH_KEY, &water(now, s))).collect();
    for m in &genuine {
        mh1.publish(topic, m.clone()).await?;
    }
    mh1.publish(topic, genuine[0].clone()).await?;
    mh1.publish(topic, signed(MH_KEY, &water(now + 3_600_000, 7)))
        .await?;
    let m = eventually(Duration::from_secs(10), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_messages_received_total") >= 10.0).then_some(m))
    })
    .await?;
    assert_eq!(rejected(&m, "bad_mac"), 2.0, "{m}");
    assert_eq!(rejected(&m, "replayed"), 1.0, "{m}");
    assert_eq!(rejected(&m, "clock_skew"), 1.0, "{m}");
    assert_eq!(
        metric_sum(&m, "gridwatch_messages_accepted_total"),
        6.0,
        "{m}"
    );

    // Killed without a goodbye and started again: an old message replayed now is still refused.
    // (Once every message is journaled and acknowledged: the broker sends again what was not,
    // which would pass as redeliveries and muddle the counts.)
    eventually(Duration::from_secs(10), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_journal_records_total") >= 6.0).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.kill()?;
    gw.restart().await?;
    let mh1 = Device::connect(mosquitto.port, "mh-1");
    mh1.publish(topic, genuine[0].clone()).await?;
    mh1.publish(topic, signed(MH_KEY, &water(now, 8))).await?;
    let m = eventually(Duration::from_secs(10), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_messages_received_total") >= 2.0).then_some(m))
    })
    .await?;
    assert_eq!(rejected(&m, "replayed"), 1.0, "{m}");
    assert_eq!(metric_sum(&m, "gridwatch_messages_accepted_total"), 1.0);

    // A flood from mh-2: ten at once pass (and one a second after), the rest are dropped, and
    // the device is raised as flooding for the worker on duty in its grid.
    let mh2 = Device::connect(mosquitto.port, "mh-2");
    for seq in 1..=30 {
        mh2.publish("gw/v1/yg/mh-2/telemetry", water(now_ms(), seq))
            .await?;
    }
    // Meanwhile the SOS button, its clock not yet set (a node just booted), presses again and
    // again: never dropped, never refused for its clock.
    let button = Device::connect(mosquitto.port, "sos-301");
    for seq in 1..=20 {
        button
            .publish("gw/v1/yg/sos-301/event", sos(12_345 + seq, seq))
            .await?;
    }
    let flood = eventually(Duration::from_secs(20), || async {
        let alerts = get_json(&format!("{}/api/v1/alerts", gw.url)).await?;
        Ok(alerts["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["rule"] == "device_flooding").cloned()))
    })
    .await?;
    assert_eq!(flood["device"]["id"], "mh-2", "{flood}");
    assert_eq!(flood["assignee"]["id"], "w-wang", "mh-2 is in grid g1");
    let page = loop {
        let got = hook.next(Duration::from_secs(20)).await?;
        let body = got.json();
        if body["data"]["rule"] == "sos_pressed" {
            break body;
        }
    };
    assert_eq!(page["data"]["assignee"]["id"], "w-li", "{page}");

    let m = eventually(Duration::from_secs(10), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_messages_received_total") >= 52.0).then_some(m))
    })
    .await?;
    let dropped = metric_sum(
        &m,
        "gridwatch_messages_dropped_total{reason=\"rate_limited\"",
    );
    assert!((15.0..=20.0).contains(&dropped), "{dropped} dropped: {m}");
    assert_eq!(
        metric_sum(&m, "gridwatch_messages_accepted_total{channel=\"event\""),
        20.0,
        "every press taken: {m}"
    );
    assert_accounted(&m);
    gw.stop()?;
    Ok(())
}
