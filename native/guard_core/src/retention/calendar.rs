//! When a backup was made, and the calendar periods retention counts, in an IANA zone.
//!
//! Periods are calendar hours, days, ISO weeks, months and years of the schedule's zone
//! ([`Calendar::zone`]), never of the process's local zone (`chrono::Local` is not used): a day
//! is a local date however many hours a DST change gives it; the hour a fall-back repeats is two
//! hours (one per UTC offset), the hour a spring-forward skips does not exist.

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

use super::policy::Within;
use crate::schedule::ScheduleError;

/// When a backup was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Made {
    /// The instant, Unix milliseconds: the recorded start of the run that made it. Instants
    /// before the year 1 or after 9999 are taken as the nearest end of that range.
    At(i64),
    /// Only the wall-clock time written in its export name, in [`Calendar::names_zone`]: the
    /// latest instant that wall time stands for (the second pass of a time a fall-back
    /// repeats; for a time a spring-forward skips, the first valid minute after the gap).
    Named(NaiveDateTime),
}

/// The zones retention reads times in, and the present.
///
/// ```
/// use guard_core::retention::Calendar;
///
/// let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
/// // Periods in Berlin; export names written by a node whose clock is in UTC; backups dated
/// // after 2026-06-01T00:00:00Z are not taken as the newest backup `within` counts back from.
/// let calendar = Calendar::new(berlin).names_in(chrono_tz::UTC).now(1_780_272_000_000);
/// assert_eq!(calendar.zone(), berlin);
/// assert_eq!(calendar.names_zone(), chrono_tz::UTC);
/// assert_eq!(calendar.now_ms(), Some(1_780_272_000_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    zone: Tz,
    names_zone: Tz,
    now_ms: Option<i64>,
}

impl Calendar {
    /// Periods in `zone` (the schedule's zone), export names read in `zone` too, no present
    /// (every backup may be the newest one `within` counts back from).
    pub fn new(zone: Tz) -> Calendar {
        Calendar {
            zone,
            names_zone: zone,
            now_ms: None,
        }
    }

    /// The calendar of the zone named `zone` (an IANA name, or `local`: the node's, see
    /// [`crate::schedule::local_zone`]), export names read in the node's own zone (EMQX names
    /// its exports in its local time). An unknown name is the schedule's `bad_zone` error.
    ///
    /// ```
    /// use guard_core::retention::Calendar;
    ///
    /// let calendar = Calendar::of_zone("Europe/Berlin")?;
    /// assert_eq!(calendar.zone().name(), "Europe/Berlin");
    /// assert_eq!(calendar.names_zone(), guard_core::schedule::local_zone());
    /// assert_eq!(Calendar::of_zone("Mars/Olympus").unwrap_err().reason(), "bad_zone");
    /// # Ok::<(), guard_core::schedule::ScheduleError>(())
    /// ```
    pub fn of_zone(zone: &str) -> Result<Calendar, ScheduleError> {
        let name = crate::schedule::resolve_zone(zone)?;
        let tz = name
            .parse::<Tz>()
            .map_err(|_| ScheduleError::BadZone { zone: name })?;
        Ok(Calendar::new(tz).names_in(crate::schedule::local_zone()))
    }

    /// The zone the wall times of [`Made::Named`] are in: that of the node that wrote the
    /// export names (EMQX names exports in its node's local time).
    pub fn names_in(self, names_zone: Tz) -> Calendar {
        Calendar { names_zone, ..self }
    }

    /// The present, Unix milliseconds: a backup made after it (a clock that was wrong) is kept
    /// by `within` but is never the newest backup `within` counts back from (as in restic).
    pub fn now(self, now_ms: i64) -> Calendar {
        Calendar {
            now_ms: Some(now_ms),
            ..self
        }
    }

    /// The zone periods are counted in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The zone export names are read in.
    pub fn names_zone(&self) -> Tz {
        self.names_zone
    }

    /// The present, if given.
    pub fn now_ms(&self) -> Option<i64> {
        self.now_ms
    }

    /// Where `made` falls: its instant and its wall-clock time in [`Calendar::zone`].
    pub(crate) fn when(&self, made: Made) -> When {
        match made {
            Made::At(ms) => self.when_at(ms.clamp(MIN_MS, MAX_MS)),
            Made::Named(wall) => {
                let at_ms = latest_instant(&self.names_zone, wall);
                if self.names_zone == self.zone {
                    // The name is the wall time of this zone: its date and hour are exactly
                    // what it says, whatever instant it stands for.
                    let offset_s = self.offset_at(at_ms);
                    When {
                        at_ms,
                        wall,
                        offset_s,
                    }
                } else {
                    self.when_at(at_ms)
                }
            }
        }
    }

