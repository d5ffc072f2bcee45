//! Real servers for Gridwatch's end-to-end tests, started per test as child processes.
//!
//! Mosquitto and VictoriaMetrics run from Debian's packages (`scripts/test` installs them), each on
//! a free loopback port with its own temporary data folder, and are killed when dropped.
//! [`Mosquitto::start_secure`] runs the shipped `packaging/mosquitto` config and ACL (logins,
//! client ids bound to them, a TLS listener with a CA made for the test). Nothing
//! here is a stand-in for a server the gateway depends on; the webhook receiver plays the part of
//! the grid worker's app, which is the test's own end of the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use gridwatch_gateway::config::{Config, Secrets, StoreBackend};
use gridwatch_gateway::registry::Registry;
use gridwatch_gateway::Gateway;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use tempfile::TempDir;
use tokio::sync::{mpsc, Mutex};

/// An HTTP client for the tests (the process's TLS provider installed first).
pub fn http() -> reqwest::Client {
    gridwatch_gateway::app::install_crypto_provider();
    reqwest::Client::new()
}

/// GETs `url` and returns the body as text.
pub async fn get_text(url: &str) -> anyhow::Result<String> {
    Ok(http().get(url).send().await?.text().await?)
}

/// GETs `url` and reads the answer as JSON.
pub async fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(http().get(url).send().await?.json().await?)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The first of `candidates` that exists, or an error that says how to install it.
fn find_binary(env: &str, candidates: &[&str], package: &str) -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Ok(PathBuf::from(p));
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .with_context(|| format!("{package} is not installed: run scripts/test, or apt-get install {package} (or set {env})"))
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{what} did not listen on port {port} within 20 s: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

/// Asks a child process to stop (SIGTERM) and waits for it.
fn terminate(child: &mut Child) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()?;
    if !status.success() {
        bail!("kill -TERM {} failed", child.id());
    }
    child.wait()?;
    Ok(())
}

fn append_log(path: &Path) -> anyhow::Result<std::fs::File> {
    Ok(std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)?)
}

/// A Mosquitto broker with persistence on and queue limits far above what a test sends.
pub struct Mosquitto {
    /// Its port on 127.0.0.1 (the plain listener).
    pub port: u16,
    /// The TLS listener and its files, for a broker from [`Mosquitto::start_secure`].
    pub tls: Option<BrokerTls>,
    child: Child,
    dir: TempDir,
}

/// How [`Mosquitto::start_secure`] sets the broker up, on top of the shipped config.
#[derive(Clone, Debug, Default)]
pub struct Hardening {
    /// Logins besides the gateway's, one per device or app: user = client id = the given id,
    /// password [`password_of`] the id.
    pub logins: Vec<String>,
    /// The TLS listener asks for a client certificate signed by the test CA.
    pub require_certificate: bool,
    /// ACL lines appended after the shipped ACL (which is copied unchanged), as an operator
    /// adds worker apps.
    pub extra_acl: String,
}

/// The TLS listener of a secure test broker, and the PEM files a client needs for it.
#[derive(Clone, Debug)]
pub struct BrokerTls {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The throwaway CA that signed the broker's and the gateway's certificates.
    pub ca_file: PathBuf,
    /// A client certificate for the gateway, signed by the CA.
    pub client_cert_file: PathBuf,
    /// Its key.
    pub client_key_file: PathBuf,
}

/// The gateway's login at a secure test broker (the shipped ACL grants it by this name).
pub const GATEWAY_LOGIN: &str = "gridwatch-gateway";

/// The password of a login at a secure test broker.
pub fn password_of(login: &str) -> String {
    format!("pw-{login}-7Qx")
}

/// The shipped Mosquitto files, `packaging/mosquitto/{name}`.
pub fn shipped_mosquitto_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/mosquitto")
        .join(name)
}

/// A new throwaway CA: its certificate in PEM and an issuer for leaf certificates.
pub fn throwaway_ca(
    name: &str,
) -> anyhow::Result<(String, rcgen::Issuer<'static, rcgen::KeyPair>)> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate()?;
    let pem = params.self_signed(&key)?.pem();
    Ok((pem, rcgen::Issuer::new(params, key)))
}

/// A certificate for `names` signed by `issuer`, and its key, both in PEM.
pub fn leaf_certificate(
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    names: &[&str],
) -> anyhow::Result<(String, String)> {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, *first);
    }
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

