//! Plain-English descriptions written from the parsed bit sets (not from croner, whose wording
//! is not meant for end users).

use super::parse::{join_words, mask_through, Spec, MAX_DAYS, MONTHS_EN};

const WEEKDAYS_EN: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Most clock times listed one by one ("At 09:00 and 17:00") before switching to phrases.
const MAX_LISTED_TIMES: usize = 6;

/// The values whose bits are set, ascending, within `lo..=hi`.
fn values(bits: u64, lo: u32, hi: u32) -> Vec<u32> {
    (lo..=hi).filter(|v| bits & (1 << v) != 0).collect()
}

/// `Some(n)` when `vals` is `lo, lo+n, lo+2n, ...` filling the whole cycle of `period` values
/// evenly (n > 1 divides period), i.e. "every n".
fn even_step(vals: &[u32], lo: u32, period: u32) -> Option<u32> {
    if vals.len() < 2 || vals[0] != lo {
        return None;
    }
    let n = vals[1] - vals[0];
    let regular = vals.windows(2).all(|w| w[1] - w[0] == n);
    (n > 1 && period.is_multiple_of(n) && regular && vals.len() as u32 == period / n).then_some(n)
}

/// Ascending values grouped into runs: runs of 3 or more read "a through b".
fn runs_text(vals: &[u32], name: &dyn Fn(u32) -> String, last: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < vals.len() {
        let mut j = i;
        while j + 1 < vals.len() && vals[j + 1] == vals[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{} through {}", name(vals[i]), name(vals[j])));
        } else {
            parts.extend(vals[i..=j].iter().map(|v| name(*v)));
        }
        i = j + 1;
    }
    join_words(&parts, last)
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn plural(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn hhmm(h: u32, m: u32) -> String {
    format!("{h:02}:{m:02}")
}

fn number(v: u32) -> String {
    v.to_string()
}

/// The clock part, and whether it names specific times of day (then "every day" is added when
/// no day is restricted, so "At 02:30, every day" does not read as a one-off).
fn time_part(spec: &Spec) -> (String, bool) {
    let mins = values(spec.minutes, 0, 59);
    let hours = values(u64::from(spec.hours), 0, 23);
    let hour_step = even_step(&hours, 0, 24);
    if let Some(stepped) = stepped_minutes(&mins, &hours, hour_step) {
        return (stepped, false);
    }
    let listable = mins.len() * hours.len() <= MAX_LISTED_TIMES;
    if hours.len() < 24 && listable && (hours.len() > 1 || mins.len() <= 2) {
        let times: Vec<String> = hours
            .iter()
            .flat_map(|h| mins.iter().map(move |m| hhmm(*h, *m)))
            .collect();
        return (format!("At {}", join_words(&times, "and")), true);
    }
    if let [m] = mins[..] {
        if let Some(part) = one_minute(m, &hours, hour_step) {
            return part;
        }
    }
    let minute_text = if let [m] = mins[..] {
        format!("At {} past the hour", plural(m, "minute", "minutes"))
    } else if is_contiguous(&mins) {
        format!(
            "Every minute from {} through {} minutes past the hour",
            mins[0],
            mins[mins.len() - 1]
        )
    } else {
        format!(
            "At {} minutes past the hour",
            runs_text(&mins, &number, "and")
        )
    };
    (
        format!("{minute_text}{}", hour_phrase(&hours, hour_step)),
        false,
    )
}

/// "Every minute" or "Every n minutes" (an even step through the hour) with the hour phrase,
/// unless there are few enough times, in several hours, to list them one by one.
fn stepped_minutes(mins: &[u32], hours: &[u32], hour_step: Option<u32>) -> Option<String> {
    let lead = if mins.len() == 60 {
        "Every minute".to_string()
    } else {
        format!("Every {} minutes", even_step(mins, 0, 60)?)
    };
    let listed = mins.len() * hours.len() <= MAX_LISTED_TIMES && hours.len() > 1;
    (!listed).then(|| format!("{lead}{}", hour_phrase(hours, hour_step)))
}

/// The clock part of a schedule firing at one minute `m` of its hours, when a phrase says it
/// better than the general form: every hour, every n hours, evenly spaced hours, runs of hours,
/// or a list of at most twice [`MAX_LISTED_TIMES`] times.
fn one_minute(m: u32, hours: &[u32], hour_step: Option<u32>) -> Option<(String, bool)> {
    let past = || format!("At {} past the hour", plural(m, "minute", "minutes"));
    if hours.len() == 24 {
        let text = if m == 0 {
            "Every hour".to_string()
        } else {
            past()
        };
        return Some((text, false));
    }
    if let Some(n) = hour_step {
        let text = if m == 0 {
            format!("Every {n} hours")
        } else {
            format!("{}, every {n} hours", past())
        };
        return Some((text, false));
    }
    if let Some(n) = progression(hours) {
        let (first, last) = (hours[0], hours[hours.len() - 1]);
        let every = if n == 1 {
            "Every hour".to_string()
        } else {
            format!("Every {n} hours")
        };
        let text = format!("{every} from {} to {}", hhmm(first, m), hhmm(last, m));
        return Some((text, false));
    }
    let runs = runs_of(hours);
    if runs.iter().all(|(a, b)| b > a) {
        let spans: Vec<String> = runs
            .iter()
            .map(|(a, b)| format!("from {} to {}", hhmm(*a, m), hhmm(*b, m)))
            .collect();
        return Some((format!("Every hour {}", join_words(&spans, "and")), false));
    }
    if hours.len() <= 2 * MAX_LISTED_TIMES {
        let times: Vec<String> = hours.iter().map(|h| hhmm(*h, m)).collect();
        return Some((format!("At {}", join_words(&times, "and")), true));
    }
    None
}

/// Maximal runs of consecutive values, as (first, last).
fn runs_of(vals: &[u32]) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for v in vals {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == *v => *last = *v,
            _ => runs.push((*v, *v)),
        }
    }
    runs
}

