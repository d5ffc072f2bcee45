//! The sink's driver: a queue of batches, written in order, each kept until the store took it.
//!
//! [`SinkHandle`] is what the pipeline holds; [`SinkDriver::run`] is the loop that owns the queue,
//! the store and the retries. A batch that fails with a retryable error is tried again after a
//! backoff (and blocks the ones behind it, so readings arrive in order); a batch the store refuses
//! as malformed is written to the dead-letter folder and the queue moves on, so one poison batch
//! cannot stall everything. While the store is away the queue grows up to `max_pending_lines`;
//! beyond that the oldest batches are dropped and counted.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use crate::backoff::Backoff;
use crate::config::StoreConfig;
use crate::metrics::events::{
    TsdbBatchFailed, TsdbBatchRejected, TsdbBatchWritten, TsdbLinesDropped,
};
use crate::metrics::Metrics;

use super::{Batch, HttpStore, LocalStore};

/// How long a stopping gateway keeps trying to hand its last batches to the store.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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

/// What the pipeline holds to send batches to the sink.
#[derive(Clone)]
pub struct SinkHandle {
    tx: mpsc::Sender<Batch>,
}

impl SinkHandle {
    /// Queues a batch; waits only while the driver is taking the previous one off the channel.
    pub async fn send(&self, batch: Batch) -> Result<(), Batch> {
        self.tx.send(batch).await.map_err(|e| e.0)
    }
}

/// The loop that owns the queue and the store.
pub struct SinkDriver {
    rx: mpsc::Receiver<Batch>,
    store: Store,
    queue: VecDeque<Batch>,
    pending_lines: usize,
    max_pending_lines: usize,
    backoff: Backoff,
    dead_letter: PathBuf,
    metrics: Arc<Metrics>,
}

/// Builds a sink over `store`.
pub fn sink(store: Store, cfg: &StoreConfig, metrics: Arc<Metrics>) -> (SinkHandle, SinkDriver) {
    let (tx, rx) = mpsc::channel(16);
    let driver = SinkDriver {
        rx,
        store,
        queue: VecDeque::new(),
        pending_lines: 0,
        max_pending_lines: cfg.max_pending_lines,
        backoff: Backoff::new(cfg.retry_min_ms, cfg.retry_max_ms),
        dead_letter: cfg.dead_letter_path.clone(),
        metrics,
    };
    (SinkHandle { tx }, driver)
}

type Attempt = Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send>>;