impl Mosquitto {
    /// Starts a broker; returns once it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_tuned(20, 100_000)
    }

    /// Starts a broker with `max_inflight_messages` and `max_queued_messages` per client.
    pub fn start_tuned(inflight: u32, queued: u32) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 max_queued_messages {queued}\nmax_inflight_messages {inflight}\n{}",
                Self::common(dir.path())
            ),
        )?;
        let child = Self::spawn(port, dir.path())?;
        Ok(Self {
            port,
            tls: None,
            child,
            dir,
        })
    }

    /// Starts a broker with the shipped `packaging/mosquitto/gridwatch.conf` and
    /// `gridwatch.acl`: no anonymous access, a password file with the gateway's login and
    /// `hardening.logins`, the client id bound to the login, the ACL as shipped. Its listeners
    /// (plain, and TLS with a throwaway CA) are on free loopback ports.
    pub fn start_secure(hardening: &Hardening) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let (port, tls_port) = (free_port(), free_port());

        let mut logins = vec![GATEWAY_LOGIN.to_owned()];
        logins.extend(hardening.logins.iter().cloned());
        let passwd = d.join("gridwatch.passwd");
        let plain: String = logins
            .iter()
            .map(|l| format!("{l}:{}\n", password_of(l)))
            .collect();
        std::fs::write(&passwd, plain)?;
        // -U hashes a file of plain user:password lines in place.
        let tool = find_binary(
            "GRIDWATCH_MOSQUITTO_PASSWD",
            &["/usr/bin/mosquitto_passwd"],
            "mosquitto",
        )?;
        let status = Command::new(tool).arg("-U").arg(&passwd).status()?;
        if !status.success() {
            bail!("mosquitto_passwd -U {} failed: {status}", passwd.display());
        }

        let acl = d.join("gridwatch.acl");
        let shipped_acl = std::fs::read_to_string(shipped_mosquitto_file("gridwatch.acl"))?;
        std::fs::write(&acl, format!("{shipped_acl}\n{}", hardening.extra_acl))?;

        let (ca_pem, issuer) = throwaway_ca("Gridwatch test CA")?;
        let (server_pem, server_key) = leaf_certificate(&issuer, &["127.0.0.1", "localhost"])?;
        let (client_pem, client_key) = leaf_certificate(&issuer, &[GATEWAY_LOGIN])?;
        let tls = BrokerTls {
            port: tls_port,
            ca_file: d.join("ca.pem"),
            client_cert_file: d.join("gateway.pem"),
            client_key_file: d.join("gateway.key"),
        };
        std::fs::write(&tls.ca_file, ca_pem)?;
        std::fs::write(d.join("server.pem"), server_pem)?;
        std::fs::write(d.join("server.key"), server_key)?;
        std::fs::write(&tls.client_cert_file, client_pem)?;
        std::fs::write(&tls.client_key_file, client_key)?;

        let shipped = std::fs::read_to_string(shipped_mosquitto_file("gridwatch.conf"))?;
        let conf = secure_conf(&shipped, port, &passwd, &acl)?;
        std::fs::write(
            d.join("mosquitto.conf"),
            format!(
                "{conf}\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                 require_certificate {}\n{}",
                tls.ca_file.display(),
                d.join("server.pem").display(),
                d.join("server.key").display(),
                hardening.require_certificate,
                Self::common(d)
            ),
        )?;
        let mut child = Self::spawn(port, d)?;
        wait_for_port(
            tls_port,
            &mut child,
            &d.join("stderr.log"),
            "mosquitto (TLS)",
        )?;
        Ok(Self {
            port,
            tls: Some(tls),
            child,
            dir,
        })
    }

    /// Settings every test broker shares: its data folder, its log, and root (a test's
    /// temporary files are not readable by the `mosquitto` user).
    fn common(dir: &Path) -> String {
        format!(
            "persistence_location {}/\nuser root\nlog_dest file {}\nlog_type all\n",
            dir.display(),
            dir.join("mosquitto.log").display()
        )
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Stops the broker cleanly (it saves its persistence file), waits `down_for`, and starts it
    /// again on the same port with the same data.
    pub fn restart(&mut self, down_for: Duration) -> anyhow::Result<()> {
        terminate(&mut self.child)?;
        std::thread::sleep(down_for);
        self.child = Self::spawn(self.port, self.dir.path())?;
        Ok(())
    }

    fn spawn(port: u16, dir: &Path) -> anyhow::Result<Child> {
        let bin = find_binary(
            "GRIDWATCH_MOSQUITTO",
            &["/usr/sbin/mosquitto", "/usr/bin/mosquitto"],
            "mosquitto",
        )?;
        let stderr = dir.join("stderr.log");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(append_log(&stderr)?)
            .spawn()
            .context("starting mosquitto")?;
        wait_for_port(port, &mut child, &stderr, "mosquitto")?;
        Ok(child)
    }
}

