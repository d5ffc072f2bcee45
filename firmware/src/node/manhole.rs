//! The manhole node's loop: a battery node under a cover that sleeps between samples.
//!
//! | part | connection | notes |
//! |---|---|---|
//! | accelerometer | ADXL345 on I2C, address 0x53 (ALT ADDRESS low) or 0x1D, as [`Adxl345`] | tilt from the cover's resting gravity vector [`ManholeNodeConfig::rest_mg`], measured at install |
//! | cover contact | a GPIO input, as [`DebouncedInput`] | give it a debounce of 0: samples are seconds apart and the detector holds 2 s |
//! | water level | an ADC pin, as [`ScaledInput`] (0.5–4.5 V or 4–20 mA transmitter) | cm |
//! | gas | an ADC pin, as [`ScaledInput`] | ppm, methane equivalent |
//! | battery | an ADC pin behind a divider, as [`BatteryMonitor`] | |
//!
//! [`ManholeNode::step`] returns when it wants to run next; the board sleeps until then (or until
//! a sensor interrupt). It samples every [`ManholeNodeConfig::sample_every_ms`], and every
//! [`ManholeNodeConfig::pending_every_ms`] while a condition is being timed, so a displaced
//! cover is reported 2 s after it was first seen, not at the next idle sample. What goes out
//! follows [`Schedule`]: events at once, each carrying the step's readings (so the gateway's
//! reading rules see them too); otherwise a heartbeat with the readings every 30 minutes (the
//! kind's `report_every_secs`, 1 800 s). Nothing else: a manhole node has no periodic telemetry,
//! to last years on its cells. A reading that could not be taken is left out of the message.

use embedded_hal::digital::InputPin;
use embedded_hal::i2c::I2c;

use super::runtime::{flag, loop_accessors, number, volts, Runtime};
use super::{Config, Transport};
use crate::detect::manhole::{
    Manhole, ManholeConfig, ManholeEvent, ManholeSample, Report, Schedule, ScheduleConfig,
};
use crate::detect::Event;
use crate::drivers::adxl345::{self, Adxl345};
use crate::drivers::analog::{BatteryMonitor, ScaledInput};
use crate::drivers::input::DebouncedInput;
use crate::hal::{AnalogIn, NvStore};
use crate::seq::SeqCounter;
use crate::wire::{EncodeError, Reading};

/// The kind, as the catalogue spells it.
pub const KIND: &str = "manhole";

/// The messaging configuration of a manhole node: telemetry goes out whenever the loop offers
/// it (the loop's [`Schedule`] decides when), and the node's own heartbeat is off for the same
/// reason.
pub fn config(key: Option<&[u8]>) -> Config<'_> {
    Config {
        key,
        telemetry_period_ms: 0,
        telemetry_min_gap_ms: 0,
        heartbeat_ms: u64::MAX,
        ..Config::new(KIND)
    }
}

/// Timings and calibration of the manhole node's loop. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct ManholeNodeConfig {
    /// The detector's thresholds.
    pub detector: ManholeConfig,
    /// The heartbeat period (30 min, the kind's reporting interval).
    pub schedule: ScheduleConfig,
    /// How the accelerometer is set up.
    pub accel: adxl345::Config,
    /// The cover's resting gravity vector in milli-g, read once at install. Default
    /// `[0, 0, 1000]`: the part lying flat, Z up.
    pub rest_mg: [i32; 3],
    /// How often the sensors are read while nothing is being timed, in ms. Default 10 s.
    pub sample_every_ms: u64,
    /// How often they are read while a condition is being timed, in ms. Default 500 ms, a
    /// quarter of the cover's 2 s hold.
    pub pending_every_ms: u64,
    /// How long a read must keep failing before `tamper`, in ms. Default 60 s.
    pub fault_after_ms: u64,
}

