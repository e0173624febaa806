//! Backup schedules in the crontab(5) language (Vixie cron / cronie), evaluated in an IANA
//! time zone.
//!
//! # The language
//! Exactly 5 fields, separated by spaces or tabs (as in crontab; other white space such as a
//! no-break space is refused as a stray character): `minute hour day-of-month month day-of-week`.
//!
//! | field        | values | names |
//! |--------------|--------|-------|
//! | minute       | 0-59   |       |
//! | hour         | 0-23   |       |
//! | day-of-month | 1-31   |       |
//! | month        | 1-12   | `jan`-`dec` (any case) |
//! | day-of-week  | 0-7, 0 and 7 are Sunday | `sun`-`sat` (any case) |
//!
//! Each field is `*`, a value, a range `a-b`, or a comma list of those; any of them may take a
//! step: `*/15`, `0-30/10`, and (as in cronie) `5/15`, which means `5-59/15`. Names work in
//! ranges and lists too (`mon-fri`, `jan,jul`). The macros `@yearly` (= `@annually`),
//! `@monthly`, `@weekly`, `@daily` (= `@midnight`) and `@hourly` stand for
//! `0 0 1 1 *`, `0 0 1 * *`, `0 0 * * 0`, `0 0 * * *` and `0 * * * *`.
//!
//! Refused, each with its own [`ScheduleError::reason`]: empty input, 6 or 7 fields (there is
//! no seconds or year field), `@reboot` and unknown macros, values and steps out of range,
//! reversed ranges such as `5-1`, step 0, stray characters, Quartz syntax (`?`, `L`, `W`, `#`),
//! and schedules that can never fire (`0 0 30 2 *`, `0 0 31 4,6,9,11 *`).
//!
//! # The day rule (read this once)
//! When **both** day fields are restricted, a day matches if **either** matches:
//! `30 4 1,15 * 5` fires at 04:30 on the 1st and the 15th of every month **and** on every
//! Friday. A field whose text starts with `*` counts as unrestricted even with a step, as in
//! Vixie cron and cronie; then a day must match **both** fields:
//! `0 0 */2 * 1` fires at midnight on Mondays that are odd days of the month (1st, 3rd, ...),
//! not on every odd day plus every Monday.
//!
//! # Fire times
//! Matching is done in wall-clock time of the zone, then each matching wall time is placed on
//! the time line: a wall time skipped by a spring-forward change fires once, at the first valid
//! minute after the gap (`30 2 * * *` in Europe/Berlin on 2026-03-29 fires at 03:00 CEST); a
//! wall time repeated by a fall-back change fires once, at its first (earlier) instant. All
//! computations take well under a millisecond: days and months are skipped with bit sets, and
//! the search is bounded by the 400-year Gregorian cycle.

mod describe;
mod error;
mod fires;
mod parse;
mod zone;

use chrono::{DateTime, Datelike, Offset, TimeZone, Utc};

pub use error::{Field, ScheduleError};
pub use zone::{local_zone, local_zone_name};

/// Most fire times one [`next_fires`] call returns.
pub const MAX_FIRES: usize = 1000;

/// Checks `expr` and returns it normalized: ASCII white space trimmed, fields separated by one
/// space, a macro in lower case (`" @Daily "` gives `"@daily"`). Field text is otherwise kept
/// as written.
///
/// ```
/// use guard_core::schedule::validate;
///
/// assert_eq!(validate("  0   1 *\t* 0 ").as_deref(), Ok("0 1 * * 0"));
/// assert_eq!(validate(" @Daily ").as_deref(), Ok("@daily"));
/// // Each refusal has its stable reason (the Erlang error atom):
/// assert_eq!(validate("0 0 1 * * *").unwrap_err().reason(), "seconds_field");
/// assert_eq!(validate("0 0 ? * *").unwrap_err().reason(), "quartz_syntax");
/// assert_eq!(validate("0 0 30 2 *").unwrap_err().reason(), "never_fires");
/// ```
pub fn validate(expr: &str) -> Result<String, ScheduleError> {
    parse::parse(expr).map(|p| p.normalized)
}

