//! Drives virtual nodes against a broker: telemetry on a period, an SOS press now and then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;

use crate::node::VirtualNode;

/// How the simulated community behaves.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Each node sends telemetry this often.
    pub telemetry_every: Duration,
    /// One SOS button somewhere is pressed this often.
    pub sos_every: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Publishes for `nodes` to the broker at `host:port` until `shutdown` turns true.
pub async fn run(
    host: &str,
    port: u16,
    mut nodes: Vec<VirtualNode>,
    behaviour: Behaviour,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut opts = MqttOptions::new("gridwatch-sim", host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let mut telemetry = tokio::time::interval(behaviour.telemetry_every);
    let mut sos = tokio::time::interval(behaviour.sos_every);
    sos.tick().await;
    let sos_nodes: Vec<usize> = (0..nodes.len())
        .filter(|i| nodes[*i].kind() == "sos")
        .collect();
    let mut next_sos = 0;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            polled = eventloop.poll() => match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => tracing::debug!("simulator connected"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("simulator connection: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = telemetry.tick() => {
                let now = now_ms();
                for n in &mut nodes {
                    let out = n.telemetry(now);
                    let _ = client.try_publish(out.topic, QoS::AtMostOnce, false, out.payload);
                }
            }
            _ = sos.tick(), if !sos_nodes.is_empty() => {
                let n = &mut nodes[sos_nodes[next_sos % sos_nodes.len()]];
                next_sos += 1;
                let out = n.event("sos_pressed", now_ms());
                tracing::info!(device = n.id(), "simulated resident presses SOS");
                let _ = client.try_publish(out.topic, QoS::AtLeastOnce, false, out.payload);
            }
        }
    }
    let _ = client.try_disconnect();
}
