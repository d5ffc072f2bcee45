//! The journal as the gateway's stages share it: the writer behind a lock, and a watch of where
//! the committed records end, which wakes the consumers.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::{Journal, Position};

/// A shared journal.
#[derive(Clone)]
pub struct JournalHandle {
    inner: Arc<Mutex<Journal>>,
    committed: Arc<watch::Sender<Position>>,
}

impl JournalHandle {
    /// Shares `journal`.
    pub fn new(journal: Journal) -> Self {
        let end = journal.end();
        Self {
            inner: Arc::new(Mutex::new(journal)),
            committed: Arc::new(watch::channel(end).0),
        }
    }

    /// The journal, locked. Hold it briefly: the pipeline stages under it at message rate.
    pub fn lock(&self) -> MutexGuard<'_, Journal> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Announces that records up to `end` are committed.
    pub fn committed(&self, end: Position) {
        self.committed.send_replace(end);
    }

    /// Where the committed records end, and a way to wait for that to move.
    pub fn watch(&self) -> watch::Receiver<Position> {
        self.committed.subscribe()
    }
}
