//! Accounting of a run: what was sent, by what it was meant to test and what the gateway should
//! do with it ([`Label`], [`Expect`]); the counters the connections and the sender share; the
//! progress line and the summary at the end. Formatting is pure: snapshots in, text out.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a message was meant to test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    /// A healthy device's readings.
    Telemetry,
    /// The retained `online` after connecting.
    Online,
    /// Readings from a device sending far above its rate.
    Flood,
    /// A payload that is not JSON (a valid one cut in half).
    BadJson,
    /// A valid payload that says `"v":2`.
    WrongVersion,
    /// A reading outside its catalogue range.
    OutOfRange,
    /// A reading the kind does not have.
    UnknownReading,
    /// An event the kind does not have.
    UnknownEvent,
    /// A payload of another kind than the registry's.
    WrongKind,
    /// A payload larger than the gateway takes.
    Oversize,
    /// A genuine message with its clock an hour ahead.
    ClockSkew,
    /// Signed with another key.
    BadMac,
    /// An earlier message sent again byte for byte, older than the few the gateway takes as
    /// redeliveries.
    ReplayOld,
    /// The last sequence number again on new bytes.
    ReplaySameSeq,
}

/// What the gateway should do with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Take it.
    Accepted,
    /// Refuse it; the `reason` label of `gridwatch_messages_rejected_total`.
    Rejected(&'static str),
    /// Take it while the device is under its rate, drop the rest as `rate_limited`.
    RateLimited,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Accepted => f.write_str("accepted"),
            Expect::Rejected(reason) => write!(f, "rejected: {reason}"),
            Expect::RateLimited => {
                f.write_str("accepted up to the rate limit, then dropped: rate_limited")
            }
        }
    }
}

impl Label {
    /// Every label, in summary order.
    pub const ALL: [Label; 14] = [
        Label::Telemetry,
        Label::Online,
        Label::Flood,
        Label::BadJson,
        Label::WrongVersion,
        Label::OutOfRange,
        Label::UnknownReading,
        Label::UnknownEvent,
        Label::WrongKind,
        Label::Oversize,
        Label::ClockSkew,
        Label::BadMac,
        Label::ReplayOld,
        Label::ReplaySameSeq,
    ];

