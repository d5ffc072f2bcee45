//! Whether the alerts a scenario expects show up in time: a pure checker fed the gateway's
//! alert list and the time (real ms since the run began).
//!
//! An expectation is armed when its incident starts: every alert seen so far is set aside, so
//! only an alert opened after the incident started can meet it. Its deadline is `within` after
//! the start on its own clock (simulated time as the simulation actually advanced, so a machine
//! too busy to keep up with the speed does not fail it; or real time), and then [`GRACE_MS`] of
//! real time more. It passes when such an alert matches (rule, device, state, escalation level)
//! and fails at its deadline; one with `absent` the other way round. In strict mode, an alert opened during the run that no expectation names (by rule
//! and device) and whose rule is not allowed is reported as unexpected.

use std::collections::HashSet;

use serde::Deserialize;

use super::{Clock, Expectation, Scenario, Want};

/// Real time added to every deadline, for the gateway's round trip and the runner's polling.
pub const GRACE_MS: u64 = 2_000;

/// An alert as the gateway lists it (`GET /api/v1/alerts`), the fields the check reads.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SeenAlert {
    /// Its id.
    pub alert_id: String,
    /// The rule that opened it.
    pub rule: String,
    /// `firing`, `acknowledged`, `on_site`, `resolved` or `closed`.
    pub state: String,
    /// The device.
    pub device: SeenDevice,
    /// 0 for the worker on duty; each escalation adds one.
    #[serde(default)]
    pub escalation_level: u8,
}

/// The device of a [`SeenAlert`].
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SeenDevice {
    /// Its id.
    pub id: String,
}

/// A moment of a run on both its clocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Real ms since the run began.
    pub real_ms: u64,
    /// Simulated ms since the run began.
    pub sim_ms: u64,
}

/// How an expectation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The incident, by its number in the scenario.
    pub step: usize,
    /// The expectation, by its number in the incident.
    pub expectation: usize,
    /// Whether it was met.
    pub passed: bool,
    /// Real ms from the incident's start to the verdict.
    pub after_ms: u64,
    /// The alert that decided it, if one did.
    pub alert_id: Option<String>,
    /// What was seen, for a failure.
    pub detail: Option<String>,
}

struct Tracked {
    step: usize,
    expectation: usize,
    exp: Expectation,
    armed: Option<Armed>,
    verdict: Option<Verdict>,
    /// The last alert that matched its rule and device but not its state, for the failure's detail.
    near: Option<SeenAlert>,
}

struct Armed {
    started: Now,
    /// When (real ms) `within` had passed on the expectation's clock.
    due_at: Option<u64>,
    before: HashSet<String>,
}

/// The check of one scenario run.
pub struct Checker {
    tracked: Vec<Tracked>,
    steps: usize,
    started: usize,
    seen: HashSet<String>,
    baseline: HashSet<String>,
    strict: bool,
    allow: Vec<String>,
    names: Vec<(String, Option<String>)>,
    unexpected: Vec<SeenAlert>,
}

fn matches_target(exp: &Expectation, alert: &SeenAlert) -> bool {
    alert.rule == exp.rule && exp.device.as_ref().is_none_or(|d| *d == alert.device.id)
}

fn matches(exp: &Expectation, alert: &SeenAlert) -> bool {
    matches_target(exp, alert)
        && alert.escalation_level >= exp.escalation_level
        && match exp.want {
            None => true,
            Some(Want::State(s)) => alert.state == s,
            Some(Want::Escalated) => alert.escalation_level >= 1,
        }
}

impl Checker {
    /// A check of `scenario`.
    pub fn new(scenario: &Scenario) -> Self {
        let tracked = scenario
            .steps
            .iter()
            .enumerate()
            .flat_map(|(step, s)| {
                s.expect
                    .iter()
                    .enumerate()
                    .map(move |(expectation, exp)| Tracked {
                        step,
                        expectation,
                        exp: exp.clone(),
                        armed: None,
                        verdict: None,
                        near: None,
                    })
            })
            .collect::<Vec<_>>();
        let names = tracked
            .iter()
            .map(|t| (t.exp.rule.clone(), t.exp.device.clone()))
            .collect();
        Self {
            tracked,
            steps: scenario.steps.len(),
            started: 0,
            seen: HashSet::new(),
            baseline: HashSet::new(),
            strict: scenario.strict,
            allow: scenario.allow.clone(),
            names,
            unexpected: Vec::new(),
        }
    }

    /// The alerts there were before the run: none of them is expected or unexpected.
    pub fn baseline(&mut self, alerts: &[SeenAlert]) {
        for a in alerts {
            self.baseline.insert(a.alert_id.clone());
            self.seen.insert(a.alert_id.clone());
        }
    }

    /// The alerts opened during the run, by id, as seen so far.
    pub fn opened(&self) -> impl Iterator<Item = &str> {
        self.seen
            .iter()
            .filter(|id| !self.baseline.contains(*id))
            .map(String::as_str)
    }

