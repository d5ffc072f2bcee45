//! The sink's driver: reads the journal from its cursor, turns records into line protocol,
//! writes batches in order, and moves its cursor only when the store answered 2xx.
//!
//! A batch is sent when it holds `batch_lines` lines or when its oldest line has waited
//! `flush_interval_ms`. A batch that fails with a retryable error is tried again after a backoff,
//! and nothing behind it moves, so readings arrive in order; a batch the store refuses as
//! malformed goes to the dead-letter folder and the cursor moves on, so one poison batch cannot
//! stall everything. While the store is away the records simply stay in the journal, within its
//! disk budget.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::config::StoreConfig;
use crate::decode::decode;
use crate::journal::{self, JournalHandle, Position};
use crate::metrics::events::{
    LineUnwritable, TsdbBatchFailed, TsdbBatchRejected, TsdbBatchWritten,
};
use crate::metrics::Metrics;
use crate::registry::Registry;

use super::{write_message, HttpStore, LocalStore};

/// The journal consumer name of the time-series sink.
pub const CURSOR: &str = "tsdb";

/// Why a batch was not written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Worth trying again later (timeout, 429, 5xx, unreachable, disk error).
    #[error("{0}")]
    Retry(String),
    /// The store will never take these bytes.
    #[error("{0}")]
    Rejected(String),
}

/// Where batches are written.
#[derive(Clone)]
pub enum Store {
    /// An InfluxDB v2 write API.
    Http(HttpStore),
    /// Line-protocol files on local disk.
    Local(LocalStore),
}

impl Store {
    async fn write(&self, body: Bytes) -> Result<(), WriteError> {
        match self {
            Self::Http(s) => s.write(body).await,
            Self::Local(s) => s.write(body).await,
        }
    }

    /// Where batches go, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Http(s) => s.describe(),
            Self::Local(s) => format!("local files in {}", s.describe()),
        }
    }
}

/// One batch read from the journal.
#[derive(Debug, Default)]
pub struct Batch {
    /// Newline-terminated lines.
    pub body: String,
    /// How many lines.
    pub lines: usize,
    /// Where the next batch starts.
    pub next: Position,
    /// When the oldest message in it was received, in ms since the epoch.
    pub oldest_ms: Option<u64>,
    /// Records that no longer decode (the registry changed) or cannot be written as lines.
    pub skipped: Vec<String>,
}

/// Reads up to `max_lines` records from `from` and writes their lines.
pub fn read_batch(
    journal: &JournalHandle,
    registry: &Registry,
    from: Position,
    max_lines: usize,
) -> std::io::Result<Batch> {
    let (segments, dir) = {
        let j = journal.lock();
        (j.segments_from(from), j.dir().to_owned())
    };
    let mut b = Batch {
        next: from,
        ..Batch::default()
    };
    let next = journal::read(&dir, &segments, from, |_, rec| {
        if b.lines >= max_lines {
            return false;
        }
        b.oldest_ms.get_or_insert(rec.received_ms);
        match decode(rec.topic, rec.payload, registry, usize::MAX) {
            Ok(d) => match write_message(&mut b.body, &d, rec.received_ms) {
                Ok(()) => b.lines += 1,
                Err(e) => b.skipped.push(format!("{}: {e}", d.device.id)),
            },
            Err(e) => b.skipped.push(format!("{}: {e}", rec.topic)),
        }
        true
    })?;
    b.next = next;
    Ok(b)
}

/// The loop that owns the store and the sink's cursor.
pub struct SinkDriver {
    journal: JournalHandle,
    registry: Arc<Registry>,
    store: Store,
    batch_lines: usize,
    flush_interval: Duration,
    backoff: Backoff,
    dead_letter: PathBuf,
    metrics: Arc<Metrics>,
}

/// Builds the sink over `store`, reading from `journal`.
pub fn sink(
    store: Store,
    cfg: &StoreConfig,
    journal: JournalHandle,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
) -> SinkDriver {
    SinkDriver {
        journal,
        registry,
        store,
        batch_lines: cfg.batch_lines,
        flush_interval: Duration::from_millis(cfg.flush_interval_ms),
        backoff: Backoff::new(cfg.retry_min_ms, cfg.retry_max_ms),
        dead_letter: cfg.dead_letter_path.clone(),
        metrics,
    }
}

