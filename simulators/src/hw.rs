//! The simulated parts a virtual node's firmware runs over: digital pins, ADC inputs, an ADXL345
//! that answers its registers on I2C, a TFmini-S that streams its frames on a UART, a line
//! metering IC and an arc-detection module's pulse counter.
//!
//! Each part is split the way the world is: the firmware holds the part behind the embedded-hal
//! (or `gridwatch_firmware::hal`) trait it reads, and the device's physics hold a handle to the
//! same state, which they move at every step. Clones of a [`Pin`], an [`Adc`], a [`Meter`] or an
//! [`ArcPulses`] share their state; the accelerometer's physics handle is an [`Accel`], the
//! LiDAR's a [`Beam`].
//!
//! Any part can be cut off ([`Pin::cut`], [`Adc::cut`], [`Accel::cut`], [`Beam::cut`],
//! [`Meter::cut`], [`ArcPulses::cut`]): every read
//! then fails with [`CutOff`], as it does when a wire is cut or a sensor is pulled off its board,
//! and the firmware's fault watch raises `tamper` once it has lasted long enough.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use embedded_hal::digital::{self, ErrorType as PinErrorType, InputPin, OutputPin};
use embedded_hal::i2c::{self, I2c, NoAcknowledgeSource, Operation, SevenBitAddress};
use gridwatch_firmware::drivers::tfmini::{Frame, FRAME_LEN};
use gridwatch_firmware::hal::AnalogIn;
use gridwatch_firmware::node::electrical::{Line, LineMeter, PulseCounter};

/// What a read of a part that was cut off returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutOff;

impl digital::Error for CutOff {
    fn kind(&self) -> digital::ErrorKind {
        digital::ErrorKind::Other
    }
}

impl i2c::Error for CutOff {
    fn kind(&self) -> i2c::ErrorKind {
        // A part that is not on the bus does not acknowledge its address.
        i2c::ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
    }
}

impl embedded_io::Error for CutOff {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

/// A flag that says whether a part is cut off; clones share it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Wire(Arc<AtomicBool>);

impl Wire {
    /// Cuts the wire (`true`) or mends it.
    pub(crate) fn cut(&self, cut: bool) {
        self.0.store(cut, Ordering::Relaxed);
    }

    /// `Err` while the wire is cut.
    pub(crate) fn check(&self) -> Result<(), CutOff> {
        if self.0.load(Ordering::Relaxed) {
            Err(CutOff)
        } else {
            Ok(())
        }
    }
}

/// A digital pin: the physics set its level and the firmware reads it, or the firmware drives it
/// (an LED) and the physics look.
#[derive(Clone, Debug, Default)]
pub struct Pin {
    high: Arc<AtomicBool>,
    wire: Wire,
}

impl Pin {
    /// A pin at the given level.
    pub fn new(high: bool) -> Self {
        let pin = Self::default();
        pin.set(high);
        pin
    }

    /// Sets the level the firmware reads.
    pub fn set(&self, high: bool) {
        self.high.store(high, Ordering::Relaxed);
    }

    /// The level, as the physics see it (an output's last driven level).
    pub fn is_set(&self) -> bool {
        self.high.load(Ordering::Relaxed)
    }

    /// Cuts the pin's wire (`true`) or mends it.
    pub fn cut(&self, cut: bool) {
        self.wire.cut(cut);
    }
}

impl PinErrorType for Pin {
    type Error = CutOff;
}

impl InputPin for Pin {
    fn is_high(&mut self) -> Result<bool, CutOff> {
        self.wire.check()?;
        Ok(self.is_set())
    }

    fn is_low(&mut self) -> Result<bool, CutOff> {
        self.is_high().map(|high| !high)
    }
}

impl OutputPin for Pin {
    fn set_low(&mut self) -> Result<(), CutOff> {
        self.wire.check()?;
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), CutOff> {
        self.wire.check()?;
        self.set(true);
        Ok(())
    }
}

/// An ADC input: the physics set the millivolts at the pin.
#[derive(Clone, Debug, Default)]
pub struct Adc {
    mv: Arc<AtomicU32>,
    wire: Wire,
}

impl Adc {
    /// An input reading `mv`.
    pub fn new(mv: u32) -> Self {
        let adc = Self::default();
        adc.set_mv(mv);
        adc
    }

