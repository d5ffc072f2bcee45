//! MQTT ingest with rumqttc, set up so that nothing is acknowledged before it is handled.
//!
//! - Fixed client id and `clean_session = false`: the broker keeps the gateway's subscriptions
//!   and queues its QoS 1 messages while it is away.
//! - Manual acks: rumqttc would otherwise PUBACK before our code runs. The pipeline acks through
//!   [`Acker`] once a message is handled; unacked messages are redelivered after a reconnect.
//! - The event loop is polled only here, in its own task. When the pipeline's queue is full it
//!   waits for room for QoS 1 messages (the broker keeps the rest and its in-flight limit is the
//!   flow control) and sheds QoS 0 telemetry, counted. Acks reach the driver through an unbounded
//!   queue ([`Acker`]), so the pipeline never waits on the event loop while the event loop waits
//!   on the pipeline, and the driver writes them in batches, in arrival order ([`super::ack_order`]).
//! - Subscriptions are renewed on every ConnAck; reconnects back off exponentially.
//! - rumqttc's own packet limit is set far above `ingest.max_payload_bytes`: a packet over its
//!   limit is a connection error, and a redelivered one would then break every reconnect. Our
//!   limit turns it into one counted `oversized` rejection instead.
//! - With `[mqtt.tls]` on, the same connection runs over rustls ([`super::tls`]); the worker
//!   apps' actions and the alerts published to them share it.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, PubAck,
    Publish, QoS, SubscribeFilter, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch};

use super::ack_order::AckOrder;
use crate::backoff::Backoff;
use crate::config::MqttConfig;
use crate::decode::topic::{channel_hint, Channel};
use crate::metrics::events::{MessageDropped, MessageReceived, MqttConnected, MqttConnectionError};
use crate::metrics::Metrics;

/// The topic filters the gateway subscribes to: a handful of wildcards, never one per device.
pub const SUBSCRIPTIONS: [&str; 3] = ["gw/v1/+/+/event", "gw/v1/+/+/telemetry", "gw/v1/+/+/status"];

/// rumqttc's packet limit: far above any payload we accept (see the module docs).
const MAX_PACKET_BYTES: usize = 1 << 20;

/// A message taken from the broker, waiting to be handled and then acknowledged.
#[derive(Debug)]
pub struct Incoming {
    /// The publish, kept whole: its packet id is what the ack needs.
    pub publish: Publish,
    /// When the gateway took it, in milliseconds since the epoch.
    pub received_ms: u64,
}

/// Acknowledges handled messages to the broker, without ever making the caller wait.
///
/// The acks go to the [`MqttDriver`], which writes them straight into the connection's buffer,
/// many per write. (Through rumqttc's request queue every ack is its own write syscall and its own
/// event-loop turn, which capped the gateway well below what the connection can carry.) The
/// pipeline must not wait on the event loop: the event loop may itself wait for room in the
/// pipeline's queue.
#[derive(Clone)]
pub struct Acker {
    tx: mpsc::UnboundedSender<Publish>,
}

impl Acker {
    /// Queues the PUBACK for a handled message (nothing goes out for QoS 0).
    pub fn ack(&self, publish: Publish) {
        // Fails only once the driver stopped; the broker then redelivers after a reconnect.
        let _ = self.tx.send(publish);
    }
}

/// Sends commands to devices on their `cmd` topic, such as "help is coming" when a worker takes
/// an SOS. Best effort at QoS 1: a command queued while the broker connection is down goes out
/// when it is back, but not after a gateway restart.
#[derive(Clone)]
pub struct Commander {
    client: AsyncClient,
}

impl Commander {
    /// Queues `payload` for `gw/v1/{community}/{device}/cmd`; false if the queue is full.
    pub fn send(&self, community: &str, device: &str, payload: Vec<u8>) -> bool {
        self.publish(format!("gw/v1/{community}/{device}/cmd"), payload)
    }

    /// Queues `payload` for `topic` at QoS 1; false if the queue is full.
    pub fn publish(&self, topic: String, payload: Vec<u8>) -> bool {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .is_ok()
    }
}

/// The most acks written in one go.
const ACK_BATCH: usize = 4096;

/// Where the driver puts messages: events and telemetry on separate queues.
pub struct Queues {
    /// Life-safety and other events; the driver waits for room, so the broker keeps the rest.
    pub events: mpsc::Sender<Incoming>,
    /// Telemetry and status; shed when full.
    pub telemetry: mpsc::Sender<Incoming>,
    /// Worker apps' actions on alerts (see [`super::actions`]): the topic filter, and where
    /// they go. The driver waits for room, as for events.
    pub actions: (String, mpsc::Sender<Incoming>),
}

/// The loop that owns the broker connection.
pub struct MqttDriver {
    acks: mpsc::UnboundedReceiver<Publish>,
    order: AckOrder,
    client: AsyncClient,
    eventloop: EventLoop,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

/// Builds the broker connection, over TLS when `tls` is given ([`super::tls::load`]); nothing
/// happens until [`MqttDriver::run`] is polled.
pub fn connect(
    cfg: &MqttConfig,
    password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    metrics: Arc<Metrics>,
) -> (Acker, Commander, MqttDriver) {
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_secs))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    if let Some(user) = &cfg.username {
        opts.set_credentials(user, password.unwrap_or_default());
    }
    if let Some(tls) = tls {
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    let (client, eventloop) = AsyncClient::new(opts, 1024);
    let (tx, acks) = mpsc::unbounded_channel();
    let commander = Commander {
        client: client.clone(),
    };
    let driver = MqttDriver {
        acks,
        order: AckOrder::default(),
        client,
        eventloop,
        backoff: Backoff::new(cfg.reconnect_min_ms, cfg.reconnect_max_ms),
        metrics,
    };
    (Acker { tx }, commander, driver)
}

