//! The simulation: every device of a community stepped together on simulated time, with the
//! incidents planned for them. Pure but for the sequence store: the caller passes the wall clock
//! in, says when each device's link goes up or down, hands over the downlink, and takes what the
//! devices published ([`crate::fleet`] does all that over MQTT, on real time).
//!
//! Each [`Simulation::step`] moves simulated time on by [`STEP_MS`] and, in this order: starts
//! the incidents now due, ends those whose time is up, then for each device sets the firmware's
//! wall clock, announces it (`online`) if its link came up since, and runs its world and its
//! firmware loop for one step.

use std::collections::HashMap;

use gridwatch_firmware::node::Channel;
use gridwatch_firmware::seq::{SeqCounter, SeqError};

use crate::community::Community;
use crate::devices::{self, seed_of, BuildError, Incident, VirtualDevice, STEP_MS};
use crate::link::Link;
use crate::store::{SeqStore, StoreError};

/// Why a simulation could not be set up, or an incident not planned.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The sequence store failed.
    #[error("device {device}: its memory: {source}")]
    Store {
        /// The device.
        device: String,
        /// What failed.
        source: StoreError,
    },
    /// A device's stored sequence lease leaves no room for another number (a corrupt file).
    #[error(
        "device {0}: its stored sequence number is exhausted; remove its line from the state file"
    )]
    Exhausted(String),
    /// A device could not be built.
    #[error("device {device}: {source}")]
    Build {
        /// The device.
        device: String,
        /// What failed.
        source: BuildError,
    },
    /// An incident names a device the community does not have.
    #[error("there is no device {0} in the community")]
    UnknownDevice(String),
    /// An incident is for another kind of device.
    #[error("{device} is a {kind}, and `{action}` is for a {wanted}")]
    WrongKind {
        /// The device.
        device: String,
        /// Its kind.
        kind: String,
        /// The incident's action.
        action: String,
        /// The kind the incident is for.
        wanted: String,
    },
}

/// Something planned to happen to a device.
struct Planned {
    /// When, in simulated ms from the start.
    at_ms: u64,
    /// The device's index.
    device: usize,
    /// What happens.
    incident: Incident,
    /// How long it lasts, in simulated ms; `None` for the rest of the run.
    lasts_ms: Option<u64>,
}

/// A planned incident began or ended, by its number (the order it was planned in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Happening {
    /// It began.
    Started(usize),
    /// Its time is up; the device's world is back to normal.
    Ended(usize),
}

struct Slot {
    id: String,
    kind: &'static str,
    device: Box<dyn VirtualDevice>,
    link: Link,
    announce: bool,
}

/// Every virtual device of a community, on simulated time.
pub struct Simulation {
    community: String,
    slots: Vec<Slot>,
    index: HashMap<String, usize>,
    skipped: Vec<(String, String)>,
    store: SeqStore,
    now_ms: u64,
    planned: Vec<Planned>,
    /// Planned incidents not started yet, latest first.
    waiting: Vec<usize>,
    /// Started incidents that end, with their end.
    ending: Vec<(u64, usize)>,
}

impl Simulation {
    /// Builds a virtual device for each device of `community` whose kind the simulator knows
    /// (the others are listed by [`Simulation::skipped`]), numbering with what `store` remembers.
    /// Every link starts down. Simulated time starts at 0.
    pub fn new(community: &Community, mut store: SeqStore) -> Result<Self, SimError> {
        let mut slots = Vec::new();
        let mut skipped = Vec::new();
        for spec in &community.devices {
            let Some(kind) = devices::kind(&spec.kind) else {
                skipped.push((spec.id.clone(), spec.kind.clone()));
                continue;
            };
            let seq = SeqCounter::boot(&mut store.device(&spec.id), 0).map_err(|e| match e {
                SeqError::Store(source) => SimError::Store {
                    device: spec.id.clone(),
                    source,
                },
                SeqError::Exhausted => SimError::Exhausted(spec.id.clone()),
            })?;
            let device = kind
                .build(spec, seq, 0, seed_of(&spec.id))
                .map_err(|source| SimError::Build {
                    device: spec.id.clone(),
                    source,
                })?;
            slots.push(Slot {
                id: spec.id.clone(),
                kind: kind.name,
                device,
                link: Link::new(false),
                announce: false,
            });
        }
        let index = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Ok(Self {
            community: community.id.clone(),
            slots,
            index,
            skipped,
            store,
            now_ms: 0,
            planned: Vec::new(),
            waiting: Vec::new(),
            ending: Vec::new(),
        })
    }

