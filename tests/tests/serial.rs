//! End to end over a pseudo-terminal pair standing in for an RS-485 adapter: the real gateway
//! binary reads framed messages, with line noise between them, from the pty's slave side, and
//! they come out exactly as messages over MQTT do: an SOS pages the worker on duty, readings land
//! in VictoriaMetrics with the same labels, bad frames and bad payloads are rejected and counted.

use std::io::Write;
use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, sos_pressed as sos, telemetry};
use gridwatch_e2e::{
    eventually, metric_sum, process_config, registry_text, Device, GatewayProcess, Mosquitto,
    VictoriaMetrics, WebhookReceiver,
};
use gridwatch_firmware::framing::{encode, max_encoded_len, Channel, Frame};
use gridwatch_firmware::wire::Value;
use serialport::{SerialPort, TTYPort};

fn manhole(ts: u64, seq: u64, tilt: f64) -> Vec<u8> {
    telemetry(
        "manhole",
        ts,
        seq,
        &[
            ("tilt_deg", Value::Number(tilt)),
            ("cover_open", Value::Bool(false)),
        ],
    )
}

/// One frame as a node puts it on the bus.
fn frame(device: &str, channel: Channel, payload: &[u8]) -> Vec<u8> {
    let f = Frame {
        device,
        channel,
        payload,
    };
    let mut out = vec![0; max_encoded_len(f.body_len())];
    let n = encode(&f, &mut out).expect("test frames encode");
    out.truncate(n);
    out
}

/// Line noise ended by a zero: the gateway sees one frame cut short and resynchronises.
const NOISE: &[u8] = b"\x01\x02noise\x00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wired_nodes_look_the_same_downstream_as_wireless_ones() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let hook = WebhookReceiver::start(0).await?;
    // The test keeps both ends: the master to write on, the slave so the pty stays usable
    // whenever the gateway opens and closes its own handle on it. `pair` opens them without
    // close-on-exec, so the gateway would inherit them and the master would never hang up:
    // the test keeps close-on-exec copies instead.
    let (mut master, slave) = {
        let (master, slave) = TTYPort::pair()?;
        (master.try_clone_native()?, slave.try_clone_native()?)
    };
    let slave_path = slave.name().expect("a pty slave has a path");
    let dir = tempfile::tempdir()?;
    let config = format!(
        "{}\n[[serial]]\nport = \"{slave_path}\"\nbaud = 115200\n",
        process_config(mosquitto.port, &vm.url(), dir.path())
    );
    let gw = GatewayProcess::start_with(&config, &registry_text(&hook), dir.path()).await?;
    let open = format!("gridwatch_serial_port_open{{port=\"{slave_path}\"}}");
    eventually(Duration::from_secs(20), || async {
        Ok((metric_sum(&gw.metrics().await?, &open) == 1.0).then_some(()))
    })
    .await?;

    let t0 = now_ms() - 60_000;
    let mut line = NOISE.to_vec();
    line.extend(frame("sos-301", Channel::Event, &sos(1)));
    for i in 0..3u64 {
        line.extend(b"\xff\xfegarbage\x00");
        line.extend(frame(
            "mh-1",
            Channel::Telemetry,
            &manhole(t0 + i, i + 1, i as f64 + 0.5),
        ));
    }
    let mut corrupt = frame("mh-1", Channel::Telemetry, &manhole(t0 + 9, 9, 9.5));
    corrupt[20] ^= 0x40;
    line.extend(corrupt);
    line.extend(frame("mh-404", Channel::Telemetry, &manhole(t0, 1, 1.0)));
    line.extend(frame("mh-1", Channel::Status, b"online"));
    master.write_all(&line)?;
    master.flush()?;

    let mqtt = Device::connect(mosquitto.port, "mh-2");
    for i in 0..3u64 {
        mqtt.publish(
            "gw/v1/yg/mh-2/telemetry",
            manhole(t0 + i, i + 1, i as f64 + 0.5),
        )
        .await?;
    }

    let paged = hook.next(Duration::from_secs(20)).await?.json();
    assert_eq!(paged["type"], "alert.opened");
    assert_eq!(paged["data"]["rule"], "sos_pressed");
    assert_eq!(paged["data"]["device"]["id"], "sos-301");
    assert_eq!(paged["data"]["assignee"]["id"], "w-li");

    let series = eventually(Duration::from_secs(60), || async {
        let series = vm.export(r#"{__name__="manhole_tilt_deg"}"#).await?;
        let samples: usize = series.iter().map(|s| s.values.len()).sum();
        Ok((samples >= 6).then_some(series))
    })
    .await?;
    assert_eq!(series.len(), 2, "one series per device");
    let by = |device: &str| {
        series
            .iter()
            .find(|s| s.metric["device"] == device)
            .expect("a series for each device")
    };
    let (wired, wireless) = (by("mh-1"), by("mh-2"));
    assert_eq!(wired.values, [0.5, 1.5, 2.5]);
    let t0 = t0 as i64;
    assert_eq!(wired.timestamps, [t0, t0 + 1, t0 + 2]);
    assert_eq!(wired.values, wireless.values);
    assert_eq!(wired.timestamps, wireless.timestamps);
    let labels = |s: &gridwatch_e2e::Series| {
        let mut m = s.metric.clone();
        m.remove("device");
        m.remove("location");
        m
    };
    assert_eq!(labels(wired), labels(wireless));

    let m = eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, "gridwatch_messages_received_total") >= 14.0).then_some(m))
    })
    .await?;
    let count = |name: &str| metric_sum(&m, name);
    assert_eq!(
        count("gridwatch_messages_rejected_total{reason=\"frame_cut_short\""),
        4.0,
        "the noise and the garbage between frames: {m}"
    );
    assert_eq!(
        count("gridwatch_messages_rejected_total{reason=\"frame_bad_crc\""),
        1.0,
        "{m}"
    );
    assert_eq!(
        count("gridwatch_messages_rejected_total{reason=\"unknown_device\""),
        1.0,
        "{m}"
    );
    assert_eq!(
        count("gridwatch_messages_accepted_total{channel=\"telemetry\""),
        6.0,
        "{m}"
    );
    assert_eq!(
        count("gridwatch_messages_accepted_total{channel=\"event\""),
        1.0,
        "{m}"
    );
    assert_eq!(
        count("gridwatch_messages_accepted_total{channel=\"status\""),
        1.0,
        "{m}"
    );
    let received = count("gridwatch_messages_received_total");
    let accounted = count("gridwatch_messages_accepted_total")
        + count("gridwatch_messages_rejected_total")
        + count("gridwatch_messages_dropped_total");
    assert_eq!(received, 14.0, "{m}");
    assert_eq!(received, accounted, "{m}");
    assert_eq!(count("gridwatch_alerts_opened_total"), 1.0, "{m}");

    // Unplugged: the port hangs up; the gateway says so and keeps trying to open it again.
    drop(master);
    let errors = format!("gridwatch_serial_port_errors_total{{port=\"{slave_path}\"}}");
    eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        Ok((metric_sum(&m, &open) == 0.0 && metric_sum(&m, &errors) >= 2.0).then_some(()))
    })
    .await?;
    drop(slave);
    Ok(())
}
