//! Load mode: thousands of virtual devices, each a real firmware node, reporting at a steady rate
//! over MQTT to any broker, with a progress line every second and a [`Summary`] at the end.
//!
//! ```text
//!  groups of devices ──▶ schedule (spread evenly) ──▶ behaviour: firmware Node ──▶ pooled MQTT connections ──▶ broker
//!  (registry names)       schedule.rs                  device.rs, readings.rs       pool.rs (counts, PUBACK times)
//! ```
//!
//! A run is a list of [`Group`]s: devices that behave alike (healthy ones, or one fault of
//! [`crate::faults`]), each sending once per the group's period at times [`schedule::Spread`]
//! spreads evenly. One sender loop walks the schedule and hands each device's messages to its
//! connection; devices share a pool of connections unless they need a last will of their own.
//! When the sender falls behind (a full connection queue makes it wait), the achieved rate shows
//! it: nothing is dropped to keep up. The sender borrows the devices' keys, so it runs in the
//! caller's task; only the connections' event loops are spawned.

pub mod device;
pub mod pool;
pub mod readings;
pub mod registry;
pub mod report;
pub mod schedule;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, QoS};
use tokio::time::Instant;

use device::{DeviceError, Outgoing, VirtualDevice};
use pool::{Broker, Connection};
use registry::{DeviceSpec, Keys};
use report::{Counters, Label, Summary};
use schedule::Spread;

/// How a run connects and how long it lasts.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The broker.
    pub broker: Broker,
    /// The community in every topic.
    pub community: String,
    /// QoS of telemetry (status words always go at QoS 1).
    pub qos: QoS,
    /// How long devices send.
    pub duration: Duration,
    /// Connections in the shared pool.
    pub connections: usize,
    /// Client ids are this, a dash and the connection number (or the device id).
    pub client_prefix: String,
    /// How long to wait at the end for the broker to acknowledge what was sent.
    pub drain: Duration,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// What devices of a group send at each of their turns.
pub trait Behaviour<'k> {
    /// The messages device `index` of the group sends at its `turn`-th send (0, 1, …), at its
    /// monotonic `now_ms`, into `out`, each with what it tests.
    fn turn(
        &mut self,
        index: usize,
        device: &mut VirtualDevice<'k>,
        turn: u64,
        now_ms: u64,
        out: &mut Vec<(Label, Outgoing)>,
    ) -> Result<(), DeviceError>;
}

/// Every turn, the device's readings through its firmware node, counted under one label.
#[derive(Clone, Copy, Debug)]
pub struct Steady(pub Label);

impl<'k> Behaviour<'k> for Steady {
    fn turn(
        &mut self,
        _index: usize,
        device: &mut VirtualDevice<'k>,
        _turn: u64,
        now_ms: u64,
        out: &mut Vec<(Label, Outgoing)>,
    ) -> Result<(), DeviceError> {
        out.push((self.0, device.telemetry(now_ms)?));
        Ok(())
    }
}

/// Devices that behave alike.
pub struct Group<'k> {
    /// The devices.
    pub devices: Vec<VirtualDevice<'k>>,
    /// Each device sends once per period.
    pub period: Duration,
    /// Each device has its own connection, leaves `offline` as its last will and announces
    /// `online`; at `vanish_at` the connections drop without a goodbye and the devices fall
    /// silent.
    pub vanish_at: Option<Duration>,
    /// What the devices send.
    pub behaviour: Box<dyn Behaviour<'k> + 'k>,
}

/// Why a run could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A device could not be built.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Devices sign, and one has no key.
    #[error("device {0} has no key in the keys file")]
    NoKey(String),
}

