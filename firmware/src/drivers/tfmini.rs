//! TFmini-S LiDAR over UART, for the clear width of a fire passage.
//!
//! The sensor streams (100 Hz by default, 115200 8N1) nine-byte frames:
//!
//! ```text
//! 0x59 0x59 Dist_L Dist_H Strength_L Strength_H Temp_L Temp_H Checksum
//! ```
//!
//! - distance in cm, signal strength and raw temperature are little-endian u16;
//! - the checksum is the low 8 bits of the sum of the first eight bytes;
//! - the datasheet calls a distance unreliable when the strength is below 100 or exactly 65535
//!   (too weak a return, or a saturated one);
//! - temperature in °C is `raw / 8 - 256`.
//!
//! [`Parser`] takes one byte at a time and resynchronises on its own: bytes before a header are
//! skipped, and after a bad checksum it rescans the bytes it had buffered for the next header, so a
//! real frame hidden behind a false header is still found. Its good frames are exactly those a
//! naive scan finds by trying every offset in order and jumping past each valid frame.

use core::fmt;
use embedded_io::Read;

use super::Distance;

/// The length of one frame in bytes.
pub const FRAME_LEN: usize = 9;
/// The byte a frame starts with, twice.
pub const HEADER: u8 = 0x59;
/// How many bytes [`Tfmini::read_frame`] reads without finding a frame before it gives up: about
/// seven frames, so a line of pure noise cannot hold the node loop.
pub const MAX_SCAN: usize = 64;

/// One measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Distance to the target in cm, as sent; see [`Frame::distance_cm`].
    pub raw_distance_cm: u16,
    /// Signal strength of the return.
    pub strength: u16,
    /// Chip temperature in eighths of a degree above -256 °C.
    pub raw_temperature: u16,
}

impl Frame {
    /// Whether the datasheet trusts this distance: strength at least 100 and not 65535.
    pub fn is_reliable(&self) -> bool {
        self.strength >= 100 && self.strength != u16::MAX
    }

    /// The distance in cm, or `None` when the strength says it is unreliable.
    pub fn distance_cm(&self) -> Option<u16> {
        self.is_reliable().then_some(self.raw_distance_cm)
    }

    /// The chip temperature in °C.
    pub fn temperature_c(&self) -> f32 {
        f32::from(self.raw_temperature) / 8.0 - 256.0
    }

    /// Decodes nine bytes that start with the two header bytes.
    pub fn decode(bytes: &[u8; FRAME_LEN]) -> Result<Frame, FrameError> {
        let expected = checksum(bytes);
        if bytes[8] != expected {
            return Err(FrameError::BadChecksum {
                expected,
                found: bytes[8],
            });
        }
        let word = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        Ok(Frame {
            raw_distance_cm: word(2),
            strength: word(4),
            raw_temperature: word(6),
        })
    }

    /// Encodes the frame as the sensor sends it (for tests and the simulators).
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut b = [0u8; FRAME_LEN];
        b[0] = HEADER;
        b[1] = HEADER;
        b[2..4].copy_from_slice(&self.raw_distance_cm.to_le_bytes());
        b[4..6].copy_from_slice(&self.strength.to_le_bytes());
        b[6..8].copy_from_slice(&self.raw_temperature.to_le_bytes());
        b[8] = checksum(&b);
        b
    }
}

fn checksum(bytes: &[u8; FRAME_LEN]) -> u8 {
    bytes[..8].iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// A frame that had a header but failed its check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The ninth byte is not the low byte of the sum of the first eight.
    BadChecksum {
        /// The checksum the first eight bytes add up to.
        expected: u8,
        /// The checksum byte received.
        found: u8,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadChecksum { expected, found } => write!(
                f,
                "TFmini frame checksum 0x{found:02X}, expected 0x{expected:02X}"
            ),
        }
    }
}

/// A byte-at-a-time frame parser; see the module header for how it resynchronises.
#[derive(Clone, Debug, Default)]
pub struct Parser {
    buf: [u8; FRAME_LEN],
    len: usize,
}

impl Parser {
    /// A parser waiting for a header.
    pub fn new() -> Self {
        Parser::default()
    }

    /// Feeds one byte; returns a frame or a checksum error when this byte completes nine.
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame, FrameError>> {
        if self.len < FRAME_LEN - 1 {
            self.advance(byte);
            return None;
        }
        let mut candidate = self.buf;
        candidate[FRAME_LEN - 1] = byte;
        self.len = 0;
        let result = Frame::decode(&candidate);
        if result.is_err() {
            // Eight bytes cannot complete a frame, so replaying them only finds the next header.
            for &b in &candidate[1..] {
                self.advance(b);
            }
        }
        Some(result)
    }

