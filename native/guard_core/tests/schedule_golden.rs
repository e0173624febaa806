//! Golden tests for `guard_core::schedule`: the crontab(5) manual's examples, DST days in
//! several zones, February 29, zone resolution, every rejection class, and a cheap property
//! test that cross-checks fire times against croner's matcher minute by minute.

use std::path::Path;

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use guard_core::schedule::{
    describe, local_zone_name, next_fires, resolve_zone, utc_offset_seconds, validate,
    ScheduleError,
};

/// RFC 3339 text to Unix ms.
fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("bad test time {rfc3339}: {e}"))
        .timestamp_millis()
}

/// `next_fires` rendered as RFC 3339 in the zone, so expectations read as wall times.
fn fires(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    let tz: Tz = zone.parse().expect("test zone");
    next_fires(expr, zone, ms(after), n)
        .unwrap_or_else(|e| panic!("{expr} in {zone}: {e}"))
        .into_iter()
        .map(|t| {
            DateTime::<Utc>::from_timestamp_millis(t)
                .expect("representable")
                .with_timezone(&tz)
                .to_rfc3339()
        })
        .collect()
}

fn err(expr: &str) -> ScheduleError {
    match validate(expr) {
        Ok(n) => panic!("{expr:?} was accepted as {n:?}"),
        Err(e) => e,
    }
}

const NEW_YEAR_2026: &str = "2026-01-01T00:00:00+00:00"; // a Thursday

// ---------------------------------------------------------------- crontab(5) manual examples

#[test]
fn manual_five_after_midnight_every_day() {
    assert_eq!(
        fires("5 0 * * *", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-01-01T00:05:00+00:00",
            "2026-01-02T00:05:00+00:00",
            "2026-01-03T00:05:00+00:00"
        ]
    );
}

#[test]
fn manual_2_15pm_on_the_first_of_every_month() {
    assert_eq!(
        fires("15 14 1 * *", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-01-01T14:15:00+00:00",
            "2026-02-01T14:15:00+00:00",
            "2026-03-01T14:15:00+00:00"
        ]
    );
}

#[test]
fn manual_10pm_on_weekdays() {
    assert_eq!(
        fires("0 22 * * 1-5", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-01-01T22:00:00+00:00", // Thursday
            "2026-01-02T22:00:00+00:00", // Friday
            "2026-01-05T22:00:00+00:00"  // Monday
        ]
    );
}

#[test]
fn manual_23_minutes_after_every_even_hour() {
    assert_eq!(
        fires("23 0-23/2 * * *", "UTC", NEW_YEAR_2026, 4),
        [
            "2026-01-01T00:23:00+00:00",
            "2026-01-01T02:23:00+00:00",
            "2026-01-01T04:23:00+00:00",
            "2026-01-01T06:23:00+00:00"
        ]
    );
    assert_eq!(
        fires("23 */2 * * *", "UTC", NEW_YEAR_2026, 4),
        fires("23 0-23/2 * * *", "UTC", NEW_YEAR_2026, 4)
    );
}

#[test]
fn manual_5_after_4_every_sunday() {
    let want = [
        "2026-01-04T04:05:00+00:00",
        "2026-01-11T04:05:00+00:00",
        "2026-01-18T04:05:00+00:00",
    ];
    assert_eq!(fires("5 4 * * sun", "UTC", NEW_YEAR_2026, 3), want);
    assert_eq!(fires("5 4 * * SUN", "UTC", NEW_YEAR_2026, 3), want);
    assert_eq!(fires("5 4 * * 0", "UTC", NEW_YEAR_2026, 3), want);
    assert_eq!(fires("5 4 * * 7", "UTC", NEW_YEAR_2026, 3), want);
}

#[test]
fn manual_second_week_of_the_month() {
    assert_eq!(
        fires("0 4 8-14 * *", "UTC", NEW_YEAR_2026, 8),
        [
            "2026-01-08T04:00:00+00:00",
            "2026-01-09T04:00:00+00:00",
            "2026-01-10T04:00:00+00:00",
            "2026-01-11T04:00:00+00:00",
            "2026-01-12T04:00:00+00:00",
            "2026-01-13T04:00:00+00:00",
            "2026-01-14T04:00:00+00:00",
            "2026-02-08T04:00:00+00:00"
        ]
    );
}

#[test]
fn manual_or_rule_first_and_fifteenth_plus_mondays() {
    // Midnight on the 1st and 15th and on every Monday; 2026-01-01 00:00 itself is not after.
    assert_eq!(
        fires("0 0 1,15 * 1", "UTC", NEW_YEAR_2026, 5),
        [
            "2026-01-05T00:00:00+00:00", // Monday
            "2026-01-12T00:00:00+00:00", // Monday
            "2026-01-15T00:00:00+00:00", // the 15th, a Thursday
            "2026-01-19T00:00:00+00:00", // Monday
            "2026-01-26T00:00:00+00:00"  // Monday
        ]
    );
}

#[test]
fn manual_or_rule_4_30_on_first_fifteenth_and_fridays() {
    assert_eq!(
        fires("30 4 1,15 * 5", "UTC", NEW_YEAR_2026, 5),
        [
            "2026-01-01T04:30:00+00:00", // the 1st
            "2026-01-02T04:30:00+00:00", // Friday
            "2026-01-09T04:30:00+00:00", // Friday
            "2026-01-15T04:30:00+00:00", // the 15th
            "2026-01-16T04:30:00+00:00"  // Friday
        ]
    );
}