impl SinkDriver {
    /// Writes batches until every handle is gone and the queue is empty, or until
    /// [`SHUTDOWN_GRACE`] after `shutdown` turned true; what is left then is counted as dropped.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut inflight: Option<Attempt> = None;
        let mut retry_at: Option<Instant> = None;
        let mut give_up_at: Option<Instant> = None;
        let mut open = true;
        loop {
            if !open && self.queue.is_empty() && inflight.is_none() {
                break;
            }
            if inflight.is_none() && retry_at.is_none() {
                if let Some(front) = self.queue.front() {
                    let store = self.store.clone();
                    let body = front.body.clone();
                    inflight = Some(Box::pin(async move { store.write(body).await }));
                }
            }
            tokio::select! {
                batch = self.rx.recv(), if open => match batch {
                    Some(batch) => self.enqueue(batch),
                    None => open = false,
                },
                result = async { inflight.as_mut().expect("guarded by the select condition").await }, if inflight.is_some() => {
                    inflight = None;
                    retry_at = self.finish(result).await;
                }
                () = async { sleep_until(retry_at.expect("guarded")).await }, if retry_at.is_some() => retry_at = None,
                _ = shutdown.changed(), if give_up_at.is_none() => give_up_at = Some(Instant::now() + SHUTDOWN_GRACE),
                () = async { sleep_until(give_up_at.expect("guarded")).await }, if give_up_at.is_some() => break,
            }
        }
        while let Ok(batch) = self.rx.try_recv() {
            self.enqueue(batch);
        }
        if self.pending_lines > 0 {
            TsdbLinesDropped {
                lines: self.pending_lines,
                reason: "shutdown",
            }
            .emit(&self.metrics);
        }
        self.metrics.tsdb_pending_lines.set(0);
    }

    fn enqueue(&mut self, batch: Batch) {
        self.pending_lines += batch.lines;
        self.queue.push_back(batch);
        // Never drop the front: it may be in flight, and the store may already have it.
        while self.pending_lines > self.max_pending_lines && self.queue.len() > 1 {
            let oldest = self.queue.remove(1).expect("len > 1");
            self.pending_lines -= oldest.lines;
            TsdbLinesDropped {
                lines: oldest.lines,
                reason: "buffer_full",
            }
            .emit(&self.metrics);
        }
        self.metrics
            .tsdb_pending_lines
            .set(self.pending_lines as i64);
    }

    /// Handles the front batch's outcome; returns when to retry it, if it must be.
    async fn finish(&mut self, result: Result<(), WriteError>) -> Option<Instant> {
        let lines = self.queue.front().map_or(0, |b| b.lines);
        match result {
            Ok(()) => {
                self.pop_front();
                self.backoff.reset();
                TsdbBatchWritten { lines }.emit(&self.metrics);
                None
            }
            Err(WriteError::Retry(e)) => {
                let wait = self.backoff.next_wait();
                TsdbBatchFailed {
                    lines,
                    error: &e,
                    retry_in: wait,
                }
                .emit(&self.metrics);
                Some(Instant::now() + wait)
            }
            Err(WriteError::Rejected(e)) => {
                let batch = self.pop_front();
                let path = self
                    .dead_letter
                    .join(format!("batch-{}.lp", crate::clock::now_ms()));
                let saved = match batch {
                    Some(b) => save(&path, b.body)
                        .await
                        .map(|()| path.display().to_string()),
                    None => Ok(String::new()),
                };
                let where_ = saved.unwrap_or_else(|err| format!("not saved ({err})"));
                TsdbBatchRejected {
                    lines,
                    error: &e,
                    dead_letter: &where_,
                }
                .emit(&self.metrics);
                None
            }
        }
    }

    fn pop_front(&mut self) -> Option<Batch> {
        let b = self.queue.pop_front()?;
        self.pending_lines -= b.lines;
        self.metrics
            .tsdb_pending_lines
            .set(self.pending_lines as i64);
        Some(b)
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

    fn batch(lines: usize) -> Batch {
        Batch {
            body: Bytes::from("m f=1 1\n".repeat(lines)),
            lines,
        }
    }

    fn driver(max_pending_lines: usize) -> SinkDriver {
        let dir = std::env::temp_dir().join("gridwatch-writer-test");
        let cfg = StoreConfig {
            max_pending_lines,
            ..StoreConfig::default()
        };
        let store = Store::Local(LocalStore::open(&dir, 1 << 20).unwrap());
        sink(store, &cfg, Arc::new(Metrics::new())).1
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_waiting_batch_but_never_the_one_in_flight() {
        let mut d = driver(10);
        d.enqueue(batch(4));
        d.enqueue(batch(4));
        d.enqueue(batch(4));
        let sizes: Vec<usize> = d.queue.iter().map(|b| b.lines).collect();
        assert_eq!(sizes, [4, 4]);
        assert_eq!(d.pending_lines, 8);
        assert_eq!(
            d.metrics
                .tsdb_lines_dropped
                .with_label_values(&["buffer_full"])
                .get(),
            4
        );
    }

    #[tokio::test]
    async fn a_retryable_failure_keeps_the_batch_and_a_rejection_dead_letters_it() {
        let mut d = driver(100);
        d.dead_letter = std::env::temp_dir().join(format!("gridwatch-dead-{}", std::process::id()));
        d.enqueue(batch(2));
        d.enqueue(batch(3));
        assert!(d
            .finish(Err(WriteError::Retry("503".into())))
            .await
            .is_some());
        assert_eq!(d.queue.len(), 2);
        assert!(d
            .finish(Err(WriteError::Rejected("400".into())))
            .await
            .is_none());
        assert_eq!(d.queue.len(), 1);
        assert_eq!(std::fs::read_dir(&d.dead_letter).unwrap().count(), 1);
        assert!(d.finish(Ok(())).await.is_none());
        assert_eq!((d.queue.len(), d.pending_lines), (0, 0));
        assert_eq!(d.metrics.tsdb_lines_written.get(), 3);
        std::fs::remove_dir_all(&d.dead_letter).unwrap();
    }
}
