//! Scenario files: what happens to which device when, and which alerts must follow.
//!
//! ```toml
//! [scenario]
//! title = "电梯困人，无人接单 / A passenger trapped in a lift, and nobody answers"
//! speed = 5            # simulated time runs 5 times faster than real time (default 1, at most 100)
//! strict = true        # an alert no expectation names fails the run (default false)
//! allow = ["water_rising"]   # rules strict mode lets through
//! duration = "5m"      # run at least this long, simulated (default: until every expectation is decided)
//!
//! [community]          # the generated community (see `community::CommunitySpec`); defaults for the rest
//! buildings = 2
//!
//! [[incident]]
//! at = "20s"           # simulated time from the start
//! device = "elev-b1-1"
//! action = "stuck"     # one of the device kind's actions (see `devices`), and its parameters:
//! passenger = true
//! for = "10m"          # how long it lasts (default: the rest of the run)
//! clock = "real"       # `for` counts real time, not simulated (default "simulated")
//! say = "1号楼电梯停在两层之间 / The lift in building 1 stops between floors"
//!
//! [[incident.expect]]
//! rule = "trapped_passenger"  # the gateway rule whose alert must open
//! within = "2m"        # counted from the incident's start, simulated unless clock = "real"
//! device = "elev-b1-1" # default: the incident's device; "*" for any
//! state = "escalated"  # firing, acknowledged, on_site, resolved, closed, or escalated (level 1 or more)
//! escalation_level = 2 # at least this level
//! clock = "real"       # `within` counts real time: use it for the gateway's own timers
//! absent = true        # the alert must NOT open within that time
//! ```
//!
//! Time: `at`, `for` and `within` are simulated time, which runs `speed` times faster than real
//! time, unless the key's table says `clock = "real"`. The gateway's own timers (a rule's
//! `for`, `ack_deadline`, escalation) run on real time, so what waits for them says so. An
//! expected alert is one opened after its incident started (one already open does not count).
//!
//! Every mistake is reported with the file's line: a TOML error where TOML puts it, an unknown
//! key or a bad value at its key, anything else at its table's header.

pub mod api;
pub mod check;
pub mod run;

use std::path::Path;

use gridwatch_edge_rules::duration::parse_ms;
use serde::Deserialize;
use toml::Spanned;

use crate::community::{Community, CommunitySpec};
use crate::devices::{self, Incident};
use crate::fleet::MAX_SPEED;

/// Which clock a duration counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Simulated time, `speed` times faster than real time.
    Simulated,
    /// Real time.
    Real,
}

/// A duration on a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// How long, in ms.
    pub ms: u64,
    /// On which clock.
    pub clock: Clock,
}

impl Span {
    /// The same stretch in simulated ms, at `speed`.
    pub fn sim_ms(&self, speed: f64) -> u64 {
        match self.clock {
            Clock::Simulated => self.ms,
            Clock::Real => (self.ms as f64 * speed) as u64,
        }
    }

    /// The same stretch in real ms, at `speed`.
    pub fn real_ms(&self, speed: f64) -> u64 {
        match self.clock {
            Clock::Simulated => (self.ms as f64 / speed).ceil() as u64,
            Clock::Real => self.ms,
        }
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = gridwatch_edge_rules::duration::show_ms(self.ms);
        match self.clock {
            Clock::Simulated => write!(f, "{d}"),
            Clock::Real => write!(f, "{d} real time"),
        }
    }
}

/// What an expected alert must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// In this state (`firing`, `acknowledged`, `on_site`, `resolved`, `closed`).
    State(&'static str),
    /// Escalated at least once.
    Escalated,
}

const STATES: [&str; 5] = ["firing", "acknowledged", "on_site", "resolved", "closed"];

