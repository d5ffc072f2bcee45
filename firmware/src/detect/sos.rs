//! The one-tap SOS button of an elderly resident: press once for help, press again soon after to
//! cancel, and an LED that says whether the call went out and whether help is coming.
//!
//! Rules, in the order they matter:
//! - A press is never lost. It raises `sos_pressed` at once, or, if another `sos_pressed` went
//!   out less than [`SosConfig::hold_off_ms`] ago, as soon as that hold-off ends.
//! - One press raises at most one `sos_pressed`: only the debounced press edge counts, so a
//!   button held down or stuck sends one event, and a chattering contact at most one per
//!   hold-off.
//! - A press within [`SosConfig::cancel_window_ms`] of the last `sos_pressed` going out cancels
//!   it with `sos_cancelled`; a press within that time of a press still held back cancels it
//!   silently. So every `sos_cancelled` follows an `sos_pressed`, never two in a row.
//! - A press after the cancel window calls again (the resident insists), subject to the hold-off.
//!
//! LED: [`Led::Sent`] from the press until the gateway's acknowledgement arrives on the cmd
//! topic ([`Sos::help_coming`]), then [`Led::HelpComing`]; back to [`Led::Idle`] on a cancel or
//! when the state times out. The node loop calls [`Sos::step`] on every button interrupt and at
//! [`Sos::next_deadline_ms`], and drives its LED from [`Sos::led`].

use super::timing::{Debounce, HoldOff};
use super::Event;

/// An event the SOS button raises; [`Event::name`] spells it as the kind catalogue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SosEvent {
    /// The resident asks for help.
    SosPressed,
    /// The resident took the call back.
    SosCancelled,
}

impl Event for SosEvent {
    const ALL: &'static [Self] = &[Self::SosPressed, Self::SosCancelled];

    fn name(&self) -> &'static str {
        match self {
            Self::SosPressed => "sos_pressed",
            Self::SosCancelled => "sos_cancelled",
        }
    }
}

/// What the button's LED shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Led {
    /// Off: no call open.
    Idle,
    /// The call is sent (or about to be) and not yet acknowledged.
    Sent,
    /// The gateway acknowledged: a grid worker is on the way.
    HelpComing,
}

/// Timings of the SOS button. `Default` holds the field-tested values.
#[derive(Clone, Debug, PartialEq)]
pub struct SosConfig {
    /// How long the contact must stay pressed or released, in ms. Default 50 ms, longer than a
    /// button's contact bounce (5 to 20 ms).
    pub debounce_ms: u64,
    /// A press within this time of the call cancels it, in ms. Default 10 s (issue 4): time
    /// enough to notice a press by mistake, short enough not to cancel a real call by a later
    /// press.
    pub cancel_window_ms: u64,
    /// The shortest gap between two `sos_pressed` events, in ms. Default 30 s: the gateway's
    /// alert for the first is open for far longer, and a failing contact must not flood.
    pub hold_off_ms: u64,
    /// How long [`Led::Sent`] shows without an acknowledgement, in ms. Default 10 min: the
    /// gateway escalates an unacknowledged SOS within that time.
    pub sent_led_ms: u64,
    /// How long [`Led::HelpComing`] shows, in ms. Default 30 min, the on-site time grid workers
    /// are held to.
    pub help_coming_led_ms: u64,
}

impl Default for SosConfig {
    /// The field-tested defaults; see each field for its value and source.
    fn default() -> Self {
        Self {
            debounce_ms: 50,
            cancel_window_ms: 10_000,
            hold_off_ms: 30_000,
            sent_led_ms: 10 * 60_000,
            help_coming_led_ms: 30 * 60_000,
        }
    }
}

/// Where the call stands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Idle,
    Sent { pressed_at: u64 },
    HelpComing { pressed_at: u64, since: u64 },
}

/// The SOS button's state.
#[derive(Clone, Debug)]
pub struct Sos {
    cancel_window_ms: u64,
    sent_led_ms: u64,
    help_coming_led_ms: u64,
    button: Debounce,
    hold_off: HoldOff,
    phase: Phase,
    /// A press whose `sos_pressed` waits for the hold-off to end.
    held_back: bool,
}

impl Sos {
    /// A button in [`Led::Idle`], released.
    pub fn new(config: &SosConfig) -> Self {
        Self {
            cancel_window_ms: config.cancel_window_ms,
            sent_led_ms: config.sent_led_ms,
            help_coming_led_ms: config.help_coming_led_ms,
            button: Debounce::new(false, config.debounce_ms),
            hold_off: HoldOff::new(config.hold_off_ms),
            phase: Phase::Idle,
            held_back: false,
        }
    }

