//! Rule files: TOML, checked against the kind schema with every problem reported at once, each
//! with its line, column and what to write instead.
//!
//! ```toml
//! [[rule]]
//! name = "water_overflow"
//! severity = "major"
//! kind = "manhole"
//! when = "water_cm >= 80"
//! for = "1m"
//! clear = "water_cm < 60"
//! message = { zh-CN = "{building_name}{location}井内水位 {water_cm} 厘米", en = "Water at {water_cm} cm" }
//! ```

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::duration::parse_ms;
use crate::expr::{Expr, ExprError, Type};
use crate::rule::{Absence, AbsentFor, Count, Direction, Level, Rule, Selector, Trigger, Window};
use crate::schema::Schema;
use crate::template::{Template, REGISTRY_FIELDS};
use crate::Severity;

/// The longest duration a rule may use: longer timers are mistakes (and outlive any restart plan).
pub const MAX_DURATION_MS: u64 = 30 * 86_400_000;

/// A loaded rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSet {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The community's offset from UTC, in minutes, for `during` windows.
    pub utc_offset_min: i32,
}

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub hint: Option<String>,
}

/// Why a rule file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rule file {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems.
    #[error("{}", show_problems(file, problems))]
    Invalid {
        /// The file.
        file: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

fn show_problems(file: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{file}:{}:{}: {}", p.line, p.col, p.message));
        if let Some(h) = &p.hint {
            out.push_str(&format!("\n    hint: {h}"));
        }
    }
    out
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl RuleSet {
    /// Reads and checks a rule file.
    pub fn load(path: &std::path::Path, schema: &Schema) -> Result<Self, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, schema).map_err(|problems| RulesError::Invalid { file, problems })
    }

    /// Parses and checks rule file text, returning every problem found.
    pub fn parse(text: &str, schema: &Schema) -> Result<Self, Vec<Problem>> {
        let (set, problems) = Self::parse_partly(text, schema);
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(problems)
        }
    }

    /// Parses rule file text keeping the rules that check, with the problems of the others: for
    /// the built-in rules under a catalogue that lacks some of their kinds.
    pub fn parse_partly(text: &str, schema: &Schema) -> (Self, Vec<Problem>) {
        let mut c = Checker {
            text,
            schema,
            problems: Vec::new(),
        };
        let files: Vec<RawFile> = match toml::from_str(text) {
            Ok(raw) => vec![raw],
            Err(e) => {
                // Each rule on its own, so that one typo does not hide the problems of the others.
                let mut ok = Vec::new();
                for (start, end) in chunks(text) {
                    match toml::from_str::<RawFile>(&blank_outside(text, start, end)) {
                        Ok(raw) => ok.push(raw),
                        Err(e) => {
                            let at = e.span().map_or(start, |s| s.start);
                            c.problem(at, e.message().trim_end(), None);
                        }
                    }
                }
                if c.problems.is_empty() {
                    let at = e.span().map_or(0, |s| s.start);
                    c.problem(at, e.message().trim_end(), None);
                }
                ok
            }
        };
        let mut utc_offset_min = 8 * 60;
        let mut rules: Vec<Rule> = Vec::new();
        for raw in &files {
            if let Some(s) = &raw.utc_offset {
                utc_offset_min = c.offset(s).unwrap_or(0);
            }
            let starts: Vec<usize> = raw.rule.iter().map(|r| r.span().start).collect();
            for (i, raw_rule) in raw.rule.iter().enumerate() {
                // A rule's text runs to the next rule: its fingerprint covers every field.
                let end = starts.get(i + 1).copied().unwrap_or(text.len());
                if let Some(mut rule) = c.rule(raw_rule, end) {
                    if rule.during.is_some() {
                        // Its hours mean other instants under another offset.
                        let with_offset = format!("{}/{utc_offset_min}", rule.fingerprint);
                        rule.fingerprint = fnv1a(with_offset.as_bytes());
                    }
                    if let Some(first) = rules.iter().find(|r| r.name == rule.name) {
                        c.problem(
                            raw_rule.get_ref().name.span().start,
                            &format!("a second rule named `{}` (the first is on line {})", rule.name, first.line),
                            Some("give each rule its own name: alerts are kept apart by device and rule name"),
                        );
                    } else {
                        rules.push(rule);
                    }
                }
            }
        }
        c.problems.sort_by_key(|p| (p.line, p.col));
        let set = RuleSet {
            rules,
            utc_offset_min,
        };
        (set, c.problems)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    utc_offset: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    severity: Severity,
    kind: Option<Spanned<OneOrMany>>,
    community: Option<OneOrMany>,
    building: Option<OneOrMany>,
    grid: Option<OneOrMany>,
    device: Option<OneOrMany>,
    tags: Option<Vec<String>>,
    when: Option<Spanned<String>>,
    #[serde(rename = "for")]
    hold: Option<Spanned<String>>,
    clear: Option<Spanned<String>>,
    event: Option<Spanned<String>>,
    clear_event: Option<Spanned<String>>,
    count: Option<Spanned<RawCount>>,
    rise: Option<Spanned<RawChange>>,
    fall: Option<Spanned<RawChange>>,
    absent: Option<Spanned<RawAbsent>>,
    during: Option<Spanned<String>>,
    ack_deadline: Option<Spanned<String>>,
    on_site_deadline: Option<Spanned<String>>,
    escalation: Option<Vec<Level>>,
    needs_person: Option<bool>,
    message: Spanned<RawMessage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCount {
    at_least: Spanned<u32>,
    within: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChange {
    reading: Spanned<String>,
    by: Spanned<f64>,
    within: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAbsent {
    #[serde(rename = "for")]
    hold: Option<Spanned<String>>,
    intervals: Option<Spanned<u32>>,
    change: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    #[serde(rename = "zh-CN")]
    zh: Spanned<String>,
    en: Spanned<String>,
}

struct Checker<'a> {
    text: &'a str,
    schema: &'a Schema,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, at: usize, message: &str, hint: Option<&str>) {
        // Offsets inside strings count decoded characters: with escapes before them they can
        // land inside a character of the file, so step back to one's start.
        let mut at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.problems.push(Problem {
            line,
            col,
            message: message.to_owned(),
            hint: hint.map(str::to_owned),
        });
    }

    /// Where the content of a string value starts, after its opening quotes.
    fn content_start(&self, span: &Range<usize>) -> usize {
        let s = &self.text[span.start.min(self.text.len())..];
        if s.starts_with("\"\"\"") || s.starts_with("'''") {
            span.start + 3
        } else {
            span.start + 1
        }
    }

    fn duration(&mut self, s: &Spanned<String>, what: &str, allow_zero: bool) -> Option<u64> {
        match parse_ms(s.get_ref()) {
            Ok(0) if !allow_zero => {
                self.problem(
                    s.span().start,
                    &format!("`{what}` cannot be zero"),
                    Some("write a time such as \"30s\" or \"5m\""),
                );
                None
            }
            Ok(ms) if ms > MAX_DURATION_MS => {
                self.problem(
                    s.span().start,
                    &format!("`{what}` is longer than 30 days"),
                    Some("write a shorter time: a timer this long is almost certainly a typo"),
                );
                None
            }
            Ok(ms) => Some(ms),
            Err(e) => {
                self.problem(s.span().start, &format!("`{what}`: {e}"), None);
                None
            }
        }
    }

    fn offset(&mut self, s: &Spanned<String>) -> Option<i32> {
        let v = s.get_ref();
        let parsed = (|| {
            let sign = match v.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = v[1..].split_once(':')?;
            let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 14 && m < 60 && h.to_string().len() <= 2).then_some(sign * (h * 60 + m))
        })();
        if parsed.is_none() {
            self.problem(
                s.span().start,
                &format!("`utc_offset = \"{v}\"` is not an offset"),
                Some("write it as \"+08:00\" (China Standard Time)"),
            );
        }
        parsed
    }

    fn window(&mut self, s: &Spanned<String>) -> Option<Window> {
        let v = s.get_ref();
        let minute = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
        };
        let parsed = v.split_once('-').and_then(|(a, b)| {
            Some(Window {
                start: minute(a)?,
                end: minute(b)? % 1440,
            })
        });
        match parsed {
            Some(w) if w.start == w.end => {
                self.problem(
                    s.span().start,
                    "`during` starts and ends at the same time",
                    Some("leave `during` out for the whole day"),
                );
                None
            }
            Some(w) => Some(w),
            None => {
                self.problem(
                    s.span().start,
                    &format!("`during = \"{v}\"` is not a time window"),
                    Some("write it as \"07:00-21:00\" (the community's local time)"),
                );
                None
            }
        }
    }

    fn expr(&mut self, s: &Spanned<String>, kinds: &[String]) -> Option<Expr> {
        let schema = self.schema;
        match Expr::parse(s.get_ref(), &|name| schema.reading_type(kinds, name)) {
            Ok(e) => Some(e),
            Err(ExprError { at, message, hint }) => {
                let start = self.content_start(&s.span());
                self.problem(start + at, &message, hint.as_deref());
                None
            }
        }
    }

    fn template(
        &mut self,
        s: &Spanned<String>,
        kinds: &[String],
        readings: bool,
    ) -> Option<Template> {
        let schema = self.schema;
        let known = |name: &str| {
            REGISTRY_FIELDS.contains(&name)
                || (readings && schema.reading_type(kinds, name).is_ok())
        };
        match Template::parse(s.get_ref(), &known) {
            Ok(t) => Some(t),
            Err(e) => {
                let start = self.content_start(&s.span());
                let hint = (!readings).then_some("this rule opens when nothing comes, so no reading is at hand: use the registry fields");
                self.problem(start + e.at, &e.message, hint);
                None
            }
        }
    }

    fn rule(&mut self, spanned: &Spanned<RawRule>, end: usize) -> Option<Rule> {
        let raw = spanned.get_ref();
        let start = spanned.span().start;
        let before = self.problems.len();
        let name = raw.name.get_ref().clone();
        if !is_rule_name(&name) {
            self.problem(raw.name.span().start, &format!("`{name}` is not a rule name"), Some("use lower-case letters, digits and `_`, starting with a letter, e.g. \"water_overflow\""));
        }
        let kinds: Vec<String> = raw
            .kind
            .as_ref()
            .map(|k| match k.get_ref() {
                OneOrMany::One(s) => vec![s.clone()],
                OneOrMany::Many(v) => v.clone(),
            })
            .unwrap_or_default();
        if let Some(k) = &raw.kind {
            for kind in &kinds {
                if !self.schema.kinds.contains_key(kind) {
                    let known: Vec<&str> = self.schema.kinds.keys().map(String::as_str).collect();
                    self.problem(
                        k.span().start,
                        &format!("there is no device kind `{kind}`"),
                        Some(&format!("write one of: {}", known.join(", "))),
                    );
                }
            }
        }
        if self.problems.len() > before {
            return None;
        }
        let select = Selector {
            kinds: kinds.clone(),
            communities: raw
                .community
                .clone()
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
            buildings: raw
                .building
                .clone()
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
            grids: raw
                .grid
                .clone()
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
            devices: raw
                .device
                .clone()
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
            tags: raw.tags.clone().unwrap_or_default(),
        };

        let triggers: Vec<&str> = [
            raw.when.is_some() && raw.event.is_none(),
            raw.event.is_some(),
            raw.rise.is_some(),
            raw.fall.is_some(),
            raw.absent.is_some(),
        ]
        .iter()
        .zip(["when", "event", "rise", "fall", "absent"])
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
        if triggers.len() != 1 {
            let found = if triggers.is_empty() {
                "none".to_string()
            } else {
                triggers.join(", ")
            };
            self.problem(start, &format!("rule `{name}` needs exactly one of `when`, `event`, `rise`, `fall`, `absent` (found {found})"), Some("split it into one rule per trigger"));
            return None;
        }
        let misplaced =
            |field: &str, on: bool, only: &str| (on, field.to_string(), only.to_string());
        for (on, field, only) in [
            misplaced(
                "for",
                raw.hold.is_some() && triggers[0] != "when",
                "`when` (without `event`); for events use `count`",
            ),
            misplaced(
                "clear",
                raw.clear.is_some() && triggers[0] != "when",
                "`when` (without `event`)",
            ),
            misplaced(
                "clear_event",
                raw.clear_event.is_some() && triggers[0] != "event",
                "`event`",
            ),
            misplaced(
                "count",
                raw.count.is_some() && triggers[0] != "event",
                "`event`",
            ),
        ] {
            if on {
                self.problem(
                    start,
                    &format!("rule `{name}`: `{field}` only goes with {only}"),
                    None,
                );
            }
        }
        if self.problems.len() > before {
            return None;
        }

        let mut has_readings = true;
        let trigger = match triggers[0] {
            "when" => {
                let when = self.expr(raw.when.as_ref()?, &kinds);
                let hold_ms = match &raw.hold {
                    Some(h) => self.duration(h, "for", true),
                    None => Some(0),
                };
                let clear = match &raw.clear {
                    Some(c) => self.expr(c, &kinds).map(Some),
                    None => Some(None),
                };
                Trigger::Condition {
                    when: when?,
                    hold_ms: hold_ms?,
                    clear: clear?,
                }
            }
            "event" => {
                let ev = raw.event.as_ref()?;
                self.event(ev, &kinds);
                let clear_event = raw.clear_event.as_ref().map(|c| {
                    self.event(c, &kinds);
                    c.get_ref().clone()
                });
                let filter = match &raw.when {
                    Some(w) => self.expr(w, &kinds).map(Some),
                    None => Some(None),
                };
                let count = match &raw.count {
                    None => Some(None),
                    Some(c) => {
                        let c = c.get_ref();
                        if *c.at_least.get_ref() < 2 {
                            self.problem(
                                c.at_least.span().start,
                                "`at_least` must be 2 or more",
                                Some("for every single event, leave `count` out"),
                            );
                        }
                        self.duration(&c.within, "within", false).map(|within_ms| {
                            Some(Count {
                                at_least: *c.at_least.get_ref(),
                                within_ms,
                            })
                        })
                    }
                };
                Trigger::Event {
                    event: ev.get_ref().clone(),
                    filter: filter?,
                    clear_event,
                    count: count?,
                }
            }
            "rise" | "fall" => {
                let (c, direction) = match (&raw.rise, &raw.fall) {
                    (Some(c), _) => (c.get_ref(), Direction::Rise),
                    (_, Some(c)) => (c.get_ref(), Direction::Fall),
                    _ => return None,
                };
                match self.schema.reading_type(&kinds, c.reading.get_ref()) {
                    Ok(Type::Number) => {}
                    Ok(Type::Bool) => self.problem(
                        c.reading.span().start,
                        &format!(
                            "`{}` is true/false: it cannot rise or fall",
                            c.reading.get_ref()
                        ),
                        Some("use `when` for true/false readings"),
                    ),
                    Err(hint) => self.problem(
                        c.reading.span().start,
                        &format!("there is no reading `{}`", c.reading.get_ref()),
                        Some(&hint),
                    ),
                }
                let by = *c.by.get_ref();
                if !(by.is_finite() && by > 0.0) {
                    self.problem(
                        c.by.span().start,
                        "`by` must be a positive number",
                        Some("write how much it must change, e.g. by = 10"),
                    );
                }
                let within_ms = self.duration(&c.within, "within", false)?;
                Trigger::Change {
                    reading: c.reading.get_ref().clone(),
                    direction,
                    by,
                    within_ms,
                }
            }
            _ => {
                has_readings = false;
                let a = raw.absent.as_ref()?;
                let a_at = a.span().start;
                let a = a.get_ref();
                let what = match &a.change {
                    None => Absence::Messages,
                    Some(r) => {
                        if let Err(hint) = self.schema.reading_type(&kinds, r.get_ref()) {
                            self.problem(
                                r.span().start,
                                &format!("there is no reading `{}`", r.get_ref()),
                                Some(&hint),
                            );
                        }
                        Absence::Change(r.get_ref().clone())
                    }
                };
                let after = match (&a.hold, &a.intervals) {
                    (Some(h), None) => AbsentFor::Ms(self.duration(h, "absent.for", false)?),
                    (None, Some(n)) if *n.get_ref() >= 1 => AbsentFor::Intervals(*n.get_ref()),
                    (None, Some(n)) => {
                        self.problem(
                            n.span().start,
                            "`intervals` must be 1 or more",
                            Some("write how many reporting intervals may pass, e.g. intervals = 3"),
                        );
                        return None;
                    }
                    _ => {
                        self.problem(
                            a_at,
                            "`absent` needs exactly one of `for` or `intervals`",
                            Some("e.g. absent = { intervals = 3 } or absent = { for = \"4h\" }"),
                        );
                        return None;
                    }
                };
                Trigger::Absent { what, after }
            }
        };

        let during = raw.during.as_ref().and_then(|d| self.window(d));
        let ack_deadline_ms = match &raw.ack_deadline {
            Some(d) => self.duration(d, "ack_deadline", false),
            None => default_ack_deadline(raw.severity),
        };
        let on_site_deadline_ms = raw
            .on_site_deadline
            .as_ref()
            .and_then(|d| self.duration(d, "on_site_deadline", false));
        let msg = raw.message.get_ref();
        let zh = self.template(&msg.zh, &kinds, has_readings);
        let en = self.template(&msg.en, &kinds, has_readings);
        if self.problems.len() > before {
            return None;
        }
        Some(Rule {
            name,
            severity: raw.severity,
            select,
            trigger,
            during,
            ack_deadline_ms,
            on_site_deadline_ms,
            escalation: raw
                .escalation
                .clone()
                .unwrap_or_else(|| default_escalation(raw.severity)),
            needs_person: raw
                .needs_person
                .unwrap_or(raw.severity == Severity::Critical),
            message_zh: zh?,
            message_en: en?,
            fingerprint: fnv1a(canonical(&self.text[start..end.max(start)]).as_bytes()),
            line: self.text[..start].matches('\n').count() + 1,
        })
    }

    fn event(&mut self, ev: &Spanned<String>, kinds: &[String]) {
        if let Err(hint) = self.schema.check_event(kinds, ev.get_ref()) {
            self.problem(
                ev.span().start,
                &format!(
                    "there is no event `{}` for the selected kinds",
                    ev.get_ref()
                ),
                Some(&hint),
            );
        }
    }
}