/// The shipped config's settings with the test's own listener, password file and ACL file in
/// place of the system paths. Fails if the shipped file stops saying what the tests rely on.
fn secure_conf(shipped: &str, port: u16, passwd: &Path, acl: &Path) -> anyhow::Result<String> {
    let settings: Vec<&str> = shipped
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["allow_anonymous false", "use_username_as_clientid true"] {
        if !settings.contains(&needed) {
            bail!("packaging/mosquitto/gridwatch.conf no longer says `{needed}`");
        }
    }
    let mut out = String::new();
    for line in settings {
        let name = line.split_whitespace().next().unwrap_or_default();
        let line = match name {
            "listener" => format!("listener {port} 127.0.0.1"),
            "password_file" => format!("password_file {}", passwd.display()),
            "acl_file" => format!("acl_file {}", acl.display()),
            _ => line.to_owned(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A VictoriaMetrics server, set up so that what was written is readable at once.
pub struct VictoriaMetrics {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

/// One series from VictoriaMetrics' export API.
#[derive(Debug, serde::Deserialize)]
pub struct Series {
    /// Labels, `__name__` included.
    pub metric: std::collections::BTreeMap<String, String>,
    /// Values, oldest first.
    pub values: Vec<f64>,
    /// Timestamps in milliseconds.
    pub timestamps: Vec<i64>,
}

impl VictoriaMetrics {
    /// Starts a server on a free port; returns once it listens.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on(free_port())
    }

    /// Starts a server on `port`; returns once it listens.
    pub fn start_on(port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let child = Some(Self::spawn(port, dir.path())?);
        Ok(Self { port, child, dir })
    }

    /// Stops the server cleanly, as an operator would for maintenance.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c)?;
        }
        Ok(())
    }

    /// Starts it again on the same port and data.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.child = Some(Self::spawn(self.port, self.dir.path())?);
        Ok(())
    }

    fn spawn(port: u16, dir: &Path) -> anyhow::Result<Child> {
        let bin = find_binary(
            "GRIDWATCH_VICTORIA_METRICS",
            &["/usr/bin/victoria-metrics"],
            "victoria-metrics",
        )?;
        let log = dir.join("vm.log");
        let mut child = Command::new(bin)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.join("data").display()))
            .args([
                "-search.disableCache",
                "-search.latencyOffset=0s",
                "-loggerLevel=ERROR",
            ])
            .stdout(Stdio::null())
            .stderr(append_log(&log)?)
            .spawn()
            .context("starting victoria-metrics")?;
        wait_for_port(port, &mut child, &log, "victoria-metrics")?;
        Ok(child)
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every series matching a selector, read after a forced flush.
    pub async fn export(&self, selector: &str) -> anyhow::Result<Vec<Series>> {
        let http = http();
        http.get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await?
            .error_for_status()?;
        let text = http
            .get(format!("{}/api/v1/export", self.url()))
            .query(&[("match[]", selector)])
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        text.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One request the webhook receiver got.
#[derive(Debug)]
pub struct Received {
    /// The path and query it was posted to.
    pub uri: axum::http::Uri,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its raw body.
    pub body: Bytes,
    /// The status the receiver answered.
    pub answered: StatusCode,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook bodies are JSON")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The grid worker's end: records every request and can refuse the first few with 503. It
/// answers what the group robots answer when they take a message (`errcode` 0 for WeCom and
/// DingTalk, `code` 0 for Feishu), so it stands in for any of them.
pub struct WebhookReceiver {
    /// Its address.
    pub addr: SocketAddr,
    rx: Mutex<mpsc::UnboundedReceiver<Received>>,
}

impl WebhookReceiver {
    /// Starts a receiver that answers 503 to its first `fail_first` requests.
    pub async fn start(fail_first: usize) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let app = axum::Router::new().route(
            "/{*path}",
            axum::routing::post(
                move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                    let tx = tx.clone();
                    let failures = failures.clone();
                    async move {
                        let fail = failures
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        let answered = if fail {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::OK
                        };
                        let _ = tx.send(Received {
                            uri,
                            headers,
                            body,
                            answered,
                        });
                        (
                            answered,
                            r#"{"errcode":0,"errmsg":"ok","code":0,"msg":"success"}"#,
                        )
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            addr,
            rx: Mutex::new(rx),
        })
    }

    /// The URL for a worker.
    pub fn url(&self, worker: &str) -> String {
        format!("http://{}/{worker}", self.addr)
    }

    /// The next request, waiting at most `within`.
    pub async fn next(&self, within: Duration) -> anyhow::Result<Received> {
        tokio::time::timeout(within, self.rx.lock().await.recv())
            .await
            .context("no webhook arrived in time")?
            .context("receiver stopped")
    }
}

/// The test community: one building, two grids, a worker on duty for each.
pub fn registry_text(hook: &WebhookReceiver) -> String {
    format!(
        r#"
[community]
id = "yg"
name = "阳光社区"

[[buildings]]
id = "b3"
name = "3号楼"

[[grids]]
id = "g1"
name = "第一网格"

[[grids]]
id = "g2"
name = "第二网格"

[[workers]]
id = "w-wang"
name = "王芳"
webhook = "{}"

[[workers]]
id = "w-li"
name = "李军"
webhook = "{}"

[[duty]]
grid = "g1"
worker = "w-wang"

[[duty]]
grid = "g2"
worker = "w-li"

[[devices]]
id = "sos-301"
kind = "sos"
building = "b3"
grid = "g2"
location = "2单元301室"

[[devices]]
id = "mh-1"
kind = "manhole"
building = "b3"
grid = "g1"
location = "东门"

[[devices]]
id = "mh-2"
kind = "manhole"
building = "b3"
grid = "g1"
location = "西门"
"#,
        hook.url("w-wang"),
        hook.url("w-li")
    )
}

/// The API token test gateways started in-process accept for writes.
pub const API_TOKEN: &str = "t0ken";

/// A webhook signing secret for tests.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A gateway wired to real servers, and the folder it writes to.
pub struct TestGateway {
    /// The running gateway.
    pub gateway: Gateway,
    /// Its HTTP base URL.
    pub url: String,
    _dir: Option<TempDir>,
}

/// The config the tests run the gateway with: the broker on `mqtt_port`, the store at
/// `store_url`, its journal and dead letters under `dir`, short retry waits.
pub fn test_config(mqtt_port: u16, store_url: &str, dir: &Path) -> Config {
    let mut c = Config::default();
    c.mqtt.port = mqtt_port;
    c.mqtt.reconnect_max_ms = 1000;
    c.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.store.backend = StoreBackend::Influx;
    c.store.influx.url = store_url.to_owned();
    c.store.retry_max_ms = 1000;
    c.store.batch_lines = 100;
    c.store.flush_interval_ms = 100;
    c.store.dead_letter_path = dir.join("dead-letter");
    c.journal.path = dir.join("journal");
    c.notify.retry_min_ms = 100;
    c.ingest.device_rate_per_min = 100_000_000;
    c.ingest.device_burst = 100_000_000;
    c
}

/// The secrets test gateways run with: a webhook signing secret and an API token.
pub fn test_secrets() -> Secrets {
    Secrets {
        webhook_secret: Some(WEBHOOK_SECRET.into()),
        api_token: Some(API_TOKEN.into()),
        ..Secrets::default()
    }
}

/// [`test_secrets`] and the gateway's password at a secure test broker.
pub fn secure_secrets() -> Secrets {
    Secrets {
        mqtt_password: Some(password_of(GATEWAY_LOGIN)),
        ..test_secrets()
    }
}

/// [`test_config`] for a broker from [`Mosquitto::start_secure`]: its TLS listener, the test
/// CA, and the gateway's login (the password is in [`secure_secrets`]).
pub fn secure_config(mosquitto: &Mosquitto, store_url: &str, dir: &Path) -> anyhow::Result<Config> {
    let tls = mosquitto
        .tls
        .as_ref()
        .context("the broker has no TLS listener: start it with Mosquitto::start_secure")?;
    let mut c = test_config(tls.port, store_url, dir);
    c.mqtt.username = Some(GATEWAY_LOGIN.into());
    c.mqtt.client_id = GATEWAY_LOGIN.into();
    c.mqtt.tls.enabled = true;
    c.mqtt.tls.ca_file = Some(tls.ca_file.clone());
    Ok(c)
}

/// Waits until the gateway at `url` answers `/readyz` with 200.
pub async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http()
            .get(format!("{url}/readyz"))
            .send()
            .await
            .map(|r| r.status().is_success());
        if matches!(ready, Ok(true)) {
            // The gateway subscribes right after its ConnAck; give the SUBACK a moment to land.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("gateway at {url} not ready within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestGateway {
    /// Starts the gateway against `mosquitto` and `vm` with the test registry; returns once ready.
    pub async fn start(
        mosquitto: &Mosquitto,
        vm: &VictoriaMetrics,
        hook: &WebhookReceiver,
    ) -> anyhow::Result<Self> {
        Self::start_with_store(mosquitto, &vm.url(), hook).await
    }

    /// Starts the gateway with its store at `store_url`, which need not be up yet.
    pub async fn start_with_store(
        mosquitto: &Mosquitto,
        store_url: &str,
        hook: &WebhookReceiver,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = test_config(mosquitto.port, store_url, dir.path());
        let mut gw = Self::start_config(config, hook).await?;
        gw._dir = Some(dir);
        Ok(gw)
    }

    /// Starts the gateway with `config` and the test registry; returns once ready.
    pub async fn start_config(config: Config, hook: &WebhookReceiver) -> anyhow::Result<Self> {
        let registry =
            Registry::parse(&registry_text(hook)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
        Self::start_registry(config, registry).await
    }

    /// Starts the gateway against a broker from [`Mosquitto::start_secure`]: over TLS, trusting
    /// the test CA, with the gateway's login ([`secure_config`]), its store at `store_url`;
    /// returns once ready.
    pub async fn start_secure(
        mosquitto: &Mosquitto,
        store_url: &str,
        hook: &WebhookReceiver,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = secure_config(mosquitto, store_url, dir.path())?;
        let registry =
            Registry::parse(&registry_text(hook)).map_err(|p| anyhow::anyhow!("{p:?}"))?;
        let mut gw = Self::start_with_secrets(config, registry, secure_secrets()).await?;
        gw._dir = Some(dir);
        Ok(gw)
    }

    /// Starts the gateway with `config` and `registry`; returns once ready.
    pub async fn start_registry(config: Config, registry: Registry) -> anyhow::Result<Self> {
        Self::start_with_secrets(config, registry, test_secrets()).await
    }

    /// Starts the gateway with `config`, `registry` and `secrets`; returns once ready.
    pub async fn start_with_secrets(
        config: Config,
        registry: Registry,
        secrets: Secrets,
    ) -> anyhow::Result<Self> {
        let gateway = Gateway::start(config, registry, secrets).await?;
        let url = format!("http://{}", gateway.http_addr());
        wait_ready(&url).await?;
        Ok(Self {
            gateway,
            url,
            _dir: None,
        })
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        get_text(&format!("{}/metrics", self.url)).await
    }
}

/// The sum of every sample of a metric whose name and labels start with `prefix`.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(prefix)
                && matches!(
                    l.as_bytes().get(prefix.len()),
                    Some(b' ' | b'{' | b',' | b'}')
                )
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Options for a test client with client id `id` on the plain listener at `port`, logging in as
/// `login` (with [`password_of`] it) when given.
pub fn client_options(port: u16, id: &str, login: Option<&str>) -> MqttOptions {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    if let Some(login) = login {
        opts.set_credentials(login, password_of(login));
    }
    opts
}

/// [`client_options`] for the TLS listener of a broker from [`Mosquitto::start_secure`],
/// trusting its CA (through the gateway's own TLS setup).
pub fn tls_client_options(
    mosquitto: &Mosquitto,
    id: &str,
    login: Option<&str>,
) -> anyhow::Result<MqttOptions> {
    let tls = mosquitto
        .tls
        .as_ref()
        .context("the broker has no TLS listener: start it with Mosquitto::start_secure")?;
    let settings = gridwatch_gateway::config::MqttTlsConfig {
        enabled: true,
        ca_file: Some(tls.ca_file.clone()),
        ..Default::default()
    };
    let config = gridwatch_gateway::ingest::tls::load(&settings)?.context("TLS is on")?;
    let mut opts = client_options(tls.port, id, login);
    opts.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(config),
    ));
    Ok(opts)
}

/// What the broker answers to a client connecting with `opts`: Ok, or the CONNACK's refusal.
pub async fn connack(opts: MqttOptions) -> anyhow::Result<Result<(), rumqttc::ConnectReturnCode>> {
    use rumqttc::{ConnectionError, Event, Packet};
    let (_client, mut eventloop) = AsyncClient::new(opts, 10);
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(Ok(())),
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => return Ok(Err(code)),
                Err(e) => return Err(anyhow::anyhow!("no CONNACK: {e}")),
            }
        }
    })
    .await??;
    Ok(answer)
}

