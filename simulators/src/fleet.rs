//! The simulation on real time, over MQTT: the I/O shell around [`Simulation`].
//!
//! Every virtual device has its own MQTT connection, as a real node does: client id = device id,
//! a last will of `offline` (retained) on its `status` topic, a subscription to its `cmd` topic.
//! Simulated time runs `speed` times faster than real time; every device's wall clock is set
//! from the real clock at each step, so the `ts` of what it sends stays true (the gateway refuses
//! timestamps far from its own clock) however fast the simulation runs.
//!
//! Events go out at QoS 1 and so does telemetry; `status` is retained. A publish the MQTT
//! client's queue refuses is counted as lost in [`FleetStats`]. While a device's connection is
//! down its firmware is told so (its link is down), keeps its events and retries them.
//!
//! [`fleet`] returns a [`FleetHandle`], which starts incidents while it runs, and the [`Fleet`]
//! itself, whose [`Fleet::run`] the caller awaits (or spawns) until its `stop` resolves.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{FuturesUnordered, StreamExt};
use gridwatch_firmware::node::Channel;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::devices::{Incident, STEP_MS};
use crate::sim::{Happening, SimError, Simulation};

/// The MQTT broker the devices connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Port (plain MQTT).
    pub port: u16,
}

/// What a running fleet counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetStats {
    /// Messages handed to the MQTT clients.
    pub published: u64,
    /// Messages an MQTT client's queue refused.
    pub lost: u64,
    /// Times a device's connection was lost.
    pub disconnects: u64,
}

/// A planned incident began or ended, with the simulated and the real time it did.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// What happened, by the incident's number.
    pub happening: Happening,
    /// Simulated ms since the start.
    pub sim_ms: u64,
    /// When, in real time.
    pub at: Instant,
}

enum Command {
    Start {
        device: String,
        incident: Incident,
        lasts_ms: Option<u64>,
        done: tokio::sync::oneshot::Sender<Result<usize, SimError>>,
    },
}

/// Starts incidents in a running [`Fleet`], and tells its simulated time.
#[derive(Clone, Debug)]
pub struct FleetHandle {
    tx: mpsc::UnboundedSender<Command>,
    sim_ms: Arc<AtomicU64>,
}

/// Why an incident could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The simulation refused it.
    #[error(transparent)]
    Refused(#[from] SimError),
    /// The fleet is not running any more.
    #[error("the fleet has stopped")]
    Stopped,
}

impl FleetHandle {
    /// The fleet's simulated time, in ms since its start: how far the simulation has got, which
    /// falls behind `speed` × real time when the machine cannot keep up.
    pub fn sim_ms(&self) -> u64 {
        self.sim_ms.load(Ordering::Relaxed)
    }

    /// Starts `incident` at `device` now, lasting `lasts` of simulated time (`None`: for the
    /// rest of the run); returns its number.
    pub async fn start(
        &self,
        device: &str,
        incident: Incident,
        lasts: Option<Duration>,
    ) -> Result<usize, StartError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Command::Start {
                device: device.to_owned(),
                incident,
                lasts_ms: lasts.map(|d| d.as_millis() as u64),
                done,
            })
            .map_err(|_| StartError::Stopped)?;
        Ok(answer.await.map_err(|_| StartError::Stopped)??)
    }
}

/// A simulation with an MQTT connection per device, ready to run.
pub struct Fleet {
    sim: Simulation,
    sim_ms: Arc<AtomicU64>,
    broker: Broker,
    speed: f64,
    commands: mpsc::UnboundedReceiver<Command>,
    reports: Option<mpsc::UnboundedSender<Report>>,
}

/// How often the fleet catches its simulation up with real time.
const TICK: Duration = Duration::from_millis(10);
/// The most simulated time one tick runs, so the connections and the commands get their turn
/// even when the simulation has fallen behind.
const MOST_PER_TICK_MS: u64 = 1_000;
/// The fastest a fleet runs: one tick's worth of simulated time per tick.
pub const MAX_SPEED: f64 = (MOST_PER_TICK_MS / TICK.as_millis() as u64) as f64;

/// The fleet of `sim`'s devices at `broker`, its simulated time running `speed` times faster
/// than real time (from 0.01 to [`MAX_SPEED`]).
pub fn fleet(sim: Simulation, broker: Broker, speed: f64) -> (FleetHandle, Fleet) {
    let (tx, commands) = mpsc::unbounded_channel();
    let sim_ms = Arc::new(AtomicU64::new(sim.now_ms()));
    let fleet = Fleet {
        sim,
        sim_ms: sim_ms.clone(),
        broker,
        speed: speed.clamp(0.01, MAX_SPEED),
        commands,
        reports: None,
    };
    (FleetHandle { tx, sim_ms }, fleet)
}

enum LinkEvent {
    Up(usize),
    Down(usize),
    Cmd(usize, Vec<u8>),
}