    /// Feeds the raw button level (true = pressed) at `now_ms`; returns the event to send, if any.
    pub fn step(&mut self, now_ms: u64, pressed: bool) -> Option<SosEvent> {
        self.expire(now_ms);
        if self.button.update(pressed, now_ms) == Some(true) {
            let open_call = match self.phase {
                Phase::Sent { pressed_at } | Phase::HelpComing { pressed_at, .. } => {
                    Some(pressed_at)
                }
                Phase::Idle => None,
            };
            if open_call.is_some_and(|at| now_ms.saturating_sub(at) < self.cancel_window_ms) {
                self.phase = Phase::Idle;
                let was_sent = !self.held_back;
                self.held_back = false;
                return was_sent.then_some(SosEvent::SosCancelled);
            }
            self.phase = Phase::Sent { pressed_at: now_ms };
            self.held_back = true;
        }
        if self.held_back && self.hold_off.try_pass(now_ms) {
            self.held_back = false;
            // The cancel window runs from when the call went out, which the resident sees.
            if let Phase::Sent { pressed_at } | Phase::HelpComing { pressed_at, .. } =
                &mut self.phase
            {
                *pressed_at = now_ms;
            }
            return Some(SosEvent::SosPressed);
        }
        None
    }

    /// The gateway acknowledged the call at `now_ms`: a grid worker is coming. Ignored unless a
    /// call is open (an acknowledgement can cross a cancel).
    pub fn help_coming(&mut self, now_ms: u64) {
        if let Phase::Sent { pressed_at } = self.phase {
            self.phase = Phase::HelpComing {
                pressed_at,
                since: now_ms,
            };
        }
    }

    /// What the LED should show.
    pub fn led(&self) -> Led {
        match self.phase {
            Phase::Idle => Led::Idle,
            Phase::Sent { .. } => Led::Sent,
            Phase::HelpComing { .. } => Led::HelpComing,
        }
    }