    /// Incident `step` started at `now`: its expectations are armed.
    pub fn started(&mut self, step: usize, now: Now) {
        self.started += 1;
        for t in self.tracked.iter_mut().filter(|t| t.step == step) {
            t.armed = Some(Armed {
                started: now,
                due_at: None,
                before: self.seen.clone(),
            });
        }
    }

    /// The gateway's alerts at `now`; returns the verdicts reached now.
    pub fn observe(&mut self, now: Now, alerts: &[SeenAlert]) -> Vec<Verdict> {
        let now_ms = now.real_ms;
        for a in alerts {
            if self.seen.insert(a.alert_id.clone())
                && self.strict
                && !self.allow.contains(&a.rule)
                && !self.names.iter().any(|(rule, device)| {
                    *rule == a.rule && device.as_ref().is_none_or(|d| *d == a.device.id)
                })
            {
                self.unexpected.push(a.clone());
            }
        }
        let mut decided = Vec::new();
        for t in &mut self.tracked {
            let (Some(armed), None) = (&mut t.armed, &t.verdict) else {
                continue;
            };
            let within = t.exp.within.ms;
            let due = match t.exp.within.clock {
                Clock::Simulated => now.sim_ms >= armed.started.sim_ms + within,
                Clock::Real => now.real_ms >= armed.started.real_ms + within,
            };
            if due && armed.due_at.is_none() {
                armed.due_at = Some(now.real_ms);
            }
            let over = armed.due_at.is_some_and(|at| now.real_ms >= at + GRACE_MS);
            let fresh = |a: &&SeenAlert| !armed.before.contains(&a.alert_id);
            let hit = alerts.iter().filter(fresh).find(|a| matches(&t.exp, a));
            if let Some(near) = alerts
                .iter()
                .filter(fresh)
                .find(|a| matches_target(&t.exp, a))
            {
                t.near = Some(near.clone());
            }
            let after_ms = now_ms.saturating_sub(armed.started.real_ms);
            let verdict =
                |passed: bool, alert_id: Option<String>, detail: Option<String>| Verdict {
                    step: t.step,
                    expectation: t.expectation,
                    passed,
                    after_ms,
                    alert_id,
                    detail,
                };
            let v = match (hit, t.exp.absent) {
                (Some(a), false) => Some(verdict(true, Some(a.alert_id.clone()), None)),
                (Some(a), true) => Some(verdict(
                    false,
                    Some(a.alert_id.clone()),
                    Some(format!("{} opened on {}", a.rule, a.device.id)),
                )),
                (None, true) if over => Some(verdict(true, None, None)),
                (None, false) if over => {
                    let detail = match &t.near {
                        Some(a) => format!(
                            "{} {} is {} at escalation level {}",
                            a.rule, a.alert_id, a.state, a.escalation_level
                        ),
                        None => "no such alert opened".to_owned(),
                    };
                    Some(verdict(false, None, Some(detail)))
                }
                (None, _) => None,
            };
            if let Some(v) = v {
                t.verdict = Some(v.clone());
                decided.push(v);
            }
        }
        decided
    }

    /// Whether every incident has started and every expectation is decided.
    pub fn done(&self) -> bool {
        self.started >= self.steps && self.tracked.iter().all(|t| t.verdict.is_some())
    }

    /// Every verdict reached, in scenario order.
    pub fn verdicts(&self) -> Vec<Verdict> {
        self.tracked
            .iter()
            .filter_map(|t| t.verdict.clone())
            .collect()
    }

