//! Fire-time maths: matching wall-clock minutes, then mapping them to instants in a zone.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::parse::{mask_through, Spec};

/// How far ahead the wall-clock search looks before giving up. The Gregorian calendar repeats
/// every 400 years (146 097 days, a whole number of weeks), so a schedule that fires at all
/// fires within any 400-year window; the analytic check in the parser already refused the rest.
const SEARCH_YEARS: i32 = 401;

/// Longest run of non-existent wall minutes searched through (the longest real gap, Samoa's
/// skipped 30 December 2011, is one day).
const MAX_GAP_MINUTES: i64 = 2 * 24 * 60;

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Spec {
    /// Bits 1..=31: the days of `year-month` on which this schedule fires.
    fn day_mask(&self, year: i32, month: u32) -> u32 {
        let dim = days_in_month(year, month);
        let valid = mask_through(dim);
        let Some(first) = NaiveDate::from_ymd_opt(year, month, 1) else {
            return 0;
        };
        let w1 = first.weekday().num_days_from_sunday();
        let mut dow_mask = 0u32;
        for d in 1..=dim {
            if self.dow & (1 << ((w1 + d - 1) % 7)) != 0 {
                dow_mask |= 1 << d;
            }
        }
        let days = if self.day_or_rule() {
            self.dom | dow_mask
        } else {
            self.dom & dow_mask
        };
        days & valid
    }

    /// First (hour, minute) at or after minute-of-day `from` that matches, if any.
    fn first_time_from(&self, from: u32) -> Option<(u32, u32)> {
        let (h0, m0) = (from / 60, from % 60);
        if h0 >= 24 {
            return None;
        }
        if self.hours & (1 << h0) != 0 {
            let mins = self.minutes & !((1u64 << m0) - 1);
            if mins != 0 {
                return Some((h0, mins.trailing_zeros()));
            }
        }
        let later_hours = self.hours & !((2u64 << h0) - 1) as u32;
        if later_hours == 0 {
            return None;
        }
        Some((later_hours.trailing_zeros(), self.minutes.trailing_zeros()))
    }

    /// The first wall-clock minute at or after `from` (seconds ignored) that matches, searching
    /// at most [`SEARCH_YEARS`] ahead. Skips whole months and days with bit operations.
    pub(crate) fn next_wall(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut year = from.year();
        let mut month = from.month();
        let mut day = from.day();
        let mut minute_of_day = from.hour() * 60 + from.minute();
        let last_year = year.checked_add(SEARCH_YEARS)?;
        while year <= last_year {
            if self.months & (1 << month) != 0 {
                let days = self.day_mask(year, month) & !((1u32 << day) - 1);
                if days != 0 {
                    let d = days.trailing_zeros();
                    if d != day {
                        day = d;
                        minute_of_day = 0;
                    }
                    if let Some((h, m)) = self.first_time_from(minute_of_day) {
                        return NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, m, 0);
                    }
                    // Nothing left today: try the next day of this month.
                    day += 1;
                    minute_of_day = 0;
                    if day <= 31 {
                        continue;
                    }
                }
            }
            // Next month.
            day = 1;
            minute_of_day = 0;
            if month == 12 {
                month = 1;
                year += 1;
            } else {
                month += 1;
            }
        }
        None
    }
}

/// Where a matching wall-clock minute fires.
struct Placed {
    instant: DateTime<Utc>,
    /// The wall minute the instant belongs to (the end of the gap for a skipped time).
    wall: NaiveDateTime,
}

/// The instant a wall time that exists fires at: itself, or the earlier of the two instants a
/// fall-back repeats it at. `None` inside a spring-forward gap.
fn first_instant(tz: &Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// Maps a wall-clock minute to the instant it fires at in `tz`: the instant itself; the
/// earlier of two for a time repeated by a fall-back; for a time skipped by a spring-forward,
/// the first wall minute after the gap. The end of a gap is found by galloping then bisecting
/// over whole minutes (about 25 look-ups even for Samoa's skipped day).
fn place(tz: &Tz, wall: NaiveDateTime) -> Option<Placed> {
    if let Some(instant) = first_instant(tz, wall) {
        return Some(Placed { instant, wall });
    }
    // Invariant: `wall + lo` minutes is in the gap, `wall + hi` minutes exists.
    let at = |m: i64| wall.checked_add_signed(Duration::minutes(m));
    let (mut lo, mut hi) = (0i64, 1i64);
    loop {
        if first_instant(tz, at(hi)?).is_some() {
            break;
        }
        if hi >= MAX_GAP_MINUTES {
            return None;
        }
        lo = hi;
        hi *= 2;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if first_instant(tz, at(mid)?).is_some() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let end = at(hi)?;
    Some(Placed {
        instant: first_instant(tz, end)?,
        wall: end,
    })
}

/// The first `n` fire instants strictly after `after`, strictly increasing.
///
/// Walks matching wall-clock minutes from the wall time of `after`: the wall-to-instant map of
/// [`place`] never decreases as wall time grows, so instants come out in order and no wall
/// minute before `after`'s own wall time can fire after it. Equal instants (several skipped
/// minutes, or a skipped minute and the real minute after the gap) are kept once.
/// `None` when the schedule has no further fire within the search window.
pub(crate) fn next_fires(
    spec: &Spec,
    tz: &Tz,
    after: DateTime<Utc>,
    n: usize,
) -> Option<Vec<DateTime<Utc>>> {
    let mut out: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let local = after.with_timezone(tz).naive_local();
    let mut cursor = local.with_second(0)?.with_nanosecond(0)?;
    while out.len() < n {
        let wall = spec.next_wall(cursor)?;
        let placed = place(tz, wall)?;
        let resume = if placed.wall > wall {
            placed.wall
        } else {
            wall
        };
        cursor = resume.checked_add_signed(Duration::minutes(1))?;
        if placed.instant > after && out.last().is_none_or(|last| placed.instant > *last) {
            out.push(placed.instant);
        }
    }
    Some(out)
}
