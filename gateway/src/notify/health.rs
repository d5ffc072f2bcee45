//! Which channels keep failing: the notifier reports every attempt, the pipeline asks once a
//! minute and raises an alert for a channel that has failed again and again, so that a worker
//! nobody can reach is found before an SOS needs them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Channel;

/// A channel failing without a success in between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    /// The worker it reaches.
    pub worker: String,
    /// Which channel.
    pub channel: Channel,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// When the first of them failed.
    pub since_ms: u64,
    /// What the last one said.
    pub last_error: String,
}

/// The handle the notifier and the pipeline share.
#[derive(Clone, Default)]
pub struct ChannelHealth {
    failing: Arc<Mutex<HashMap<(String, Channel), Failing>>>,
}

impl ChannelHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Channel), Failing>> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An attempt on `worker`'s `channel` failed at `at_ms`.
    pub fn failed(&self, worker: &str, channel: Channel, at_ms: u64, error: &str) {
        let mut failing = self.lock();
        let f = failing
            .entry((worker.to_owned(), channel))
            .or_insert_with(|| Failing {
                worker: worker.to_owned(),
                channel,
                failures: 0,
                since_ms: at_ms,
                last_error: String::new(),
            });
        f.failures += 1;
        error.clone_into(&mut f.last_error);
    }

    /// An attempt on `worker`'s `channel` got through.
    pub fn succeeded(&self, worker: &str, channel: Channel) {
        self.lock().remove(&(worker.to_owned(), channel));
    }

    /// The channels that failed at least `failures` times in a row over at least `for_ms` by
    /// `now_ms`, ordered by worker and channel.
    pub fn failing(&self, now_ms: u64, failures: u32, for_ms: u64) -> Vec<Failing> {
        let mut out: Vec<Failing> = self
            .lock()
            .values()
            .filter(|f| f.failures >= failures && now_ms.saturating_sub(f.since_ms) >= for_ms)
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.worker, a.channel.as_str()).cmp(&(&b.worker, b.channel.as_str())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_counts_as_failing_after_enough_failures_over_enough_time_until_it_works() {
        let h = ChannelHealth::default();
        h.failed("w1", Channel::Wecom, 1_000, "HTTP 503");
        h.failed("w1", Channel::Wecom, 2_000, "HTTP 503");
        assert!(h.failing(100_000, 3, 60_000).is_empty(), "two failures");
        h.failed("w1", Channel::Wecom, 3_000, "93000 invalid webhook url");
        h.failed("w2", Channel::Webhook, 3_000, "connection refused");
        assert!(h.failing(30_000, 3, 60_000).is_empty(), "not for long yet");
        let f = h.failing(61_000, 3, 60_000);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].failures, f[0].since_ms), (3, 1_000));
        assert_eq!(f[0].last_error, "93000 invalid webhook url");
        h.succeeded("w1", Channel::Wecom);
        assert!(h.failing(1_000_000, 1, 0).iter().all(|f| f.worker == "w2"));
    }
}
