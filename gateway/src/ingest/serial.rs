//! Serial ingest: frames from nodes wired over RS-485 ([`gridwatch_firmware::framing`]), handed to
//! the pipeline exactly as MQTT messages are.
//!
//! - Each frame becomes an [`Incoming`] on the topic `gw/v1/{community}/{device}/{channel}`, with
//!   the gateway's own community (a bus belongs to one gateway), so decode, journal, rules and the
//!   counters cannot tell a wired node from a wireless one.
//! - A serial link has no acknowledgement: a frame travels as a QoS 0 publish, whose ack after
//!   the journal commit goes nowhere. Unlike QoS 0 MQTT telemetry it is never shed: the reader
//!   waits for room in the pipeline's queue while the port's buffers hold the line, so a frame
//!   that arrived whole is not dropped here. Events go on the events queue, the rest on the
//!   telemetry queue, as from MQTT.
//! - A frame that is not valid counts as received on channel `other` and rejected with reason
//!   `frame_<error>` (such as `frame_bad_crc`), with a rate-limited log line naming the port and
//!   what was wrong; the decoder starts afresh at the next delimiter.
//! - Reading blocks, so each port has its own blocking task that reads with a short timeout to
//!   notice shutdown. A port that cannot be opened or fails (a USB adapter unplugged) is opened
//!   again with backoff; the decoder starts afresh on each opening.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridwatch_firmware::framing::{self, Decoder};
use rumqttc::{Publish, QoS};
use tokio::sync::{mpsc, watch};

use super::mqtt::Incoming;
use crate::backoff::Backoff;
use crate::config::SerialConfig;
use crate::decode::topic::{channel_hint, Channel};
use crate::metrics::events::{MessageReceived, MessageRejected, SerialPortError, SerialPortOpened};
use crate::metrics::Metrics;

/// The largest frame body the decoder takes: any id and any payload the length field can say.
/// Payloads over `ingest.max_payload_bytes` are then rejected as `oversized` by decode, as over
/// MQTT.
pub const MAX_FRAME_BYTES: usize =
    framing::OVERHEAD + framing::MAX_ID_LEN + framing::MAX_PAYLOAD_LEN;

/// How long one read waits for bytes before the reader looks at the shutdown signal again.
const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// Waits between attempts to open a port, in milliseconds.
const REOPEN_MIN_MS: u64 = 100;
const REOPEN_MAX_MS: u64 = 5_000;

/// Where the drivers put messages: the pipeline's queues, shared with MQTT ingest.
#[derive(Clone)]
pub struct Queues {
    /// Life-safety and other events.
    pub events: mpsc::Sender<Incoming>,
    /// Telemetry and status.
    pub telemetry: mpsc::Sender<Incoming>,
}

/// Turns the bytes of one port into messages for the pipeline. No I/O: bytes in, messages out,
/// bad frames counted.
pub struct Framer {
    decoder: Box<Decoder<MAX_FRAME_BYTES>>,
    community: String,
    /// `serial:{port}`, in place of a topic in rejection logs.
    source: String,
    metrics: Arc<Metrics>,
}

impl Framer {
    /// A framer for `port`, whose nodes belong to `community`.
    pub fn new(port: &str, community: &str, metrics: Arc<Metrics>) -> Self {
        Self {
            decoder: Box::new(Decoder::new()),
            community: community.to_owned(),
            source: format!("serial:{port}"),
            metrics,
        }
    }

    /// Forgets a frame in progress: the next byte starts a new stream.
    pub fn reset(&mut self) {
        *self.decoder = Decoder::new();
    }

    /// Decodes `bytes`, received at `received_ms`: each whole frame goes to `out` as a message,
    /// each bad one is counted and logged.
    pub fn push(&mut self, bytes: &[u8], received_ms: u64, out: &mut Vec<Incoming>) {
        for &b in bytes {
            match self.decoder.push(b) {
                None => {}
                Some(Ok(frame)) => {
                    let topic = format!(
                        "gw/v1/{}/{}/{}",
                        self.community,
                        frame.device,
                        frame.channel.as_str()
                    );
                    out.push(Incoming {
                        publish: Publish::new(topic, QoS::AtMostOnce, frame.payload),
                        received_ms,
                    });
                }
                Some(Err(e)) => {
                    MessageReceived { channel: "other" }.emit(&self.metrics);
                    MessageRejected {
                        reason: e.as_str(),
                        topic: &self.source,
                        detail: &e,
                    }
                    .emit(&self.metrics);
                }
            }
        }
    }
}

/// Why reading a port stopped.
#[derive(Debug)]
enum End {
    /// The shutdown signal came.
    Shutdown,
    /// The pipeline stopped taking messages.
    PipelineClosed,
    /// The port failed; it is opened again after a wait.
    Failed(io::Error),
}