    /// The community id.
    pub fn community(&self) -> &str {
        &self.community
    }

    /// Simulated time, in ms since the start.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// How many devices run.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no device runs.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The id and kind of device `i`.
    pub fn device(&self, i: usize) -> (&str, &'static str) {
        (&self.slots[i].id, self.slots[i].kind)
    }

    /// The index of the device with this id.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Devices left out because the simulator cannot build their kind: (id, kind).
    pub fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }

    /// Plans an incident for the device with id `device`; returns its number. One planned in
    /// the past starts at the next step.
    pub fn plan(
        &mut self,
        device: &str,
        at_ms: u64,
        incident: Incident,
        lasts_ms: Option<u64>,
    ) -> Result<usize, SimError> {
        let i = self
            .index(device)
            .ok_or_else(|| SimError::UnknownDevice(device.to_owned()))?;
        let kind = self.slots[i].kind;
        if incident.kind() != kind {
            return Err(SimError::WrongKind {
                device: device.to_owned(),
                kind: kind.to_owned(),
                action: incident.action().to_owned(),
                wanted: incident.kind().to_owned(),
            });
        }
        let n = self.planned.len();
        self.planned.push(Planned {
            at_ms,
            device: i,
            incident,
            lasts_ms,
        });
        // Latest first, so the next due is popped off the end; equal times keep plan order.
        let pos = self
            .waiting
            .partition_point(|&w| self.planned[w].at_ms > at_ms);
        self.waiting.insert(pos, n);
        Ok(n)
    }

    /// Device `i`'s link went up (announce it at the next step) or down.
    pub fn link(&mut self, i: usize, up: bool) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.link.set_up(up);
            slot.announce = up;
        }
    }

    /// A downlink command for device `i` arrived.
    pub fn command(&mut self, i: usize, payload: Vec<u8>) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.link.push_cmd(payload);
        }
    }

    /// Moves simulated time on by one step, with the wall clock at `wall_ms`; returns the
    /// incidents that began or ended.
    pub fn step(&mut self, wall_ms: u64) -> Vec<Happening> {
        self.now_ms += STEP_MS;
        let now = self.now_ms;
        let mut happened = Vec::new();
        while let Some(&n) = self.waiting.last() {
            let p = &self.planned[n];
            if p.at_ms > now {
                break;
            }
            self.waiting.pop();
            self.slots[p.device].device.start(&p.incident, now);
            if let Some(lasts) = p.lasts_ms {
                self.ending.push((now + lasts, n));
            }
            happened.push(Happening::Started(n));
        }
        let (over, going_on) = self.ending.drain(..).partition(|&(end, _)| end <= now);
        self.ending = going_on;
        for (_, n) in over {
            let p = &self.planned[n];
            self.slots[p.device].device.end(&p.incident, now);
            happened.push(Happening::Ended(n));
        }
        for slot in &mut self.slots {
            let node = slot.device.node_mut();
            node.set_wall_clock(now, wall_ms);
            if slot.announce && node.announce(&mut slot.link).is_ok() {
                slot.announce = false;
            }
            slot.device
                .step(now, &mut slot.link, &mut self.store.device(&slot.id));
        }
        happened
    }

    /// Hands what each device published since the last call to `publish(device, channel,
    /// payload)`, device by device, each in the order it was sent.
    pub fn take_sent(&mut self, mut publish: impl FnMut(usize, Channel, Vec<u8>)) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            for (channel, payload) in slot.link.take_sent() {
                publish(i, channel, payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::CommunitySpec;
    use crate::devices::sos::{Sos, SosIncident};
    use gridwatch_firmware::wire;

    fn sim() -> Simulation {
        let community = CommunitySpec::default().generate().unwrap();
        Simulation::new(&community, SeqStore::in_memory()).unwrap()
    }

    fn drain(sim: &mut Simulation) -> Vec<(String, Channel, String)> {
        let mut out = Vec::new();
        let ids: Vec<String> = (0..sim.len()).map(|i| sim.device(i).0.to_owned()).collect();
        sim.take_sent(|i, c, p| out.push((ids[i].clone(), c, String::from_utf8(p).unwrap())));
        out
    }

    #[test]
    fn a_device_announces_itself_when_its_link_comes_up_and_then_reports() {
        let mut sim = sim();
        let sos = sim.index("sos-b1-0301").unwrap();
        sim.link(sos, true);
        sim.step(1_795_000_000_100);
        let sent = drain(&mut sim);
        assert_eq!(sent.len(), 2, "only the device whose link is up: {sent:?}");
        assert_eq!(
            sent[0],
            ("sos-b1-0301".into(), Channel::Status, "online".into())
        );
        let reading = wire::decode(sent[1].2.as_bytes()).unwrap();
        assert_eq!((reading.kind, reading.ts), ("sos", 1_795_000_000_100));
    }

    #[test]
    fn planned_incidents_start_and_end_on_time_and_the_firmware_decides_the_event() {
        let mut sim = sim();
        for i in 0..sim.len() {
            sim.link(i, true);
        }
        let press = Incident::of::<Sos>(SosIncident::Press {});
        let low = Incident::of::<Sos>(SosIncident::Battery { volts: 3.0 });
        assert_eq!(sim.plan("sos-b2-0301", 1_000, press, None).unwrap(), 0);
        assert_eq!(sim.plan("sos-b1-0401", 500, low, Some(1_000)).unwrap(), 1);
        let mut happened = Vec::new();
        for t in 0..20 {
            happened.extend(
                sim.step(1_795_000_000_000 + t * 100)
                    .into_iter()
                    .map(|h| (sim.now_ms(), h)),
            );
        }
        assert_eq!(
            happened,
            [
                (500, Happening::Started(1)),
                (1_000, Happening::Started(0)),
                (1_500, Happening::Ended(1))
            ]
        );
        let events: Vec<(String, String)> = drain(&mut sim)
            .into_iter()
            .filter(|(_, c, _)| *c == Channel::Event)
            .map(|(id, _, p)| {
                (
                    id,
                    wire::decode(p.as_bytes())
                        .unwrap()
                        .event
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        assert_eq!(
            events,
            [("sos-b2-0301".to_owned(), "sos_pressed".to_owned())]
        );
    }

    #[test]
    fn an_incident_for_a_missing_device_or_another_kind_is_refused() {
        let mut sim = sim();
        let press = Incident::of::<Sos>(SosIncident::Press {});
        assert!(matches!(
            sim.plan("sos-b9-0101", 0, press.clone(), None),
            Err(SimError::UnknownDevice(_))
        ));
        let err = sim.plan("mh-1", 0, press, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mh-1 is a manhole, and `press` is for a sos"
        );
    }

    #[test]
    fn devices_of_kinds_the_simulator_cannot_build_are_listed_and_left_out() {
        let mut community = CommunitySpec::default().generate().unwrap();
        let mut meter = community.devices[0].clone();
        meter.id = "wm-1".into();
        meter.kind = "water_meter".into();
        community.devices.push(meter);
        let sim = Simulation::new(&community, SeqStore::in_memory()).unwrap();
        assert_eq!(sim.len(), community.devices.len() - 1);
        assert_eq!(
            sim.skipped(),
            [("wm-1".to_owned(), "water_meter".to_owned())]
        );
    }
}