    /// The label's name in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Telemetry => "telemetry",
            Label::Online => "online",
            Label::Flood => "flood",
            Label::BadJson => "bad_json",
            Label::WrongVersion => "wrong_version",
            Label::OutOfRange => "out_of_range",
            Label::UnknownReading => "unknown_reading",
            Label::UnknownEvent => "unknown_event",
            Label::WrongKind => "wrong_kind",
            Label::Oversize => "oversize",
            Label::ClockSkew => "clock_skew",
            Label::BadMac => "bad_mac",
            Label::ReplayOld => "replay_old",
            Label::ReplaySameSeq => "replay_same_seq",
        }
    }

    /// What the gateway should do with such a message.
    pub fn expect(self) -> Expect {
        match self {
            Label::Telemetry | Label::Online => Expect::Accepted,
            Label::Flood => Expect::RateLimited,
            Label::BadJson | Label::WrongVersion => Expect::Rejected("malformed"),
            Label::OutOfRange | Label::UnknownReading => Expect::Rejected("bad_reading"),
            Label::UnknownEvent => Expect::Rejected("unknown_event"),
            Label::WrongKind => Expect::Rejected("wrong_kind"),
            Label::Oversize => Expect::Rejected("oversized"),
            Label::ClockSkew => Expect::Rejected("clock_skew"),
            Label::BadMac => Expect::Rejected("bad_mac"),
            Label::ReplayOld | Label::ReplaySameSeq => Expect::Rejected("replayed"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters shared by the sender and the connections.
#[derive(Debug, Default)]
pub struct Counters {
    /// Publishes written to a connection (`Outgoing::Publish`).
    pub sent: AtomicU64,
    /// PUBACKs from the broker (QoS 1).
    pub acked: AtomicU64,
    /// Connection failures (each followed by a reconnect).
    pub connection_errors: AtomicU64,
    /// Messages a closed client would not take.
    pub publish_errors: AtomicU64,
    /// Messages a device's firmware node would not build.
    pub device_errors: AtomicU64,
    /// Messages handed to a client, by label.
    by_label: [AtomicU64; Label::ALL.len()],
}

/// The counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Publishes written to a connection.
    pub sent: u64,
    /// PUBACKs.
    pub acked: u64,
    /// Every error: connection, publish, device.
    pub errors: u64,
}

impl Counters {
    /// One more message with `label` handed to a client.
    pub fn handed(&self, label: Label) {
        self.by_label[label.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many messages with `label` were handed to a client.
    pub fn handed_count(&self, label: Label) -> u64 {
        self.by_label[label.index()].load(Ordering::Relaxed)
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            sent: get(&self.sent),
            acked: get(&self.acked),
            errors: get(&self.connection_errors)
                + get(&self.publish_errors)
                + get(&self.device_errors),
        }
    }
}

/// The progress line: the rate over the last `interval`, then the totals.
pub fn progress_line(
    elapsed: Duration,
    interval: Duration,
    before: Snapshot,
    now: Snapshot,
    target_rate: f64,
    qos1: bool,
) -> String {
    let rate = (now.sent - before.sent) as f64 / interval.as_secs_f64().max(1e-9);
    let acked = if qos1 {
        format!("{}", now.acked)
    } else {
        "-".to_owned()
    };
    format!(
        "[{:>4}s] {rate:>8.0} msg/s (target {target_rate:.0})  sent {}  acked {acked}  errors {}",
        elapsed.as_secs(),
        now.sent,
        now.errors
    )
}

/// Latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: u32,
    /// 90th percentile.
    pub p90: u32,
    /// 99th percentile.
    pub p99: u32,
    /// The largest sample.
    pub max: u32,
    /// How many samples.
    pub count: usize,
}

/// The percentiles of `samples` (sorted in place), nearest-rank; `None` without samples.
pub fn percentiles(samples: &mut [u32]) -> Option<Percentiles> {
    samples.sort_unstable();
    let n = samples.len();
    let rank = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    (n > 0).then(|| Percentiles {
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: samples[n - 1],
        count: n,
    })
}

/// The CPU time (user and system) so far of process `pid`, or of this one when `None`, from
/// `/proc/<pid>/stat`; `None` where there is no such file.
pub fn process_cpu(pid: Option<u32>) -> Option<Duration> {
    let path = pid.map_or("/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15, in USER_HZ ticks, which Linux fixes at 100 for this interface.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// What a run did, for the end.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Devices driven.
    pub devices: usize,
    /// MQTT connections used.
    pub connections: usize,
    /// How long devices sent.
    pub window: Duration,
    /// The target rate, messages per second.
    pub target_rate: f64,
    /// Sends the schedule called for within the window.
    pub scheduled: u64,
    /// Written to a connection within the window.
    pub sent_in_window: u64,
    /// The counters once the connections were drained.
    pub total: Snapshot,
    /// Whether messages went at QoS 1 (acks are counted).
    pub qos1: bool,
    /// Connection failures.
    pub connection_errors: u64,
    /// Messages a closed client would not take.
    pub publish_errors: u64,
    /// Messages a firmware node would not build.
    pub device_errors: u64,
    /// Messages handed to a client, by label (labels with none left out).
    pub by_label: Vec<(Label, u64)>,
    /// Last wills the broker was left to publish (devices that vanished).
    pub wills: usize,
    /// Publish-to-PUBACK latency (QoS 1).
    pub latency: Option<Percentiles>,
    /// The simulator's CPU time over the run.
    pub cpu: Option<Duration>,
}

impl Summary {
    /// The achieved rate over the window, messages per second.
    pub fn achieved_rate(&self) -> f64 {
        self.sent_in_window as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Every error.
    pub fn errors(&self) -> u64 {
        self.connection_errors + self.publish_errors + self.device_errors
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.window.as_secs_f64();
        writeln!(
            f,
            "{} devices over {} connection{} for {secs:.1} s",
            self.devices,
            self.connections,
            if self.connections == 1 { "" } else { "s" }
        )?;
        writeln!(
            f,
            "rate      {:.0} msg/s achieved, target {:.0} msg/s ({:.1}%)",
            self.achieved_rate(),
            self.target_rate,
            100.0 * self.achieved_rate() / self.target_rate.max(1e-9)
        )?;
        writeln!(
            f,
            "sent      {} ({} scheduled in the window, {} within it)",
            self.total.sent, self.scheduled, self.sent_in_window
        )?;
        if self.qos1 {
            writeln!(
                f,
                "acked     {} ({} unacknowledged)",
                self.total.acked,
                self.total.sent.saturating_sub(self.total.acked)
            )?;
        } else {
            writeln!(f, "acked     - (QoS 0)")?;
        }
        writeln!(
            f,
            "errors    {} (connection {}, publish {}, device {})",
            self.errors(),
            self.connection_errors,
            self.publish_errors,
            self.device_errors
        )?;
        if let Some(p) = self.latency {
            let ms = |us: u32| f64::from(us) / 1000.0;
            writeln!(
                f,
                "PUBACK    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms ({} samples)",
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.max),
                p.count
            )?;
        }
        if let Some(cpu) = self.cpu {
            writeln!(
                f,
                "cpu       {:.1} s ({:.0}% of one core)",
                cpu.as_secs_f64(),
                100.0 * cpu.as_secs_f64() / secs.max(1e-9)
            )?;
        }
        if self.by_label.len() > 1 || self.wills > 0 {
            writeln!(f, "by what it tests (what the gateway should do):")?;
            for (label, n) in &self.by_label {
                writeln!(f, "  {:<16} {n:>8}  {}", label.as_str(), label.expect())?;
            }
            if self.wills > 0 {
                writeln!(
                    f,
                    "  {:<16} {:>8}  accepted (the broker publishes each vanished device's last will)",
                    "offline",
                    self.wills
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_progress_line_shows_the_last_seconds_rate_and_the_totals() {
        let before = Snapshot {
            sent: 1000,
            acked: 990,
            errors: 0,
        };
        let now = Snapshot {
            sent: 11_000,
            acked: 10_950,
            errors: 2,
        };
        let line = progress_line(
            Duration::from_secs(2),
            Duration::from_secs(1),
            before,
            now,
            10_000.0,
            true,
        );
        assert_eq!(
            line,
            "[   2s]    10000 msg/s (target 10000)  sent 11000  acked 10950  errors 2"
        );
        let qos0 = progress_line(
            Duration::ZERO,
            Duration::from_secs(1),
            before,
            now,
            1.0,
            false,
        );
        assert!(qos0.contains("acked -"), "{qos0}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        let p = percentiles(&mut samples).unwrap();
        assert_eq!(
            (p.p50, p.p90, p.p99, p.max, p.count),
            (50, 90, 99, 100, 100)
        );
        assert_eq!(percentiles(&mut []), None);
        assert_eq!(percentiles(&mut [7]).map(|p| (p.p50, p.p99)), Some((7, 7)));
    }

    #[test]
    fn every_fault_names_the_reason_the_gateway_counts_it_under() {
        let reasons: Vec<String> = Label::ALL.iter().map(|l| l.expect().to_string()).collect();
        assert_eq!(reasons[0], "accepted");
        assert!(reasons.contains(&"rejected: replayed".to_string()));
        assert_eq!(
            Label::ALL.iter().map(|l| l.index()).collect::<Vec<_>>(),
            (0..14).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_summary_says_rate_acks_errors_latency_and_faults() {
        let s = Summary {
            devices: 10,
            connections: 1,
            window: Duration::from_secs(10),
            target_rate: 10.0,
            scheduled: 100,
            sent_in_window: 95,
            total: Snapshot {
                sent: 100,
                acked: 99,
                errors: 1,
            },
            qos1: true,
            connection_errors: 1,
            publish_errors: 0,
            device_errors: 0,
            by_label: vec![(Label::Telemetry, 90), (Label::ReplayOld, 10)],
            wills: 2,
            latency: percentiles(&mut [1500, 2500]),
            cpu: Some(Duration::from_secs(1)),
        };
        let text = s.to_string();
        for want in [
            "rate      10 msg/s achieved, target 10 msg/s (95.0%)",
            "acked     99 (1 unacknowledged)",
            "errors    1 (connection 1, publish 0, device 0)",
            "PUBACK    p50 1.50 ms",
            "cpu       1.0 s (10% of one core)",
            "replay_old             10  rejected: replayed",
            "offline                 2  accepted",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }

    #[test]
    fn cpu_time_is_read_for_this_process_and_not_for_one_that_does_not_exist() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu(None).is_some());
            assert!(process_cpu(Some(std::process::id())).is_some());
        }
        assert_eq!(process_cpu(Some(u32::MAX)), None);
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered_and_taken_from_the_samples(mut samples in prop::collection::vec(any::<u32>(), 1..500)) {
            let copy = samples.clone();
            let p = percentiles(&mut samples).unwrap();
            prop_assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.max);
            prop_assert!(copy.contains(&p.p50) && copy.contains(&p.p99));
            prop_assert_eq!(p.max, *copy.iter().max().unwrap());
        }
    }
}