#[test]
fn manual_ranges_and_lists() {
    assert_eq!(
        fires("0 8-11 * * *", "UTC", NEW_YEAR_2026, 5),
        [
            "2026-01-01T08:00:00+00:00",
            "2026-01-01T09:00:00+00:00",
            "2026-01-01T10:00:00+00:00",
            "2026-01-01T11:00:00+00:00",
            "2026-01-02T08:00:00+00:00"
        ]
    );
    assert_eq!(
        fires("0 1,2,5,9 * * *", "UTC", NEW_YEAR_2026, 5),
        [
            "2026-01-01T01:00:00+00:00",
            "2026-01-01T02:00:00+00:00",
            "2026-01-01T05:00:00+00:00",
            "2026-01-01T09:00:00+00:00",
            "2026-01-02T01:00:00+00:00"
        ]
    );
    let h: Vec<String> = fires("0 0-4,8-12 * * *", "UTC", NEW_YEAR_2026, 10)
        .iter()
        .map(|t| t[11..13].to_string())
        .collect();
    assert_eq!(
        h,
        ["01", "02", "03", "04", "08", "09", "10", "11", "12", "00"]
    );
}

#[test]
fn star_step_forms() {
    assert_eq!(
        fires("*/20 * * * *", "UTC", NEW_YEAR_2026, 4),
        [
            "2026-01-01T00:20:00+00:00",
            "2026-01-01T00:40:00+00:00",
            "2026-01-01T01:00:00+00:00",
            "2026-01-01T01:20:00+00:00"
        ]
    );
    // `a/n` is `a-max/n`, as in cronie.
    assert_eq!(
        fires("5/20 * * * *", "UTC", NEW_YEAR_2026, 4),
        [
            "2026-01-01T00:05:00+00:00",
            "2026-01-01T00:25:00+00:00",
            "2026-01-01T00:45:00+00:00",
            "2026-01-01T01:05:00+00:00"
        ]
    );
    assert_eq!(
        fires("0 0 1 */2 *", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-03-01T00:00:00+00:00",
            "2026-05-01T00:00:00+00:00",
            "2026-07-01T00:00:00+00:00"
        ]
    );
}

#[test]
fn star_step_day_field_counts_as_unrestricted_and_rule() {
    // dom `*/2` starts with `*`: the day must be odd AND a Monday (Vixie cron, cronie).
    assert_eq!(
        fires("0 0 */2 * 1", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-01-05T00:00:00+00:00",
            "2026-01-19T00:00:00+00:00",
            "2026-02-09T00:00:00+00:00"
        ]
    );
    // The same days written without `*` are restricted: odd days OR Mondays.
    let odd_days = "1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31";
    assert_eq!(
        fires(&format!("0 0 {odd_days} * 1"), "UTC", NEW_YEAR_2026, 4),
        [
            "2026-01-03T00:00:00+00:00",
            "2026-01-05T00:00:00+00:00",
            "2026-01-07T00:00:00+00:00",
            "2026-01-09T00:00:00+00:00"
        ]
    );
    // dow `*/2` (Sun, Tue, Thu, Sat) with dom 1: the 1st, when it is one of those days.
    assert_eq!(
        fires("0 0 1 * */2", "UTC", NEW_YEAR_2026, 2),
        ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]
    );
}

#[test]
fn month_and_weekday_names_in_any_case_in_ranges_and_lists() {
    assert_eq!(
        fires("0 0 1 jan,JUL *", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-07-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
            "2027-07-01T00:00:00+00:00"
        ]
    );
    assert_eq!(
        fires("0 12 * * MON,wed,Fri", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-01-02T12:00:00+00:00",
            "2026-01-05T12:00:00+00:00",
            "2026-01-07T12:00:00+00:00"
        ]
    );
    assert_eq!(
        fires("0 12 * Feb-Mar Mon-Fri/2", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-02-02T12:00:00+00:00", // Monday
            "2026-02-04T12:00:00+00:00", // Wednesday
            "2026-02-06T12:00:00+00:00"  // Friday
        ]
    );
    assert_eq!(
        fires("0 0 * * fri-7", "UTC", NEW_YEAR_2026, 3),
        [
            "2026-01-02T00:00:00+00:00",
            "2026-01-03T00:00:00+00:00",
            "2026-01-04T00:00:00+00:00"
        ]
    );
}

#[test]
fn macros() {
    let first = |e: &str| fires(e, "UTC", NEW_YEAR_2026, 1).remove(0);
    assert_eq!(first("@hourly"), "2026-01-01T01:00:00+00:00");
    assert_eq!(first("@daily"), "2026-01-02T00:00:00+00:00");
    assert_eq!(first("@midnight"), "2026-01-02T00:00:00+00:00");
    assert_eq!(first("@weekly"), "2026-01-04T00:00:00+00:00");
    assert_eq!(first("@monthly"), "2026-02-01T00:00:00+00:00");
    assert_eq!(first("@yearly"), "2027-01-01T00:00:00+00:00");
    assert_eq!(first("@annually"), "2027-01-01T00:00:00+00:00");
    assert_eq!(validate("  @Daily ").as_deref(), Ok("@daily"));
}

#[test]
fn validate_normalizes_white_space_only() {
    assert_eq!(
        validate("  0\t22  * *   Mon-Fri \n").as_deref(),
        Ok("0 22 * * Mon-Fri")
    );
    assert_eq!(validate("*/5 * * * *").as_deref(), Ok("*/5 * * * *"));
}

#[test]
fn only_spaces_and_tabs_separate_fields() {
    // Other white space (no-break space, em space, ideographic space, a line break inside the
    // expression) is a stray character of the field it sits in, as in crontab.
    let cases = [
        ("0\u{a0}0 * * *", "minute field", "'\\u{a0}'"),
        ("0 0 * * *\u{2003}", "day-of-week field", "'\\u{2003}'"),
        ("0 0 * *\u{3000}*", "month field", "'\\u{3000}'"),
        ("0 0 * *\n*", "month field", "'\\u{a}'"),
        ("0 0 1\u{85}* * *", "day-of-month field", "'\\u{85}'"),
        ("\u{a0}", "minute field", "'\\u{a0}'"),
    ];
    for (expr, field, shown) in cases {
        let e = err(expr);
        let msg = e.to_string();
        assert_eq!(e.reason(), "bad_char", "{expr:?}: {msg}");
        assert!(
            msg.starts_with(field),
            "{expr:?}: {msg:?} does not name the {field}"
        );
        assert!(
            msg.contains(shown),
            "{expr:?}: {msg:?} does not show {shown}"
        );
        assert!(msg.contains("spaces or tabs"), "{expr:?}: {msg:?}");
        assert_eq!(describe(expr).unwrap_err(), e);
    }
    assert_eq!(err("@daily\u{a0}").reason(), "unsupported_macro");
    // Spaces and tabs, and ASCII white space at either end, are fine.
    assert_eq!(validate("0\t0 *  *\t\t*").as_deref(), Ok("0 0 * * *"));
    assert_eq!(validate("\r\n 0 0 * * * \r\n").as_deref(), Ok("0 0 * * *"));
    assert_eq!(validate("\t@weekly\n").as_deref(), Ok("@weekly"));
    assert_eq!(err(" \t\r\n").reason(), "empty");
}

