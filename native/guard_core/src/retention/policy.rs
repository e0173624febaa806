//! The operator's retention policy: restic's `forget` rules, written as one line of text.
//!
//! # The text
//! Rules separated by spaces (or commas), each `name=value`, each at most once, in any order:
//!
//! | rule | value | keeps |
//! |---|---|---|
//! | `last=N` | 0 to [`MAX_COUNT`] | the newest N backups |
//! | `hourly=N` | 0 to [`MAX_COUNT`] | the newest backup of each of the last N calendar hours that have one |
//! | `daily=N` | 0 to [`MAX_COUNT`] | the same for calendar days |
//! | `weekly=N` | 0 to [`MAX_COUNT`] | the same for ISO weeks (Monday to Sunday) |
//! | `monthly=N` | 0 to [`MAX_COUNT`] | the same for calendar months |
//! | `yearly=N` | 0 to [`MAX_COUNT`] | the same for calendar years |
//! | `within=D` | a [`Within`] duration such as `2d`, `12h`, `1y6m` | every backup made less than D before the newest one |
//!
//! A bare number alone, `5`, means `last=5` (what `backup_keep 5` always meant). A rule that is 0
//! (or missing) is off; at least one rule must be on. Rule names are read in any case
//! (`Daily=7`); [`Policy`]'s `Display` writes the canonical form (`last=3 daily=7 within=2d`: the
//! rules that are on, in the order of the table), which parses back to the same policy.
//!
//! What each rule means, how periods are counted and which backups count at all is the business
//! of [`super::plan`].

use std::fmt;
use std::str::FromStr;

/// The largest count a rule takes, and the largest number in a [`Within`] duration.
pub const MAX_COUNT: u32 = 100_000;

/// A `within` duration: years, months, days and hours, as restic writes it (`1y5m7d2h`; `m` is
/// months, there are no minutes or weeks: a week is `7d`).
///
/// It is calendar arithmetic, not a fixed length: going back `1m` from March 31 lands on the last
/// day of February, and `1d` is one calendar day however long a DST change makes it. Years,
/// months and days are taken off the newest backup's wall-clock time in the schedule's zone, then
/// hours as elapsed time (see [`super::plan`]). All zero means the rule is off.
///
/// ```
/// use guard_core::retention::Within;
///
/// let within: Within = "1y6m".parse()?;
/// assert_eq!((within.years, within.months, within.days, within.hours), (1, 6, 0, 0));
/// assert_eq!(within.to_string(), "1y6m");
/// assert_eq!("36h".parse::<Within>()?.to_string(), "36h");
/// assert!("2w".parse::<Within>().is_err());
/// # Ok::<(), guard_core::retention::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Within {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl Within {
    /// True when every part is 0: the rule is off.
    pub fn is_zero(&self) -> bool {
        *self == Within::default()
    }

    /// Parses the value of `within=` (`token` is the whole `within=...` text, for the error).
    fn parse_value(value: &str, token: &str) -> Result<Within, PolicyError> {
        let bad = || PolicyError::BadWithin {
            token: token.to_string(),
        };
        let mut within = Within::default();
        let mut seen = [false; 4];
        let mut rest = value;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let number = count_of(&rest[..digits]).ok_or_else(bad)?;
            let (slot, part) = match rest.as_bytes().get(digits) {
                Some(b'y') => (0, &mut within.years),
                Some(b'm') => (1, &mut within.months),
                Some(b'd') => (2, &mut within.days),
                Some(b'h') => (3, &mut within.hours),
                _ => return Err(bad()),
            };
            if seen[slot] {
                return Err(bad());
            }
            seen[slot] = true;
            *part = number;
            rest = &rest[digits + 1..];
        }
        Ok(within)
    }
}

impl fmt::Display for Within {
    /// The parts that are not zero, largest first (`1y6m`, `2d12h`); `0h` when all are zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Within {
    type Err = PolicyError;

    /// Parses a duration such as `2d`, `12h`, `1y6m` or `1y5m7d2h`: numbers from 0 to
    /// [`MAX_COUNT`], each followed by `y`, `m` (months), `d` or `h`, each unit at most once, in
    /// any order, no spaces. All zero (`0d`) is allowed and means off.
    fn from_str(value: &str) -> Result<Within, PolicyError> {
        Within::parse_value(value, &format!("within={value}"))
    }
}

/// One rule of a [`Policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Within,
}

impl Rule {
    /// Every rule, in the canonical order of the text.
    pub const ALL: [Rule; 7] = [
        Rule::Last,
        Rule::Hourly,
        Rule::Daily,
        Rule::Weekly,
        Rule::Monthly,
        Rule::Yearly,
        Rule::Within,
    ];

