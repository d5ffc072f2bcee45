//! One virtual device: the real firmware [`Node`] (sequence numbers through its [`SeqCounter`] and
//! a simulated EEPROM, `mac` with the device's key), fed by a [`Walk`] of readings, publishing into
//! an [`Outbox`] that the caller sends on over MQTT.
//!
//! Time is an argument: `now_ms` is the device's monotonic clock (milliseconds since the run
//! started); the node adds the wall-clock offset it was given at the start.

use std::convert::Infallible;

use gridwatch_firmware::hal::NvStore;
use gridwatch_firmware::node::{Channel, Config, Node, NodeError, Transport};
use gridwatch_firmware::seq::SeqCounter;
use gridwatch_firmware::wire::{EncodeError, Reading};

use super::readings::{Kind, Walk};

/// The device's EEPROM: one slot, the sequence counter's lease.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Eeprom(Option<u64>);

impl Eeprom {
    /// A store that already holds the lease `seq_from`, as a node that ran before would have; an
    /// erased one (the node starts at 1) when `None`.
    pub fn holding(seq_from: Option<u64>) -> Self {
        Self(seq_from)
    }
}

impl NvStore for Eeprom {
    type Error = Infallible;

    fn read(&mut self, _slot: u8) -> Result<Option<u64>, Infallible> {
        Ok(self.0)
    }

    fn write(&mut self, _slot: u8, value: u64) -> Result<(), Infallible> {
        self.0 = Some(value);
        Ok(())
    }
}

/// The node's transport: it keeps what the node published for the caller to send.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    sent: Vec<(Channel, Vec<u8>)>,
}

impl Transport for Outbox {
    type Error = Infallible;

    fn publish(&mut self, channel: Channel, payload: &[u8]) -> Result<(), Infallible> {
        self.sent.push((channel, payload.to_vec()));
        Ok(())
    }

    fn poll_cmd(&mut self, _buf: &mut [u8]) -> Result<Option<usize>, Infallible> {
        Ok(None)
    }
}

/// A message a device published, ready for the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// `gw/v1/{community}/{device}/{channel}`.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Retained at the broker (status words are).
    pub retain: bool,
}

/// Why a device could not build a message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DeviceError {
    /// The firmware node refused to build the message.
    #[error("device {device}: the firmware node refused the message: {reason}")]
    Node {
        /// The device.
        device: String,
        /// What the node said.
        reason: String,
    },
    /// The node sent nothing (its telemetry was not due, or it dropped it).
    #[error("device {device}: the firmware node sent nothing")]
    NotSent {
        /// The device.
        device: String,
    },
}

/// `prefix` (`gw/v1/{community}/{device}/`) and the channel's name.
fn topic(prefix: &str, channel: Channel) -> String {
    let name = match channel {
        Channel::Telemetry => "telemetry",
        Channel::Event => "event",
        Channel::Status => "status",
    };
    format!("{prefix}{name}")
}

/// One simulated device.
pub struct VirtualDevice<'k> {
    id: String,
    kind: Kind,
    key: Option<&'k [u8]>,
    topic: String,
    node: Node<'k>,
    eeprom: Eeprom,
    walk: Walk,
    outbox: Outbox,
}

impl<'k> VirtualDevice<'k> {
    /// Device `id` of `kind` in `community`, signing with `key` when given, its EEPROM holding
    /// `seq_from`, its wall clock at `wall_ms` when its monotonic clock reads 0; `seed` makes its
    /// readings repeatable.
    pub fn new(
        community: &str,
        id: &str,
        kind: Kind,
        key: Option<&'k [u8]>,
        seq_from: Option<u64>,
        wall_ms: u64,
        seed: u64,
    ) -> Result<Self, DeviceError> {
        let mut eeprom = Eeprom::holding(seq_from);
        let refused = |reason: String| DeviceError::Node {
            device: id.to_owned(),
            reason,
        };
        let seq = SeqCounter::boot(&mut eeprom, 0).map_err(|e| refused(e.to_string()))?;
        // The schedule decides when telemetry goes out, as a manhole node's loop does: the node
        // sends whatever it is offered and keeps no heartbeat of its own.
        let config = Config {
            key,
            telemetry_period_ms: 0,
            telemetry_min_gap_ms: 0,
            heartbeat_ms: u64::MAX,
            ..Config::new(kind.as_str())
        };
        let mut node =
            Node::new(config, seq, 0).map_err(|e: EncodeError| refused(e.to_string()))?;
        node.set_wall_clock(0, wall_ms);
        Ok(Self {
            id: id.to_owned(),
            kind,
            key,
            topic: format!("gw/v1/{community}/{id}/"),
            node,
            eeprom,
            walk: Walk::new(seed),
            outbox: Outbox::default(),
        })
    }

