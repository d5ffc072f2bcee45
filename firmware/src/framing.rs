//! Serial framing for nodes wired over RS-485: one payload per frame, with the device and the
//! channel that MQTT would carry in the topic.
//!
//! A wired bus has no topic, so the frame itself says whose payload it is and on which channel.
//! On the line a frame is the COBS encoding of `body ++ crc`, then one `0x00` delimiter. COBS
//! leaves no zero inside a frame, so a receiver finds the next frame after any garbage by waiting
//! for a zero.
//!
//! ```text
//! body, before COBS (integers little-endian; n = device id length, p = payload length):
//!
//!  0         1         2          3            3+n            5+n            5+n+p      9+n+p
//!  +---------+---------+----------+----//------+--------------+------//------+----------+
//!  | version | channel | id len n | device id  | payload len  | payload      | CRC-32   |
//!  |  1      | 0, 1, 2 | 1..=64   | n bytes    | p, u16       | p bytes      | u32      |
//!  +---------+---------+----------+----//------+--------------+------//------+----------+
//!  channel: 0 telemetry, 1 event, 2 status        CRC-32/ISO-HDLC (zlib's) of bytes 0 .. 5+n+p
//!
//! on the line:   COBS(body)  0x00
//! ```
//!
//! - The device id follows the topic grammar `[A-Za-z0-9_-]{1,64}`. The community is not in the
//!   frame: a bus belongs to one gateway, which serves one community.
//! - The payload is exactly what the node would publish over MQTT: the v1 message of
//!   [`crate::wire`] for telemetry and events, `online` / `offline` for status. Framing does not
//!   look inside it; the gateway decodes it as it decodes an MQTT payload, so a wired node and a
//!   wireless one pass the same checks.
//! - The payload length is checked against the frame, so a frame cut short is named as such.
//! - CRC-32 rather than CRC-16: it detects every error confined to 32 consecutive bits, so every
//!   single corrupted byte of the body. A corrupted COBS code byte is not such an error (it moves
//!   zeros around and shifts the body); there only the CRC's random miss rate helps, 2^-32
//!   against 2^-16.
//! - An empty frame (two zeros in a row) is ignored, so a sender may send a zero before a frame
//!   to close whatever noise came before it, such as after the bus driver turned around.
//! - COBS is written here, not taken from the `cobs` crate: [`Decoder`] owns its buffer and lends
//!   decoded frames out of it, while that crate's streaming decoder borrows its output buffer,
//!   which would make the decoder refer to itself; and it would bring `thiserror` into the node.

use core::fmt;

use crc::{Crc, CRC_32_ISO_HDLC};

/// The only frame layout version this module speaks.
pub const VERSION: u8 = 1;
/// The longest device id, as in the topic grammar.
pub const MAX_ID_LEN: usize = 64;
/// The longest payload a frame can carry (its length field is a `u16`).
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;
/// Body bytes besides the device id and the payload: version, channel, id length, payload
/// length and CRC.
pub const OVERHEAD: usize = 1 + 1 + 1 + 2 + CRC_LEN;

const CRC_LEN: usize = 4;
const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);
/// The most data bytes in one COBS block; its code byte is then 0xFF.
const BLOCK: usize = 254;

/// What a frame's payload is, as the topic's last segment would say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Periodic readings.
    Telemetry,
    /// Events the node detected itself.
    Event,
    /// `online` / `offline`.
    Status,
}

impl Channel {
    /// The channel's byte in the frame body.
    pub fn code(self) -> u8 {
        match self {
            Self::Telemetry => 0,
            Self::Event => 1,
            Self::Status => 2,
        }
    }

    /// The channel a body byte names, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Telemetry),
            1 => Some(Self::Event),
            2 => Some(Self::Status),
            _ => None,
        }
    }

    /// The channel's topic segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::Event => "event",
            Self::Status => "status",
        }
    }
}

/// One frame: whose payload, on which channel, and the payload. Borrows its strings and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The device id, `[A-Za-z0-9_-]{1,64}`.
    pub device: &'a str,
    /// The channel.
    pub channel: Channel,
    /// The payload, as it would be published over MQTT.
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// The body's length before COBS, CRC included.
    pub fn body_len(&self) -> usize {
        OVERHEAD + self.device.len() + self.payload.len()
    }
}