// ---------------------------------------------------------------- DST: Europe/Berlin

#[test]
fn berlin_spring_forward_gap_fires_once_at_0300() {
    // 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:00-02:59 does not exist.
    let z = "Europe/Berlin";
    assert_eq!(
        fires("30 2 * * *", z, "2026-03-28T00:00:00+01:00", 3),
        [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00"
        ]
    );
    assert_eq!(
        fires("*/15 2 * * *", z, "2026-03-29T00:00:00+01:00", 2),
        ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]
    );
    // A gap time and a real 03:00 match fire once.
    assert_eq!(
        fires("0 2,3 * * *", z, "2026-03-29T00:00:00+01:00", 3),
        [
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:00:00+02:00",
            "2026-03-30T03:00:00+02:00"
        ]
    );
    assert_eq!(
        fires("* * * * *", z, "2026-03-29T01:58:00+01:00", 3),
        [
            "2026-03-29T01:59:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:01:00+02:00"
        ]
    );
}

#[test]
fn berlin_fall_back_repeated_hour_fires_once_at_first_instant() {
    // 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:00-02:59 happens twice.
    let z = "Europe/Berlin";
    assert_eq!(
        fires("30 2 * * *", z, "2026-10-24T12:00:00+02:00", 2),
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    );
    assert_eq!(
        fires("*/15 2 * * *", z, "2026-10-25T00:00:00+02:00", 5),
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:15:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:45:00+02:00",
            "2026-10-26T02:00:00+01:00"
        ]
    );
    assert_eq!(
        fires("* * * * *", z, "2026-10-25T02:58:00+02:00", 3),
        [
            "2026-10-25T02:59:00+02:00",
            "2026-10-25T03:00:00+01:00",
            "2026-10-25T03:01:00+01:00"
        ]
    );
    // Asked from inside the second pass: the repeated wall times already fired.
    assert_eq!(
        fires("*/15 * * * *", z, "2026-10-25T02:30:00+01:00", 2),
        ["2026-10-25T03:00:00+01:00", "2026-10-25T03:15:00+01:00"]
    );
}

// ---------------------------------------------------------------- DST: America/New_York

#[test]
fn new_york_spring_forward() {
    // 2026-03-08 02:00 EST jumps to 03:00 EDT.
    let z = "America/New_York";
    assert_eq!(
        fires("30 2 * * *", z, "2026-03-07T00:00:00-05:00", 3),
        [
            "2026-03-07T02:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00"
        ]
    );
    assert_eq!(
        fires("*/15 2 * * *", z, "2026-03-08T00:00:00-05:00", 2),
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
    );
    assert_eq!(
        fires("* * * * *", z, "2026-03-08T01:59:00-05:00", 2),
        ["2026-03-08T03:00:00-04:00", "2026-03-08T03:01:00-04:00"]
    );
}

#[test]
fn new_york_fall_back() {
    // 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:00-01:59 happens twice.
    let z = "America/New_York";
    assert_eq!(
        fires("30 1 * * *", z, "2026-10-31T12:00:00-04:00", 2),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    );
    assert_eq!(
        fires("30 2 * * *", z, "2026-10-31T12:00:00-04:00", 2),
        ["2026-11-01T02:30:00-05:00", "2026-11-02T02:30:00-05:00"]
    );
    assert_eq!(
        fires("*/15 1 * * *", z, "2026-11-01T00:00:00-04:00", 5),
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:15:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:45:00-04:00",
            "2026-11-02T01:00:00-05:00"
        ]
    );
    assert_eq!(
        fires("* * * * *", z, "2026-11-01T01:58:00-04:00", 3),
        [
            "2026-11-01T01:59:00-04:00",
            "2026-11-01T02:00:00-05:00",
            "2026-11-01T02:01:00-05:00"
        ]
    );
}

// ---------------------------------------------------------------- other zones

#[test]
fn santiago_changes_at_midnight() {
    let z = "America/Santiago";
    // 2026-04-05 00:00 -03 falls back to 2026-04-04 23:00 -04: midnight of the 5th happens once,
    // after the repeated 23:00 hour.
    assert_eq!(
        fires("0 0 * * *", z, "2026-04-03T12:00:00-03:00", 3),
        [
            "2026-04-04T00:00:00-03:00",
            "2026-04-05T00:00:00-04:00",
            "2026-04-06T00:00:00-04:00"
        ]
    );
    assert_eq!(
        fires("30 23 * * *", z, "2026-04-04T12:00:00-03:00", 2),
        ["2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"]
    );
    // 2026-09-06 00:00 -04 jumps to 01:00 -03: midnight does not exist, it fires at 01:00.
    assert_eq!(
        fires("0 0 * * *", z, "2026-09-04T12:00:00-04:00", 3),
        [
            "2026-09-05T00:00:00-04:00",
            "2026-09-06T01:00:00-03:00",
            "2026-09-07T00:00:00-03:00"
        ]
    );
}

