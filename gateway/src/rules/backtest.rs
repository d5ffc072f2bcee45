//! `gridwatch rules backtest`: runs recorded messages through a rule file and lists the alerts
//! that would have opened, updated, cleared and resolved, and when. This is how a rule change is
//! checked before it goes live.
//!
//! Recordings are either a gateway's journal folder (`journal.path`: every accepted message with
//! the time it was received) or line protocol as the gateway writes it (the local store's
//! `readings*.lp` files, or an export from the time-series store; device timestamps). `for`
//! timers still running when the recording ends run out as if nothing else came.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use gridwatch_edge_rules::rule::Trigger;
use gridwatch_edge_rules::{Change, Engine, Msg, RuleSet, Transition, Val};

use crate::decode::{decode, Body};
use crate::journal::{self, Position};
use crate::registry::Registry;
use crate::sinks::tsdb::local;

/// Where the recorded messages come from.
#[derive(Debug, PartialEq, Eq)]
pub enum Recording {
    /// A journal folder.
    Journal(PathBuf),
    /// Line-protocol files, read in this order.
    LineProtocol(Vec<PathBuf>),
}

impl Recording {
    /// Recognises a journal folder (`*.seg`), a local store folder (`readings*.lp`) or a file of
    /// line protocol.
    pub fn at(path: &Path) -> anyhow::Result<Self> {
        if path.is_file() {
            return Ok(Self::LineProtocol(vec![path.to_owned()]));
        }
        let segments = journal::segments_in(path)
            .with_context(|| format!("cannot read the folder {}", path.display()))?;
        if !segments.is_empty() {
            return Ok(Self::Journal(path.to_owned()));
        }
        let files = local::files(path)?;
        if files.is_empty() {
            bail!(
                "{} holds neither a journal (*.seg) nor line protocol (readings*.lp)",
                path.display()
            );
        }
        Ok(Self::LineProtocol(files))
    }
}

/// One change the rules would have made.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// When.
    pub at_ms: u64,
    /// What happened.
    pub change: Change,
    /// The rule.
    pub rule: String,
    /// The device.
    pub device: String,
    /// When the alert opened.
    pub opened_ms: u64,
    /// Why, in plain words.
    pub why: Vec<String>,
}

/// What a backtest found.
#[derive(Debug, Default)]
pub struct Report {
    /// Messages run through the rules.
    pub messages: u64,
    /// Records that could not be read as messages of a registered device (with the first reason).
    pub skipped: u64,
    /// The first reason a record was skipped.
    pub first_skip: Option<String>,
    /// Every change, in time order.
    pub outcomes: Vec<Outcome>,
}

struct Run<'a> {
    engine: Option<Engine>,
    rules: Option<RuleSet>,
    registry: &'a Registry,
    ticked: u64,
    report: Report,
}

impl Run<'_> {
    fn engine(&mut self, at_ms: u64) -> &mut Engine {
        if self.engine.is_none() {
            let rules = self.rules.take().expect("rules are taken once");
            self.engine = Some(super::engine(rules, self.registry, at_ms));
            self.ticked = at_ms;
        }
        self.engine.as_mut().expect("just built")
    }

    fn message(
        &mut self,
        device: &str,
        seq: u64,
        at_ms: u64,
        event: Option<&str>,
        data: &[(&str, Val)],
    ) {
        let mut out = Vec::new();
        let ticked = self.ticked;
        let engine = self.engine(at_ms);
        // Ticks once a second of recorded time, as the gateway's clock would have.
        if at_ms >= ticked + 1000 {
            engine.tick(at_ms, &mut out);
        }
        engine.observe(
            &Msg {
                device,
                seq,
                at_ms,
                event,
                data,
            },
            &mut out,
        );
        if at_ms >= ticked + 1000 {
            self.ticked = at_ms;
        }
        self.report.messages += 1;
        self.record(out);
    }

    fn skip(&mut self, why: String) {
        self.report.skipped += 1;
        self.report.first_skip.get_or_insert(why);
    }

    fn record(&mut self, out: Vec<Transition>) {
        let Some(engine) = &self.engine else { return };
        for t in out {
            self.report.outcomes.push(Outcome {
                at_ms: t.at_ms,
                change: t.change,
                rule: engine.rules()[t.rule].name.clone(),
                device: t.device.to_string(),
                opened_ms: t.opened_ms,
                why: t.why,
            });
        }
    }
}

