//! The duty roster: who holds each role for a grid at an instant, from shifts written in the
//! community's wall-clock time.
//!
//! Shifts sit on top of the registry's always-on `[[duty]]` assignment: [`Roster::who`] answers
//! `None` when no shift covers an instant, and the caller then falls back to `[[duty]]`. A shift is
//! a `[[shifts]]` table, in the registry file or a roster file of its own:
//!
//! ```toml
//! [[shifts]]
//! grid = "g1"          # left out only for role = "duty_officer", who serves the whole community
//! worker = "w-wang"
//! role = "on_duty"     # on_duty (the default) | backup | leader | duty_officer
//! days = "mon-fri"     # days it starts; default daily; or "sat,sun", "mon,wed-fri", "daily"
//! from = "08:00"
//! to = "20:00"         # at or before `from`, the shift ends the next day; equal to it, 24 hours
//! ```
//!
//! Days name the day a shift starts, so a `mon-fri` shift from 20:00 to 08:00 still covers
//! Saturday 03:00. Times are local wall-clock minutes of the week: where clocks change, a shift
//! follows the wall clock, not a count of hours. [`Roster::gaps`] finds, ahead of time, when a grid
//! will have nobody, and [`Roster::next_change`] says when to announce who holds each role next.
//! A [`Roster`] never changes: a changed roster file goes through [`check`] again and a new
//! `Roster` replaces the old one whole, so no reader sees a reload half-applied.
//!
//! Zones come from `jiff` with its bundled tzdb only (about 200 KB; a rule change then waits for a
//! gateway release), so an edge box without /usr/share/zoneinfo still knows them and every box
//! answers alike; `chrono-tz` would add chrono and a generated table for the same data, and a
//! fixed UTC offset, though right for China (no DST since 1991), would be an hour wrong for half
//! the year wherever clocks change.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The zone shifts are read in when a community names none.
pub const DEFAULT_ZONE: &str = "Asia/Shanghai";

const DAY_MIN: u32 = 24 * 60;
const WEEK_MIN: u32 = 7 * DAY_MIN;
const DAY_MS: i64 = DAY_MIN as i64 * 60_000;
const WEEK_MS: i64 = WEEK_MIN as i64 * 60_000;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why a roster's days, times or time zone could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// A `days` value names something that is not a day.
    #[error(
        "days: `{text}`: `{item}` is not a day; write mon..sun, ranges like mon-fri, or daily"
    )]
    Days { text: String, item: String },
    /// A `from` or `to` value is not a time of day.
    #[error("{field}: `{text}` is not a time of day; write HH:MM, such as 08:00 or 20:30")]
    Time { field: &'static str, text: String },
    /// The time zone database has no zone of that name.
    #[error("time zone `{name}` is unknown; write an IANA name such as Asia/Shanghai")]
    Zone { name: String },
}

/// A community's time zone, which turns instants into the wall-clock times shifts are written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone(TimeZone);

impl Zone {
    /// The zone with this IANA name, such as `Asia/Shanghai` or `Europe/Berlin`.
    pub fn parse(name: &str) -> Result<Zone, RosterError> {
        TimeZone::get(name)
            .map(Zone)
            .map_err(|_| RosterError::Zone {
                name: name.to_string(),
            })
    }

    /// The local weekday (0 = Monday) and minute of the day at `at_ms`, milliseconds since the
    /// Unix epoch.
    pub fn local(&self, at_ms: u64) -> (u8, u16) {
        let week_min = self.week_min(at_ms);
        ((week_min / DAY_MIN) as u8, (week_min % DAY_MIN) as u16)
    }

    fn week_min(&self, at_ms: u64) -> u32 {
        (week_ms(at_ms, self.offset_s(at_ms)) / 60_000) as u32
    }

    fn offset_s(&self, at_ms: u64) -> i64 {
        i64::from(self.0.to_offset(timestamp(at_ms)).seconds())
    }

    /// The first instant after `at_ms` at which the zone's offset changes, and the new offset.
    fn next_transition(&self, at_ms: u64) -> Option<(u64, i64)> {
        let t = self.0.following(timestamp(at_ms)).next()?;
        let at = u64::try_from(t.timestamp().as_millisecond()).ok()?;
        Some((at, i64::from(t.offset().seconds())))
    }

    /// The first instant after `after_ms` at which the local clock reaches one of `points`
    /// (minutes of the week) or jumps over one.
    fn next_point(&self, points: &[u32], after_ms: u64) -> Option<u64> {
        let mut at = after_ms;
        loop {
            let offset_s = self.offset_s(at);
            let now = week_ms(at, offset_s);
            let wait = points
                .iter()
                .map(
                    |&p| match (i64::from(p) * 60_000 - now).rem_euclid(WEEK_MS) {
                        0 => WEEK_MS,
                        d => d,
                    },
                )
                .min()?;
            let reached = at.checked_add(wait.unsigned_abs())?;
            // A clock change on the way moves where the point falls, so look again from there.
            match self.next_transition(at) {
                Some((jump_at, new_offset_s)) if jump_at <= reached => {
                    let before = week_ms(jump_at, offset_s);
                    if jumps_over(points, before, (new_offset_s - offset_s) * 1000) {
                        return Some(jump_at);
                    }
                    at = jump_at;
                }
                _ => return Some(reached),
            }
        }
    }
}

impl Default for Zone {
    /// Asia/Shanghai, the zone of the communities Gridwatch was first built for.
    fn default() -> Zone {
        Zone::parse(DEFAULT_ZONE).expect("the bundled time zone database has Asia/Shanghai")
    }
}