    /// Takes a byte that cannot complete a frame: waits for the header, then collects.
    fn advance(&mut self, byte: u8) {
        if self.len < 2 && byte != HEADER {
            self.len = 0;
            return;
        }
        self.buf[self.len] = byte;
        self.len += 1;
    }
}

/// What can go wrong reading a frame from the UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// The UART failed.
    Io(E),
    /// The UART has no more bytes (a closed stream in a simulator or test).
    EndOfStream,
    /// A frame arrived damaged; the next call goes on with the bytes after it.
    Frame(FrameError),
    /// [`MAX_SCAN`] bytes went by without a frame.
    NoFrame,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "TFmini: UART error: {e:?}"),
            Error::EndOfStream => f.write_str("TFmini: the UART stream ended"),
            Error::Frame(e) => write!(f, "{e}"),
            Error::NoFrame => write!(f, "TFmini: no frame in {MAX_SCAN} bytes"),
        }
    }
}

/// A TFmini-S on a UART that the driver owns until [`Tfmini::release`].
#[derive(Debug)]
pub struct Tfmini<R> {
    uart: R,
    parser: Parser,
}

impl<R: Read> Tfmini<R> {
    /// Takes the UART's receive side; does no I/O.
    pub fn new(uart: R) -> Self {
        Tfmini {
            uart,
            parser: Parser::new(),
        }
    }

    /// Reads bytes until a frame completes, a damaged one is found or [`MAX_SCAN`] bytes pass.
    ///
    /// One byte per read call, so nothing read past a frame has to be kept: UART drivers buffer
    /// underneath anyway.
    pub fn read_frame(&mut self) -> Result<Frame, Error<R::Error>> {
        for _ in 0..MAX_SCAN {
            let mut byte = [0u8; 1];
            if self.uart.read(&mut byte).map_err(Error::Io)? == 0 {
                return Err(Error::EndOfStream);
            }
            if let Some(result) = self.parser.push(byte[0]) {
                return result.map_err(Error::Frame);
            }
        }
        Err(Error::NoFrame)
    }

    /// Gives the UART back.
    pub fn release(self) -> R {
        self.uart
    }
}

impl<R: Read> Distance for Tfmini<R> {
    type Error = Error<R::Error>;

    fn read_cm(&mut self) -> Result<Option<u16>, Self::Error> {
        Ok(self.read_frame()?.distance_cm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 1.23 m at strength 515, 32 °C: the kind of frame the datasheet shows.
    const SAMPLE: [u8; 9] = [0x59, 0x59, 0x7B, 0x00, 0x03, 0x02, 0x00, 0x09, 0x3B];

    fn parse_all(bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
        let mut p = Parser::new();
        bytes.iter().filter_map(|&b| p.push(b)).collect()
    }

    #[test]
    fn a_sample_frame_decodes_to_distance_strength_and_temperature() {
        let f = Frame::decode(&SAMPLE).unwrap();
        assert_eq!(
            f,
            Frame {
                raw_distance_cm: 123,
                strength: 515,
                raw_temperature: 0x0900
            }
        );
        assert_eq!(f.distance_cm(), Some(123));
        assert_eq!(f.temperature_c(), 32.0);
        assert_eq!(f.encode(), SAMPLE);
    }

    #[test]
    fn strength_below_100_or_exactly_65535_makes_the_distance_unreliable() {
        let with = |strength| Frame {
            raw_distance_cm: 500,
            strength,
            raw_temperature: 2048,
        };
        assert_eq!(with(99).distance_cm(), None);
        assert_eq!(with(100).distance_cm(), Some(500));
        assert_eq!(with(65534).distance_cm(), Some(500));
        assert_eq!(with(65535).distance_cm(), None);
        assert_eq!(with(65535).temperature_c(), 0.0);
    }

    #[test]
    fn a_bad_checksum_is_reported_with_both_values() {
        let mut bad = SAMPLE;
        bad[8] = 0x3A;
        assert_eq!(
            parse_all(&bad),
            vec![Err(FrameError::BadChecksum {
                expected: 0x3B,
                found: 0x3A
            })]
        );
        assert_eq!(
            FrameError::BadChecksum {
                expected: 0x3B,
                found: 0x3A
            }
            .to_string(),
            "TFmini frame checksum 0x3A, expected 0x3B"
        );
    }

    #[test]
    fn garbage_before_a_frame_is_skipped_silently() {
        let mut bytes = vec![0x00, 0xFF, 0x59, 0x12];
        bytes.extend_from_slice(&SAMPLE);
        assert_eq!(parse_all(&bytes), vec![Frame::decode(&SAMPLE)]);
    }

    #[test]
    fn a_stray_header_byte_before_a_frame_costs_one_error_then_the_frame_is_found() {
        // The stray 0x59 pairs with the frame's first; the rescan then finds the real header.
        let mut bytes = vec![0x59];
        bytes.extend_from_slice(&SAMPLE);
        let out = parse_all(&bytes);
        assert_eq!(out.len(), 2);
        assert!(matches!(out[0], Err(FrameError::BadChecksum { .. })));
        assert_eq!(out[1], Frame::decode(&SAMPLE));
    }

    #[test]
    fn a_frame_cut_short_does_not_hide_the_next_one() {
        let mut bytes = SAMPLE[..5].to_vec();
        bytes.extend_from_slice(&SAMPLE);
        let out = parse_all(&bytes);
        assert_eq!(out.last(), Some(&Frame::decode(&SAMPLE)));
    }

    #[test]
    fn the_driver_reads_frames_one_after_another_then_reports_the_end() {
        let mut bytes = vec![0x00, 0x13];
        bytes.extend_from_slice(&SAMPLE);
        bytes.extend_from_slice(&SAMPLE);
        let mut lidar = Tfmini::new(&bytes[..]);
        let frame = Frame::decode(&SAMPLE).unwrap();
        assert_eq!(lidar.read_frame(), Ok(frame));
        assert_eq!(lidar.read_frame(), Ok(frame));
        assert_eq!(lidar.read_frame(), Err(Error::EndOfStream));
        assert!(lidar.release().is_empty());
    }

    #[test]
    fn the_driver_reports_a_damaged_frame_and_goes_on_after_it() {
        let mut bytes = SAMPLE.to_vec();
        bytes[3] = 0x01;
        bytes.extend_from_slice(&SAMPLE);
        let mut lidar = Tfmini::new(&bytes[..]);
        assert_eq!(
            lidar.read_frame(),
            Err(Error::Frame(FrameError::BadChecksum {
                expected: 0x3C,
                found: 0x3B
            }))
        );
        assert_eq!(lidar.read_frame(), Ok(Frame::decode(&SAMPLE).unwrap()));
    }

    #[test]
    fn the_driver_gives_up_after_max_scan_bytes_of_noise() {
        let noise = [0x00u8; MAX_SCAN + 1];
        let mut lidar = Tfmini::new(&noise[..]);
        assert_eq!(lidar.read_frame(), Err(Error::NoFrame));
        assert_eq!(lidar.release().len(), 1);
    }

    #[test]
    fn a_uart_error_is_passed_on() {
        struct Broken;
        impl embedded_io::ErrorType for Broken {
            type Error = embedded_io::ErrorKind;
        }
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
                Err(embedded_io::ErrorKind::Other)
            }
        }
        let mut lidar = Tfmini::new(Broken);
        assert_eq!(
            lidar.read_frame(),
            Err(Error::Io(embedded_io::ErrorKind::Other))
        );
    }

