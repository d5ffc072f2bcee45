//! What the resident sees and hears: an LED with blink patterns and a buzzer that beeps.
//!
//! Both are driven by `update(now_ms)` from the node loop; each works out the level the pattern
//! wants at that time and touches the pin only when the level changes, so a loop that updates
//! often costs no pin writes. A pin write that fails is retried at the next update.
//!
//! LED patterns, as (on, off) milliseconds repeating from the moment the pattern was set:
//!
//! | pattern | timing | meaning on an SOS button |
//! |---|---|---|
//! | [`LedPattern::SlowBlink`] | 500 on, 500 off | the call was sent |
//! | [`LedPattern::FastBlink`] | 100 on, 100 off | sending, or something needs attention |
//! | [`LedPattern::DoubleBlink`] | 150 on, 150 off, 150 on, 1050 off | help is coming (the gateway acknowledged) |
//!
//! Double blink is the one shape that cannot be mistaken for the others from across a room.

use embedded_hal::digital::OutputPin;

use super::Polarity;

/// What an LED shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedPattern {
    /// Dark.
    Off,
    /// Lit.
    On,
    /// 1 Hz, half on: "sent".
    SlowBlink,
    /// 5 Hz, half on.
    FastBlink,
    /// Two short flashes every 1.5 s: "help is coming".
    DoubleBlink,
}

impl LedPattern {
    /// Whether the LED is lit `elapsed_ms` after the pattern started.
    pub fn is_lit_at(self, elapsed_ms: u64) -> bool {
        let segments: &[u64] = match self {
            LedPattern::Off => return false,
            LedPattern::On => return true,
            LedPattern::SlowBlink => &[500, 500],
            LedPattern::FastBlink => &[100, 100],
            LedPattern::DoubleBlink => &[150, 150, 150, 1050],
        };
        let mut t = elapsed_ms % segments.iter().sum::<u64>();
        for (i, &length) in segments.iter().enumerate() {
            if t < length {
                return i % 2 == 0;
            }
            t -= length;
        }
        false
    }
}

/// Drives `pin` to show `active` (lit, sounding) under `polarity`.
fn drive<P: OutputPin>(pin: &mut P, polarity: Polarity, active: bool) -> Result<(), P::Error> {
    if polarity.is_active(true) == active {
        pin.set_high()
    } else {
        pin.set_low()
    }
}

/// An LED on a pin that the driver owns until [`Led::release`].
#[derive(Debug)]
pub struct Led<P> {
    pin: P,
    polarity: Polarity,
    pattern: LedPattern,
    started_ms: u64,
    /// The level last driven onto the pin; `None` before the first write.
    lit: Option<bool>,
}

impl<P: OutputPin> Led<P> {
    /// Takes the pin; does no I/O. The pattern is [`LedPattern::Off`] and the first update drives it.
    pub fn new(pin: P, polarity: Polarity) -> Self {
        Led {
            pin,
            polarity,
            pattern: LedPattern::Off,
            started_ms: 0,
            lit: None,
        }
    }

    /// Shows `pattern` from `now_ms`. Setting the pattern already shown keeps its rhythm, so a
    /// loop may set it every time round.
    pub fn set(&mut self, pattern: LedPattern, now_ms: u64) -> Result<(), P::Error> {
        if pattern != self.pattern {
            self.pattern = pattern;
            self.started_ms = now_ms;
        }
        self.update(now_ms)
    }

    /// Brings the pin to the level the pattern wants at `now_ms`.
    pub fn update(&mut self, now_ms: u64) -> Result<(), P::Error> {
        let lit = self
            .pattern
            .is_lit_at(now_ms.saturating_sub(self.started_ms));
        if self.lit != Some(lit) {
            drive(&mut self.pin, self.polarity, lit)?;
            self.lit = Some(lit);
        }
        Ok(())
    }

    /// The pattern being shown.
    pub fn pattern(&self) -> LedPattern {
        self.pattern
    }

    /// Gives the pin back.
    pub fn release(self) -> P {
        self.pin
    }
}

/// A run of beeps: `count` times `on_ms` of sound and `off_ms` of quiet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Beeps {
    count: u32,
    on_ms: u32,
    off_ms: u32,
    started_ms: u64,
}

