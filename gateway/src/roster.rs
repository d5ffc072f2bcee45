//! The duty roster's clock: the community's time zone, which turns instants into the local
//! wall-clock times that shifts are written in.
//!
//! Zones come from `jiff` with its bundled tzdb only (about 200 KB; a rule change then waits for a
//! gateway release), so an edge box without /usr/share/zoneinfo still knows them and every box
//! answers alike; `chrono-tz` would add chrono and a generated table for the same data, and a
//! fixed UTC offset, though right for China (no DST since 1991), would be an hour wrong for half
//! the year wherever clocks change.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The zone shifts are read in when a community names none.
pub const DEFAULT_ZONE: &str = "Asia/Shanghai";

const DAY_MIN: u32 = 24 * 60;
const WEEK_MIN: u32 = 7 * DAY_MIN;
const DAY_MS: i64 = DAY_MIN as i64 * 60_000;
const WEEK_MS: i64 = WEEK_MIN as i64 * 60_000;

/// Why a roster's time zone could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