/// The first `n` (1 to [`MAX_FIRES`]) fire instants of `expr` in `zone` (an IANA name or
/// `local`, see [`local_zone`]) strictly after `after_unix_ms`, as UTC Unix milliseconds,
/// strictly increasing.
///
/// ```
/// use guard_core::schedule::next_fires;
///
/// // 2026-01-01T00:00:00Z; noon in Berlin is 11:00 UTC in winter.
/// let after = 1_767_225_600_000;
/// let fires = next_fires("0 12 * * *", "Europe/Berlin", after, 2)?;
/// assert_eq!(fires, [after + 11 * 3_600_000, after + 35 * 3_600_000]);
/// // Strictly after: a fire time equal to `after_unix_ms` is not returned.
/// assert_eq!(next_fires("0 0 * * *", "UTC", after, 1)?, [after + 24 * 3_600_000]);
/// // 1 to MAX_FIRES fire times:
/// assert_eq!(next_fires("* * * * *", "UTC", after, 0).unwrap_err().reason(), "bad_count");
/// assert_eq!(next_fires("* * * * *", "Mars/Olympus", after, 1).unwrap_err().reason(), "bad_zone");
/// # Ok::<(), guard_core::schedule::ScheduleError>(())
/// ```
pub fn next_fires(
    expr: &str,
    zone: &str,
    after_unix_ms: i64,
    n: usize,
) -> Result<Vec<i64>, ScheduleError> {
    let parsed = parse::parse(expr)?;
    if n == 0 || n > MAX_FIRES {
        return Err(ScheduleError::BadCount {
            count: n,
            max: MAX_FIRES,
        });
    }
    let tz = zone::tz_of(zone)?;
    let after = instant(after_unix_ms)?;
    let fires = fires::next_fires(&parsed.spec, &tz, after, n).ok_or_else(|| {
        ScheduleError::NeverFires {
            expr: parsed.normalized.clone(),
            detail: format!("no fire time found within {} years after {after}", 400),
        }
    })?;
    Ok(fires.iter().map(DateTime::timestamp_millis).collect())
}

/// A plain-English description of `expr`, e.g. `"At 12:00, on Sunday"` for `0 12 * * 0`.
///
/// ```
/// use guard_core::schedule::describe;
///
/// assert_eq!(describe("0 12 * * 0").as_deref(), Ok("At 12:00, on Sunday"));
/// assert_eq!(describe("*/15 9-17 * * 1-5").as_deref(),
///            Ok("Every 15 minutes, between 09:00 and 17:59, on Monday through Friday"));
/// // Both day fields restricted: either day matches (see the day rule above).
/// assert_eq!(describe("0 0 1,15 * 1").as_deref(),
///            Ok("At 00:00, on days 1 and 15 of the month or on Monday"));
/// ```
pub fn describe(expr: &str) -> Result<String, ScheduleError> {
    let parsed = parse::parse(expr)?;
    Ok(describe::describe(&parsed.spec))
}

/// The IANA name `zone` stands for: an IANA name is checked (case-sensitive, as chrono-tz
/// spells it; `UTC` is accepted) and returned as is; `local` becomes the node's zone, resolved
/// once per OS process (see [`local_zone`]).
///
/// ```
/// use guard_core::schedule::resolve_zone;
///
/// assert_eq!(resolve_zone("Europe/Berlin").as_deref(), Ok("Europe/Berlin"));
/// let local = resolve_zone("local")?;
/// assert_eq!(resolve_zone(&local)?, local);
/// assert_eq!(resolve_zone("europe/berlin").unwrap_err().reason(), "bad_zone");
/// # Ok::<(), guard_core::schedule::ScheduleError>(())
/// ```
pub fn resolve_zone(zone: &str) -> Result<String, ScheduleError> {
    zone::tz_of(zone).map(|tz| tz.name().to_string())
}

/// The offset from UTC, in seconds, that `zone` has at the instant `unix_ms`
/// (e.g. 3600 for Europe/Berlin in winter, 19800 for Asia/Kolkata).
///
/// ```
/// use guard_core::schedule::utc_offset_seconds;
///
/// let january = 1_768_478_400_000; // 2026-01-15T12:00:00Z
/// let july = 1_784_116_800_000; // 2026-07-15T12:00:00Z
/// assert_eq!(utc_offset_seconds("Europe/Berlin", january), Ok(3600));
/// assert_eq!(utc_offset_seconds("Europe/Berlin", july), Ok(7200));
/// assert_eq!(utc_offset_seconds("America/New_York", january), Ok(-18000));
/// ```
pub fn utc_offset_seconds(zone: &str, unix_ms: i64) -> Result<i32, ScheduleError> {
    let tz = zone::tz_of(zone)?;
    let at = instant(unix_ms)?;
    Ok(tz
        .offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc())
}

/// `unix_ms` as a UTC instant, limited to the years 1 to 9999.
fn instant(unix_ms: i64) -> Result<DateTime<Utc>, ScheduleError> {
    DateTime::from_timestamp_millis(unix_ms)
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or(ScheduleError::TimeOutOfRange { unix_ms })
}
