//! The gateway's HTTP API as the runner uses it: list the alerts, and close one (with the API
//! token) once a run is over. Plain HTTP, each request bounded by [`TIMEOUT`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::check::SeenAlert;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request to the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The base URL is not `http://host:port`.
    #[error("the gateway's URL {0:?} is not http://host:port (HTTPS is not supported here)")]
    Url(String),
    /// The request did not get an answer.
    #[error("{url}: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The gateway answered with an error.
    #[error("{url}: {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// What it said.
        body: String,
    },
    /// The answer is not the alert list.
    #[error("{url}: not an alert list: {source}")]
    Json {
        /// The URL.
        url: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

#[derive(serde::Deserialize)]
struct AlertList {
    alerts: Vec<SeenAlert>,
}

/// A client of one gateway's HTTP API.
#[derive(Clone, Debug)]
pub struct GatewayApi {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl GatewayApi {
    /// A client of the gateway at `base` (`http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<Self, ApiError> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") || base.parse::<hyper::Uri>().is_err() {
            return Err(ApiError::Url(base.to_owned()));
        }
        Ok(Self {
            base: base.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Bytes, ApiError> {
        let url = request.uri().to_string();
        let failed = |reason: String| ApiError::Request {
            url: url.clone(),
            reason,
        };
        let answer = tokio::time::timeout(TIMEOUT, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| failed(e.to_string()))?
                .to_bytes();
            Ok::<_, ApiError>((status, body))
        })
        .await
        .map_err(|_| failed(format!("no answer within {} s", TIMEOUT.as_secs())))??;
        match answer {
            (status, body) if status.is_success() => Ok(body),
            (status, body) => Err(ApiError::Status {
                url,
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }

    /// `GET /api/v1/alerts`.
    pub async fn alerts(&self) -> Result<Vec<SeenAlert>, ApiError> {
        let url = format!("{}/api/v1/alerts", self.base);
        let request = Request::get(&url)
            .body(Full::default())
            .map_err(|_| ApiError::Url(url.clone()))?;
        let body = self.send(request).await?;
        serde_json::from_slice::<AlertList>(&body)
            .map(|l| l.alerts)
            .map_err(|source| ApiError::Json { url, source })
    }

    /// `POST /api/v1/alerts/{id}/close` as `by`, with `note`, using the API `token`.
    pub async fn close(&self, id: &str, token: &str, by: &str, note: &str) -> Result<(), ApiError> {
        let url = format!("{}/api/v1/alerts/{id}/close", self.base);
        let body = serde_json::json!({ "by": by, "note": note }).to_string();
        let request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| ApiError::Url(url.clone()))?;
        self.send(request).await.map(|_| ())
    }
}
