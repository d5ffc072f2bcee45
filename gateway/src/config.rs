//! The gateway's one TOML config file: every key has a default that works on a single box.
//!
//! Loading is pure: [`Config::parse`] turns text into a validated [`Config`] or into every problem
//! at once, each naming the key and its line, so an installer fixes a file in one pass. Secrets
//! (broker password, store token, webhook signing secret) are never read from this file: they come
//! from the environment through [`Secrets`], and have no defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole config file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The MQTT broker the devices publish to.
    pub mqtt: MqttConfig,
    /// Limits on what the gateway accepts from devices.
    pub ingest: IngestConfig,
    /// The on-disk journal every accepted message is written to before it is acknowledged.
    pub journal: JournalConfig,
    /// Where readings are written.
    pub store: StoreConfig,
    /// Outbound notifications to grid workers.
    pub notify: NotifyConfig,
    /// Alert texts, how long ended alerts are kept, early warnings, storm and flap grouping.
    pub alerts: AlertsConfig,
    /// The HTTP API, metrics and control-room screen.
    pub http: HttpConfig,
    /// The community registry: buildings, grids, devices, workers, duty.
    pub registry: RegistryConfig,
    /// The kinds of device the gateway accepts, with their readings and events.
    pub catalogue: CatalogueConfig,
    /// The alert rules.
    pub rules: RulesConfig,
    /// `[[serial]]`: serial ports with nodes wired over RS-485; none by default.
    pub serial: Vec<SerialConfig>,
}

/// `[[serial]]`: one serial port with wired nodes on it, read like an MQTT subscription.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// The port's device path, e.g. `/dev/ttyUSB0`.
    #[schemars(example = &"/dev/ttyUSB0")]
    pub port: String,
    /// Line speed in baud (8 data bits, no parity, one stop bit).
    #[serde(default = "SerialConfig::default_baud")]
    pub baud: u32,
}

impl SerialConfig {
    fn default_baud() -> u32 {
        115_200
    }
}

/// `[rules]`: the alert rules and the engine's saved state.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// A rule file that replaces the built-in rules (`gateway/rules.toml` shows the format); a
    /// relative path is taken from the config file's folder.
    #[schemars(example = &"rules.toml")]
    pub path: Option<PathBuf>,
    /// How often the engine's timers, windows and open alerts are saved, in seconds.
    pub save_every_secs: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            path: None,
            save_every_secs: 30,
        }
    }
}

/// `[catalogue]`: the kinds of device the gateway accepts.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogueConfig {
    /// A kind catalogue that replaces the built-in one (`gateway/kinds.toml` shows the format);
    /// a relative path is taken from the config file's folder.
    #[schemars(example = &"kinds.toml")]
    pub path: Option<PathBuf>,
}

/// `[mqtt]`: the broker connection.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The gateway's fixed client id; the broker keeps its session under this name.
    pub client_id: String,
    /// User name at the broker; the password comes from `GRIDWATCH_MQTT_PASSWORD`.
    #[schemars(example = &"gateway")]
    pub username: Option<String>,
    /// Keep-alive interval in seconds.
    pub keep_alive_secs: u64,
    /// First wait before reconnecting, in milliseconds; it doubles on each failure.
    pub reconnect_min_ms: u64,
    /// Longest wait between reconnection attempts, in milliseconds.
    pub reconnect_max_ms: u64,
    /// `[mqtt.tls]`: TLS to the broker; off unless `enabled`.
    pub tls: MqttTlsConfig,
}