/// Builds the devices `specs` of `community`: signing with their key from `keys` when given,
/// their EEPROMs holding `seq_from`, their clocks at `wall_ms` at the start.
pub fn devices<'k>(
    community: &str,
    specs: &[DeviceSpec],
    keys: Option<&'k Keys>,
    seq_from: Option<u64>,
    wall_ms: u64,
) -> Result<Vec<VirtualDevice<'k>>, LoadError> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let key = match keys {
                Some(keys) => Some(
                    keys.get(&spec.id)
                        .map(Vec::as_slice)
                        .ok_or_else(|| LoadError::NoKey(spec.id.clone()))?,
                ),
                None => None,
            };
            let seed = wall_ms ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
            Ok(VirtualDevice::new(
                community, &spec.id, spec.kind, key, seq_from, wall_ms, seed,
            )?)
        })
        .collect()
}

/// One group's place in the run.
struct Running<'k> {
    group: Group<'k>,
    spread: Option<Spread>,
    /// The connection of each device.
    conns: Vec<usize>,
    next: u64,
    vanished: bool,
    warned: bool,
}

impl Running<'_> {
    /// Sends are scheduled until here.
    fn end(&self, duration: Duration) -> Duration {
        self.group.vanish_at.map_or(duration, |v| v.min(duration))
    }

    fn due(&self, elapsed: Duration, duration: Duration) -> u64 {
        self.spread
            .map_or(0, |s| s.due(elapsed.min(self.end(duration))))
    }
}

