//! The case log: every alert change and every notification, written down before it is acted on,
//! so that a gateway killed at any moment comes back with its alerts, their timers (deadlines
//! are derived from an alert's own times) and the notifications no receiver has accepted yet,
//! and sends nothing again that a receiver took.
//!
//! One append-only file, `cases.log` in the journal's folder, a line per entry:
//! `{crc32 of the JSON, 8 hex digits} {JSON}`. Appending is a `write`; [`CaseLog::sync`] makes
//! everything appended so far durable with one `fdatasync`, and the notifier calls it before a
//! delivery leaves, so one fsync covers every alert that opened in the same moment. A torn or
//! corrupt tail (the gateway died mid-line) is moved aside to `cases.log.bad-{ms}`, counted, and
//! the log goes on from the last whole line. When the file has grown to several times what it
//! holds, it is rewritten with only the latest state ([`CaseLog::compact`]).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::Kept;
use crate::notify::Delivery;

/// The most attempts kept per delivery; older ones are counted, not listed.
const ATTEMPTS_KEPT: usize = 100;

/// The log is rewritten once it is this many times the size it had after the last rewrite
/// (and at least [`COMPACT_MIN_BYTES`]).
const COMPACT_GROWTH: u64 = 4;
const COMPACT_MIN_BYTES: u64 = 4 << 20;

/// One try at a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Why the receiver did not take it; `None` when it did.
    pub error: Option<String>,
}

/// What happened to one notification: kept for audit, shown with its alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The idempotency id.
    pub id: String,
    /// The alert it is about.
    pub alert_id: String,
    /// The worker it is for.
    pub worker: String,
    /// How it goes (`webhook`, …).
    pub channel: String,
    /// When it was queued.
    pub queued_at: u64,
    /// How many attempts were made in all.
    pub attempts_total: u32,
    /// The last attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// When a receiver accepted it.
    pub accepted_at: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    /// An alert after a change.
    Alert(Box<Kept>),
    /// A notification to send.
    Queued { delivery: Delivery, at_ms: u64 },
    /// One try at a notification.
    Attempt { id: String, attempt: Attempt },
    /// A delivery's record as a rewrite keeps it (no body: it is only kept while pending).
    Sent(Sent),
}

/// What the log held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The alerts, oldest first.
    pub alerts: Vec<Kept>,
    /// The notifications no receiver has accepted yet, in the order they were queued.
    pub pending: Vec<Delivery>,
    /// Lines of a torn or corrupt tail, moved aside.
    pub skipped_lines: usize,
}

/// Why the case log cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("case log {path}: {source}")]
pub struct CaseLogError {
    path: String,
    #[source]
    source: io::Error,
}

struct Inner {
    path: PathBuf,
    file: Arc<File>,
    /// Written since the last sync.
    dirty: bool,
    bytes: u64,
    compacted_bytes: u64,
    deliveries: Deliveries,
}

/// Every delivery the log knows, and which still wait for their receiver.
#[derive(Default)]
struct Deliveries {
    sent: HashMap<String, Sent>,
    pending: HashMap<String, Delivery>,
    by_alert: HashMap<String, Vec<String>>,
}

/// The handle every stage holds to write the case log.
#[derive(Clone)]
pub struct CaseLog {
    inner: Arc<Mutex<Inner>>,
    /// Held across a sync, so a caller that finds nothing to sync knows the sync that took its
    /// writes has finished.
    sync_lock: Arc<Mutex<()>>,
}