    /// When [`Sos::step`] must run next even if the button stays still (a held-back call, the
    /// LED timing out), in ms; `None` when only the button can change anything.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let send = self.held_back.then(|| self.hold_off.ready_at_ms());
        let led = match self.phase {
            Phase::Idle => None,
            Phase::Sent { pressed_at } => Some(pressed_at.saturating_add(self.sent_led_ms)),
            Phase::HelpComing { since, .. } => Some(since.saturating_add(self.help_coming_led_ms)),
        };
        match (send, led) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Lets the LED state time out.
    fn expire(&mut self, now_ms: u64) {
        let until = match self.phase {
            Phase::Idle => return,
            Phase::Sent { pressed_at } => pressed_at.saturating_add(self.sent_led_ms),
            Phase::HelpComing { since, .. } => since.saturating_add(self.help_coming_led_ms),
        };
        if now_ms >= until {
            self.phase = Phase::Idle;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SosEvent::*;
    use super::*;
    use proptest::prelude::*;

    /// Runs (time, raw level, expected event, expected LED) steps on one button.
    fn run(sos: &mut Sos, script: &[(u64, bool, Option<SosEvent>, Led)]) {
        for &(t, pressed, want, led) in script {
            assert_eq!(sos.step(t, pressed), want, "event at {t} ms");
            assert_eq!(sos.led(), led, "LED at {t} ms");
        }
    }

    fn button() -> Sos {
        Sos::new(&SosConfig::default())
    }

    #[test]
    fn one_press_calls_for_help_at_once() {
        run(
            &mut button(),
            &[
                (0, true, None, Led::Idle),
                (10, false, None, Led::Idle),
                (20, true, None, Led::Idle),
                (70, true, Some(SosPressed), Led::Sent),
                (300, false, None, Led::Sent),
                (400, false, None, Led::Sent),
            ],
        );
    }

    #[test]
    fn a_second_press_within_ten_seconds_cancels_the_call() {
        run(
            &mut button(),
            &[
                (0, true, None, Led::Idle),
                (50, true, Some(SosPressed), Led::Sent),
                (500, false, None, Led::Sent),
                (600, false, None, Led::Sent),
                (9_000, true, None, Led::Sent),
                (9_050, true, Some(SosCancelled), Led::Idle),
                (9_500, false, None, Led::Idle),
                (9_600, false, None, Led::Idle),
            ],
        );
    }

    #[test]
    fn a_held_or_stuck_button_calls_once() {
        let mut sos = button();
        let mut events = std::vec::Vec::new();
        for t in (0..3_600_000).step_by(100) {
            events.extend(sos.step(t, true));
        }
        assert_eq!(events, [SosPressed]);
        assert_eq!(sos.next_deadline_ms(), None);
        assert_eq!(sos.led(), Led::Idle);
    }

    #[test]
    fn the_acknowledgement_shows_help_coming_until_it_times_out() {
        let mut sos = button();
        run(
            &mut sos,
            &[
                (0, true, None, Led::Idle),
                (50, true, Some(SosPressed), Led::Sent),
                (100, false, None, Led::Sent),
                (150, false, None, Led::Sent),
            ],
        );
        assert_eq!(sos.next_deadline_ms(), Some(600_050));
        sos.help_coming(20_000);
        assert_eq!(sos.led(), Led::HelpComing);
        assert_eq!(sos.next_deadline_ms(), Some(1_820_000));
        run(
            &mut sos,
            &[
                (1_819_999, false, None, Led::HelpComing),
                (1_820_000, false, None, Led::Idle),
            ],
        );
        assert_eq!(sos.next_deadline_ms(), None);
    }

    #[test]
    fn an_unacknowledged_call_stops_showing_sent_after_ten_minutes() {
        let mut sos = button();
        run(
            &mut sos,
            &[
                (0, true, None, Led::Idle),
                (50, true, Some(SosPressed), Led::Sent),
                (100, false, None, Led::Sent),
                (150, false, None, Led::Sent),
                (600_049, false, None, Led::Sent),
                (600_050, false, None, Led::Idle),
            ],
        );
        sos.help_coming(700_000);
        assert_eq!(sos.led(), Led::Idle);
    }

    #[test]
    fn pressing_again_after_the_cancel_window_calls_again_once_the_hold_off_ends() {
        let mut sos = button();
        run(
            &mut sos,
            &[
                (0, true, None, Led::Idle),
                (50, true, Some(SosPressed), Led::Sent),
                (100, false, None, Led::Sent),
                (150, false, None, Led::Sent),
                (15_000, true, None, Led::Sent),
                (15_050, true, None, Led::Sent),
            ],
        );
        assert_eq!(sos.next_deadline_ms(), Some(30_050));
        run(
            &mut sos,
            &[
                (30_049, true, None, Led::Sent),
                (30_050, true, Some(SosPressed), Led::Sent),
            ],
        );
    }

    #[test]
    fn a_press_held_back_by_the_hold_off_is_cancelled_silently() {
        run(
            &mut button(),
            &[
                (0, true, None, Led::Idle),
                (50, true, Some(SosPressed), Led::Sent),
                (100, false, None, Led::Sent),
                (150, false, None, Led::Sent),
                (1_000, true, None, Led::Sent),
                (1_050, true, Some(SosCancelled), Led::Idle),
                (1_100, false, None, Led::Idle),
                (1_150, false, None, Led::Idle),
                (2_000, true, None, Led::Idle),
                (2_050, true, None, Led::Sent),
                (2_100, false, None, Led::Sent),
                (2_150, false, None, Led::Sent),
                (3_000, true, None, Led::Sent),
                (3_050, true, None, Led::Idle),
                (3_100, false, None, Led::Idle),
                (60_000, false, None, Led::Idle),
            ],
        );
    }

    #[test]
    fn an_acknowledgement_for_a_cancelled_call_changes_nothing() {
        let mut sos = button();
        run(
            &mut sos,
            &[
                (0, true, None, Led::Idle),
                (50, true, Some(SosPressed), Led::Sent),
                (100, false, None, Led::Sent),
                (150, false, None, Led::Sent),
                (1_000, true, None, Led::Sent),
                (1_050, true, Some(SosCancelled), Led::Idle),
            ],
        );
        sos.help_coming(2_000);
        assert_eq!(sos.led(), Led::Idle);
    }

    proptest! {
        #[test]
        fn sos_events_alternate_are_spaced_by_the_hold_off_and_never_outnumber_presses(
            steps in proptest::collection::vec((1u64..20_000, any::<bool>(), any::<bool>()), 1..400),
        ) {
            let mut sos = button();
            let mut t = 0;
            let mut was_pressed = false;
            let mut raw_presses = 0;
            let mut sent = 0;
            let mut open = false;
            let mut last_sent = None::<u64>;
            for (gap, pressed, ack) in steps {
                t += gap;
                if pressed && !was_pressed {
                    raw_presses += 1;
                }
                was_pressed = pressed;
                if ack {
                    sos.help_coming(t);
                }
                match sos.step(t, pressed) {
                    Some(SosPressed) => {
                        prop_assert!(last_sent.is_none_or(|l| t - l >= 30_000), "at {} ms", t);
                        last_sent = Some(t);
                        sent += 1;
                        open = true;
                    }
                    Some(SosCancelled) => {
                        prop_assert!(open, "cancel without a call, at {} ms", t);
                        open = false;
                    }
                    None => {}
                }
                prop_assert!(sent <= raw_presses);
            }
        }

        #[test]
        fn a_press_long_after_the_last_call_calls_at_once(
            quiet in 30_000u64..1_000_000,
            hold in 50u64..10_000,
        ) {
            let mut sos = button();
            prop_assert_eq!(sos.step(0, true), None);
            prop_assert_eq!(sos.step(50, true), Some(SosPressed));
            prop_assert_eq!(sos.step(100, false), None);
            prop_assert_eq!(sos.step(150, false), None);
            let t = 150 + quiet;
            prop_assert_eq!(sos.step(t, true), None);
            prop_assert_eq!(sos.step(t + hold, true), Some(SosPressed));
        }
    }
}
