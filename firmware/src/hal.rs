//! The small hardware traits a node needs that embedded-hal 1.0 does not define.
//!
//! embedded-hal covers buses (I2C, SPI), digital pins and delays; a node also reads analog inputs,
//! keeps time and remembers a few bytes across a reboot. Each trait here is as small as the node
//! loop needs, so a board support crate implements it in a few lines and a test in fewer.

/// An analog input, read as millivolts at the pin (after the board's own divider, if any).
pub trait AnalogIn {
    /// The board's error type for a failed conversion.
    type Error: core::fmt::Debug;

    /// Takes one conversion and returns the pin's voltage in millivolts.
    fn read_mv(&mut self) -> Result<u32, Self::Error>;
}

/// A monotonic clock in milliseconds since the node started; it never goes back.
///
/// Detectors take `now` as an argument instead of reading this, so they stay pure; only the node
/// loop reads the clock.
pub trait Monotonic {
    /// Milliseconds since an arbitrary start (usually boot).
    fn now_ms(&self) -> u64;
}

/// A small non-volatile store (EEPROM, a flash page, RTC backup registers) addressed by slot.
///
/// Writes wear the medium out, so callers write sparingly (the sequence counter persists only every so many messages).
pub trait NvStore {
    /// The board's error type for a failed read or write.
    type Error: core::fmt::Debug;

    /// Reads the 8-byte value in `slot`, or `None` if the slot was never written (or is erased).
    fn read(&mut self, slot: u8) -> Result<Option<u64>, Self::Error>;

    /// Writes the 8-byte value in `slot`.
    fn write(&mut self, slot: u8, value: u64) -> Result<(), Self::Error>;
}