/// A device-side MQTT client whose event loop runs in the background.
pub struct Device {
    client: AsyncClient,
    connections: Arc<AtomicUsize>,
    subacks: mpsc::UnboundedReceiver<Vec<rumqttc::SubscribeReasonCode>>,
    messages: mpsc::UnboundedReceiver<(String, serde_json::Value)>,
    _task: tokio::task::JoinHandle<()>,
}

impl Device {
    /// Connects anonymously with client id `id`.
    pub fn connect(port: u16, id: &str) -> Self {
        Self::connect_with(client_options(port, id, None))
    }

    /// Connects with client id `id` and the login of the same name, as every device at a
    /// secure broker does.
    pub fn login(port: u16, id: &str) -> Self {
        Self::connect_with(client_options(port, id, Some(id)))
    }

    /// Connects with `opts`.
    pub fn connect_with(opts: MqttOptions) -> Self {
        use rumqttc::{Event, Packet};
        let (client, mut eventloop) = AsyncClient::new(opts, 2000);
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let (suback_tx, subacks) = mpsc::unbounded_channel();
        let (message_tx, messages) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        let _ = suback_tx.send(ack.return_codes);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let json = serde_json::from_slice(&p.payload).unwrap_or_default();
                        let _ = message_tx.send((p.topic.clone(), json));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Self {
            client,
            connections,
            subacks,
            messages,
            _task: task,
        }
    }