/// `[mqtt.tls]`: TLS to the broker (rustls). The files are PEM and read once, at start.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MqttTlsConfig {
    /// Connect with TLS (the broker's TLS listener, usually port 8883).
    pub enabled: bool,
    /// The CA certificate(s) the broker's certificate must chain to; without it, the public web
    /// roots (Mozilla's list, built in) are trusted. Relative paths in `[mqtt.tls]` are taken
    /// from the config file's folder.
    #[schemars(example = &"/etc/gridwatch/mqtt-ca.pem")]
    pub ca_file: Option<PathBuf>,
    /// The gateway's own certificate chain, for a broker that asks for client certificates
    /// (`require_certificate true`); needs `client_key_file`.
    #[schemars(example = &"/etc/gridwatch/gateway.crt")]
    pub client_cert_file: Option<PathBuf>,
    /// The private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1).
    #[schemars(example = &"/etc/gridwatch/gateway.key")]
    pub client_key_file: Option<PathBuf>,
    /// The name the broker's certificate must carry, when it differs from `mqtt.host` (for
    /// example a host given as an IP address, with a certificate issued for a DNS name).
    #[schemars(example = &"mqtt.example.cn")]
    pub server_name: Option<String>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "gridwatch-gateway".into(),
            username: None,
            keep_alive_secs: 30,
            reconnect_min_ms: 100,
            reconnect_max_ms: 30_000,
            tls: MqttTlsConfig::default(),
        }
    }
}

/// `[ingest]`: limits on incoming messages.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Payloads larger than this many bytes are rejected as `oversized`.
    pub max_payload_bytes: usize,
    /// Events waiting to be handled; the broker connection waits when this is full.
    pub event_queue: usize,
    /// Telemetry waiting to be handled; beyond this, telemetry is shed and counted.
    pub telemetry_queue: usize,
    /// A file of device keys, `device-id = "<hex>"` (16 to 64 bytes), readable by the gateway
    /// only; a device with a key must sign every message. A relative path is taken from the
    /// config file's folder.
    #[schemars(example = &"device-keys.toml")]
    pub device_keys_path: Option<PathBuf>,
    /// Every device must have a key and sign: messages from a device without one are refused.
    pub require_mac: bool,
    /// How far ahead of the gateway's clock a message's `ts` may be, in seconds.
    pub max_clock_ahead_secs: u64,
    /// How far behind, in seconds: a node keeps its events while its link is down.
    pub max_clock_behind_secs: u64,
    /// Messages per minute a device may send on average; beyond it they are dropped and the
    /// device is reported as flooding. Never applied to life-safety events.
    pub device_rate_per_min: u32,
    /// How many messages a device may send at once before the rate applies.
    pub device_burst: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 4096,
            event_queue: 1024,
            telemetry_queue: 8192,
            device_keys_path: None,
            require_mac: false,
            max_clock_ahead_secs: 300,
            max_clock_behind_secs: 86_400,
            device_rate_per_min: 120,
            device_burst: 60,
        }
    }
}

impl IngestConfig {
    /// The guard's limits.
    pub fn limits(&self) -> crate::decode::guard::Limits {
        crate::decode::guard::Limits {
            require_mac: self.require_mac,
            max_ahead_ms: self.max_clock_ahead_secs.saturating_mul(1000),
            max_behind_ms: self.max_clock_behind_secs.saturating_mul(1000),
            rate_per_min: self.device_rate_per_min,
            burst: self.device_burst,
        }
    }
}

/// `[journal]`: where accepted messages wait until every downstream stage is done with them.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Folder for the journal's segments and cursors.
    pub path: PathBuf,
    /// A new segment starts past this many bytes.
    pub segment_bytes: u64,
    /// The disk budget: beyond it the oldest unsent telemetry is dropped (never events).
    pub max_bytes: u64,
    /// The most messages one fsync covers.
    pub max_group: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/journal"),
            segment_bytes: 16 << 20,
            max_bytes: 1 << 30,
            max_group: 4096,
        }
    }
}

/// Which time-series store readings go to.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// Line-protocol files on local disk, ready to be replayed to a server later.
    #[default]
    Local,
    /// A server that speaks the InfluxDB v2 write API (InfluxDB, VictoriaMetrics).
    Influx,
}