impl Default for ManholeNodeConfig {
    /// The defaults: see each field.
    fn default() -> Self {
        Self {
            detector: ManholeConfig::default(),
            schedule: ScheduleConfig::default(),
            accel: adxl345::Config::default(),
            rest_mg: [0, 0, 1000],
            sample_every_ms: 10_000,
            pending_every_ms: 500,
            fault_after_ms: 60_000,
        }
    }
}

/// The parts a manhole node is built from.
pub struct ManholeParts<I2C, P, W, G, A> {
    /// The accelerometer on its bus.
    pub accel: Adxl345<I2C>,
    /// The cover contact (active = open).
    pub cover: DebouncedInput<P>,
    /// The water-level transmitter, in cm.
    pub water: ScaledInput<W>,
    /// The gas transmitter, in ppm.
    pub gas: ScaledInput<G>,
    /// The battery.
    pub battery: BatteryMonitor<A>,
}

/// A manhole node: its parts, its detector, its schedule and its [`Runtime`].
pub struct ManholeNode<'a, I2C, P, W, G, A> {
    parts: ManholeParts<I2C, P, W, G, A>,
    runtime: Runtime<'a>,
    detector: Manhole,
    schedule: Schedule,
    accel_config: adxl345::Config,
    accel_ready: bool,
    rest_mg: [i32; 3],
    sample_every_ms: u64,
    pending_every_ms: u64,
    next_sample_ms: u64,
}