type Connection = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The wall clock, in ms since the Unix epoch: the one clock the simulation's `ts` come from.
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn topic(community: &str, device: &str, channel: Channel) -> String {
    let leaf = match channel {
        Channel::Telemetry => "telemetry",
        Channel::Event => "event",
        Channel::Status => "status",
    };
    format!("gw/v1/{community}/{device}/{leaf}")
}

/// Drives one device's MQTT connection: reports it up and down, subscribes to its `cmd` topic
/// on every connect (the session is clean), and passes the commands on.
async fn connection(
    i: usize,
    client: AsyncClient,
    mut events: EventLoop,
    cmd_topic: String,
    tx: mpsc::UnboundedSender<LinkEvent>,
) {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Err(e) = client.try_subscribe(cmd_topic.as_str(), QoS::AtLeastOnce) {
                    tracing::warn!("simulated device cannot subscribe to {cmd_topic}: {e}");
                }
                let _ = tx.send(LinkEvent::Up(i));
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                let _ = tx.send(LinkEvent::Cmd(i, p.payload.to_vec()));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("simulated device connection: {e}");
                let _ = tx.send(LinkEvent::Down(i));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Fleet {
    /// Reports every incident that begins or ends to `tx`.
    pub fn report_to(mut self, tx: mpsc::UnboundedSender<Report>) -> Self {
        self.reports = Some(tx);
        self
    }

    /// Connects every device and runs the simulation on real time until `stop` resolves.
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> FleetStats {
        let mut stats = FleetStats::default();
        let community = self.sim.community().to_owned();
        let (link_tx, mut links) = mpsc::unbounded_channel();
        let mut clients = Vec::with_capacity(self.sim.len());
        let mut topics = Vec::with_capacity(self.sim.len());
        let connections: FuturesUnordered<Connection> = FuturesUnordered::new();
        for i in 0..self.sim.len() {
            let id = self.sim.device(i).0.to_owned();
            let status = topic(&community, &id, Channel::Status);
            let mut opts = MqttOptions::new(id.as_str(), &self.broker.host, self.broker.port);
            opts.set_keep_alive(Duration::from_secs(30));
            opts.set_last_will(LastWill::new(&status, "offline", QoS::AtLeastOnce, true));
            let (client, events) = AsyncClient::new(opts, 256);
            let cmd = format!("gw/v1/{community}/{id}/cmd");
            connections.push(Box::pin(connection(
                i,
                client.clone(),
                events,
                cmd,
                link_tx.clone(),
            )));
            clients.push(client);
            topics.push(
                [Channel::Telemetry, Channel::Event, Channel::Status]
                    .map(|c| topic(&community, &id, c)),
            );
        }
        let mut connections = connections;
        tokio::pin!(stop);
        let started = Instant::now();
        let sim_start = self.sim.now_ms();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = connections.next(), if !connections.is_empty() => {}
                Some(event) = links.recv() => match event {
                    LinkEvent::Up(i) => self.sim.link(i, true),
                    LinkEvent::Down(i) => {
                        stats.disconnects += 1;
                        self.sim.link(i, false);
                    }
                    LinkEvent::Cmd(i, payload) => self.sim.command(i, payload),
                },
                Some(command) = self.commands.recv() => match command {
                    Command::Start { device, incident, lasts_ms, done } => {
                        let at = self.sim.now_ms();
                        let _ = done.send(self.sim.plan(&device, at, incident, lasts_ms));
                    }
                },
                _ = tick.tick() => {
                    let target = sim_start
                        + (started.elapsed().as_secs_f64() * 1000.0 * self.speed) as u64;
                    for _ in 0..(MOST_PER_TICK_MS / STEP_MS) {
                        if self.sim.now_ms() + STEP_MS > target {
                            break;
                        }
                        let happened = self.sim.step(wall_ms());
                        self.sim_ms.store(self.sim.now_ms(), Ordering::Relaxed);
                        let (sim_ms, at) = (self.sim.now_ms(), Instant::now());
                        if let Some(tx) = &self.reports {
                            for happening in happened {
                                let _ = tx.send(Report { happening, sim_ms, at });
                            }
                        }
                        self.sim.take_sent(|i, channel, payload| {
                            let (qos, retain, t) = match channel {
                                Channel::Telemetry => (QoS::AtLeastOnce, false, &topics[i][0]),
                                Channel::Event => (QoS::AtLeastOnce, false, &topics[i][1]),
                                Channel::Status => (QoS::AtLeastOnce, true, &topics[i][2]),
                            };
                            match clients[i].try_publish(t.as_str(), qos, retain, payload) {
                                Ok(()) => stats.published += 1,
                                Err(e) => {
                                    stats.lost += 1;
                                    tracing::warn!("simulated device lost a message to {t}: {e}");
                                }
                            }
                        });
                    }
                }
            }
        }
        for client in &clients {
            let _ = client.try_disconnect();
        }
        // A moment for the disconnects to go out, so the broker does not send the last wills.
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while connections.next().await.is_some() {}
        })
        .await;
        stats
    }
}
