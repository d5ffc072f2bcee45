//! ADXL345 3-axis accelerometer over I2C, for manhole-cover tilt and knocks.
//!
//! Register map used (ADXL345 datasheet, Rev. G, table 19):
//!
//! | reg | name | what we write or read |
//! |---|---|---|
//! | 0x00 | DEVID | read; always 0xE5 on a genuine part |
//! | 0x2C | BW_RATE | D4 LOW_POWER, D3–D0 output data rate code ([`DataRate`]) |
//! | 0x2D | POWER_CTL | D3 Measure; 0x00 is standby |
//! | 0x31 | DATA_FORMAT | D3 FULL_RES (always set here), D1–D0 range ([`Range`]) |
//! | 0x32–0x37 | DATAX0..DATAZ1 | read in one go: X, Y, Z as little-endian two's-complement i16 |
//!
//! The 7-bit I2C address is 0x53 with the ALT ADDRESS pin grounded and 0x1D with it high. Register
//! addresses auto-increment over I2C, so the six data bytes come from one write-read starting at
//! 0x32; the datasheet asks for this so that no axis is updated between the bytes being read.
//!
//! In full-resolution mode the scale is 3.9 mg/LSB at every range (256 LSB/g), so the range only
//! sets the headroom before clipping. Readings here are milli-g as `[x, y, z]`, truncated toward
//! zero.

use core::fmt;
use embedded_hal::i2c::I2c;

/// The DEVID every ADXL345 reports.
pub const DEVICE_ID: u8 = 0xE5;

const REG_DEVID: u8 = 0x00;
const REG_BW_RATE: u8 = 0x2C;
const REG_POWER_CTL: u8 = 0x2D;
const REG_DATA_FORMAT: u8 = 0x31;
const REG_DATAX0: u8 = 0x32;

const BW_RATE_LOW_POWER: u8 = 0x10;
const POWER_CTL_MEASURE: u8 = 0x08;
const DATA_FORMAT_FULL_RES: u8 = 0x08;

/// The part's I2C address, set by its ALT ADDRESS pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Address {
    /// ALT ADDRESS grounded: 0x53.
    AltLow = 0x53,
    /// ALT ADDRESS high: 0x1D.
    AltHigh = 0x1D,
}

/// The measurement range (DATA_FORMAT D1–D0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Range {
    /// ±2 g.
    G2 = 0b00,
    /// ±4 g.
    G4 = 0b01,
    /// ±8 g.
    G8 = 0b10,
    /// ±16 g.
    G16 = 0b11,
}

/// The output data rate (BW_RATE D3–D0); the bandwidth is half of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DataRate {
    /// 6.25 Hz.
    Hz6_25 = 0x06,
    /// 12.5 Hz.
    Hz12_5 = 0x07,
    /// 25 Hz.
    Hz25 = 0x08,
    /// 50 Hz.
    Hz50 = 0x09,
    /// 100 Hz, the part's reset default.
    Hz100 = 0x0A,
    /// 200 Hz.
    Hz200 = 0x0B,
    /// 400 Hz.
    Hz400 = 0x0C,
}

/// How [`Adxl345::init`] sets the part up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Output data rate.
    pub rate: DataRate,
    /// Reduced-power operation: a little more noise for less current (12.5–400 Hz only).
    pub low_power: bool,
    /// Measurement range.
    pub range: Range,
}

impl Default for Config {
    /// 25 Hz in low power at ±16 g: a battery node, and in full resolution the wide range costs no
    /// precision while keeping a passing lorry's knock from clipping.
    fn default() -> Self {
        Config {
            rate: DataRate::Hz25,
            low_power: true,
            range: Range::G16,
        }
    }
}

/// What can go wrong talking to an ADXL345.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// The I2C bus failed.
    Bus(E),
    /// Something answered at the address but its DEVID is not 0xE5.
    WrongDeviceId {
        /// The DEVID that was read.
        found: u8,
    },
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bus(e) => write!(f, "ADXL345: I2C bus error: {e:?}"),
            Error::WrongDeviceId { found } => write!(
                f,
                "ADXL345: DEVID read 0x{found:02X}, expected 0x{DEVICE_ID:02X}: not an ADXL345"
            ),
        }
    }
}

/// An ADXL345 on an I2C bus that the driver owns until [`Adxl345::release`].
#[derive(Debug)]
pub struct Adxl345<I2C> {
    i2c: I2C,
    address: Address,
}

impl<I2C: I2c> Adxl345<I2C> {
    /// Takes the bus; does no I/O.
    pub fn new(i2c: I2C, address: Address) -> Self {
        Adxl345 { i2c, address }
    }