/// The most bytes a body of `body_len` bytes takes on the line, delimiter included.
pub const fn max_encoded_len(body_len: usize) -> usize {
    body_len + body_len / BLOCK + 2
}

/// Whether `s` follows the device id grammar `[A-Za-z0-9_-]{1,64}`.
pub fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(is_id_byte)
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The device id breaks the grammar `[A-Za-z0-9_-]{1,64}`.
    BadDeviceId,
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    PayloadTooLong { len: usize },
    /// The output buffer is smaller than [`max_encoded_len`] of the body.
    BufferTooSmall { needed: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadDeviceId => f.write_str("device id must match [A-Za-z0-9_-]{1,64}"),
            Self::PayloadTooLong { len } => {
                write!(f, "payload of {len} bytes, at most {MAX_PAYLOAD_LEN} fit")
            }
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small, {needed} bytes needed")
            }
        }
    }
}

/// Encodes `frame` into `out`, delimiter included, and returns the number of bytes written.
/// `out` must hold [`max_encoded_len`]`(frame.body_len())` bytes.
pub fn encode(frame: &Frame<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
    if !is_id(frame.device) {
        return Err(EncodeError::BadDeviceId);
    }
    let Ok(payload_len) = u16::try_from(frame.payload.len()) else {
        return Err(EncodeError::PayloadTooLong {
            len: frame.payload.len(),
        });
    };
    let needed = max_encoded_len(frame.body_len());
    if out.len() < needed {
        return Err(EncodeError::BufferTooSmall { needed });
    }
    // The id is at most 64 bytes, checked above.
    let id_len = frame.device.len() as u8;
    let mut digest = CRC32.digest();
    let mut w = CobsWriter::new(out);
    for part in [
        &[VERSION, frame.channel.code(), id_len][..],
        frame.device.as_bytes(),
        &payload_len.to_le_bytes(),
        frame.payload,
    ] {
        digest.update(part);
        w.write(part);
    }
    w.write(&digest.finalize().to_le_bytes());
    Ok(w.finish())
}

/// COBS encoder into a buffer already known to be large enough.
struct CobsWriter<'o> {
    out: &'o mut [u8],
    /// Where the current block's code byte goes.
    code_at: usize,
    /// Where the next byte goes.
    len: usize,
}