/// `[store]`: the time-series sink.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where readings go: `local` files on this box, or `influx`, a server that speaks the
    /// InfluxDB v2 write API.
    pub backend: StoreBackend,
    /// A batch is sent when it holds this many lines…
    pub batch_lines: usize,
    /// …or when its first line is this many milliseconds old.
    pub flush_interval_ms: u64,
    /// First wait before retrying a failed batch, in milliseconds; it doubles on each failure.
    pub retry_min_ms: u64,
    /// Longest wait between retries, in milliseconds.
    pub retry_max_ms: u64,
    /// Folder for batches the store refused as malformed, kept for inspection and replay.
    pub dead_letter_path: PathBuf,
    /// The embedded on-disk store, used with `backend = "local"`.
    pub local: LocalStoreConfig,
    /// The InfluxDB v2 write API endpoint, used with `backend = "influx"`; its token comes from
    /// `GRIDWATCH_TSDB_TOKEN`.
    pub influx: InfluxConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Local,
            batch_lines: 5000,
            flush_interval_ms: 1000,
            retry_min_ms: 200,
            retry_max_ms: 30_000,
            dead_letter_path: PathBuf::from("data/dead-letter"),
            local: LocalStoreConfig::default(),
            influx: InfluxConfig::default(),
        }
    }
}

/// `[store.local]`: the embedded on-disk store.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LocalStoreConfig {
    /// Folder for the line-protocol files.
    pub path: PathBuf,
    /// A file is closed and a new one started past this many bytes.
    pub rotate_bytes: u64,
    /// Retention: closed files beyond this many bytes in all are deleted, oldest first.
    pub max_bytes: u64,
}

impl Default for LocalStoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/tsdb"),
            rotate_bytes: 64 << 20,
            max_bytes: 4 << 30,
        }
    }
}

/// `[store.influx]`: an InfluxDB v2 write API endpoint; the token comes from `GRIDWATCH_TSDB_TOKEN`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxConfig {
    /// Base URL of the server, without `/api/v2/write`.
    pub url: String,
    /// Organisation (InfluxDB); VictoriaMetrics ignores it.
    pub org: String,
    /// Bucket (InfluxDB); VictoriaMetrics ignores it.
    pub bucket: String,
    /// Whole-request timeout in milliseconds.
    pub timeout_ms: u64,
    /// Compress request bodies with gzip.
    pub gzip: bool,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8086".into(),
            org: "gridwatch".into(),
            bucket: "gridwatch".into(),
            timeout_ms: 10_000,
            gzip: true,
        }
    }
}

/// `[notify]`: webhooks to grid workers; the signing secret comes from `GRIDWATCH_WEBHOOK_SECRET`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Timeout of one delivery attempt, in milliseconds.
    pub timeout_ms: u64,
    /// First wait before retrying a delivery, in milliseconds; it doubles on each failure.
    pub retry_min_ms: u64,
    /// Longest wait between delivery attempts, in milliseconds.
    pub retry_max_ms: u64,
    /// The SMTP server for workers with an `email`; none by default. Its password comes from
    /// `GRIDWATCH_SMTP_PASSWORD`.
    pub smtp: Option<crate::notify::email::SmtpConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 5_000,
            retry_min_ms: 500,
            retry_max_ms: 60_000,
            smtp: None,
        }
    }
}

/// The language of alert messages.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Language {
    /// Simplified Chinese.
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    /// English.
    #[serde(rename = "en")]
    En,
}

/// `[alerts]`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Language of the `message` field; both texts are always sent.
    pub language: Language,
    /// Days an alert that is over (resolved or closed) stays in the API and the case log after
    /// its last change.
    pub keep_ended_days: u32,
    /// Minutes ahead that a grid with nobody on duty, or a worker on duty whom nothing can
    /// reach, is raised as an alert to the duty officer.
    pub warn_ahead_mins: u32,
    /// Seconds a notification channel must keep failing (three attempts at least) before it
    /// raises an alert of its own.
    pub channel_failing_after_secs: u32,
    /// This many devices of one building opening the same rule within `storm_window_secs`
    /// become one grouped alert (never for alerts that need a person: SOS, trapped, smoke, gas).
    pub storm_threshold: usize,
    /// The window of `storm_threshold`, in seconds.
    pub storm_window_secs: u32,
    /// A device and rule whose alert opened this many times within `flap_window_mins` opens
    /// again without paging anyone (never for alerts that need a person).
    pub flap_limit: usize,
    /// The window of `flap_limit`, in minutes.
    pub flap_window_mins: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            language: Language::default(),
            keep_ended_days: 7,
            warn_ahead_mins: 60,
            channel_failing_after_secs: 120,
            storm_threshold: 5,
            storm_window_secs: 60,
            flap_limit: 3,
            flap_window_mins: 30,
        }
    }
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// `[registry]`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// The registry file; a relative path is taken from the config file's folder.
    pub path: PathBuf,
    /// Seconds between looks at the registry file: a change to its workers, duty or shifts
    /// takes effect without a restart (devices need one). 0 turns this off.
    pub watch_secs: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("registry.toml"),
            watch_secs: 5,
        }
    }
}

