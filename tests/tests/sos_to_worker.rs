//! End to end, against a real Mosquitto and a real VictoriaMetrics: an SOS reaches the worker on
//! duty, telemetry reaches the store, and bad input is refused and counted without holding up an SOS.

use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, sos_pressed as sos, telemetry};
use gridwatch_e2e::{
    eventually, get_text, metric_sum, Device, Mosquitto, TestGateway, VictoriaMetrics,
    WebhookReceiver, WEBHOOK_SECRET,
};
use gridwatch_firmware::wire::Value;
use gridwatch_gateway::notify::signing::Signer;

fn manhole(ts: u64, seq: u64, tilt: f64) -> Vec<u8> {
    let readings = [
        ("tilt_deg", Value::Number(tilt)),
        ("cover_open", Value::Bool(false)),
    ];
    telemetry("manhole", ts, seq, &readings)
}

/// received = accepted + rejected + dropped: every message is accounted for.
fn assert_accounted(metrics: &str) {
    let received = metric_sum(metrics, "gridwatch_messages_received_total");
    let accepted = metric_sum(metrics, "gridwatch_messages_accepted_total");
    let rejected = metric_sum(metrics, "gridwatch_messages_rejected_total");
    let dropped = metric_sum(metrics, "gridwatch_messages_dropped_total");
    assert_eq!(received, accepted + rejected + dropped, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sos_press_reaches_the_worker_on_duty_and_is_retried_until_accepted(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(2).await?;
    let gw = TestGateway::start(&mosquitto, &vm, &hook).await?;

    Device::connect(mosquitto.port, "sos-301")
        .publish("gw/v1/yg/sos-301/event", sos(1))
        .await?;

    let attempts = [
        hook.next(Duration::from_secs(20)).await?,
        hook.next(Duration::from_secs(20)).await?,
        hook.next(Duration::from_secs(20)).await?,
    ];
    let statuses: Vec<u16> = attempts.iter().map(|a| a.answered.as_u16()).collect();
    assert_eq!(statuses, [503, 503, 200]);
    let ids: Vec<&str> = attempts.iter().map(|a| a.header("webhook-id")).collect();
    assert!(
        !ids[0].is_empty() && ids.iter().all(|id| *id == ids[0]),
        "one idempotency id for every attempt: {ids:?}"
    );

    let accepted = &attempts[2];
    let body = accepted.json();
    let alert = &body["data"];
    assert_eq!(body["type"], "alert.opened");
    assert_eq!(alert["rule"], "sos_pressed");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["state"], "firing");
    assert_eq!(
        alert["assignee"]["id"], "w-li",
        "the worker on duty for grid g2"
    );
    assert_eq!(alert["device"]["id"], "sos-301");
    assert_eq!(alert["device"]["kind"], "sos");
    assert_eq!(alert["device"]["community"], "yg");
    assert_eq!(alert["device"]["building"], "b3");
    assert_eq!(alert["device"]["grid"], "g2");
    assert_eq!(alert["device"]["location"], "2单元301室");
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("3号楼2单元301室"),
        "{alert}"
    );
    assert!(alert["messages"]["en"].as_str().unwrap().contains("SOS"));

    let ts: u64 = accepted.header("webhook-timestamp").parse()?;
    let expected = Signer::from_secret(WEBHOOK_SECRET)?.sign(ids[0], ts, &accepted.body);
    assert_eq!(accepted.header("webhook-signature"), expected);

    let listed: serde_json::Value =
        serde_json::from_str(&get_text(&format!("{}/api/v1/alerts", gw.url)).await?)?;
    assert_eq!(listed["alerts"][0]["alert_id"], alert["alert_id"]);

    let m = gw.metrics().await?;
    assert_eq!(
        metric_sum(
            &m,
            "gridwatch_notify_attempts_total{channel=\"webhook\",outcome=\"failed\""
        ),
        2.0
    );
    assert_eq!(
        metric_sum(
            &m,
            "gridwatch_notify_attempts_total{channel=\"webhook\",outcome=\"delivered\""
        ),
        1.0
    );
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_readings_all_reach_victoriametrics() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start(&mosquitto, &vm, &hook).await?;

    let t0 = now_ms() - 60_000;
    let devices = [
        ("mh-1", Device::connect(mosquitto.port, "mh-1")),
        ("mh-2", Device::connect(mosquitto.port, "mh-2")),
    ];
    for i in 0..500u64 {
        for (id, dev) in &devices {
            dev.publish(
                &format!("gw/v1/yg/{id}/telemetry"),
                manhole(t0 + i, i + 1, i as f64 / 100.0),
            )
            .await?;
        }
    }

    let series = eventually(Duration::from_secs(60), || async {
        let series = vm.export(r#"{__name__="manhole_tilt_deg"}"#).await?;
        let samples: usize = series.iter().map(|s| s.values.len()).sum();
        Ok((samples >= 1000).then_some(series))
    })
    .await?;
    assert_eq!(series.len(), 2, "one series per device");
    for s in &series {
        assert_eq!(s.metric["community"], "yg");
        assert_eq!(s.metric["building"], "b3");
        assert_eq!(s.metric["grid"], "g1");
        assert_eq!(s.values.len(), 500, "{}", s.metric["device"]);
        assert_eq!(s.timestamps.first(), Some(&(t0 as i64)));
        assert_eq!(s.values[499], 4.99);
    }

    let m = gw.metrics().await?;
    assert_eq!(
        metric_sum(
            &m,
            "gridwatch_messages_accepted_total{channel=\"telemetry\""
        ),
        1000.0
    );
    assert_eq!(metric_sum(&m, "gridwatch_tsdb_lines_written_total"), 1000.0);
    assert_accounted(&m);
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_counted_while_a_following_sos_gets_through() -> anyhow::Result<()>
{
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start(&mosquitto, &vm, &hook).await?;

    let attacker = Device::connect(mosquitto.port, "somebody");
    attacker
        .publish("gw/v1/yg/sos-301/event", &b"{\"v\":1,\"ts\":oops"[..])
        .await?;
    attacker.publish("gw/v1/yg/sos-999/event", sos(1)).await?;
    attacker.publish("gw/v1/yg/bad.id/event", sos(1)).await?;
    attacker
        .publish("gw/v1/yg/mh-1/telemetry", &b"\xff\xfe"[..])
        .await?;
    Device::connect(mosquitto.port, "sos-301")
        .publish("gw/v1/yg/sos-301/event", sos(7))
        .await?;

    let got = hook.next(Duration::from_secs(20)).await?;
    assert_eq!(got.json()["data"]["device"]["id"], "sos-301");

    let m = eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_messages_received_total") >= 5.0).then_some(m))
    })
    .await?;
    assert_eq!(
        metric_sum(&m, "gridwatch_messages_rejected_total{reason=\"malformed\""),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(
            &m,
            "gridwatch_messages_rejected_total{reason=\"unknown_device\""
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "gridwatch_messages_rejected_total{reason=\"bad_topic\""),
        1.0,
        "{m}"
    );
    assert_eq!(metric_sum(&m, "gridwatch_alerts_opened_total"), 1.0);
    assert_accounted(&m);
    gw.gateway.shutdown().await;
    Ok(())
}