    /// The rule's name in the text (`daily`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
            Rule::Within => "within",
        }
    }

    fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL
            .into_iter()
            .find(|rule| rule.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which backups to keep: restic's `forget --keep-*` rules (see the module documentation for the
/// text and [`super::plan`] for what each rule keeps).
///
/// A backup kept by any rule stays. All zero is the empty policy: [`Policy::parse`] refuses it,
/// and a plan made with one (a `Policy` built by hand) keeps everything, as restic does.
///
/// ```
/// use guard_core::retention::Policy;
///
/// let policy = Policy::parse("daily=7 weekly=4 last=3 within=2d")?;
/// assert_eq!((policy.last, policy.daily, policy.weekly), (3, 7, 4));
/// assert_eq!(policy.to_string(), "last=3 daily=7 weekly=4 within=2d");
/// assert_eq!(Policy::parse("5")?, Policy::keep_last(5));
/// assert_eq!(Policy::keep_last(5).to_string(), "last=5");
///
/// let refused = Policy::parse("daily=-1").unwrap_err();
/// assert_eq!(refused.reason(), "bad_count");
/// assert_eq!(
///     refused.to_string(),
///     "\"daily=-1\": daily takes a whole number from 0 to 100000, e.g. daily=7"
/// );
/// # Ok::<(), guard_core::retention::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Within,
}

impl Policy {
    /// `last=n` alone: the newest `n` backups (the rule `backup_keep n` always stood for).
    pub fn keep_last(n: u32) -> Policy {
        Policy {
            last: n,
            ..Policy::default()
        }
    }

    /// True when every rule is off (all counts 0, `within` zero).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// The count of a counting rule (`None` for [`Rule::Within`]).
    pub fn count(&self, rule: Rule) -> Option<u32> {
        match rule {
            Rule::Last => Some(self.last),
            Rule::Hourly => Some(self.hourly),
            Rule::Daily => Some(self.daily),
            Rule::Weekly => Some(self.weekly),
            Rule::Monthly => Some(self.monthly),
            Rule::Yearly => Some(self.yearly),
            Rule::Within => None,
        }
    }

    fn count_mut(&mut self, rule: Rule) -> Option<&mut u32> {
        match rule {
            Rule::Last => Some(&mut self.last),
            Rule::Hourly => Some(&mut self.hourly),
            Rule::Daily => Some(&mut self.daily),
            Rule::Weekly => Some(&mut self.weekly),
            Rule::Monthly => Some(&mut self.monthly),
            Rule::Yearly => Some(&mut self.yearly),
            Rule::Within => None,
        }
    }

    /// Parses the operator's text (see the module documentation): `last=3 daily=7 within=2d`, or
    /// a bare number `5` for `last=5`. Leading and trailing white space is ignored.
    ///
    /// Refused, each with one line saying what to write instead ([`PolicyError`]): no rule at
    /// all, a word that is not `name=value`, an unknown rule, a count that is not a whole number
    /// from 0 to [`MAX_COUNT`] (`daily=-1`, `weekly=x`), a bad duration, a rule given twice, and
    /// a policy whose rules are all zero (it would keep nothing).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let tokens: Vec<&str> = text
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.is_empty() {
            return Err(PolicyError::Empty);
        }
        if let [only] = tokens.as_slice() {
            if only
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
            {
                let last = count_of(only).ok_or_else(|| PolicyError::BadCount {
                    token: only.to_string(),
                    rule: Rule::Last,
                })?;
                return Policy::keep_last(last).refuse_empty(text);
            }
        }
        let mut policy = Policy::default();
        let mut given: Vec<Rule> = Vec::new();
        for token in tokens {
            let Some((name, value)) = token.split_once('=') else {
                return Err(PolicyError::NotARule {
                    token: token.to_string(),
                });
            };
            let rule = Rule::from_name(name).ok_or_else(|| PolicyError::UnknownRule {
                token: token.to_string(),
                name: name.to_string(),
            })?;
            if given.contains(&rule) {
                return Err(PolicyError::Repeated { rule });
            }
            given.push(rule);
            match policy.count_mut(rule) {
                Some(count) => {
                    *count = count_of(value).ok_or_else(|| PolicyError::BadCount {
                        token: token.to_string(),
                        rule,
                    })?;
                }
                None => policy.within = Within::parse_value(value, token)?,
            }
        }
        policy.refuse_empty(text)
    }

    fn refuse_empty(self, text: &str) -> Result<Policy, PolicyError> {
        if self.is_empty() {
            Err(PolicyError::KeepsNothing {
                text: text.trim().to_string(),
            })
        } else {
            Ok(self)
        }
    }
}

