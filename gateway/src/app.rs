//! Builds every stage, wires the channels and owns shutdown: the one file that knows them all.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use crate::alerts::case_log::CaseLog;
use crate::alerts::{Alert, AlertBook, Damping};
use crate::backoff::Backoff;
use crate::config::{Config, Secrets, StoreBackend};
use crate::ingest::mqtt::{self, Queues};
use crate::journal::{Journal, JournalHandle, Limits};
use crate::metrics::events::{CaseLogFailed, JournalRecovered};
use crate::metrics::Metrics;
use crate::notify::{self, email::Mailer, health::ChannelHealth, signing::Signer};
use crate::pipeline::{Pipeline, RULES_CURSOR};
use crate::registry::Registry;
use crate::sinks::tsdb::writer::{self, Store};
use crate::sinks::tsdb::{HttpStore, LocalStore};

/// Picks ring as the process's TLS crypto provider; reqwest is built without a default one.
/// Any HTTP client in the process needs this first; calling it again does nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

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
        install_crypto_provider();
        let tls = crate::ingest::tls::load(&config.mqtt.tls)?;
        let metrics = Arc::new(Metrics::new());
        let signer = match &secrets.webhook_secret {
            Some(s) => Some(Signer::from_secret(s)?),
            None => {
                tracing::warn!("GRIDWATCH_WEBHOOK_SECRET is not set: webhooks go out unsigned");
                None
            }
        };
        let mailer = config
            .notify
            .smtp
            .as_ref()
            .map(|smtp| Mailer::new(smtp, secrets.smtp_password.clone()))
            .transpose()
            .context("notify.smtp")?;
        let store = match config.store.backend {
            StoreBackend::Local => {
                Store::Local(LocalStore::open(&config.store.local).with_context(|| {
                    format!(
                        "store.local.path: cannot create {}",
                        config.store.local.path.display()
                    )
                })?)
            }
            StoreBackend::Influx => Store::Http(HttpStore::new(
                &config.store.influx,
                secrets.tsdb_token.clone(),
            )?),
        };
        tracing::info!(store = %store.describe(), "time-series store");
        let limits = Limits {
            segment_bytes: config.journal.segment_bytes,
            max_bytes: config.journal.max_bytes,
        };
        let journal_dir = config.journal.path.clone();
        let (mut journal, recovery) =
            tokio::task::spawn_blocking(move || Journal::open(&journal_dir, limits))
                .await?
                .with_context(|| {
                    format!(
                        "journal.path: cannot open the journal in {}",
                        config.journal.path.display()
                    )
                })?;
        JournalRecovered {
            recovery: &recovery,
        }
        .emit(&metrics);
        journal.register(writer::CURSOR);
        journal.register(RULES_CURSOR);
        let rule_set = crate::rules::load(&config.rules, registry.catalogue())?;
        let mut engine = crate::rules::engine(rule_set, &registry, crate::clock::now_ms());
        let saved = crate::rules::state::load(journal.dir()).unwrap_or_else(|e| {
            tracing::error!(
                "cannot read {}: {e}; the rules start afresh",
                crate::rules::state::path(journal.dir()).display()
            );
            None
        });
        let keys = match &config.ingest.device_keys_path {
            Some(path) => crate::decode::guard::Keys::load(path)
                .map_err(anyhow::Error::msg)
                .context("ingest.device_keys_path")?,
            None => crate::decode::guard::Keys::default(),
        };
        tracing::info!(
            devices_with_keys = keys.len(),
            require_mac = config.ingest.require_mac,
            "device authentication"
        );
        let mut saved = saved;
        // Marks saved past the journal's end count messages staged but lost in a crash, which
        // the broker sends again: start from the journal's records alone then (it holds every
        // message since the last save), rather than refuse those as replays.
        let marks = saved
            .as_mut()
            .filter(|s| s.position() <= journal.end())
            .map(|s| std::mem::take(&mut s.seq))
            .unwrap_or_default();
        let guard = crate::decode::guard::Guard::new(config.ingest.limits(), keys, marks);
        let resume_from = saved.map(|mut saved| {
            let restored = engine.restore(&saved.engine);
            // Records staged but lost in a crash are not in the journal: resume at its end, and
            // say so in the file, so that records written from there on are not skipped later.
            let end = journal.end();
            if saved.position() > end {
                saved.segment = end.segment;
                saved.offset = end.offset;
                let written = crate::rules::state::write(journal.dir(), &saved)
                    .and_then(|f| crate::rules::state::commit(journal.dir(), f));
                if let Err(e) = written {
                    tracing::error!("cannot correct the saved rule state's position: {e}");
                }
            }
            let position = saved.position();
            engine.set_silences(saved.silences);
            tracing::info!(restored, "rule engine state restored");
            position
        });
        tracing::info!(rules = engine.rules().len(), "alert rules loaded");
        crate::registry::release_free_memory();
        let utc_offset_min = engine.utc_offset_min();
        let engine = Arc::new(Mutex::new(engine));
        metrics.journal_bytes.set(journal.disk_bytes() as i64);
        let (cases, recovered) = CaseLog::open(journal.dir()).context("journal.path")?;
        if recovered.skipped_lines > 0 {
            CaseLogFailed {
                operation: "recover",
                error: &format_args!(
                    "{} torn or corrupt line(s) at the end, moved aside",
                    recovered.skipped_lines
                ),
            }
            .emit(&metrics);
        }
        tracing::info!(
            alerts = recovered.alerts.len(),
            unsent = recovered.pending.len(),
            "case log read"
        );
        let journal = JournalHandle::new(journal);
        let catalogue = registry.catalogue().clone();
        let registry = Arc::new(registry);
        let sink_driver = writer::sink(
            store,
            &config.store,
            journal.clone(),
            registry.clone(),
            metrics.clone(),
        );
        let health = ChannelHealth::default();
        let (notifier, notify_driver) = notify::notifier(
            &config.notify,
            signer,
            mailer,
            health.clone(),
            cases.clone(),
            metrics.clone(),
        )?;
        // What no receiver accepted before the restart goes out again, with the same ids; the
        // robots' signing secrets are not in the case log.
        for mut d in recovered.pending {
            d.secret = registry
                .staff()
                .worker(&d.worker)
                .and_then(|w| w.secret(d.channel))
                .map(str::to_owned);
            notifier.send(d);
        }
        let (acker, commander, mqtt_driver) = mqtt::connect(
            &config.mqtt,
            secrets.mqtt_password.clone(),
            tls,
            metrics.clone(),
        );
        let (events_tx, events_rx) = mpsc::channel(config.ingest.event_queue);
        let (telemetry_tx, telemetry_rx) = mpsc::channel(config.ingest.telemetry_queue);
        let alerts = Arc::new(RwLock::new(AlertBook::restore(
            recovered.alerts,
            Damping {
                storm_threshold: config.alerts.storm_threshold,
                storm_window_ms: u64::from(config.alerts.storm_window_secs) * 1000,
                flap_limit: config.alerts.flap_limit,
                flap_window_ms: u64::from(config.alerts.flap_window_mins) * 60_000,
            },
        )));
        let (alert_changes, _) = broadcast::channel(256);
        let (ticker, _) = broadcast::channel(256);
        let occupancy = Arc::default();
        let http_registry = registry.clone();
        let community = registry.community.clone();
        let watched_registry = registry.clone();
        let pipeline = Pipeline {
            registry,
            max_payload_bytes: config.ingest.max_payload_bytes,
            guard,
            language: config.alerts.language,
            utc_offset_min,
            max_group: config.journal.max_group,
            journal,
            cases: cases.clone(),
            keep_ended: Duration::from_secs(u64::from(config.alerts.keep_ended_days) * 86_400),
            health,
            warn_ahead: Duration::from_secs(u64::from(config.alerts.warn_ahead_mins) * 60),
            channel_failing_after: Duration::from_secs(u64::from(
                config.alerts.channel_failing_after_secs,
            )),
            notifier,
            acker: acker.clone(),
            alerts: alerts.clone(),
            alert_changes: alert_changes.clone(),
            ticker: ticker.clone(),
            occupancy: Arc::clone(&occupancy),
            retry: Backoff::new(config.store.retry_min_ms, config.store.retry_max_ms),
            engine: engine.clone(),
            resume_from,
            save_every: Duration::from_secs(config.rules.save_every_secs),
            metrics: metrics.clone(),
        };
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        let desk = crate::alerts::desk::Desk {
            alerts: alerts.clone(),
            cases: cases.clone(),
            engine: engine.clone(),
            commander: commander.clone(),
            catalogue: Arc::clone(&catalogue),
            alert_changes: alert_changes.clone(),
            metrics: metrics.clone(),
        };
        let (shutdown, rx) = watch::channel(false);
        let router = crate::http::router(crate::http::AppState {
            metrics: metrics.clone(),
            alerts: alerts.clone(),
            catalogue,
            registry: http_registry,
            engine: engine.clone(),
            desk: desk.clone(),
            api_token: secrets.api_token.clone(),
            ticker,
            occupancy,
            shutdown: rx.clone(),
        });

        let mut tasks = JoinSet::new();
        let (actions_tx, actions_rx) = mpsc::channel(64);
        tasks.spawn(crate::ingest::actions::serve(
            actions_rx,
            crate::ingest::actions::Front {
                desk,
                acker,
                commander: commander.clone(),
                api_token: secrets.api_token.clone(),
                metrics: metrics.clone(),
            },
            rx.clone(),
        ));
        let serial_queues = crate::ingest::serial::Queues {
            events: events_tx.clone(),
            telemetry: telemetry_tx.clone(),
        };
        let queues = Queues {
            actions: (crate::ingest::actions::subscription(&community), actions_tx),
            events: events_tx,
            telemetry: telemetry_tx,
        };
        for port in &config.serial {
            let serial = crate::ingest::serial::driver(port, &community, metrics.clone());
            tasks.spawn(serial.run(serial_queues.clone(), rx.clone()));
        }
        tasks.spawn(mqtt_driver.run(queues, rx.clone()));
        tasks.spawn(pipeline.run(events_rx, telemetry_rx, rx.clone()));
        tasks.spawn(sink_driver.run(rx.clone()));
        tasks.spawn(notify_driver.run(rx.clone()));
        if config.registry.watch_secs > 0 {
            tasks.spawn(crate::registry::watch(
                watched_registry,
                config.registry.path.clone(),
                Duration::from_secs(config.registry.watch_secs),
                metrics.clone(),
                rx.clone(),
            ));
        }
        tasks.spawn(crate::notify::mqtt::publish_changes(
            alert_changes.subscribe(),
            commander,
            rx.clone(),
        ));
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

    /// Stops every stage; what the store has not taken stays in the journal for the next start.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err()
        {
            tracing::warn!("some stages did not stop in time");
            self.tasks.shutdown().await;
        }
        tracing::info!("gateway stopped");
    }
}
