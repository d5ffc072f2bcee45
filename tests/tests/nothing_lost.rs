//! Nothing is lost when the gateway or the store is away for a while.

use std::time::Duration;

use gridwatch_e2e::{
    eventually, free_port, metric_sum, Device, Mosquitto, TestGateway, VictoriaMetrics,
    WebhookReceiver,
};
use gridwatch_firmware::wire::{self, Message, Reading, Readings, Value};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn encode(msg: &Message<'_>) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let n = wire::encode(msg, &mut buf).unwrap();
    buf[..n].to_vec()
}

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

    let sos = encode(&Message {
        ts: now_ms(),
        seq: 1,
        kind: "sos",
        event: Some("sos_pressed"),
        data: Readings::new(),
        mac: None,
    });
    Device::connect(mosquitto.port, "sos-301")
        .publish("gw/v1/yg/sos-301/event", sos)
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
        let mut data = Readings::new();
        data.push(Reading {
            name: "water_cm",
            value: Value::Number(i as f64),
        })
        .unwrap();
        let m = Message {
            ts: t0 + i,
            seq: i + 1,
            kind: "manhole",
            event: None,
            data,
            mac: None,
        };
        dev.publish("gw/v1/yg/mh-1/telemetry", encode(&m)).await?;
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
