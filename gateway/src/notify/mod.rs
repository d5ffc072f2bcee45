//! Stage 5: reach the grid worker. Every notification is retried until its receiver answered 2xx,
//! with the same idempotency id each time, so a receiver can drop the duplicates.
//!
//! [`Notifier`] is the handle the pipeline holds; [`NotifyDriver::run`] owns the deliveries in
//! flight and their retries. A delivery not yet accepted keeps its message in the journal
//! ([`outbox`]), so a gateway stopped or killed meanwhile sends it again after a restart.

pub mod email;
pub mod mqtt;
pub mod outbox;
pub mod robots;
pub mod signing;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::config::NotifyConfig;
use crate::metrics::events::{DeliveryFailed, DeliverySucceeded};
use crate::metrics::Metrics;
use signing::Signer;

/// One notification to one receiver.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Idempotency id, sent as `webhook-id` on every attempt.
    pub id: String,
    /// The receiver.
    pub url: String,
    /// The JSON body.
    pub body: Bytes,
    /// The journal position of the message that caused it.
    pub position: crate::journal::Position,
}

/// What the pipeline holds to send notifications.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Delivery>,
}

impl Notifier {
    /// Hands a delivery to the driver; false if the driver has stopped.
    pub fn send(&self, d: Delivery) -> bool {
        self.tx.send(d).is_ok()
    }
}

/// The loop that owns deliveries in flight.
pub struct NotifyDriver {
    rx: mpsc::UnboundedReceiver<Delivery>,
    client: reqwest::Client,
    signer: Option<Signer>,
    cfg: NotifyConfig,
    outbox: outbox::Outbox,
    metrics: Arc<Metrics>,
}

/// Builds a notifier; `signer` signs every delivery when set.
pub fn notifier(
    cfg: &NotifyConfig,
    signer: Option<Signer>,
    outbox: outbox::Outbox,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(Notifier, NotifyDriver)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(cfg.timeout_ms))
        .build()?;
    // Unbounded on purpose: alerts are few, and the pipeline must never wait on a slow receiver.
    let (tx, rx) = mpsc::unbounded_channel();
    Ok((
        Notifier { tx },
        NotifyDriver {
            rx,
            client,
            signer,
            cfg: cfg.clone(),
            outbox,
            metrics,
        },
    ))
}

impl NotifyDriver {
    /// Delivers until `shutdown` turns true or every handle is gone and nothing is in flight.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut inflight = JoinSet::new();
        let mut open = true;
        loop {
            tokio::select! {
                d = self.rx.recv(), if open => match d {
                    Some(d) => {
                        self.metrics.notify_pending.inc();
                        let backoff = Backoff::new(self.cfg.retry_min_ms, self.cfg.retry_max_ms);
                        inflight.spawn(deliver(d, self.client.clone(), self.signer.clone(), backoff, self.metrics.clone()));
                    }
                    None => open = false,
                },
                Some(done) = inflight.join_next() => {
                    self.metrics.notify_pending.dec();
                    match done {
                        Ok(position) => self.outbox.done(position),
                        Err(e) => tracing::error!("webhook delivery task failed: {e}"),
                    }
                }
                _ = shutdown.changed() => break,
                else => break,
            }
        }
        if !inflight.is_empty() {
            tracing::error!(
                abandoned = inflight.len(),
                "stopping with webhook deliveries not yet accepted; they go out again after a restart"
            );
        }
        inflight.shutdown().await;
    }
}

async fn deliver(
    d: Delivery,
    client: reqwest::Client,
    signer: Option<Signer>,
    mut backoff: Backoff,
    metrics: Arc<Metrics>,
) -> crate::journal::Position {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let now_s = crate::clock::now_ms() / 1000;
        match webhook::post(&client, signer.as_ref(), &d, now_s).await {
            Ok(()) => {
                DeliverySucceeded {
                    delivery_id: &d.id,
                    attempt,
                }
                .emit(&metrics);
                return d.position;
            }
            Err(e) => {
                let wait = backoff.next_wait();
                DeliveryFailed {
                    delivery_id: &d.id,
                    attempt,
                    error: &e,
                    retry_in: wait,
                }
                .emit(&metrics);
                tokio::time::sleep(wait).await;
            }
        }
    }
}