    /// Sets the voltage at the pin.
    pub fn set_mv(&self, mv: u32) {
        self.mv.store(mv, Ordering::Relaxed);
    }

    /// Cuts the input's wire (`true`) or mends it.
    pub fn cut(&self, cut: bool) {
        self.wire.cut(cut);
    }
}

impl AnalogIn for Adc {
    type Error = CutOff;

    fn read_mv(&mut self) -> Result<u32, CutOff> {
        self.wire.check()?;
        Ok(self.mv.load(Ordering::Relaxed))
    }
}

/// A line metering IC (an HLW8032 or a BL0942): the physics set the line's voltage and current.
#[derive(Clone, Debug, Default)]
pub struct Meter {
    line: Arc<Mutex<Line>>,
    wire: Wire,
}

impl Meter {
    /// Sets what the meter measures.
    pub fn set(&self, line: Line) {
        *self.line.lock().unwrap_or_else(PoisonError::into_inner) = line;
    }

    /// Cuts the meter's wire (`true`) or mends it.
    pub fn cut(&self, cut: bool) {
        self.wire.cut(cut);
    }
}

impl LineMeter for Meter {
    type Error = CutOff;

    fn read(&mut self) -> Result<Line, CutOff> {
        self.wire.check()?;
        Ok(*self.line.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The counter of an arc-detection module's pulses: the physics add fault-arc half-cycles, the
/// firmware takes them.
#[derive(Clone, Debug, Default)]
pub struct ArcPulses {
    count: Arc<AtomicU32>,
    wire: Wire,
}

impl ArcPulses {
    /// `n` more fault-arc half-cycles.
    pub fn add(&self, n: u32) {
        self.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Cuts the counter's wire (`true`) or mends it; pulses while cut are lost.
    pub fn cut(&self, cut: bool) {
        self.wire.cut(cut);
    }
}

impl PulseCounter for ArcPulses {
    type Error = CutOff;

    fn take(&mut self) -> Result<u32, CutOff> {
        if let Err(cut) = self.wire.check() {
            self.count.store(0, Ordering::Relaxed);
            return Err(cut);
        }
        Ok(self.count.swap(0, Ordering::Relaxed))
    }
}

/// The ADXL345's 7-bit address with ALT ADDRESS grounded, the one the simulated part answers.
pub const ADXL345_ADDRESS: u8 = 0x53;

const REG_DEVID: usize = 0x00;
const REG_BW_RATE: usize = 0x2C;
const REG_POWER_CTL: usize = 0x2D;
const REG_DATA_FORMAT: usize = 0x31;
const REG_DATAX0: usize = 0x32;
const REGISTERS: usize = 0x3A;
const MEASURE: u8 = 0x08;
const FULL_RES: u8 = 0x08;

/// The acceleration the physics put on the simulated ADXL345, in milli-g.
#[derive(Clone, Debug, Default)]
pub struct Accel {
    mg: Arc<Mutex<[i32; 3]>>,
    wire: Wire,
}

impl Accel {
    /// Sets the acceleration the part measures, milli-g `[x, y, z]`.
    pub fn set_mg(&self, mg: [i32; 3]) {
        *self.mg.lock().unwrap_or_else(PoisonError::into_inner) = mg;
    }

    fn mg(&self) -> [i32; 3] {
        *self.mg.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the part off the bus (`true`) or puts it back.
    pub fn cut(&self, cut: bool) {
        self.wire.cut(cut);
    }
}

/// An ADXL345 on I2C at [`ADXL345_ADDRESS`], answering the registers the firmware's driver uses
/// as the datasheet (Rev. G) says: DEVID reads 0xE5; BW_RATE, POWER_CTL and DATA_FORMAT keep what
/// is written; DATAX0..DATAZ1 hold the latest sample while Measure is set (standby leaves the
/// last one), in full resolution 256 LSB/g at every range, otherwise 10 bits over the range.
/// The register pointer auto-increments over a transfer.
#[derive(Debug)]
pub struct Adxl345 {
    regs: [u8; REGISTERS],
    pointer: usize,
    accel: Accel,
}

impl Adxl345 {
    /// The part at power-up (standby, 100 Hz, ±2 g, 10 bits), measuring what `accel` says.
    pub fn new(accel: Accel) -> Self {
        let mut regs = [0; REGISTERS];
        regs[REG_DEVID] = 0xE5;
        regs[REG_BW_RATE] = 0x0A;
        Self {
            regs,
            pointer: 0,
            accel,
        }
    }

    /// Latches a new sample into the data registers, as the part does at its output data rate.
    fn sample(&mut self) {
        if self.regs[REG_POWER_CTL] & MEASURE == 0 {
            return;
        }
        let format = self.regs[REG_DATA_FORMAT];
        let range_g = 2i64 << (format & 0b11);
        let lsb_per_g = if format & FULL_RES != 0 {
            256
        } else {
            512 / range_g
        };
        let limit = range_g * lsb_per_g - 1;
        for (axis, mg) in self.accel.mg().into_iter().enumerate() {
            let lsb = (i64::from(mg) * lsb_per_g * 2 + 1000 * mg.signum() as i64) / 2000;
            let lsb = lsb.clamp(-limit - 1, limit) as i16;
            let at = REG_DATAX0 + 2 * axis;
            self.regs[at..at + 2].copy_from_slice(&lsb.to_le_bytes());
        }
    }

    fn write_register(&mut self, value: u8) {
        // DEVID and the data registers are read-only; writes to them are ignored by the part.
        if matches!(self.pointer, REG_BW_RATE | REG_POWER_CTL | REG_DATA_FORMAT) {
            self.regs[self.pointer] = value;
        }
        self.pointer = (self.pointer + 1) % REGISTERS;
    }
}

impl i2c::ErrorType for Adxl345 {
    type Error = CutOff;
}

impl I2c<SevenBitAddress> for Adxl345 {
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), CutOff> {
        self.accel.wire.check()?;
        if address != ADXL345_ADDRESS {
            return Err(CutOff);
        }
        self.sample();
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    if let Some((&reg, values)) = bytes.split_first() {
                        self.pointer = usize::from(reg) % REGISTERS;
                        for &v in values {
                            self.write_register(v);
                        }
                    }
                }
                Operation::Read(buf) => {
                    for b in buf.iter_mut() {
                        *b = self.regs[self.pointer];
                        self.pointer = (self.pointer + 1) % REGISTERS;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What the simulated TFmini's beam hits: the distance in cm and the return's strength.
#[derive(Clone, Debug)]
pub struct Beam {
    state: Arc<Mutex<(u16, u16)>>,
    wire: Wire,
}

impl Beam {
    /// A beam hitting something `cm` away with a good return.
    pub fn new(cm: u16) -> Self {
        Self {
            state: Arc::new(Mutex::new((cm, 2_000))),
            wire: Wire::default(),
        }
    }

    /// Sets what the beam hits: `cm` away, with a return of `strength` (below 100 the datasheet
    /// calls the distance unreliable).
    pub fn set(&self, cm: u16, strength: u16) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = (cm, strength);
    }

    /// Cuts the UART's wire (`true`) or mends it.
    pub fn cut(&self, cut: bool) {
        self.wire.cut(cut);
    }

    fn frame(&self) -> [u8; FRAME_LEN] {
        let (cm, strength) = *self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Frame {
            raw_distance_cm: cm,
            strength,
            // 25 °C: (25 + 256) * 8.
            raw_temperature: 2_248,
        }
        .encode()
    }
}

/// The receive side of the UART a TFmini-S streams into: an endless run of frames, each made
/// when the reader gets to it, so every frame the firmware reads is what the beam hits then.
#[derive(Debug)]
pub struct TfminiUart {
    beam: Beam,
    frame: [u8; FRAME_LEN],
    next: usize,
}

impl TfminiUart {
    /// The stream of `beam`'s frames.
    pub fn new(beam: Beam) -> Self {
        Self {
            beam,
            frame: [0; FRAME_LEN],
            next: FRAME_LEN,
        }
    }
}

impl embedded_io::ErrorType for TfminiUart {
    type Error = CutOff;
}

impl embedded_io::Read for TfminiUart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, CutOff> {
        self.beam.wire.check()?;
        for b in buf.iter_mut() {
            if self.next == FRAME_LEN {
                self.frame = self.beam.frame();
                self.next = 0;
            }
            *b = self.frame[self.next];
            self.next += 1;
        }
        Ok(buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridwatch_firmware::drivers::adxl345::{self, Address};
    use gridwatch_firmware::drivers::tfmini::Tfmini;

    #[test]
    fn the_firmware_driver_sets_the_simulated_adxl345_up_and_reads_its_tilt() {
        let accel = Accel::default();
        let mut part = adxl345::Adxl345::new(Adxl345::new(accel.clone()), Address::AltLow);
        accel.set_mg([0, 0, 1000]);
        assert_eq!(
            part.read_mg(),
            Ok([0, 0, 0]),
            "standby: nothing measured yet"
        );
        part.init(adxl345::Config::default()).unwrap();
        let flat = part.read_mg().unwrap();
        assert!((flat[2] - 1000).abs() <= 4, "{flat:?}");
        let deg = 15f64.to_radians();
        accel.set_mg([(deg.sin() * 1000.0) as i32, 0, (deg.cos() * 1000.0) as i32]);
        let tilt = adxl345::tilt_deg([0, 0, 1000], part.read_mg().unwrap());
        assert!((tilt - 15.0).abs() < 0.5, "{tilt}");
    }

    #[test]
    fn a_simulated_adxl345_off_the_bus_or_at_another_address_does_not_answer() {
        let accel = Accel::default();
        let mut other = adxl345::Adxl345::new(Adxl345::new(accel.clone()), Address::AltHigh);
        assert!(other.init(adxl345::Config::default()).is_err());
        let mut part = adxl345::Adxl345::new(Adxl345::new(accel.clone()), Address::AltLow);
        accel.cut(true);
        assert!(part.init(adxl345::Config::default()).is_err());
        accel.cut(false);
        assert!(part.init(adxl345::Config::default()).is_ok());
    }

    #[test]
    fn the_adxl345_clips_at_its_range_in_ten_bit_mode() {
        let accel = Accel::default();
        let mut part = Adxl345::new(accel.clone());
        accel.set_mg([5_000, -5_000, 1_000]);
        // Measure at ±2 g, 10 bits: 256 LSB/g, clipped at 511.
        part.write(ADXL345_ADDRESS, &[0x2D, 0x08]).unwrap();
        let mut data = [0u8; 6];
        part.write_read(ADXL345_ADDRESS, &[0x32], &mut data)
            .unwrap();
        let axis = |i: usize| i16::from_le_bytes([data[2 * i], data[2 * i + 1]]);
        assert_eq!([axis(0), axis(1), axis(2)], [511, -512, 256]);
    }

    #[test]
    fn the_tfmini_driver_reads_what_the_beam_hits_frame_by_frame() {
        let beam = Beam::new(150);
        let mut lidar = Tfmini::new(TfminiUart::new(beam.clone()));
        assert_eq!(lidar.read_frame().unwrap().distance_cm(), Some(150));
        beam.set(62, 1_500);
        assert_eq!(lidar.read_frame().unwrap().distance_cm(), Some(62));
        beam.set(62, 20);
        assert_eq!(lidar.read_frame().unwrap().distance_cm(), None);
        beam.cut(true);
        assert!(lidar.read_frame().is_err());
    }

    #[test]
    fn pins_and_adcs_fail_while_cut_and_share_their_state_with_their_clones() {
        let pin = Pin::new(false);
        let mut firmware_side = pin.clone();
        pin.set(true);
        assert_eq!(firmware_side.is_high(), Ok(true));
        firmware_side.set_low().unwrap();
        assert!(!pin.is_set());
        pin.cut(true);
        assert_eq!(firmware_side.is_high(), Err(CutOff));
        let adc = Adc::new(1_800);
        let mut reader = adc.clone();
        assert_eq!(reader.read_mv(), Ok(1_800));
        adc.cut(true);
        assert_eq!(reader.read_mv(), Err(CutOff));
    }
}
