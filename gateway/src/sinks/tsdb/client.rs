//! A store that speaks the InfluxDB v2 write API (`POST /api/v2/write`): InfluxDB 2/3, VictoriaMetrics.
//!
//! Plain reqwest rather than the `influxdb2` crate: that crate streams and consumes each point as it
//! writes, so a failed batch cannot be sent again from the same bytes; it has no timeout of its
//! own; and it always gzips at level 9 (about a ninth of level 1's speed here). We keep the batch
//! bytes until a 2xx, set the timeouts, and gzip at the fastest level.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::{write::GzEncoder, Compression};

use crate::config::InfluxConfig;

use super::writer::WriteError;

/// An InfluxDB v2 write endpoint.
#[derive(Clone)]
pub struct HttpStore {
    client: reqwest::Client,
    write_url: reqwest::Url,
    token: Option<String>,
    gzip: bool,
}

impl HttpStore {
    /// A store at `cfg.url`; `token` is sent as `Authorization: Token …` when set.
    pub fn new(cfg: &InfluxConfig, token: Option<String>) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        let mut write_url = reqwest::Url::parse(&cfg.url)?.join("api/v2/write")?;
        write_url
            .query_pairs_mut()
            .append_pair("org", &cfg.org)
            .append_pair("bucket", &cfg.bucket)
            .append_pair("precision", "ms");
        Ok(Self {
            client,
            write_url,
            token,
            gzip: cfg.gzip,
        })
    }

    /// Where batches go, for logs.
    pub fn describe(&self) -> String {
        let mut u = self.write_url.clone();
        u.set_query(None);
        u.to_string()
    }

    /// Writes one batch. 429, 5xx, timeouts and refused connections are worth retrying; so are
    /// 401, 403 and 404, which mean the server or its credentials are misconfigured, not the data.
    /// Any other 4xx means the server will never take these bytes.
    pub async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        let mut req = self
            .client
            .post(self.write_url.clone())
            .header("content-type", "text/plain; charset=utf-8");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Token {t}"));
        }
        req = if self.gzip {
            let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
            enc.write_all(&body)
                .map_err(|e| WriteError::Retry(format!("gzip: {e}")))?;
            let gz = enc
                .finish()
                .map_err(|e| WriteError::Retry(format!("gzip: {e}")))?;
            req.header("content-encoding", "gzip").body(gz)
        } else {
            req.body(body)
        };
        let resp = req
            .send()
            .await
            .map_err(|e| WriteError::Retry(format!("{e:#}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let detail = format!(
            "HTTP {status}: {}",
            text.trim().chars().take(300).collect::<String>()
        );
        match status.as_u16() {
            401 | 403 | 404 | 408 | 429 => Err(WriteError::Retry(detail)),
            400..=499 => Err(WriteError::Rejected(detail)),
            _ => Err(WriteError::Retry(detail)),
        }
    }
}
