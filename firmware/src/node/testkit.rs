//! Fakes for the node loops' tests: a transport that records what it accepted, and pins, ADC
//! inputs, a UART and sources whose levels, bytes and readings a test sets while the loop runs.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use embedded_hal::digital::{self, ErrorKind};

use super::{Channel, Transport};
use crate::drivers::Distance;
use crate::hal::AnalogIn;
use crate::wire::{self, Message};

/// A transport that records what it accepted and can be told to refuse.
#[derive(Default)]
pub(crate) struct FakeNet {
    pub(crate) sent: Vec<(Channel, String)>,
    pub(crate) attempts: usize,
    pub(crate) down: bool,
    pub(crate) cmds: VecDeque<Vec<u8>>,
}

impl Transport for FakeNet {
    type Error = &'static str;

    fn publish(&mut self, channel: Channel, payload: &[u8]) -> Result<(), &'static str> {
        self.attempts += 1;
        if self.down {
            return Err("link down");
        }
        self.sent
            .push((channel, String::from_utf8(payload.to_vec()).unwrap()));
        Ok(())
    }

    fn poll_cmd(&mut self, buf: &mut [u8]) -> Result<Option<usize>, &'static str> {
        let Some(cmd) = self.cmds.pop_front() else {
            return Ok(None);
        };
        buf[..cmd.len()].copy_from_slice(&cmd);
        Ok(Some(cmd.len()))
    }
}

impl FakeNet {
    /// The payloads sent on `channel`.
    pub(crate) fn on(&self, channel: Channel) -> Vec<&str> {
        self.sent
            .iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, p)| p.as_str())
            .collect()
    }

    /// The events sent, decoded.
    pub(crate) fn events(&self) -> Vec<Message<'_>> {
        self.on(Channel::Event)
            .into_iter()
            .map(|p| wire::decode(p.as_bytes()).unwrap())
            .collect()
    }

    /// Checks that every reading sent is one the gateway's catalogue lists for `kind`, and that
    /// something was sent.
    pub(crate) fn assert_readings_listed(&self, kind: &str) {
        let listed = crate::detect::tests::catalogue(kind, "readings");
        assert!(!self.sent.is_empty(), "nothing sent");
        for (channel, payload) in &self.sent {
            if *channel == Channel::Status {
                continue;
            }
            for reading in wire::decode(payload.as_bytes()).unwrap().data {
                assert!(
                    listed.contains(&reading.name),
                    "{kind}: {} is not in kinds.toml",
                    reading.name
                );
            }
        }
    }

    /// The events sent, by name, each with its `ts` less `wall` (the wall clock at 0 ms).
    pub(crate) fn timeline(&self, wall: u64) -> Vec<(&str, u64)> {
        self.events()
            .iter()
            .map(|m| (m.event.unwrap(), m.ts - wall))
            .collect()
    }
}

/// A pin whose level the test sets, or that an output drives.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pin(Rc<Cell<Option<bool>>>);

impl Pin {
    pub(crate) fn at(high: bool) -> Self {
        Self(Rc::new(Cell::new(Some(high))))
    }

    pub(crate) fn set(&self, high: bool) {
        self.0.set(Some(high));
    }

    pub(crate) fn fail(&self) {
        self.0.set(None);
    }

    pub(crate) fn level(&self) -> Option<bool> {
        self.0.get()
    }
}

impl digital::ErrorType for Pin {
    type Error = ErrorKind;
}

impl digital::InputPin for Pin {
    fn is_high(&mut self) -> Result<bool, ErrorKind> {
        self.0.get().ok_or(ErrorKind::Other)
    }

    fn is_low(&mut self) -> Result<bool, ErrorKind> {
        self.is_high().map(|h| !h)
    }
}

impl digital::OutputPin for Pin {
    fn set_low(&mut self) -> Result<(), ErrorKind> {
        self.0.set(Some(false));
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), ErrorKind> {
        self.0.set(Some(true));
        Ok(())
    }
}

/// An ADC input whose millivolts the test sets; `None` makes conversions fail.
#[derive(Clone, Debug, Default)]
pub(crate) struct Adc(Rc<Cell<Option<u32>>>);

impl Adc {
    pub(crate) fn at(mv: u32) -> Self {
        Self(Rc::new(Cell::new(Some(mv))))
    }

    pub(crate) fn set(&self, mv: u32) {
        self.0.set(Some(mv));
    }

    pub(crate) fn fail(&self) {
        self.0.set(None);
    }
}

impl AnalogIn for Adc {
    type Error = ();

    fn read_mv(&mut self) -> Result<u32, ()> {
        self.0.get().ok_or(())
    }
}

/// A UART receive side fed by the test.
#[derive(Clone, Debug, Default)]
pub(crate) struct Uart(pub(crate) Rc<RefCell<VecDeque<u8>>>);

impl embedded_io::ErrorType for Uart {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        let mut bytes = self.0.borrow_mut();
        let mut n = 0;
        while n < buf.len() {
            let Some(b) = bytes.pop_front() else { break };
            buf[n] = b;
            n += 1;
        }
        Ok(n)
    }
}

/// A reading the test sets, for any source a loop reads (a distance, a car's motion, a line's
/// voltage and current); `fail` makes reads fail until the next `set`.
#[derive(Clone)]
pub(crate) struct Source<T>(Rc<Cell<Option<T>>>);

impl<T: Copy> Source<T> {
    pub(crate) fn at(value: T) -> Self {
        Self(Rc::new(Cell::new(Some(value))))
    }

    pub(crate) fn set(&self, value: T) {
        self.0.set(Some(value));
    }

    pub(crate) fn fail(&self) {
        self.0.set(None);
    }

    pub(crate) fn read(&self) -> Result<T, ()> {
        self.0.get().ok_or(())
    }
}

/// A distance sensor: `Ok(None)` is no reliable return.
impl Distance for Source<Option<u16>> {
    type Error = ();

    fn read_cm(&mut self) -> Result<Option<u16>, ()> {
        self.read()
    }
}
