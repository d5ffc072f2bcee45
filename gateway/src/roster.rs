//! The duty roster: shifts per grid and role, written in the community's wall-clock time.
//!
//! A shift is a `[[shifts]]` table, in the registry file or a roster file of its own, on top of
//! the registry's always-on `[[duty]]` assignment:
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
//! Saturday 03:00. [`check`] reads the tables and reports every problem at once, two workers
//! given one role for one grid at the same time among them.
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        let (day, minute) = Zone::default().local(u64::MAX);
        assert!(day < 7 && minute < 24 * 60);
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

    /// Zones with half-hour offsets and with clocks that change, by the hour or by half an hour.
    const ZONES: [&str; 5] = [
        "Asia/Shanghai",
        "Asia/Kolkata",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
    ];
    /// 2100-01-01T00:00Z: every zone above has whole-minute offsets from 1970 to then.
    const UNTIL_2100: u64 = 4_102_444_800_000;

    proptest! {
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
