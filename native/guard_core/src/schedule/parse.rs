//! The strict crontab(5) parser: text to [`Spec`] (one bit set per field).

use super::error::{shown, Field, ScheduleError};

/// The macros crontab(5) knows, with the 5 fields each stands for. `@reboot` is absent on purpose.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Days in each month of a leap year (index 0 = January): the most a month can ever have.
pub(crate) const MAX_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// English month names, index 0 = January.
pub(crate) const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A parsed schedule. Bit `v` of a set is on when value `v` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spec {
    /// bits 0..=59
    pub minutes: u64,
    /// bits 0..=23
    pub hours: u32,
    /// bits 1..=31
    pub dom: u32,
    /// bits 1..=12
    pub months: u16,
    /// bits 0..=6, 0 = Sunday (a written 7 is folded onto 0)
    pub dow: u8,
    /// The day-of-month field text starts with `*`.
    pub dom_star: bool,
    /// The day-of-week field text starts with `*`.
    pub dow_star: bool,
}

impl Spec {
    /// Vixie/cronie day rule: when both day fields are restricted (neither starts with `*`) a
    /// day matches if either field matches; otherwise it must match both.
    pub fn day_or_rule(&self) -> bool {
        !self.dom_star && !self.dow_star
    }
}

/// A validated expression: its normalized text and its bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub normalized: String,
    pub spec: Spec,
}

