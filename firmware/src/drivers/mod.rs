//! Drivers for the parts a Gridwatch node is built from, written from the parts' datasheets.
//!
//! | module | part | what the node uses it for |
//! |---|---|---|
//! | [`adxl345`] | ADXL345 accelerometer (I2C) | manhole-cover tilt and knocks: the angle between the cover's resting gravity vector and the current one |
//! | [`tfmini`] | TFmini-S LiDAR (UART) | fire-passage clear width: the distance to the nearest obstruction; a parking space: the distance to a car |
//! | [`input`] | any switch or contact | door contact, door-zone sensor, fire-door switch, smoke contact, SOS button, debounced |
//! | [`analog`] | analog front ends | battery voltage, water level (0.5–4.5 V or 4–20 mA transmitter), gas concentration, plus small filters |
//! | [`output`] | LED and buzzer | what the resident sees and hears: "sent", "help is coming", beeps |
//!
//! The node loops read distances and single measurements through [`Distance`] and [`Measure`], so
//! a board can put any part behind them.
//!
//! Conventions every driver here keeps:
//! - A driver is generic over the embedded-hal 1.0 trait it needs (`I2c`, `InputPin`, `OutputPin`),
//!   `embedded_io::Read` for UART bytes, or [`crate::hal`] for what embedded-hal lacks. It owns that
//!   bus or pin and gives it back with `release(self)`, so a board can share or reuse it.
//! - `new` does no I/O and cannot fail; talking to the part is a separate call, so a failed start
//!   never swallows the bus.
//! - A driver that can fail in more than one way returns its own `Error<E>`, generic over the bus
//!   error `E`; one whose only failure is the pin's returns the pin's error as it is. Errors implement
//!   `core::fmt::Display`.
//! - Time is an argument (`now_ms`, milliseconds of a monotonic clock); no driver reads a clock or
//!   sleeps. Nothing allocates.
//! - Conversions from raw bytes or millivolts to units are pure functions beside the driver, so they
//!   are tested with exact figures and reused by the simulators.

pub mod adxl345;
pub mod analog;
pub mod input;
pub mod output;
pub mod tfmini;

/// Which electrical level means "active" for a pin (pressed, open, lit, sounding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// A high level is active.
    ActiveHigh,
    /// A low level is active (a switch to ground with a pull-up, an LED to the supply rail).
    ActiveLow,
}

impl Polarity {
    /// Whether the given electrical level (`true` = high) is the active one.
    pub fn is_active(self, high: bool) -> bool {
        high == (self == Polarity::ActiveHigh)
    }
}

/// A sensor that measures a distance: a fire passage's clear width, the gap between a parking
/// space's sensor and whatever is below (or above) it. [`tfmini::Tfmini`] is one.
pub trait Distance {
    /// The sensor's error type.
    type Error: core::fmt::Debug;

    /// The distance in cm, or `None` when the sensor has no reliable return.
    fn read_cm(&mut self) -> Result<Option<u16>, Self::Error>;
}

/// A sensor that measures one quantity in its unit: a residual current in mA, a cable's
/// temperature in °C. [`analog::ScaledInput`] is one; a probe with its own conversion (an NTC's
/// curve, a bus sensor) implements it in a few lines.
pub trait Measure {
    /// The sensor's error type.
    type Error: core::fmt::Debug;

    /// Takes one reading.
    fn read(&mut self) -> Result<f32, Self::Error>;
}