/// `at_ms` for jiff, whose range ends in the year 9999: later instants take that last offset.
fn timestamp(at_ms: u64) -> Timestamp {
    i64::try_from(at_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Milliseconds since local Monday 00:00 at `at_ms` with the clock `offset_s` ahead of UTC.
fn week_ms(at_ms: u64, offset_s: i64) -> i64 {
    // Reducing first keeps any u64 in range; the Unix epoch fell on a Thursday.
    let since_epoch = (at_ms % WEEK_MS.unsigned_abs()) as i64;
    (since_epoch + offset_s * 1000 + 3 * DAY_MS).rem_euclid(WEEK_MS)
}

/// Whether a clock jump of `jump_ms` that leaves week-millisecond `before` passes one of `points`:
/// forward, the clock skips the points from `before` up to where it lands; back, it goes again
/// through those after where it lands and before `before`, so shifts that began there end again.
fn jumps_over(points: &[u32], before: i64, jump_ms: i64) -> bool {
    points.iter().any(|&p| {
        let p = i64::from(p) * 60_000;
        if jump_ms >= 0 {
            (p - before).rem_euclid(WEEK_MS) <= jump_ms
        } else {
            let past_landing = (p - before - jump_ms).rem_euclid(WEEK_MS);
            past_landing > 0 && past_landing < -jump_ms
        }
    })
}

/// The days of the week a shift starts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Days(u8);

impl Days {
    /// Every day of the week.
    pub const DAILY: Days = Days(0b111_1111);

    fn iter(self) -> impl Iterator<Item = u32> {
        (0..7).filter(move |d| self.0 & (1 << d) != 0)
    }
}

impl FromStr for Days {
    type Err = RosterError;

    /// Reads `mon-fri`, `sat,sun`, `mon,wed-fri` or `daily`; a range may wrap, as `fri-mon`.
    fn from_str(text: &str) -> Result<Days, RosterError> {
        let day = |name: &str| {
            let name = name.trim();
            DAY_NAMES
                .iter()
                .position(|d| name.eq_ignore_ascii_case(d))
                .ok_or_else(|| RosterError::Days {
                    text: text.to_string(),
                    item: name.to_string(),
                })
        };
        let mut bits = 0u8;
        for item in text.split(',') {
            if item.trim().eq_ignore_ascii_case("daily") {
                bits = Days::DAILY.0;
                continue;
            }
            let (first, last) = match item.split_once('-') {
                Some((first, last)) => (day(first)?, day(last)?),
                None => (day(item)?, day(item)?),
            };
            let mut d = first;
            bits |= 1 << d;
            while d != last {
                d = (d + 1) % 7;
                bits |= 1 << d;
            }
        }
        Ok(Days(bits))
    }
}

/// What a worker on a shift is there for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// First to receive a grid's alerts.
    #[default]
    OnDuty,
    /// Receives a grid's alerts when the worker on duty does not answer.
    Backup,
    /// The grid's leader, next up the chain.
    Leader,
    /// Serves the whole community, at the top of every chain.
    DutyOfficer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::OnDuty => "on_duty",
            Role::Backup => "backup",
            Role::Leader => "leader",
            Role::DutyOfficer => "duty_officer",
        })
    }
}

/// A checked shift: a worker holds a role for a grid from a local time on some days of the week.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shift {
    grid: Option<String>,
    worker: String,
    role: Role,
    days: Days,
    from_min: u16,
    to_min: u16,
}

impl Shift {
    /// Minutes the shift lasts: through midnight when it ends before it starts, a whole day when
    /// it ends as it starts.
    fn len(&self) -> u32 {
        let (from, to) = (u32::from(self.from_min), u32::from(self.to_min));
        if to > from {
            to - from
        } else {
            to + DAY_MIN - from
        }
    }

    /// The minutes of the week at which the shift starts, one for each of its days.
    fn starts(&self) -> impl Iterator<Item = u32> + '_ {
        self.days
            .iter()
            .map(|d| d * DAY_MIN + u32::from(self.from_min))
    }

    /// Whether the shift covers local minute `week_min` of the week.
    fn covers(&self, week_min: u32) -> bool {
        self.starts()
            .any(|s| (week_min + WEEK_MIN - s) % WEEK_MIN < self.len())
    }

    /// Whether the shift fills `role` for `grid`; the duty officer's fills it for every grid.
    fn fills(&self, grid: &str, role: Role) -> bool {
        self.role == role && (role == Role::DutyOfficer || self.grid.as_deref() == Some(grid))
    }
}

/// The minutes of the week at which any of `shifts` starts or ends, sorted, each once.
fn boundaries<'s>(shifts: impl IntoIterator<Item = &'s Shift>) -> Vec<u32> {
    let mut points: Vec<u32> = shifts
        .into_iter()
        .flat_map(|s| s.starts().flat_map(|t| [t, (t + s.len()) % WEEK_MIN]))
        .collect();
    points.sort_unstable();
    points.dedup();
    points
}

/// A `[[shifts]]` table as written, each value with its place in the file so that a problem can
/// name its line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShift {
    /// The grid the shift covers; left out for the duty officer, who covers the whole community.
    grid: Option<Spanned<String>>,
    /// The worker on the shift, an id from `[[workers]]`.
    worker: Spanned<String>,
    /// `on_duty` (the default), `backup`, `leader` or `duty_officer`.
    #[serde(default)]
    role: Role,
    /// The days the shift starts on, such as `mon-fri`, `sat,sun` or `daily` (the default).
    days: Option<Spanned<String>>,
    /// Local start time, HH:MM.
    from: Spanned<String>,
    /// Local end time, HH:MM: at or before `from` the shift ends the next day; 24:00 is midnight.
    to: Spanned<String>,
}

