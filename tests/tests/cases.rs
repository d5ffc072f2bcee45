//! Case handling against a real broker and the real `gridwatch` binary: an SOS nobody takes
//! climbs its chain, a gateway killed between two escalations comes back and carries on where it
//! was (no notification lost, none sent twice), and the acknowledgement stops the climb and
//! reaches the button.

use std::collections::HashMap;
use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, sos_pressed, water};
use gridwatch_e2e::{
    eventually, get_json, http, listen, registry_text, test_config, AckedPublisher, GatewayProcess,
    Mosquitto, Received, SmtpServer, TestGateway, WebhookReceiver, API_TOKEN,
};
use gridwatch_gateway::notify::email::{SmtpConfig, SmtpTls};
use gridwatch_gateway::registry::Registry;

/// Every webhook that arrives within `within` of the previous one, by idempotency id.
async fn drain(hook: &WebhookReceiver, within: Duration, into: &mut Vec<Received>) {
    while let Ok(r) = hook.next(within).await {
        into.push(r);
    }
}

fn ids(got: &[Received]) -> Vec<String> {
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_killed_mid_escalation_carries_on_without_losing_or_repeating_a_page(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("rules.toml"),
        r#"
[[rule]]
name = "sos_pressed"
severity = "critical"
kind = "sos"
event = "sos_pressed"
ack_deadline = "4s"
escalation = ["on_duty", "backup", "grid_leader"]
message = { zh-CN = "{location}求助", en = "SOS at {location}" }
"#,
    )?;
    let config = format!(
        "[mqtt]\nport = {}\nreconnect_max_ms = 1000\n[notify]\nretry_min_ms = 100\n\
         [store]\nbackend = \"local\"\n[store.local]\npath = \"{}\"\n[journal]\npath = \"{}\"\n\
         [rules]\npath = \"rules.toml\"\n",
        mosquitto.port,
        dir.path().join("tsdb").display(),
        dir.path().join("journal").display(),
    );
    // Grid g2: 李军 on duty, 王芳 his backup, 赵强 the grid leader.
    let registry = registry_text(&hook)
        .replace(
            "grid = \"g2\"\nworker = \"w-li\"",
            "grid = \"g2\"\nworker = \"w-li\"\nbackup = \"w-wang\"\nleader = \"w-zhao\"",
        )
        .replacen(
            "[[duty]]",
            &format!(
                "[[workers]]\nid = \"w-zhao\"\nname = \"赵强\"\nwebhook = \"{}\"\n\n[[duty]]",
                hook.url("w-zhao")
            ),
            1,
        );
    let mut gw = GatewayProcess::start_with(&config, &registry, dir.path()).await?;
    let mut button = listen(mosquitto.port, "sos-301-listens", "gw/v1/yg/sos-301/cmd").await?;
    let mut device = AckedPublisher::new(mosquitto.port, "sos-301");
    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(1))
        .await?;

    let mut got = Vec::new();
    got.push(hook.next(Duration::from_secs(10)).await?);
    let id = got[0].json()["data"]["alert_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ids(&got), [format!("{id}.opened.w-li")]);
    // 4 s on, nobody has taken it: the backup gets it, the worker on duty hears of it.
    for _ in 0..2 {
        got.push(hook.next(Duration::from_secs(10)).await?);
    }
    // Long enough for the gateway to write down that both were taken; well before the next
    // deadline (8 s after the press).
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.kill()?;
    assert_eq!(
        ids(&got),
        [
            format!("{id}.escalated1.w-li"),
            format!("{id}.escalated1.w-wang"),
            format!("{id}.opened.w-li"),
        ]
    );
    let started = got[0].json()["data"]["started_at"]
        .as_u64()
        .unwrap_or_default();

    // Down past the second deadline; back, it goes on to the grid leader, and everyone before
    // him is told. Nothing that was taken before the kill comes again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    gw.restart().await?;
    drain(&hook, Duration::from_secs(4), &mut got).await;
    let mut want = vec![
        format!("{id}.escalated1.w-li"),
        format!("{id}.escalated1.w-wang"),
        format!("{id}.escalated2.w-li"),
        format!("{id}.escalated2.w-wang"),
        format!("{id}.escalated2.w-zhao"),
        format!("{id}.opened.w-li"),
    ];
    want.sort();
    assert_eq!(ids(&got), want, "each page once, none lost, none repeated");
    let level2 = got.last().map(Received::json).unwrap_or_default();
    assert_eq!(level2["data"]["escalation_level"], 2);
    assert_eq!(level2["data"]["assignee"]["id"], "w-zhao");

    // 赵强 takes it: the button hears "help is coming", and the climb stops.
    let acked = http()
        .post(format!("{}/api/v1/alerts/{id}/acknowledge", gw.url))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({"by": "赵强"}))
        .send()
        .await?;
    assert_eq!(acked.status(), 200, "{}", acked.text().await?);
    let (_, cmd) = tokio::time::timeout(Duration::from_secs(10), button.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the button's listener stopped"))?;
    assert_eq!(cmd["cmd"], "help_coming");
    assert_eq!(cmd["alert_id"], id.as_str());

    // The acknowledgement survives a second kill; the case shows every step and every page.
    gw.kill()?;
    gw.restart().await?;
    assert!(
        hook.next(Duration::from_secs(3)).await.is_err(),
        "an acknowledged alert neither escalates nor pages again after a restart"
    );
    let alert = get_json(&format!("{}/api/v1/alerts/{id}", gw.url)).await?;
    assert_eq!(alert["state"], "acknowledged");
    assert_eq!(alert["started_at"], started);
    let steps: Vec<&str> = alert["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["by"].as_str())
        .collect();
    assert_eq!(steps, ["gridwatch", "gridwatch", "gridwatch", "赵强"]);
    let mut accepted: HashMap<String, u64> = HashMap::new();
    for d in alert["deliveries"].as_array().into_iter().flatten() {
        let id = d["id"].as_str().unwrap_or_default().to_owned();
        assert!(d["accepted_at"].is_u64(), "{d}");
        assert_eq!(d["attempts_total"], 1, "{d}");
        accepted.insert(id, d["attempts"][0]["at_ms"].as_u64().unwrap_or_default());
    }
    assert_eq!(accepted.len(), 6);
    Ok(())
}

/// The group robots here are the test's receiver, answering as the real ones do when they take a
/// message; what is checked is what the gateway sends them (format, signature, mentions). The
/// mail goes through a real SMTP server.
#[tokio::test(flavor = "multi_thread")]
async fn an_sos_reaches_the_worker_on_every_channel_they_have() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let smtp = SmtpServer::start()?;
    let dir = tempfile::tempdir()?;
    let mut config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    config.notify.smtp = Some(SmtpConfig {
        host: "127.0.0.1".into(),
        port: smtp.port,
        tls: SmtpTls::None,
        username: None,
        from: "gridwatch@example.com".into(),
        timeout_ms: 5000,
    });
    let text = registry_text(&hook).replace(
        "name = \"李军\"\n",
        &format!(
            "name = \"李军\"\nphone = \"13800000002\"\nemail = \"li@example.com\"\n\
             wecom = \"{}?key=k1\"\ndingtalk = \"{}?access_token=t1\"\ndingtalk_secret = \"SECabc\"\n\
             feishu = \"{}\"\nfeishu_secret = \"fs1\"\n",
            hook.url("wecom"),
            hook.url("dingtalk"),
            hook.url("feishu"),
        ),
    );
    let registry = Registry::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(config, registry).await?;
    let mut device = AckedPublisher::new(mosquitto.port, "sos-301");
    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(1))
        .await?;

    let mut got: HashMap<String, Received> = HashMap::new();
    for _ in 0..4 {
        let r = hook.next(Duration::from_secs(10)).await?;
        got.insert(r.uri.path().trim_start_matches('/').to_owned(), r);
    }
    let app = got["w-li"].json();
    assert_eq!(app["type"], "alert.opened");
    let id = app["data"]["alert_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let wecom = got["wecom"].json();
    assert_eq!(wecom["msgtype"], "text");
    let content = wecom["text"]["content"].as_str().unwrap_or_default();
    assert!(content.starts_with("【紧急】"), "{content}");
    assert!(
        content.contains("2单元301室") && content.contains(&id),
        "{content}"
    );
    assert_eq!(wecom["text"]["mentioned_mobile_list"][0], "13800000002");

    let ding = &got["dingtalk"];
    let query = ding.uri.query().unwrap_or_default();
    assert!(
        query.starts_with("access_token=t1&timestamp=") && query.contains("&sign="),
        "{query}"
    );
    assert_eq!(ding.json()["at"]["atMobiles"][0], "13800000002");

    let feishu = got["feishu"].json();
    assert_eq!(feishu["msg_type"], "text");
    assert!(feishu["sign"].as_str().is_some_and(|s| !s.is_empty()));

    let mails = eventually(Duration::from_secs(10), || async {
        let mails = smtp.mails()?;
        Ok((!mails.is_empty()).then_some(mails))
    })
    .await?;
    assert_eq!(mails[0].envelope_to, "li@example.com");
    assert!(mails[0].subject.starts_with("【紧急】"), "{mails:?}");
    assert_eq!(
        mails[0].message_id,
        format!("<{id}.opened.w-li.email@gridwatch>")
    );

    // The alert shows every delivery, each taken at the first attempt.
    let alert = get_json(&format!("{}/api/v1/alerts/{id}", gw.url)).await?;
    let mut channels: Vec<&str> = alert["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["accepted_at"].is_u64())
        .filter_map(|d| d["channel"].as_str())
        .collect();
    channels.sort();
    assert_eq!(
        channels,
        ["dingtalk", "email", "feishu", "webhook", "wecom"]
    );
    gw.gateway.shutdown().await;
    Ok(())
}

/// The local (Asia/Shanghai) minute of the day now.
fn shanghai_minute() -> u64 {
    (gridwatch_e2e::payload::now_ms() / 60_000 + 8 * 60) % 1440
}

fn hhmm(minute: u64) -> String {
    format!("{:02}:{:02}", minute / 60 % 24, minute % 60)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coming_gap_in_the_roster_is_raised_ahead_and_a_roster_edit_closes_it_without_a_restart(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    // 王芳's shift on grid g1 ends in 30 minutes and nobody follows her; 李军 is duty officer.
    let now = shanghai_minute();
    let base = registry_text(&hook)
        .replace(
            "name = \"阳光社区\"\n",
            "name = \"阳光社区\"\nduty_officer = \"w-li\"\n",
        )
        .replace("[[duty]]\ngrid = \"g1\"\nworker = \"w-wang\"\n", "");
    let shift = |worker: &str, from: u64, to: u64| {
        format!(
            "\n[[shifts]]\ngrid = \"g1\"\nworker = \"{worker}\"\nfrom = \"{}\"\nto = \"{}\"\n",
            hhmm(from),
            hhmm(to)
        )
    };
    let wang = shift("w-wang", now + 1440 - 60, now + 30);
    let path = dir.path().join("registry.toml");
    std::fs::write(&path, format!("{base}{wang}"))?;
    let mut config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    config.registry.path = path.clone();
    config.registry.watch_secs = 1;
    let registry =
        Registry::parse(&format!("{base}{wang}")).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(config, registry).await?;

    let got = hook.next(Duration::from_secs(15)).await?;
    let alert = got.json()["data"].clone();
    assert_eq!(alert["rule"], "nobody_on_duty.g1", "{alert}");
    assert_eq!(got.uri.path(), "/w-li", "the duty officer hears of it");
    let message = alert["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("第一网格") && message.contains(&hhmm(now + 30)),
        "{message}"
    );
    let id = alert["alert_id"].as_str().unwrap_or_default().to_owned();

    // The roster gets a second shift: the gap is gone, and so is the alert, with no restart.
    let li = shift("w-li", now + 30, now + 1440 - 60);
    std::fs::write(&path, format!("{base}{wang}{li}"))?;
    let url = format!("{}/api/v1/alerts/{id}", gw.url);
    eventually(Duration::from_secs(20), || async {
        let a: serde_json::Value = http().get(&url).send().await?.json().await?;
        Ok((a["state"] == "resolved").then_some(()))
    })
    .await?;
    let m = gw.metrics().await?;
    assert_eq!(
        gridwatch_e2e::metric_sum(&m, "gridwatch_roster_reloads_total{outcome=\"applied\""),
        1.0
    );

    // A roster with a mistake changes nothing and is counted.
    std::fs::write(
        &path,
        format!("{base}{wang}{li}{}", shift("w-nobody", 0, 60)),
    )?;
    eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        let refused =
            gridwatch_e2e::metric_sum(&m, "gridwatch_roster_reloads_total{outcome=\"refused\"");
        Ok((refused == 1.0).then_some(()))
    })
    .await?;
    assert!(
        hook.next(Duration::from_secs(3)).await.is_err(),
        "nothing new is raised"
    );
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_that_keeps_failing_raises_its_own_alert() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let broken = WebhookReceiver::start(usize::MAX).await?;
    let dir = tempfile::tempdir()?;
    let mut config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    config.alerts.channel_failing_after_secs = 1;
    // 李军's app no longer answers; 王芳 is the duty officer.
    let text = registry_text(&hook)
        .replace(
            "name = \"阳光社区\"\n",
            "name = \"阳光社区\"\nduty_officer = \"w-wang\"\n",
        )
        .replace(&hook.url("w-li"), &broken.url("w-li"));
    let registry = Registry::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(config, registry).await?;
    let mut device = AckedPublisher::new(mosquitto.port, "sos-301");
    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(1))
        .await?;

    let got = hook.next(Duration::from_secs(20)).await?;
    let alert = got.json()["data"].clone();
    assert_eq!(alert["rule"], "channel_failing.w-li.webhook", "{alert}");
    assert_eq!(got.uri.path(), "/w-wang");
    let message = alert["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("李军") && message.contains("HTTP 503"),
        "{message}"
    );
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_power_cut_in_a_building_is_one_grouped_alert_not_thirty() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
name = "device_offline"
severity = "major"
kind = "manhole"
absent = { for = "3s" }
message = { zh-CN = "{location}设备离线", en = "{location} offline" }
"#,
    )?;
    let mut config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    config.rules.path = Some(rules);
    let mut text = registry_text(&hook);
    for i in 0..30 {
        text += &format!(
            "\n[[devices]]\nid = \"mh-b{i}\"\nkind = \"manhole\"\nbuilding = \"b3\"\n\
             grid = \"g1\"\nlocation = \"地下车库{i}号井\"\n"
        );
    }
    let registry = Registry::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(config, registry).await?;

    // Every cover reports once, then the building's power goes: all fall silent together.
    let mut node = AckedPublisher::new(mosquitto.port, "building-b3");
    for i in 0..30 {
        let topic = format!("gw/v1/yg/mh-b{i}/telemetry");
        node.publish(&topic, &water(now_ms(), 1, 10.0)).await?;
    }
    let mut got = Vec::new();
    drain(&hook, Duration::from_secs(8), &mut got).await;
    let rules: Vec<String> = got
        .iter()
        .map(|r| {
            r.json()["data"]["rule"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let alone = rules.iter().filter(|r| *r == "device_offline").count();
    assert_eq!(alone, 4, "{rules:?}");
    assert_eq!(
        rules
            .iter()
            .filter(|r| *r == "device_offline.storm")
            .count(),
        1,
        "{rules:?}"
    );
    assert_eq!(got.len(), 5, "{rules:?}");

    let list = get_json(&format!("{}/api/v1/alerts", gw.url)).await?;
    let alerts = list["alerts"].as_array().cloned().unwrap_or_default();
    let storm = alerts
        .iter()
        .find(|a| a["rule"] == "device_offline.storm")
        .ok_or_else(|| anyhow::anyhow!("no storm alert in {list}"))?;
    // The 30 covers, and the test registry's own two in the same building, silent from the start.
    assert_eq!(storm["members"].as_array().map(Vec::len), Some(32));
    let message = storm["message"].as_str().unwrap_or_default();
    assert!(message.contains("3号楼共32台设备"), "{message}");
    let grouped = alerts
        .iter()
        .filter(|a| a["grouped_into"] == storm["alert_id"])
        .count();
    assert_eq!(grouped, 32);
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_app_acts_on_an_alert_over_mqtt() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    let registry = Registry::parse(&registry_text(&hook)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gw = TestGateway::start_registry(config, registry).await?;
    let mut results = listen(
        mosquitto.port,
        "app-results",
        "gw/v1/yg/alerts/+/act/result",
    )
    .await?;
    let mut button = listen(mosquitto.port, "sos-301-listens", "gw/v1/yg/sos-301/cmd").await?;
    let mut device = AckedPublisher::new(mosquitto.port, "sos-301");
    device
        .publish("gw/v1/yg/sos-301/event", &sos_pressed(1))
        .await?;
    let id = hook.next(Duration::from_secs(10)).await?.json()["data"]["alert_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let mut app = AckedPublisher::new(mosquitto.port, "worker-app-li");
    let topic = format!("gw/v1/yg/alerts/{id}/act");
    let wrong = serde_json::json!({"v":1,"action":"acknowledge","by":"李军","token":"wrong","request_id":"r1"});
    app.publish(&topic, wrong.to_string().as_bytes()).await?;
    let (t, r) = next_result(&mut results).await?;
    assert_eq!(t, format!("{topic}/result"));
    assert_eq!(
        (r["ok"].as_bool(), r["request_id"].as_str()),
        (Some(false), Some("r1"))
    );
    assert!(
        r["error"].as_str().unwrap_or_default().contains("token"),
        "{r}"
    );

    let ack = serde_json::json!({"v":1,"action":"acknowledge","by":"李军","token":API_TOKEN,"request_id":"r2"});
    app.publish(&topic, ack.to_string().as_bytes()).await?;
    let (_, r) = next_result(&mut results).await?;
    assert_eq!(
        (r["ok"].as_bool(), r["state"].as_str()),
        (Some(true), Some("acknowledged")),
        "{r}"
    );
    let (_, cmd) = next_result(&mut button).await?;
    assert_eq!(cmd["cmd"], "help_coming");

    let again = serde_json::json!({"v":1,"action":"acknowledge","by":"王芳","token":API_TOKEN});
    app.publish(&topic, again.to_string().as_bytes()).await?;
    let (_, r) = next_result(&mut results).await?;
    assert_eq!(r["ok"], false, "a second acknowledgement is refused: {r}");

    let alert = get_json(&format!("{}/api/v1/alerts/{id}", gw.url)).await?;
    assert_eq!(alert["state"], "acknowledged");
    assert_eq!(alert["timeline"][1]["by"], "李军");
    let m = gw.metrics().await?;
    assert_eq!(
        gridwatch_e2e::metric_sum(&m, "gridwatch_worker_actions_total{outcome=\"done\""),
        1.0
    );
    gw.gateway.shutdown().await;
    Ok(())
}

async fn next_result(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)>,
) -> anyhow::Result<(String, serde_json::Value)> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the listener stopped"))
}