/// Runs `recording` through `rules` for the devices of `registry`; `progress` hears the number of
/// messages so far every 100,000.
pub fn run(
    rules: RuleSet,
    registry: &Registry,
    recording: &Recording,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Report> {
    let mut run = Run {
        engine: None,
        rules: Some(rules),
        registry,
        ticked: 0,
        report: Report::default(),
    };
    let mut last = 0;
    match recording {
        Recording::Journal(dir) => {
            let segments = journal::segments_in(dir)?;
            let from = Position {
                segment: segments.first().map_or(0, |s| s.0),
                offset: 0,
            };
            journal::read(dir, &segments, from, |_, rec| {
                match decode(rec.topic, rec.payload, registry, usize::MAX) {
                    Ok(d) => {
                        if let Body::Message(msg) = &d.body {
                            let data = super::readings(msg);
                            run.message(&d.device.id, msg.seq, rec.received_ms, msg.event, &data);
                            last = rec.received_ms;
                        }
                    }
                    Err(e) => run.skip(format!("{}: {}", rec.topic, e.detail)),
                }
                if run.report.messages.is_multiple_of(100_000) && run.report.messages > 0 {
                    progress(run.report.messages);
                }
                true
            })
            .with_context(|| format!("reading the journal in {}", dir.display()))?;
        }
        Recording::LineProtocol(files) => {
            let mut points = Vec::new();
            for file in files {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() || line.starts_with('#') {
                        continue;
                    }
                    match parse_line(line) {
                        Some(p) => points.push(p),
                        None => {
                            run.skip(format!("{}:{}: not line protocol", file.display(), n + 1))
                        }
                    }
                }
            }
            // Files hold device timestamps, roughly in order: sort to replay them in time.
            points.sort_by_key(|p| p.ts_ms);
            for p in points {
                let Some(device) = p.tag("device") else {
                    run.skip(format!("{}: a line without a device tag", p.measurement));
                    continue;
                };
                if registry.device(device).is_none() {
                    run.skip(format!("device {device:?} is not in the registry"));
                    continue;
                }
                match p.measurement.as_str() {
                    "status" => continue,
                    "event" => {
                        let seq = p
                            .fields
                            .iter()
                            .find(|(k, _)| k == "seq")
                            .map_or(0, |(_, v)| match v {
                                Val::Num(n) => *n as u64,
                                Val::Bool(_) => 0,
                            });
                        run.message(device, seq, p.ts_ms, p.tag("event"), &[]);
                    }
                    _ => {
                        let data: Vec<(&str, Val)> =
                            p.fields.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                        run.message(device, 0, p.ts_ms, None, &data);
                    }
                }
                last = p.ts_ms;
                if run.report.messages.is_multiple_of(100_000) {
                    progress(run.report.messages);
                }
            }
        }
    }
    // `for` timers still running at the end of the recording run out, as if nothing else came.
    if let Some(engine) = run.engine.as_mut() {
        let longest = engine
            .rules()
            .iter()
            .filter_map(|r| match r.trigger {
                Trigger::Condition { hold_ms, .. } => Some(hold_ms),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let mut out = Vec::new();
        engine.tick(last + longest.max(1000), &mut out);
        run.record(out);
    }
    Ok(run.report)
}

/// One line of line protocol, as the gateway writes it.
#[derive(Debug, PartialEq)]
struct Point {
    measurement: String,
    tags: Vec<(String, String)>,
    fields: Vec<(String, Val)>,
    ts_ms: u64,
}

impl Point {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits at `sep` characters that are not escaped with a backslash or inside double quotes;
/// with `unescape`, backslash escapes are undone as it goes.
fn split_unescaped(s: &str, sep: char, unescape: bool) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut escaped, mut quoted) = (false, false);
    for c in s.chars() {
        let cur = out.last_mut().expect("never empty");
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
            if !unescape {
                cur.push(c);
            }
        } else if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c == sep && !quoted {
            out.push(String::new());
        } else {
            cur.push(c);
        }
    }
    out
}

fn parse_line(line: &str) -> Option<Point> {
    let parts = split_unescaped(line, ' ', false);
    let [head, fields, ts] = parts.as_slice() else {
        return None;
    };
    let mut head = split_unescaped(head, ',', true).into_iter();
    let measurement = head.next()?;
    let tags = head
        .map(|t| t.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect::<Option<Vec<_>>>()?;
    let fields = split_unescaped(fields, ',', true)
        .into_iter()
        .filter_map(|f| {
            let (k, v) = f.split_once('=')?;
            let v = match v {
                "t" | "T" | "true" | "True" | "TRUE" => Val::Bool(true),
                "f" | "F" | "false" | "False" | "FALSE" => Val::Bool(false),
                n => Val::Num(n.trim_end_matches(['i', 'u']).parse().ok()?),
            };
            Some((k.to_owned(), v))
        })
        .collect();
    Some(Point {
        measurement,
        tags,
        fields,
        ts_ms: ts.trim().parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_own_lines_read_back() {
        let p = parse_line("manhole,building=b\\ 1,community=c,device=mh\\,1,grid=g water_cm=12.5,cover_open=false 1795000000123").unwrap();
        assert_eq!(p.measurement, "manhole");
        assert_eq!(p.tag("building"), Some("b 1"));
        assert_eq!(p.tag("device"), Some("mh,1"));
        assert_eq!(
            p.fields,
            [
                ("water_cm".into(), Val::Num(12.5)),
                ("cover_open".into(), Val::Bool(false))
            ]
        );
        assert_eq!(p.ts_ms, 1_795_000_000_123);
        let e = parse_line("event,building=b,community=c,device=s1,event=sos_pressed,grid=g,kind=sos count=1i,seq=43i 1795000000456").unwrap();
        assert_eq!(
            (e.tag("event"), e.fields[1].1),
            (Some("sos_pressed"), Val::Num(43.0))
        );
        assert!(parse_line("garbage").is_none());
    }
}