/// Runs `groups` against the broker for `plan.duration`, then waits up to `plan.drain` for the
/// broker's acknowledgements and closes every connection.
pub async fn run(plan: &Plan, groups: Vec<Group<'_>>) -> Summary {
    let counters = Arc::new(Counters::default());
    let pool_size = plan.connections.max(1);
    let mut conns: Vec<Option<Connection>> = (0..pool_size)
        .map(|c| {
            Some(Connection::open(
                &plan.broker,
                &format!("{}-{c}", plan.client_prefix),
                plan.qos,
                None,
                counters.clone(),
            ))
        })
        .collect();
    let mut running = Vec::with_capacity(groups.len());
    let mut pooled = 0usize;
    let mut announce = Vec::new();
    for mut group in groups {
        let mut group_conns = Vec::with_capacity(group.devices.len());
        for device in &mut group.devices {
            if group.vanish_at.is_some() {
                let will = LastWill::new(
                    device.topic(gridwatch_firmware::node::Channel::Status),
                    "offline",
                    QoS::AtLeastOnce,
                    true,
                );
                group_conns.push(conns.len());
                conns.push(Some(Connection::open(
                    &plan.broker,
                    &format!("{}-{}", plan.client_prefix, device.id()),
                    plan.qos,
                    Some(will),
                    counters.clone(),
                )));
                match device.announce() {
                    Ok(online) => announce.push((conns.len() - 1, online)),
                    Err(_) => {
                        counters.device_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else {
                group_conns.push(pooled % pool_size);
                pooled += 1;
            }
        }
        running.push(Running {
            spread: Spread::new(group.devices.len(), group.period),
            conns: group_conns,
            group,
            next: 0,
            vanished: false,
            warned: false,
        });
    }
    let devices: usize = running.iter().map(|r| r.group.devices.len()).sum();
    let nominal: f64 = running
        .iter()
        .filter_map(|r| r.spread.map(|s| s.rate()))
        .sum();
    let cpu_before = report::process_cpu(None);
    for (c, message) in announce {
        publish(&conns, &counters, c, Label::Online, message).await;
    }

    let start = Instant::now();
    let progress = plan.progress.then(|| {
        tokio::spawn(print_progress(
            counters.clone(),
            start,
            nominal,
            plan.qos == QoS::AtLeastOnce,
        ))
    });
    let mut vanishing = Vec::new();
    let mut out = Vec::new();
    loop {
        let elapsed = start.elapsed();
        let now_ms = elapsed.as_millis() as u64;
        let mut wake = plan.duration;
        for r in &mut running {
            let due = r.due(elapsed, plan.duration);
            while r.next < due {
                let Some(spread) = r.spread else { break };
                let (index, turn) = (spread.device(r.next), spread.turn(r.next));
                r.next += 1;
                out.clear();
                let device = &mut r.group.devices[index];
                if let Err(e) = r
                    .group
                    .behaviour
                    .turn(index, device, turn, now_ms, &mut out)
                {
                    counters.device_errors.fetch_add(1, Ordering::Relaxed);
                    if !r.warned {
                        tracing::warn!("{e} (counted; further ones in this group are not logged)");
                        r.warned = true;
                    }
                }
                for (label, message) in out.drain(..) {
                    publish(&conns, &counters, r.conns[index], label, message).await;
                }
            }
            if let Some(s) = r
                .spread
                .filter(|_| r.next < r.due(plan.duration, plan.duration))
            {
                wake = wake.min(s.at(r.next));
            }
            match r.group.vanish_at {
                Some(at) if !r.vanished && elapsed >= at => {
                    r.vanished = true;
                    for &c in &r.conns {
                        if let Some(conn) = conns[c].take() {
                            vanishing.push(tokio::spawn(vanish_when_settled(conn)));
                        }
                    }
                }
                Some(at) if !r.vanished => wake = wake.min(at),
                _ => {}
            }
        }
        if elapsed >= plan.duration {
            break;
        }
        tokio::time::sleep_until(start + wake).await;
    }
    let window = start.elapsed();
    let sent_in_window = counters.snapshot().sent;
    let scheduled: u64 = running
        .iter()
        .map(|r| r.due(plan.duration, plan.duration))
        .sum();
    let wills = running
        .iter()
        .filter(|r| r.vanished)
        .map(|r| r.group.devices.len())
        .sum();

    let deadline = Instant::now() + plan.drain;
    while Instant::now() < deadline && !conns.iter().flatten().all(Connection::settled) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::new();
    for conn in conns.into_iter().flatten() {
        samples.extend(conn.close().await);
    }
    for v in vanishing {
        samples.extend(v.await.unwrap_or_default());
    }
    if let Some(p) = progress {
        p.abort();
    }
    let cpu = cpu_before
        .zip(report::process_cpu(None))
        .map(|(a, b)| b.saturating_sub(a));
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Summary {
        devices,
        connections: pool_size + wills,
        window,
        target_rate: scheduled as f64 / plan.duration.as_secs_f64().max(1e-9),
        scheduled,
        sent_in_window,
        total: counters.snapshot(),
        qos1: plan.qos == QoS::AtLeastOnce,
        connection_errors: get(&counters.connection_errors),
        publish_errors: get(&counters.publish_errors),
        device_errors: get(&counters.device_errors),
        by_label: Label::ALL
            .into_iter()
            .map(|l| (l, counters.handed_count(l)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        wills,
        latency: report::percentiles(&mut samples),
        cpu,
    }
}

/// Hands `message` to connection `c`, counting it under `label` or as a publish error.
async fn publish(
    conns: &[Option<Connection>],
    counters: &Counters,
    c: usize,
    label: Label,
    message: Outgoing,
) {
    let taken = match &conns[c] {
        Some(conn) => conn.publish(message).await.is_ok(),
        None => false,
    };
    if taken {
        counters.handed(label);
    } else {
        counters.publish_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits (at most 5 s) until the broker has what `conn` sent, then drops it without a goodbye.
async fn vanish_when_settled(conn: Connection) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conn.settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.vanish().await
}

/// Prints the progress line to stderr every second until aborted.
async fn print_progress(counters: Arc<Counters>, start: Instant, target: f64, qos1: bool) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut before = counters.snapshot();
    let mut at = start;
    loop {
        let now = tick.tick().await;
        let snap = counters.snapshot();
        eprintln!(
            "{}",
            report::progress_line(now - start, now - at, before, snap, target, qos1)
        );
        (before, at) = (snap, now);
    }
}
