//! One module per device kind: the real firmware loop of that kind, built over simulated parts
//! ([`crate::hw`]), and simple physics that move those parts, so that the firmware's detectors are
//! what decide the events. Nothing here writes an event or a reading itself.
//!
//! | module | the world behind the parts | what a scenario can make happen |
//! |---|---|---|
//! | [`elevator`] | a car going between floors for passengers, doors opening at floors | `stuck`, `alarm`, `power_loss`, `ebike`, `overspeed` |
//! | [`manhole`] | a cover that vehicles rock, water that rises with rain, a little gas | `knocked_aside`, `storm`, `gas`, `battery` |
//! | [`fire_passage`] | a passage that people walk through, sometimes through its fire door | `blocked`, `door_propped`, `smoke` |
//! | [`sos`] | a resident's home with the button, its LED and battery | `press`, `battery` |
//! | [`electrical`] | a distribution box whose load follows the day, a little leakage, a cable warming with the load | `leak`, `overheat`, `arc`, `overload`, `power_cut` |
//! | [`parking`] | a garage's spaces where cars park and leave, and its gate box (id ending `-gate`): cars over two loops, short stops in the fire lane | `fire_lane_parked`, `car_arrives`, `car_leaves` |
//! | [`perimeter`] | a fence zone armed around the clock, a cat or a leaf through its beam now and then | `intrusion` |
//! | every kind | | `cut_off` (its sensors' wires cut: reads fail, `tamper` follows) |
//!
//! Adding a kind is one module: a type that implements [`Physics`] (build the firmware loop over
//! simulated parts, step the world and the loop, start and end its incidents, which are a serde
//! enum tagged by `action`), and one line in [`KINDS`].

pub mod electrical;
pub mod elevator;
pub mod fire_passage;
pub mod manhole;
pub mod parking;
pub mod perimeter;
pub mod sos;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use gridwatch_firmware::drivers::analog::Divider;
use gridwatch_firmware::node::Node;
use gridwatch_firmware::seq::SeqCounter;
use gridwatch_firmware::wire::EncodeError;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::community::DeviceSpec;
use crate::link::Link;
use crate::store::DeviceStore;

/// How often the simulation steps every device's world and firmware loop, in simulated ms: the
/// rate the lift and fire-passage loops want (100–200 ms), and short enough for the SOS
/// button's 50 ms debounce to see a press of a few hundred.
pub const STEP_MS: u64 = 100;

/// The 100 kΩ / 100 kΩ divider every simulated battery sits behind: the ADC sees half the cell.
pub(crate) const HALF: Divider =
    Divider::new(100_000, core::num::NonZeroU32::MIN.saturating_add(99_999));

/// Why a virtual device could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The firmware refused its configuration.
    #[error("the firmware loop refused its configuration: {0}")]
    Firmware(EncodeError),
}

/// One kind of virtual device: the firmware loop of the kind over simulated parts, and the
/// physics behind those parts.
pub trait Physics: Send + Sized + 'static {
    /// The kind, as the catalogue spells it.
    const KIND: &'static str;
    /// The actions a scenario can name, for its error messages.
    const ACTIONS: &'static [&'static str];
    /// What a scenario can make happen to the device: an enum tagged by `action`, each variant
    /// an action in [`Physics::ACTIONS`] and its fields the action's parameters:
    /// `#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]`, with an
    /// action that takes nothing written `Alarm {}` (serde lets a unit variant take anything).
    type Incident: DeserializeOwned + fmt::Debug + Send + Sync + 'static;

    /// The device, its firmware loop started at simulated `now_ms` and numbering with `seq`;
    /// `seed` makes its world repeatable.
    fn build(
        device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        seed: u64,
    ) -> Result<Self, BuildError>;

    /// Moves the world on to `now_ms` (one [`STEP_MS`] after the last call), then runs one turn
    /// of the firmware loop over the parts.
    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>);

    /// An incident begins.
    fn start(&mut self, incident: &Self::Incident, now_ms: u64);

    /// An incident that was given a duration is over: the world goes back to normal.
    fn end(&mut self, incident: &Self::Incident, now_ms: u64);

    /// Cuts the wires of every sensor (`true`), or mends them.
    fn cut_off(&mut self, cut: bool);

    /// The firmware's node, to announce it after a (re)connect and to set its wall clock.
    fn node_mut(&mut self) -> &mut Node<'static>;
}

