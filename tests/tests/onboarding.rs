//! Onboarding a community, end to end with the real binary and a real Mosquitto: the shipped
//! example spreadsheets go through `gridwatch registry import`, and an SOS from an imported
//! device reaches the imported worker on duty; `gridwatch init` lays out an installation that
//! starts as it is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use gridwatch_e2e::payload::sos_pressed;
use gridwatch_e2e::{
    free_port, gateway_binary, wait_ready, Device, GatewayProcess, Mosquitto, WebhookReceiver,
};
use gridwatch_gateway::catalogue::Catalogue;
use gridwatch_gateway::registry::sheets::Sheet;
use gridwatch_gateway::registry::{files, Registry};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/registry")
}

/// Runs `gridwatch` with `args`, returning stdout; fails with its stderr if it fails.
fn gridwatch(args: &[&str], cwd: &Path) -> anyhow::Result<String> {
    let out = Command::new(gateway_binary()?)
        .args(args)
        .current_dir(cwd)
        .output()
        .context("running gridwatch")?;
    ensure!(
        out.status.success(),
        "gridwatch {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn the_shipped_workbook_and_csv_folder_import_to_the_same_registry() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let xlsx = examples().join("yangguang.xlsx");
    let csv = examples().join("yangguang-csv");
    let said = gridwatch(
        &[
            "registry",
            "import",
            &xlsx.to_string_lossy(),
            "--out",
            "a.toml",
        ],
        dir.path(),
    )?;
    assert!(
        said.contains("阳光社区 (yangguang): 2 grids, 10 devices, 5 workers, 2 shifts"),
        "{said}"
    );
    gridwatch(
        &[
            "registry",
            "import",
            &csv.to_string_lossy(),
            "--out",
            "b.toml",
        ],
        dir.path(),
    )?;
    let (a, b) = (
        std::fs::read_to_string(dir.path().join("a.toml"))?,
        std::fs::read_to_string(dir.path().join("b.toml"))?,
    );
    assert_eq!(a, b);
    Ok(())
}

#[test]
fn a_sheet_with_problems_writes_nothing_and_names_every_cell() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sheets = dir.path().join("sheets");
    let mut tables = files::read(&[examples().join("yangguang-csv")])?;
    let devices = tables
        .iter_mut()
        .find(|t| t.sheet == Sheet::Devices)
        .context("a devices sheet")?;
    devices.rows.push(
        ["elev-b1-1", "电梯", "b9", "", "重复", ""]
            .map(String::from)
            .to_vec(),
    );
    files::write(&sheets, &tables, None)?;
    let out = Command::new(gateway_binary()?)
        .args(["registry", "import"])
        .arg(&sheets)
        .current_dir(dir.path())
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("devices.csv row 12 column C (楼栋编号 building_id): building \"b9\" is not in the buildings sheet"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert!(!dir.path().join("registry.toml").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sos_from_an_imported_device_reaches_the_imported_worker_on_duty() -> anyhow::Result<()>
{
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;

    // The shipped workbook, with every worker reached at this test's receiver instead of the
    // example robots' addresses.
    let mut tables = files::read(&[examples().join("yangguang.xlsx")])?;
    let workers = tables
        .iter_mut()
        .find(|t| t.sheet == Sheet::Workers)
        .context("a workers sheet")?;
    let column = |key: &str| Sheet::Workers.columns().iter().position(|c| c.key == key);
    let webhook = column("webhook").context("webhook column")?;
    let robots: Vec<usize> = [
        "wecom",
        "dingtalk",
        "dingtalk_secret",
        "feishu",
        "feishu_secret",
        "email",
    ]
    .iter()
    .filter_map(|k| column(k))
    .collect();
    let mut seen = std::collections::HashSet::new();
    for row in workers.rows.iter_mut().skip(1) {
        row.resize(Sheet::Workers.columns().len(), String::new());
        for &c in &robots {
            row[c].clear();
        }
        if seen.insert(row[0].clone()) {
            row[webhook] = hook.url(&row[0]);
        }
    }
    let workbook = dir.path().join("community.xlsx");
    files::write(&workbook, &tables, None)?;
    gridwatch(
        &[
            "registry",
            "import",
            "community.xlsx",
            "--out",
            "registry.toml",
        ],
        dir.path(),
    )?;
    let registry_path = dir.path().join("registry.toml");
    let text = std::fs::read_to_string(&registry_path)?;
    let registry = Registry::load(&registry_path, Arc::new(Catalogue::builtin()))?;
    let now = gridwatch_e2e::payload::now_ms();
    let on_duty = registry
        .on_duty("g1", now)
        .context("the example has someone on duty for g1 at every hour")?
        .id
        .clone();

    let config = format!(
        "[mqtt]\nport = {}\nreconnect_max_ms = 1000\n\
         [store]\nbackend = \"local\"\ndead_letter_path = \"{dead}\"\n\
         [store.local]\npath = \"{tsdb}\"\n\
         [journal]\npath = \"{journal}\"\n\
         [notify]\nretry_min_ms = 100\n",
        mosquitto.port,
        dead = dir.path().join("dead-letter").display(),
        tsdb = dir.path().join("tsdb").display(),
        journal = dir.path().join("journal").display(),
    );
    let mut gw = GatewayProcess::start_with(&config, &text, dir.path()).await?;
    Device::connect(mosquitto.port, "sos-b1-0302")
        .publish("gw/v1/yangguang/sos-b1-0302/event", sos_pressed(1))
        .await?;
    let got = hook.next(Duration::from_secs(20)).await?;
    let body = got.json();
    assert_eq!(body["type"], "alert.opened", "{body}");
    assert_eq!(body["data"]["rule"], "sos_pressed");
    assert_eq!(body["data"]["assignee"]["id"], on_duty.as_str(), "{body}");
    assert_eq!(got.uri.path(), format!("/{on_duty}"));
    assert_eq!(body["data"]["device"]["location"], "1单元302室 独居老人");
    gw.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_lays_out_an_installation_that_starts_as_it_is() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let dir = tempfile::tempdir()?;
    let install = dir.path().join("gridwatch");
    let said = gridwatch(&["init", &install.to_string_lossy()], dir.path())?;
    assert!(
        said.contains("start it with: gridwatch run --config"),
        "{said}"
    );
    for file in [
        "gridwatch.toml",
        "registry.toml",
        "registry-template.xlsx",
        "rules.toml",
        "secrets.env",
    ] {
        assert!(install.join(file).is_file(), "{file} is missing");
    }
    // Only the ports differ from what init wrote: this test's broker, and a free HTTP port.
    let http = free_port();
    let config = std::fs::read_to_string(install.join("gridwatch.toml"))?
        .replace("port = 1883", &format!("port = {}", mosquitto.port))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"));
    std::fs::write(install.join("gridwatch.toml"), config)?;
    let elsewhere = tempfile::tempdir()?;
    let mut child = Command::new(gateway_binary()?)
        .args(["run", "--config"])
        .arg(install.join("gridwatch.toml"))
        .current_dir(elsewhere.path())
        .stdout(std::fs::File::create(dir.path().join("gateway.log"))?)
        .stderr(std::fs::File::create(dir.path().join("gateway.err"))?)
        .spawn()?;
    let ready = wait_ready(&format!("http://127.0.0.1:{http}")).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait()?;
    ready?;
    assert!(status.success(), "stopped with {status}");
    assert!(install.join("data/journal/FORMAT").is_file());
    assert!(
        std::fs::read_dir(elsewhere.path())?.next().is_none(),
        "nothing is written where it was started from"
    );
    let again = Command::new(gateway_binary()?)
        .arg("init")
        .arg(&install)
        .output()?;
    assert!(!again.status.success(), "init never overwrites");
    Ok(())
}