#[test]
fn lord_howe_half_hour_dst() {
    let z = "Australia/Lord_Howe";
    // 2026-10-04 02:00 +10:30 jumps to 02:30 +11:00.
    assert_eq!(
        fires("15 2 * * *", z, "2026-10-03T12:00:00+10:30", 3),
        [
            "2026-10-04T02:30:00+11:00",
            "2026-10-05T02:15:00+11:00",
            "2026-10-06T02:15:00+11:00"
        ]
    );
    assert_eq!(
        fires("* * * * *", z, "2026-10-04T01:59:00+10:30", 2),
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:31:00+11:00"]
    );
    // 2026-04-05 02:00 +11:00 falls back to 01:30 +10:30: 01:30-01:59 happens twice.
    assert_eq!(
        fires("45 1 * * *", z, "2026-04-04T12:00:00+11:00", 2),
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]
    );
    assert_eq!(
        utc_offset_seconds(z, ms("2026-01-15T00:00:00Z")),
        Ok(11 * 3600)
    );
    assert_eq!(
        utc_offset_seconds(z, ms("2026-07-15T00:00:00Z")),
        Ok(10 * 3600 + 1800)
    );
}

#[test]
fn samoa_skipped_a_whole_day() {
    // Pacific/Apia went from 2011-12-29 23:59:59 -10:00 straight to 2011-12-31 00:00 +14:00.
    let z = "Pacific/Apia";
    assert_eq!(
        fires("* * * * *", z, "2011-12-29T23:58:00-10:00", 3),
        [
            "2011-12-29T23:59:00-10:00",
            "2011-12-31T00:00:00+14:00",
            "2011-12-31T00:01:00+14:00"
        ]
    );
    assert_eq!(
        fires("0 12 * * *", z, "2011-12-29T00:00:00-10:00", 3),
        [
            "2011-12-29T12:00:00-10:00",
            "2011-12-31T00:00:00+14:00",
            "2011-12-31T12:00:00+14:00"
        ]
    );
}

#[test]
fn kolkata_half_hour_offset_no_dst() {
    let z = "Asia/Kolkata";
    assert_eq!(
        fires("0 9 * * *", z, NEW_YEAR_2026, 2),
        ["2026-01-01T09:00:00+05:30", "2026-01-02T09:00:00+05:30"]
    );
    assert_eq!(
        next_fires("0 9 * * *", z, ms(NEW_YEAR_2026), 1),
        Ok(vec![ms("2026-01-01T03:30:00Z")])
    );
    for month in ["01", "04", "07", "10"] {
        let t = ms(&format!("2026-{month}-15T00:00:00Z"));
        assert_eq!(utc_offset_seconds(z, t), Ok(19800));
    }
}

#[test]
fn utc_offsets_follow_dst() {
    assert_eq!(
        utc_offset_seconds("Europe/Berlin", ms("2026-03-29T00:59:59Z")),
        Ok(3600)
    );
    assert_eq!(
        utc_offset_seconds("Europe/Berlin", ms("2026-03-29T01:00:00Z")),
        Ok(7200)
    );
    assert_eq!(
        utc_offset_seconds("America/New_York", ms("2026-11-01T06:00:00Z")),
        Ok(-5 * 3600)
    );
    assert_eq!(utc_offset_seconds("UTC", 0), Ok(0));
    assert_eq!(
        utc_offset_seconds("Mars/Olympus", 0).map_err(|e| e.reason()),
        Err("bad_zone")
    );
}

// ---------------------------------------------------------------- February 29

#[test]
fn february_29_years_ahead() {
    assert_eq!(
        fires("0 0 29 2 *", "UTC", NEW_YEAR_2026, 3),
        [
            "2028-02-29T00:00:00+00:00",
            "2032-02-29T00:00:00+00:00",
            "2036-02-29T00:00:00+00:00"
        ]
    );
    // 2100 is not a leap year: from 2096 the next is 2104.
    assert_eq!(
        fires("0 0 29 2 *", "UTC", "2096-03-01T00:00:00+00:00", 1),
        ["2104-02-29T00:00:00+00:00"]
    );
    assert_eq!(
        fires("30 12 29 feb *", "Europe/Berlin", NEW_YEAR_2026, 1),
        ["2028-02-29T12:30:00+01:00"]
    );
    // AND rule: February 29 that is a Sunday (dow `*/7` = 0,7 starts with `*`).
    assert_eq!(
        fires("0 0 29 2 */7", "UTC", NEW_YEAR_2026, 2),
        ["2032-02-29T00:00:00+00:00", "2060-02-29T00:00:00+00:00"]
    );
}

#[test]
fn every_valid_month_day_falls_on_every_weekday_within_400_years() {
    // The analytic never-fires check rests on this: with the AND rule, a schedule fires iff
    // some chosen month has some chosen day.
    use chrono::{Datelike, NaiveDate};
    for month in 1..=12u32 {
        for day in 1..=31u32 {
            let mut seen = 0u8;
            for year in 2000..2400 {
                if let Some(d) = NaiveDate::from_ymd_opt(year, month, day) {
                    seen |= 1 << d.weekday().num_days_from_sunday();
                }
            }
            let exists = NaiveDate::from_ymd_opt(2000, month, day).is_some();
            assert_eq!(seen == 0x7f, exists, "{month}-{day}");
        }
    }
}

// ---------------------------------------------------------------- describe