/// A virtual device of any kind, as the simulation holds it.
pub trait VirtualDevice: Send {
    /// Its kind.
    fn kind(&self) -> &'static str;
    /// See [`Physics::step`].
    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>);
    /// Starts an incident of this device's kind.
    fn start(&mut self, incident: &Incident, now_ms: u64);
    /// Ends an incident started with [`VirtualDevice::start`].
    fn end(&mut self, incident: &Incident, now_ms: u64);
    /// See [`Physics::node_mut`].
    fn node_mut(&mut self) -> &mut Node<'static>;
}

/// Something that happens to one device, parsed for its kind.
#[derive(Clone)]
pub struct Incident {
    kind: &'static str,
    action: String,
    what: What,
}

#[derive(Clone)]
enum What {
    CutOff,
    Kind(Arc<dyn Any + Send + Sync>),
}

impl fmt::Debug for Incident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.action)
    }
}

impl Incident {
    /// An incident of kind `P`; its action is the variant's name in snake_case, as serde's
    /// `rename_all = "snake_case"` spells it in a scenario file.
    pub fn of<P: Physics>(incident: P::Incident) -> Self {
        let variant = format!("{incident:?}");
        let mut action = String::new();
        for c in variant.chars().take_while(|c| c.is_alphanumeric()) {
            if c.is_uppercase() && !action.is_empty() {
                action.push('_');
            }
            action.push(c.to_ascii_lowercase());
        }
        Self {
            kind: P::KIND,
            action,
            what: What::Kind(Arc::new(incident)),
        }
    }

    /// The kind of device it happens to.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The action, as the scenario named it.
    pub fn action(&self) -> &str {
        &self.action
    }
}

struct Device<P>(P);

impl<P: Physics> Device<P> {
    fn incident(incident: &Incident) -> Option<&P::Incident> {
        match &incident.what {
            What::Kind(any) => any.downcast_ref(),
            What::CutOff => None,
        }
    }
}

impl<P: Physics> VirtualDevice for Device<P> {
    fn kind(&self) -> &'static str {
        P::KIND
    }

    fn step(&mut self, now_ms: u64, link: &mut Link, store: &mut DeviceStore<'_>) {
        self.0.step(now_ms, link, store);
    }

    fn start(&mut self, incident: &Incident, now_ms: u64) {
        if matches!(incident.what, What::CutOff) {
            self.0.cut_off(true);
        } else if let Some(i) = Self::incident(incident) {
            self.0.start(i, now_ms);
        }
    }

    fn end(&mut self, incident: &Incident, now_ms: u64) {
        if matches!(incident.what, What::CutOff) {
            self.0.cut_off(false);
        } else if let Some(i) = Self::incident(incident) {
            self.0.end(i, now_ms);
        }
    }

    fn node_mut(&mut self) -> &mut Node<'static> {
        self.0.node_mut()
    }
}

/// Builds a device of one kind: (device, its sequence counter, now, seed).
type Builder = fn(&DeviceSpec, SeqCounter, u64, u64) -> Result<Box<dyn VirtualDevice>, BuildError>;

/// A kind the simulator can build: its name, its actions, and how to make its devices and
/// parse its incidents.
#[derive(Clone, Copy)]
pub struct Kind {
    /// The kind, as the catalogue spells it.
    pub name: &'static str,
    build: Builder,
    parse: fn(toml::Table) -> Result<Incident, String>,
}

fn build<P: Physics>(
    device: &DeviceSpec,
    seq: SeqCounter,
    now_ms: u64,
    seed: u64,
) -> Result<Box<dyn VirtualDevice>, BuildError> {
    Ok(Box::new(Device(P::build(device, seq, now_ms, seed)?)))
}