impl MqttDriver {
    /// Polls the connection until `shutdown` turns true, routing publishes into `queues`.
    pub async fn run(mut self, queues: Queues, mut shutdown: watch::Receiver<bool>) {
        loop {
            let event = tokio::select! {
                e = self.eventloop.poll() => e,
                Some(first) = self.acks.recv() => {
                    self.write_acks(first).await;
                    continue;
                }
                _ = shutdown.changed() => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    self.order.reset();
                    self.backoff.reset();
                    MqttConnected {
                        session_present: ack.session_present,
                    }
                    .emit(&self.metrics);
                    let filters = SUBSCRIPTIONS
                        .iter()
                        .map(|f| f.to_string())
                        .chain([queues.actions.0.clone()])
                        .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce));
                    if let Err(e) = self.client.try_subscribe_many(filters) {
                        tracing::error!("cannot queue subscriptions: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if publish.qos == QoS::AtLeastOnce {
                        self.order.arrived(publish.pkid);
                    }
                    if !self.route(publish, &queues).await {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let wait = self.backoff.next_wait();
                    MqttConnectionError {
                        error: &e,
                        reason: failure_reason(&e),
                        retry_in: wait,
                    }
                    .emit(&self.metrics);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            }
        }
        if let Ok(first) = self.acks.try_recv() {
            self.write_acks(first).await;
        }
        self.metrics.mqtt_connected.set(0);
        self.disconnect().await;
    }

    /// Writes `first` and every ack waiting behind it, then flushes once.
    async fn write_acks(&mut self, first: Publish) {
        let mut batch = vec![first];
        while batch.len() < ACK_BATCH {
            match self.acks.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // Subscriptions are QoS 1, so the broker delivers nothing that needs a PUBREC.
        let ready: Vec<u16> = batch
            .iter()
            .filter(|p| p.qos == QoS::AtLeastOnce)
            .flat_map(|p| self.order.finished(p.pkid))
            .collect();
        // Not connected: the broker sends these messages again after the reconnect.
        let Some(network) = self.eventloop.network.as_mut() else {
            return;
        };
        if ready.is_empty() {
            return;
        }
        for pkid in ready {
            if let Err(e) = network.write(Packet::PubAck(PubAck::new(pkid))).await {
                return tracing::debug!("acks not written: {e}");
            }
        }
        if let Err(e) = network.flush().await {
            tracing::debug!("acks not flushed: {e}");
        }
    }

    /// Says goodbye to the broker, so it does not publish a will or wait out the keep-alive.
    async fn disconnect(&mut self) {
        if self.client.try_disconnect().is_err() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(event) = self.eventloop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Puts one publish on its queue; false when the pipeline has stopped.
    async fn route(&mut self, publish: Publish, queues: &Queues) -> bool {
        let incoming = Incoming {
            publish,
            received_ms: crate::clock::now_ms(),
        };
        if channel_hint(&incoming.publish.topic) == Some(Channel::Event) {
            return queues.events.send(incoming).await.is_ok();
        }
        if incoming.publish.topic.ends_with("/act") {
            return queues.actions.1.send(incoming).await.is_ok();
        }
        if incoming.publish.qos != QoS::AtMostOnce {
            // The broker holds what we have not acknowledged: waiting here loses nothing, and its
            // in-flight limit is the flow control. Dropping would lose a message it counts as sent.
            return queues.telemetry.send(incoming).await.is_ok();
        }
        match queues.telemetry.try_send(incoming) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(incoming)) => {
                let channel = channel_label(&incoming.publish.topic);
                MessageReceived { channel }.emit(&self.metrics);
                MessageDropped {
                    reason: "telemetry_queue_full",
                    topic: &incoming.publish.topic,
                }
                .emit(&self.metrics);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Every `reason` label of `gridwatch_mqtt_connection_errors_total`.
pub const FAILURE_REASONS: [&str; 5] = ["tls", "not_authorized", "refused", "network", "protocol"];

/// Why a connection attempt failed, as a `reason` label: `tls` (handshake, certificate, name),
/// `not_authorized` (the broker refused the login), `refused` (other CONNACK refusals),
/// `network` (socket errors and timeouts) or `protocol`.
pub fn failure_reason(e: &ConnectionError) -> &'static str {
    match e {
        ConnectionError::Tls(_) => "tls",
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
        ) => "not_authorized",
        ConnectionError::ConnectionRefused(_) => "refused",
        ConnectionError::Io(_)
        | ConnectionError::NetworkTimeout
        | ConnectionError::FlushTimeout => "network",
        _ => "protocol",
    }
}

/// The `channel` label of a topic in the received/accepted counters.
pub fn channel_label(topic: &str) -> &'static str {
    channel_hint(topic).map_or("other", Channel::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_labelled_by_what_went_wrong() {
        let certificate = std::io::Error::new(std::io::ErrorKind::InvalidData, "UnknownIssuer");
        let cases = [
            (
                ConnectionError::Tls(rumqttc::TlsError::Io(certificate)),
                "tls",
            ),
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized),
                "not_authorized",
            ),
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword),
                "not_authorized",
            ),
            (
                ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId),
                "refused",
            ),
            (
                ConnectionError::Io(std::io::ErrorKind::ConnectionRefused.into()),
                "network",
            ),
            (ConnectionError::NetworkTimeout, "network"),
            (ConnectionError::RequestsDone, "protocol"),
        ];
        for (error, reason) in cases {
            assert_eq!(failure_reason(&error), reason, "{error}");
            assert!(FAILURE_REASONS.contains(&reason));
        }
    }
}