/// An alert that must follow an incident (or must not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// The gateway rule.
    pub rule: String,
    /// The device; `None` for any.
    pub device: Option<String>,
    /// A state it must reach, if any.
    pub want: Option<Want>,
    /// The escalation level it must reach at least.
    pub escalation_level: u8,
    /// How long after the incident's start it may take.
    pub within: Span,
    /// It must not open within that time.
    pub absent: bool,
    /// Its line in the file.
    pub line: usize,
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.absent {
            write!(f, "no ")?;
        }
        write!(f, "{}", self.rule)?;
        if let Some(d) = &self.device {
            write!(f, " on {d}")?;
        }
        match self.want {
            Some(Want::State(s)) => write!(f, ", {s}")?,
            Some(Want::Escalated) => write!(f, ", escalated")?,
            None => {}
        }
        if self.escalation_level > 0 {
            write!(f, ", level {} or above", self.escalation_level)?;
        }
        write!(f, ", within {}", self.within)
    }
}

/// Something that happens in a scenario.
#[derive(Clone, Debug)]
pub struct Step {
    /// When, in simulated ms from the start.
    pub at_ms: u64,
    /// To which device.
    pub device: String,
    /// What.
    pub incident: Incident,
    /// How long it lasts; `None` for the rest of the run.
    pub lasts: Option<Span>,
    /// What to tell people watching, if anything.
    pub say: Option<String>,
    /// The alerts that must follow.
    pub expect: Vec<Expectation>,
    /// Its line in the file.
    pub line: usize,
}

/// A scenario, checked against its community.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name (the file's, without `.toml`).
    pub name: String,
    /// The file it was read from, for messages.
    pub file: String,
    /// What it shows, for people.
    pub title: String,
    /// How much faster than real time simulated time runs.
    pub speed: f64,
    /// Whether an alert no expectation names fails the run.
    pub strict: bool,
    /// Rules that strict mode lets through.
    pub allow: Vec<String>,
    /// The least the run lasts, in simulated ms.
    pub duration_ms: u64,
    /// The community it runs in.
    pub community: CommunitySpec,
    /// What happens, in file order.
    pub steps: Vec<Step>,
}

/// A mistake in a scenario file, with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// The line, from 1 (0 when the file could not be read).
    pub line: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.message),
            line => write!(f, "{}:{line}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    scenario: Option<RawHeader>,
    community: Option<CommunitySpec>,
    #[serde(default)]
    incident: Vec<Spanned<toml::Table>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    title: Option<String>,
    speed: Option<Spanned<f64>>,
    #[serde(default)]
    strict: bool,
    #[serde(default)]
    allow: Vec<String>,
    duration: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    rule: String,
    within: String,
    device: Option<String>,
    state: Option<String>,
    #[serde(default)]
    escalation_level: u8,
    clock: Option<String>,
    #[serde(default)]
    absent: bool,
}

/// The 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Where a file's keys and tables are, for messages that serde gives without a place.
struct Lines<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
        }
    }

    /// The line of `key = …` in the table whose header is on `header` (or the header's line).
    fn key(&self, header: usize, key: &str) -> usize {
        self.lines
            .iter()
            .enumerate()
            .skip(header)
            .take_while(|(_, l)| !l.trim_start().starts_with('['))
            .find(|(_, l)| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map_or(header, |(i, _)| i + 1)
    }

    /// The line of the `n`-th `[[incident.expect]]` after the incident on `header`.
    fn expect(&self, header: usize, n: usize) -> usize {
        self.lines
            .iter()
            .enumerate()
            .skip(header)
            .take_while(|(_, l)| l.trim() != "[[incident]]")
            .filter(|(_, l)| l.trim() == "[[incident.expect]]")
            .nth(n)
            .map_or(header, |(i, _)| i + 1)
    }

    /// The line of the header `[name]`.
    fn table(&self, name: &str) -> usize {
        let header = format!("[{name}]");
        self.lines
            .iter()
            .position(|l| l.trim() == header)
            .map_or(1, |i| i + 1)
    }
}

fn clock(value: Option<&str>) -> Result<Clock, String> {
    match value {
        None | Some("simulated") => Ok(Clock::Simulated),
        Some("real") => Ok(Clock::Real),
        Some(other) => Err(format!(
            "`clock` is \"simulated\" or \"real\", not {other:?}"
        )),
    }
}

/// Takes `key` out of `table` as a string, if it is there.
fn take_str(table: &mut toml::Table, key: &str) -> Result<Option<String>, String> {
    match table.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("`{key}` must be a string, not {}", v.type_str())),
    }
}