/// The byte ranges of the text before the first `[[rule]]` and of each `[[rule]]` table.
fn chunks(text: &str) -> Vec<(usize, usize)> {
    let mut starts = vec![0];
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("[[rule]]") && at > 0 {
            starts.push(at);
        }
        at += line.len();
    }
    starts
        .iter()
        .zip(starts.iter().skip(1).chain([&text.len()]))
        .map(|(a, b)| (*a, *b))
        .collect()
}

/// `text` with every byte outside `start..end` but newlines turned into a space: the chunk
/// parses alone while its spans, lines and columns stay those of the whole file.
fn blank_outside(text: &str, start: usize, end: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (i, b) in bytes.iter_mut().enumerate() {
        if (i < start || i >= end) && *b != b'\n' {
            *b = b' ';
        }
    }
    // Only whole chunks of valid text remain, and spaces: still UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

/// The acknowledgement deadline when a rule names none.
pub fn default_ack_deadline(severity: Severity) -> Option<u64> {
    match severity {
        Severity::Critical => Some(60_000),
        Severity::Major => Some(300_000),
        Severity::Minor => Some(1_800_000),
        Severity::Info => None,
    }
}

/// The escalation chain when a rule names none.
pub fn default_escalation(severity: Severity) -> Vec<Level> {
    match severity {
        Severity::Critical | Severity::Major => {
            vec![
                Level::OnDuty,
                Level::Backup,
                Level::GridLeader,
                Level::DutyOfficer,
            ]
        }
        Severity::Minor => vec![Level::OnDuty, Level::Backup],
        Severity::Info => Vec::new(),
    }
}

fn is_rule_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// A rule's text without blank lines, comment lines and surrounding spaces: what its fingerprint
/// covers, so that a comment or a rule added after it does not count as a change to it.
fn canonical(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A hash that stays the same across Rust releases, unlike the standard library's.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::test_schema;

    fn parse(text: &str) -> Result<RuleSet, Vec<Problem>> {
        RuleSet::parse(text, &test_schema())
    }

    fn problems(text: &str) -> Vec<Problem> {
        parse(text).expect_err("should be refused")
    }

    const MSG: &str = r#"message = { zh-CN = "水位 {water_cm}", en = "water {water_cm}" }"#;

    #[test]
    fn a_full_rule_loads_with_its_defaults() {
        let set = parse(&format!(
            "[[rule]]\nname = \"water_overflow\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"water_cm >= 80\"\nfor = \"1m\"\nclear = \"water_cm < 60\"\n{MSG}\n"
        ))
        .unwrap();
        assert_eq!(set.utc_offset_min, 480);
        let r = &set.rules[0];
        assert_eq!(
            (r.name.as_str(), r.line, r.ack_deadline_ms),
            ("water_overflow", 1, Some(300_000))
        );
        assert!(!r.needs_person);
        assert_eq!(r.escalation.len(), 4);
        assert!(matches!(
            &r.trigger,
            Trigger::Condition {
                hold_ms: 60_000,
                clear: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn every_trigger_shape_loads() {
        let set = parse(&format!(
            r#"utc_offset = "+08:00"
[[rule]]
name = "sos"
severity = "critical"
kind = "sos"
event = "sos_pressed"
clear_event = "sos_cancelled"
message = {{ zh-CN = "{{building_name}}{{location}} 求助", en = "SOS at {{location}}" }}

[[rule]]
name = "stops"
severity = "major"
kind = "elevator"
event = "stopped_outside_door_zone"
count = {{ at_least = 3, within = "10m" }}
message = {{ zh-CN = "{{device}}", en = "{{device}}" }}

[[rule]]
name = "rising"
severity = "major"
kind = "manhole"
rise = {{ reading = "water_cm", by = 10, within = "5m" }}
{MSG}

[[rule]]
name = "no_activity"
severity = "major"
kind = "sos"
tags = ["living_alone"]
absent = {{ change = "last_motion_ts", for = "4h" }}
during = "07:00-21:00"
message = {{ zh-CN = "{{location}} 无活动", en = "no activity at {{location}}" }}

[[rule]]
name = "offline"
severity = "minor"
absent = {{ intervals = 3 }}
message = {{ zh-CN = "{{device}} 离线", en = "{{device}} offline" }}
"#
        ))
        .unwrap();
        assert_eq!(set.rules.len(), 5);
        assert!(
            set.rules[0].needs_person,
            "critical rules need a person by default"
        );
        assert_eq!(
            set.rules[3].during,
            Some(Window {
                start: 420,
                end: 1260
            })
        );
    }

    #[test]
    fn problems_name_line_column_and_fix() {
        let p = problems(&format!(
            "[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"water > 80\"\n{MSG}\n"
        ));
        assert_eq!((p[0].line, p[0].col), (5, 9));
        assert!(p[0].message.contains("no reading `water`"));
        assert!(p[0].hint.as_deref().unwrap().contains("water_cm"));

        let p = problems("[[rule]]\nname = \"w\"\nseverity = \"major\"\nwhem = \"x\"\n");
        assert_eq!(p[0].line, 4);
        assert!(p[0].message.contains("unknown field `whem`"), "{p:?}");

        let p = problems(&format!("[[rule]]\nname = \"v\"\nseverity = \"major\"\nwhem = \"x\"\n\n[[rule]]\nname = \"w\"\nseverity = \"urgent\"\nkind = \"manhole\"\nwhen = \"cover_open\"\n{MSG}\n"));
        // Both rules' problems, though either alone stops the TOML reader.
        assert_eq!(
            p.iter().map(|p| p.line).collect::<Vec<_>>(),
            [4, 8],
            "{p:?}"
        );
        assert!(p[1].message.contains("urgent"), "{p:?}");

        let p = problems(&format!("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"cover_open\"\nfor = \"5 minutes\"\n{MSG}\n"));
        assert_eq!(p[0].line, 6);

        let p = problems(&format!("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"cover_open\"\nfor = \"400d\"\n{MSG}\n"));
        assert!(p[0].message.contains("30 days"), "{p:?}");

        let p = problems(&format!("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"lift\"\nwhen = \"cover_open\"\n{MSG}\n"));
        assert!(p[0].hint.as_deref().unwrap().contains("elevator"), "{p:?}");

        let p = problems(&format!("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"sos\"\nevent = \"sos_presed\"\n{MSG}\n"));
        assert!(
            p[0].hint.as_deref().unwrap().contains("sos_pressed"),
            "{p:?}"
        );

        let p = problems("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"cover_open\"\nmessage = { zh-CN = \"{waterlevel}\", en = \"x\" }\n");
        assert_eq!((p[0].line, p[0].col), (6, 22));
    }

    #[test]
    fn every_rule_is_checked_and_all_problems_reported() {
        let p = problems(&format!(
            "[[rule]]\nname = \"a\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"tilt > 1\"\n{MSG}\n\n[[rule]]\nname = \"b\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"cover_open + 1 > 2\"\n{MSG}\n"
        ));
        assert_eq!(p.iter().map(|p| p.line).collect::<Vec<_>>(), [5, 12]);
    }

    #[test]
    fn shapes_that_cannot_work_are_refused() {
        let cases = [
            ("when = \"cover_open\"\nevent = \"cover_displaced\"\nfor = \"1m\"", "`for` only goes with"),
            ("rise = { reading = \"water_cm\", by = 10, within = \"5m\" }\nwhen = \"cover_open\"", "exactly one"),
            ("message2 = 1", "unknown field"),
            ("event = \"cover_displaced\"\ncount = { at_least = 1, within = \"5m\" }", "2 or more"),
            ("event = \"cover_displaced\"\ncount = { at_least = 3, within = \"0s\" }", "cannot be zero"),
            ("rise = { reading = \"cover_open\", by = 1, within = \"5m\" }", "cannot rise"),
            ("rise = { reading = \"water_cm\", by = -1, within = \"5m\" }", "positive"),
            ("absent = { for = \"1h\", intervals = 2 }", "exactly one of `for` or `intervals`"),
            ("absent = { intervals = 0 }", "1 or more"),
            ("when = \"cover_open\"\nduring = \"08:00-08:00\"", "same time"),
            ("when = \"cover_open\"\nduring = \"8am-5pm\"", "not a time window"),
            ("when = \"cover_open\"\nclear_event = \"low_battery\"", "only goes with `event`"),
        ];
        for (body, want) in cases {
            let msg = if body.starts_with("absent") {
                "message = { zh-CN = \"{device}\", en = \"{device}\" }"
            } else {
                MSG
            };
            let p = problems(&format!(
                "[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\n{body}\n{msg}\n"
            ));
            assert!(p.iter().any(|p| p.message.contains(want)), "{body}: {p:?}");
        }
        let p = problems("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nabsent = { intervals = 2 }\nmessage = { zh-CN = \"{water_cm}\", en = \"x\" }\n");
        assert!(
            p[0].hint.as_deref().unwrap().contains("registry fields"),
            "{p:?}"
        );
        let twice = format!("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"cover_open\"\n{MSG}\n");
        let p = problems(&format!("{twice}\n{twice}"));
        assert!(p[0].message.contains("second rule named `w`"), "{p:?}");
        let p = problems(&format!("utc_offset = \"UTC+8\"\n{twice}"));
        assert!(p[0].hint.as_deref().unwrap().contains("+08:00"), "{p:?}");
    }

    #[test]
    fn a_fingerprint_changes_with_the_rule_and_not_with_what_follows_it() {
        let one = format!("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"cover_open\"\n{MSG}\n");
        let print = |text: &str| parse(text).unwrap().rules[0].fingerprint;
        let base = print(&one);
        let two = format!("{one}\n# a comment\n\n[[rule]]\nname = \"v\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"cover_open\"\n{MSG}\n");
        assert_eq!(print(&two), base);
        assert_ne!(print(&one.replace("cover_open", "not cover_open")), base);
        let hours = one.replace("when", "during = \"08:00-18:00\"\nwhen");
        assert_ne!(
            print(&format!("utc_offset = \"+07:00\"\n{hours}")),
            print(&hours)
        );
    }

    #[test]
    fn an_escape_before_a_mistake_does_not_break_the_report() {
        let p = problems("[[rule]]\nname = \"w\"\nseverity = \"major\"\nkind = \"manhole\"\nwhen = \"cover_open\"\nmessage = { zh-CN = \"\\\"水{waterlevel}\", en = \"x\" }\n");
        assert_eq!(p[0].line, 6);
        assert!(p[0].message.contains("waterlevel"), "{p:?}");
    }

    #[test]
    fn readings_must_exist_in_every_selected_kind() {
        let ok = parse("[[rule]]\nname = \"b\"\nseverity = \"minor\"\nkind = [\"manhole\", \"sos\"]\nwhen = \"battery_v < 3.3\"\nmessage = { zh-CN = \"{battery_v}\", en = \"{battery_v}\" }\n");
        assert!(ok.is_ok(), "{ok:?}");
        let p = problems("[[rule]]\nname = \"b\"\nseverity = \"minor\"\nkind = [\"manhole\", \"sos\"]\nwhen = \"water_cm < 3.3\"\nmessage = { zh-CN = \"x\", en = \"x\" }\n");
        assert!(p[0].hint.as_deref().unwrap().contains("battery_v"), "{p:?}");
    }
}