    /// Checks DEVID, configures rate and format in standby, then starts measuring.
    ///
    /// Nothing is written unless DEVID is right. The part is put in standby first because the
    /// datasheet asks for configuration in standby, and a node that reboots without a power cycle
    /// finds it still measuring.
    pub fn init(&mut self, config: Config) -> Result<(), Error<I2C::Error>> {
        let mut id = [0u8; 1];
        self.i2c
            .write_read(self.address as u8, &[REG_DEVID], &mut id)
            .map_err(Error::Bus)?;
        if id[0] != DEVICE_ID {
            return Err(Error::WrongDeviceId { found: id[0] });
        }
        let bw_rate = config.rate as u8
            | if config.low_power {
                BW_RATE_LOW_POWER
            } else {
                0
            };
        self.write(REG_POWER_CTL, 0)?;
        self.write(REG_BW_RATE, bw_rate)?;
        self.write(REG_DATA_FORMAT, DATA_FORMAT_FULL_RES | config.range as u8)?;
        self.write(REG_POWER_CTL, POWER_CTL_MEASURE)
    }

    /// Reads the latest sample as milli-g `[x, y, z]`.
    pub fn read_mg(&mut self) -> Result<[i32; 3], Error<I2C::Error>> {
        let mut data = [0u8; 6];
        self.i2c
            .write_read(self.address as u8, &[REG_DATAX0], &mut data)
            .map_err(Error::Bus)?;
        Ok(decode_mg(data))
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    fn write(&mut self, reg: u8, value: u8) -> Result<(), Error<I2C::Error>> {
        self.i2c
            .write(self.address as u8, &[reg, value])
            .map_err(Error::Bus)
    }
}

/// Turns the six bytes read from DATAX0 (full resolution) into milli-g `[x, y, z]`.
pub fn decode_mg(data: [u8; 6]) -> [i32; 3] {
    let axis = |i: usize| i32::from(i16::from_le_bytes([data[2 * i], data[2 * i + 1]])) * 39 / 10;
    [axis(0), axis(1), axis(2)]
}

/// The angle in degrees (0–180) between the cover's resting gravity vector and the current one.
///
/// Computed as `atan2(|a × b|, a · b)`, which stays precise for the small angles that matter (an
/// `acos` of the normalised dot product loses them to rounding near 1), in f64 because the
/// products of milli-g values outgrow f32's 24-bit mantissa. Only directions count, not lengths.
/// A zero vector has no direction and gives 0: it means free fall or a dead sensor, which
/// [`motion_mg`] and the read errors report, not a tilt.
pub fn tilt_deg(from: [i32; 3], now: [i32; 3]) -> f32 {
    let a = from.map(f64::from);
    let b = now.map(f64::from);
    let cross = [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ];
    let cross_len = libm::sqrt(cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]);
    let dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    libm::atan2(cross_len, dot).to_degrees() as f32
}

/// The length of an acceleration vector in milli-g (about 1000 for a cover at rest).
pub fn magnitude_mg(v: [i32; 3]) -> u32 {
    let v = v.map(f64::from);
    libm::round(libm::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])) as u32
}

