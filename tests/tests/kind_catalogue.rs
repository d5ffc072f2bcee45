//! A kind that exists only in this test's catalogue file is accepted, checked, stored and listed:
//! adding a kind is a file, not a change to the code.

use std::sync::Arc;
use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, telemetry};
use gridwatch_e2e::{
    eventually, get_text, metric_sum, stored_values, test_config, Device, Mosquitto, TestGateway,
    VictoriaMetrics,
};
use gridwatch_firmware::wire::Value;
use gridwatch_gateway::catalogue::Catalogue;
use gridwatch_gateway::registry::Registry;

const CATALOGUE: &str = r#"
[[kinds]]
name = "air_quality"
label = { zh-CN = "空气质量", en = "Air quality" }
report_every_secs = 60
readings = [
  { name = "pm25_ugm3", type = "number", unit = "µg/m³", min = 0, max = 1000, label = { zh-CN = "PM2.5", en = "PM2.5" } },
]
events = [
  { name = "pm25_high", severity = "minor", label = { zh-CN = "PM2.5超标", en = "PM2.5 high" } },
]
"#;

const REGISTRY: &str = r#"
[community]
id = "yg"
name = "阳光社区"
[[buildings]]
id = "b1"
name = "1号楼"
[[grids]]
id = "g1"
name = "第一网格"
[[devices]]
id = "aq-1"
kind = "air_quality"
building = "b1"
grid = "g1"
location = "楼顶"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_known_only_to_a_catalogue_file_flows_end_to_end() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kinds.toml");
    std::fs::write(&path, CATALOGUE)?;
    let catalogue = Arc::new(Catalogue::load(&path).map_err(anyhow::Error::msg)?);
    assert!(
        Registry::parse(REGISTRY).is_err(),
        "the built-in catalogue does not know the kind"
    );
    let registry =
        Registry::parse_with(REGISTRY, catalogue).map_err(|p| anyhow::anyhow!("{p:?}"))?;

    let mosquitto = Mosquitto::start()?;
    let vm = VictoriaMetrics::start()?;
    let config = test_config(mosquitto.port, &vm.url(), dir.path());
    let gw = TestGateway::start_registry(config, registry).await?;

    let kinds: serde_json::Value =
        serde_json::from_str(&get_text(&format!("{}/api/v1/kinds", gw.url)).await?)?;
    assert_eq!(kinds["kinds"][0]["name"], "air_quality");
    assert_eq!(kinds["kinds"][0]["readings"][0]["unit"], "µg/m³");

    let dev = Device::connect(mosquitto.port, "aq-1");
    let t0 = now_ms() - 1000;
    let pm = |v: f64| [("pm25_ugm3", Value::Number(v))];
    dev.publish(
        "gw/v1/yg/aq-1/telemetry",
        telemetry("air_quality", t0, 1, &pm(35.0)),
    )
    .await?;
    dev.publish(
        "gw/v1/yg/aq-1/telemetry",
        telemetry("air_quality", t0 + 1, 2, &pm(5000.0)),
    )
    .await?;

    let stored = eventually(Duration::from_secs(20), || async {
        let v = stored_values(&vm, "air_quality_pm25_ugm3").await?;
        Ok((!v.is_empty()).then_some(v))
    })
    .await?;
    assert_eq!(stored.into_iter().collect::<Vec<_>>(), [35]);
    // 5000 µg/m³ is outside the kind's range.
    eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        let rejected = metric_sum(
            &m,
            "gridwatch_messages_rejected_total{reason=\"bad_reading\"",
        );
        Ok((rejected == 1.0).then_some(()))
    })
    .await?;
    gw.gateway.shutdown().await;
    Ok(())
}