impl fmt::Display for Policy {
    /// The canonical text: the rules that are on, in the order last, hourly, daily, weekly,
    /// monthly, yearly, within, separated by one space. The empty policy is written as the empty
    /// string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for rule in Rule::ALL {
            match self.count(rule) {
                Some(0) => continue,
                Some(n) => write!(f, "{sep}{rule}={n}")?,
                None if self.within.is_zero() => continue,
                None => write!(f, "{sep}{rule}={}", self.within)?,
            }
            sep = " ";
        }
        Ok(())
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// [`Policy::parse`].
    fn from_str(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text)
    }
}

/// A whole number from 0 to [`MAX_COUNT`], ASCII digits only (no sign, no spaces).
fn count_of(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|n| *n <= MAX_COUNT)
}

/// Why a policy's text was refused.
///
/// `Display` is one line naming the word at fault (escaped: control characters never reach a
/// terminal), what is wrong and what to write instead; [`PolicyError::reason`] is a stable tag
/// for programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Nothing but white space and commas.
    #[error("no retention rule given: write rules such as last=5 or daily=7 weekly=4 (a bare number N means last=N)")]
    Empty,
    /// A word without `=` (other than a bare number given alone).
    #[error("\"{}\" is not a rule: write each rule as name=value, e.g. daily=7 (a bare number N alone means last=N)", shown(.token))]
    NotARule { token: String },
    /// A name that is none of the rules.
    #[error("\"{}\": unknown rule \"{}\"; the rules are last, hourly, daily, weekly, monthly, yearly and within", shown(.token), shown(.name))]
    UnknownRule { token: String, name: String },
    /// A count that is not a whole number from 0 to [`MAX_COUNT`].
    #[error("\"{}\": {rule} takes a whole number from 0 to {max}, e.g. {example}", shown(.token), max = MAX_COUNT, example = example(*.rule))]
    BadCount { token: String, rule: Rule },
    /// A `within` value that is not a duration.
    #[error("\"{}\": within takes a duration of years, months, days and hours such as 2d, 36h or 1y6m (m is months, a week is 7d), each number from 0 to {max}", shown(.token), max = MAX_COUNT)]
    BadWithin { token: String },
    /// The same rule twice.
    #[error("{rule} is given twice: give each rule once")]
    Repeated { rule: Rule },
    /// Every rule zero: the policy would keep nothing.
    #[error("\"{}\" keeps nothing: at least one rule must be above zero, e.g. last=5", shown(.text))]
    KeepsNothing { text: String },
}

impl PolicyError {
    /// The stable reason tag (the Erlang side turns it into an atom).
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyError::Empty => "empty",
            PolicyError::NotARule { .. } => "not_a_rule",
            PolicyError::UnknownRule { .. } => "unknown_rule",
            PolicyError::BadCount { .. } => "bad_count",
            PolicyError::BadWithin { .. } => "bad_within",
            PolicyError::Repeated { .. } => "repeated_rule",
            PolicyError::KeepsNothing { .. } => "keeps_nothing",
        }
    }
}

fn example(rule: Rule) -> &'static str {
    match rule {
        Rule::Last => "last=5",
        Rule::Hourly => "hourly=24",
        Rule::Daily => "daily=7",
        Rule::Weekly => "weekly=4",
        Rule::Monthly => "monthly=12",
        Rule::Yearly => "yearly=3",
        Rule::Within => "within=2d",
    }
}

