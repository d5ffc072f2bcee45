//! Attacks on the broker connection, against a real Mosquitto run with the shipped config and ACL
//! (`packaging/mosquitto`) and a real gateway over TLS: each is refused or dropped, has no effect
//! on the gateway, and a following SOS from a legitimate device still reaches the worker.

use std::path::Path;
use std::time::Duration;

use gridwatch_e2e::payload::{now_ms, sos_pressed as sos, telemetry};
use gridwatch_e2e::{
    client_options, connack, eventually, get_text, http, metric_sum, password_of, secure_config,
    secure_secrets, throwaway_ca, tls_client_options, AckedPublisher, Device, GatewayProcess,
    Hardening, Mosquitto, TestGateway, WebhookReceiver, API_TOKEN, GATEWAY_LOGIN,
};
use gridwatch_firmware::wire::Value;
use gridwatch_gateway::registry::Registry;
use gridwatch_gateway::Gateway;
use rumqttc::{ConnectReturnCode, QoS, SubscribeReasonCode};

/// Readings go nowhere in these tests: the store's port is closed and they wait in the journal.
const NO_STORE: &str = "http://127.0.0.1:9";

fn devices() -> Hardening {
    Hardening {
        logins: ["sos-301", "mh-1", "mh-2"].map(String::from).to_vec(),
        ..Hardening::default()
    }
}

/// The registry's SOS button presses; the worker on duty must be paged for it.
async fn sos_reaches_the_worker(
    mosquitto: &Mosquitto,
    hook: &WebhookReceiver,
    seq: u64,
) -> anyhow::Result<serde_json::Value> {
    let mut button =
        AckedPublisher::with(client_options(mosquitto.port, "sos-301", Some("sos-301")));
    button.publish("gw/v1/yg/sos-301/event", &sos(seq)).await?;
    let got = hook.next(Duration::from_secs(20)).await?.json();
    assert_eq!(got["data"]["rule"], "sos_pressed", "{got}");
    assert_eq!(got["data"]["device"]["id"], "sos-301");
    assert_eq!(got["data"]["assignee"]["id"], "w-li");
    Ok(got)
}