/// Expressions and their descriptions, word for word.
const DESCRIPTIONS: &[(&str, &str)] = &[
    ("0 12 * * 0", "At 12:00, on Sunday"),
    ("* * * * *", "Every minute"),
    ("*/15 * * * *", "Every 15 minutes"),
    ("5 * * * *", "At 5 minutes past the hour"),
    ("@hourly", "Every hour"),
    ("30 2 * * *", "At 02:30, every day"),
    ("5 0 * * *", "At 00:05, every day"),
    ("15 14 1 * *", "At 14:15, on day 1 of the month"),
    ("0 22 * * 1-5", "At 22:00, on Monday through Friday"),
    (
        "23 0-23/2 * * *",
        "At 23 minutes past the hour, every 2 hours",
    ),
    ("5 4 * * sun", "At 04:05, on Sunday"),
    (
        "0 4 8-14 * *",
        "At 04:00, on days 8 through 14 of the month",
    ),
    (
        "0 0 1,15 * 1",
        "At 00:00, on days 1 and 15 of the month or on Monday",
    ),
    ("0 0 1 * 1", "At 00:00, on day 1 of the month or on Monday"),
    (
        "0 0 */2 * 1",
        "At 00:00, on every 2nd day of the month if it is a Monday",
    ),
    ("@yearly", "At 00:00, on January 1"),
    ("0 0 29 2 *", "At 00:00, on February 29"),
    ("*/15 2 * * *", "Every 15 minutes, between 02:00 and 02:59"),
    (
        "0 9-17 * * mon-fri",
        "Every hour from 09:00 to 17:00, on Monday through Friday",
    ),
    (
        "0,30 9,17 * * *",
        "At 09:00, 09:30, 17:00 and 17:30, every day",
    ),
    ("0 0 * jan,jul *", "At 00:00, every day in January and July"),
    (
        "0 12 * * mon,wed,fri",
        "At 12:00, on Monday, Wednesday and Friday",
    ),
    ("0 0 * * fri-7", "At 00:00, on Friday through Sunday"),
    ("0 1-23/2 * * *", "Every 2 hours from 01:00 to 23:00"),
    (
        "10-20 * * * *",
        "Every minute from 10 through 20 minutes past the hour",
    ),
    (
        "0 3 * mar-may *",
        "At 03:00, every day in March through May",
    ),
    (
        "0 6 1 */3 *",
        "At 06:00, on day 1 of the month, in January, April, July and October",
    ),
    ("0 0 29,30 2 *", "At 00:00, on February 29"),
    (
        "0 0 1,15,31 2 *",
        "At 00:00, on days 1 and 15 of the month, in February",
    ),
    (
        "0 0-4,8-12 * * *",
        "Every hour from 00:00 to 04:00 and from 08:00 to 12:00",
    ),
    ("0 0 1-31 * 1", "At 00:00, every day"),
    ("0 0 */3 * *", "At 00:00, on every 3rd day of the month"),
    (
        "*/15 9-17 * * 1-5",
        "Every 15 minutes, between 09:00 and 17:59, on Monday through Friday",
    ),
    ("0 0 * * 6,0", "At 00:00, on Saturday and Sunday"),
    ("1 * * * *", "At 1 minute past the hour"),
    ("0,15,40 * * * *", "At 0, 15 and 40 minutes past the hour"),
];

#[test]
fn descriptions() {
    for (expr, want) in DESCRIPTIONS {
        assert_eq!(describe(expr).as_deref(), Ok(*want), "{expr}");
    }
    assert_eq!(
        describe("0 0 30 2 *").map_err(|e| e.reason()),
        Err("never_fires")
    );
}

/// What a description must never look like: an empty list leaves a double space, a space
/// before a comma, or a dangling word at the end.
fn assert_well_formed(expr: &str, text: &str) {
    let bad = text.contains("  ")
        || text.contains(" ,")
        || text.contains(",,")
        || text.starts_with(' ')
        || text.ends_with([' ', ','])
        || text.contains("days of")
        || text.ends_with(" on")
        || text.ends_with(" in");
    assert!(!bad, "{expr:?} is described as {text:?}");
}

#[test]
fn descriptions_when_no_chosen_day_of_month_exists_in_the_chosen_months() {
    // Under the OR rule such a schedule fires on the weekdays only: say just that.
    let cases = [
        ("0 0 31 2 mon", "At 00:00, on Monday, in February"),
        ("0 0 30 2 mon", "At 00:00, on Monday, in February"),
        (
            "0 0 30,31 feb 1-5",
            "At 00:00, on Monday through Friday, in February",
        ),
        ("0 0 31 4,6 1", "At 00:00, on Monday, in April and June"),
        (
            "0 0 31 4,6,9,11 sat,sun",
            "At 00:00, on Saturday and Sunday, in April, June, September and November",
        ),
        // Days that cover every day of the chosen months match every day.
        ("0 0 1-29 2 mon", "At 00:00, every day in February"),
        (
            "0 0 1-30 2,4 mon",
            "At 00:00, every day in February and April",
        ),
        // A step over the days February has reads as a step.
        (
            "0 0 1-31/2 2 mon",
            "At 00:00, on every 2nd day of the month or on Monday, in February",
        ),
        // Some chosen days exist: only those are named.
        (
            "0 0 15,31 2 mon",
            "At 00:00, on day 15 of the month or on Monday, in February",
        ),
    ];
    for (expr, want) in cases {
        assert_eq!(describe(expr).as_deref(), Ok(want), "{expr}");
    }
}