    /// The device id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The device kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The device's key, if it signs.
    pub fn key(&self) -> Option<&'k [u8]> {
        self.key
    }

    /// The topic of `channel` for this device.
    pub fn topic(&self, channel: Channel) -> String {
        topic(&self.topic, channel)
    }

    /// The wall-clock time at monotonic `now_ms`.
    pub fn wall_ms(&self, now_ms: u64) -> u64 {
        self.node.wall_ms(now_ms)
    }

    /// Moves the device's wall clock: at monotonic `now_ms` it reads `wall_ms`.
    pub fn set_wall_clock(&mut self, now_ms: u64, wall_ms: u64) {
        self.node.set_wall_clock(now_ms, wall_ms);
    }

    /// The one message the node just handed its transport. (One per call: the outbox never
    /// refuses, so no event ever waits in the node's retry queue to go out with a later one.)
    fn sent(&mut self) -> Result<Outgoing, DeviceError> {
        let (channel, payload) = self.outbox.sent.pop().ok_or_else(|| DeviceError::NotSent {
            device: self.id.clone(),
        })?;
        self.outbox.sent.clear();
        Ok(Outgoing {
            topic: topic(&self.topic, channel),
            payload,
            retain: channel == Channel::Status,
        })
    }

    fn refused(&self, e: NodeError<Infallible>) -> DeviceError {
        DeviceError::Node {
            device: self.id.clone(),
            reason: e.to_string(),
        }
    }

    /// The device's readings now, through its node: one telemetry message.
    pub fn telemetry(&mut self, now_ms: u64) -> Result<Outgoing, DeviceError> {
        let data = self.walk.next(self.kind, self.wall_ms(now_ms));
        self.telemetry_with(now_ms, &data)
    }

    /// `data` as the device's readings now, through its node: one telemetry message.
    pub fn telemetry_with(
        &mut self,
        now_ms: u64,
        data: &[Reading<'k>],
    ) -> Result<Outgoing, DeviceError> {
        self.node
            .telemetry(now_ms, data, &mut self.outbox, &mut self.eeprom)
            .map_err(|e| self.refused(e))?;
        self.sent()
    }

    /// The event `name` detected now, through the node: one event message.
    pub fn event(&mut self, now_ms: u64, name: &str) -> Result<Outgoing, DeviceError> {
        self.node
            .event(now_ms, name, &[], &mut self.outbox, &mut self.eeprom)
            .map_err(|e| self.refused(e))?;
        self.sent()
    }

    /// The retained `online` a node publishes after it connected.
    pub fn announce(&mut self) -> Result<Outgoing, DeviceError> {
        let Ok(()) = self.node.announce(&mut self.outbox);
        self.sent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_firmware::{auth, wire};

    const WALL: u64 = 1_795_000_000_000;
    const KEY: &[u8] = b"sim-00001 device key, 32 bytes!!";

    fn decoded(out: &Outgoing) -> wire::Message<'_> {
        wire::decode(&out.payload).unwrap()
    }

    #[test]
    fn a_device_numbers_and_signs_its_telemetry_through_the_firmware_node() {
        let mut d =
            VirtualDevice::new("yg", "sim-00001", Kind::Manhole, Some(KEY), None, WALL, 7).unwrap();
        let out: Vec<Outgoing> = [0, 1000, 2000]
            .into_iter()
            .map(|now| d.telemetry(now).unwrap())
            .collect();
        for (i, o) in out.iter().enumerate() {
            assert_eq!(o.topic, "gw/v1/yg/sim-00001/telemetry");
            assert!(!o.retain);
            let m = decoded(o);
            assert_eq!(
                (m.kind, m.seq, m.ts),
                ("manhole", i as u64 + 1, WALL + i as u64 * 1000)
            );
            assert!(m.mac.is_some());
            assert_eq!(auth::verify(KEY, &o.payload), Ok(()));
        }
    }

    #[test]
    fn a_device_whose_eeprom_holds_a_lease_continues_above_it() {
        let mut d = VirtualDevice::new("yg", "s1", Kind::Sos, None, Some(5_000), WALL, 1).unwrap();
        let out = [
            d.event(10, "sos_pressed").unwrap(),
            d.telemetry(20).unwrap(),
            d.announce().unwrap(),
        ];
        let seqs: Vec<u64> = out[..2].iter().map(|o| decoded(o).seq).collect();
        assert_eq!(seqs, [5_000, 5_001]);
        assert_eq!(out[0].topic, "gw/v1/yg/s1/event");
        assert_eq!(decoded(&out[0]).event, Some("sos_pressed"));
        assert_eq!(
            out[2],
            Outgoing {
                topic: "gw/v1/yg/s1/status".into(),
                payload: b"online".to_vec(),
                retain: true
            }
        );
    }
}
