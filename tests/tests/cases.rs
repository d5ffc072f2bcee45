//! Case handling against a real broker and the real `gridwatch` binary: an SOS nobody takes
//! climbs its chain, a gateway killed between two escalations comes back and carries on where it
//! was (no notification lost, none sent twice), and the acknowledgement stops the climb and
//! reaches the button.

use std::collections::HashMap;
use std::time::Duration;

use gridwatch_e2e::payload::sos_pressed;
use gridwatch_e2e::{
    http, listen, registry_text, AckedPublisher, GatewayProcess, Mosquitto, Received,
    WebhookReceiver, API_TOKEN,
};

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
    let alert: serde_json::Value = http()
        .get(format!("{}/api/v1/alerts/{id}", gw.url))
        .send()
        .await?
        .json()
        .await?;
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
