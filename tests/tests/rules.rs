//! The alert rules against a real broker and the real `gridwatch` binary: a `for` timer that a
//! SIGKILL interrupts half way still opens its alert after the restart; the journal the run
//! leaves backtests to the same alert; `rules check` points at each mistake; maintenance windows
//! need the API token and hold back the page, not the alert.

use std::process::Command;
use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, sos_pressed, water};
use gridwatch_e2e::{
    eventually, gateway_binary, get_json, http, listen, registry_text, test_config, AckedPublisher,
    GatewayProcess, Mosquitto, TestGateway, WebhookReceiver, API_TOKEN,
};
use gridwatch_gateway::registry::Registry;

const RULES: &str = r#"
[[rule]]
name = "water_overflow"
severity = "major"
kind = "manhole"
when = "water_cm >= 80"
for = "6s"
clear = "water_cm < 60"
message = { zh-CN = "{building_name}{location}井内水位{water_cm}厘米", en = "Water at {water_cm} cm at {location}" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_for_timer_carries_on_across_a_kill_and_backtests_the_same() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("rules.toml"), RULES)?;
    let config = format!(
        "[mqtt]\nport = {}\nreconnect_max_ms = 1000\n[notify]\nretry_min_ms = 100\n\
         [store]\nbackend = \"local\"\n[store.local]\npath = \"{}\"\n[journal]\npath = \"{}\"\n\
         [rules]\npath = \"rules.toml\"\nsave_every_secs = 1\n",
        mosquitto.port,
        dir.path().join("tsdb").display(),
        dir.path().join("journal").display(),
    );
    let mut gw = GatewayProcess::start_with(&config, &registry_text(&hook), dir.path()).await?;

    let sent = now_ms();
    let mut device = AckedPublisher::new(mosquitto.port, "mh-1");
    device
        .publish("gw/v1/yg/mh-1/telemetry", &water(sent, 1, 85.0))
        .await?;
    // Once the saved state holds the running timer, kill the gateway without warning.
    let state = dir.path().join("journal").join("rules-state.json");
    eventually(Duration::from_secs(10), || async {
        Ok(std::fs::read_to_string(&state)
            .is_ok_and(|s| s.contains("\"pending\""))
            .then_some(()))
    })
    .await?;
    gw.kill()?;
    assert!(
        now_ms() < sent + 6000,
        "the kill came after the timer ran out; the test proves nothing"
    );
    gw.restart().await?;

    // No message comes after the restart: only the restored timer can open the alert.
    let got = hook.next(Duration::from_secs(20)).await?;
    let alert = &got.json()["data"];
    assert_eq!(alert["rule"], "water_overflow", "{alert}");
    assert_eq!(alert["device"]["id"], "mh-1");
    let started = alert["started_at"].as_u64().unwrap_or_default();
    assert!(
        (sent + 6000..sent + 8000).contains(&started),
        "opened {} ms after the reading, not when it had held 6 s",
        started.saturating_sub(sent)
    );
    assert!(alert["message"]
        .as_str()
        .unwrap_or_default()
        .contains("85厘米"));
    assert_eq!(alert["evidence"]["readings"]["water_cm"], 85.0);
    gw.stop()?;

    // The journal of this run, backtested, opens the same alert at the same time.
    let out = Command::new(gateway_binary()?)
        .current_dir(dir.path())
        .args([
            "rules",
            "backtest",
            "rules.toml",
            "--from",
            "journal",
            "--registry",
            "registry.toml",
            "--why",
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened: Vec<&str> = stdout.lines().filter(|l| l.contains(" opened ")).collect();
    assert_eq!(opened.len(), 1, "{stdout}");
    assert!(
        opened[0].contains("water_overflow") && opened[0].contains("mh-1"),
        "{stdout}"
    );
    assert!(stdout.contains("water_cm (85) >= 80 is true"), "{stdout}");
    Ok(())
}

#[test]
fn rules_check_names_every_mistake_with_its_place() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"water > 80 && cover_open\"\nfor = \"5 min\"\nmessage = { zh-CN = \"x\", en = \"x\" }\n\n\
         [[rule]]\nname = \"v\"\nseverity = \"urgent\"\nkind = \"manhole\"\nwhen = \"cover_open\"\nmessage = { zh-CN = \"x\", en = \"x\" }\n",
    )?;
    let out = Command::new(gateway_binary()?)
        .args(["rules", "check"])
        .arg(&file)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.toml:5:20: `&&` is not part of conditions"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: write `and`"), "{stderr}");
    assert!(stderr.contains("bad.toml:6:7: `for`"), "{stderr}");
    assert!(
        stderr.contains("bad.toml:11:12: unknown variant `urgent`"),
        "{stderr}"
    );

    let out = Command::new(gateway_binary()?)
        .args([
            "rules",
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../gateway/rules.toml"),
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("29 rules, all good"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_maintenance_window_holds_back_the_page_not_the_alert() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    let registry = Registry::parse(&registry_text(&hook)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(config, registry).await?;
    let url = gw.url.clone();
    let silences = format!("{url}/api/v1/silences");
    let window = serde_json::json!({"scope": {"building": "b3"}, "for": "1h", "by": "王芳", "reason": "电梯年检"});

    let denied = http().post(&silences).json(&window).send().await?;
    assert_eq!(denied.status(), 401);
    let bad = http()
        .post(&silences)
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({"scope": {"building": "b9"}, "for": "1h", "by": "x", "reason": "y"}))
        .send()
        .await?;
    assert_eq!(bad.status(), 422, "an unknown building is refused");
    let made = http()
        .post(&silences)
        .bearer_auth(API_TOKEN)
        .json(&window)
        .send()
        .await?;
    assert_eq!(made.status(), 201);
    let listed: serde_json::Value = http().get(&silences).send().await?.json().await?;
    assert_eq!(listed["silences"][0]["by"], "王芳");
    assert_eq!(listed["silences"][0]["reason"], "电梯年检");

    let mut device = AckedPublisher::new(mosquitto.port, "sos-301");
    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(1))
        .await?;
    let alerts = eventually(Duration::from_secs(10), || async {
        let v = get_json(&format!("{url}/api/v1/alerts")).await?;
        Ok(v["alerts"].as_array().filter(|a| !a.is_empty()).cloned())
    })
    .await?;
    assert_eq!(alerts[0]["rule"], "sos_pressed");
    assert_eq!(alerts[0]["silenced_by"], listed["silences"][0]["id"]);
    assert!(
        hook.next(Duration::from_secs(2)).await.is_err(),
        "nobody is paged"
    );

    let why = get_json(&format!("{url}/api/v1/rules/sos_pressed/why/sos-301")).await?;
    assert!(
        why["why"][0]
            .as_str()
            .unwrap_or_default()
            .contains("电梯年检"),
        "{why}"
    );

    // Ended early, it is gone from the list.
    let id = listed["silences"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ended = http()
        .delete(format!("{silences}/{id}"))
        .bearer_auth(API_TOKEN)
        .send()
        .await?;
    assert_eq!(ended.status(), 204);
    let listed: serde_json::Value = http().get(&silences).send().await?.json().await?;
    assert_eq!(listed["silences"], serde_json::json!([]));
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledged_sos_tells_the_button_and_a_closed_one_lets_the_next_press_page(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    let registry = Registry::parse(&registry_text(&hook)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(config, registry).await?;
    let url = gw.url.clone();
    let mut device = AckedPublisher::new(mosquitto.port, "sos-301");
    // A worker app follows the community's alerts over MQTT.
    let mut app = listen(mosquitto.port, "worker-app", "gw/v1/yg/alerts/+").await?;

    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(1))
        .await?;
    let first = hook.next(Duration::from_secs(10)).await?.json()["data"].clone();
    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(2))
        .await?;
    assert!(
        hook.next(Duration::from_secs(1)).await.is_err(),
        "a second press while the first is open updates it"
    );

    // The resident's button listens on its cmd topic for "help is coming".
    let mut button = listen(mosquitto.port, "sos-301-listens", "gw/v1/yg/sos-301/cmd").await?;
    let alert = format!(
        "{url}/api/v1/alerts/{}",
        first["alert_id"].as_str().unwrap_or_default()
    );
    let who = serde_json::json!({"by": "王芳"});
    let acked = http()
        .post(format!("{alert}/acknowledge"))
        .bearer_auth(API_TOKEN)
        .json(&who)
        .send()
        .await?;
    assert_eq!(acked.status(), 200);
    let (_, help) = tokio::time::timeout(Duration::from_secs(10), button.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the button's listener stopped"))?;
    assert_eq!(help["cmd"], "help_coming");
    assert_eq!(help["alert_id"], first["alert_id"]);
    assert_eq!(help["by"], "王芳");
    // Opened, repeated by the second press, acknowledged.
    let id = first["alert_id"].as_str().unwrap_or_default().to_owned();
    let mut seen: Vec<String> = Vec::new();
    while seen.last().map(String::as_str) != Some("acknowledged") && seen.len() < 5 {
        let (topic, change) = tokio::time::timeout(Duration::from_secs(10), app.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the app's listener stopped"))?;
        assert_eq!(topic, format!("gw/v1/yg/alerts/{id}"));
        assert_eq!(change["type"], "alert.changed");
        seen.push(
            change["data"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(seen, ["firing", "firing", "acknowledged"]);
    let twice = http()
        .post(format!("{alert}/acknowledge"))
        .bearer_auth(API_TOKEN)
        .json(&who)
        .send()
        .await?;
    assert_eq!(twice.status(), 409);
    let why = twice.text().await?;
    assert!(why.contains("acknowledged already"), "{why}");
    let no_note = http()
        .post(format!("{alert}/close"))
        .bearer_auth(API_TOKEN)
        .json(&who)
        .send()
        .await?;
    assert_eq!(no_note.status(), 422, "a case is closed with a note");
    let close = format!("{alert}/close");
    let note = serde_json::json!({"by": "王芳", "note": "老人误按，已上门确认安全"});
    let denied = http()
        .post(&close)
        .bearer_auth("wrong")
        .json(&note)
        .send()
        .await?;
    assert_eq!(denied.status(), 401);
    let closed = http()
        .post(&close)
        .bearer_auth(API_TOKEN)
        .json(&note)
        .send()
        .await?;
    assert_eq!(closed.status(), 200);
    let closed: serde_json::Value = closed.json().await?;
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["closed"]["by"], "王芳");
    let again = http()
        .post(&close)
        .bearer_auth(API_TOKEN)
        .json(&note)
        .send()
        .await?;
    assert_eq!(again.status(), 409);
    let timeline: serde_json::Value = http().get(&alert).send().await?.json().await?;
    let states: Vec<&str> = timeline["timeline"]
        .as_array()
        .map(|t| t.iter().filter_map(|s| s["state"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(states, ["firing", "acknowledged", "closed"]);
    assert_eq!(timeline["timeline"][2]["note"], "老人误按，已上门确认安全");
    let metrics = gridwatch_e2e::get_text(&format!("{url}/metrics")).await?;
    for step in ["acknowledged", "closed"] {
        let counted = metrics.lines().any(|l| {
            l.starts_with("gridwatch_case_seconds_count")
                && l.contains(&format!("step=\"{step}\""))
                && l.contains("kind=\"sos\"")
                && l.ends_with(" 1")
        });
        assert!(counted, "time to {step} is measured:\n{metrics}");
    }

    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(3))
        .await?;
    let next = hook.next(Duration::from_secs(10)).await?.json()["data"].clone();
    assert_eq!(next["rule"], "sos_pressed");
    assert_ne!(next["alert_id"], first["alert_id"], "a new case");
    gw.gateway.shutdown().await;
    Ok(())
}

/// Subscribes to `filter` as `client_id` and hands on every message (topic, JSON) it receives.
#[tokio::test(flavor = "multi_thread")]
async fn an_sos_nobody_acknowledges_goes_up_the_chain_and_an_acknowledged_one_does_not(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
name = "sos_pressed"
severity = "critical"
kind = "sos"
event = "sos_pressed"
ack_deadline = "2s"
escalation = ["on_duty", "backup"]
message = { zh-CN = "{location}求助", en = "SOS at {location}" }
"#,
    )?;
    let mut config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    config.rules.path = Some(rules);
    // Grid g2: 李军 on duty, 王芳 his backup.
    let text = registry_text(&hook).replace(
        "grid = \"g2\"\nworker = \"w-li\"",
        "grid = \"g2\"\nworker = \"w-li\"\nbackup = \"w-wang\"",
    );
    let registry = Registry::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(config, registry).await?;
    let url = gw.url.clone();
    let mut device = AckedPublisher::new(mosquitto.port, "sos-301");

    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(1))
        .await?;
    let opened = hook.next(Duration::from_secs(10)).await?;
    let id = opened.json()["data"]["alert_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(opened.header("webhook-id"), format!("{id}.opened.w-li"));

    // Nobody acknowledges: after 2 s the backup gets it, and the worker on duty hears of it.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = hook.next(Duration::from_secs(10)).await?;
        let body = r.json();
        assert_eq!(body["type"], "alert.escalated");
        assert_eq!(body["data"]["escalation_level"], 1);
        assert_eq!(body["data"]["assignee"]["id"], "w-wang");
        ids.push(r.header("webhook-id").to_owned());
    }
    ids.sort();
    assert_eq!(
        ids,
        [
            format!("{id}.escalated1.w-li"),
            format!("{id}.escalated1.w-wang")
        ]
    );
    assert!(
        hook.next(Duration::from_secs(3)).await.is_err(),
        "the chain ends at the backup"
    );

    // Closed, then a new press that 李军 takes in time: nobody else is bothered.
    let note = serde_json::json!({"by": "王芳", "note": "已处理"});
    let closed = http()
        .post(format!("{url}/api/v1/alerts/{id}/close"))
        .bearer_auth(API_TOKEN)
        .json(&note)
        .send()
        .await?;
    assert_eq!(closed.status(), 200);
    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(2))
        .await?;
    let second = hook.next(Duration::from_secs(10)).await?.json()["data"]["alert_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(second, id);
    let acked = http()
        .post(format!("{url}/api/v1/alerts/{second}/acknowledge"))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({"by": "李军"}))
        .send()
        .await?;
    assert_eq!(acked.status(), 200);
    assert!(
        hook.next(Duration::from_secs(4)).await.is_err(),
        "an acknowledged alert does not escalate"
    );
    gw.gateway.shutdown().await;
    Ok(())
}