/// Secrets, read from the environment at the binary's edge and never from the config file.
#[derive(Clone, Default)]
pub struct Secrets {
    /// `GRIDWATCH_MQTT_PASSWORD`.
    pub mqtt_password: Option<String>,
    /// `GRIDWATCH_TSDB_TOKEN`.
    pub tsdb_token: Option<String>,
    /// `GRIDWATCH_WEBHOOK_SECRET`, in Standard Webhooks form (`whsec_` then base64).
    pub webhook_secret: Option<String>,
    /// `GRIDWATCH_API_TOKEN`: the bearer token HTTP writes need; without it writes are refused.
    pub api_token: Option<String>,
    /// `GRIDWATCH_SMTP_PASSWORD`: the SMTP login's password.
    pub smtp_password: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<String>| if s.is_some() { "set" } else { "unset" };
        f.debug_struct("Secrets")
            .field("mqtt_password", &set(&self.mqtt_password))
            .field("tsdb_token", &set(&self.tsdb_token))
            .field("webhook_secret", &set(&self.webhook_secret))
            .field("api_token", &set(&self.api_token))
            .field("smtp_password", &set(&self.smtp_password))
            .finish()
    }
}

impl Secrets {
    /// Reads the secrets from the process environment.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            mqtt_password: var("GRIDWATCH_MQTT_PASSWORD"),
            tsdb_token: var("GRIDWATCH_TSDB_TOKEN"),
            webhook_secret: var("GRIDWATCH_WEBHOOK_SECRET"),
            api_token: var("GRIDWATCH_API_TOKEN"),
            smtp_password: var("GRIDWATCH_SMTP_PASSWORD"),
        }
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{key}: {message}", .line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ConfigProblem {
    /// The dotted key, e.g. `store.batch_lines`.
    pub key: String,
    /// The 1-based line of the key in the file, when the key is in the file.
    pub line: Option<usize>,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML; every syntax error is in the message, with its line.
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// Unknown keys, values of the wrong type, or values that do not make sense.
    #[error("config file {path} has {} problem(s):\n{}", .problems.len(), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