/// `Some(step)` when `vals` (at least 3 of them) are evenly spaced.
fn progression(vals: &[u32]) -> Option<u32> {
    if vals.len() < 3 {
        return None;
    }
    let n = vals[1] - vals[0];
    vals.windows(2).all(|w| w[1] - w[0] == n).then_some(n)
}

fn is_contiguous(vals: &[u32]) -> bool {
    !vals.is_empty() && vals.windows(2).all(|w| w[1] == w[0] + 1)
}

/// ", between 02:00 and 02:59", ", every 2 hours", ", in hours 1, 3 and 5", or "" for every hour.
fn hour_phrase(hours: &[u32], step: Option<u32>) -> String {
    if hours.len() == 24 {
        String::new()
    } else if let Some(n) = step {
        format!(", every {n} hours")
    } else if is_contiguous(hours) {
        format!(
            ", between {} and {}",
            hhmm(hours[0], 0),
            hhmm(hours[hours.len() - 1], 59)
        )
    } else {
        format!(", in hours {}", runs_text(hours, &number, "and"))
    }
}

/// "on day 1 of the month", "on days 1 and 15 of the month", "on every 2nd day of the month".
/// `days` is not empty; `longest` is the most days a chosen month has (a step that runs past
/// it reads as "every nth day").
fn dom_phrase(days: &[u32], longest: u32) -> String {
    if let [d] = days[..] {
        return format!("on day {d} of the month");
    }
    if days.len() >= 3 {
        let n = days[1] - days[0];
        let regular = days.windows(2).all(|w| w[1] - w[0] == n);
        if n > 1 && regular && days[days.len() - 1] + n > longest {
            return if days[0] == 1 {
                format!("on every {} day of the month", ordinal(n))
            } else {
                format!(
                    "on every {} day of the month from day {}",
                    ordinal(n),
                    days[0]
                )
            };
        }
    }
    format!("on days {} of the month", runs_text(days, &number, "and"))
}

/// Weekday names in Monday-first order so that `fri-sun` reads "Friday through Sunday".
fn weekday_list(dow: u8, last: &str) -> String {
    let monday_first: Vec<u32> = (0..7u32)
        .filter(|i| dow & (1 << ((i + 1) % 7)) != 0)
        .collect();
    let name = |i: u32| WEEKDAYS_EN[((i + 1) % 7) as usize].to_string();
    runs_text(&monday_first, &name, last)
}

/// The most days any chosen month can have (29 for February alone).
fn longest_month(spec: &Spec) -> u32 {
    (1..=12usize)
        .filter(|m| spec.months & (1 << m) != 0)
        .map(|m| MAX_DAYS[m - 1])
        .max()
        .unwrap_or(31)
}

/// The chosen days of the month, less those no chosen month has (31 of `1,15,31` in February).
fn possible_days(spec: &Spec) -> Vec<u32> {
    values(
        u64::from(spec.dom & mask_through(longest_month(spec))),
        1,
        31,
    )
}

/// The day part ("" when every day matches) following the day rule.
///
/// A day-of-month field is treated by what it can match in the chosen months: one that covers
/// every day they have (`1-29` in February) matches every day, and one that matches none of
/// them (`31` in February; only possible under the OR rule, the parser refuses it under the
/// AND rule) leaves the weekdays alone: `0 0 31 2 mon` is "on Monday, in February".
fn day_part(spec: &Spec) -> String {
    let longest = longest_month(spec);
    let every_day = mask_through(longest);
    let all_dom = spec.dom & every_day == every_day;
    let days = possible_days(spec);
    let all_dow = spec.dow == 0x7f;
    if spec.day_or_rule() {
        if all_dom || all_dow {
            return String::new();
        }
        if days.is_empty() {
            return format!("on {}", weekday_list(spec.dow, "and"));
        }
        return format!(
            "{} or on {}",
            dom_phrase(&days, longest),
            weekday_list(spec.dow, "and")
        );
    }
    match (all_dom, all_dow) {
        (true, true) => String::new(),
        (true, false) => format!("on {}", weekday_list(spec.dow, "and")),
        (false, true) => dom_phrase(&days, longest),
        (false, false) => format!(
            "{} if it is a {}",
            dom_phrase(&days, longest),
            weekday_list(spec.dow, "or")
        ),
    }
}

/// Plain English for a parsed schedule, e.g. "At 12:00, on Sunday".
pub(crate) fn describe(spec: &Spec) -> String {
    let (time, specific) = time_part(spec);
    let months = values(u64::from(spec.months), 1, 12);
    let days = possible_days(spec);
    let month_name = |m: u32| MONTHS_EN[m as usize - 1].to_string();
    // "on February 29" instead of "on day 29 of the month, in February". Under the OR rule a
    // full day-of-week set matches every day, so this only applies under the AND rule.
    if let ([m], [d]) = (&months[..], &days[..]) {
        if !spec.day_or_rule() && spec.dow == 0x7f {
            return format!("{time}, on {} {d}", month_name(*m));
        }
    }
    let day = day_part(spec);
    let mut parts = vec![time];
    let month_text =
        (months.len() < 12).then(|| format!("in {}", runs_text(&months, &month_name, "and")));
    if !day.is_empty() {
        parts.push(day);
    } else if specific {
        // "At 02:30, every day in January" rather than a bare "At 02:30, in January".
        match &month_text {
            Some(m) => parts.push(format!("every day {m}")),
            None => parts.push("every day".to_string()),
        }
        return parts.join(", ");
    }
    parts.extend(month_text);
    parts.join(", ")
}
