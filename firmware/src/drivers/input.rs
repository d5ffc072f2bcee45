//! A debounced digital input: door contact, door-zone sensor, fire-door switch, smoke contact, SOS
//! button.
//!
//! The caller samples the pin with the time; a change of level becomes an [`Edge`] only once the
//! new level has been seen at every sample for at least the debounce time, counted from the first
//! sample that saw it. A bounce shorter than that gives nothing. The input starts inactive, so one
//! already active at power-up (a held SOS button, a fire door left open) reports
//! [`Edge::Activated`] once it has held for the debounce time: that is news worth sending.

use embedded_hal::digital::InputPin;

use super::Polarity;

/// A debounced change of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Became active (pressed, opened, triggered).
    Activated,
    /// Became inactive again.
    Released,
}

/// A debounced input on a pin that the driver owns until [`DebouncedInput::release`].
#[derive(Debug)]
pub struct DebouncedInput<P> {
    pin: P,
    polarity: Polarity,
    debounce_ms: u64,
    active: bool,
    /// When the level opposite to `active` was first seen, if it has been seen at every sample
    /// since.
    changing_since: Option<u64>,
}

impl<P: InputPin> DebouncedInput<P> {
    /// Takes the pin; does no I/O. The input starts inactive.
    pub fn new(pin: P, polarity: Polarity, debounce_ms: u64) -> Self {
        DebouncedInput {
            pin,
            polarity,
            debounce_ms,
            active: false,
            changing_since: None,
        }
    }

    /// Reads the pin once at `now_ms`; returns an edge when a new level has held long enough.
    pub fn sample(&mut self, now_ms: u64) -> Result<Option<Edge>, P::Error> {
        let active = self.polarity.is_active(self.pin.is_high()?);
        if active == self.active {
            self.changing_since = None;
            return Ok(None);
        }
        let since = *self.changing_since.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) < self.debounce_ms {
            return Ok(None);
        }
        self.active = active;
        self.changing_since = None;
        Ok(Some(if active {
            Edge::Activated
        } else {
            Edge::Released
        }))
    }

    /// The debounced state: whether the input is active.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};

    use State::{High, Low};

    /// Samples a pin scripted with `(time, level)` pairs and returns the edges with their times.
    fn run(polarity: Polarity, debounce_ms: u64, script: &[(u64, State)]) -> Vec<(u64, Edge)> {
        let expectations: Vec<T> = script.iter().map(|&(_, s)| T::get(s)).collect();
        let mut pin = Mock::new(&expectations);
        let mut input = DebouncedInput::new(pin.clone(), polarity, debounce_ms);
        let edges = script
            .iter()
            .filter_map(|&(t, _)| input.sample(t).unwrap().map(|e| (t, e)))
            .collect();
        input.release();
        pin.done();
        edges
    }

    #[test]
    fn a_press_is_reported_once_it_has_held_for_the_debounce_time() {
        let script = [
            (0, Low),
            (10, High),
            (30, High),
            (59, High),
            (60, High),
            (70, High),
        ];
        assert_eq!(
            run(Polarity::ActiveHigh, 50, &script),
            vec![(60, Edge::Activated)]
        );
    }

    #[test]
    fn a_bounce_shorter_than_the_debounce_time_yields_nothing() {
        let script = [
            (0, Low),
            (10, High),
            (20, Low),
            (30, High),
            (40, High),
            (50, Low),
            (200, Low),
        ];
        assert_eq!(run(Polarity::ActiveHigh, 50, &script), vec![]);
    }

    #[test]
    fn a_bounce_restarts_the_debounce_time() {
        let script = [(0, High), (40, Low), (45, High), (90, High), (95, High)];
        assert_eq!(
            run(Polarity::ActiveHigh, 50, &script),
            vec![(95, Edge::Activated)]
        );
    }

    #[test]
    fn an_active_low_button_reports_press_and_release() {
        let script = [
            (0, High),
            (100, Low),
            (150, Low),
            (300, High),
            (320, Low),
            (340, High),
            (390, High),
        ];
        assert_eq!(
            run(Polarity::ActiveLow, 50, &script),
            vec![(150, Edge::Activated), (390, Edge::Released)]
        );
    }

    #[test]
    fn an_input_active_at_power_up_is_reported_after_the_debounce_time() {
        let script = [(0, High), (20, High)];
        assert_eq!(
            run(Polarity::ActiveHigh, 20, &script),
            vec![(20, Edge::Activated)]
        );
    }

    #[test]
    fn the_debounced_state_follows_the_edges() {
        let mut pin = Mock::new(&[T::get(High), T::get(High)]);
        let mut input = DebouncedInput::new(pin.clone(), Polarity::ActiveHigh, 10);
        assert_eq!(input.sample(0), Ok(None));
        assert!(!input.is_active());
        assert_eq!(input.sample(10), Ok(Some(Edge::Activated)));
        assert!(input.is_active());
        pin.done();
    }

    #[test]
    fn a_pin_error_is_passed_on_and_changes_nothing() {
        use embedded_hal_mock::eh1::MockError;
        let err = MockError::Io(std::io::ErrorKind::Other);
        let mut pin = Mock::new(&[
            T::get(High),
            T::get(High).with_error(err.clone()),
            T::get(High),
        ]);
        let mut input = DebouncedInput::new(pin.clone(), Polarity::ActiveHigh, 10);
        assert_eq!(input.sample(0), Ok(None));
        assert_eq!(input.sample(5), Err(err));
        assert_eq!(input.sample(10), Ok(Some(Edge::Activated)));
        pin.done();
    }
}