    /// The reference: try every offset in order; a valid frame is taken and skipped over.
    fn naive_scan(bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut i = 0;
        while i + FRAME_LEN <= bytes.len() {
            let window: [u8; FRAME_LEN] = bytes[i..i + FRAME_LEN].try_into().unwrap();
            match (window[0] == HEADER && window[1] == HEADER)
                .then(|| Frame::decode(&window).ok())
                .flatten()
            {
                Some(f) => {
                    frames.push(f);
                    i += FRAME_LEN;
                }
                None => i += 1,
            }
        }
        frames
    }

    fn frame() -> impl Strategy<Value = Frame> {
        (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(d, s, t)| Frame {
            raw_distance_cm: d,
            strength: s,
            raw_temperature: t,
        })
    }

    /// Bytes rich in headers and frames, so the resynchronisation paths are all exercised.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            Just(vec![HEADER]),
            Just(vec![HEADER, HEADER]),
            frame().prop_map(|f| f.encode().to_vec()),
            (frame(), 1..FRAME_LEN).prop_map(|(f, n)| f.encode()[..n].to_vec()),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn the_parser_finds_exactly_the_frames_a_naive_scan_finds(bytes in stream()) {
            let found: Vec<Frame> = parse_all(&bytes).into_iter().filter_map(Result::ok).collect();
            prop_assert_eq!(found, naive_scan(&bytes));
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            parse_all(&bytes);
        }

        // With one frame after the garbage this cannot hold for any parser: garbage ending in a
        // header can form a false frame with the real one's first bytes and pass the checksum
        // (1 in 256). The sensor repeats its frame, and a repeat whose body holds no header byte
        // cannot be reached by a false frame, so the stream always ends on the real frame.
        #[test]
        fn any_garbage_followed_by_the_streamed_frame_yields_that_frame(
            garbage in stream(),
            f in frame().prop_filter("no header byte in the body", |f| !f.encode()[2..].contains(&HEADER)),
        ) {
            let mut bytes = garbage;
            bytes.extend_from_slice(&f.encode());
            bytes.extend_from_slice(&f.encode());
            let out = parse_all(&bytes);
            prop_assert_eq!(out.last(), Some(&Ok(f)));
        }
    }
}
