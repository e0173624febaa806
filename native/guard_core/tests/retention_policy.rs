//! Golden cases and seeded property tests for `guard_core::retention::plan`, retention under a
//! restic-style policy: a year of daily backups, the DST weeks of two zones, a month with gaps;
//! and, over thousands of generated backup lists, the safety rules (the newest `last` always
//! stay, pins never go, unverified backups never push out verified ones, at least one verified
//! backup stays), idempotence, keep-last equal to the keep-N rule of `retention::decide`, lazy
//! reading that never deletes what full knowledge keeps, and every reason checked against an
//! independent set-based model of restic's rules.

mod common;

use std::collections::HashSet;

use chrono::{
    DateTime, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike,
};
use chrono_tz::Tz;
use common::Rng;
use guard_core::retention::{
    decide, plan, Calendar, Candidate, Entry, Fate, Made, Plan, Planner, Policy, Verdict, Within,
};

fn tz(name: &str) -> Tz {
    name.parse().expect("test zone")
}

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("bad test time {rfc3339}: {e}"))
        .timestamp_millis()
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("test date")
}

fn good(made: Made) -> Entry {
    Entry {
        made,
        verdict: Verdict::Good,
        pinned: false,
        protected: false,
    }
}

fn at(rfc3339: &str) -> Entry {
    good(Made::At(ms(rfc3339)))
}

fn policy(text: &str) -> Policy {
    Policy::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn labels(plan: &Plan) -> Vec<String> {
    plan.fates.iter().map(Fate::to_string).collect()
}

// ------------------------------------------------------------------------- golden cases

/// One verified backup a day at `hour`:00, `first` to `last` inclusive, made as `made` says.
fn daily_backups(
    first: &str,
    last: &str,
    hour: u32,
    made: impl Fn(NaiveDateTime) -> Made,
) -> Vec<(NaiveDate, Entry)> {
    let (first, last) = (date(first), date(last));
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| {
            let wall = d.and_hms_opt(hour, 0, 0).expect("valid hour");
            (d, good(made(wall)))
        })
        .collect()
}

/// The kept backups of a daily series as (date, reasons); every other one must be `delete`.
fn kept_by_date(series: &[(NaiveDate, Entry)], plan: &Plan) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    for (i, (day, _)) in series.iter().enumerate().rev() {
        match &plan.fates[i] {
            Fate::Keep(_) => kept.push((day.to_string(), plan.fates[i].to_string())),
            Fate::Delete(_) => assert_eq!(plan.fates[i].to_string(), "delete", "{day}"),
        }
    }
    kept
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A year of daily backups under `daily=7 weekly=4 monthly=12`: the last 7 days, the newest of
/// the 4 newest ISO weeks, the newest of the 12 newest months (20 backups), the rest deleted.
const YEAR_KEPT: &[(&str, &str)] = &[
    (
        "2026-11-30",
        "daily 2026-11-30, weekly 2026-W49, monthly 2026-11",
    ),
    ("2026-11-29", "daily 2026-11-29, weekly 2026-W48"),
    ("2026-11-28", "daily 2026-11-28"),
    ("2026-11-27", "daily 2026-11-27"),
    ("2026-11-26", "daily 2026-11-26"),
    ("2026-11-25", "daily 2026-11-25"),
    ("2026-11-24", "daily 2026-11-24"),
    ("2026-11-22", "weekly 2026-W47"),
    ("2026-11-15", "weekly 2026-W46"),
    ("2026-10-31", "monthly 2026-10"),
    ("2026-09-30", "monthly 2026-09"),
    ("2026-08-31", "monthly 2026-08"),
    ("2026-07-31", "monthly 2026-07"),
    ("2026-06-30", "monthly 2026-06"),
    ("2026-05-31", "monthly 2026-05"),
    ("2026-04-30", "monthly 2026-04"),
    ("2026-03-31", "monthly 2026-03"),
    ("2026-02-28", "monthly 2026-02"),
    ("2026-01-31", "monthly 2026-01"),
    ("2025-12-31", "monthly 2025-12"),
];

#[test]
fn a_year_of_daily_backups_named_at_two_in_the_morning_in_berlin() {
    // 02:00 does not exist on 2026-03-29 and comes twice on 2026-10-25: still one backup a day.
    let series = daily_backups("2025-12-01", "2026-11-30", 2, Made::Named);
    let entries: Vec<Entry> = series.iter().map(|(_, e)| *e).collect();
    let cal = Calendar::new(tz("Europe/Berlin"));
    let decided = plan(&policy("daily=7 weekly=4 monthly=12"), &cal, &entries);
    assert_eq!(kept_by_date(&series, &decided), pairs(YEAR_KEPT));
    assert_eq!(decided.kept().len(), 20);
    assert!(decided.is_final());
}