fn parse<P: Physics>(params: toml::Table) -> Result<Incident, String> {
    let action = match params.get("action") {
        Some(toml::Value::String(a)) => a.clone(),
        Some(_) => return Err("`action` must be a string".into()),
        None => return Err("no `action`: say what happens".into()),
    };
    if action == CUT_OFF {
        return match params.keys().find(|k| *k != "action") {
            Some(k) => Err(format!("`{CUT_OFF}` takes no `{k}`")),
            None => Ok(Incident {
                kind: P::KIND,
                action,
                what: What::CutOff,
            }),
        };
    }
    if !P::ACTIONS.contains(&action.as_str()) {
        return Err(format!(
            "a {} has no action `{action}`; it has {} and {CUT_OFF}",
            P::KIND,
            P::ACTIONS.join(", ")
        ));
    }
    let incident = P::Incident::deserialize(toml::Value::Table(params))
        .map_err(|e| format!("action `{action}`: {}", e.message()))?;
    Ok(Incident {
        kind: P::KIND,
        action,
        what: What::Kind(Arc::new(incident)),
    })
}

impl Kind {
    const fn of<P: Physics>() -> Self {
        Self {
            name: P::KIND,
            build: build::<P>,
            parse: parse::<P>,
        }
    }

    /// Builds a device of this kind (see [`Physics::build`]).
    pub fn build(
        &self,
        device: &DeviceSpec,
        seq: SeqCounter,
        now_ms: u64,
        seed: u64,
    ) -> Result<Box<dyn VirtualDevice>, BuildError> {
        (self.build)(device, seq, now_ms, seed)
    }

    /// Parses an incident from its table (`action = "…"` and the action's parameters); the
    /// error says what is wrong, in serde's words.
    pub fn incident(&self, params: toml::Table) -> Result<Incident, String> {
        (self.parse)(params)
    }
}

/// The action every kind has: its sensors' wires are cut.
pub const CUT_OFF: &str = "cut_off";

/// Every kind the simulator can build.
pub const KINDS: &[Kind] = &[
    Kind::of::<elevator::Elevator>(),
    Kind::of::<manhole::Manhole>(),
    Kind::of::<fire_passage::FirePassage>(),
    Kind::of::<sos::Sos>(),
    Kind::of::<electrical::Electrical>(),
    Kind::of::<parking::Parking>(),
    Kind::of::<perimeter::Perimeter>(),
];

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// A duration parameter of an incident, written as rule files write them (`"30s"`, `"5m"`,
/// `"1h30m"`), in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Millis(pub u64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        gridwatch_edge_rules::duration::parse_ms(&s)
            .map(Millis)
            .map_err(serde::de::Error::custom)
    }
}

/// A small, repeatable source of randomness for a device's world (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in [lo, hi).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + (self.uniform() * hi.saturating_sub(lo) as f64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
}

/// A seed from a device id (FNV-1a), so a device's world repeats from run to run.
pub fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Runs one virtual device on its own, with its link up and the wall clock at the epoch.

    use super::*;
    use crate::store::SeqStore;
    use gridwatch_firmware::wire;

    /// A device of kind `P` with id `id` in an 18-storey building, started at 0.
    pub(crate) fn build<P: Physics>(id: &str) -> P {
        let device = DeviceSpec {
            id: id.into(),
            kind: P::KIND.into(),
            building: "b1".into(),
            grid: "g1".into(),
            location: "test".into(),
            tags: vec![],
            floors: 18,
        };
        let seq = SeqCounter::boot(&mut SeqStore::in_memory().device(id), 0).unwrap();
        P::build(&device, seq, 0, seed_of(id)).unwrap()
    }

    /// Steps `device` from `from_ms` (exclusive) to `to_ms`; returns every payload it sent.
    pub(crate) fn run<P: Physics>(device: &mut P, from_ms: u64, to_ms: u64) -> Vec<String> {
        let (mut link, mut store) = (Link::new(true), SeqStore::in_memory());
        let mut sent = Vec::new();
        let mut now = from_ms;
        while now < to_ms {
            now += STEP_MS;
            device
                .node_mut()
                .set_wall_clock(now, 1_795_000_000_000 + now);
            device.step(now, &mut link, &mut store.device("test"));
            for (_, payload) in link.take_sent() {
                sent.push(String::from_utf8(payload).unwrap());
            }
        }
        sent
    }

    /// The events among `sent`, in order.
    pub(crate) fn events(sent: &[String]) -> Vec<String> {
        sent.iter()
            .filter_map(|p| wire::decode(p.as_bytes()).ok()?.event.map(str::to_owned))
            .collect()
    }
}