impl Beeps {
    fn is_sounding_at(&self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.started_ms);
        let period = u64::from(self.on_ms) + u64::from(self.off_ms);
        period > 0
            && elapsed < u64::from(self.count) * period
            && elapsed % period < u64::from(self.on_ms)
    }

    fn is_over_at(&self, now_ms: u64) -> bool {
        let period = u64::from(self.on_ms) + u64::from(self.off_ms);
        now_ms.saturating_sub(self.started_ms) >= u64::from(self.count) * period
    }
}

/// A buzzer on a pin that the driver owns until [`Buzzer::release`].
#[derive(Debug)]
pub struct Buzzer<P> {
    pin: P,
    polarity: Polarity,
    beeps: Option<Beeps>,
    /// The level last driven onto the pin; `None` before the first write.
    sounding: Option<bool>,
}

impl<P: OutputPin> Buzzer<P> {
    /// Takes the pin; does no I/O. The buzzer is quiet and the first update drives it so.
    pub fn new(pin: P, polarity: Polarity) -> Self {
        Buzzer {
            pin,
            polarity,
            beeps: None,
            sounding: None,
        }
    }

    /// Beeps `count` times from `now_ms`, each `on_ms` long and followed by `off_ms` of quiet,
    /// replacing any beeps still going. One long tone is `beep(1, length, 0, now)`.
    pub fn beep(
        &mut self,
        count: u32,
        on_ms: u32,
        off_ms: u32,
        now_ms: u64,
    ) -> Result<(), P::Error> {
        self.beeps = Some(Beeps {
            count,
            on_ms,
            off_ms,
            started_ms: now_ms,
        });
        self.update(now_ms)
    }

    /// Stops any beeps at once.
    pub fn silence(&mut self, now_ms: u64) -> Result<(), P::Error> {
        self.beeps = None;
        self.update(now_ms)
    }

    /// Brings the pin to the level the beeps want at `now_ms`.
    pub fn update(&mut self, now_ms: u64) -> Result<(), P::Error> {
        let sounding = self.beeps.is_some_and(|b| b.is_sounding_at(now_ms));
        if self.sounding != Some(sounding) {
            drive(&mut self.pin, self.polarity, sounding)?;
            self.sounding = Some(sounding);
        }
        if self.beeps.is_some_and(|b| b.is_over_at(now_ms)) {
            self.beeps = None;
        }
        Ok(())
    }

