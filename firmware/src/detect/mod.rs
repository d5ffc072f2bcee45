//! Detectors: pure state machines that turn a node's samples into the events it sends.
//!
//! Every detector is fed samples with the time they were taken (`now_ms`, monotonic) and returns
//! the events to publish; none reads a clock, allocates or does I/O. An event is raised once per
//! occurrence and again only after its condition cleared (or a hold-off passed, for presses).
//! Event names are spelled exactly as in the gateway's kind catalogue (`gateway/kinds.toml`).
//!
//! - [`timing`]: the shared primitives (debounce, dwell, accumulate, hysteresis, hold-off, count
//!   window).
//! - [`elevator`]: the lift monitor.
//! - [`battery`]: low battery, for every kind of node.

pub mod battery;
pub mod elevator;
pub mod fire_passage;
pub mod manhole;
pub mod sos;
pub mod timing;

/// An event a detector raises.
pub trait Event: Copy + core::fmt::Debug + PartialEq + 'static {
    /// Every event of the detector, in the order one step returns them (most urgent first).
    const ALL: &'static [Self];

    /// The event's name as the gateway's kind catalogue spells it (`gateway/kinds.toml`).
    fn name(&self) -> &'static str;
}

/// Adds `event` to a step's events.
///
/// Each detector's buffer holds one of each of its events and a step raises each at most once,
/// so the push cannot fail; a test per detector raises them all in one step.
fn raise<E: Event, const N: usize>(events: &mut heapless::Vec<E, N>, event: E) {
    let pushed = events.push(event);
    debug_assert!(pushed.is_ok(), "{event:?} does not fit the step's events");
}