    fn when_at(&self, at_ms: i64) -> When {
        let utc = utc_of(at_ms);
        let local = utc.with_timezone(&self.zone);
        When {
            at_ms,
            wall: local.naive_local(),
            offset_s: local.offset().fix().local_minus_utc(),
        }
    }

    fn offset_at(&self, at_ms: i64) -> i32 {
        self.zone
            .offset_from_utc_datetime(&utc_of(at_ms).naive_utc())
            .fix()
            .local_minus_utc()
    }

    /// The instant `within` reaches back to from `newest_ms`: years, months and days taken off
    /// the wall-clock time in [`Calendar::zone`] (a day past the end of the month becomes its
    /// last day), placed on the time line (the earlier instant of a repeated time, the first
    /// valid minute after a skipped one), then the hours taken off as elapsed time. `i64::MIN`
    /// when that is before the year 1.
    pub(crate) fn reach_back(&self, newest_ms: i64, within: Within) -> i64 {
        let wall = self.when_at(newest_ms).wall;
        let months = u64::from(within.years) * 12 + u64::from(within.months);
        let back = u32::try_from(months)
            .ok()
            .and_then(|m| wall.checked_sub_months(Months::new(m)))
            .and_then(|w| w.checked_sub_signed(Duration::days(i64::from(within.days))))
            .filter(|w| w.year() >= 1);
        let Some(back) = back else {
            return i64::MIN;
        };
        let placed = earliest_instant(&self.zone, back);
        placed.saturating_sub(i64::from(within.hours) * 3_600_000)
    }
}

/// Unix ms of 0001-01-01T00:00:00Z and of 9999-12-31T23:59:59.999Z: the instants retention
/// works with (far inside chrono's range, so that no zone offset or calendar step overflows).
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

fn utc_of(at_ms: i64) -> DateTime<Utc> {
    // In range by construction (clamped); the epoch is the harmless fallback.
    DateTime::<Utc>::from_timestamp_millis(at_ms.clamp(MIN_MS, MAX_MS)).unwrap_or_default()
}

/// A backup's place in time, as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct When {
    /// The instant, Unix ms.
    pub at_ms: i64,
    /// Its wall-clock time in the calendar's zone.
    pub wall: NaiveDateTime,
    /// The UTC offset of that wall time, seconds.
    pub offset_s: i32,
}

impl When {
    /// The key of the period of `unit` this time falls in: equal for two times in the same
    /// period, different otherwise.
    pub fn key(&self, unit: Unit) -> i64 {
        let date = self.wall.date();
        match unit {
            // The instant the wall-clock hour started, so that the two passes of a repeated
            // hour are two hours.
            Unit::Hour => {
                let start = date
                    .and_hms_opt(self.wall.hour(), 0, 0)
                    .unwrap_or(self.wall);
                start.and_utc().timestamp() - i64::from(self.offset_s)
            }
            Unit::Day => i64::from(date.num_days_from_ce()),
            Unit::Week => {
                let week = date.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Unit::Month => i64::from(date.year()) * 12 + i64::from(date.month0()),
            Unit::Year => i64::from(date.year()),
        }
    }

    /// The period of `unit` this time falls in, for people.
    pub fn period(&self, unit: Unit, zone: &Tz) -> Period {
        let date = self.wall.date();
        match unit {
            Unit::Hour => {
                // A fall-back repeats the end of an hour (01:30-02:00 on Lord Howe), the start
                // of one, or all of it.
                let start = date.and_hms_opt(self.wall.hour(), 0, 0);
                let end = date.and_hms_opt(self.wall.hour(), 59, 59);
                let repeated = [start, end].into_iter().flatten().any(|wall| {
                    matches!(zone.from_local_datetime(&wall), LocalResult::Ambiguous(..))
                });
                Period::Hour {
                    date,
                    hour: self.wall.hour(),
                    offset_s: repeated.then_some(self.offset_s),
                }
            }
            Unit::Day => Period::Day(date),
            Unit::Week => {
                let week = date.iso_week();
                Period::Week {
                    year: week.year(),
                    week: week.week(),
                }
            }
            Unit::Month => Period::Month {
                year: date.year(),
                month: date.month(),
            },
            Unit::Year => Period::Year(date.year()),
        }
    }
}

/// The length of a counting rule's periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// One calendar period in the schedule's zone, as a kept backup's reason names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// A wall-clock hour; `offset_s` (the UTC offset, seconds) only for an hour a fall-back
    /// repeats (in part or whole), to tell its two passes apart. Written `2026-11-30 14:00`, or
    /// `2026-10-25 02:00+01:00` for a repeated hour.
    Hour {
        date: NaiveDate,
        hour: u32,
        offset_s: Option<i32>,
    },
    /// A day: `2026-11-30`.
    Day(NaiveDate),
    /// An ISO week (Monday to Sunday; week 1 holds the year's first Thursday): `2026-W48`.
    Week { year: i32, week: u32 },
    /// A month: `2026-11`.
    Month { year: i32, month: u32 },
    /// A year: `2026`.
    Year(i32),
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Period::Hour {
                date,
                hour,
                offset_s,
            } => {
                write!(f, "{} {hour:02}:00", date.format("%Y-%m-%d"))?;
                if let Some(offset) = offset_s {
                    let sign = if offset < 0 { '-' } else { '+' };
                    let abs = offset.unsigned_abs();
                    write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)?;
                }
                Ok(())
            }
            Period::Day(date) => write!(f, "{}", date.format("%Y-%m-%d")),
            Period::Week { year, week } => write!(f, "{year:04}-W{week:02}"),
            Period::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            Period::Year(year) => write!(f, "{year:04}"),
        }
    }
}