    /// How many times the broker accepted this client's connection so far (a second one means
    /// it lost the first).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Publishes at QoS 1.
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await?;
        Ok(())
    }

    /// Subscribes to `filter` at QoS 1; the broker's answer once it came.
    pub async fn subscribe(
        &mut self,
        filter: &str,
    ) -> anyhow::Result<Vec<rumqttc::SubscribeReasonCode>> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        tokio::time::timeout(Duration::from_secs(10), self.subacks.recv())
            .await?
            .context("the device's event loop stopped")
    }

    /// The next message on the device's subscriptions, waiting at most `within`.
    pub async fn next_message(&mut self, within: Duration) -> Option<(String, serde_json::Value)> {
        tokio::time::timeout(within, self.messages.recv())
            .await
            .ok()
            .flatten()
    }
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("condition not met within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `gridwatch` binary, built next to the test executables.
pub fn gateway_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target folder")?;
    // Test executables live in target/<profile>/deps, other binaries in target/<profile>.
    let bin = [
        exe.parent().map(|d| d.join("gridwatch")),
        Some(dir.join("gridwatch")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.exists())
    .unwrap_or_else(|| dir.join("gridwatch"));
    if !bin.exists() {
        bail!(
            "{} is missing: build it first with `cargo build -p gridwatch-gateway --bin gridwatch` (scripts/test does)",
            bin.display()
        );
    }
    Ok(bin)
}

/// The config text [`GatewayProcess::start`] runs the gateway with: the broker on `mqtt_port`, the
/// store at `store_url`, its journal and dead letters under `dir`, short retry waits.
/// (The per-device rate limit is lifted: the load tests send thousands of messages a second from
/// one device; tests of the limit set their own.)
pub fn process_config(mqtt_port: u16, store_url: &str, dir: &Path) -> String {
    format!(
        "[mqtt]\nport = {mqtt_port}\nreconnect_max_ms = 1000\n\
         [store]\nbackend = \"influx\"\nbatch_lines = 200\nflush_interval_ms = 100\nretry_max_ms = 1000\n\
         dead_letter_path = \"{dead}\"\n[store.influx]\nurl = \"{store_url}\"\n\
         [journal]\npath = \"{journal}\"\n\
         [ingest]\ndevice_rate_per_min = 100000000\ndevice_burst = 100000000\n",
        dead = dir.join("dead-letter").display(),
        journal = dir.join("journal").display(),
    )
}

/// The gateway as its own process, for tests that kill it.
pub struct GatewayProcess {
    /// Its HTTP base URL.
    pub url: String,
    config: PathBuf,
    child: Child,
}

impl GatewayProcess {
    /// Writes a config and the test registry into `dir` and starts `gridwatch run`; returns once ready.
    pub async fn start(
        mqtt_port: u16,
        store_url: &str,
        hook: &WebhookReceiver,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let config = process_config(mqtt_port, store_url, dir);
        Self::start_with(&config, &registry_text(hook), dir).await
    }

    /// Starts `gridwatch run` in `dir` with `config` (TOML without an `[http]` table, which this
    /// adds on a free port) and `registry`; returns once ready.
    pub async fn start_with(config: &str, registry: &str, dir: &Path) -> anyhow::Result<Self> {
        let http_port = free_port();
        std::fs::write(dir.join("registry.toml"), registry)?;
        let path = dir.join("gridwatch.toml");
        std::fs::write(
            &path,
            format!("{config}\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
        )?;
        let config = path;
        let child = Self::spawn(&config, dir)?;
        let gw = Self {
            url: format!("http://127.0.0.1:{http_port}"),
            config,
            child,
        };
        wait_ready(&gw.url).await?;
        Ok(gw)
    }

    fn spawn(config: &Path, dir: &Path) -> anyhow::Result<Child> {
        Command::new(gateway_binary()?)
            .args(["run", "--config"])
            .arg(config)
            .env("GRIDWATCH_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("GRIDWATCH_API_TOKEN", API_TOKEN)
            // Used only with `mqtt.username`, as at a secure broker.
            .env("GRIDWATCH_MQTT_PASSWORD", password_of(GATEWAY_LOGIN))
            .env("RUST_LOG", "info")
            .stdout(append_log(&dir.join("gateway.log"))?)
            .stderr(append_log(&dir.join("gateway.log"))?)
            .spawn()
            .context("starting gridwatch")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process cleanly (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        terminate(&mut self.child)
    }

    /// Kills the process with SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts it again with the same config and data, without waiting for it to be ready.
    pub fn respawn(&mut self) -> anyhow::Result<()> {
        let dir = self
            .config
            .parent()
            .context("config has a folder")?
            .to_owned();
        self.child = Self::spawn(&self.config, &dir)?;
        Ok(())
    }

    /// Starts it again with the same config and data; returns once ready.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.respawn()?;
        wait_ready(&self.url).await
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        get_text(&format!("{}/metrics", self.url)).await
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A device that publishes one message at a time at QoS 1 and waits for the broker's PUBACK, so
/// the test knows exactly which messages the broker acknowledged. After a lost connection it
/// sends the same message again, as a node would.
pub struct AckedPublisher {
    client: AsyncClient,
    eventloop: rumqttc::EventLoop,
}

impl AckedPublisher {
    /// A device with client id `id`.
    pub fn new(port: u16, id: &str) -> Self {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        Self::with(opts)
    }

    /// A device connecting with `opts`.
    pub fn with(opts: MqttOptions) -> Self {
        let (client, eventloop) = AsyncClient::new(opts, 16);
        Self { client, eventloop }
    }

    /// Publishes until the broker acknowledged this message (at most 60 s).
    pub async fn publish(&mut self, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
        use rumqttc::{Event, Outgoing, Packet};
        let deadline = Instant::now() + Duration::from_secs(60);
        'attempt: loop {
            if Instant::now() > deadline {
                bail!("no PUBACK for {topic} within 60 s");
            }
            self.client
                .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
                .await?;
            // PUBACKs for copies of earlier messages may still arrive; only ours count.
            let mut ours = std::collections::HashSet::new();
            loop {
                match tokio::time::timeout(Duration::from_secs(5), self.eventloop.poll()).await {
                    Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                        ours.insert(pkid);
                    }
                    Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) if ours.contains(&ack.pkid) => {
                        return Ok(())
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue 'attempt;
                    }
                }
            }
        }
    }
}

/// The values of every sample of `metric` in `vm`, as integers.
pub async fn stored_values(
    vm: &VictoriaMetrics,
    metric: &str,
) -> anyhow::Result<std::collections::BTreeSet<u64>> {
    let series = vm.export(&format!("{{__name__=\"{metric}\"}}")).await?;
    Ok(series
        .iter()
        .flat_map(|s| s.values.iter().map(|v| *v as u64))
        .collect())
}

/// Device payloads for the tests, in the v1 wire format (encoded by the firmware's own code).
pub mod payload {
    use gridwatch_firmware::wire::{self, Message, Reading, Readings, Value};

    /// Milliseconds since the epoch, now.
    pub fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Encodes one message.
    pub fn encode(msg: &Message<'_>) -> Vec<u8> {
        let mut buf = [0u8; 1024];
        let n = wire::encode(msg, &mut buf).expect("test messages encode");
        buf[..n].to_vec()
    }

    /// A telemetry message of `kind` with `readings`, at `ts` with `seq`.
    pub fn telemetry(kind: &str, ts: u64, seq: u64, readings: &[(&str, Value)]) -> Vec<u8> {
        message(kind, None, ts, seq, readings)
    }

    /// The event `name` of `kind` with the `readings` it carries, at `ts` with `seq`.
    pub fn event(kind: &str, name: &str, ts: u64, seq: u64, readings: &[(&str, Value)]) -> Vec<u8> {
        message(kind, Some(name), ts, seq, readings)
    }

    fn message(
        kind: &str,
        event: Option<&str>,
        ts: u64,
        seq: u64,
        readings: &[(&str, Value)],
    ) -> Vec<u8> {
        let mut data = Readings::new();
        for (name, value) in readings {
            data.push(Reading {
                name,
                value: *value,
            })
            .expect("at most MAX_READINGS readings");
        }
        encode(&Message {
            ts,
            seq,
            kind,
            event,
            data,
            mac: None,
        })
    }

    /// A manhole cover's water level, the reading the store tests count by.
    pub fn water(ts: u64, seq: u64, cm: f64) -> Vec<u8> {
        telemetry("manhole", ts, seq, &[("water_cm", Value::Number(cm))])
    }

    /// An SOS press, now.
    pub fn sos_pressed(seq: u64) -> Vec<u8> {
        encode(&Message {
            ts: now_ms(),
            seq,
            kind: "sos",
            event: Some("sos_pressed"),
            data: Readings::new(),
            mac: None,
        })
    }
}

/// Subscribes to `filter` on the broker at `port` as `client_id`; every message that arrives
/// comes out of the receiver as (topic, JSON payload).
pub async fn listen(
    port: u16,
    client_id: &str,
    filter: &str,
) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)>> {
    listen_with(client_options(port, client_id, None), filter).await
}

/// [`listen`], connecting with `opts`.
pub async fn listen_with(
    opts: MqttOptions,
    filter: &str,
) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)>> {
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 10);
    client.subscribe(filter, rumqttc::QoS::AtLeastOnce).await?;
    loop {
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = events.poll().await? {
            break;
        }
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        // The client lives as long as its events are polled.
        let _client = client;
        while let Ok(event) = events.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = event {
                let json = serde_json::from_slice(&p.payload).unwrap_or_default();
                if tx.send((p.topic.clone(), json)).is_err() {
                    break;
                }
            }
        }
    });
    Ok(rx)
}