#[test]
fn a_year_of_daily_backups_recorded_at_noon_in_new_york() {
    let zone = tz("America/New_York");
    let series = daily_backups("2025-12-01", "2026-11-30", 12, |wall| {
        Made::At(zone.from_local_datetime(&wall).unwrap().timestamp_millis())
    });
    let entries: Vec<Entry> = series.iter().map(|(_, e)| *e).collect();
    let decided = plan(
        &policy("daily=7 weekly=4 monthly=12"),
        &Calendar::new(zone),
        &entries,
    );
    assert_eq!(kept_by_date(&series, &decided), pairs(YEAR_KEPT));
}

#[test]
fn berlin_fall_back_the_repeated_hour_is_two_hours() {
    // Every 30 minutes from 00:00 CEST to 04:30 CET on 2026-10-25: 02:00-03:00 comes twice.
    let entries: Vec<Entry> = [
        "2026-10-25T00:00:00+02:00",
        "2026-10-25T00:30:00+02:00",
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:30:00+01:00",
        "2026-10-25T04:00:00+01:00",
        "2026-10-25T04:30:00+01:00",
    ]
    .iter()
    .map(|t| at(t))
    .collect();
    let cal = Calendar::new(tz("Europe/Berlin"));
    let decided = plan(&policy("hourly=5"), &cal, &entries);
    assert_eq!(
        labels(&decided),
        [
            "delete",
            "delete",
            "delete",
            "hourly 2026-10-25 01:00",
            "delete",
            "hourly 2026-10-25 02:00+02:00",
            "delete",
            "hourly 2026-10-25 02:00+01:00",
            "delete",
            "hourly 2026-10-25 03:00",
            "delete",
            "hourly 2026-10-25 04:00",
        ]
    );
    // The same backups known only by their export names (wall times): a name in the repeated
    // hour stands for its later pass, so both passes' names fall into the second one.
    let named: Vec<Entry> = [
        "2026-10-25 01:30:00",
        "2026-10-25 02:10:00",
        "2026-10-25 02:40:00",
        "2026-10-25 03:30:00",
    ]
    .iter()
    .map(|w| {
        good(Made::Named(
            NaiveDateTime::parse_from_str(w, "%Y-%m-%d %H:%M:%S").unwrap(),
        ))
    })
    .collect();
    let decided = plan(&policy("hourly=3"), &cal, &named);
    assert_eq!(
        labels(&decided),
        [
            "hourly 2026-10-25 01:00",
            "delete",
            "hourly 2026-10-25 02:00+01:00",
            "hourly 2026-10-25 03:00",
        ]
    );
}

#[test]
fn berlin_fall_back_week_days_and_weeks_are_local() {
    // 00:30 every day, 2026-10-19 (Monday) to 2026-11-01 (Sunday). From 2026-10-26 on, 00:30 CET
    // is 23:30 UTC of the day before: in UTC every day would be off by one.
    let zone = tz("Europe/Berlin");
    let series = daily_backups("2026-10-19", "2026-11-01", 0, |wall| {
        let wall = wall.with_minute(30).unwrap();
        Made::At(zone.from_local_datetime(&wall).unwrap().timestamp_millis())
    });
    let entries: Vec<Entry> = series.iter().map(|(_, e)| *e).collect();
    let decided = plan(&policy("daily=3 weekly=3"), &Calendar::new(zone), &entries);
    assert_eq!(
        kept_by_date(&series, &decided),
        pairs(&[
            ("2026-11-01", "daily 2026-11-01, weekly 2026-W44"),
            ("2026-10-31", "daily 2026-10-31"),
            ("2026-10-30", "daily 2026-10-30"),
            ("2026-10-25", "weekly 2026-W43"),
            // Two weeks for weekly=3: the oldest backup is kept too (restic's "oldest").
            ("2026-10-19", "oldest weekly 2026-W43"),
        ])
    );
    // Read in UTC instead, the days move: proof the zone is what counts.
    let decided = plan(&policy("daily=1"), &Calendar::new(tz("UTC")), &entries);
    assert_eq!(decided.fates[13].to_string(), "daily 2026-10-31");
}

#[test]
fn new_york_spring_forward_the_skipped_hour_is_no_period() {
    // Hourly at :15 on 2026-03-08: 02:15 does not exist, 03:15 EDT follows 01:15 EST.
    let entries: Vec<Entry> = [
        "2026-03-08T00:15:00-05:00",
        "2026-03-08T01:15:00-05:00",
        "2026-03-08T03:15:00-04:00",
        "2026-03-08T04:15:00-04:00",
    ]
    .iter()
    .map(|t| at(t))
    .collect();
    let cal = Calendar::new(tz("America/New_York"));
    let decided = plan(&policy("hourly=3"), &cal, &entries);
    assert_eq!(
        labels(&decided),
        [
            "delete",
            "hourly 2026-03-08 01:00",
            "hourly 2026-03-08 03:00",
            "hourly 2026-03-08 04:00",
        ]
    );
}

