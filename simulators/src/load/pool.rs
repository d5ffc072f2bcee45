//! MQTT connections for simulated devices: many devices share one pooled connection (10,000
//! sockets would measure the machine's socket handling, not the gateway), and a device that must
//! leave a last will of its own gets its own connection.
//!
//! Each connection's rumqttc event loop is polled in its own task (it makes progress only while
//! polled); the task counts publishes written and PUBACKs received, times each PUBACK from the
//! moment its publish was written, and reconnects with a growing pause after a failure. Closing
//! waits for nothing: callers first wait until [`Connection::settled`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ClientError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::device::Outgoing as Message;
use super::report::Counters;

/// Where the broker is and how to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Login, if the broker wants one.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
}

/// Requests a connection's client queues before `publish` waits.
const REQUEST_QUEUE: usize = 1024;
/// QoS 1 publishes in flight per connection (rumqttc's default).
const INFLIGHT: u16 = 100;
/// The largest publish a connection sends: room for the oversize fault's payloads.
const MAX_OUTGOING_PACKET: usize = 1 << 20;
/// At most this many latency samples per connection (about 40 MB in all for ten connections).
const MAX_SAMPLES: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Run,
    Disconnect,
    Vanish,
}

/// What one connection's event loop counted.
#[derive(Debug, Default)]
struct Local {
    written: AtomicU64,
    acked: AtomicU64,
}

/// One MQTT connection and the task that polls it.
pub struct Connection {
    client: AsyncClient,
    qos: QoS,
    handed: AtomicU64,
    local: Arc<Local>,
    stop: watch::Sender<Stop>,
    driver: JoinHandle<Vec<u32>>,
}

impl Connection {
    /// Connects to `broker` as `client_id`, publishing at `qos`, leaving `will` if given; counts
    /// into `counters`. The connection is made in the background; publishes wait for it.
    pub fn open(
        broker: &Broker,
        client_id: &str,
        qos: QoS,
        will: Option<LastWill>,
        counters: Arc<Counters>,
    ) -> Self {
        let mut opts = MqttOptions::new(client_id, &broker.host, broker.port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_inflight(INFLIGHT)
            .set_max_packet_size(10 * 1024, MAX_OUTGOING_PACKET);
        if let (Some(user), Some(password)) = (&broker.username, &broker.password) {
            opts.set_credentials(user, password);
        }
        if let Some(will) = will {
            opts.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, REQUEST_QUEUE);
        // Each publish is its own write: without this, Nagle's algorithm holds small ones back
        // while an earlier one is unacknowledged, and the PUBACK times measure our socket.
        let mut network = eventloop.network_options();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let local = Arc::new(Local::default());
        let (stop, stopped) = watch::channel(Stop::Run);
        let driver = tokio::spawn(drive(
            eventloop,
            qos == QoS::AtLeastOnce,
            counters,
            local.clone(),
            stopped,
        ));
        Self {
            client,
            qos,
            handed: AtomicU64::new(0),
            local,
            stop,
            driver,
        }
    }

    /// Queues `message`; waits while the connection's queue is full.
    pub async fn publish(&self, message: Message) -> Result<(), ClientError> {
        // Status words go at QoS 1 whatever the run's QoS, retained, as a real node sends them
        // and as the broker sends its last will.
        let qos = if message.retain {
            QoS::AtLeastOnce
        } else {
            self.qos
        };
        self.client
            .publish(message.topic, qos, message.retain, message.payload)
            .await?;
        self.handed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether everything queued here was written and, at QoS 1, acknowledged.
    pub fn settled(&self) -> bool {
        let handed = self.handed.load(Ordering::Relaxed);
        self.local.written.load(Ordering::Relaxed) >= handed
            && (self.qos == QoS::AtMostOnce || self.local.acked.load(Ordering::Relaxed) >= handed)
    }

    /// Says goodbye to the broker (no last will) and returns the PUBACK latencies, in µs.
    pub async fn close(self) -> Vec<u32> {
        let _ = self.client.try_disconnect();
        let _ = self.stop.send(Stop::Disconnect);
        self.driver.await.unwrap_or_default()
    }

    /// Drops the socket without a goodbye, as a node losing power does: the broker publishes the
    /// last will. Returns the PUBACK latencies, in µs.
    pub async fn vanish(self) -> Vec<u32> {
        let _ = self.stop.send(Stop::Vanish);
        self.driver.await.unwrap_or_default()
    }
}

/// Polls `eventloop` until told to stop; returns the PUBACK latencies in µs.
async fn drive(
    mut eventloop: EventLoop,
    qos1: bool,
    counters: Arc<Counters>,
    local: Arc<Local>,
    mut stop: watch::Receiver<Stop>,
) -> Vec<u32> {
    let mut written_at: HashMap<u16, Instant> = HashMap::new();
    let mut samples = Vec::new();
    let mut pause = Duration::from_millis(100);
    let mut state = Stop::Run;
    loop {
        let polled = tokio::select! {
            changed = stop.changed(), if state == Stop::Run => {
                state = if changed.is_ok() { *stop.borrow() } else { Stop::Vanish };
                if state == Stop::Vanish {
                    return samples;
                }
                continue;
            }
            polled = eventloop.poll() => polled,
            // A goodbye that gets no answer ends anyway.
            _ = tokio::time::sleep(Duration::from_secs(5)), if state == Stop::Disconnect => return samples,
        };
        match polled {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                local.written.fetch_add(1, Ordering::Relaxed);
                if qos1 && pkid != 0 {
                    written_at.insert(pkid, Instant::now());
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                counters.acked.fetch_add(1, Ordering::Relaxed);
                local.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(at) = written_at.remove(&ack.pkid) {
                    if samples.len() < MAX_SAMPLES {
                        samples.push(u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => pause = Duration::from_millis(100),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return samples,
            Ok(_) => {}
            Err(_) if state == Stop::Disconnect => return samples,
            Err(e) => {
                counters.connection_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("broker connection: {e}; again in {pause:?}");
                written_at.clear();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}