/// The latest instant `wall` stands for in `zone` (Unix ms): the later of two for a repeated
/// time, the first valid minute after the gap for a skipped one.
fn latest_instant(zone: &Tz, wall: NaiveDateTime) -> i64 {
    match zone.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, b) => a.timestamp_millis().max(b.timestamp_millis()),
        LocalResult::None => after_gap(zone, wall),
    }
}

/// The earliest instant `wall` stands for in `zone` (Unix ms): the earlier of two for a
/// repeated time, the first valid minute after the gap for a skipped one.
fn earliest_instant(zone: &Tz, wall: NaiveDateTime) -> i64 {
    match zone.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, b) => a.timestamp_millis().min(b.timestamp_millis()),
        LocalResult::None => after_gap(zone, wall),
    }
}

/// For a wall time a spring-forward skips: the instant of the first valid whole minute after
/// it, found by galloping then bisecting over minutes (a gap is at most a day: Samoa, 2011).
/// Where none is found within two days (no real zone), the wall time read as UTC.
fn after_gap(zone: &Tz, wall: NaiveDateTime) -> i64 {
    let start = wall
        .with_second(0)
        .and_then(|w| w.with_nanosecond(0))
        .unwrap_or(wall);
    let valid = |m: i64| -> Option<i64> {
        let w = start.checked_add_signed(Duration::minutes(m))?;
        match zone.from_local_datetime(&w) {
            LocalResult::Single(t) => Some(t.timestamp_millis()),
            LocalResult::Ambiguous(a, b) => Some(a.timestamp_millis().min(b.timestamp_millis())),
            LocalResult::None => None,
        }
    };
    // Invariant: minute `lo` is in the gap, minute `hi` is valid (once found).
    let (mut lo, mut hi) = (0i64, 1i64);
    while valid(hi).is_none() {
        if hi > 2 * 24 * 60 {
            return wall.and_utc().timestamp_millis();
        }
        lo = hi;
        hi *= 2;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if valid(mid).is_some() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    valid(hi).unwrap_or_else(|| wall.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> Tz {
        name.parse().unwrap()
    }

    fn wall(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn a_named_time_repeated_by_a_fall_back_is_its_later_pass() {
        let cal = Calendar::new(tz("Europe/Berlin"));
        let when = cal.when(Made::Named(wall("2026-10-25 02:30:00")));
        assert_eq!(when.at_ms, ms("2026-10-25T02:30:00+01:00"));
        assert_eq!(when.wall, wall("2026-10-25 02:30:00"));
        assert_eq!(when.offset_s, 3600);
    }

    #[test]
    fn a_named_time_skipped_by_a_spring_forward_is_the_end_of_the_gap() {
        let cal = Calendar::new(tz("Europe/Berlin"));
        let when = cal.when(Made::Named(wall("2026-03-29 02:30:00")));
        assert_eq!(when.at_ms, ms("2026-03-29T03:00:00+02:00"));
        // Samoa skipped 2011-12-30 entirely.
        let apia = Calendar::new(tz("Pacific/Apia"));
        let when = apia.when(Made::Named(wall("2011-12-30 12:00:00")));
        assert_eq!(when.at_ms, ms("2011-12-31T00:00:00+14:00"));
    }

    #[test]
    fn names_written_in_another_zone_are_placed_in_the_schedules_zone() {
        // The node's clock in UTC, the schedule in Berlin: 23:30 UTC is already the next day.
        let cal = Calendar::new(tz("Europe/Berlin")).names_in(tz("UTC"));
        let when = cal.when(Made::Named(wall("2026-11-29 23:30:00")));
        assert_eq!(when.wall, wall("2026-11-30 00:30:00"));
        assert_eq!(
            when.period(Unit::Day, &cal.zone()).to_string(),
            "2026-11-30"
        );
    }

    #[test]
    fn the_two_passes_of_a_repeated_hour_are_two_hours() {
        let zone = tz("America/New_York");
        let cal = Calendar::new(zone);
        let first = cal.when(Made::At(ms("2026-11-01T01:20:00-04:00")));
        let second = cal.when(Made::At(ms("2026-11-01T01:40:00-05:00")));
        let before = cal.when(Made::At(ms("2026-11-01T01:50:00-04:00")));
        assert_eq!(first.key(Unit::Hour), before.key(Unit::Hour));
        assert_ne!(first.key(Unit::Hour), second.key(Unit::Hour));
        assert_eq!(first.key(Unit::Day), second.key(Unit::Day));
        assert_eq!(
            first.period(Unit::Hour, &zone).to_string(),
            "2026-11-01 01:00-04:00"
        );
        assert_eq!(
            second.period(Unit::Hour, &zone).to_string(),
            "2026-11-01 01:00-05:00"
        );
        let plain = cal.when(Made::At(ms("2026-11-01T03:10:00-05:00")));
        assert_eq!(
            plain.period(Unit::Hour, &zone).to_string(),
            "2026-11-01 03:00"
        );
    }

    #[test]
    fn a_half_hour_fall_back_repeats_the_end_of_an_hour() {
        // Lord Howe: 02:00 +11:00 falls back to 01:30 +10:30 on 2026-04-05.
        let zone = tz("Australia/Lord_Howe");
        let cal = Calendar::new(zone);
        let early = cal.when(Made::At(ms("2026-04-05T01:10:00+11:00")));
        let late = cal.when(Made::At(ms("2026-04-05T01:45:00+11:00")));
        let again = cal.when(Made::At(ms("2026-04-05T01:45:00+10:30")));
        assert_eq!(early.key(Unit::Hour), late.key(Unit::Hour));
        assert_ne!(late.key(Unit::Hour), again.key(Unit::Hour));
        assert_eq!(
            early.period(Unit::Hour, &zone).to_string(),
            "2026-04-05 01:00+11:00"
        );
        assert_eq!(
            again.period(Unit::Hour, &zone).to_string(),
            "2026-04-05 01:00+10:30"
        );
    }

    #[test]
    fn periods_are_written_for_people() {
        let zone = tz("UTC");
        let cal = Calendar::new(zone);
        let when = cal.when(Made::At(ms("2027-01-01T10:00:00Z")));
        let shown = |unit| when.period(unit, &zone).to_string();
        assert_eq!(shown(Unit::Hour), "2027-01-01 10:00");
        assert_eq!(shown(Unit::Day), "2027-01-01");
        // 2027-01-01 is a Friday: ISO week 53 of 2026.
        assert_eq!(shown(Unit::Week), "2026-W53");
        assert_eq!(shown(Unit::Month), "2027-01");
        assert_eq!(shown(Unit::Year), "2027");
    }

    #[test]
    fn within_reaches_back_on_the_calendar() {
        let cal = Calendar::new(tz("Europe/Berlin"));
        let w = |text: &str| text.parse::<Within>().unwrap();
        let newest = ms("2026-03-31T12:00:00+02:00");
        // One month back from March 31 is the last day of February.
        assert_eq!(
            cal.reach_back(newest, w("1m")),
            ms("2026-02-28T12:00:00+01:00")
        );
        // One day back across the spring-forward: the same wall time, 23 hours earlier.
        let newest = ms("2026-03-29T12:00:00+02:00");
        assert_eq!(
            cal.reach_back(newest, w("1d")),
            ms("2026-03-28T12:00:00+01:00")
        );
        // 24h is elapsed time.
        assert_eq!(
            cal.reach_back(newest, w("24h")),
            ms("2026-03-28T11:00:00+01:00")
        );
        // Onto a repeated time: its earlier pass.
        let newest = ms("2026-10-26T02:30:00+01:00");
        assert_eq!(
            cal.reach_back(newest, w("1d")),
            ms("2026-10-25T02:30:00+02:00")
        );
        // Onto a skipped time: the end of the gap.
        let newest = ms("2026-03-30T02:30:00+02:00");
        assert_eq!(
            cal.reach_back(newest, w("1d")),
            ms("2026-03-29T03:00:00+02:00")
        );
        // Before the year 1: everything is within.
        assert_eq!(cal.reach_back(newest, w("100000y")), i64::MIN);
    }

    #[test]
    fn instants_out_of_range_are_clamped() {
        let cal = Calendar::new(tz("Pacific/Kiritimati"));
        assert_eq!(cal.when(Made::At(i64::MAX)).at_ms, MAX_MS);
        assert_eq!(cal.when(Made::At(i64::MIN)).at_ms, MIN_MS);
        let _ = cal.when(Made::At(i64::MAX)).key(Unit::Hour);
        let _ = cal.reach_back(
            MIN_MS,
            Within {
                years: 1,
                ..Within::default()
            },
        );
    }
}