impl<'a, I2C, P, W, G, A> ManholeNode<'a, I2C, P, W, G, A>
where
    I2C: I2c,
    P: InputPin,
    W: AnalogIn,
    G: AnalogIn,
    A: AnalogIn,
{
    /// A node over `parts`, numbering with `seq`, started at `now_ms`. `messaging.kind` is set
    /// to [`KIND`]; start from [`config`].
    pub fn new(
        messaging: Config<'a>,
        seq: SeqCounter,
        parts: ManholeParts<I2C, P, W, G, A>,
        config: &ManholeNodeConfig,
        now_ms: u64,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            parts,
            runtime: Runtime::start(KIND, messaging, seq, now_ms, config.fault_after_ms)?,
            detector: Manhole::new(&config.detector),
            schedule: Schedule::new(&config.schedule, now_ms),
            accel_config: config.accel,
            accel_ready: false,
            rest_mg: config.rest_mg,
            sample_every_ms: config.sample_every_ms,
            pending_every_ms: config.pending_every_ms,
            next_sample_ms: now_ms,
        })
    }

    /// One turn of the loop at `now_ms` (see the module header); returns the monotonic time at
    /// which it wants to run next.
    pub fn step<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
        store: &mut S,
    ) -> u64 {
        if now_ms >= self.next_sample_ms {
            self.sample_and_report(now_ms, transport, store);
        }
        // A sleeping node's radio hears the downlink only around its uplinks; there is no
        // command for a manhole yet, but a cmd's `ts` still sets the clock.
        self.runtime.poll(now_ms, transport, |_| {});
        self.runtime.tick(now_ms, transport, store);
        self.next_sample_ms.min(self.schedule.next_due_ms())
    }

    fn sample_and_report<T: Transport, S: NvStore>(
        &mut self,
        now_ms: u64,
        transport: &mut T,
        store: &mut S,
    ) {
        let mut errors = 0u32;
        let mut seen = |value: Option<f32>| {
            value.unwrap_or_else(|| {
                errors += 1;
                f32::NAN
            })
        };
        let tilt_deg = seen(self.tilt_deg());
        let water_cm = seen(self.parts.water.read().ok());
        let gas_ppm = seen(self.parts.gas.read().ok());
        let battery_mv = self.parts.battery.read_mv().ok();
        let battery_v = seen(battery_mv.map(|mv| mv as f32 / 1000.0));
        if self.parts.cover.sample(now_ms).is_err() {
            errors += 1;
        }
        let sample = ManholeSample {
            tilt_deg,
            cover_open: self.parts.cover.is_active(),
            water_cm,
            gas_ppm,
            battery_v,
        };

        let raised = self.detector.step(now_ms, &sample);
        let events = self.runtime.events::<{ ManholeEvent::ALL.len() + 1 }>(
            now_ms,
            raised.iter().map(Event::name),
            errors,
            errors > 0,
        );

        let readings = [
            number("tilt_deg", sample.tilt_deg, 1),
            Some(flag("cover_open", sample.cover_open)),
            number("water_cm", sample.water_cm, 1),
            number("gas_ppm", sample.gas_ppm, 0),
            battery_mv.map(|mv| volts("battery_v", mv)),
        ];
        let data: heapless::Vec<Reading<'static>, 5> = readings.into_iter().flatten().collect();
        let has_events = !events.is_empty() || self.runtime.backlog() > 0;
        match self.schedule.due(now_ms, has_events) {
            Report::Events => {
                self.runtime
                    .publish(now_ms, &events, &data, transport, store);
                self.schedule.sent(now_ms);
            }
            Report::Heartbeat => {
                // A failed heartbeat counts as sent too: a dead link gets one try per period.
                self.runtime.telemetry(now_ms, &data, transport, store);
                self.schedule.sent(now_ms);
            }
            Report::Nothing => {}
        }
        let gap = if self.detector.is_pending() {
            self.pending_every_ms
        } else {
            self.sample_every_ms
        };
        self.next_sample_ms = now_ms.saturating_add(gap);
    }

    /// The cover's tilt, starting the accelerometer first if it is not running; `None` if the
    /// part could not be read (it is started again at the next sample).
    fn tilt_deg(&mut self) -> Option<f32> {
        if !self.accel_ready {
            self.parts.accel.init(self.accel_config).ok()?;
            self.accel_ready = true;
        }
        match self.parts.accel.read_mg() {
            Ok(mg) => Some(adxl345::tilt_deg(self.rest_mg, mg)),
            Err(_) => {
                self.accel_ready = false;
                None
            }
        }
    }

    loop_accessors!();

    /// Gives the parts back.
    pub fn release(self) -> ManholeParts<I2C, P, W, G, A> {
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use core::num::NonZeroU32;

    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    use super::*;
    use crate::drivers::adxl345::Address;
    use crate::drivers::analog::{Divider, LinearScale};
    use crate::drivers::Polarity;
    use crate::node::testkit::{Adc, FakeNet, Pin};
    use crate::node::Channel;
    use crate::seq::tests::MemStore;

    const WALL: u64 = 1_795_000_000_000;
    const ADDR: u8 = 0x53;
    /// Flat: Z = 256 LSB (1 g). Tilted: X = 66, Z = 247 LSB, about 15° from flat.
    const FLAT: [u8; 6] = [0, 0, 0, 0, 0, 1];
    const TILTED: [u8; 6] = [66, 0, 0, 0, 247, 0];

    fn init() -> Vec<T> {
        vec![
            T::write_read(ADDR, vec![0x00], vec![0xE5]),
            T::write(ADDR, vec![0x2D, 0x00]),
            T::write(ADDR, vec![0x2C, 0x18]),
            T::write(ADDR, vec![0x31, 0x0B]),
            T::write(ADDR, vec![0x2D, 0x08]),
        ]
    }

    fn read(data: [u8; 6]) -> T {
        T::write_read(ADDR, vec![0x32], data.to_vec())
    }

    type Node = ManholeNode<'static, Mock, Pin, Adc, Adc, Adc>;

    fn boot(i2c: Mock, store: &mut MemStore) -> Node {
        let parts = ManholeParts {
            accel: Adxl345::new(i2c, Address::AltLow),
            cover: DebouncedInput::new(Pin::at(false), Polarity::ActiveHigh, 0),
            // 0.9 V of a 0.5–4.5 V, 0–5 m transmitter: 50 cm. 0.5 V of gas: none.
            water: ScaledInput::new(Adc::at(900), LinearScale::transmitter_0v5_4v5(500.0)),
            gas: ScaledInput::new(Adc::at(500), LinearScale::transmitter_0v5_4v5(10_000.0)),
            battery: BatteryMonitor::new(Adc::at(3_600), Divider::new(0, NonZeroU32::MIN)),
        };
        let seq = SeqCounter::boot(store, 0).unwrap();
        let mut node =
            ManholeNode::new(config(None), seq, parts, &ManholeNodeConfig::default(), 0).unwrap();
        node.node_mut().set_wall_clock(0, WALL);
        node
    }

    /// Runs the node from 0 at the times it asks for, up to and including `until`; returns
    /// those times.
    fn run(node: &mut Node, net: &mut FakeNet, store: &mut MemStore, until: u64) -> Vec<u64> {
        let (mut t, mut wakes) = (0, Vec::new());
        while t <= until {
            t = node.step(t, net, store);
            wakes.push(t);
        }
        wakes
    }

    #[test]
    fn a_cover_tilted_15_degrees_for_3_seconds_publishes_cover_displaced_once() {
        let mut expected = init();
        expected.push(read(FLAT));
        // Tilted from the sample at 10 s until 13 s; the node samples every 500 ms meanwhile.
        expected.extend([TILTED; 5].map(read));
        expected.extend([FLAT; 2].map(read));
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = boot(Mock::new(&expected), &mut store);
        let wakes = run(&mut node, &mut net, &mut store, 40_000);
        assert_eq!(
            wakes,
            [10_000, 10_500, 11_000, 11_500, 12_000, 22_000, 32_000, 42_000]
        );
        assert_eq!(
            net.on(Channel::Telemetry),
            [
                r#"{"v":1,"ts":1795000000000,"seq":1,"kind":"manhole","data":{"tilt_deg":0,"cover_open":false,"water_cm":50,"gas_ppm":0,"battery_v":3.6}}"#
            ],
            "the boot heartbeat, and nothing else for 40 s"
        );
        assert_eq!(
            net.on(Channel::Event),
            [
                r#"{"v":1,"ts":1795000012000,"seq":2,"kind":"manhole","event":"cover_displaced","data":{"tilt_deg":14.9,"cover_open":false,"water_cm":50,"gas_ppm":0,"battery_v":3.6}}"#
            ]
        );
        net.assert_readings_listed(KIND);
        node.release().accel.release().done();
    }

    #[test]
    fn the_next_heartbeat_comes_30_minutes_after_the_last_message() {
        let mut expected = init();
        expected.extend([FLAT; 181].map(read));
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = boot(Mock::new(&expected), &mut store);
        run(&mut node, &mut net, &mut store, 1_800_000);
        let ts: Vec<u64> = net
            .on(Channel::Telemetry)
            .iter()
            .map(|p| crate::wire::decode(p.as_bytes()).unwrap().ts - WALL)
            .collect();
        assert_eq!(ts, [0, 1_800_000]);
        node.release().accel.release().done();
    }

    #[test]
    fn an_accelerometer_that_stops_answering_is_left_out_and_raises_tamper_after_a_minute() {
        let failed = || T::write_read(ADDR, vec![0x00], vec![0xE5]).with_error(ErrorKind::Other);
        let expected: Vec<T> = (0..7).map(|_| failed()).collect();
        let (mut net, mut store) = (FakeNet::default(), MemStore::default());
        let mut node = boot(Mock::new(&expected), &mut store);
        run(&mut node, &mut net, &mut store, 60_000);
        assert_eq!(
            net.on(Channel::Event),
            [
                r#"{"v":1,"ts":1795000060000,"seq":2,"kind":"manhole","event":"tamper","data":{"cover_open":false,"water_cm":50,"gas_ppm":0,"battery_v":3.6}}"#
            ]
        );
        assert_eq!(node.stats().read_errors, 7);
        node.release().accel.release().done();
    }
}
