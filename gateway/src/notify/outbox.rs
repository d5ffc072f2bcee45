//! Keeps the journal's records until the webhooks they caused were accepted.
//!
//! Each delivery carries the journal position of the message that opened its alert. The
//! `alerts` cursor stays at the oldest position with a delivery still unaccepted (or at the
//! committed end when there is none), so those records survive a crash; on restart the pipeline
//! replays the events from that cursor, and the same alert ids and idempotency ids come out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::journal::{JournalHandle, Position};

/// The journal consumer name of the alert outbox.
pub const CURSOR: &str = "alerts";

#[derive(Default)]
struct State {
    pending: BTreeMap<Position, usize>,
    committed: Position,
}

/// Pending deliveries by the position of their record.
#[derive(Clone)]
pub struct Outbox {
    state: Arc<Mutex<State>>,
    journal: JournalHandle,
}

impl Outbox {
    /// An outbox over `journal`, whose records up to `committed` are durable.
    pub fn new(journal: JournalHandle, committed: Position) -> Self {
        let state = State {
            pending: BTreeMap::new(),
            committed,
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            journal,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A delivery for the record at `pos` is on its way.
    pub fn add(&self, pos: Position) {
        *self.state().pending.entry(pos).or_default() += 1;
    }

    /// Whether no delivery is waiting for its receiver.
    pub fn is_idle(&self) -> bool {
        self.state().pending.is_empty()
    }

    /// A delivery for the record at `pos` was accepted.
    pub fn done(&self, pos: Position) {
        let mut s = self.state();
        if let Some(n) = s.pending.get_mut(&pos) {
            *n -= 1;
            if *n == 0 {
                s.pending.remove(&pos);
            }
        }
        self.advance(s);
    }

    /// Records up to `end` are committed.
    pub fn committed(&self, end: Position) {
        let mut s = self.state();
        s.committed = end;
        self.advance(s);
    }

    fn advance(&self, s: std::sync::MutexGuard<'_, State>) {
        let target = s.pending.keys().next().copied().unwrap_or(s.committed);
        drop(s);
        let mut j = self.journal.lock();
        let (_, generation) = j.cursor(CURSOR);
        if let Err(e) = j.advance(CURSOR, target, generation) {
            tracing::error!("cannot save the alert outbox's journal cursor: {e}");
        }
    }
}
