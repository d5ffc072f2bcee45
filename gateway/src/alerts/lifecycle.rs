//! The alert lifecycle: `firing` → `acknowledged` → `on_site` → `resolved` → `closed`, and which
//! person may move an alert from where to where. Pure: the book applies it with who and when.

use serde::{Deserialize, Serialize};

use super::State;

/// What a person does to an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// "I have it": the escalation stops here.
    Acknowledge,
    /// "I am there."
    OnSite,
    /// "The cause is dealt with."
    Resolve,
    /// "Case closed", with a note of what was found and done.
    Close,
}

impl Action {
    /// The name used in the API's paths and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::OnSite => "on_site",
            Action::Resolve => "resolve",
            Action::Close => "close",
        }
    }

    /// The action named `s` in an API path.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Action::Acknowledge,
            Action::OnSite,
            Action::Resolve,
            Action::Close,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

impl State {
    /// The name used in the API and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Acknowledged => "acknowledged",
            State::OnSite => "on_site",
            State::Resolved => "resolved",
            State::Closed => "closed",
        }
    }
}

/// Why an action does not apply to an alert in its state, with what would.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an alert that is {}: {hint}", .action.as_str(), .from.as_str())]
pub struct WrongTransition {
    /// The state it is in.
    pub from: State,
    /// What was asked.
    pub action: Action,
    /// What can be done instead.
    pub hint: &'static str,
}

/// The state `action` moves an alert in state `from` to. Steps may be skipped forward (a worker
/// who arrives at once marks on site without acknowledging first); nothing goes back, and a
/// closed alert stays closed.
pub fn next(from: State, action: Action) -> Result<State, WrongTransition> {
    use Action as A;
    use State as S;
    let wrong = |hint| Err(WrongTransition { from, action, hint });
    match (from, action) {
        (S::Closed, _) => wrong("it is closed; a new occurrence opens a new alert"),
        (_, A::Close) => Ok(S::Closed),
        (S::Firing, A::Acknowledge) => Ok(S::Acknowledged),
        (_, A::Acknowledge) => wrong("it was acknowledged already"),
        (S::Firing | S::Acknowledged, A::OnSite) => Ok(S::OnSite),
        (_, A::OnSite) => wrong("someone is or was on site already"),
        (S::Firing | S::Acknowledged | S::OnSite, A::Resolve) => Ok(S::Resolved),
        (S::Resolved, A::Resolve) => wrong("it is resolved already; close it with a note"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_usual_path_runs_from_firing_to_closed() {
        let mut s = State::Firing;
        for a in [
            Action::Acknowledge,
            Action::OnSite,
            Action::Resolve,
            Action::Close,
        ] {
            s = next(s, a).unwrap();
        }
        assert_eq!(s, State::Closed);
    }

    #[test]
    fn wrong_steps_say_what_to_do_instead() {
        let e = next(State::OnSite, Action::Acknowledge).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot acknowledge an alert that is on_site: it was acknowledged already"
        );
        assert!(next(State::Closed, Action::Close).is_err());
        assert_eq!(next(State::Firing, Action::OnSite), Ok(State::OnSite));
        assert_eq!(Action::parse("on_site"), Some(Action::OnSite));
        assert_eq!(Action::parse("ack"), None);
    }

    fn rank(s: State) -> u8 {
        match s {
            State::Firing => 0,
            State::Acknowledged => 1,
            State::OnSite => 2,
            State::Resolved => 3,
            State::Closed => 4,
        }
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Action::Acknowledge),
            Just(Action::OnSite),
            Just(Action::Resolve),
            Just(Action::Close)
        ]
    }

    proptest! {
        #[test]
        fn alerts_only_move_forward_and_close_once(actions in proptest::collection::vec(action(), 0..12)) {
            let mut s = State::Firing;
            let mut closes = 0;
            for a in actions {
                if let Ok(n) = next(s, a) {
                    prop_assert!(rank(n) > rank(s));
                    closes += usize::from(n == State::Closed);
                    s = n;
                }
            }
            prop_assert!(closes <= 1);
        }
    }
}