    /// Whether beeps are still going (sounding or in a gap between two).
    pub fn is_busy(&self) -> bool {
        self.beeps.is_some()
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
    use embedded_hal_mock::eh1::MockError;

    use State::{High, Low};

    /// Runs `step` at each scripted time against a pin expecting exactly `writes`.
    fn led_script(
        polarity: Polarity,
        writes: &[State],
        step: impl Fn(&mut Led<Mock>) -> Result<(), MockError>,
    ) {
        let expectations: Vec<T> = writes.iter().map(|&s| T::set(s)).collect();
        let mut pin = Mock::new(&expectations);
        let mut led = Led::new(pin.clone(), polarity);
        step(&mut led).unwrap();
        led.release();
        pin.done();
    }

    #[test]
    fn slow_blink_toggles_every_half_second_from_when_it_was_set() {
        led_script(Polarity::ActiveHigh, &[High, Low, High], |led| {
            led.set(LedPattern::SlowBlink, 1000)?;
            for t in [1200, 1499, 1500, 1999, 2000, 2499] {
                led.update(t)?;
            }
            Ok(())
        });
    }

    #[test]
    fn double_blink_flashes_twice_then_rests() {
        led_script(Polarity::ActiveHigh, &[High, Low, High, Low, High], |led| {
            led.set(LedPattern::DoubleBlink, 0)?;
            for t in [149, 150, 299, 300, 449, 450, 1499, 1500] {
                led.update(t)?;
            }
            Ok(())
        });
    }

    #[test]
    fn fast_blink_toggles_every_tenth_of_a_second() {
        led_script(Polarity::ActiveHigh, &[High, Low, High], |led| {
            led.set(LedPattern::FastBlink, 50)?;
            for t in [100, 149, 150, 249, 250] {
                led.update(t)?;
            }
            Ok(())
        });
    }

    #[test]
    fn an_active_low_led_is_lit_by_driving_low() {
        led_script(Polarity::ActiveLow, &[Low, High], |led| {
            led.set(LedPattern::On, 0)?;
            led.update(10_000)?;
            led.set(LedPattern::Off, 10_001)
        });
    }

    #[test]
    fn the_first_update_drives_the_led_off_and_later_ones_write_nothing() {
        led_script(Polarity::ActiveHigh, &[Low], |led| {
            led.update(0)?;
            led.update(5)?;
            led.set(LedPattern::Off, 10)
        });
    }

    #[test]
    fn setting_the_shown_pattern_again_keeps_its_rhythm_and_a_new_one_restarts() {
        led_script(Polarity::ActiveHigh, &[High, Low, High], |led| {
            led.set(LedPattern::SlowBlink, 0)?;
            led.set(LedPattern::SlowBlink, 400)?;
            led.set(LedPattern::SlowBlink, 500)?;
            led.set(LedPattern::FastBlink, 600)?;
            led.update(699)?;
            assert_eq!(led.pattern(), LedPattern::FastBlink);
            Ok(())
        });
    }

    #[test]
    fn a_failed_pin_write_is_retried_at_the_next_update() {
        let err = MockError::Io(std::io::ErrorKind::Other);
        let mut pin = Mock::new(&[T::set(High).with_error(err.clone()), T::set(High)]);
        let mut led = Led::new(pin.clone(), Polarity::ActiveHigh);
        assert_eq!(led.set(LedPattern::On, 0), Err(err));
        assert_eq!(led.update(1), Ok(()));
        assert_eq!(led.update(2), Ok(()));
        pin.done();
    }

    #[test]
    fn three_beeps_sound_at_the_scripted_times_then_the_buzzer_is_quiet() {
        let writes = [High, Low, High, Low, High, Low];
        let mut pin = Mock::new(&writes.map(T::set));
        let mut buzzer = Buzzer::new(pin.clone(), Polarity::ActiveHigh);
        buzzer.beep(3, 100, 200, 1000).unwrap();
        for t in [1099, 1100, 1299, 1300, 1400, 1600, 1699] {
            buzzer.update(t).unwrap();
            assert!(buzzer.is_busy());
        }
        buzzer.update(1700).unwrap();
        assert!(buzzer.is_busy());
        buzzer.update(1900).unwrap();
        assert!(!buzzer.is_busy());
        buzzer.update(5000).unwrap();
        buzzer.release();
        pin.done();
    }

    #[test]
    fn one_long_tone_can_be_silenced_early() {
        let mut pin = Mock::new(&[T::set(Low), T::set(High)]);
        let mut buzzer = Buzzer::new(pin.clone(), Polarity::ActiveLow);
        buzzer.beep(1, 3000, 0, 0).unwrap();
        buzzer.update(2000).unwrap();
        buzzer.silence(2500).unwrap();
        assert!(!buzzer.is_busy());
        buzzer.update(2600).unwrap();
        pin.done();
    }

    #[test]
    fn a_tone_ends_on_its_own_after_its_length() {
        let mut pin = Mock::new(&[T::set(High), T::set(Low)]);
        let mut buzzer = Buzzer::new(pin.clone(), Polarity::ActiveHigh);
        buzzer.beep(1, 250, 0, 100).unwrap();
        buzzer.update(349).unwrap();
        buzzer.update(350).unwrap();
        assert!(!buzzer.is_busy());
        pin.done();
    }

    #[test]
    fn zero_beeps_or_zero_length_make_no_sound() {
        let mut pin = Mock::new(&[T::set(Low)]);
        let mut buzzer = Buzzer::new(pin.clone(), Polarity::ActiveHigh);
        buzzer.beep(0, 100, 100, 0).unwrap();
        buzzer.beep(5, 0, 0, 10).unwrap();
        buzzer.update(20).unwrap();
        assert!(!buzzer.is_busy());
        pin.done();
    }
}