#[test]
fn new_york_spring_forward_a_day_is_23_hours_and_24h_is_not_a_day() {
    let entries = [
        at("2026-03-08T12:00:00-04:00"),
        // 24 hours and 30 minutes before the newest: within 1d (23 h back), not within 24h.
        at("2026-03-07T11:30:00-05:00"),
        // 24 hours and 30 minutes before: not within either.
        at("2026-03-07T10:30:00-05:00"),
        // Just after midnight local: the 8th in New York, already the 8th in UTC too; just
        // before: the 7th locally, the 8th in UTC.
        at("2026-03-07T23:45:00-05:00"),
    ];
    let cal = Calendar::new(tz("America/New_York"));
    let decided = plan(&policy("within=1d"), &cal, &entries);
    assert_eq!(labels(&decided)[..3], ["within 1d", "delete", "delete"]);
    let decided = plan(&policy("within=24h"), &cal, &entries);
    assert_eq!(
        labels(&decided)[..3],
        ["within 24h", "within 24h", "delete"]
    );
    let decided = plan(&policy("daily=2"), &cal, &entries);
    assert_eq!(
        labels(&decided),
        ["daily 2026-03-08", "delete", "delete", "daily 2026-03-07"]
    );
}

#[test]
fn a_month_with_gaps_reaches_back_over_the_days_without_a_backup() {
    // June 2026 at 12:00 UTC on the 1st-5th, 12th, 20th, 28th-30th only; two on the 29th.
    let mut entries: Vec<Entry> = [1, 2, 3, 4, 5, 12, 20, 28, 29, 30]
        .iter()
        .map(|d| at(&format!("2026-06-{d:02}T12:00:00Z")))
        .collect();
    entries.push(at("2026-06-29T18:00:00Z"));
    let cal = Calendar::new(tz("UTC"));
    let decided = plan(&policy("daily=7 weekly=2 monthly=2"), &cal, &entries);
    assert_eq!(
        labels(&decided),
        [
            // Monthly has a month left: the oldest backup stays as well.
            "oldest monthly 2026-06",
            "delete",
            "delete",
            "daily 2026-06-04",
            "daily 2026-06-05",
            "daily 2026-06-12",
            "daily 2026-06-20",
            "daily 2026-06-28, weekly 2026-W26",
            "delete",
            "daily 2026-06-30, weekly 2026-W27, monthly 2026-06",
            "daily 2026-06-29",
        ]
    );
}

#[test]
fn pins_and_unverified_backups_say_why_they_stay() {
    let mut entries = vec![
        at("2026-06-05T12:00:00Z"),
        at("2026-06-04T12:00:00Z"),
        at("2026-06-03T12:00:00Z"),
        at("2026-06-02T12:00:00Z"),
        at("2026-06-01T12:00:00Z"),
    ];
    entries[1].verdict = Verdict::Bad;
    entries[3].pinned = true;
    entries[4].verdict = Verdict::Bad;
    entries[4].pinned = true;
    let decided = plan(&policy("last=2"), &Calendar::new(tz("UTC")), &entries);
    assert_eq!(
        labels(&decided),
        [
            "last #1",
            "unverified: kept, counts for nothing",
            "last #2",
            "pinned",
            "pinned",
        ]
    );
}

// ------------------------------------------------------------------------- properties

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Apia",
];

/// A generated case: the calendar, the policy, the backups, and whether unread backups verify.
#[derive(Debug, Clone)]
struct Case {
    zone: Tz,
    names_zone: Tz,
    now_ms: Option<i64>,
    policy: Policy,
    entries: Vec<Entry>,
    /// What reading each backup would find (equal to its verdict when that is known).
    truth: Vec<Verdict>,
}

impl Case {
    fn calendar(&self) -> Calendar {
        let cal = Calendar::new(self.zone).names_in(self.names_zone);
        match self.now_ms {
            Some(now) => cal.now(now),
            None => cal,
        }
    }

    fn plan(&self) -> Plan {
        plan(&self.policy, &self.calendar(), &self.entries)
    }

    /// The same case with every verdict known.
    fn known(&self) -> Case {
        let mut case = self.clone();
        for (entry, truth) in case.entries.iter_mut().zip(&self.truth) {
            entry.verdict = *truth;
        }
        case
    }
}

