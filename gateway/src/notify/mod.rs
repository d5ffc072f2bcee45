//! Stage 5: reach the grid worker. Every notification is retried until its receiver accepted it,
//! with the same idempotency id each time, so a receiver can drop the duplicates.
//!
//! [`Notifier`] is the handle the pipeline holds; [`NotifyDriver::run`] owns the deliveries in
//! flight and their retries. A delivery is written to the case log before the pipeline hands it
//! over, made durable before it leaves, and every attempt is written down after it: a gateway
//! stopped or killed meanwhile sends what no receiver accepted again after a restart, and only
//! that.

pub mod email;
pub mod health;
pub mod mqtt;
pub mod robots;
pub mod signing;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::alerts::case_log::{Attempt, CaseLog};
use crate::backoff::Backoff;
use crate::config::NotifyConfig;
use crate::metrics::events::{CaseLogFailed, DeliveryFailed, DeliverySucceeded};
use crate::metrics::Metrics;
use email::Mailer;
use health::ChannelHealth;
use signing::Signer;

/// How a notification travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A signed JSON POST (Standard Webhooks): the worker's app.
    Webhook,
    /// A WeCom (企业微信) group robot.
    Wecom,
    /// A DingTalk (钉钉) group robot.
    Dingtalk,
    /// A Feishu (飞书) group robot.
    Feishu,
    /// E-mail over SMTP.
    Email,
}

impl Channel {
    /// The name in the registry, the case log, the API and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Wecom => "wecom",
            Channel::Dingtalk => "dingtalk",
            Channel::Feishu => "feishu",
            Channel::Email => "email",
        }
    }

    /// The group robot behind this channel, if it is one.
    pub fn robot(self) -> Option<robots::Robot> {
        match self {
            Channel::Wecom => Some(robots::Robot::WeCom),
            Channel::Dingtalk => Some(robots::Robot::DingTalk),
            Channel::Feishu => Some(robots::Robot::Feishu),
            Channel::Webhook | Channel::Email => None,
        }
    }
}

/// One notification to one receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Idempotency id, sent as `webhook-id` on every attempt.
    pub id: String,
    /// The alert it is about.
    pub alert_id: String,
    /// The worker it is for.
    pub worker: String,
    /// How it travels.
    pub channel: Channel,
    /// Where it goes: a URL, or an e-mail address.
    pub target: String,
    /// The first line for people (robots, the e-mail's subject); empty for a webhook.
    pub title: String,
    /// The JSON body of a webhook, or the text for people.
    pub body: String,
    /// The robot's signing secret; never written to the case log, looked up again after a
    /// restart.
    #[serde(skip)]
    pub secret: Option<String>,
    /// The phone numbers a group robot @-mentions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention: Vec<String>,
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

/// What sends one attempt on each channel.
struct Senders {
    client: reqwest::Client,
    signer: Option<Signer>,
    mailer: Option<Mailer>,
    health: ChannelHealth,
}

/// The loop that owns deliveries in flight.
pub struct NotifyDriver {
    rx: mpsc::UnboundedReceiver<Delivery>,
    senders: Arc<Senders>,
    cfg: NotifyConfig,
    cases: CaseLog,
    metrics: Arc<Metrics>,
}

/// Builds a notifier; `signer` signs every webhook when set, `mailer` sends the e-mails, and
/// `health` hears of every attempt.
pub fn notifier(
    cfg: &NotifyConfig,
    signer: Option<Signer>,
    mailer: Option<Mailer>,
    health: ChannelHealth,
    cases: CaseLog,
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
            senders: Arc::new(Senders {
                client,
                signer,
                mailer,
                health,
            }),
            cfg: cfg.clone(),
            cases,
            metrics,
        },
    ))
}