    /// Alerts strict mode did not expect, in the order they were seen.
    pub fn unexpected(&self) -> &[SeenAlert] {
        &self.unexpected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = r#"
[scenario]
speed = 10
strict = true
allow = ["water_rising"]

[[incident]]
at = "10s"
device = "sos-b1-0301"
action = "press"

[[incident.expect]]
rule = "sos_pressed"
within = "30s"

[[incident.expect]]
rule = "sos_pressed"
state = "escalated"
within = "2m"
clock = "real"

[[incident]]
at = "20s"
device = "fp-b1-1"
action = "door_propped"

[[incident.expect]]
rule = "passage_blocked"
within = "1m"
absent = true
"#;

    fn alert(id: &str, rule: &str, device: &str, state: &str, level: u8) -> SeenAlert {
        SeenAlert {
            alert_id: id.into(),
            rule: rule.into(),
            state: state.into(),
            device: SeenDevice { id: device.into() },
            escalation_level: level,
        }
    }

    fn checker() -> Checker {
        Checker::new(&Scenario::parse(SCENARIO, "t", "t.toml").unwrap())
    }

    /// `real_ms` into a run at speed 10, the simulation keeping up.
    fn at(real_ms: u64) -> Now {
        Now {
            real_ms,
            sim_ms: real_ms * 10,
        }
    }

    #[test]
    fn an_alert_that_was_open_before_the_incident_does_not_count() {
        let mut c = checker();
        let old = alert("a0", "sos_pressed", "sos-b1-0301", "firing", 0);
        c.baseline(std::slice::from_ref(&old));
        c.started(0, at(1_000));
        assert!(c.observe(at(2_000), std::slice::from_ref(&old)).is_empty());
        // 30 s simulated at speed 10 is 3 s, then the grace.
        assert!(c.observe(at(4_000), std::slice::from_ref(&old)).is_empty());
        let v = c.observe(at(6_000), std::slice::from_ref(&old));
        assert_eq!(v.len(), 1);
        assert!(!v[0].passed);
        assert_eq!(v[0].detail.as_deref(), Some("no such alert opened"));
    }

    #[test]
    fn a_new_alert_passes_and_its_escalation_passes_the_second_expectation_later() {
        let mut c = checker();
        c.baseline(&[]);
        c.started(0, at(0));
        let firing = alert("a1", "sos_pressed", "sos-b1-0301", "firing", 0);
        let v = c.observe(at(500), std::slice::from_ref(&firing));
        assert_eq!(v.len(), 1);
        assert!(v[0].passed && v[0].expectation == 0 && v[0].after_ms == 500);
        let escalated = alert("a1", "sos_pressed", "sos-b1-0301", "firing", 1);
        let v = c.observe(at(61_000), &[escalated]);
        assert!(v[0].passed && v[0].expectation == 1, "{v:?}");
        assert!(!c.done(), "the second incident has not started");
    }

    #[test]
    fn an_alert_that_never_escalates_fails_with_what_was_seen() {
        let mut c = checker();
        c.started(0, at(0));
        let firing = alert("a1", "sos_pressed", "sos-b1-0301", "firing", 0);
        c.observe(at(500), std::slice::from_ref(&firing));
        assert!(c
            .observe(at(120_000), std::slice::from_ref(&firing))
            .is_empty());
        let v = c.observe(at(122_000), &[firing]);
        assert_eq!(
            v[0].detail.as_deref(),
            Some("sos_pressed a1 is firing at escalation level 0")
        );
    }

    #[test]
    fn an_absent_alert_passes_at_its_deadline_and_fails_if_it_opens() {
        let mut c = checker();
        c.started(1, at(0));
        assert!(c.observe(at(6_000), &[]).is_empty());
        assert!(c.observe(at(7_000), &[]).is_empty());
        assert!(c.observe(at(8_000), &[])[0].passed);
        let mut c = checker();
        c.started(1, at(0));
        let v = c.observe(
            at(1_000),
            &[alert("b", "passage_blocked", "fp-b1-1", "firing", 0)],
        );
        assert!(!v[0].passed);
    }

    #[test]
    fn a_simulated_deadline_waits_for_a_simulation_that_falls_behind() {
        let mut c = checker();
        c.started(0, at(0));
        // Thirty simulated seconds have not passed, however long it took in real time.
        let slow = Now {
            real_ms: 60_000,
            sim_ms: 29_000,
        };
        assert!(c.observe(slow, &[]).is_empty());
        let due = Now {
            real_ms: 61_000,
            sim_ms: 30_000,
        };
        assert!(c.observe(due, &[]).is_empty(), "the grace comes first");
        let v = c.observe(
            Now {
                real_ms: 63_000,
                ..due
            },
            &[],
        );
        assert!(!v[0].passed);
    }

    #[test]
    fn strict_mode_reports_alerts_nobody_expected_except_allowed_rules() {
        let mut c = checker();
        c.baseline(&[alert("old", "tamper", "mh-1", "firing", 0)]);
        c.observe(
            at(100),
            &[
                alert("old", "tamper", "mh-1", "firing", 0),
                alert("n1", "water_rising", "mh-2", "firing", 0),
                alert("n2", "tamper", "mh-2", "firing", 0),
                alert("n3", "sos_pressed", "sos-b1-0301", "firing", 0),
            ],
        );
        let ids: Vec<&str> = c.unexpected().iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids, ["n2"]);
        let mut opened: Vec<&str> = c.opened().collect();
        opened.sort_unstable();
        assert_eq!(opened, ["n1", "n2", "n3"]);
    }

    #[test]
    fn done_once_every_incident_started_and_every_expectation_is_decided() {
        let mut c = checker();
        c.started(0, at(0));
        c.started(1, at(0));
        let a = alert("a", "sos_pressed", "sos-b1-0301", "firing", 1);
        c.observe(at(100), &[a]);
        assert!(!c.done());
        c.observe(at(6_000), &[]);
        c.observe(at(8_000), &[]);
        assert!(c.done());
        assert_eq!(c.verdicts().len(), 3);
    }
}