fn messages_received(metrics: &str) -> f64 {
    metric_sum(metrics, "gridwatch_messages_received_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_over_tls_with_the_ca_file_gets_an_sos_and_pages_the_worker() -> anyhow::Result<()>
{
    let mosquitto = Mosquitto::start_secure(&devices())?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start_secure(&mosquitto, NO_STORE, &hook).await?;

    // The button too comes over TLS, as devices outside the gateway's box do.
    let mut button =
        AckedPublisher::with(tls_client_options(&mosquitto, "sos-301", Some("sos-301"))?);
    button.publish("gw/v1/yg/sos-301/event", &sos(1)).await?;
    let got = hook.next(Duration::from_secs(20)).await?.json();
    assert_eq!(got["data"]["rule"], "sos_pressed", "{got}");
    assert_eq!(got["data"]["device"]["id"], "sos-301");
    assert_eq!(got["data"]["assignee"]["id"], "w-li");

    let m = gw.metrics().await?;
    assert_eq!(metric_sum(&m, "gridwatch_mqtt_connected"), 1.0);
    assert_eq!(
        metric_sum(&m, "gridwatch_mqtt_connection_errors_total"),
        0.0,
        "{m}"
    );
    assert!(
        mosquitto.log().contains(&format!(
            "as {GATEWAY_LOGIN} (p2, c0, k30, u'{GATEWAY_LOGIN}')"
        )),
        "the gateway logged in with its own name and a persistent session:\n{}",
        mosquitto.log()
    );
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_given_another_ca_refuses_the_broker_and_says_why() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start_secure(&devices())?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let mut config = secure_config(&mosquitto, NO_STORE, dir.path())?;
    let (other_ca, _) = throwaway_ca("Somebody else's CA")?;
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, other_ca)?;
    config.mqtt.tls.ca_file = Some(other);
    let registry = Registry::parse(&gridwatch_e2e::registry_text(&hook))
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let gateway = Gateway::start(config, registry, secure_secrets()).await?;
    let url = format!("http://{}", gateway.http_addr());

    let m = eventually(Duration::from_secs(20), || async {
        let m = get_text(&format!("{url}/metrics")).await?;
        let tls = metric_sum(&m, "gridwatch_mqtt_connection_errors_total{reason=\"tls\"");
        Ok((tls >= 2.0).then_some(m))
    })
    .await?;
    assert_eq!(
        metric_sum(&m, "gridwatch_mqtt_connection_errors_total"),
        metric_sum(&m, "gridwatch_mqtt_connection_errors_total{reason=\"tls\""),
        "every failure is the certificate: {m}"
    );
    assert_eq!(metric_sum(&m, "gridwatch_mqtt_connected"), 0.0);
    let ready = http().get(format!("{url}/readyz")).send().await?;
    assert_eq!(ready.status(), 503);
    assert!(
        !mosquitto.log().contains(&format!("as {GATEWAY_LOGIN}")),
        "the gateway never logged in:\n{}",
        mosquitto.log()
    );

    let button = Device::login(mosquitto.port, "sos-301");
    button.publish("gw/v1/yg/sos-301/event", sos(1)).await?;
    assert!(
        hook.next(Duration::from_secs(2)).await.is_err(),
        "nothing can reach a gateway that does not trust the broker"
    );
    let m = get_text(&format!("{url}/metrics")).await?;
    assert_eq!(messages_received(&m), 0.0);
    gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_asks_for_client_certificates_takes_the_gateway_only_with_its_certificate(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start_secure(&Hardening {
        require_certificate: true,
        ..devices()
    })?;
    let hook = WebhookReceiver::start(0).await?;
    let registry = || {
        Registry::parse(&gridwatch_e2e::registry_text(&hook)).map_err(|p| anyhow::anyhow!("{p:?}"))
    };

    let dir = tempfile::tempdir()?;
    let config = secure_config(&mosquitto, NO_STORE, dir.path())?;
    let without = Gateway::start(config, registry()?, secure_secrets()).await?;
    let url = format!("http://{}", without.http_addr());
    eventually(Duration::from_secs(20), || async {
        let m = get_text(&format!("{url}/metrics")).await?;
        let failed = metric_sum(&m, "gridwatch_mqtt_connection_errors_total");
        Ok((failed >= 2.0).then_some(()))
    })
    .await?;
    let m = get_text(&format!("{url}/metrics")).await?;
    assert_eq!(metric_sum(&m, "gridwatch_mqtt_connected"), 0.0, "{m}");
    assert!(!mosquitto.log().contains(&format!("as {GATEWAY_LOGIN}")));
    without.shutdown().await;

    let dir = tempfile::tempdir()?;
    let mut config = secure_config(&mosquitto, NO_STORE, dir.path())?;
    let tls = mosquitto.tls.clone().expect("a secure broker has TLS");
    config.mqtt.tls.client_cert_file = Some(tls.client_cert_file);
    config.mqtt.tls.client_key_file = Some(tls.client_key_file);
    let with = TestGateway::start_with_secrets(config, registry()?, secure_secrets()).await?;
    sos_reaches_the_worker(&mosquitto, &hook, 1).await?;
    with.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clients_and_wrong_passwords_are_refused_by_the_broker() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start_secure(&devices())?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start_secure(&mosquitto, NO_STORE, &hook).await?;

    let anonymous = connack(client_options(mosquitto.port, "sos-301", None)).await?;
    assert_eq!(anonymous, Err(ConnectReturnCode::NotAuthorized));
    let mut wrong = client_options(mosquitto.port, "sos-301", None);
    wrong.set_credentials("sos-301", "guessed");
    assert_eq!(connack(wrong).await?, Err(ConnectReturnCode::NotAuthorized));
    let mut unknown = client_options(mosquitto.port, "sos-999", None);
    unknown.set_credentials("sos-999", password_of("sos-999"));
    assert_eq!(
        connack(unknown).await?,
        Err(ConnectReturnCode::NotAuthorized)
    );
    let mut as_gateway = client_options(mosquitto.port, GATEWAY_LOGIN, None);
    as_gateway.set_credentials(GATEWAY_LOGIN, password_of("sos-301"));
    assert_eq!(
        connack(as_gateway).await?,
        Err(ConnectReturnCode::NotAuthorized)
    );

    sos_reaches_the_worker(&mosquitto, &hook, 1).await?;
    let m = gw.metrics().await?;
    assert_eq!(messages_received(&m), 1.0, "{m}");
    assert_eq!(
        metric_sum(&m, "gridwatch_mqtt_connection_errors_total"),
        0.0
    );
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_publish_on_another_devices_topics_nor_as_the_gateway() -> anyhow::Result<()>
{
    let mosquitto = Mosquitto::start_secure(&Hardening {
        extra_acl: "user app-li\ntopic read gw/v1/+/alerts/#\n".into(),
        logins: ["sos-301", "mh-1", "mh-2", "app-li"]
            .map(String::from)
            .to_vec(),
        ..Hardening::default()
    })?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start_secure(&mosquitto, NO_STORE, &hook).await?;
    let mut app = Device::login(mosquitto.port, "app-li");
    assert_eq!(
        app.subscribe("gw/v1/yg/alerts/#").await?,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );

    // mh-1, logged in as itself, writes where only others may.
    let mut mh1 = AckedPublisher::with(client_options(mosquitto.port, "mh-1", Some("mh-1")));
    let tilt = |seq| {
        telemetry(
            "manhole",
            now_ms(),
            seq,
            &[("tilt_deg", Value::Number(40.0))],
        )
    };
    let forged = [
        ("gw/v1/yg/sos-301/event", sos(1)),
        ("gw/v1/yg/mh-2/telemetry", tilt(1)),
        ("gw/v1/yg/sos-301/status", b"offline".to_vec()),
        (
            "gw/v1/yg/alerts/forged-1",
            br#"{"state":"closed"}"#.to_vec(),
        ),
        (
            "gw/v1/yg/alerts/forged-1/act",
            format!(r#"{{"v":1,"action":"close","by":"x","token":"{API_TOKEN}"}}"#).into_bytes(),
        ),
        ("gw/v1/yg/sos-301/cmd", br#"{"cmd":"help_coming"}"#.to_vec()),
    ];
    for (topic, payload) in &forged {
        mh1.publish(topic, payload).await?;
    }
    // Its own topic works: the gateway gets this one, after any of the above it would have got.
    mh1.publish("gw/v1/yg/mh-1/telemetry", &tilt(1)).await?;
    let m = eventually(Duration::from_secs(20), || async {
        let m = gw.metrics().await?;
        Ok((messages_received(&m) >= 1.0).then_some(m))
    })
    .await?;
    assert_eq!(messages_received(&m), 1.0, "only mh-1's own reading: {m}");
    let log = mosquitto.log();
    for (topic, _) in &forged {
        assert!(
            log.lines().any(
                |l| l.contains("Denied PUBLISH from mh-1") && l.contains(&format!("'{topic}'"))
            ),
            "the broker's ACL dropped {topic}:\n{log}"
        );
    }

    let got = sos_reaches_the_worker(&mosquitto, &hook, 2).await?;
    let (topic, alert) = app
        .next_message(Duration::from_secs(10))
        .await
        .ok_or_else(|| anyhow::anyhow!("the worker app got no alert"))?;
    let id = got["data"]["alert_id"].as_str().unwrap_or_default();
    assert_eq!(
        (topic, &alert["type"], alert["data"]["alert_id"].as_str()),
        (
            format!("gw/v1/yg/alerts/{id}"),
            &serde_json::json!("alert.changed"),
            Some(id)
        ),
        "the first alert the app sees is the gateway's, not the forged one"
    );
    let m = gw.metrics().await?;
    assert_eq!(messages_received(&m), 2.0, "{m}");
    assert_eq!(metric_sum(&m, "gridwatch_alerts_opened_total"), 1.0, "{m}");
    assert_eq!(metric_sum(&m, "gridwatch_worker_actions_total"), 0.0, "{m}");
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_read_another_devices_commands() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start_secure(&devices())?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start_secure(&mosquitto, NO_STORE, &hook).await?;

    // Mosquitto 2.0 grants a denied MQTT 3.1.1 subscription, then delivers nothing on it.
    let mut snoop = Device::login(mosquitto.port, "mh-1");
    for filter in ["gw/v1/yg/sos-301/cmd", "gw/v1/yg/+/cmd", "#"] {
        snoop.subscribe(filter).await?;
    }
    let mut button = Device::login(mosquitto.port, "sos-301");
    assert_eq!(
        button.subscribe("gw/v1/yg/sos-301/cmd").await?,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    button.publish("gw/v1/yg/sos-301/event", sos(1)).await?;
    let got = hook.next(Duration::from_secs(20)).await?.json();
    let id = got["data"]["alert_id"].as_str().unwrap_or_default();
    let acked = http()
        .post(format!("{}/api/v1/alerts/{id}/acknowledge", gw.url))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({"by": "李军"}))
        .send()
        .await?;
    assert_eq!(acked.status(), 200, "{}", acked.text().await?);

    let (topic, cmd) = button
        .next_message(Duration::from_secs(10))
        .await
        .ok_or_else(|| anyhow::anyhow!("the button got no command"))?;
    assert_eq!(topic, "gw/v1/yg/sos-301/cmd");
    assert_eq!(cmd["cmd"], "help_coming");
    assert_eq!(
        snoop.next_message(Duration::from_secs(1)).await,
        None,
        "mh-1 reads nothing of sos-301's"
    );
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_other_than_the_login_takes_over_no_session() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start_secure(&devices())?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start_secure(&mosquitto, NO_STORE, &hook).await?;
    let button = Device::login(mosquitto.port, "sos-301");
    eventually(Duration::from_secs(10), || async {
        Ok((button.connections() == 1).then_some(()))
    })
    .await?;

    // mh-1 logs in with its own password but says it is sos-301; mh-2 says it is the gateway.
    let mut as_button =
        AckedPublisher::with(client_options(mosquitto.port, "sos-301", Some("mh-1")));
    as_button.publish("gw/v1/yg/sos-301/event", &sos(1)).await?;
    let mut as_gateway =
        AckedPublisher::with(client_options(mosquitto.port, GATEWAY_LOGIN, Some("mh-2")));
    as_gateway
        .publish("gw/v1/yg/sos-301/event", &sos(2))
        .await?;
    let log = mosquitto.log();
    assert!(
        log.contains("Denied PUBLISH from mh-1") && log.contains("Denied PUBLISH from mh-2"),
        "the broker took them as mh-1 and mh-2:\n{log}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(button.connections(), 1, "sos-301 kept its connection");
    let m = gw.metrics().await?;
    assert_eq!(
        metric_sum(&m, "gridwatch_mqtt_connection_errors_total"),
        0.0,
        "{m}"
    );
    assert_eq!(messages_received(&m), 0.0, "{m}");

    button.publish("gw/v1/yg/sos-301/event", sos(3)).await?;
    let got = hook.next(Duration::from_secs(20)).await?.json();
    assert_eq!(got["data"]["device"]["id"], "sos-301");
    let m = gw.metrics().await?;
    assert_eq!(messages_received(&m), 1.0, "{m}");
    assert_eq!(metric_sum(&m, "gridwatch_alerts_opened_total"), 1.0);
    gw.gateway.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_app_with_its_own_login_acts_on_an_alert_through_the_acl() -> anyhow::Result<()> {
    // The worker-app block of the shipped ACL, filled in as its comment says.
    let mosquitto = Mosquitto::start_secure(&Hardening {
        extra_acl: "user app-li\ntopic read gw/v1/+/alerts/#\ntopic write gw/v1/+/alerts/+/act\n"
            .into(),
        logins: ["sos-301", "app-li"].map(String::from).to_vec(),
        ..Hardening::default()
    })?;
    let hook = WebhookReceiver::start(0).await?;
    let gw = TestGateway::start_secure(&mosquitto, NO_STORE, &hook).await?;
    let mut app = Device::login(mosquitto.port, "app-li");
    app.subscribe("gw/v1/yg/alerts/+/act/result").await?;
    let mut button = Device::login(mosquitto.port, "sos-301");
    button.subscribe("gw/v1/yg/sos-301/cmd").await?;
    button.publish("gw/v1/yg/sos-301/event", sos(1)).await?;
    let got = hook.next(Duration::from_secs(20)).await?.json();
    let id = got["data"]["alert_id"].as_str().unwrap_or_default();

    let topic = format!("gw/v1/yg/alerts/{id}/act");
    let ack = serde_json::json!({"v":1,"action":"acknowledge","by":"李军","token":API_TOKEN,"request_id":"r1"});
    app.publish(&topic, ack.to_string()).await?;
    let (t, r) = app
        .next_message(Duration::from_secs(10))
        .await
        .ok_or_else(|| anyhow::anyhow!("the app got no result"))?;
    assert_eq!(t, format!("{topic}/result"));
    assert_eq!(
        (
            r["ok"].as_bool(),
            r["state"].as_str(),
            r["request_id"].as_str()
        ),
        (Some(true), Some("acknowledged"), Some("r1")),
        "{r}"
    );
    let (t, cmd) = button
        .next_message(Duration::from_secs(10))
        .await
        .ok_or_else(|| anyhow::anyhow!("the button got no command"))?;
    assert_eq!(t, "gw/v1/yg/sos-301/cmd");
    assert_eq!(cmd["cmd"], "help_coming");
    let m = gw.metrics().await?;
    assert_eq!(
        metric_sum(&m, "gridwatch_worker_actions_total{outcome=\"done\""),
        1.0
    );
    gw.gateway.shutdown().await;
    Ok(())
}

/// The `[mqtt]` tables of a config for the gateway binary at the secure `mosquitto`, with the
/// CA copied next to it and named by a relative path; `tls_extra` goes under `[mqtt.tls]`.
fn binary_config(mosquitto: &Mosquitto, dir: &Path, tls_extra: &str) -> anyhow::Result<String> {
    let tls = mosquitto.tls.clone().expect("a secure broker has TLS");
    std::fs::copy(&tls.ca_file, dir.join("broker-ca.pem"))?;
    Ok(format!(
        "[mqtt]\nport = {port}\nusername = \"{GATEWAY_LOGIN}\"\nclient_id = \"{GATEWAY_LOGIN}\"\n\
         reconnect_max_ms = 1000\n[mqtt.tls]\nenabled = true\nca_file = \"broker-ca.pem\"\n{tls_extra}\n\
         [journal]\npath = \"{journal}\"\n[store]\ndead_letter_path = \"{dead}\"\n\
         [store.local]\npath = \"{tsdb}\"\n",
        port = tls.port,
        journal = dir.join("journal").display(),
        dead = dir.join("dead-letter").display(),
        tsdb = dir.join("tsdb").display(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_binary_takes_tls_from_its_config_and_the_password_from_its_environment(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start_secure(&devices())?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let config = binary_config(&mosquitto, dir.path(), "")?;
    let gw = GatewayProcess::start_with(&config, &gridwatch_e2e::registry_text(&hook), dir.path())
        .await?;
    sos_reaches_the_worker(&mosquitto, &hook, 1).await?;
    let m = gw.metrics().await?;
    assert_eq!(
        metric_sum(&m, "gridwatch_mqtt_connection_errors_total"),
        0.0,
        "{m}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_binary_given_a_key_of_another_certificate_stops_naming_both_files(
) -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start_secure(&devices())?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let tls = mosquitto.tls.clone().expect("a secure broker has TLS");
    let (_, issuer) = throwaway_ca("Gridwatch test CA")?;
    let (_, other_key) = gridwatch_e2e::leaf_certificate(&issuer, &[GATEWAY_LOGIN])?;
    let key = dir.path().join("other.key");
    std::fs::write(&key, other_key)?;
    let config = binary_config(
        &mosquitto,
        dir.path(),
        &format!(
            "client_cert_file = \"{}\"\nclient_key_file = \"{}\"",
            tls.client_cert_file.display(),
            key.display()
        ),
    )?;
    std::fs::write(dir.path().join("gridwatch.toml"), config)?;
    std::fs::write(
        dir.path().join("registry.toml"),
        gridwatch_e2e::registry_text(&hook),
    )?;
    let out = std::process::Command::new(gridwatch_e2e::gateway_binary()?)
        .args(["run", "--config"])
        .arg(dir.path().join("gridwatch.toml"))
        .env("GRIDWATCH_MQTT_PASSWORD", password_of(GATEWAY_LOGIN))
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "mqtt.tls.client_key_file: {} is not the key of the certificate in {}",
            key.display(),
            tls.client_cert_file.display()
        )),
        "{stderr}"
    );
    assert!(!mosquitto.log().contains(&format!("as {GATEWAY_LOGIN}")));
    Ok(())
}