/// An SMTP server that files every mail it accepts into a maildir: aiosmtpd, from Debian's
/// `python3-aiosmtpd` (`scripts/test` installs it), on a free loopback port.
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    dir: TempDir,
}

/// One mail the SMTP server received, decoded by Python's own e-mail parser rather than by the
/// library that wrote it.
#[derive(Debug, serde::Deserialize)]
pub struct ReceivedMail {
    /// The recipients given to `RCPT TO`, comma-separated.
    pub envelope_to: String,
    /// The `From` header, decoded.
    pub from: String,
    /// The `To` header, decoded.
    pub to: String,
    /// The `Subject` header, decoded.
    pub subject: String,
    /// The `Message-ID` header.
    pub message_id: String,
    /// The content type without parameters, e.g. `text/plain`.
    pub content_type: String,
    /// The body, transfer encoding and charset undone.
    pub body: String,
}

/// Prints the mails in the maildir given as its argument as a JSON list, oldest first.
const READ_MAILDIR: &str = r#"
import email, email.policy, json, mailbox, sys
box = mailbox.Maildir(sys.argv[1], create=False)
mails = []
for key in sorted(box.keys()):
    with box.get_file(key) as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    mails.append({
        "envelope_to": str(m["X-RcptTo"]),
        "from": str(m["From"]),
        "to": str(m["To"]),
        "subject": str(m["Subject"]),
        "message_id": str(m["Message-ID"]),
        "content_type": m.get_content_type(),
        "body": m.get_content(),
    })