fn gen_policy(rng: &mut Rng) -> Policy {
    loop {
        let count = |rng: &mut Rng| {
            if rng.chance(40) {
                1 + rng.below(6) as u32
            } else {
                0
            }
        };
        let mut p = Policy {
            last: count(rng),
            hourly: count(rng),
            daily: count(rng),
            weekly: count(rng),
            monthly: count(rng),
            yearly: count(rng),
            within: Within::default(),
        };
        if rng.chance(30) {
            p.within = Within {
                years: if rng.chance(10) { 1 } else { 0 },
                months: if rng.chance(20) {
                    1 + rng.below(3) as u32
                } else {
                    0
                },
                days: if rng.chance(50) {
                    rng.below(10) as u32
                } else {
                    0
                },
                hours: if rng.chance(40) {
                    rng.below(48) as u32
                } else {
                    0
                },
            };
        }
        if !p.is_empty() {
            return p;
        }
    }
}

/// Instants near a DST change of some zone, to start series from: the fall-backs of Berlin
/// (2026-10-25 01:00Z), New York (2026-11-01 06:00Z) and Lord Howe (30 minutes, 2026-04-04
/// 15:00Z), the spring-forwards of New York and Berlin, a new year, Samoa's skipped day.
const STARTS: &[(&str, &str)] = &[
    ("2026-10-25T01:00:00Z", "Europe/Berlin"),
    ("2026-11-01T06:00:00Z", "America/New_York"),
    ("2026-04-04T15:00:00Z", "Australia/Lord_Howe"),
    ("2026-03-08T07:00:00Z", "America/New_York"),
    ("2026-03-29T01:00:00Z", "Europe/Berlin"),
    ("2025-12-31T23:00:00Z", "Asia/Kathmandu"),
    ("2011-12-30T10:00:00Z", "Pacific/Apia"),
];

/// Up to 40 instants (Unix ms), ascending, from near a DST change of `start`: mostly minutes to
/// hours apart, sometimes days or weeks, sometimes equal.
fn gen_instants(rng: &mut Rng, start: &str) -> Vec<i64> {
    let count = rng.below(40) as usize;
    // From up to 6 hours before a DST change, or up to two days, or (one case in five) up to
    // 40 days before.
    let back_ms = match rng.below(10) {
        0..=3 => rng.below(6 * 60) as i64 * 60_000,
        4..=7 => rng.below(48 * 60) as i64 * 60_000,
        _ => rng.below(40) as i64 * 86_400_000,
    };
    let mut instant = ms(start) - back_ms;
    // One case in four is dense (a backup every few minutes), to fill single hours.
    let dense = rng.chance(25);
    (0..count)
        .map(|_| {
            let step_min: i64 = match rng.below(10) {
                _ if dense => rng.below(30) as i64,
                0 => 0,
                1..=5 => 1 + rng.below(90) as i64,
                6 | 7 => 60 + rng.below(48 * 60) as i64,
                8 => rng.below(10 * 24 * 60) as i64,
                _ => rng.below(60 * 24 * 60) as i64,
            };
            instant += step_min * 60_000 + rng.below(1000) as i64;
            instant
        })
        .collect()
}

/// One backup made at `at_ms`, known by its run start or by its name's wall time in
/// `names_zone`, with a verdict drawn from the weights in `verdicts`; and what reading it would
/// find (three unread backups in four verify).
fn gen_entry(
    rng: &mut Rng,
    at_ms: i64,
    names_zone: Tz,
    verdicts: &[(Verdict, u64)],
) -> (Entry, Verdict) {
    let made = if rng.chance(50) {
        Made::At(at_ms)
    } else {
        // The wall time a clock in the names' zone showed at that instant.
        let wall = names_zone
            .timestamp_millis_opt(at_ms)
            .unwrap()
            .naive_local();
        Made::Named(wall)
    };
    let total: u64 = verdicts.iter().map(|(_, w)| w).sum();
    let mut roll = rng.below(total);
    let mut verdict = verdicts[0].0;
    for (v, w) in verdicts {
        if roll < *w {
            verdict = *v;
            break;
        }
        roll -= w;
    }
    let real = match verdict {
        Verdict::Unknown if rng.chance(75) => Verdict::Good,
        Verdict::Unknown => Verdict::Bad,
        v => v,
    };
    let entry = Entry {
        made,
        verdict,
        pinned: rng.chance(8),
        protected: rng.chance(4),
    };
    (entry, real)
}