/// The loop that owns one serial port.
pub struct SerialDriver {
    port: String,
    baud: u32,
    framer: Framer,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

/// Builds the reader of one configured port, for nodes of `community`; nothing is opened until
/// [`SerialDriver::run`] is polled.
pub fn driver(cfg: &SerialConfig, community: &str, metrics: Arc<Metrics>) -> SerialDriver {
    SerialDriver {
        port: cfg.port.clone(),
        baud: cfg.baud,
        framer: Framer::new(&cfg.port, community, metrics.clone()),
        backoff: Backoff::new(REOPEN_MIN_MS, REOPEN_MAX_MS),
        metrics,
    }
}

impl SerialDriver {
    /// Reads the port on a blocking thread until `shutdown` turns true or the pipeline stops,
    /// opening it again whenever it fails.
    pub async fn run(self, queues: Queues, shutdown: watch::Receiver<bool>) {
        let port = self.port.clone();
        if let Err(e) =
            tokio::task::spawn_blocking(move || self.run_blocking(&queues, &shutdown)).await
        {
            tracing::error!(port, "serial reader stopped: {e}");
        }
    }

    fn run_blocking(mut self, queues: &Queues, shutdown: &watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let error = match serialport::new(&self.port, self.baud)
                .timeout(READ_TIMEOUT)
                .open()
            {
                Ok(mut port) => {
                    SerialPortOpened {
                        port: &self.port,
                        baud: self.baud,
                    }
                    .emit(&self.metrics);
                    self.framer.reset();
                    match self.read(&mut port, queues, shutdown) {
                        End::Shutdown | End::PipelineClosed => break,
                        End::Failed(e) => e,
                    }
                }
                Err(e) => io::Error::from(e),
            };
            let wait = self.backoff.next_wait();
            SerialPortError {
                port: &self.port,
                error: &error,
                retry_in: wait,
            }
            .emit(&self.metrics);
            if sleep_unless_shutdown(wait, shutdown) {
                break;
            }
        }
        self.metrics
            .serial_port_open
            .with_label_values(&[self.port.as_str()])
            .set(0);
    }