impl CaseLog {
    /// Opens (or creates) `cases.log` in `dir` and reads back what it holds.
    pub fn open(dir: &Path) -> Result<(Self, Recovered), CaseLogError> {
        let path = dir.join("cases.log");
        let err = |source| CaseLogError {
            path: path.display().to_string(),
            source,
        };
        fs::create_dir_all(dir).map_err(err)?;
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(e)),
        };
        let mut alerts: HashMap<String, (usize, Kept)> = HashMap::new();
        let mut deliveries = Deliveries::default();
        let mut order = Vec::new();
        let (mut bad, mut skipped_lines) = (Vec::new(), 0);
        for line in text.split_inclusive(|&b| b == b'\n') {
            // A bad line (torn by a crash, or damaged) is set aside; the lines after it still
            // count, so one bad write does not take the rest of the log with it.
            let Some(entry) = parse_line(line) else {
                bad.extend_from_slice(line);
                skipped_lines += 1;
                continue;
            };
            match entry {
                Entry::Alert(k) => {
                    let n = alerts.len();
                    let seen = alerts.get(&k.alert.alert_id).map_or(n, |(i, _)| *i);
                    alerts.insert(k.alert.alert_id.clone(), (seen, *k));
                }
                Entry::Queued { delivery, at_ms } => {
                    order.push(delivery.id.clone());
                    deliveries.queued(delivery, at_ms);
                }
                Entry::Attempt { id, attempt } => deliveries.attempted(&id, attempt),
                Entry::Sent(sent) => deliveries.remember(sent),
            }
        }
        if skipped_lines > 0 {
            let aside = dir.join(format!("cases.log.bad-{}", crate::clock::now_ms()));
            fs::write(&aside, &bad).map_err(err)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        let mut alerts: Vec<(usize, Kept)> = alerts.into_values().collect();
        alerts.sort_by_key(|(i, _)| *i);
        let pending = order
            .iter()
            .filter_map(|id| deliveries.pending.get(id).cloned())
            .collect();
        let state = Inner {
            path: path.clone(),
            file: Arc::new(file),
            dirty: false,
            bytes: text.len() as u64,
            compacted_bytes: text.len() as u64,
            deliveries,
        };
        let recovered = Recovered {
            alerts: alerts.into_iter().map(|(_, k)| k).collect(),
            pending,
            skipped_lines,
        };
        let log = Self {
            inner: Arc::new(Mutex::new(state)),
            sync_lock: Arc::new(Mutex::new(())),
        };
        if skipped_lines > 0 {
            // Rewritten without the bad lines, so they are reported once, not at every start.
            log.compact(recovered.alerts.clone()).map_err(err)?;
        }
        Ok((log, recovered))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes down alerts after a change.
    pub fn alerts(&self, changed: Vec<Kept>) -> io::Result<()> {
        if changed.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for k in changed {
            line(&mut out, &Entry::Alert(Box::new(k)));
        }
        self.lock().append(&out)
    }

    /// Writes down a notification to send; false if one with the same id was queued before
    /// (the rules ran the journal again after a restart), so it must not go out again.
    pub fn queue(&self, delivery: &Delivery, at_ms: u64) -> io::Result<bool> {
        let mut inner = self.lock();
        if inner.deliveries.sent.contains_key(&delivery.id) {
            return Ok(false);
        }
        let mut out = Vec::new();
        line(
            &mut out,
            &Entry::Queued {
                delivery: delivery.clone(),
                at_ms,
            },
        );
        inner.deliveries.queued(delivery.clone(), at_ms);
        inner.append(&out)?;
        Ok(true)
    }

    /// Writes down one attempt at delivery `id`.
    pub fn attempt(&self, id: &str, attempt: Attempt) -> io::Result<()> {
        let mut out = Vec::new();
        line(
            &mut out,
            &Entry::Attempt {
                id: id.to_owned(),
                attempt: attempt.clone(),
            },
        );
        let mut inner = self.lock();
        inner.deliveries.attempted(id, attempt);
        inner.append(&out)
    }

    /// Makes everything written so far durable.
    pub fn sync(&self) -> io::Result<()> {
        let _one_at_a_time = self.sync_lock.lock().unwrap_or_else(|e| e.into_inner());
        let file = {
            let mut inner = self.lock();
            if !inner.dirty {
                return Ok(());
            }
            inner.dirty = false;
            inner.file.clone()
        };
        let synced = file.sync_data();
        if synced.is_err() {
            self.lock().dirty = true;
        }
        synced
    }

    /// The notifications about `alert_id`, oldest first.
    pub fn sent_for(&self, alert_id: &str) -> Vec<Sent> {
        let inner = self.lock();
        let d = &inner.deliveries;
        d.by_alert
            .get(alert_id)
            .into_iter()
            .flatten()
            .filter_map(|id| d.sent.get(id).cloned())
            .collect()
    }

    /// How many notifications wait for their receiver.
    pub fn pending(&self) -> usize {
        self.lock().deliveries.pending.len()
    }

    /// Whether the log has grown enough to be worth rewriting.
    pub fn wants_compaction(&self) -> bool {
        let inner = self.lock();
        inner.bytes >= COMPACT_MIN_BYTES.max(inner.compacted_bytes * COMPACT_GROWTH)
    }

    /// Rewrites the log with only `alerts` (every alert the book still holds), the deliveries
    /// about them and those still pending; returns the new size in bytes.
    pub fn compact(&self, alerts: Vec<Kept>) -> io::Result<u64> {
        let mut inner = self.lock();
        let keep: std::collections::HashSet<String> =
            alerts.iter().map(|k| k.alert.alert_id.clone()).collect();
        let d = &mut inner.deliveries;
        d.sent
            .retain(|_, s| keep.contains(&s.alert_id) || s.accepted_at.is_none());
        let sent = &d.sent;
        d.by_alert.retain(|_, ids| {
            ids.retain(|id| sent.contains_key(id));
            !ids.is_empty()
        });
        let mut out = Vec::new();
        for k in alerts {
            line(&mut out, &Entry::Alert(Box::new(k)));
        }
        let mut sent: Vec<&Sent> = d.sent.values().collect();
        sent.sort_by(|a, b| (a.queued_at, &a.id).cmp(&(b.queued_at, &b.id)));
        for s in sent {
            match d.pending.get(&s.id) {
                // Pending: queued again with its body, then its attempts.
                Some(d) => {
                    line(
                        &mut out,
                        &Entry::Queued {
                            delivery: d.clone(),
                            at_ms: s.queued_at,
                        },
                    );
                    for a in &s.attempts {
                        line(
                            &mut out,
                            &Entry::Attempt {
                                id: s.id.clone(),
                                attempt: a.clone(),
                            },
                        );
                    }
                }
                None => line(&mut out, &Entry::Sent(s.clone())),
            }
        }
        let tmp = inner.path.with_extension("log.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &inner.path)?;
        // Reopened before anything else can fail, so appends never go to the replaced file.
        inner.file = Arc::new(OpenOptions::new().append(true).open(&inner.path)?);
        if let Some(dir) = inner.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        inner.bytes = out.len() as u64;
        inner.compacted_bytes = inner.bytes;
        inner.dirty = false;
        Ok(inner.bytes)
    }
}

impl Inner {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(e) = (&*self.file).write_all(bytes) {
            // A part written (disk full) would glue the next line onto a torn one.
            let _ = self.file.set_len(self.bytes);
            return Err(e);
        }
        self.bytes += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }
}