fn gen_case(rng: &mut Rng, verdicts: &[(Verdict, u64)]) -> Case {
    let (start, start_zone) = rng.pick(STARTS);
    // Mostly the zone whose DST change the series starts at.
    let zone = tz(if rng.chance(70) {
        start_zone
    } else {
        rng.pick(ZONES)
    });
    let names_zone = if rng.chance(70) {
        zone
    } else {
        tz(rng.pick(ZONES))
    };
    let instants = gen_instants(rng, start);
    let newest = instants.last().copied().unwrap_or_else(|| ms(start));
    let (mut entries, mut truth): (Vec<Entry>, Vec<Verdict>) = instants
        .into_iter()
        .map(|at_ms| gen_entry(rng, at_ms, names_zone, verdicts))
        .unzip();
    // Shuffle: `plan` takes the entries in any order.
    for i in (1..entries.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        entries.swap(i, j);
        truth.swap(i, j);
    }
    let now_ms = rng
        .chance(50)
        .then(|| newest - rng.below(30) as i64 * 86_400_000 + 3_600_000);
    Case {
        zone,
        names_zone,
        now_ms,
        policy: gen_policy(rng),
        entries,
        truth,
    }
}

const KNOWN: &[(Verdict, u64)] = &[(Verdict::Good, 75), (Verdict::Bad, 25)];
const SOME_UNREAD: &[(Verdict, u64)] = &[
    (Verdict::Good, 55),
    (Verdict::Bad, 15),
    (Verdict::Unknown, 30),
];

const CASES: usize = 3000;

// ---- an independent model of restic's rules, by sets of periods, for the oracle

/// The instant and the wall time in `zone` of a backup, computed from scratch with chrono.
fn place(case: &Case, made: Made) -> (i64, NaiveDateTime, i32) {
    let at_ms = match made {
        Made::At(ms) => ms,
        Made::Named(wall) => match case.names_zone.from_local_datetime(&wall) {
            LocalResult::Single(t) => t.timestamp_millis(),
            LocalResult::Ambiguous(a, b) => a.timestamp_millis().max(b.timestamp_millis()),
            LocalResult::None => panic!("generated names are never in a gap"),
        },
    };
    let local = case.zone.timestamp_millis_opt(at_ms).unwrap();
    let wall = match made {
        Made::Named(wall) if case.names_zone == case.zone => wall,
        _ => local.naive_local(),
    };
    let offset = case
        .zone
        .offset_from_utc_datetime(&local.naive_utc())
        .fix()
        .local_minus_utc();
    (at_ms, wall, offset)
}

/// The name of the period of `rule` a wall time is in, as the reasons write it.
fn period_name(case: &Case, rule: &str, wall: NaiveDateTime, offset: i32) -> String {
    match rule {
        "hourly" => {
            let hour = wall.date().and_hms_opt(wall.hour(), 0, 0).unwrap();
            let repeated = (0..60).any(|m| {
                matches!(
                    case.zone
                        .from_local_datetime(&(hour + Duration::minutes(m))),
                    LocalResult::Ambiguous(..)
                )
            });
            let mut s = wall.format("%Y-%m-%d %H:00").to_string();
            if repeated {
                let sign = if offset < 0 { '-' } else { '+' };
                let a = offset.unsigned_abs();
                s += &format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60);
            }
            s
        }
        "daily" => wall.format("%Y-%m-%d").to_string(),
        "weekly" => wall.format("%G-W%V").to_string(),
        "monthly" => wall.format("%Y-%m").to_string(),
        _ => wall.format("%Y").to_string(),
    }
}

/// The period as a key: its name, and for an hour also the UTC offset (the two passes of a
/// repeated hour are two hours).
fn period_key(case: &Case, rule: &str, wall: NaiveDateTime, offset: i32) -> String {
    if rule == "hourly" {
        format!("{}|{offset}", wall.format("%Y-%m-%d %H"))
    } else {
        period_name(case, rule, wall, offset)
    }
}

/// The labels restic's rules give each entry, by sets: for a period rule with count N, the
/// newest verified backup of each of the N newest periods that have one, plus the oldest
/// verified backup when fewer than N periods have one; the reach is where the last pick any
/// rule needed lies; unverified backups inside it stay.
fn oracle(case: &Case) -> Vec<String> {
    let mut model = Model::new(case);
    let p = case.policy;
    model.last(p.last);
    for (rule, count) in [
        ("hourly", p.hourly),
        ("daily", p.daily),
        ("weekly", p.weekly),
        ("monthly", p.monthly),
        ("yearly", p.yearly),
    ] {
        model.period(rule, count);
    }
    model.within();
    model.labels()
}

/// The set-based model of restic's rules the oracle builds up, rule by rule.
struct Model<'c> {
    case: &'c Case,
    /// Each entry's instant, wall time and UTC offset in the case's zone.
    placed: Vec<(i64, NaiveDateTime, i32)>,
    /// Entries newest first.
    order: Vec<usize>,
    /// Verified entries newest first.
    goods: Vec<usize>,
    reasons: Vec<Vec<String>>,
    /// The last position any rule needed; `None`: everything.
    reach: Option<usize>,
}