impl Scenario {
    /// Reads and checks the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read it: {e}"),
        })?;
        let name = path
            .file_stem()
            .map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned());
        Self::parse(&text, &name, &file)
    }

    /// Checks the scenario `text`, called `name`, from `file` (for messages).
    pub fn parse(text: &str, name: &str, file: &str) -> Result<Self, ScenarioError> {
        let err = |line: usize, message: String| ScenarioError {
            file: file.to_owned(),
            line,
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            err(line, e.message().to_owned())
        })?;
        let lines = Lines::new(text);
        let header = raw.scenario.unwrap_or_default();
        let speed = match header.speed {
            Some(s) if !(0.01..=MAX_SPEED).contains(s.get_ref()) => {
                return Err(err(
                    line_of(text, s.span().start),
                    format!("`speed` is {}: give 0.01 to {MAX_SPEED}", s.get_ref()),
                ))
            }
            Some(s) => *s.get_ref(),
            None => 1.0,
        };
        let duration_ms = match &header.duration {
            Some(d) => parse_ms(d.get_ref())
                .map_err(|e| err(line_of(text, d.span().start), format!("`duration`: {e}")))?,
            None => 0,
        };
        let spec = raw.community.unwrap_or_default();
        let community = spec
            .generate()
            .map_err(|e| err(lines.table("community"), e.to_string()))?;
        let steps = raw
            .incident
            .into_iter()
            .enumerate()
            .map(|(n, table)| {
                let line = line_of(text, table.span().start);
                Self::step(n, line, table.into_inner(), &community, &lines)
                    .map_err(|(line, message)| err(line, message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            file: file.to_owned(),
            title: header.title.unwrap_or_else(|| name.to_owned()),
            speed,
            strict: header.strict,
            allow: header.allow,
            duration_ms,
            community: spec,
            steps,
        })
    }

    /// The `n`-th `[[incident]]`, its header on `line`.
    fn step(
        n: usize,
        line: usize,
        mut table: toml::Table,
        community: &Community,
        lines: &Lines<'_>,
    ) -> Result<Step, (usize, String)> {
        let at_key = |key: &str, message: String| (lines.key(line, key), message);
        let here = format!("incident {}", n + 1);
        let required = |v: Option<String>, key: &str| {
            v.ok_or_else(|| (line, format!("{here} has no `{key}`")))
        };
        let at = required(
            take_str(&mut table, "at").map_err(|m| at_key("at", m))?,
            "at",
        )?;
        let at_ms = parse_ms(&at).map_err(|e| at_key("at", format!("`at`: {e}")))?;
        let device = required(
            take_str(&mut table, "device").map_err(|m| at_key("device", m))?,
            "device",
        )?;
        let spec = community.device(&device).ok_or_else(|| {
            let ids: Vec<&str> = community.devices.iter().map(|d| d.id.as_str()).collect();
            at_key(
                "device",
                format!(
                    "there is no device {device:?} in the community; it has {}",
                    ids.join(", ")
                ),
            )
        })?;
        let clock = clock(
            take_str(&mut table, "clock")
                .map_err(|m| at_key("clock", m))?
                .as_deref(),
        )
        .map_err(|m| at_key("clock", m))?;
        let lasts = match take_str(&mut table, "for").map_err(|m| at_key("for", m))? {
            Some(d) => Some(Span {
                ms: parse_ms(&d).map_err(|e| at_key("for", format!("`for`: {e}")))?,
                clock,
            }),
            None => None,
        };
        let say = take_str(&mut table, "say").map_err(|m| at_key("say", m))?;
        let expect = match table.remove("expect") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(k, item)| {
                    let line = lines.expect(line, k);
                    Self::expectation(item, &device, community, line)
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(at_key(
                    "expect",
                    "`expect` is a list of tables: write [[incident.expect]]".into(),
                ))
            }
        };
        let kind = devices::kind(&spec.kind).ok_or_else(|| {
            at_key(
                "device",
                format!(
                    "{device} is a {}, which the simulator cannot run",
                    spec.kind
                ),
            )
        })?;
        let keys: Vec<String> = table.keys().cloned().collect();
        let incident = kind.incident(table).map_err(|message| {
            // Put the message at the key it names, if it names one.
            let key = keys
                .iter()
                .find(|k| message.contains(&format!("`{k}`")) && *k != "action")
                .map_or("action", String::as_str);
            (
                lines.key(line, key),
                format!("{here} ({device}): {message}"),
            )
        })?;
        Ok(Step {
            at_ms,
            device,
            incident,
            lasts,
            say,
            expect,
            line,
        })
    }

    fn expectation(
        item: toml::Value,
        device: &str,
        community: &Community,
        line: usize,
    ) -> Result<Expectation, (usize, String)> {
        let raw = RawExpect::deserialize(item)
            .map_err(|e| (line, format!("[[incident.expect]]: {}", e.message())))?;
        let within = Span {
            ms: parse_ms(&raw.within).map_err(|e| (line, format!("`within`: {e}")))?,
            clock: clock(raw.clock.as_deref()).map_err(|m| (line, m))?,
        };
        let device = match raw.device.as_deref() {
            Some("*") => None,
            Some(d) if community.device(d).is_none() => {
                return Err((line, format!("there is no device {d:?} in the community")))
            }
            Some(d) => Some(d.to_owned()),
            None => Some(device.to_owned()),
        };
        let want = match raw.state.as_deref() {
            None => None,
            Some("escalated") => Some(Want::Escalated),
            Some(s) => Some(Want::State(
                STATES.into_iter().find(|k| *k == s).ok_or_else(|| {
                    (
                        line,
                        format!(
                            "`state` {s:?} is not one of {} or escalated",
                            STATES.join(", ")
                        ),
                    )
                })?,
            )),
        };
        let named = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if raw.rule.is_empty() || !raw.rule.chars().all(named) {
            return Err((
                line,
                format!("`rule` {:?} is not a rule name ([a-z0-9_])", raw.rule),
            ));
        }
        Ok(Expectation {
            rule: raw.rule,
            device,
            want,
            escalation_level: raw.escalation_level,
            within,
            absent: raw.absent,
            line,
        })
    }
}

