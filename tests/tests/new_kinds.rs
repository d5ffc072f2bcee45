//! The kinds added after the first four (electrical fire monitoring, parking, perimeter) through
//! a real Mosquitto and VictoriaMetrics: readings stored under their catalogue names, their events
//! open their default rules' alerts, and the overview counts free parking spaces.

use std::time::Duration;

use gridwatch_e2e::payload::{event, now_ms, telemetry};
use gridwatch_e2e::{
    eventually, get_json, stored_values, test_config, Device, Mosquitto, TestGateway,
    VictoriaMetrics,
};
use gridwatch_firmware::wire::Value;
use gridwatch_gateway::registry::Registry;

const REGISTRY: &str = r#"
[community]
id = "yg"
name = "阳光社区"
[[buildings]]
id = "b1"
name = "1号楼"
[[buildings]]
id = "garage"
name = "地下车库"
[[grids]]
id = "g1"
name = "第一网格"
[[devices]]
id = "eb-1"
kind = "electrical"
building = "b1"
grid = "g1"
location = "1单元配电箱"
[[devices]]
id = "gate-n"
kind = "parking"
building = "garage"
grid = "g1"
location = "北门"
[[devices]]
id = "space-1"
kind = "parking"
building = "garage"
grid = "g1"
location = "B1-001"
[[devices]]
id = "space-2"
kind = "parking"
building = "garage"
grid = "g1"
location = "B1-002"
[[devices]]
id = "fence-w"
kind = "perimeter"
building = "b1"
grid = "g1"
location = "西侧围墙"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn electrical_parking_and_perimeter_flow_end_to_end() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::parse(REGISTRY).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let config = test_config(mosquitto.port, &vm.url(), dir.path());
    let gw = TestGateway::start_registry(config, registry).await?;
    let dev = Device::connect(mosquitto.port, "sim");
    let t0 = now_ms() - 1000;

    let box_readings = [
        ("residual_current_ma", Value::Number(35.0)),
        ("cable_temp_c", Value::Number(41.5)),
        ("voltage_v", Value::Number(221.0)),
        ("current_a", Value::Number(12.0)),
        ("overload", Value::Bool(false)),
    ];
    dev.publish(
        "gw/v1/yg/eb-1/telemetry",
        telemetry("electrical", t0, 1, &box_readings),
    )
    .await?;
    dev.publish(
        "gw/v1/yg/eb-1/event",
        event("electrical", "arc_fault", t0 + 1, 2, &box_readings),
    )
    .await?;
    dev.publish(
        "gw/v1/yg/gate-n/event",
        event(
            "parking",
            "fire_lane_blocked",
            t0,
            1,
            &[
                ("fire_lane_occupied", Value::Bool(true)),
                ("fire_lane_dwell_s", Value::Number(300.0)),
            ],
        ),
    )
    .await?;
    dev.publish(
        "gw/v1/yg/fence-w/event",
        event(
            "perimeter",
            "intrusion",
            t0,
            1,
            &[
                ("zone", Value::Number(3.0)),
                ("armed", Value::Bool(true)),
                ("beam_broken", Value::Bool(true)),
            ],
        ),
    )
    .await?;
    for (space, seq, taken) in [
        ("space-1", 1, true),
        ("space-2", 1, true),
        ("space-2", 2, false),
    ] {
        dev.publish(
            &format!("gw/v1/yg/{space}/telemetry"),
            telemetry(
                "parking",
                t0 + seq,
                seq,
                &[("occupied", Value::Bool(taken))],
            ),
        )
        .await?;
    }

    let opened = eventually(Duration::from_secs(20), || async {
        let list = get_json(&format!("{}/api/v1/alerts", gw.url)).await?;
        let mut rules: Vec<String> = list["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some(format!(
                    "{}:{}",
                    a["device"]["id"].as_str()?,
                    a["rule"].as_str()?
                ))
            })
            .collect();
        // The registry has no workers: the gateway's own nobody-on-duty alert is not ours.
        rules.retain(|r| !r.starts_with("gateway:"));
        rules.sort();
        Ok((rules.len() >= 3).then_some(rules))
    })
    .await?;
    assert_eq!(
        opened,
        [
            "eb-1:arc_fault",
            "fence-w:intrusion",
            "gate-n:fire_lane_blocked"
        ]
    );

    let spaces = eventually(Duration::from_secs(20), || async {
        let o = get_json(&format!("{}/api/v1/overview", gw.url)).await?;
        let s = o["spaces"][0].clone();
        Ok((s["total"] == 2 && s["free"] == 1).then_some(s))
    })
    .await?;
    assert_eq!(spaces["name"], "地下车库");
    assert_eq!(spaces["taken"], 1);

    let stored = eventually(Duration::from_secs(20), || async {
        let v = stored_values(&vm, "electrical_residual_current_ma").await?;
        Ok((!v.is_empty()).then_some(v))
    })
    .await?;
    assert_eq!(stored.into_iter().collect::<Vec<_>>(), [35]);
    gw.gateway.shutdown().await;
    Ok(())
}