impl Deliveries {
    fn queued(&mut self, delivery: Delivery, at_ms: u64) {
        self.remember(Sent {
            id: delivery.id.clone(),
            alert_id: delivery.alert_id.clone(),
            worker: delivery.worker.clone(),
            channel: delivery.channel.as_str().to_owned(),
            queued_at: at_ms,
            attempts_total: 0,
            attempts: Vec::new(),
            accepted_at: None,
        });
        self.pending.insert(delivery.id.clone(), delivery);
    }

    fn remember(&mut self, sent: Sent) {
        let ids = self.by_alert.entry(sent.alert_id.clone()).or_default();
        if !ids.contains(&sent.id) {
            ids.push(sent.id.clone());
        }
        self.sent.insert(sent.id.clone(), sent);
    }

    fn attempted(&mut self, id: &str, attempt: Attempt) {
        let Some(s) = self.sent.get_mut(id) else {
            return;
        };
        if attempt.error.is_none() {
            s.accepted_at = Some(attempt.at_ms);
            self.pending.remove(id);
        }
        s.attempts_total += 1;
        if s.attempts.len() == ATTEMPTS_KEPT {
            s.attempts.remove(0);
        }
        s.attempts.push(attempt);
    }
}

fn line(out: &mut Vec<u8>, entry: &Entry) {
    let json = serde_json::to_vec(entry).expect("case log entries serialize");
    let _ = write!(out, "{:08x} ", crc32fast::hash(&json));
    out.extend_from_slice(&json);
    out.push(b'\n');
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    let line = line.strip_suffix(b"\n")?;
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc != crc32fast::hash(json) {
        return None;
    }
    serde_json::from_slice(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertBook, Fired};
    use crate::notify::Channel;

    fn kept(id: &str, at: u64) -> Kept {
        let device = crate::alerts::tests::device("sos-1");
        let mut book = AlertBook::default();
        let Fired::Opened(_) = book.open(crate::alerts::tests::opening(&device, None, id, at))
        else {
            panic!("opens")
        };
        book.take_changes().remove(0)
    }

    fn delivery(id: &str, alert: &str) -> Delivery {
        Delivery {
            id: id.into(),
            alert_id: alert.into(),
            worker: "w1".into(),
            channel: Channel::Webhook,
            target: "http://127.0.0.1:9/w1".into(),
            title: String::new(),
            body: "{\"type\":\"alert.opened\"}".into(),
            secret: None,
            mention: Vec::new(),
        }
    }

    fn ok(at_ms: u64) -> Attempt {
        Attempt { at_ms, error: None }
    }

    fn failed(at_ms: u64) -> Attempt {
        Attempt {
            at_ms,
            error: Some("HTTP 503".into()),
        }
    }

    #[test]
    fn a_reopened_log_gives_back_the_alerts_and_only_what_nobody_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let (log, r) = CaseLog::open(dir.path()).unwrap();
        assert!(r.alerts.is_empty() && r.pending.is_empty());
        let mut a = kept("a1", 10);
        log.alerts(vec![a.clone(), kept("a2", 20)]).unwrap();
        assert!(log.queue(&delivery("a1.opened.w1", "a1"), 11).unwrap());
        assert!(log.queue(&delivery("a2.opened.w1", "a2"), 21).unwrap());
        log.attempt("a1.opened.w1", failed(12)).unwrap();
        log.attempt("a1.opened.w1", ok(13)).unwrap();
        log.attempt("a2.opened.w1", failed(22)).unwrap();
        a.alert.escalation_level = 1;
        a.late_on_site = 2;
        log.alerts(vec![a.clone()]).unwrap();
        log.sync().unwrap();
        drop(log);

        let (log, r) = CaseLog::open(dir.path()).unwrap();
        let ids: Vec<&str> = r.alerts.iter().map(|k| k.alert.alert_id.as_str()).collect();
        assert_eq!(ids, ["a1", "a2"], "in the order they first appeared");
        assert_eq!(
            r.alerts[0], a,
            "the latest state, with what the alert does not show"
        );
        assert_eq!(r.pending, [delivery("a2.opened.w1", "a2")]);
        assert!(
            !log.queue(&delivery("a1.opened.w1", "a1"), 30).unwrap(),
            "a delivery queued before the restart is not queued again"
        );
        let sent = log.sent_for("a1");
        assert_eq!(sent[0].attempts, [failed(12), ok(13)]);
        assert_eq!(sent[0].accepted_at, Some(13));
        assert_eq!(log.pending(), 1);
    }

    #[test]
    fn a_torn_tail_is_moved_aside_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CaseLog::open(dir.path()).unwrap();
        log.alerts(vec![kept("a1", 10)]).unwrap();
        drop(log);
        let path = dir.path().join("cases.log");
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(b"0badc0de {\"alert\":");
        std::fs::write(&path, &bytes).unwrap();

        let (log, r) = CaseLog::open(dir.path()).unwrap();
        assert_eq!((r.alerts.len(), r.skipped_lines), (1, 1));
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, whole);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("cases.log.bad-")
            })
            .collect();
        assert_eq!(aside.len(), 1);
        log.alerts(vec![kept("a2", 20)]).unwrap();
        drop(log);
        let (_, r) = CaseLog::open(dir.path()).unwrap();
        assert_eq!((r.alerts.len(), r.skipped_lines), (2, 0));
    }

    #[test]
    fn a_flipped_byte_loses_that_line_only_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CaseLog::open(dir.path()).unwrap();
        log.alerts(vec![kept("a1", 10), kept("a2", 20), kept("a3", 30)])
            .unwrap();
        drop(log);
        let path = dir.path().join("cases.log");
        let mut bytes = std::fs::read(&path).unwrap();
        let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 30;
        bytes[second] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (_, r) = CaseLog::open(dir.path()).unwrap();
        let ids: Vec<&str> = r.alerts.iter().map(|k| k.alert.alert_id.as_str()).collect();
        assert_eq!((ids, r.skipped_lines), (vec!["a1", "a3"], 1));
        let (_, r) = CaseLog::open(dir.path()).unwrap();
        assert_eq!((r.alerts.len(), r.skipped_lines), (2, 0));
    }

    #[test]
    fn compaction_keeps_the_state_and_drops_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CaseLog::open(dir.path()).unwrap();
        let mut a = kept("a1", 10);
        for level in 0..50 {
            a.alert.escalation_level = level;
            log.alerts(vec![a.clone()]).unwrap();
        }
        log.alerts(vec![kept("gone", 5)]).unwrap();
        log.queue(&delivery("gone.opened.w1", "gone"), 6).unwrap();
        log.attempt("gone.opened.w1", ok(7)).unwrap();
        log.queue(&delivery("a1.opened.w1", "a1"), 11).unwrap();
        log.attempt("a1.opened.w1", failed(12)).unwrap();
        log.queue(&delivery("a1.escalated1.w1", "a1"), 13).unwrap();
        log.attempt("a1.escalated1.w1", ok(14)).unwrap();
        let before = std::fs::metadata(dir.path().join("cases.log"))
            .unwrap()
            .len();

        let after = log.compact(vec![a.clone()]).unwrap();
        assert!(after < before / 5, "{after} of {before} bytes");
        assert!(log.sent_for("gone").is_empty(), "forgotten with its alert");
        log.attempt("a1.opened.w1", failed(15)).unwrap();
        drop(log);

        let (log, r) = CaseLog::open(dir.path()).unwrap();
        assert_eq!(r.alerts, [a]);
        assert_eq!(r.pending, [delivery("a1.opened.w1", "a1")]);
        let sent = log.sent_for("a1");
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].attempts, [failed(12), failed(15)]);
        assert_eq!(sent[1].accepted_at, Some(14));
        assert!(!log.queue(&delivery("a1.escalated1.w1", "a1"), 20).unwrap());
    }

    #[test]
    fn only_the_last_attempts_are_listed_but_all_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CaseLog::open(dir.path()).unwrap();
        log.queue(&delivery("d", "a"), 0).unwrap();
        for at in 0..(ATTEMPTS_KEPT as u64 + 20) {
            log.attempt("d", failed(at)).unwrap();
        }
        let sent = log.sent_for("a").remove(0);
        assert_eq!(sent.attempts_total as usize, ATTEMPTS_KEPT + 20);
        assert_eq!(sent.attempts.len(), ATTEMPTS_KEPT);
        assert_eq!(sent.attempts[0].at_ms, 20);
    }
}