impl<'c> Model<'c> {
    fn new(case: &'c Case) -> Model<'c> {
        let placed: Vec<(i64, NaiveDateTime, i32)> =
            case.entries.iter().map(|e| place(case, e.made)).collect();
        let mut order: Vec<usize> = (0..case.entries.len()).collect();
        order.sort_by(|&a, &b| placed[b].0.cmp(&placed[a].0));
        let goods = order
            .iter()
            .copied()
            .filter(|&i| case.entries[i].verdict == Verdict::Good)
            .collect();
        Model {
            case,
            placed,
            order,
            goods,
            reasons: vec![Vec::new(); case.entries.len()],
            reach: Some(0),
        }
    }

    fn pos_of(&self, i: usize) -> usize {
        self.order.iter().position(|&j| j == i).unwrap()
    }

    /// The rules reach at least to entry `i` (`None`: everything).
    fn reach_to(&mut self, i: Option<usize>) {
        let pos = i.map(|i| self.pos_of(i));
        self.reach = match (self.reach, pos) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }

    fn last(&mut self, count: u32) {
        if count == 0 {
            return;
        }
        let picks: Vec<usize> = self.goods.iter().copied().take(count as usize).collect();
        for (rank, &i) in picks.iter().enumerate() {
            self.reasons[i].push(format!("last #{}", rank + 1));
        }
        self.reach_to(self.goods.get(count as usize - 1).copied());
    }

    fn period(&mut self, rule: &str, count: u32) {
        if count == 0 {
            return;
        }
        let name = |m: &Model, i: usize| {
            let (_, wall, offset) = m.placed[i];
            period_name(m.case, rule, wall, offset)
        };
        let mut seen: Vec<String> = Vec::new();
        let mut picks: Vec<usize> = Vec::new();
        for &i in &self.goods {
            let (_, wall, offset) = self.placed[i];
            let key = period_key(self.case, rule, wall, offset);
            if !seen.contains(&key) {
                seen.push(key);
                picks.push(i);
            }
        }
        for &i in picks.iter().take(count as usize) {
            let label = format!("{rule} {}", name(self, i));
            self.reasons[i].push(label);
        }
        if picks.len() >= count as usize {
            self.reach_to(Some(picks[count as usize - 1]));
            return;
        }
        self.reach_to(None);
        if let Some(&oldest) = self.goods.last() {
            if !picks.contains(&oldest) {
                let label = format!("oldest {rule} {}", name(self, oldest));
                self.reasons[oldest].push(label);
            }
        }
    }

    fn within(&mut self) {
        let within = self.case.policy.within;
        if within.is_zero() {
            return;
        }
        let now = self.case.now_ms;
        let anchor = self
            .goods
            .iter()
            .copied()
            .find(|&i| now.is_none_or(|now| self.placed[i].0 <= now));
        let cutoff = anchor.map(|a| within_cutoff(self.case, self.placed[a].0));
        for &i in &self.goods {
            if cutoff.is_none_or(|cutoff| self.placed[i].0 > cutoff) {
                self.reasons[i].push(format!("within {within}"));
            }
        }
        match cutoff {
            None => self.reach_to(None),
            Some(cutoff) => {
                let inside = self.order.iter().rposition(|&i| self.placed[i].0 > cutoff);
                self.reach_to(inside.map(|pos| self.order[pos]));
            }
        }
    }

    /// Each entry's label: its reasons in the documented order (last, hourly .. yearly, within,
    /// pinned, protected, unverified), or its deletion.
    fn labels(mut self) -> Vec<String> {
        let rank = |r: &str| {
            [
                "last", "hourly", "daily", "weekly", "monthly", "yearly", "within",
            ]
            .iter()
            .position(|k| r.starts_with(k) || r.starts_with(&format!("oldest {k}")))
            .unwrap_or(7)
        };
        (0..self.case.entries.len())
            .map(|i| {
                let e = &self.case.entries[i];
                let mut why = std::mem::take(&mut self.reasons[i]);
                why.sort_by_key(|r| rank(r));
                if e.pinned {
                    why.push("pinned".into());
                }
                if e.protected {
                    why.push("protected".into());
                }
                let inside = self.reach.is_none_or(|reach| self.pos_of(i) <= reach);
                if e.verdict == Verdict::Bad && inside {
                    why.push("unverified: kept, counts for nothing".into());
                }
                match (why.is_empty(), e.verdict) {
                    (false, _) => why.join(", "),
                    (true, Verdict::Good) => "delete".to_string(),
                    (true, _) => "delete (unverified, older than what the rules keep)".to_string(),
                }
            })
            .collect()
    }
}

/// restic's `within` cutoff, computed with chrono from scratch: calendar years, months and days
/// back from the newest backup's wall time (clamped to the month's end), the earlier instant of
/// a repeated time or the first valid minute after a skipped one, then the hours as elapsed
/// time.
fn within_cutoff(case: &Case, newest_ms: i64) -> i64 {
    let w = case.policy.within;
    let wall = case
        .zone
        .timestamp_millis_opt(newest_ms)
        .unwrap()
        .naive_local();
    let back = wall
        .checked_sub_months(Months::new(w.years * 12 + w.months))
        .unwrap()
        - Duration::days(i64::from(w.days));
    let mut probe = back;
    let placed = loop {
        match case.zone.from_local_datetime(&probe) {
            LocalResult::Single(t) => break t.timestamp_millis(),
            LocalResult::Ambiguous(a, b) => break a.timestamp_millis().min(b.timestamp_millis()),
            LocalResult::None => {
                probe = probe.with_second(0).unwrap().with_nanosecond(0).unwrap()
                    + Duration::minutes(1);
            }
        }
    };
    placed - i64::from(w.hours) * 3_600_000
}

#[test]
fn property_every_reason_matches_a_set_based_model_of_restics_rules() {
    let mut rng = Rng(0x7265_7374_6963);
    for case_no in 0..CASES {
        let case = gen_case(&mut rng, KNOWN);
        let plan = case.plan();
        assert_eq!(labels(&plan), oracle(&case), "case {case_no}: {case:?}");
    }
}

#[test]
fn property_the_newest_last_verified_backups_always_stay() {
    let mut rng = Rng(0x6c61_7374);
    for case_no in 0..CASES {
        let mut case = gen_case(&mut rng, SOME_UNREAD);
        if case.policy.last == 0 {
            case.policy.last = 1 + rng.below(5) as u32;
        }
        let plan = case.plan();
        let newest_good: Vec<usize> = plan
            .order
            .iter()
            .copied()
            .filter(|&i| case.entries[i].verdict == Verdict::Good)
            .take(case.policy.last as usize)
            .collect();
        for i in newest_good {
            assert!(
                plan.fates[i].is_kept(),
                "case {case_no}: one of the newest {} went: {case:?}",
                case.policy.last
            );
        }
        // And the order is by the instant each backup was made.
        let instants: Vec<i64> = plan
            .order
            .iter()
            .map(|&i| place(&case, case.entries[i].made).0)
            .collect();
        assert!(
            instants.windows(2).all(|w| w[0] >= w[1]),
            "case {case_no}: {case:?}"
        );
    }
}

#[test]
fn property_adding_a_backup_never_removes_a_pinned_one() {
    let mut rng = Rng(0x7069_6e73);
    for case_no in 0..CASES {
        let case = gen_case(&mut rng, SOME_UNREAD);
        let mut more = case.clone();
        let extra = gen_case(&mut rng, SOME_UNREAD);
        for (e, t) in extra.entries.iter().zip(&extra.truth).take(3) {
            more.entries.push(*e);
            more.truth.push(*t);
        }
        for c in [&case, &more] {
            let plan = c.plan();
            for (i, e) in c.entries.iter().enumerate() {
                if e.pinned || e.protected {
                    assert!(plan.fates[i].is_kept(), "case {case_no}: {c:?}");
                }
            }
        }
    }
}

#[test]
fn property_pruning_the_kept_set_again_keeps_it_all() {
    let mut rng = Rng(0x6964_656d);
    for case_no in 0..CASES {
        let case = gen_case(&mut rng, KNOWN);
        let plan = case.plan();
        let mut kept = case.clone();
        kept.entries = plan.kept().iter().map(|&i| case.entries[i]).collect();
        kept.truth = plan.kept().iter().map(|&i| case.truth[i]).collect();
        let again = kept.plan();
        assert!(
            again.deleted().is_empty(),
            "case {case_no}: the second prune deleted {:?} of {kept:?}",
            again.deleted()
        );
        // And for the same reasons.
        let first: Vec<String> = plan
            .kept()
            .iter()
            .map(|&i| plan.fates[i].to_string())
            .collect();
        assert_eq!(labels(&again), first, "case {case_no}: {kept:?}");
    }
}

#[test]
fn property_unverified_backups_never_push_out_verified_ones() {
    let mut rng = Rng(0x0062_6164);
    for case_no in 0..CASES {
        let case = gen_case(&mut rng, &[(Verdict::Good, 1)]);
        let plan = case.plan();
        if !case.entries.is_empty() {
            assert!(
                !plan.kept().is_empty(),
                "case {case_no}: no verified backup stayed: {case:?}"
            );
        }
        let mut worse = case.clone();
        let bad = gen_case(&mut rng, &[(Verdict::Bad, 3), (Verdict::Unknown, 1)]);
        worse.entries.extend(bad.entries.iter().take(6));
        worse.truth.extend(bad.truth.iter().take(6));
        let worse_plan = worse.plan();
        for i in 0..case.entries.len() {
            assert_eq!(
                worse_plan.fates[i], plan.fates[i],
                "case {case_no}: entry {i}: {worse:?}"
            );
        }
    }
}

#[test]
fn property_last_alone_is_the_keep_n_rule() {
    let mut rng = Rng(0x6b65_6570);
    for case_no in 0..CASES {
        let count = rng.below(15) as usize;
        let keep = 1 + rng.below(6) as usize;
        // Newest first, one minute apart.
        let candidates: Vec<Candidate> = (0..count)
            .map(|_| Candidate {
                verdict: rng.pick(&[Verdict::Good, Verdict::Good, Verdict::Bad, Verdict::Unknown]),
                protected: rng.chance(15),
            })
            .collect();
        let entries: Vec<Entry> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| Entry {
                made: Made::At(1_780_000_000_000 - i as i64 * 60_000),
                verdict: c.verdict,
                pinned: false,
                protected: c.protected,
            })
            .collect();
        let old = decide(&candidates, keep);
        let new = plan(
            &Policy::keep_last(keep as u32),
            &Calendar::new(tz("Europe/Berlin")),
            &entries,
        );
        let what = format!("case {case_no}: keep {keep}, {candidates:?}");
        assert_eq!(new.deleted(), old.delete, "{what}");
        assert_eq!(new.unverified_kept(), old.skipped, "{what}");
        assert_eq!(new.to_read, old.to_read, "{what}");
        assert_eq!(new.needed, old.needed, "{what}");
    }
}