#[test]
fn descriptions_are_well_formed_for_every_day_and_month_combination() {
    let doms = [
        "1", "15", "29", "30", "31", "30,31", "29-31", "1-29", "1-30", "1-31", "*/2", "1-31/2",
        "2-30/7", "*",
    ];
    let months = ["*", "2", "4", "2,4", "4,6,9,11", "1-3", "*/2"];
    let dows = ["*", "1", "1-5", "0,6", "*/2", "0-7"];
    let times = ["0 0", "*/15 *", "0 9-17", "30 2,14"];
    for dom in doms {
        for month in months {
            for dow in dows {
                for time in times {
                    let expr = format!("{time} {dom} {month} {dow}");
                    match describe(&expr) {
                        Ok(text) => assert_well_formed(&expr, &text),
                        Err(e) => assert_eq!(e.reason(), "never_fires", "{expr}: {e}"),
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- zones

#[test]
fn resolve_zone_checks_iana_names_case_sensitively() {
    assert_eq!(
        resolve_zone("Europe/Berlin").as_deref(),
        Ok("Europe/Berlin")
    );
    assert_eq!(resolve_zone("UTC").as_deref(), Ok("UTC"));
    let e = resolve_zone("europe/berlin").unwrap_err();
    assert_eq!(e.reason(), "bad_zone");
    assert!(e.to_string().contains("\"europe/berlin\""), "{e}");
    assert_eq!(resolve_zone("").map_err(|e| e.reason()), Err("bad_zone"));
    assert_eq!(
        next_fires("* * * * *", "Nowhere/Town", 0, 1).map_err(|e| e.reason()),
        Err("bad_zone")
    );
    // `local` always becomes a name chrono-tz knows.
    let local = resolve_zone("local").expect("local resolves");
    assert_eq!(resolve_zone(&local).as_deref(), Ok(local.as_str()));
}

#[test]
fn local_zone_sources_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let timezone = dir.path().join("timezone");
    let localtime = dir.path().join("localtime");
    let missing = dir.path().join("missing");

    // Nothing configured: UTC.
    assert_eq!(local_zone_name(None, &missing, &missing), "UTC");
    // TZ wins, with or without the leading colon.
    assert_eq!(
        local_zone_name(Some("Europe/Berlin"), &missing, &missing),
        "Europe/Berlin"
    );
    assert_eq!(
        local_zone_name(Some(":Europe/Berlin"), &missing, &missing),
        "Europe/Berlin"
    );
    assert_eq!(
        local_zone_name(
            Some(":/usr/share/zoneinfo/Asia/Kolkata"),
            &missing,
            &missing
        ),
        "Asia/Kolkata"
    );

    // The /etc/localtime symlink target after zoneinfo/.
    std::os::unix::fs::symlink("/usr/share/zoneinfo/Australia/Lord_Howe", &localtime)
        .expect("symlink");
    assert_eq!(
        local_zone_name(None, &missing, &localtime),
        "Australia/Lord_Howe"
    );
    // A TZ that is not an IANA name falls through.
    assert_eq!(
        local_zone_name(Some("CST6CDT,M3.2.0,M11.1.0"), &missing, &localtime),
        "Australia/Lord_Howe"
    );

    // /etc/timezone comes before /etc/localtime.
    std::fs::write(&timezone, "America/Santiago\n").expect("write");
    assert_eq!(
        local_zone_name(None, &timezone, &localtime),
        "America/Santiago"
    );
    assert_eq!(
        local_zone_name(Some("not a zone"), &timezone, &localtime),
        "America/Santiago"
    );
    // A junk /etc/timezone is skipped.
    std::fs::write(&timezone, "Mars/Base\n").expect("write");
    assert_eq!(
        local_zone_name(None, &timezone, &localtime),
        "Australia/Lord_Howe"
    );
    // A relative symlink works too.
    let rel = dir.path().join("rel");
    std::os::unix::fs::symlink("../usr/share/zoneinfo/posix/Asia/Kolkata", &rel).expect("symlink");
    assert_eq!(
        local_zone_name(None, Path::new("/nonexistent"), &rel),
        "Asia/Kolkata"
    );
}

// ---------------------------------------------------------------- rejections

#[test]
fn rejections_carry_reason_and_one_line_message() {
    let cases: [(&str, &str, &str); 30] = [
        ("", "empty", "the schedule is empty"),
        ("   \t ", "empty", "the schedule is empty"),
        ("0 0 * * * *", "seconds_field", "6 fields given: schedules have minute resolution, use 5 fields (minute hour day-of-month month day-of-week)"),
        ("0 0 0 * * * 2026", "seconds_field", "7 fields given: schedules have minute resolution"),
        ("0 0 *", "field_count", "3 fields given: use 5 fields"),
        ("0 0 * * * * * *", "field_count", "8 fields given"),
        ("@reboot", "unsupported_macro", "\"@reboot\" is not supported"),
        ("@every", "unsupported_macro", "unknown macro \"@every\""),
        ("@daily 0", "unsupported_macro", "must stand alone"),
        ("0 25 * * *", "out_of_range", "hour field \"25\": 25 is out of range 0-23"),
        ("60 * * * *", "out_of_range", "minute field \"60\": 60 is out of range 0-59"),
        ("0 0 0 * *", "out_of_range", "day-of-month field \"0\": 0 is out of range 1-31"),
        ("0 0 * 13 *", "out_of_range", "month field \"13\": 13 is out of range 1-12"),
        ("0 0 * * 8", "out_of_range", "day-of-week field \"8\": 8 is out of range 0-7"),
        ("*/99 * * * *", "out_of_range", "minute field \"*/99\": step 99 is out of range 1-59"),
        ("5-1 * * * *", "reversed_range", "minute field \"5-1\": range 5-1 runs backwards"),
        ("0 22-2 * * *", "reversed_range", "use a list such as 22-23,0-2"),
        ("0 0 * * mon-sun", "reversed_range", "write 1-7"),
        ("*/0 * * * *", "zero_step", "minute field \"*/0\": a step of 0 never advances"),
        ("0 0 * * x", "bad_char", "day-of-week field \"x\": \"x\" is not a value"),
        ("0 0 * foo *", "bad_char", "month field \"foo\": \"foo\" is not a value: use 1-12 or the names jan-dec"),
        ("0 mon * * *", "bad_char", "names are only allowed in the month and day-of-week fields"),
        ("0 0 * * 1;2", "bad_char", "unexpected character ';'"),
        ("1,,2 * * * *", "bad_char", "empty list item"),
        ("0 0 ? * 1", "quartz_syntax", "day-of-month field \"?\": \"?\" is Quartz syntax"),
        ("0 0 L * *", "quartz_syntax", "\"L\" (last) is Quartz syntax"),
        ("0 0 * * 5L", "quartz_syntax", "\"L\" (last) is Quartz syntax"),
        ("0 0 15W * *", "quartz_syntax", "\"W\" (nearest weekday) is Quartz syntax"),
        ("0 0 * * 5#3", "quartz_syntax", "\"#\" (nth weekday of the month) is Quartz syntax"),
        ("0 0 30 2 *", "never_fires", "\"0 0 30 2 *\" can never fire: February never has day 30"),
    ];
    for (expr, reason, text) in cases {
        let e = err(expr);
        let msg = e.to_string();
        assert_eq!(e.reason(), reason, "{expr:?}: {msg}");
        assert!(msg.contains(text), "{expr:?}: {msg:?} lacks {text:?}");
        assert!(!msg.contains('\n'), "{expr:?}: {msg:?} is not one line");
        // The same refusal from every entry point.
        assert_eq!(describe(expr).unwrap_err(), e);
        assert_eq!(next_fires(expr, "UTC", 0, 1).unwrap_err(), e);
    }
    assert_eq!(
        err("0 0 31 4,6,9,11 *").to_string(),
        "\"0 0 31 4,6,9,11 *\" can never fire: April, June, September and November never have day 31"
    );
    assert_eq!(
        err("0 0 30,31 feb *").to_string(),
        "\"0 0 30,31 feb *\" can never fire: February never has day 30 or 31"
    );
    // `*/2` day-of-week keeps the AND rule, so Feb 30 still never fires.
    assert_eq!(err("0 0 30 2 */2").reason(), "never_fires");
    // The OR rule makes the same days fire on Mondays.
    assert!(validate("0 0 30 2 1").is_ok());
}

#[test]
fn error_messages_escape_control_and_invisible_characters() {
    // (input, what the message must show instead of the raw character)
    let cases = [
        ("0 0 * * 1\u{0}", "day-of-week field \"1\\0\""),
        ("0 0 * * \u{1b}[2J", "day-of-week field \"\\u{1b}[2J\""),
        ("0 \u{7f}5 * * *", "hour field \"\\u{7f}5\""),
        ("0 0 ?\u{7} * *", "day-of-month field \"?\\u{7}\""),
        ("0 0 #\u{1b} * *", "day-of-month field \"#\\u{1b}\""),
        ("0 0 * \u{202e}jan *", "month field \"\\u{202e}jan\""),
        ("0 0 * * \"x\"", "day-of-week field \"\\\"x\\\"\""),
        ("@dai\u{1b}ly", "unknown macro \"@dai\\u{1b}ly\""),
    ];
    for (expr, want) in cases {
        let msg = err(expr).to_string();
        assert!(msg.contains(want), "{expr:?}: {msg:?} lacks {want:?}");
        assert!(
            !msg.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{expr:?}: {msg:?}"
        );
    }
    let e = next_fires("* * * * *", "Europe/\u{1b}]0;pwned\u{7}", 0, 1).unwrap_err();
    assert_eq!(e.reason(), "bad_zone");
    assert!(
        e.to_string()
            .starts_with("time zone \"Europe/\\u{1b}]0;pwned\\u{7}\" is unknown"),
        "{e}"
    );
    // The error value keeps the text as given; only the message escapes it.
    match err("0 0 * * 1\u{0}") {
        ScheduleError::BadChar { text, .. } => assert_eq!(text, "1\u{0}"),
        other => panic!("{other:?}"),
    }
    // Printable Unicode is kept, an overlong field is cut.
    assert!(err("0 0 * * lundé").to_string().contains("\"lundé\""));
    let long = format!("0 0 * * {}", "1,".repeat(300));
    let msg = err(&long).to_string();
    assert!(
        msg.contains(&format!("\"{}...\"", "1,".repeat(100))),
        "{msg}"
    );
}

#[test]
fn counts_and_instants_out_of_range() {
    for n in [0, 1001] {
        let e = next_fires("* * * * *", "UTC", 0, n).unwrap_err();
        assert_eq!(e.reason(), "bad_count");
        assert!(e.to_string().contains("1 to 1000"), "{e}");
    }
    assert_eq!(
        next_fires("* * * * *", "UTC", 0, 1000).map(|v| v.len()),
        Ok(1000)
    );
    assert_eq!(
        next_fires("* * * * *", "UTC", i64::MAX, 1).map_err(|e| e.reason()),
        Err("out_of_range")
    );
}

// ---------------------------------------------------------------- property test

/// Small deterministic generator (no extra crate).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const MINUTES: [&str; 9] = [
    "*", "0", "30", "*/15", "5/20", "0-10", "7,19,58", "*/7", "59",
];
const HOURS: [&str; 9] = ["*", "0", "1", "2", "3", "23", "1-3", "*/5", "0,2,23"];
const DOMS: [&str; 8] = ["*", "1", "15", "*/2", "29", "31", "1-7", "5,6,30"];
const MONTHS: [&str; 6] = ["*", "1", "2", "*/3", "3-4,10-11", "9"];
const DOWS: [&str; 7] = ["*", "0", "1-5", "*/2", "6,7", "3", "5-7"];
const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];
/// Instants near DST changes of the zones above, so the windows straddle them.
const PIVOTS: [&str; 8] = [
    "2026-03-29T01:00:00Z",
    "2026-10-25T01:00:00Z",
    "2026-03-08T07:00:00Z",
    "2026-11-01T06:00:00Z",
    "2026-04-05T03:00:00Z",
    "2026-09-06T04:00:00Z",
    "2026-04-04T15:00:00Z",
    "2026-10-03T15:30:00Z",
];

/// Fire instants by brute force over UTC minutes, matching with croner: an instant fires when
/// its wall time matches and it is that wall time's first instant, or when it ends a gap in
/// which some skipped wall minute matches.
fn brute_force(expr: &str, tz: &Tz, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<i64> {
    let fields: Vec<&str> = expr.split(' ').collect();
    let and_rule = fields[2].starts_with('*') || fields[4].starts_with('*');
    // croner 4 refuses cronie's `a/n`; spell it `a-59/n` (only the minute list uses it).
    let croner_expr = expr.replacen("5/20", "5-59/20", 1);
    let cron = croner::parser::CronParser::builder()
        .dom_and_dow(and_rule)
        .build()
        .parse(&croner_expr)
        .expect("croner parses the generated expression");
    let matches = |w: &NaiveDateTime| cron.is_time_matching(w).expect("croner matches");
    let mut out = Vec::new();
    let start = after.timestamp().div_euclid(60) * 60 + 60;
    let mut t = DateTime::<Utc>::from_timestamp(start, 0).expect("start");
    while t < until {
        let wall = t.with_timezone(tz).naive_local();
        let first_instant = tz
            .from_local_datetime(&wall)
            .earliest()
            .map(|e| e.with_timezone(&Utc));
        let mut fire = matches(&wall) && first_instant == Some(t);
        let prev_wall = (t - Duration::minutes(1)).with_timezone(tz).naive_local();
        let mut skipped = prev_wall + Duration::minutes(1);
        while !fire && skipped < wall {
            fire = matches(&skipped);
            skipped += Duration::minutes(1);
        }
        if fire {
            out.push(t.timestamp_millis());
        }
        t += Duration::minutes(1);
    }
    out
}

#[test]
fn property_fires_increase_and_agree_with_brute_force() {
    let mut rng = Lcg(0x5eed_2026);
    let mut checked_fires = 0usize;
    for case in 0..300 {
        let expr = format!(
            "{} {} {} {} {}",
            rng.pick(&MINUTES),
            rng.pick(&HOURS),
            rng.pick(&DOMS),
            rng.pick(&MONTHS),
            rng.pick(&DOWS)
        );
        if validate(&expr).is_err() {
            continue; // e.g. day 31 in February only
        }
        let zone = rng.pick(&ZONES);
        let tz: Tz = zone.parse().expect("zone");
        let pivot = ms(rng.pick(&PIVOTS));
        let after_ms = pivot - 36 * 3_600_000 + rng.below(72 * 3_600_000) as i64;
        let after = DateTime::<Utc>::from_timestamp_millis(after_ms).expect("after");
        let n = 1 + rng.below(200) as usize;
        let got = next_fires(&expr, zone, after_ms, n)
            .unwrap_or_else(|e| panic!("case {case}: {expr} {zone}: {e}"));
        assert_eq!(got.len(), n, "case {case}: {expr}");
        assert!(got[0] > after_ms, "case {case}: {expr}");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "case {case}: {expr}");

        // Cross-check everything inside a 3-day window with the brute force.
        let until = after + Duration::days(3);
        let want = brute_force(&expr, &tz, after, until);
        let got_in: Vec<i64> = got
            .iter()
            .copied()
            .filter(|t| *t < until.timestamp_millis())
            .collect();
        let k = got_in.len().min(want.len());
        assert_eq!(
            got_in[..k],
            want[..k],
            "case {case}: {expr} in {zone} after {after}"
        );
        if got_in.len() < n {
            // Our list left the window, so it must hold every brute-force fire in it.
            assert_eq!(got_in, want, "case {case}: {expr} in {zone} after {after}");
        }
        checked_fires += k;
    }
    assert!(
        checked_fires > 1000,
        "the generator exercised too little: {checked_fires}"
    );
}

#[test]
fn property_wide_range_invariants() {
    let mut rng = Lcg(42);
    let names_dows = ["sun", "MON-fri", "tue,THU", "sat-7", "*/3"];
    let names_months = ["jan", "FEB", "mar-MAY", "*/5", "dec"];
    for case in 0..2000 {
        let dow = if rng.below(2) == 0 {
            rng.pick(&DOWS)
        } else {
            rng.pick(&names_dows)
        };
        let month = if rng.below(2) == 0 {
            rng.pick(&MONTHS)
        } else {
            rng.pick(&names_months)
        };
        let expr = format!(
            "{} {} {} {month} {dow}",
            rng.pick(&MINUTES),
            rng.pick(&HOURS),
            rng.pick(&DOMS)
        );
        let zone = rng.pick(&ZONES);
        // 1970 to 2100.
        let after = rng.below(4_102_444_800_000) as i64;
        let n = 1 + rng.below(20) as usize;
        match next_fires(&expr, zone, after, n) {
            Ok(got) => {
                assert_eq!(got.len(), n, "case {case}: {expr}");
                assert!(got[0] > after, "case {case}: {expr}");
                assert!(got.windows(2).all(|w| w[0] < w[1]), "case {case}: {expr}");
            }
            Err(e) => assert_eq!(e.reason(), "never_fires", "case {case}: {expr}: {e}"),
        }
    }
}

#[test]
fn property_random_text_never_panics_and_entry_points_agree() {
    let digits: Vec<char> = "0123456789*,-/12".chars().collect();
    let noise: Vec<char> = "0123456789 */,-LW#?@jfmasondtuewhriy\t".chars().collect();
    let mut rng = Lcg(7);
    let mut accepted = 0;
    for _ in 0..20_000 {
        // Mostly five short fields of cron characters, sometimes free noise.
        let (pool, fields) = if rng.below(4) == 0 {
            (&noise, 1)
        } else {
            (&digits, 4 + rng.below(3) as usize)
        };
        let text: Vec<String> = (0..fields)
            .map(|_| {
                if fields > 1 && rng.below(4) != 0 {
                    return rng
                        .pick(&["*", "1", "*/2", "1-5", "0,3", "2/3", "7", "12"])
                        .to_string();
                }
                let len = 1 + rng.below(if fields == 1 { 24 } else { 4 }) as usize;
                (0..len)
                    .map(|_| pool[rng.below(pool.len() as u64) as usize])
                    .collect()
            })
            .collect();
        let text = text.join(" ");
        match validate(&text) {
            Ok(normalized) => {
                accepted += 1;
                assert_eq!(validate(&normalized).as_deref(), Ok(normalized.as_str()));
                let described = describe(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                assert_well_formed(&text, &described);
                let got = next_fires(&text, "Europe/Berlin", 1_767_225_600_000, 5)
                    .unwrap_or_else(|e| panic!("{text:?}: {e}"));
                assert_eq!(got.len(), 5);
            }
            Err(e) => {
                assert_eq!(describe(&text), Err(e.clone()));
                let msg = e.to_string();
                assert!(!msg.is_empty() && !msg.contains('\n'), "{text:?}: {msg:?}");
            }
        }
    }
    assert!(
        accepted > 50,
        "only {accepted} random expressions were valid"
    );
}