/// crontab(5) separates fields with spaces and tabs, nothing else.
fn is_separator(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses and checks `expr`, including the analytic never-fires check.
///
/// ASCII white space at either end is trimmed and fields are split on spaces and tabs only;
/// any other white space (U+00A0, U+2003, a line break inside the expression, ...) is a
/// `bad_char` of the field it sits in.
pub(crate) fn parse(expr: &str) -> Result<Parsed, ScheduleError> {
    let tokens: Vec<&str> = expr
        .trim_matches(|c: char| c.is_ascii_whitespace())
        .split(is_separator)
        .filter(|t| !t.is_empty())
        .collect();
    let first = match tokens.first() {
        None => return Err(ScheduleError::Empty),
        Some(first) => *first,
    };
    if first.starts_with('@') {
        return parse_macro(first, tokens.len());
    }
    for (field, text) in Field::ALL.iter().zip(&tokens) {
        if let Some(c) = text.chars().find(|c| c.is_whitespace()) {
            return Err(bad(
                *field,
                text,
                format!(
                    "unexpected character '{}' (white space other than a space or tab): separate fields with spaces or tabs only",
                    c.escape_unicode()
                ),
            ));
        }
    }
    match tokens.len() {
        5 => {}
        6 | 7 => {
            return Err(ScheduleError::SecondsField {
                count: tokens.len(),
            })
        }
        count => return Err(ScheduleError::FieldCount { count }),
    }
    let normalized = tokens.join(" ");
    let spec = parse_fields(&tokens)?;
    check_fires(&normalized, &spec)?;
    Ok(Parsed { normalized, spec })
}

fn parse_macro(word: &str, token_count: usize) -> Result<Parsed, ScheduleError> {
    let lower = word.to_ascii_lowercase();
    let known = MACROS.iter().find(|(name, _)| *name == lower);
    let Some((name, fields)) = known else {
        let detail = if lower == "@reboot" {
            "\"@reboot\" is not supported: a backup schedule needs clock times; use a 5-field schedule or @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly".to_string()
        } else {
            format!("unknown macro \"{}\": use a 5-field schedule or @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly", shown(word))
        };
        return Err(ScheduleError::UnsupportedMacro { detail });
    };
    if token_count > 1 {
        return Err(ScheduleError::UnsupportedMacro {
            detail: format!("the macro {name} must stand alone, but {} more field(s) follow it: remove them or write 5 fields", token_count - 1),
        });
    }
    let tokens: Vec<&str> = fields.split(' ').collect();
    let spec = parse_fields(&tokens)?;
    Ok(Parsed {
        normalized: (*name).to_string(),
        spec,
    })
}

fn parse_fields(tokens: &[&str]) -> Result<Spec, ScheduleError> {
    let mut sets = [0u64; 5];
    for (i, field) in Field::ALL.iter().enumerate() {
        sets[i] = parse_field(*field, tokens[i])?;
    }
    let mut dow = sets[4];
    if dow & (1 << 7) != 0 {
        dow = (dow & !(1 << 7)) | 1;
    }
    Ok(Spec {
        minutes: sets[0],
        hours: sets[1] as u32,
        dom: sets[2] as u32,
        months: sets[3] as u16,
        dow: dow as u8,
        dom_star: tokens[2].starts_with('*'),
        dow_star: tokens[4].starts_with('*'),
    })
}

fn quartz(field: Field, text: &str, detail: &str) -> ScheduleError {
    ScheduleError::QuartzSyntax {
        field,
        text: text.to_string(),
        detail: detail.to_string(),
    }
}

fn bad(field: Field, text: &str, detail: String) -> ScheduleError {
    ScheduleError::BadChar {
        field,
        text: text.to_string(),
        detail,
    }
}

const HOW: &str = "use numbers, ranges (1-5), lists (1,15) and steps (*/10, 0-30/5)";

/// One field's text to its bit set (bit `v` for value `v`, day-of-week 7 kept as bit 7).
fn parse_field(field: Field, text: &str) -> Result<u64, ScheduleError> {
    if text.contains('?') {
        return Err(quartz(
            field,
            text,
            "\"?\" is Quartz syntax, not crontab(5): write * instead",
        ));
    }
    if text.contains('#') {
        return Err(quartz(
            field,
            text,
            "\"#\" (nth weekday of the month) is Quartz syntax that crontab(5) cannot express: pick days with the day-of-month or day-of-week field",
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/')))
    {
        return Err(bad(
            field,
            text,
            format!("unexpected character {c:?}: {HOW}"),
        ));
    }
    let mut bits = 0u64;
    for item in text.split(',') {
        bits |= parse_item(field, text, item)?;
    }
    Ok(bits)
}

/// One list item: `*`, `v`, `a-b`, each optionally followed by `/step`.
fn parse_item(field: Field, text: &str, item: &str) -> Result<u64, ScheduleError> {
    if item.is_empty() {
        return Err(bad(
            field,
            text,
            format!("empty list item (stray comma): {HOW}"),
        ));
    }
    let (base, step) = match item.split_once('/') {
        None => (item, None),
        Some((base, step)) => (base, Some(step)),
    };
    let step = match step {
        None => None,
        Some(s) => Some(parse_step(field, text, s)?),
    };
    let (lo, hi) = if base == "*" {
        (field.low(), field.high())
    } else if base.is_empty() {
        return Err(bad(
            field,
            text,
            format!("a step needs something before the \"/\" (e.g. */5): {HOW}"),
        ));
    } else if let Some((a, b)) = split_range(base) {
        let lo = parse_value(field, text, a)?;
        let hi = parse_value(field, text, b)?;
        if lo > hi {
            return Err(reversed(field, text, lo, hi));
        }
        (lo, hi)
    } else {
        let v = parse_value(field, text, base)?;
        // `a/n` means a through the field's maximum in steps of n, as in cronie.
        (v, if step.is_some() { field.high() } else { v })
    };
    let step = step.unwrap_or(1);
    let mut bits = 0u64;
    let mut v = lo;
    while v <= hi {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits)
}

/// Splits `a-b`; `None` when there is no `-`. A leading `-` or several `-` are reported by the
/// value parser as stray characters.
fn split_range(base: &str) -> Option<(&str, &str)> {
    base.split_once('-')
}

fn reversed(field: Field, text: &str, lo: u32, hi: u32) -> ScheduleError {
    let hint = if field == Field::DayOfWeek && hi == 0 {
        format!("Sunday at the end of a range is 7, write {lo}-7")
    } else if lo == field.high() && hi == field.low() {
        format!("write the smaller value first, or the list {lo},{hi}")
    } else {
        let top = if lo == field.high() {
            format!("{lo}")
        } else {
            format!("{lo}-{}", field.high())
        };
        let bottom = if hi == field.low() {
            format!("{hi}")
        } else {
            format!("{}-{hi}", field.low())
        };
        format!("write the smaller value first; to wrap around use a list such as {top},{bottom}")
    };
    ScheduleError::ReversedRange {
        field,
        text: text.to_string(),
        lo,
        hi,
        hint,
    }
}

fn parse_step(field: Field, text: &str, s: &str) -> Result<u32, ScheduleError> {
    if s.is_empty() {
        return Err(bad(
            field,
            text,
            format!("the \"/\" needs a step after it (e.g. */5): {HOW}"),
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(non_number(field, text, s, "step"));
    }
    let step = s.parse::<u64>().unwrap_or(u64::MAX);
    if step == 0 {
        return Err(ScheduleError::ZeroStep {
            field,
            text: text.to_string(),
        });
    }
    let max = u64::from(field.high());
    if step > max {
        return Err(ScheduleError::OutOfRange {
            field,
            text: text.to_string(),
            detail: format!("step {s} is out of range 1-{max}"),
        });
    }
    Ok(step as u32)
}

/// A single number or (in the month and day-of-week fields) a three-letter name.
fn parse_value(field: Field, text: &str, s: &str) -> Result<u32, ScheduleError> {
    if s.is_empty() {
        return Err(bad(
            field,
            text,
            format!("a range needs a value on both sides of \"-\": {HOW}"),
        ));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let v = s.parse::<u64>().unwrap_or(u64::MAX);
        if v < u64::from(field.low()) || v > u64::from(field.high()) {
            return Err(ScheduleError::OutOfRange {
                field,
                text: text.to_string(),
                detail: format!("{s} is out of range {}-{}", field.low(), field.high()),
            });
        }
        return Ok(v as u32);
    }
    let lower = s.to_ascii_lowercase();
    let names: &[&str] = match field {
        Field::Month => &MONTH_NAMES,
        Field::DayOfWeek => &WEEKDAY_NAMES,
        _ => &[],
    };
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + field.low());
    }
    Err(non_number(field, text, s, "value"))
}

/// The error for a word that is neither a number nor a known name: Quartz `L`/`W` forms get
/// their own reason, anything else is a stray character.
fn non_number(field: Field, text: &str, s: &str, what: &str) -> ScheduleError {
    let upper = s.to_ascii_uppercase();
    let digits_then = |suffix: char| {
        upper.len() > 1
            && upper.ends_with(suffix)
            && upper[..upper.len() - 1].bytes().all(|b| b.is_ascii_digit())
    };
    let is_last = upper == "L" || digits_then('L');
    let is_weekday = upper == "W" || upper == "LW" || digits_then('W');
    if is_weekday && field == Field::DayOfMonth {
        return quartz(
            field,
            text,
            "\"W\" (nearest weekday) is Quartz syntax, not crontab(5): list the days you mean",
        );
    }
    if is_last && matches!(field, Field::DayOfMonth | Field::DayOfWeek) {
        return quartz(
            field,
            text,
            "\"L\" (last) is Quartz syntax, not crontab(5), which has no last-day marker: list the days you mean",
        );
    }
    let detail = match field {
        Field::Month => format!(
            "\"{s}\" is not a {what}: use 1-12 or the names jan-dec (ranges, lists and steps allowed)"
        ),
        Field::DayOfWeek => format!(
            "\"{s}\" is not a {what}: use 0-7 (0 and 7 are Sunday) or the names sun-sat (ranges, lists and steps allowed)"
        ),
        _ if s.bytes().any(|b| b.is_ascii_alphabetic()) && what == "value" && s.bytes().all(|b| b.is_ascii_alphabetic()) => format!(
            "\"{s}\" is not a number: names are only allowed in the month and day-of-week fields; {HOW}"
        ),
        _ => format!("\"{s}\" is not a {what}: {HOW}"),
    };
    bad(field, text, detail)
}

/// Rejects schedules that match no date at all.
///
/// Analytic, O(1): with the OR rule every month has every weekday, so any OR schedule fires.
/// With the AND rule a schedule fires iff some chosen month has some chosen day (February
/// counted with 29 days): every valid month/day pair, February 29 included, falls on each
/// weekday somewhere in the 400-year Gregorian cycle (the golden tests check this).
fn check_fires(expr: &str, spec: &Spec) -> Result<(), ScheduleError> {
    if spec.day_or_rule() {
        return Ok(());
    }
    let possible = (1..=12u32)
        .filter(|m| spec.months & (1 << m) != 0)
        .any(|m| spec.dom & mask_through(MAX_DAYS[m as usize - 1]) != 0);
    if possible {
        return Ok(());
    }
    let months: Vec<&str> = (1..=12usize)
        .filter(|m| spec.months & (1 << m) != 0)
        .map(|m| MONTHS_EN[m - 1])
        .collect();
    let days: Vec<String> = (1..=31u32)
        .filter(|d| spec.dom & (1 << d) != 0)
        .map(|d| d.to_string())
        .collect();
    let verb = if months.len() == 1 { "has" } else { "have" };
    let detail = format!(
        "{} never {verb} day {}",
        join_words(&months, "and"),
        join_words(&days, "or")
    );
    Err(ScheduleError::NeverFires {
        expr: expr.to_string(),
        detail,
    })
}

/// Bits 1..=n set.
pub(crate) fn mask_through(n: u32) -> u32 {
    ((1u64 << (n + 1)) - 2) as u32
}

/// "a", "a and b", "a, b and c".
pub(crate) fn join_words<S: AsRef<str>>(items: &[S], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., tail] => {
            let head: Vec<&str> = init.iter().map(|s| s.as_ref()).collect();
            format!("{} {last} {}", head.join(", "), tail.as_ref())
        }
    }
}