#[test]
fn property_reading_lazily_never_deletes_what_full_knowledge_keeps() {
    let mut rng = Rng(0x6c61_7a79);
    for case_no in 0..CASES {
        let mut case = gen_case(&mut rng, SOME_UNREAD);
        let full = case.known().plan();
        let first = case.plan();
        let mut planner = Planner::new(case.policy, case.calendar(), case.entries.clone());
        let mut reads = 0;
        let mut read: HashSet<usize> = HashSet::new();
        let mut all_good = true;
        loop {
            let plan = planner.plan();
            assert_eq!(
                plan,
                case.plan(),
                "case {case_no}: the planner and plan differ"
            );
            // Whatever is deleted now would be deleted with everything known.
            for i in plan.deleted() {
                assert!(
                    !full.fates[i].is_kept(),
                    "case {case_no}: after {reads} reads entry {i} is deleted, full knowledge keeps it as {}: {case:?}",
                    full.fates[i]
                );
            }
            let Some(&next) = plan.to_read.first() else {
                // Final: kept exactly what full knowledge keeps, for the same reasons.
                for i in 0..case.entries.len() {
                    match (&plan.fates[i], &full.fates[i]) {
                        (Fate::Keep(a), Fate::Keep(b)) => {
                            assert_eq!(a, b, "case {case_no}: entry {i}: {case:?}")
                        }
                        (Fate::Delete(_), Fate::Delete(_)) => {}
                        (a, b) => panic!("case {case_no}: entry {i}: {a} vs {b}: {case:?}"),
                    }
                }
                break;
            };
            assert!(read.insert(next), "case {case_no}: {next} read twice");
            assert_eq!(case.entries[next].verdict, Verdict::Unknown);
            case.entries[next].verdict = case.truth[next];
            planner.set_verdict(next, case.truth[next]);
            all_good &= case.truth[next] == Verdict::Good;
            reads += 1;
        }
        // `needed` is a lower bound, reached when everything read verified.
        assert!(reads >= first.needed, "case {case_no}: {case:?}");
        if all_good {
            assert_eq!(reads, first.needed, "case {case_no}: {case:?}");
        }
    }
}

#[test]
fn property_generated_cases_cover_what_they_should() {
    // The generator must produce the situations the properties are about.
    let mut rng = Rng(0x0063_7667);
    let (mut repeated_hours, mut oldest, mut within, mut unverified_kept, mut pinned) =
        (0, 0, 0, 0, 0);
    for _ in 0..CASES {
        let case = gen_case(&mut rng, KNOWN);
        let all = labels(&case.plan()).join(";");
        repeated_hours += usize::from(all.contains(":00+") || all.contains(":00-"));
        oldest += usize::from(all.contains("oldest "));
        within += usize::from(all.contains("within "));
        unverified_kept += usize::from(all.contains("unverified: kept"));
        pinned += usize::from(all.contains("pinned"));
    }
    for (what, n) in [
        ("repeated hours", repeated_hours),
        ("oldest picks", oldest),
        ("within", within),
        ("unverified kept", unverified_kept),
        ("pinned", pinned),
    ] {
        println!("{what}: {n} of {CASES} cases");
        assert!(n >= 5, "only {n} cases with {what}");
    }
}
