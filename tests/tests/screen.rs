//! The control-room page in a real headless Chromium (Debian's chromium and chromedriver): the
//! demo's simulated community (the real firmware on virtual devices) runs against a real
//! Mosquitto, an SOS pressed on a virtual button shows on the page within seconds, a worker logged
//! in on the page acknowledges it there and the API says so, an intrusion at the fence shows too,
//! the garage's free spaces are counted, the page switches to English, and it comes back by itself after its connection
//! drops. A screenshot is saved to `target/screenshots/control-room.png`.

use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use gridwatch_e2e::{
    get_json, test_config, Chromedriver, Mosquitto, TestGateway, WebhookReceiver, API_TOKEN,
};
use gridwatch_gateway::demo;
use gridwatch_simulators::devices::perimeter::{Perimeter, PerimeterIncident};
use gridwatch_simulators::devices::sos::{Sos, SosIncident};
use gridwatch_simulators::devices::Incident;
use gridwatch_simulators::fleet::{self, Broker};
use gridwatch_simulators::sim::Simulation;
use gridwatch_simulators::store::SeqStore;

async fn wait_for(
    page: &fantoccini::Client,
    css: &str,
    within: Duration,
) -> anyhow::Result<fantoccini::elements::Element> {
    Ok(page
        .wait()
        .at_most(within)
        .for_element(Locator::Css(css))
        .await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sos_appears_on_the_screen_and_is_acknowledged_there() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start()?;
    let hook = WebhookReceiver::start(0).await?;
    let dir = tempfile::tempdir()?;
    let tour = demo::tour()?;
    let (registry, community) = demo::community(&tour, &format!("http://{}", hook.addr))?;
    let config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    let gw = TestGateway::start_registry(config, registry).await?;
    // The community lives ten times faster than real time, with nothing planned: its lifts run,
    // people walk through its passages, and nobody presses a button until the test does.
    let sim = Simulation::new(&community, SeqStore::in_memory())?;
    let broker = Broker {
        host: "127.0.0.1".into(),
        port: mosquitto.port,
    };
    let (devices, fleet) = fleet::fleet(sim, broker, 10.0);
    let (stop_sim, stopped) = tokio::sync::oneshot::channel::<()>();
    let sim = tokio::spawn(fleet.run(async {
        let _ = stopped.await;
    }));

    let driver = Chromedriver::start()?;
    let profile = tempfile::tempdir()?;
    let page = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(Chromedriver::capabilities(profile.path()))
        .connect(&driver.url)
        .await?;
    page.goto(&gw.url).await?;
    wait_for(&page, "#live.on", Duration::from_secs(15)).await?;
    let title = page.find(Locator::Css("h1")).await?.text().await?;
    assert!(
        title.contains("阳光社区") && title.contains("指挥大屏"),
        "{title}"
    );

    // A resident presses the button: the alert is on the screen within seconds, first in line.
    devices
        .start(
            "sos-b1-0301",
            Incident::of::<Sos>(SosIncident::Press {}),
            None,
        )
        .await?;
    let card = wait_for(
        &page,
        "article.alert.sev-critical[data-state=firing]",
        Duration::from_secs(10),
    )
    .await?;
    let id = card
        .attr("data-alert-id")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the card has no alert id"))?;
    let text = card.text().await?;
    assert!(text.contains("301") && text.contains("紧急"), "{text}");
    assert!(
        text.contains("接单剩余"),
        "a countdown to the deadline: {text}"
    );
    let ticker = wait_for(&page, "#ticker li", Duration::from_secs(10)).await?;
    let line = ticker.text().await?;
    assert!(line.contains("301") && line.contains("呼救"), "{line}");

    // A worker logs in on the page and takes it.
    page.find(Locator::Css("#login-name"))
        .await?
        .send_keys("王芳")
        .await?;
    page.find(Locator::Css("#login-token"))
        .await?
        .send_keys(API_TOKEN)
        .await?;
    page.find(Locator::Css("#login-save"))
        .await?
        .click()
        .await?;
    let ack = format!("article[data-alert-id='{id}'] button[data-action=acknowledge]");
    page.find(Locator::Css(&ack)).await?.click().await?;
    wait_for(
        &page,
        &format!("article[data-alert-id='{id}'][data-state=acknowledged]"),
        Duration::from_secs(10),
    )
    .await?;
    let alert = get_json(&format!("{}/api/v1/alerts/{id}", gw.url)).await?;
    assert_eq!(alert["state"], "acknowledged");
    assert_eq!(alert["timeline"][1]["by"], "王芳");

    // Health and today's figures show the community.
    let buildings = page.find(Locator::Css("#buildings")).await?.text().await?;
    assert!(buildings.contains("1号楼"), "{buildings}");
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//dd[@id='today-opened' and text()='1']"))
        .await?;

    // Someone climbs the garage fence: the perimeter zone's own firmware raises the intrusion,
    // labelled from the catalogue; and the garage's free spaces are counted from its sensors.
    devices
        .start(
            "pz-1",
            Incident::of::<Perimeter>(PerimeterIncident::Intrusion {}),
            None,
        )
        .await?;
    let intrusion = wait_for(
        &page,
        "article.alert.sev-critical[data-state=firing]",
        Duration::from_secs(15),
    )
    .await?
    .text()
    .await?;
    assert!(intrusion.contains("周界入侵"), "{intrusion}");
    let spaces = wait_for(&page, "#spaces tr[data-id=garage]", Duration::from_secs(30))
        .await?
        .text()
        .await?;
    assert!(spaces.contains("地下车库"), "{spaces}");

    std::fs::create_dir_all(screenshots())?;
    std::fs::write(
        screenshots().join("control-room.png"),
        page.screenshot().await?,
    )?;

    // The case's timeline, from the page.
    let timeline = format!("article[data-alert-id='{id}'] button[data-action=timeline]");
    page.find(Locator::Css(&timeline)).await?.click().await?;
    let steps = wait_for(
        &page,
        "#timeline-steps li:nth-child(2)",
        Duration::from_secs(10),
    )
    .await?
    .text()
    .await?;
    assert!(steps.contains("王芳"), "{steps}");
    page.find(Locator::Css("#timeline-close"))
        .await?
        .click()
        .await?;

    // On a phone.
    page.set_window_size(390, 844).await?;
    std::fs::write(
        screenshots().join("control-room-phone.png"),
        page.screenshot().await?,
    )?;
    page.set_window_size(1920, 1080).await?;

    // One click to English.
    page.find(Locator::Css("#lang")).await?.click().await?;
    let heading = page.find(Locator::Css("h2")).await?.text().await?;
    assert!(heading.contains("Active alerts"), "{heading}");
    std::fs::write(
        screenshots().join("control-room-en.png"),
        page.screenshot().await?,
    )?;

    // The gateway goes away and comes back: the page says so and recovers by itself.
    let url = gw.url.clone();
    gw.gateway.shutdown().await;
    wait_for(&page, "#live.off", Duration::from_secs(15)).await?;
    let mut config = test_config(mosquitto.port, "http://127.0.0.1:9", dir.path());
    config.http.listen = url.trim_start_matches("http://").parse()?;
    let (registry, _) = demo::community(&tour, &format!("http://{}", hook.addr))?;
    let gw = TestGateway::start_registry(config, registry).await?;
    wait_for(&page, "#live.on", Duration::from_secs(20)).await?;
    wait_for(
        &page,
        &format!("article[data-alert-id='{id}'][data-state=acknowledged]"),
        Duration::from_secs(10),
    )
    .await?;

    page.close().await?;
    let _ = stop_sim.send(());
    let _ = sim.await;
    gw.gateway.shutdown().await;
    Ok(())
}

/// Where the test run leaves its screenshots: `target/screenshots`.
fn screenshots() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("screenshots")
}
