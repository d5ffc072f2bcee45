//! One virtual node: plausible readings for its kind, a sequence number that never goes back,
//! and events on demand.

use gridwatch_firmware::wire::{self, Message, Reading, Readings, Value};

/// A message ready to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// `gw/v1/{community}/{device}/{telemetry|event}`.
    pub topic: String,
    /// The encoded v1 payload.
    pub payload: Vec<u8>,
}

/// A simulated device of one of the four kinds.
#[derive(Clone, Debug)]
pub struct VirtualNode {
    community: String,
    id: String,
    kind: &'static str,
    seq: u64,
    rng: u64,
    level: f64,
}

const KINDS: [&str; 4] = ["elevator", "manhole", "fire_passage", "sos"];

impl VirtualNode {
    /// A node, or `None` for a kind the simulator does not know; `seed` makes its readings repeatable.
    pub fn new(community: &str, id: &str, kind: &str, seed: u64) -> Option<Self> {
        let kind = KINDS.iter().find(|k| **k == kind)?;
        Some(Self {
            community: community.to_owned(),
            id: id.to_owned(),
            kind,
            seq: 0,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            level: 0.5,
        })
    }

    /// The device id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The device kind.
    pub fn kind(&self) -> &str {
        self.kind
    }

    /// xorshift64*: a uniform number in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A periodic reading at `now_ms`.
    pub fn telemetry(&mut self, now_ms: u64) -> Outgoing {
        // A slow random walk in [0, 1] drives every kind's main quantity.
        self.level = (self.level + (self.uniform() - 0.5) * 0.1).clamp(0.0, 1.0);
        let l = self.level;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let mut data = Readings::new();
        let mut put = |name, value| {
            let _ = data.push(Reading { name, value });
        };
        match self.kind {
            "elevator" => {
                let moving = self.uniform() < 0.5;
                put("floor", Value::Number((1.0 + l * 17.0).round()));
                put("moving", Value::Bool(moving));
                put("door_open", Value::Bool(!moving && self.uniform() < 0.3));
                put(
                    "speed_mps",
                    Value::Number(if moving { round(1.0 + l) } else { 0.0 }),
                );
            }
            "manhole" => {
                put("tilt_deg", Value::Number(round(l * 2.0)));
                put("water_cm", Value::Number(round(5.0 + l * 20.0)));
                put("battery_v", Value::Number(round(3.5 + l * 0.2)));
            }
            "fire_passage" => {
                put("clear_width_cm", Value::Number(round(110.0 + l * 40.0)));
                put("obstructed", Value::Bool(false));
                put("smoke", Value::Bool(false));
            }
            _ => {
                put("battery_v", Value::Number(round(2.9 + l * 0.2)));
                put(
                    "last_motion_ts",
                    Value::Number((now_ms - (l * 600_000.0) as u64) as f64),
                );
            }
        }
        self.encode("telemetry", None, data, now_ms)
    }

    /// An event the node detected, at `now_ms` (for example `sos_pressed`).
    pub fn event(&mut self, event: &str, now_ms: u64) -> Outgoing {
        self.encode("event", Some(event), Readings::new(), now_ms)
    }

    fn encode(
        &mut self,
        channel: &str,
        event: Option<&str>,
        data: Readings<'_>,
        ts: u64,
    ) -> Outgoing {
        self.seq += 1;
        let msg = Message {
            ts,
            seq: self.seq,
            kind: self.kind,
            event,
            data,
            mac: None,
        };
        let mut buf = [0u8; 1024];
        let n = wire::encode(&msg, &mut buf)
            .expect("simulated readings are finite and named by the grammar");
        Outgoing {
            topic: format!("gw/v1/{}/{}/{channel}", self.community, self.id),
            payload: buf[..n].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_sends_decodable_telemetry_with_rising_seq() {
        for kind in KINDS {
            let mut n = VirtualNode::new("yg", "d1", kind, 7).unwrap();
            for i in 1..=50u64 {
                let out = n.telemetry(1_795_000_000_000 + i);
                assert_eq!(out.topic, "gw/v1/yg/d1/telemetry");
                let m = wire::decode(&out.payload).unwrap();
                assert_eq!((m.kind, m.seq, m.event), (kind, i, None));
                assert!(!m.data.is_empty());
            }
        }
    }

    #[test]
    fn an_sos_press_is_an_event() {
        let mut n = VirtualNode::new("yg", "s1", "sos", 1).unwrap();
        let out = n.event("sos_pressed", 5);
        assert_eq!(out.topic, "gw/v1/yg/s1/event");
        assert_eq!(
            wire::decode(&out.payload).unwrap().event,
            Some("sos_pressed")
        );
        assert!(VirtualNode::new("yg", "x", "toaster", 1).is_none());
    }
}