/// Checks shifts against the registry's `workers` and `grids` and returns them, or every problem
/// found, each as `line N: ...` of `text`, the file they were read from.
pub fn check(
    raw: &[RawShift],
    text: &str,
    workers: &HashSet<String>,
    grids: &HashSet<String>,
) -> Result<Vec<Shift>, Vec<String>> {
    let mut problems: Vec<(usize, String)> = Vec::new();
    let line = |at: &Spanned<String>| crate::config::line_at(text, at.span().start);
    let mut checked: Vec<(usize, Shift)> = Vec::new();
    for r in raw {
        let mut problem = |at: &Spanned<String>, message: String| {
            problems.push((line(at), message));
        };
        let mut ok = true;
        if !workers.contains(r.worker.get_ref()) {
            problem(
                &r.worker,
                format!("worker {:?} is not in [[workers]]", r.worker.get_ref()),
            );
            ok = false;
        }
        match (&r.grid, r.role) {
            (Some(grid), Role::DutyOfficer) => {
                problem(
                    grid,
                    "a duty_officer shift serves the whole community; leave out grid".into(),
                );
                ok = false;
            }
            (Some(grid), _) if !grids.contains(grid.get_ref()) => {
                problem(
                    grid,
                    format!("grid {:?} is not in [[grids]]", grid.get_ref()),
                );
                ok = false;
            }
            (None, role) if role != Role::DutyOfficer => {
                problem(
                    &r.worker,
                    format!(
                        "a shift as {role} needs a grid; only duty_officer shifts leave it out"
                    ),
                );
                ok = false;
            }
            _ => {}
        }
        let days = match &r.days {
            Some(days) => days
                .get_ref()
                .parse()
                .inspect_err(|e: &RosterError| problem(days, e.to_string()))
                .ok(),
            None => Some(Days::DAILY),
        };
        let from = parse_time("from", r.from.get_ref(), false)
            .inspect_err(|e| problem(&r.from, e.to_string()))
            .ok();
        let to = parse_time("to", r.to.get_ref(), true)
            .inspect_err(|e| problem(&r.to, e.to_string()))
            .ok();
        if let (true, Some(days), Some(from_min), Some(to_min)) = (ok, days, from, to) {
            let shift = Shift {
                grid: r.grid.as_ref().map(|g| g.get_ref().clone()),
                worker: r.worker.get_ref().clone(),
                role: r.role,
                days,
                from_min,
                to_min,
            };
            checked.push((line(&r.worker), shift));
        }
    }
    for (i, (line_b, b)) in checked.iter().enumerate() {
        for (line_a, a) in &checked[..i] {
            if a.role != b.role || a.grid != b.grid || a.worker == b.worker {
                continue;
            }
            if let Some((start, len)) = overlap(a, b) {
                let place = match &b.grid {
                    Some(grid) => format!("grid {grid} {}", b.role),
                    None => b.role.to_string(),
                };
                problems.push((
                    *line_b,
                    format!(
                        "overlaps line {line_a} on {} for {place}",
                        stretch(start, len)
                    ),
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(checked.into_iter().map(|(_, shift)| shift).collect());
    }
    problems.sort_by_key(|(line, _)| *line);
    Err(problems
        .into_iter()
        .map(|(line, message)| format!("line {line}: {message}"))
        .collect())
}

/// Minutes since midnight in `text`, H:MM or HH:MM; 24:00 only where it `ends` a shift.
fn parse_time(field: &'static str, text: &str, ends: bool) -> Result<u16, RosterError> {
    let bad = || RosterError::Time {
        field,
        text: text.to_string(),
    };
    let digits = |s: &str, lens: std::ops::RangeInclusive<usize>| {
        lens.contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit())
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (0..=23, 0..=59) => Ok(h * 60 + m),
        (24, 0) if ends => Ok(24 * 60),
        _ => Err(bad()),
    }
}

/// The earliest stretch of the week, as (start minute, length), when both shifts run.
fn overlap(a: &Shift, b: &Shift) -> Option<(u32, u32)> {
    let (len_a, len_b) = (a.len(), b.len());
    a.starts()
        .flat_map(|sa| b.starts().map(move |sb| (sa, sb)))
        .filter_map(|(sa, sb)| {
            // Each shift is at most a day in a week of seven, so two runs meet at most once.
            let b_after_a = (sb + WEEK_MIN - sa) % WEEK_MIN;
            let a_after_b = (sa + WEEK_MIN - sb) % WEEK_MIN;
            if b_after_a < len_a {
                Some((sb, len_b.min(len_a - b_after_a)))
            } else if a_after_b < len_b {
                Some((sa, len_a.min(len_b - a_after_b)))
            } else {
                None
            }
        })
        .min()
}

/// A stretch of the week for people: `mon 08:00-09:00`, or `fri 20:00-sat 08:00` past midnight.
fn stretch(start: u32, len: u32) -> String {
    let end = (start + len) % WEEK_MIN;
    let day = |m: u32| DAY_NAMES[(m / DAY_MIN) as usize % 7];
    let time = |m: u32| format!("{:02}:{:02}", m % DAY_MIN / 60, m % 60);
    if end > start && end / DAY_MIN == start / DAY_MIN {
        format!("{} {}-{}", day(start), time(start), time(end))
    } else {
        format!("{} {}-{} {}", day(start), time(start), day(end), time(end))
    }
}

/// A stretch of time when nobody fills a role for a grid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The grid left without anyone.
    pub grid: String,
    /// When the gap begins, milliseconds since the Unix epoch.
    pub starts_ms: u64,
    /// When someone takes over, or the end of the horizon searched if nobody does before it.
    pub ends_ms: u64,
}

/// Checked shifts and the zone they are read in: who holds which role for which grid, when.
#[derive(Clone, Debug)]
pub struct Roster {
    shifts: Vec<Shift>,
    zone: Zone,
    boundaries: Vec<u32>,
}

impl Roster {
    /// A roster of shifts from [`check`], read in `zone`.
    pub fn new(shifts: Vec<Shift>, zone: Zone) -> Roster {
        let boundaries = boundaries(&shifts);
        Roster {
            shifts,
            zone,
            boundaries,
        }
    }

    /// The zone the shifts are read in, to tell people a time in their own clock.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// How many shifts it has.
    pub fn len(&self) -> usize {
        self.shifts.len()
    }

    /// Whether it has no shifts (the always-on assignments hold every role).
    pub fn is_empty(&self) -> bool {
        self.shifts.is_empty()
    }

    /// The worker whose shift fills `role` for `grid` at `at_ms`, or `None` when no shift does
    /// and the registry's `[[duty]]` applies; the duty officer's shifts serve every grid.
    pub fn who(&self, grid: &str, role: Role, at_ms: u64) -> Option<&str> {
        let week_min = self.zone.week_min(at_ms);
        self.shifts
            .iter()
            .find(|s| s.fills(grid, role) && s.covers(week_min))
            .map(|s| s.worker.as_str())
    }

    /// The first instant after `after_ms` at which any shift starts or ends, when the gateway
    /// should announce who now holds each role; `None` for a roster without shifts.
    pub fn next_change(&self, after_ms: u64) -> Option<u64> {
        self.zone.next_point(&self.boundaries, after_ms)
    }

    /// For each of `grids` without a `fallback` (an always-on `[[duty]]`), the first stretch in
    /// `[from_ms, from_ms + horizon_ms)` when no shift fills `role`, to raise before it begins;
    /// for the duty officer, name the community as the one grid.
    pub fn gaps(
        &self,
        grids: &[&str],
        role: Role,
        from_ms: u64,
        horizon_ms: u64,
        fallback: impl Fn(&str) -> bool,
    ) -> Vec<Gap> {
        let end = from_ms.saturating_add(horizon_ms);
        let gap = |grid: &str, starts_ms, ends_ms| Gap {
            grid: grid.to_string(),
            starts_ms,
            ends_ms,
        };
        grids
            .iter()
            .filter(|grid| !fallback(grid))
            .filter_map(|&grid| {
                let shifts: Vec<&Shift> =
                    self.shifts.iter().filter(|s| s.fills(grid, role)).collect();
                let points = boundaries(shifts.iter().copied());
                let mut at = from_ms;
                let mut starts = None;
                // Cover only changes where a shift starts or ends, so those are the only
                // instants to look at.
                while at < end {
                    let week_min = self.zone.week_min(at);
                    let covered = shifts.iter().any(|s| s.covers(week_min));
                    match (starts, covered) {
                        (None, false) => starts = Some(at),
                        (Some(starts_ms), true) => return Some(gap(grid, starts_ms, at)),
                        _ => {}
                    }
                    at = self.zone.next_point(&points, at).unwrap_or(end);
                }
                starts.map(|starts_ms| gap(grid, starts_ms, end))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::DateTime;
    use proptest::prelude::*;

    /// Milliseconds since the epoch of a local wall-clock time such as `2024-01-01T08:00`.
    fn at(zone: &str, local: &str) -> u64 {
        let tz = TimeZone::get(zone).unwrap();
        let ms = local
            .parse::<DateTime>()
            .unwrap()
            .to_zoned_datetime(tz)
            .unwrap()
            .timestamp()
            .as_millisecond();
        u64::try_from(ms).unwrap()
    }

    fn sh(local: &str) -> u64 {
        at(DEFAULT_ZONE, local)
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[derive(Deserialize)]
    struct File {
        shifts: Vec<RawShift>,
    }

    fn parse(text: &str) -> Result<Vec<Shift>, Vec<String>> {
        let file: File = toml::from_str(text).unwrap();
        check(
            &file.shifts,
            text,
            &set(&["w-wang", "w-li", "w-zhao", "w-chen", "w-boss"]),
            &set(&["g1", "g2"]),
        )
    }

    fn roster(text: &str, zone: &str) -> Roster {
        Roster::new(parse(text).unwrap(), Zone::parse(zone).unwrap())
    }

    /// A week in grid g1, on duty around the clock: weekdays by day and by night, the weekend in
    /// 24-hour shifts; a backup on Sunday night into Monday; g2 staffed only on weekday days.
    const WEEK: &str = r#"
[[shifts]]
grid = "g1"
worker = "w-wang"
days = "mon-fri"
from = "08:00"
to = "20:00"

[[shifts]]
grid = "g1"
worker = "w-li"
days = "mon-fri"
from = "20:00"
to = "08:00"

[[shifts]]
grid = "g1"
worker = "w-zhao"
days = "sat,sun"
from = "08:00"
to = "08:00"

[[shifts]]
grid = "g1"
worker = "w-chen"
role = "backup"
days = "sun"
from = "22:00"
to = "06:00"

[[shifts]]
worker = "w-boss"
role = "duty_officer"
from = "00:00"
to = "24:00"

[[shifts]]
grid = "g2"
worker = "w-wang"
days = "mon-fri"
from = "08:00"
to = "20:00"
"#;

    #[test]
    fn a_scripted_week_names_who_is_on_duty() {
        let r = roster(WEEK, DEFAULT_ZONE);
        // 2024-01-01 was a Monday.
        let table = [
            ("2024-01-01T07:59", "g1", Role::OnDuty, Some("w-zhao")),
            ("2024-01-01T08:00", "g1", Role::OnDuty, Some("w-wang")),
            ("2024-01-01T19:59", "g1", Role::OnDuty, Some("w-wang")),
            ("2024-01-01T20:00", "g1", Role::OnDuty, Some("w-li")),
            ("2024-01-02T03:00", "g1", Role::OnDuty, Some("w-li")),
            ("2024-01-05T20:00", "g1", Role::OnDuty, Some("w-li")),
            ("2024-01-06T03:00", "g1", Role::OnDuty, Some("w-li")),
            ("2024-01-06T08:00", "g1", Role::OnDuty, Some("w-zhao")),
            ("2024-01-07T07:59", "g1", Role::OnDuty, Some("w-zhao")),
            ("2024-01-07T08:00", "g1", Role::OnDuty, Some("w-zhao")),
            ("2024-01-07T21:59", "g1", Role::Backup, None),
            ("2024-01-07T22:00", "g1", Role::Backup, Some("w-chen")),
            ("2024-01-08T05:59", "g1", Role::Backup, Some("w-chen")),
            ("2024-01-08T06:00", "g1", Role::Backup, None),
            ("2024-01-06T23:00", "g1", Role::Backup, None),
            ("2024-01-03T12:00", "g1", Role::Leader, None),
            ("2024-01-03T12:00", "g2", Role::OnDuty, Some("w-wang")),
            ("2024-01-03T20:00", "g2", Role::OnDuty, None),
            ("2024-01-06T12:00", "g2", Role::OnDuty, None),
            ("2024-01-03T12:00", "g9", Role::OnDuty, None),
            ("2024-01-03T00:00", "g1", Role::DutyOfficer, Some("w-boss")),
            ("2024-01-07T23:59", "g2", Role::DutyOfficer, Some("w-boss")),
        ];
        for (local, grid, role, worker) in table {
            assert_eq!(
                r.who(grid, role, sh(local)),
                worker,
                "{local} {grid} {role}"
            );
        }
    }

    #[test]
    fn shanghai_is_eight_hours_ahead_of_utc_all_year() {
        let zone = Zone::default();
        assert_eq!(zone, Zone::parse("Asia/Shanghai").unwrap());
        // 2024-01-01T00:30Z and 2024-07-01T00:30Z, a Monday morning in both.
        assert_eq!(zone.local(1_704_069_000_000), (0, 8 * 60 + 30));
        assert_eq!(zone.local(1_719_793_800_000), (0, 8 * 60 + 30));
        // Sunday 2024-01-07T20:00Z is already Monday 04:00 in Shanghai.
        assert_eq!(zone.local(1_704_657_600_000), (0, 4 * 60));
        assert_eq!(zone.local(0), (3, 8 * 60));
    }

    #[test]
    fn an_unknown_zone_is_named_in_its_error() {
        let e = Zone::parse("Asia/Peking").unwrap_err();
        assert_eq!(
            e.to_string(),
            "time zone `Asia/Peking` is unknown; write an IANA name such as Asia/Shanghai"
        );
    }

    #[test]
    fn instants_past_the_year_9999_still_have_a_local_time() {
        let zone = Zone::default();
        let (day, minute) = zone.local(u64::MAX);
        assert!(day < 7 && minute < 24 * 60);
        let r = roster(WEEK, DEFAULT_ZONE);
        let _ = r.who("g1", Role::OnDuty, u64::MAX);
        assert_eq!(r.next_change(u64::MAX), None);
        let empty = roster("shifts = []", DEFAULT_ZONE);
        assert_eq!(
            empty.gaps(&["g1"], Role::OnDuty, u64::MAX - 5, 10, |_| false),
            [Gap {
                grid: "g1".into(),
                starts_ms: u64::MAX - 5,
                ends_ms: u64::MAX,
            }]
        );
    }

    #[test]
    fn days_read_ranges_lists_and_daily() {
        let days = |s: &str| s.parse::<Days>().map(|d| d.iter().collect::<Vec<_>>());
        assert_eq!(days("mon-fri"), Ok(vec![0, 1, 2, 3, 4]));
        assert_eq!(days("sat,sun"), Ok(vec![5, 6]));
        assert_eq!(days("mon, wed-fri"), Ok(vec![0, 2, 3, 4]));
        assert_eq!(days("Daily"), Ok(vec![0, 1, 2, 3, 4, 5, 6]));
        assert_eq!(days("fri-mon"), Ok(vec![0, 4, 5, 6]));
        assert_eq!(days("sun"), Ok(vec![6]));
        assert_eq!(
            days("mon-fri,xyz").unwrap_err().to_string(),
            "days: `mon-fri,xyz`: `xyz` is not a day; write mon..sun, ranges like mon-fri, or daily"
        );
        assert!(days("").is_err());
        assert!(days("mon,").is_err());
        assert!(days("monday").is_err());
    }

    #[test]
    fn times_are_hours_and_minutes_of_one_day() {
        assert_eq!(parse_time("from", "08:00", false), Ok(480));
        assert_eq!(parse_time("from", "8:05", false), Ok(485));
        assert_eq!(parse_time("from", "23:59", false), Ok(1439));
        assert_eq!(parse_time("to", "24:00", true), Ok(1440));
        for bad in [
            "24:00", "25:00", "8am", "08:60", "08:0", "080:00", "", ":", "-1:00",
        ] {
            assert!(parse_time("from", bad, false).is_err(), "{bad}");
        }
        assert_eq!(
            parse_time("to", "8am", true).unwrap_err().to_string(),
            "to: `8am` is not a time of day; write HH:MM, such as 08:00 or 20:30"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"
[[shifts]]
grid = "g1"
worker = "w-nobody"
from = "25:00"
to = "8am"

[[shifts]]
worker = "w-wang"
days = "mon-fri,xyz"
from = "08:00"
to = "20:00"

[[shifts]]
grid = "g1"
worker = "w-boss"
role = "duty_officer"
from = "08:00"
to = "20:00"

[[shifts]]
grid = "g7"
worker = "w-li"
role = "leader"
from = "08:00"
to = "20:00"
"#;
        assert_eq!(
            parse(text).unwrap_err(),
            [
                "line 4: worker \"w-nobody\" is not in [[workers]]",
                "line 5: from: `25:00` is not a time of day; write HH:MM, such as 08:00 or 20:30",
                "line 6: to: `8am` is not a time of day; write HH:MM, such as 08:00 or 20:30",
                "line 9: a shift as on_duty needs a grid; only duty_officer shifts leave it out",
                "line 10: days: `mon-fri,xyz`: `xyz` is not a day; write mon..sun, ranges like \
                 mon-fri, or daily",
                "line 15: a duty_officer shift serves the whole community; leave out grid",
                "line 22: grid \"g7\" is not in [[grids]]",
            ]
        );
    }

    #[test]
    fn shifts_giving_one_role_to_two_workers_at_once_overlap() {
        let text = r#"
[[shifts]]
grid = "g1"
worker = "w-wang"
days = "mon-fri"
from = "08:00"
to = "20:00"

[[shifts]]
grid = "g1"
worker = "w-li"
days = "mon"
from = "07:00"
to = "09:00"

[[shifts]]
grid = "g1"
worker = "w-zhao"
days = "fri"
from = "19:00"
to = "01:00"

[[shifts]]
grid = "g1"
worker = "w-wang"
days = "mon"
from = "07:00"
to = "07:30"

[[shifts]]
grid = "g2"
worker = "w-chen"
days = "mon"
from = "07:00"
to = "09:00"

[[shifts]]
grid = "g1"
worker = "w-chen"
role = "backup"
days = "mon"
from = "07:00"
to = "09:00"

[[shifts]]
worker = "w-boss"
role = "duty_officer"
days = "sun"
from = "00:00"
to = "00:00"

[[shifts]]
worker = "w-chen"
role = "duty_officer"
days = "sun"
from = "23:00"
to = "02:00"
"#;
        assert_eq!(
            parse(text).unwrap_err(),
            [
                "line 11: overlaps line 4 on mon 08:00-09:00 for grid g1 on_duty",
                "line 18: overlaps line 4 on fri 19:00-20:00 for grid g1 on_duty",
                "line 25: overlaps line 11 on mon 07:00-07:30 for grid g1 on_duty",
                "line 53: overlaps line 46 on sun 23:00-mon 00:00 for duty_officer",
            ]
        );
    }

    #[test]
    fn gaps_are_found_ahead_and_none_where_the_fallback_covers() {
        let r = roster(WEEK, DEFAULT_ZONE);
        let from = sh("2024-01-01T19:00");
        let hour = 3_600_000;
        let none = |_: &str| false;
        assert_eq!(
            r.gaps(&["g1", "g2"], Role::OnDuty, from, 2 * hour, none),
            [Gap {
                grid: "g2".into(),
                starts_ms: sh("2024-01-01T20:00"),
                ends_ms: sh("2024-01-01T21:00"),
            }]
        );
        assert_eq!(
            r.gaps(&["g2"], Role::OnDuty, from, 24 * hour, none),
            [Gap {
                grid: "g2".into(),
                starts_ms: sh("2024-01-01T20:00"),
                ends_ms: sh("2024-01-02T08:00"),
            }]
        );
        assert_eq!(
            r.gaps(&["g1", "g2"], Role::OnDuty, from, 24 * hour, |g| g == "g2"),
            []
        );
        assert_eq!(r.gaps(&["g2"], Role::OnDuty, from, 0, none), []);
        let at_night = sh("2024-01-01T23:00");
        assert_eq!(
            r.gaps(&["g1"], Role::Backup, at_night, hour, none),
            [Gap {
                grid: "g1".into(),
                starts_ms: at_night,
                ends_ms: at_night + hour,
            }]
        );
        assert_eq!(
            r.gaps(&["yg"], Role::DutyOfficer, from, 7 * 24 * hour, none),
            []
        );
    }

    #[test]
    fn next_change_is_the_next_start_or_end_of_any_shift() {
        let r = roster(WEEK, DEFAULT_ZONE);
        let next = |local| r.next_change(sh(local));
        assert_eq!(next("2024-01-01T08:00"), Some(sh("2024-01-01T20:00")));
        assert_eq!(next("2024-01-01T07:59"), Some(sh("2024-01-01T08:00")));
        assert_eq!(next("2024-01-01T20:00"), Some(sh("2024-01-02T00:00")));
        assert_eq!(next("2024-01-07T08:00"), Some(sh("2024-01-07T22:00")));
        assert_eq!(next("2024-01-07T23:00"), Some(sh("2024-01-08T00:00")));
        assert_eq!(roster("shifts = []", DEFAULT_ZONE).next_change(0), None);
    }

    #[test]
    fn a_shift_in_the_hour_clocks_skip_begins_when_they_spring_forward() {
        let berlin = "Europe/Berlin";
        let r = roster(
            "[[shifts]]\ngrid = \"g1\"\nworker = \"w-wang\"\ndays = \"sun\"\nfrom = \"02:30\"\nto = \"04:00\"\n",
            berlin,
        );
        // 2024-03-31: at 01:00Z the clocks go from 02:00 to 03:00.
        let jump = 1_711_846_800_000;
        assert_eq!(r.next_change(jump - 1_800_000), Some(jump));
        assert_eq!(r.who("g1", Role::OnDuty, jump - 1), None);
        assert_eq!(r.who("g1", Role::OnDuty, jump), Some("w-wang"));
        assert_eq!(r.next_change(jump), Some(at(berlin, "2024-03-31T04:00")));
    }

    #[test]
    fn a_shift_that_ended_begins_again_when_clocks_fall_back_into_it() {
        let berlin = "Europe/Berlin";
        let r = roster(
            "[[shifts]]\ngrid = \"g1\"\nworker = \"w-wang\"\ndays = \"sun\"\nfrom = \"01:00\"\nto = \"02:30\"\n",
            berlin,
        );
        // 2024-10-27: at 01:00Z the clocks go from 03:00 back to 02:00.
        let jump = 1_729_990_800_000;
        let half_hour = 1_800_000;
        assert_eq!(r.who("g1", Role::OnDuty, jump - 1), None);
        assert_eq!(r.next_change(jump - half_hour + 1), Some(jump));
        assert_eq!(r.who("g1", Role::OnDuty, jump), Some("w-wang"));
        assert_eq!(r.next_change(jump), Some(jump + half_hour));
        assert_eq!(
            r.gaps(
                &["g1"],
                Role::OnDuty,
                jump - half_hour,
                2 * half_hour,
                |_| false
            ),
            [Gap {
                grid: "g1".into(),
                starts_ms: jump - half_hour,
                ends_ms: jump,
            }]
        );
    }

    #[test]
    fn a_shift_that_clocks_fall_back_through_lasts_an_hour_longer_without_a_change() {
        let berlin = "Europe/Berlin";
        let r = roster(
            "[[shifts]]\ngrid = \"g1\"\nworker = \"w-wang\"\ndays = \"sun\"\nfrom = \"02:00\"\nto = \"03:00\"\n",
            berlin,
        );
        // 2024-10-27: the shift starts at 02:00 summer time, 00:00Z; at 01:00Z, just before it
        // would end, the clocks go back to 02:00, and it runs until 03:00 winter time, 02:00Z.
        let starts = 1_729_987_200_000;
        let hour = 3_600_000;
        assert_eq!(r.next_change(starts - 1), Some(starts));
        assert_eq!(r.next_change(starts), Some(starts + 2 * hour));
        for at in [
            starts,
            starts + hour - 1,
            starts + hour,
            starts + 2 * hour - 1,
        ] {
            assert_eq!(r.who("g1", Role::OnDuty, at), Some("w-wang"));
        }
        assert_eq!(r.who("g1", Role::OnDuty, starts + 2 * hour), None);
    }

    /// Zones with half-hour offsets and with clocks that change, by the hour or by half an hour.
    const ZONES: [&str; 5] = [
        "Asia/Shanghai",
        "Asia/Kolkata",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
    ];
    const GRIDS: [&str; 2] = ["g1", "g2"];
    const ROLES: [Role; 2] = [Role::OnDuty, Role::DutyOfficer];
    /// 2100-01-01T00:00Z: every zone above has whole-minute offsets from 1970 to then.
    const UNTIL_2100: u64 = 4_102_444_800_000;

    /// The naive model: for each grid and role, the worker at every minute of the week, painted
    /// one minute at a time; `None` when two workers want the same minute.
    fn paint(shifts: &[Shift]) -> Option<Vec<Vec<Option<String>>>> {
        let mut week = vec![vec![None; WEEK_MIN as usize]; GRIDS.len() * ROLES.len()];
        for s in shifts {
            for (g, grid) in GRIDS.iter().enumerate() {
                for (r, role) in ROLES.iter().enumerate() {
                    if !s.fills(grid, *role) {
                        continue;
                    }
                    for day in 0..7u32 {
                        if s.days.0 & (1 << day) == 0 {
                            continue;
                        }
                        let from = u32::from(s.from_min);
                        let to = u32::from(s.to_min);
                        let minutes = if to > from {
                            to - from
                        } else {
                            to + DAY_MIN - from
                        };
                        for m in 0..minutes {
                            let minute = ((day * DAY_MIN + from + m) % WEEK_MIN) as usize;
                            let slot: &mut Option<String> = &mut week[g * ROLES.len() + r][minute];
                            match slot {
                                Some(w) if *w != s.worker => return None,
                                _ => *slot = Some(s.worker.clone()),
                            }
                        }
                    }
                }
            }
        }
        Some(week)
    }

    /// Who the naive model names for every grid and role at `at_ms`.
    fn model_at(week: &[Vec<Option<String>>], zone: &Zone, at_ms: u64) -> Vec<Option<String>> {
        let (day, minute) = zone.local(at_ms);
        let m = day as usize * DAY_MIN as usize + minute as usize;
        week.iter().map(|slots| slots[m].clone()).collect()
    }

    fn clock_change_hours() -> impl Strategy<Value = u16> {
        prop::sample::select(vec![60, 90, 120, 150, 180, 210])
    }

    fn any_shift() -> impl Strategy<Value = Shift> {
        (
            prop::sample::select(vec![
                (Some("g1"), Role::OnDuty),
                (Some("g2"), Role::OnDuty),
                (None, Role::DutyOfficer),
            ]),
            prop::sample::select(vec!["w-wang", "w-li", "w-zhao"]),
            1u8..=0x7f,
            // Most shifts on the quarter hour, so that they meet and abut, many around 02:00,
            // when clocks change; some anywhere.
            prop_oneof![
                clock_change_hours(),
                (0u16..96).prop_map(|q| q * 15),
                0u16..1440
            ],
            prop_oneof![
                clock_change_hours(),
                (0u16..=96).prop_map(|q| q * 15),
                0u16..=1440
            ],
        )
            .prop_map(|((grid, role), worker, days, from_min, to_min)| Shift {
                grid: grid.map(String::from),
                worker: worker.to_string(),
                role,
                days: Days(days),
                from_min,
                to_min,
            })
    }

    /// Shifts without overlaps, as [`check`] lets through: each shift that would overlap the
    /// ones kept before it is dropped.
    fn shifts_without_overlaps() -> impl Strategy<Value = Vec<Shift>> {
        prop::collection::vec(any_shift(), 0..8).prop_map(|all| {
            let mut kept: Vec<Shift> = Vec::new();
            for s in all {
                kept.push(s);
                if paint(&kept).is_none() {
                    kept.pop();
                }
            }
            kept
        })
    }

    proptest! {
        #[test]
        fn who_agrees_with_a_minute_by_minute_model(
            shifts in shifts_without_overlaps(),
            zone in prop::sample::select(ZONES.to_vec()),
            at_ms in prop_oneof![0..UNTIL_2100, any::<u64>()],
        ) {
            let week = paint(&shifts).unwrap();
            let r = Roster::new(shifts, Zone::parse(zone).unwrap());
            let expected = model_at(&week, &r.zone, at_ms);
            let actual: Vec<Option<String>> = GRIDS
                .iter()
                .flat_map(|g| ROLES.iter().map(|role| r.who(g, *role, at_ms).map(String::from)))
                .collect();
            prop_assert_eq!(actual, expected);
        }

        #[test]
        fn check_finds_an_overlap_exactly_when_the_model_does(a in any_shift(), b in any_shift()) {
            let clash = a.role == b.role && a.grid == b.grid && a.worker != b.worker;
            let model = clash && paint(&[a.clone(), b.clone()]).is_none();
            prop_assert_eq!(clash && overlap(&a, &b).is_some(), model);
        }
    }

    /// An instant before 2100, most of the time a few hours before the zone's next clock change
    /// so that the change falls inside what the property looks at.
    fn instant(zone: &str, at_ms: u64, near_change: Option<i64>) -> u64 {
        let zone = Zone::parse(zone).unwrap();
        match (near_change, zone.next_transition(at_ms)) {
            (Some(d), Some((jump_ms, _))) => jump_ms.saturating_add_signed(d),
            _ => at_ms,
        }
    }

    fn near_change() -> impl Strategy<Value = Option<i64>> {
        prop::option::weighted(0.8, -6 * 3_600_000..3_600_000i64)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn nothing_changes_between_one_change_and_the_next(
            shifts in shifts_without_overlaps(),
            zone in prop::sample::select(ZONES.to_vec()),
            after_ms in 0..UNTIL_2100,
            near in near_change(),
        ) {
            let after_ms = instant(zone, after_ms, near);
            let week = paint(&shifts).unwrap();
            let points = boundaries(&shifts);
            let r = Roster::new(shifts, Zone::parse(zone).unwrap());
            let minute = 60_000;
            let is_point = |at_ms| {
                let (day, min) = r.zone.local(at_ms);
                points.contains(&(u32::from(day) * DAY_MIN + u32::from(min)))
            };
            let clock_changes = |at_ms| r.zone.offset_s(at_ms - 1) != r.zone.offset_s(at_ms);
            // Walk two days of changes, so that a clock change near the start is walked over.
            let mut at = after_ms;
            while at < after_ms + 2 * DAY_MS as u64 {
                let Some(next) = r.next_change(at) else {
                    prop_assert!(points.is_empty());
                    break;
                };
                prop_assert!(next > at && next - at <= 8 * DAY_MS as u64);
                prop_assert!(is_point(next) || clock_changes(next));
                let first = at / minute * minute + minute;
                let held = model_at(&week, &r.zone, first);
                for m in (first..next).step_by(minute as usize) {
                    // Clocks that fall back onto a start or end change nobody's duty.
                    let falls_back = r.zone.offset_s(m - 1) > r.zone.offset_s(m);
                    prop_assert!(!is_point(m) || falls_back);
                    prop_assert_eq!(&model_at(&week, &r.zone, m), &held);
                }
                at = next;
            }
        }

        #[test]
        fn gaps_agree_with_a_minute_by_minute_model(
            shifts in shifts_without_overlaps(),
            zone in prop::sample::select(ZONES.to_vec()),
            from_ms in 0..UNTIL_2100,
            horizon_min in 0u64..2 * 1440,
            g2_has_duty in any::<bool>(),
            near in near_change(),
        ) {
            let from_ms = instant(zone, from_ms, near);
            let week = paint(&shifts).unwrap();
            let r = Roster::new(shifts, Zone::parse(zone).unwrap());
            let minute = 60_000;
            let end = from_ms + horizon_min * minute;
            let fallback = |g: &str| g == "g2" && g2_has_duty;
            let mut expected = Vec::new();
            for (g, grid) in GRIDS.iter().enumerate().filter(|(_, g)| !fallback(g)) {
                // Cover can only change on a whole minute, so from_ms and every whole minute
                // after it are all the instants there are to look at.
                let instants = std::iter::once(from_ms)
                    .chain((from_ms / minute + 1..).map(|m| m * minute))
                    .take_while(|&t| t < end);
                let (mut starts, mut ends) = (None, end);
                for t in instants {
                    let covered = model_at(&week, &r.zone, t)[g * ROLES.len()].is_some();
                    match (starts, covered) {
                        (None, false) => starts = Some(t),
                        (Some(_), true) => {
                            ends = t;
                            break;
                        }
                        _ => {}
                    }
                }
                if let Some(starts_ms) = starts {
                    expected.push(Gap { grid: grid.to_string(), starts_ms, ends_ms: ends });
                }
            }
            let horizon_ms = horizon_min * minute;
            prop_assert_eq!(r.gaps(&GRIDS, Role::OnDuty, from_ms, horizon_ms, fallback), expected);
        }

        #[test]
        fn local_time_agrees_with_jiff(
            zone in prop::sample::select(ZONES.to_vec()),
            at_ms in 0..UNTIL_2100,
        ) {
            let tz = TimeZone::get(zone).unwrap();
            let ts = Timestamp::from_millisecond(at_ms as i64).unwrap();
            let civil = tz.to_datetime(ts);
            let weekday = civil.weekday().to_monday_zero_offset() as u8;
            let minute = civil.hour() as u16 * 60 + civil.minute() as u16;
            prop_assert_eq!(Zone::parse(zone).unwrap().local(at_ms), (weekday, minute));
        }
    }
}