json.dump(mails, sys.stdout)
"#;

impl SmtpServer {
    /// Starts a server; returns once it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let python = find_binary(
            "GRIDWATCH_PYTHON3",
            &["/usr/bin/python3"],
            "python3-aiosmtpd",
        )?;
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let log = dir.path().join("aiosmtpd.log");
        let mut child = Command::new(python)
            // -n: stay the current user (it would switch to `nobody` when started as root).
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(append_log(&log)?)
            .spawn()
            .context("starting aiosmtpd")?;
        wait_for_port(port, &mut child, &log, "aiosmtpd").context(
            "is python3-aiosmtpd installed? run scripts/test, or apt-get install python3-aiosmtpd",
        )?;
        Ok(Self { port, child, dir })
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> anyhow::Result<Vec<ReceivedMail>> {
        let python = find_binary(
            "GRIDWATCH_PYTHON3",
            &["/usr/bin/python3"],
            "python3-aiosmtpd",
        )?;
        let out = Command::new(python)
            .args(["-c", READ_MAILDIR])
            .arg(self.dir.path().join("maildir"))
            .output()
            .context("reading the maildir")?;
        if !out.status.success() {
            bail!(
                "reading the maildir failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ChromeDriver (Debian's `chromium-driver`, which `scripts/test` installs with `chromium`) on a
/// free loopback port, driving a headless Chromium with its own empty profile.
pub struct Chromedriver {
    /// Its WebDriver URL.
    pub url: String,
    child: Child,
    _dir: TempDir,
}

impl Chromedriver {
    /// Starts chromedriver; returns once it accepts connections.
    pub fn start() -> anyhow::Result<Self> {
        let driver = find_binary(
            "GRIDWATCH_CHROMEDRIVER",
            &["/usr/bin/chromedriver"],
            "chromium-driver",
        )?;
        find_binary("GRIDWATCH_CHROMIUM", &["/usr/bin/chromium"], "chromium")?;
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let log = dir.path().join("chromedriver.log");
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(append_log(&log)?)
            .stderr(append_log(&log)?)
            .spawn()
            .context("starting chromedriver")?;
        wait_for_port(port, &mut child, &log, "chromedriver")?;
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        })
    }

    /// The capabilities of a headless Chromium that stays off the network (this machine has
    /// none), with a profile of its own under `profile`, at 1920x1080.
    pub fn capabilities(profile: &Path) -> serde_json::Map<String, serde_json::Value> {
        let chromium = std::env::var("GRIDWATCH_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1920,1080".into(),
            "--lang=zh-CN".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        match caps {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