/// How much the acceleration changed between two samples, in milli-g: the length of their
/// difference. A cover at rest stays near 0 whatever its tilt; a knock or a lift shows as a spike.
pub fn motion_mg(before: [i32; 3], now: [i32; 3]) -> u32 {
    let d = [0, 1, 2].map(|i| f64::from(now[i]) - f64::from(before[i]));
    libm::round(libm::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    /// What `init` must send after a good DEVID, for the given BW_RATE and DATA_FORMAT bytes.
    fn init_writes(addr: u8, bw_rate: u8, data_format: u8) -> Vec<T> {
        vec![
            T::write_read(addr, vec![0x00], vec![0xE5]),
            T::write(addr, vec![0x2D, 0x00]),
            T::write(addr, vec![0x2C, bw_rate]),
            T::write(addr, vec![0x31, data_format]),
            T::write(addr, vec![0x2D, 0x08]),
        ]
    }

    #[test]
    fn init_checks_devid_then_configures_in_standby_and_starts_measuring() {
        let mut bus = Mock::new(&init_writes(0x53, 0x18, 0x0B));
        let mut acc = Adxl345::new(bus.clone(), Address::AltLow);
        acc.init(Config::default()).unwrap();
        acc.release();
        bus.done();
    }

    #[test]
    fn init_with_alt_high_talks_to_0x1d_and_writes_the_chosen_rate_and_range() {
        let config = Config {
            rate: DataRate::Hz100,
            low_power: false,
            range: Range::G2,
        };
        let mut bus = Mock::new(&init_writes(0x1D, 0x0A, 0x08));
        let mut acc = Adxl345::new(bus.clone(), Address::AltHigh);
        acc.init(config).unwrap();
        bus.done();
    }

    #[test]
    fn a_wrong_devid_is_an_error_naming_the_byte_read_and_nothing_is_written() {
        let bus = Mock::new(&[T::write_read(0x53, vec![0x00], vec![0xE6])]);
        let mut acc = Adxl345::new(bus, Address::AltLow);
        let err = acc.init(Config::default()).unwrap_err();
        assert_eq!(err, Error::WrongDeviceId { found: 0xE6 });
        assert_eq!(
            err.to_string(),
            "ADXL345: DEVID read 0xE6, expected 0xE5: not an ADXL345"
        );
        acc.release().done();
    }

    #[test]
    fn a_bus_failure_during_init_is_a_bus_error() {
        let mut bus = Mock::new(&[
            T::write_read(0x53, vec![0x00], vec![0xE5]),
            T::write(0x53, vec![0x2D, 0x00]).with_error(ErrorKind::Other),
        ]);
        let mut acc = Adxl345::new(bus.clone(), Address::AltLow);
        assert_eq!(
            acc.init(Config::default()),
            Err(Error::Bus(ErrorKind::Other))
        );
        bus.done();
    }

    #[test]
    fn a_cover_lying_flat_reads_about_one_g_on_z_from_one_six_byte_read() {
        // Full resolution, cover flat: X = 3, Y = -5, Z = 258 LSB, as the part sends them.
        let data = vec![0x03, 0x00, 0xFB, 0xFF, 0x02, 0x01];
        let mut bus = Mock::new(&[T::write_read(0x53, vec![0x32], data)]);
        let mut acc = Adxl345::new(bus.clone(), Address::AltLow);
        assert_eq!(acc.read_mg().unwrap(), [11, -19, 1006]);
        bus.done();
    }

    #[test]
    fn a_failed_data_read_is_a_bus_error() {
        let mut bus =
            Mock::new(&[T::write_read(0x53, vec![0x32], vec![0; 6]).with_error(ErrorKind::Other)]);
        let mut acc = Adxl345::new(bus.clone(), Address::AltLow);
        assert_eq!(acc.read_mg(), Err(Error::Bus(ErrorKind::Other)));
        bus.done();
    }

    #[test]
    fn decoding_covers_both_ends_of_the_sixteen_g_range() {
        // ±16 g in full resolution spans -4096..=4095 LSB.
        assert_eq!(
            decode_mg([0x00, 0xF0, 0xFF, 0x0F, 0x00, 0x00]),
            [-15974, 15970, 0]
        );
    }

    #[test]
    fn tilt_between_perpendicular_opposite_and_equal_vectors_is_exact() {
        assert_eq!(tilt_deg([0, 0, 1000], [0, 0, 1000]), 0.0);
        assert_eq!(tilt_deg([0, 0, 1000], [0, 1000, 0]), 90.0);
        assert_eq!(tilt_deg([0, 0, 1000], [0, 0, -1000]), 180.0);
        assert_eq!(tilt_deg([0, 0, 1000], [0, 0, 2000]), 0.0);
    }

    #[test]
    fn tilt_of_a_few_degrees_is_measured_to_a_thousandth_of_a_degree() {
        let expected = (17.0f64 / 1000.0).atan().to_degrees() as f32;
        assert!((tilt_deg([0, 0, 1000], [17, 0, 1000]) - expected).abs() < 1e-3);
        assert!((tilt_deg([0, 0, 1000], [0, 1000, 1000]) - 45.0).abs() < 1e-4);
    }

    #[test]
    fn tilt_against_a_zero_vector_is_zero() {
        assert_eq!(tilt_deg([0, 0, 1000], [0, 0, 0]), 0.0);
        assert_eq!(tilt_deg([0, 0, 0], [0, 1000, 0]), 0.0);
    }

    #[test]
    fn magnitude_and_motion_are_vector_lengths_in_milli_g() {
        assert_eq!(magnitude_mg([300, -400, 0]), 500);
        assert_eq!(magnitude_mg([0, 0, 1000]), 1000);
        assert_eq!(motion_mg([0, 0, 1000], [0, 300, 1400]), 500);
        assert_eq!(motion_mg([11, -19, 1006], [11, -19, 1006]), 0);
    }
}