impl SinkDriver {
    /// Writes what the journal holds, in order, until `shutdown` turns true. Nothing is lost by
    /// stopping: unwritten records stay in the journal for the next start.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut committed = self.journal.watch();
        loop {
            let end = *committed.borrow_and_update();
            let (cursor, generation) = {
                let j = self.journal.lock();
                let (cursor, generation) = j.cursor(CURSOR);
                self.metrics
                    .tsdb_backlog_bytes
                    .set(j.bytes_between(cursor, end) as i64);
                self.metrics.journal_bytes.set(j.disk_bytes() as i64);
                let now = crate::clock::now_ms();
                let age_ms = now.saturating_sub(j.oldest_received_ms().unwrap_or(now));
                self.metrics
                    .journal_oldest_age_seconds
                    .set(age_ms as f64 / 1000.0);
                (cursor, generation)
            };
            if cursor >= end {
                self.metrics.tsdb_lag_seconds.set(0.0);
                tokio::select! {
                    _ = committed.changed() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            let (journal, registry, max) = (
                self.journal.clone(),
                self.registry.clone(),
                self.batch_lines,
            );
            let batch = match tokio::task::spawn_blocking(move || {
                read_batch(&journal, &registry, cursor, max)
            })
            .await
            {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::error!("cannot read the journal: {e}");
                    let wait = self.backoff.next_wait();
                    if self.wait(wait, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
                Err(e) => return tracing::error!("journal reader task: {e}"),
            };
            if let Some(oldest) = batch.oldest_ms {
                let lag_ms = crate::clock::now_ms().saturating_sub(oldest);
                self.metrics.tsdb_lag_seconds.set(lag_ms as f64 / 1000.0);
                let waited = Duration::from_millis(lag_ms);
                if batch.lines < self.batch_lines && waited < self.flush_interval {
                    // Small batch: give it the rest of the flush interval to fill up.
                    tokio::select! {
                        () = tokio::time::sleep(self.flush_interval - waited) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
            }
            for s in &batch.skipped {
                LineUnwritable { error: s }.emit(&self.metrics);
            }
            if self.write(batch, generation, &mut shutdown).await {
                return;
            }
        }
    }

    /// Writes one batch until the store takes it or refuses it for good; true on shutdown.
    async fn write(
        &mut self,
        batch: Batch,
        generation: u64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let body = Bytes::from(batch.body);
        loop {
            if batch.lines == 0 {
                break;
            }
            match self.store.write(body.clone()).await {
                Ok(()) => {
                    self.backoff.reset();
                    TsdbBatchWritten { lines: batch.lines }.emit(&self.metrics);
                    break;
                }
                Err(WriteError::Retry(e)) => {
                    let wait = self.backoff.next_wait();
                    TsdbBatchFailed {
                        lines: batch.lines,
                        error: &e,
                        retry_in: wait,
                    }
                    .emit(&self.metrics);
                    if self.wait(wait, shutdown).await {
                        return true;
                    }
                }
                Err(WriteError::Rejected(e)) => {
                    let path = self
                        .dead_letter
                        .join(format!("batch-{}.lp", crate::clock::now_ms()));
                    let saved = save(&path, body.clone())
                        .await
                        .map(|()| path.display().to_string());
                    let where_ = saved.unwrap_or_else(|err| format!("not saved ({err})"));
                    TsdbBatchRejected {
                        lines: batch.lines,
                        error: &e,
                        dead_letter: &where_,
                    }
                    .emit(&self.metrics);
                    break;
                }
            }
        }
        if let Err(e) = self.journal.lock().advance(CURSOR, batch.next, generation) {
            tracing::error!("cannot save the time-series sink's journal cursor: {e}");
        }
        false
    }

    /// Sleeps for `wait`; true if `shutdown` turned true meanwhile.
    async fn wait(&self, wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => false,
            _ = shutdown.changed() => true,
        }
    }
}

async fn save(path: &std::path::Path, body: Bytes) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::write(path, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Class, Journal, Limits};

    use crate::registry::one_manhole as registry;

    #[test]
    fn batches_come_from_the_journal_in_order_and_skip_what_no_longer_decodes() {
        let dir = std::env::temp_dir().join(format!("gridwatch-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut j, _) = Journal::open(
            &dir,
            Limits {
                segment_bytes: 1 << 20,
                max_bytes: 1 << 30,
            },
        )
        .unwrap();
        let start = j.register(CURSOR);
        for i in 0..5u64 {
            let payload = format!(
                r#"{{"v":1,"ts":{i},"seq":{i},"kind":"manhole","data":{{"water_cm":{i}}}}}"#
            );
            j.stage(
                Class::Telemetry,
                100 + i,
                "gw/v1/yg/mh-1/telemetry",
                payload.as_bytes(),
            );
        }
        j.stage(Class::Telemetry, 200, "gw/v1/yg/gone/telemetry", b"{}");
        j.commit().unwrap();
        let journal = JournalHandle::new(j);
        let r = registry();
        let first = read_batch(&journal, &r, start, 3).unwrap();
        assert_eq!(first.lines, 3);
        assert_eq!(first.oldest_ms, Some(100));
        assert!(first
            .body
            .starts_with("manhole,building=b1,community=yg,device=mh-1,grid=g1 water_cm=0 0\n"));
        let rest = read_batch(&journal, &r, first.next, 3).unwrap();
        assert_eq!(rest.lines, 2);
        assert_eq!(rest.skipped.len(), 1, "{:?}", rest.skipped);
        assert_eq!(rest.next, journal.lock().end());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