impl Config {
    /// Reads and validates a config file; a relative registry path is resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        if let Some(dir) = path.parent() {
            if config.registry.path.is_relative() {
                config.registry.path = dir.join(&config.registry.path);
            }
            if let Some(p) = config.catalogue.path.as_mut().filter(|p| p.is_relative()) {
                *p = dir.join(&*p);
            }
            if let Some(p) = config.rules.path.as_mut().filter(|p| p.is_relative()) {
                *p = dir.join(&*p);
            }
            if let Some(p) = config
                .ingest
                .device_keys_path
                .as_mut()
                .filter(|p| p.is_relative())
            {
                *p = dir.join(&*p);
            }
            let tls = &mut config.mqtt.tls;
            for p in [
                &mut tls.ca_file,
                &mut tls.client_cert_file,
                &mut tls.client_key_file,
            ] {
                if let Some(p) = p.as_mut().filter(|p| p.is_relative()) {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates config text; `path` only names the file in errors. Every problem is
    /// reported at once: syntax errors; else unknown keys (with the nearest valid name) and
    /// values of the wrong type; else values that do not make sense.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let (doc, syntax) = toml::de::DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            return Err(ConfigError::Syntax {
                path: path.to_owned(),
                message: syntax
                    .into_iter()
                    .map(|mut e| {
                        e.set_input(Some(text));
                        e.to_string()
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
        }
        let (config, mut problems) = crate::config_keys::shape(doc, text);
        if let Some(config) = config.filter(|_| problems.is_empty()) {
            problems = config
                .problems()
                .into_iter()
                .map(|(key, message)| ConfigProblem {
                    line: line_of_key(text, key),
                    key: key.to_owned(),
                    message,
                })
                .collect();
            if problems.is_empty() {
                return Ok(config);
            }
        }
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Every value that is well-typed but unusable, as (dotted key, what to do).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut positive = |key, value: u64| {
            if value == 0 {
                out.push((key, "must be greater than 0".to_owned()));
            }
        };
        positive("mqtt.port", self.mqtt.port.into());
        positive("mqtt.keep_alive_secs", self.mqtt.keep_alive_secs);
        positive("mqtt.reconnect_min_ms", self.mqtt.reconnect_min_ms);
        positive(
            "ingest.max_payload_bytes",
            self.ingest.max_payload_bytes as u64,
        );
        positive("ingest.event_queue", self.ingest.event_queue as u64);
        positive("ingest.telemetry_queue", self.ingest.telemetry_queue as u64);
        positive(
            "ingest.device_rate_per_min",
            self.ingest.device_rate_per_min.into(),
        );
        positive("ingest.device_burst", self.ingest.device_burst.into());
        positive("store.batch_lines", self.store.batch_lines as u64);
        positive("journal.segment_bytes", self.journal.segment_bytes);
        positive("journal.max_group", self.journal.max_group as u64);
        positive("store.flush_interval_ms", self.store.flush_interval_ms);
        positive("store.retry_min_ms", self.store.retry_min_ms);
        positive("store.influx.timeout_ms", self.store.influx.timeout_ms);
        positive("store.local.rotate_bytes", self.store.local.rotate_bytes);
        positive("notify.timeout_ms", self.notify.timeout_ms);
        positive("notify.retry_min_ms", self.notify.retry_min_ms);
        positive("rules.save_every_secs", self.rules.save_every_secs);
        positive(
            "alerts.storm_window_secs",
            self.alerts.storm_window_secs.into(),
        );
        positive("alerts.flap_limit", self.alerts.flap_limit as u64);
        positive(
            "alerts.flap_window_mins",
            self.alerts.flap_window_mins.into(),
        );
        positive("alerts.keep_ended_days", self.alerts.keep_ended_days.into());
        if self.alerts.storm_threshold < 2 {
            out.push((
                "alerts.storm_threshold",
                "must be at least 2 (one alert is not a storm)".into(),
            ));
        }
        if self.mqtt.keep_alive_secs > 0 && self.mqtt.keep_alive_secs < 5 {
            out.push((
                "mqtt.keep_alive_secs",
                "must be at least 5 (rumqttc refuses shorter)".into(),
            ));
        }
        if self.mqtt.client_id.is_empty() || self.mqtt.client_id.len() > 64 {
            out.push(("mqtt.client_id", "must be 1 to 64 characters".into()));
        }
        if self.mqtt.host.is_empty() {
            out.push((
                "mqtt.host",
                "must name the broker, e.g. \"127.0.0.1\"".into(),
            ));
        }
        for (key, min, max) in [
            (
                "mqtt.reconnect_max_ms",
                self.mqtt.reconnect_min_ms,
                self.mqtt.reconnect_max_ms,
            ),
            (
                "store.retry_max_ms",
                self.store.retry_min_ms,
                self.store.retry_max_ms,
            ),
            (
                "notify.retry_max_ms",
                self.notify.retry_min_ms,
                self.notify.retry_max_ms,
            ),
        ] {
            if max < min {
                out.push((
                    key,
                    format!("must not be below the matching _min_ms ({min})"),
                ));
            }
        }
        if self.journal.max_bytes < 4 * self.journal.segment_bytes {
            out.push((
                "journal.max_bytes",
                format!(
                    "must be at least 4 × journal.segment_bytes ({}), so the budget can shed whole segments",
                    4 * self.journal.segment_bytes
                ),
            ));
        }
        match reqwest::Url::parse(&self.store.influx.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => out.push((
                "store.influx.url",
                "must be an http:// or https:// URL, e.g. \"http://127.0.0.1:8428\"".into(),
            )),
        }
        for (i, s) in self.serial.iter().enumerate() {
            if self.serial[..i]
                .iter()
                .any(|earlier| earlier.port == s.port)
            {
                out.push(("serial.port", format!("{} is listed twice", s.port)));
            }
            if s.port.is_empty() {
                out.push((
                    "serial.port",
                    "must name a device, e.g. \"/dev/ttyUSB0\"".into(),
                ));
            }
            if s.baud == 0 {
                out.push(("serial.baud", "must be greater than 0".into()));
            }
        }
        out
    }
}

/// The 1-based line of a byte offset in `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The 1-based line where a dotted key is written, if it is in the text.
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let (key, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            return Some(line_at(text, key.span().start));
        }
        match value.get_ref() {
            toml::de::DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("gridwatch.toml"))
    }