    /// Reads until the reader fails, the shutdown signal comes or the pipeline stops; every
    /// frame read before that is handed on.
    fn read(
        &mut self,
        reader: &mut dyn Read,
        queues: &Queues,
        shutdown: &watch::Receiver<bool>,
    ) -> End {
        let mut buf = [0u8; 4096];
        let mut batch = Vec::new();
        loop {
            if *shutdown.borrow() {
                return End::Shutdown;
            }
            match reader.read(&mut buf) {
                Ok(0) => {
                    return End::Failed(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the port was closed",
                    ))
                }
                Ok(n) => {
                    // Reset only once bytes flow: a port that opens and fails at once still
                    // backs off.
                    self.backoff.reset();
                    self.framer
                        .push(&buf[..n], crate::clock::now_ms(), &mut batch);
                    for m in batch.drain(..) {
                        let queue = if channel_hint(&m.publish.topic) == Some(Channel::Event) {
                            &queues.events
                        } else {
                            &queues.telemetry
                        };
                        if queue.blocking_send(m).is_err() {
                            return End::PipelineClosed;
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return End::Failed(e),
            }
        }
    }
}

/// Sleeps for `wait` in short steps; true if the shutdown signal came meanwhile.
fn sleep_unless_shutdown(wait: Duration, shutdown: &watch::Receiver<bool>) -> bool {
    let until = Instant::now() + wait;
    loop {
        if *shutdown.borrow() {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(READ_TIMEOUT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_firmware::framing::{encode, max_encoded_len, Frame};

    fn line(device: &str, channel: framing::Channel, payload: &[u8]) -> Vec<u8> {
        let frame = Frame {
            device,
            channel,
            payload,
        };
        let mut out = vec![0; max_encoded_len(frame.body_len())];
        let n = encode(&frame, &mut out).unwrap();
        out.truncate(n);
        out
    }

    const SOS: &[u8] =
        br#"{"v":1,"ts":1795000000456,"seq":43,"kind":"sos","event":"sos_pressed","data":{}}"#;
    const MANHOLE: &[u8] =
        br#"{"v":1,"ts":1795000000123,"seq":42,"kind":"manhole","data":{"tilt_deg":3.2}}"#;

    fn test_driver(metrics: &Arc<Metrics>) -> SerialDriver {
        driver(
            &SerialConfig {
                port: "/dev/ttyTEST".into(),
                baud: 9600,
            },
            "sunny-garden",
            metrics.clone(),
        )
    }

    fn drain(rx: &mut mpsc::Receiver<Incoming>) -> Vec<(String, QoS, Vec<u8>)> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| (m.publish.topic, m.publish.qos, m.publish.payload.to_vec()))
            .collect()
    }

    fn rejected(metrics: &Metrics, reason: &str) -> u64 {
        metrics.rejected.with_label_values(&[reason]).get()
    }

    /// A reader that hands out its chunks one per read, then fails as an unplugged adapter does.
    struct Chunks(Vec<io::Result<Vec<u8>>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "unplugged"));
            }
            let chunk = self.0.remove(0)?;
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn frames_become_messages_on_their_devices_topics_and_garbage_is_counted() {
        let metrics = Arc::new(Metrics::new());
        let mut d = test_driver(&metrics);
        let (events_tx, mut events) = mpsc::channel(8);
        let (telemetry_tx, mut telemetry) = mpsc::channel(8);
        let queues = Queues {
            events: events_tx,
            telemetry: telemetry_tx,
        };
        // Garbage without a delimiter runs into the frame after it: the COBS block it opens
        // (code 0xFF) is still 245 bytes short at that frame's delimiter.
        let mut bytes = vec![0xFF; 10];
        bytes.extend(line("mh-1", framing::Channel::Telemetry, MANHOLE));
        bytes.extend(b"\x01\x02noise\x00");
        bytes.extend(line("sos-1", framing::Channel::Event, SOS));
        bytes.extend(line("sos-1", framing::Channel::Status, b"online"));
        let mut corrupt = line("mh-1", framing::Channel::Telemetry, MANHOLE);
        corrupt[20] ^= 0x40;
        bytes.extend(corrupt);
        bytes.extend(line("mh-1", framing::Channel::Telemetry, MANHOLE));
        let (_stop, shutdown) = watch::channel(false);
        let end = d.read(&mut bytes.as_slice(), &queues, &shutdown);
        assert!(matches!(end, End::Failed(e) if e.kind() == io::ErrorKind::UnexpectedEof));
        let sent =
            |topic: &str, payload: &[u8]| (topic.to_owned(), QoS::AtMostOnce, payload.to_vec());
        assert_eq!(
            drain(&mut events),
            [sent("gw/v1/sunny-garden/sos-1/event", SOS)]
        );
        assert_eq!(
            drain(&mut telemetry),
            [
                sent("gw/v1/sunny-garden/sos-1/status", b"online"),
                sent("gw/v1/sunny-garden/mh-1/telemetry", MANHOLE),
            ]
        );
        assert_eq!(rejected(&metrics, "frame_cut_short"), 2);
        assert_eq!(rejected(&metrics, "frame_bad_crc"), 1);
        assert_eq!(metrics.received_by[3].get(), 3);
    }

    #[test]
    fn frames_read_before_the_port_fails_are_handed_on() {
        let metrics = Arc::new(Metrics::new());
        let mut d = test_driver(&metrics);
        let (events_tx, mut events) = mpsc::channel(8);
        let (telemetry_tx, _telemetry) = mpsc::channel(8);
        let queues = Queues {
            events: events_tx,
            telemetry: telemetry_tx,
        };
        let sos = line("sos-1", framing::Channel::Event, SOS);
        let (head, tail) = sos.split_at(20);
        let mut reader = Chunks(vec![
            Ok(head.to_vec()),
            Err(io::Error::new(io::ErrorKind::TimedOut, "quiet line")),
            Ok(tail.to_vec()),
        ]);
        let (_stop, shutdown) = watch::channel(false);
        let end = d.read(&mut reader, &queues, &shutdown);
        assert!(matches!(end, End::Failed(e) if e.kind() == io::ErrorKind::BrokenPipe));
        assert_eq!(drain(&mut events).len(), 1);
    }

    #[test]
    fn reading_stops_when_the_pipeline_is_gone() {
        let metrics = Arc::new(Metrics::new());
        let mut d = test_driver(&metrics);
        let (events_tx, events) = mpsc::channel(8);
        let (telemetry_tx, _telemetry) = mpsc::channel(8);
        drop(events);
        let queues = Queues {
            events: events_tx,
            telemetry: telemetry_tx,
        };
        let (_stop, shutdown) = watch::channel(false);
        let sos = line("sos-1", framing::Channel::Event, SOS);
        let end = d.read(&mut sos.as_slice(), &queues, &shutdown);
        assert!(matches!(end, End::PipelineClosed), "{end:?}");
    }

    #[tokio::test]
    async fn a_missing_port_is_retried_with_backoff_and_counted_until_shutdown() {
        let metrics = Arc::new(Metrics::new());
        let d = driver(
            &SerialConfig {
                port: "/nonexistent/ttyGRIDWATCH".into(),
                baud: 115_200,
            },
            "sunny-garden",
            metrics.clone(),
        );
        let (events, _e) = mpsc::channel(1);
        let (telemetry, _t) = mpsc::channel(1);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(d.run(Queues { events, telemetry }, shutdown));
        let errors = || {
            metrics
                .serial_port_errors
                .with_label_values(&["/nonexistent/ttyGRIDWATCH"])
                .get()
        };
        // Attempts at 0, 100 and 300 ms: the waits double from 100 ms, so the fourth would
        // come 400 ms after the third.
        let started = Instant::now();
        while errors() < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no third attempt"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("stops soon after shutdown")
            .unwrap();
        assert_eq!(errors(), 3);
    }
}