/// One attempt at `d`, on its channel; `Ok` once the receiver took it.
async fn attempt(d: &Delivery, s: &Senders) -> Result<(), String> {
    let now_ms = crate::clock::now_ms();
    if let Some(robot) = d.channel.robot() {
        let message = robots::RobotMessage {
            title: &d.title,
            text: &d.body,
            mention_mobiles: &d.mention,
        };
        // Built afresh each time: the signing robots refuse an old timestamp.
        let (url, body) = robots::request(robot, &d.target, d.secret.as_deref(), &message, now_ms)
            .map_err(|e| e.to_string())?;
        let resp = s
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{e:#}"))?;
        let status = resp.status().as_u16();
        let answer = resp.bytes().await.map_err(|e| format!("{e:#}"))?;
        return robots::accepted(robot, status, &answer);
    }
    match d.channel {
        Channel::Email => match &s.mailer {
            Some(m) => m.send(&d.target, &d.title, &d.body, &d.id).await,
            None => Err("no SMTP server: set [notify.smtp] in the config".into()),
        },
        _ => webhook::post(&s.client, s.signer.as_ref(), d, now_ms / 1000).await,
    }
}

/// How long a delivery waits for the case log to reach the disk before it leaves anyway.
const SYNC_WAIT: Duration = Duration::from_secs(2);

/// Makes the case log durable, off the async threads.
async fn sync(cases: &CaseLog, metrics: &Metrics) {
    let c = cases.clone();
    match tokio::task::spawn_blocking(move || c.sync()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => CaseLogFailed {
            operation: "sync",
            error: &e,
        }
        .emit(metrics),
        Err(e) => CaseLogFailed {
            operation: "sync",
            error: &e,
        }
        .emit(metrics),
    }
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
                        let mut batch = vec![d];
                        while let Ok(d) = self.rx.try_recv() {
                            batch.push(d);
                        }
                        // Durable before anything leaves: one fsync for all that came together. A
                        // disk that hangs must not hold back an SOS: after a while, send anyway.
                        if tokio::time::timeout(SYNC_WAIT, sync(&self.cases, &self.metrics)).await.is_err() {
                            CaseLogFailed {
                                operation: "sync",
                                error: &"the disk took over 2 s; sending without waiting for it",
                            }
                            .emit(&self.metrics);
                        }
                        for d in batch {
                            self.metrics.notify_pending.inc();
                            let backoff = Backoff::new(self.cfg.retry_min_ms, self.cfg.retry_max_ms);
                            inflight.spawn(deliver(d, self.senders.clone(), backoff, self.cases.clone(), self.metrics.clone()));
                        }
                    }
                    None => open = false,
                },
                Some(done) = inflight.join_next() => {
                    self.metrics.notify_pending.dec();
                    if let Err(e) = done {
                        tracing::error!("delivery task failed: {e}");
                    }
                }
                _ = shutdown.changed() => break,
                else => break,
            }
        }
        if !inflight.is_empty() {
            tracing::warn!(
                abandoned = inflight.len(),
                "stopping with deliveries not yet accepted; they go out again after a restart"
            );
        }
        inflight.shutdown().await;
    }
}

async fn deliver(
    d: Delivery,
    senders: Arc<Senders>,
    mut backoff: Backoff,
    cases: CaseLog,
    metrics: Arc<Metrics>,
) {
    let mut tries = 0;
    loop {
        tries += 1;
        let result = attempt(&d, &senders).await;
        let at_ms = crate::clock::now_ms();
        match &result {
            Ok(()) => senders.health.succeeded(&d.worker, d.channel),
            Err(e) => senders.health.failed(&d.worker, d.channel, at_ms, e),
        }
        let noted = cases.attempt(
            &d.id,
            Attempt {
                at_ms,
                error: result.as_ref().err().cloned(),
            },
        );
        if let Err(e) = noted {
            CaseLogFailed {
                operation: "write",
                error: &e,
            }
            .emit(&metrics);
        }
        match result {
            Ok(()) => {
                DeliverySucceeded {
                    delivery_id: &d.id,
                    channel: d.channel.as_str(),
                    attempt: tries,
                }
                .emit(&metrics);
                // So that a restart does not send it again.
                sync(&cases, &metrics).await;
                return;
            }
            Err(e) => {
                let wait = backoff.next_wait();
                DeliveryFailed {
                    delivery_id: &d.id,
                    channel: d.channel.as_str(),
                    attempt: tries,
                    error: &e,
                    retry_in: wait,
                }
                .emit(&metrics);
                tokio::time::sleep(wait).await;
            }
        }
    }
}