    #[test]
    fn an_empty_file_gives_working_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.mqtt.port, 1883);
        assert_eq!(c.store.backend, StoreBackend::Local);
        assert_eq!(c.alerts.language, Language::ZhCn);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let err = parse("[mqtt]\nhost = \"a\"\nprot = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = parse("[http]\nlisten = \"not an address\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn all_value_problems_are_reported_at_once_with_key_and_line() {
        let text = "[store]\nbatch_lines = 0\nretry_min_ms = 10\nretry_max_ms = 5\n\n[store.influx]\nurl = \"ftp://x\"\n";
        let Err(ConfigError::Invalid { problems, .. }) = parse(text) else {
            panic!("expected problems")
        };
        let got: Vec<(String, Option<usize>)> =
            problems.iter().map(|p| (p.key.clone(), p.line)).collect();
        assert_eq!(
            got,
            vec![
                ("store.batch_lines".to_owned(), Some(2)),
                ("store.retry_max_ms".to_owned(), Some(4)),
                ("store.influx.url".to_owned(), Some(7)),
            ]
        );
    }

    #[test]
    fn a_problem_with_a_default_value_has_no_line() {
        let Err(ConfigError::Invalid { problems, .. }) =
            parse("[journal]\nsegment_bytes = 1073741824\n")
        else {
            panic!("expected problems")
        };
        assert_eq!(problems[0].key, "journal.max_bytes");
        assert_eq!(problems[0].line, None);
    }

    #[test]
    fn serial_ports_are_listed_with_a_default_speed() {
        let c = parse("[[serial]]\nport = \"/dev/ttyUSB0\"\n\n[[serial]]\nport = \"/dev/ttyUSB1\"\nbaud = 9600\n")
            .unwrap();
        let got: Vec<(&str, u32)> = c.serial.iter().map(|s| (s.port.as_str(), s.baud)).collect();
        assert_eq!(got, [("/dev/ttyUSB0", 115_200), ("/dev/ttyUSB1", 9600)]);
        assert!(parse("").unwrap().serial.is_empty());
    }

    #[test]
    fn a_serial_port_without_a_name_or_speed_or_listed_twice_is_a_problem() {
        let Err(ConfigError::Invalid { problems, .. }) = parse(
            "[[serial]]\nport = \"\"\nbaud = 0\n[[serial]]\nport = \"/dev/ttyS0\"\n[[serial]]\nport = \"/dev/ttyS0\"\n",
        ) else {
            panic!("expected problems")
        };
        let got: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("serial.port", "must name a device, e.g. \"/dev/ttyUSB0\""),
                ("serial.baud", "must be greater than 0"),
                ("serial.port", "/dev/ttyS0 is listed twice"),
            ]
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = Secrets {
            mqtt_password: Some("hunter2".into()),
            ..Secrets::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn relative_tls_files_are_taken_from_the_config_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gridwatch.toml");
        std::fs::write(
            &path,
            "[mqtt.tls]\nenabled = true\nca_file = \"ca.pem\"\nclient_cert_file = \"/abs/gw.pem\"\n",
        )
        .unwrap();
        let tls = Config::load(&path).unwrap().mqtt.tls;
        assert_eq!(tls.ca_file, Some(dir.path().join("ca.pem")));
        assert_eq!(tls.client_cert_file, Some(PathBuf::from("/abs/gw.pem")));
        assert_eq!(tls.client_key_file, None);
    }

    #[test]
    fn an_unknown_key_under_mqtt_tls_is_an_error() {
        let e = parse("[mqtt.tls]\nenabled = true\ncafile = \"ca.pem\"\n").unwrap_err();
        assert!(e.to_string().contains("cafile"), "{e}");
    }
}