/// The operator's text as quoted in an error: see [`crate::text::quoted`], at most 100 characters.
fn shown(text: &str) -> String {
    crate::text::quoted(text, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> PolicyError {
        match Policy::parse(text) {
            Ok(p) => panic!("{text:?} was accepted as {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn full_text_parses_and_prints_canonically() {
        let p = Policy::parse(
            "  within=1y5m7d2h yearly=3 Monthly=12,weekly=4 daily=7 hourly=24 last=2 ",
        )
        .unwrap();
        assert_eq!(
            p,
            Policy {
                last: 2,
                hourly: 24,
                daily: 7,
                weekly: 4,
                monthly: 12,
                yearly: 3,
                within: Within {
                    years: 1,
                    months: 5,
                    days: 7,
                    hours: 2
                },
            }
        );
        assert_eq!(
            p.to_string(),
            "last=2 hourly=24 daily=7 weekly=4 monthly=12 yearly=3 within=1y5m7d2h"
        );
        assert_eq!(Policy::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn a_bare_number_is_last() {
        assert_eq!(Policy::parse("5").unwrap(), Policy::keep_last(5));
        assert_eq!(
            Policy::parse(" 100000 ").unwrap(),
            Policy::keep_last(100_000)
        );
        assert_eq!(refused("0").reason(), "keeps_nothing");
        assert_eq!(refused("-1").reason(), "bad_count");
        assert_eq!(refused("100001").reason(), "bad_count");
        assert_eq!(
            refused("5 daily=7").to_string(),
            "\"5\" is not a rule: write each rule as name=value, e.g. daily=7 (a bare number N alone means last=N)"
        );
    }

    #[test]
    fn zero_rules_are_off_but_not_all_of_them() {
        let p = Policy::parse("last=0 daily=7 within=0d").unwrap();
        assert_eq!(p.to_string(), "daily=7");
        let e = refused("last=0 daily=0 within=0h");
        assert_eq!(e.reason(), "keeps_nothing");
        assert_eq!(
            e.to_string(),
            "\"last=0 daily=0 within=0h\" keeps nothing: at least one rule must be above zero, e.g. last=5"
        );
    }

    #[test]
    fn every_refusal_is_one_line_saying_what_to_write() {
        for (text, reason, line) in [
            ("", "empty", "no retention rule given: write rules such as last=5 or daily=7 weekly=4 (a bare number N means last=N)"),
            (" , ", "empty", "no retention rule given: write rules such as last=5 or daily=7 weekly=4 (a bare number N means last=N)"),
            ("daily=-1", "bad_count", "\"daily=-1\": daily takes a whole number from 0 to 100000, e.g. daily=7"),
            ("weekly=x", "bad_count", "\"weekly=x\": weekly takes a whole number from 0 to 100000, e.g. weekly=4"),
            ("monthly=", "bad_count", "\"monthly=\": monthly takes a whole number from 0 to 100000, e.g. monthly=12"),
            ("last=+3", "bad_count", "\"last=+3\": last takes a whole number from 0 to 100000, e.g. last=5"),
            ("hourly=1.5", "bad_count", "\"hourly=1.5\": hourly takes a whole number from 0 to 100000, e.g. hourly=24"),
            ("yearly=9999999999", "bad_count", "\"yearly=9999999999\": yearly takes a whole number from 0 to 100000, e.g. yearly=3"),
            ("fortnightly=2", "unknown_rule", "\"fortnightly=2\": unknown rule \"fortnightly\"; the rules are last, hourly, daily, weekly, monthly, yearly and within"),
            ("keep-daily=2", "unknown_rule", "\"keep-daily=2\": unknown rule \"keep-daily\"; the rules are last, hourly, daily, weekly, monthly, yearly and within"),
            ("daily", "not_a_rule", "\"daily\" is not a rule: write each rule as name=value, e.g. daily=7 (a bare number N alone means last=N)"),
            ("daily=7 daily=8", "repeated_rule", "daily is given twice: give each rule once"),
            ("within=2w", "bad_within", "\"within=2w\": within takes a duration of years, months, days and hours such as 2d, 36h or 1y6m (m is months, a week is 7d), each number from 0 to 100000"),
        ] {
            let e = refused(text);
            assert_eq!((e.reason(), e.to_string().as_str()), (reason, line), "{text:?}");
        }
    }

    #[test]
    fn durations() {
        for (text, want) in [
            ("2d", (0, 0, 2, 0)),
            ("36h", (0, 0, 0, 36)),
            ("1y6m", (1, 6, 0, 0)),
            ("2h1d", (0, 0, 1, 2)),
            ("0d", (0, 0, 0, 0)),
        ] {
            let w: Within = text.parse().unwrap();
            assert_eq!((w.years, w.months, w.days, w.hours), want, "{text}");
        }
        assert_eq!("2h1d".parse::<Within>().unwrap().to_string(), "1d2h");
        for bad in [
            "", "2", "d", "2dd", "2d3d", "-2d", "2 d", "2D", "1w", "100001d", "2d-",
        ] {
            assert!(bad.parse::<Within>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let e = refused("daily=\u{1b}[2J");
        assert_eq!(
            e.to_string(),
            "\"daily=\\u{1b}[2J\": daily takes a whole number from 0 to 100000, e.g. daily=7"
        );
        let long = format!("x{}=1", "y".repeat(300));
        let line = refused(&long).to_string();
        assert!(line.len() < 400 && line.contains("..."), "{line}");
        assert!(!line.contains('\n'));
    }
}
