//! Builds every stage, wires the channels and owns shutdown: the one file that knows them all.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use crate::alerts::{Alert, AlertBook};
use crate::config::{Config, Secrets, StoreBackend};
use crate::ingest::mqtt::{self, Queues};
use crate::metrics::Metrics;
use crate::notify::{self, signing::Signer};
use crate::pipeline::Pipeline;
use crate::registry::Registry;
use crate::sinks::tsdb::writer::{self, Store, SHUTDOWN_GRACE};
use crate::sinks::tsdb::{Batcher, HttpStore, LocalStore};

/// A running gateway.
pub struct Gateway {
    http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    alert_changes: broadcast::Sender<Alert>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    /// Starts every stage; returns once the HTTP server is listening.
    pub async fn start(
        config: Config,
        registry: Registry,
        secrets: Secrets,
    ) -> anyhow::Result<Self> {
        // reqwest is built without a default crypto provider; pick ring once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let metrics = Arc::new(Metrics::new());
        let signer = match &secrets.webhook_secret {
            Some(s) => Some(Signer::from_secret(s)?),
            None => {
                tracing::warn!("GRIDWATCH_WEBHOOK_SECRET is not set: webhooks go out unsigned");
                None
            }
        };
        let store = match config.store.backend {
            StoreBackend::Local => Store::Local(
                LocalStore::open(&config.store.local.path, config.store.local.rotate_bytes)
                    .with_context(|| {
                        format!(
                            "store.local.path: cannot create {}",
                            config.store.local.path.display()
                        )
                    })?,
            ),
            StoreBackend::Influx => Store::Http(HttpStore::new(
                &config.store.influx,
                secrets.tsdb_token.clone(),
            )?),
        };
        tracing::info!(store = %store.describe(), "time-series store");
        let (sink, sink_driver) = writer::sink(store, &config.store, metrics.clone());
        let (notifier, notify_driver) = notify::notifier(&config.notify, signer, metrics.clone())?;
        let (acker, mqtt_driver) =
            mqtt::connect(&config.mqtt, secrets.mqtt_password.clone(), metrics.clone());
        let (events_tx, events_rx) = mpsc::channel(config.ingest.event_queue);
        let (telemetry_tx, telemetry_rx) = mpsc::channel(config.ingest.telemetry_queue);
        let alerts = Arc::new(RwLock::new(AlertBook::default()));
        let (alert_changes, _) = broadcast::channel(256);
        let pipeline = Pipeline {
            registry: Arc::new(registry),
            max_payload_bytes: config.ingest.max_payload_bytes,
            language: config.alerts.language,
            flush_interval: Duration::from_millis(config.store.flush_interval_ms),
            batcher: Batcher::new(config.store.batch_lines),
            sink,
            notifier,
            acker,
            alerts: alerts.clone(),
            alert_changes: alert_changes.clone(),
            metrics: metrics.clone(),
        };
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        let router = crate::http::router(crate::http::AppState {
            metrics: metrics.clone(),
            alerts,
        });

        let (shutdown, rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let queues = Queues {
            events: events_tx,
            telemetry: telemetry_tx,
        };
        tasks.spawn(mqtt_driver.run(queues, rx.clone()));
        tasks.spawn(pipeline.run(events_rx, telemetry_rx, rx.clone()));
        tasks.spawn(sink_driver.run(rx.clone()));
        tasks.spawn(notify_driver.run(rx.clone()));
        let mut http_rx = rx;
        tasks.spawn(async move {
            let stop = async move {
                let _ = http_rx.changed().await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!("HTTP server failed: {e}");
            }
        });
        tracing::info!(%http_addr, "gateway started");
        Ok(Self {
            http_addr,
            shutdown,
            tasks,
            alert_changes,
            metrics,
        })
    }

    /// The address the HTTP server listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Alert changes as they happen.
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<Alert> {
        self.alert_changes.subscribe()
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops every stage, giving the store a last chance at the open batches.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(2), all)
            .await
            .is_err()
        {
            tracing::warn!("some stages did not stop in time");
            self.tasks.shutdown().await;
        }
        tracing::info!("gateway stopped");
    }
}