impl Scenario {
    /// Checks that `community` (another than the scenario's own, such as one read from a
    /// gateway's registry) has every device the scenario names, of the same kind.
    pub fn check_in(&self, community: &Community) -> Result<(), ScenarioError> {
        let own = self.community.generate().map_err(|e| ScenarioError {
            file: self.file.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        let named = self.steps.iter().flat_map(|s| {
            std::iter::once((s.line, &s.device, true)).chain(
                s.expect
                    .iter()
                    .filter_map(|e| e.device.as_ref().map(|d| (e.line, d, false))),
            )
        });
        for (line, id, acted_on) in named {
            let kind = own.device(id).map(|d| d.kind.as_str());
            let message = match community.device(id) {
                None => format!("there is no device {id:?} in community {}", community.id),
                Some(d) if acted_on && Some(d.kind.as_str()) != kind => format!(
                    "{id} is a {} in community {}, not a {}",
                    d.kind,
                    community.id,
                    kind.unwrap_or("device")
                ),
                Some(_) => continue,
            };
            return Err(ScenarioError {
                file: self.file.clone(),
                line,
                message,
            });
        }
        Ok(())
    }
}

/// The scenarios that ship with the simulator (`simulators/scenarios/`): name and text.
pub const SHIPPED: [(&str, &str); 6] = [
    ("tour", include_str!("../../scenarios/tour.toml")),
    (
        "trapped-passenger",
        include_str!("../../scenarios/trapped-passenger.toml"),
    ),
    (
        "blocked-passage",
        include_str!("../../scenarios/blocked-passage.toml"),
    ),
    ("storm", include_str!("../../scenarios/storm.toml")),
    (
        "sos-unanswered",
        include_str!("../../scenarios/sos-unanswered.toml"),
    ),
    (
        "electrical-parking-perimeter",
        include_str!("../../scenarios/electrical-parking-perimeter.toml"),
    ),
];

/// The shipped scenario called `name`, checked.
pub fn shipped(name: &str) -> Option<Result<Scenario, ScenarioError>> {
    SHIPPED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Scenario::parse(text, n, &format!("simulators/scenarios/{n}.toml")))
}

#[cfg(test)]
mod tests;