impl<'o> CobsWriter<'o> {
    fn new(out: &'o mut [u8]) -> Self {
        Self {
            out,
            code_at: 0,
            len: 1,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            // A full block is closed only once more data follows, so that data ending on a block
            // boundary needs no extra code byte.
            if self.len - self.code_at > BLOCK {
                self.close_block();
            }
            if b == 0 {
                self.close_block();
            } else {
                self.out[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn close_block(&mut self) {
        self.out[self.code_at] = (self.len - self.code_at) as u8;
        self.code_at = self.len;
        self.len += 1;
    }

    fn finish(self) -> usize {
        self.out[self.code_at] = (self.len - self.code_at) as u8;
        self.out[self.len] = 0;
        self.len + 1
    }
}

/// Why the bytes up to a delimiter are not a valid frame. The decoder has already resynchronised:
/// the next frame starts after that delimiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame did not fit the decoder's buffer of `limit` bytes; it was dropped up to the
    /// next delimiter.
    TooLong { limit: usize },
    /// The delimiter came `missing` bytes before the end of a COBS block: the frame was cut off
    /// or a byte was corrupted.
    CutShort { missing: u8 },
    /// The body has `len` bytes, fewer than the smallest frame.
    TooShort { len: usize },
    /// The CRC does not match: corrupted on the line.
    BadCrc { expected: u32, found: u32 },
    /// A layout version this decoder does not speak.
    UnsupportedVersion { found: u8 },
    /// A channel byte that names no channel.
    UnknownChannel { found: u8 },
    /// A device id length of 0, over [`MAX_ID_LEN`], or past the end of the frame.
    BadIdLength { len: u8 },
    /// The device id has a byte outside `[A-Za-z0-9_-]` at body offset `at`.
    BadDeviceId { at: usize },
    /// The payload length field disagrees with the bytes that follow it.
    LengthMismatch { declared: u16, actual: usize },
}

impl FrameError {
    /// A short stable name for the error, fit for a metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "too_long",
            Self::CutShort { .. } => "cut_short",
            Self::TooShort { .. } => "too_short",
            Self::BadCrc { .. } => "bad_crc",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::UnknownChannel { .. } => "unknown_channel",
            Self::BadIdLength { .. } => "bad_id_length",
            Self::BadDeviceId { .. } => "bad_device_id",
            Self::LengthMismatch { .. } => "length_mismatch",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { limit } => write!(f, "frame longer than {limit} bytes, dropped"),
            Self::CutShort { missing } => write!(
                f,
                "delimiter {missing} byte(s) before the end of a COBS block: frame cut off or corrupted"
            ),
            Self::TooShort { len } => write!(
                f,
                "frame body of {len} bytes, the smallest frame has {}",
                OVERHEAD + 1
            ),
            Self::BadCrc { expected, found } => write!(
                f,
                "CRC mismatch: computed {expected:#010x}, frame says {found:#010x}"
            ),
            Self::UnsupportedVersion { found } => {
                write!(f, "frame layout version {found}, only {VERSION} is known")
            }
            Self::UnknownChannel { found } => {
                write!(f, "channel byte {found}, expected 0 (telemetry), 1 (event) or 2 (status)")
            }
            Self::BadIdLength { len } => write!(
                f,
                "device id length {len}: must be 1..={MAX_ID_LEN} and fit in the frame"
            ),
            Self::BadDeviceId { at } => write!(
                f,
                "device id byte at offset {at} is outside [A-Za-z0-9_-]"
            ),
            Self::LengthMismatch { declared, actual } => write!(
                f,
                "payload length field says {declared} bytes, the frame carries {actual}"
            ),
        }
    }
}

/// Parses a body (COBS already undone, CRC still on).
fn parse(body: &[u8]) -> Result<Frame<'_>, FrameError> {
    if body.len() < OVERHEAD + 1 {
        return Err(FrameError::TooShort { len: body.len() });
    }
    let (data, crc) = body.split_at(body.len() - CRC_LEN);
    let found = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let expected = CRC32.checksum(data);
    // Checked first: in a corrupted frame every other field may be wrong too, and the CRC is
    // the one that says why.
    if found != expected {
        return Err(FrameError::BadCrc { expected, found });
    }
    if data[0] != VERSION {
        return Err(FrameError::UnsupportedVersion { found: data[0] });
    }
    let channel =
        Channel::from_code(data[1]).ok_or(FrameError::UnknownChannel { found: data[1] })?;
    let id_len = data[2];
    let id_end = 3 + usize::from(id_len);
    let id = match data.get(3..id_end) {
        Some(id) if id_len != 0 && usize::from(id_len) <= MAX_ID_LEN => id,
        _ => return Err(FrameError::BadIdLength { len: id_len }),
    };
    if let Some(i) = id.iter().position(|b| !is_id_byte(*b)) {
        return Err(FrameError::BadDeviceId { at: 3 + i });
    }
    let device = core::str::from_utf8(id).map_err(|e| FrameError::BadDeviceId {
        at: 3 + e.valid_up_to(),
    })?;
    let (len, payload) = match data.get(id_end..id_end + 2) {
        Some(len) => (u16::from_le_bytes([len[0], len[1]]), &data[id_end + 2..]),
        None => return Err(FrameError::TooShort { len: body.len() }),
    };
    if usize::from(len) != payload.len() {
        return Err(FrameError::LengthMismatch {
            declared: len,
            actual: payload.len(),
        });
    }
    Ok(Frame {
        device,
        channel,
        payload,
    })
}

/// Decodes frames from a byte stream, one byte at a time, into a buffer of `N` bytes (the
/// largest body it accepts, CRC included). After any error it starts afresh at the next
/// delimiter, so garbage, a frame too long and a corrupted frame cost only themselves.
pub struct Decoder<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Data bytes still due in the current COBS block; 0 when the next byte is a code byte.
    remaining: u8,
    /// Whether a zero goes before the next block's data (the last block was shorter than 254).
    zero_due: bool,
    /// Whether any byte of the current frame has arrived: an empty frame is ignored.
    started: bool,
    /// The current frame outgrew the buffer; its bytes are dropped up to the next delimiter.
    overflow: bool,
}

impl<const N: usize> Default for Decoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Decoder<N> {
    /// A decoder waiting for the first byte of a frame.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            remaining: 0,
            zero_due: false,
            started: false,
            overflow: false,
        }
    }

    /// Takes one byte from the line: at a delimiter, the frame it ends or why it is not one;
    /// otherwise (and for an empty frame) `None`.
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame<'_>, FrameError>> {
        if byte != 0 {
            self.started = true;
            if !self.overflow {
                self.take(byte);
            }
            return None;
        }
        let (started, overflow, remaining, len) =
            (self.started, self.overflow, self.remaining, self.len);
        self.len = 0;
        self.remaining = 0;
        self.zero_due = false;
        self.started = false;
        self.overflow = false;
        if !started {
            return None;
        }
        if overflow {
            return Some(Err(FrameError::TooLong { limit: N }));
        }
        if remaining != 0 {
            return Some(Err(FrameError::CutShort { missing: remaining }));
        }
        Some(parse(&self.buf[..len]))
    }

    /// Undoes COBS for one non-zero byte.
    fn take(&mut self, byte: u8) {
        if self.remaining == 0 {
            if self.zero_due {
                self.store(0);
            }
            self.remaining = byte - 1;
            self.zero_due = usize::from(byte) <= BLOCK;
        } else {
            self.remaining -= 1;
            self.store(byte);
        }
    }

    fn store(&mut self, byte: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Owned = (String, Channel, Vec<u8>);

    fn own(f: Frame<'_>) -> Owned {
        (f.device.to_owned(), f.channel, f.payload.to_vec())
    }

    fn enc(frame: &Frame<'_>) -> Vec<u8> {
        let mut out = vec![0; max_encoded_len(frame.body_len())];
        let n = encode(frame, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// Every result the decoder gives for `bytes`, in order.
    fn feed<const N: usize>(d: &mut Decoder<N>, bytes: &[u8]) -> Vec<Result<Owned, FrameError>> {
        bytes
            .iter()
            .filter_map(|b| d.push(*b).map(|r| r.map(own)))
            .collect()
    }

    fn cobs(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0; max_encoded_len(data.len())];
        let mut w = CobsWriter::new(&mut out);
        w.write(data);
        let n = w.finish();
        out.truncate(n);
        out
    }

    /// The raw bytes the decoder's COBS layer makes of `encoded` (without its delimiter).
    fn uncobs(encoded: &[u8]) -> Vec<u8> {
        let mut d = Decoder::<1024>::new();
        for b in &encoded[..encoded.len() - 1] {
            assert!(d.push(*b).is_none());
        }
        assert_eq!(d.remaining, 0, "block not complete");
        d.buf[..d.len].to_vec()
    }

    const SOS: Frame<'static> = Frame {
        device: "sos-7",
        channel: Channel::Event,
        payload: b"{}",
    };

    #[test]
    fn cobs_matches_the_published_examples() {
        let long: Vec<u8> = (1..=255).collect();
        let cases: [(&[u8], &[u8]); 6] = [
            (&[0x00], &[0x01, 0x01, 0x00]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01, 0x00]),
            (&[0x00, 0x11, 0x00], &[0x01, 0x02, 0x11, 0x01, 0x00]),
            (
                &[0x11, 0x22, 0x00, 0x33],
                &[0x03, 0x11, 0x22, 0x02, 0x33, 0x00],
            ),
            (
                &[0x11, 0x22, 0x33, 0x44],
                &[0x05, 0x11, 0x22, 0x33, 0x44, 0x00],
            ),
            (
                &[0x11, 0x00, 0x00, 0x00],
                &[0x02, 0x11, 0x01, 0x01, 0x01, 0x00],
            ),
        ];
        for (data, encoded) in cases {
            assert_eq!(cobs(data), encoded, "encoding {data:02x?}");
            assert_eq!(uncobs(encoded), data, "decoding {encoded:02x?}");
        }
        // 254 non-zero bytes fill one block; the 255th opens the next.
        let e = cobs(&long[..254]);
        assert_eq!((e[0], e.len(), e[255]), (0xFF, 256, 0x00));
        let e = cobs(&long);
        assert_eq!((e[0], e[255], e[256], e[257]), (0xFF, 0x02, 0xFF, 0x00));
        // A zero right after a full block needs a block of its own.
        let mut data = long[1..].to_vec();
        data.push(0);
        let e = cobs(&data);
        assert_eq!((e[0], &e[255..]), (0xFF, &[0x01, 0x01, 0x00][..]));
        for data in [&long[..254], &long[..], &data[..]] {
            assert_eq!(uncobs(&cobs(data)), data);
        }
    }

    #[test]
    fn a_frame_has_the_documented_bytes() {
        // CRC from an independent implementation: python3 -c "import zlib;
        // print(hex(zlib.crc32(bytes([1,1,5])+b'sos-7'+bytes([2,0])+b'{}')))"
        let body = [
            &[1, 1, 5][..],
            b"sos-7",
            &[2, 0],
            b"{}",
            &0x3af7_0e7cu32.to_le_bytes(),
        ]
        .concat();
        assert_eq!(CRC32.checksum(&body[..body.len() - 4]), 0x3af7_0e7c);
        assert_eq!(enc(&SOS), cobs(&body));
        assert_eq!(body.len(), SOS.body_len());
    }

    #[test]
    fn a_frame_decodes_to_its_device_channel_and_payload() {
        let mut d = Decoder::<64>::new();
        assert_eq!(feed(&mut d, &enc(&SOS)), [Ok(own(SOS))]);
    }

    #[test]
    fn an_empty_frame_is_ignored() {
        let mut d = Decoder::<64>::new();
        let mut line = vec![0, 0];
        line.extend(enc(&SOS));
        assert_eq!(feed(&mut d, &line), [Ok(own(SOS))]);
    }

    #[test]
    fn encoding_refuses_a_bad_id_a_huge_payload_and_a_small_buffer() {
        let mut out = [0u8; 64];
        for device in ["", "a/b", "é", &"x".repeat(65)] {
            let f = Frame { device, ..SOS };
            assert_eq!(encode(&f, &mut out), Err(EncodeError::BadDeviceId));
        }
        let big = vec![1u8; MAX_PAYLOAD_LEN + 1];
        let f = Frame {
            payload: &big,
            ..SOS
        };
        assert_eq!(
            encode(&f, &mut out),
            Err(EncodeError::PayloadTooLong { len: big.len() })
        );
        let needed = max_encoded_len(SOS.body_len());
        assert_eq!(
            encode(&SOS, &mut out[..needed - 1]),
            Err(EncodeError::BufferTooSmall { needed })
        );
    }

    /// A line carrying `body` (given before its CRC, which is appended).
    fn line_with_crc(body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        b.extend(CRC32.checksum(body).to_le_bytes());
        cobs(&b)
    }

    #[test]
    fn every_malformed_body_is_named() {
        let cases: [(Vec<u8>, FrameError); 8] = [
            (cobs(&[1, 2, 3]), FrameError::TooShort { len: 3 }),
            (
                line_with_crc(&[2, 1, 1, b'a', 0, 0]),
                FrameError::UnsupportedVersion { found: 2 },
            ),
            (
                line_with_crc(&[1, 3, 1, b'a', 0, 0]),
                FrameError::UnknownChannel { found: 3 },
            ),
            (
                line_with_crc(&[1, 1, 0, b'a', 0, 0]),
                FrameError::BadIdLength { len: 0 },
            ),
            (
                line_with_crc(&[1, 1, 9, b'a', 0, 0]),
                FrameError::BadIdLength { len: 9 },
            ),
            (
                line_with_crc(&[1, 1, 2, b'a', b'/', 0, 0]),
                FrameError::BadDeviceId { at: 4 },
            ),
            (
                line_with_crc(&[1, 1, 1, b'a', 3, 0, b'x']),
                FrameError::LengthMismatch {
                    declared: 3,
                    actual: 1,
                },
            ),
            (
                cobs(&[1, 1, 1, b'a', 0, 0, 0, 0, 0, 0]),
                FrameError::BadCrc {
                    expected: 0xb657_9dc4,
                    found: 0,
                },
            ),
        ];
        for (line, expected) in cases {
            let mut d = Decoder::<64>::new();
            assert_eq!(feed(&mut d, &line), [Err(expected)], "line {line:02x?}");
        }
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let crc = FrameError::BadCrc {
            expected: 0xb657_9dc4,
            found: 0,
        };
        assert_eq!(
            crc.to_string(),
            "CRC mismatch: computed 0xb6579dc4, frame says 0x00000000"
        );
        assert_eq!(crc.as_str(), "bad_crc");
        assert_eq!(
            FrameError::LengthMismatch {
                declared: 3,
                actual: 1
            }
            .to_string(),
            "payload length field says 3 bytes, the frame carries 1"
        );
    }

    #[test]
    fn a_delimiter_inside_a_block_is_named_cut_short() {
        let mut d = Decoder::<64>::new();
        assert_eq!(
            feed(&mut d, &[0x05, 0x11, 0x22, 0x00]),
            [Err(FrameError::CutShort { missing: 2 })]
        );
    }

    #[test]
    fn a_frame_longer_than_the_buffer_is_dropped_and_the_next_one_decodes() {
        let payload = [7u8; 40];
        let long = Frame {
            payload: &payload,
            ..SOS
        };
        let mut d = Decoder::<32>::new();
        let mut line = enc(&long);
        line.extend(enc(&SOS));
        assert_eq!(
            feed(&mut d, &line),
            [Err(FrameError::TooLong { limit: 32 }), Ok(own(SOS))]
        );
    }

    #[test]
    fn a_frame_exactly_as_long_as_the_buffer_fits() {
        let mut d = Decoder::<{ 9 + 5 + 2 }>::new();
        assert_eq!(feed(&mut d, &enc(&SOS)), [Ok(own(SOS))]);
        let mut d = Decoder::<{ 9 + 5 + 1 }>::new();
        assert_eq!(
            feed(&mut d, &enc(&SOS)),
            [Err(FrameError::TooLong { limit: 15 })]
        );
    }

    fn frame() -> impl Strategy<Value = Owned> {
        (
            "[A-Za-z0-9_-]{1,64}",
            prop_oneof![
                Just(Channel::Telemetry),
                Just(Channel::Event),
                Just(Channel::Status)
            ],
            prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..700),
        )
    }

    fn borrow(o: &Owned) -> Frame<'_> {
        Frame {
            device: &o.0,
            channel: o.1,
            payload: &o.2,
        }
    }

    proptest! {
        #[test]
        fn any_valid_frame_decodes_to_itself(f in frame()) {
            let mut d = Decoder::<1024>::new();
            let line = enc(&borrow(&f));
            prop_assert!(line.len() <= max_encoded_len(borrow(&f).body_len()));
            prop_assert!(!line[..line.len() - 1].contains(&0));
            prop_assert_eq!(feed(&mut d, &line), vec![Ok(f)]);
        }

        #[test]
        fn noise_never_panics_and_a_zero_after_it_resynchronises(
            noise in prop::collection::vec(any::<u8>(), 0..2000),
            f in frame(),
        ) {
            let mut d = Decoder::<1024>::new();
            let mut line = noise;
            line.push(0);
            line.extend(enc(&borrow(&f)));
            let got = feed(&mut d, &line);
            prop_assert_eq!(got.last(), Some(&Ok(f)));
        }

        #[test]
        fn noise_costs_at_most_the_frame_right_after_it(
            noise in prop::collection::vec(1u8.., 1..2000),
            first in frame(),
            second in frame(),
        ) {
            let mut d = Decoder::<1024>::new();
            let mut line = noise;
            line.extend(enc(&borrow(&first)));
            line.extend(enc(&borrow(&second)));
            let got = feed(&mut d, &line);
            prop_assert_eq!(got.len(), 2);
            prop_assert!(got[0].is_err());
            prop_assert_eq!(&got[1], &Ok(second));
        }

        /// A corrupted data byte changes one body byte, which CRC-32 always detects (or, turned
        /// into a zero, cuts a COBS block short); a corrupted code byte reshapes the body, which
        /// the CRC misses with probability 2^-32.
        #[test]
        fn a_corrupted_byte_is_never_taken_for_a_frame(
            f in frame(),
            next in frame(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let mut line = enc(&borrow(&f));
            let at = at.index(line.len() - 1);
            line[at] ^= flip;
            line.extend(enc(&borrow(&next)));
            let mut d = Decoder::<1024>::new();
            let got = feed(&mut d, &line);
            let (last, before) = got.split_last().unwrap();
            prop_assert_eq!(last, &Ok(next));
            prop_assert!(before.iter().all(Result::is_err), "accepted {:?}", before);
        }
    }
}
