//! The decision of retention under a [`Policy`]: for every backup, the rule(s) that keep it or
//! why it goes. A pure function ([`plan`]): no clock, no file system.
//!
//! # The rules (restic's `forget`)
//! Backups are taken newest first by the instant they were made ([`Made`]). Only backups that
//! verify ([`Verdict::Good`]) count; for each rule that is on:
//! - `last=N`: the newest N (`last #1` is the newest).
//! - `hourly`, `daily`, `weekly`, `monthly`, `yearly=N`: the newest backup of each of the last N
//!   calendar periods that have one (periods without a backup do not count, so with gaps the
//!   rule reaches further back), in the schedule's zone ([`Calendar`]). While a rule has periods
//!   left when the backups run out, it also keeps the oldest backup (`oldest daily ...`): the
//!   longest history the counts allow, as restic does since 0.17.
//! - `within=D`: every backup made after the instant `D` before the newest backup (the newest
//!   that is not after [`Calendar::now`], when given) ([`Within`]).
//!
//! A backup kept by any rule stays; each reason is given ([`Reason`]).
//!
//! # The safety rules (those of keep-last, unchanged)
//! - An unverified or failed backup never pushes out a verified one: it counts for nothing. The
//!   rules' *reach* ends at the last backup any rule needed (the N-th pick of every counting rule,
//!   the oldest backup inside `within`); a backup past it is deleted whatever it is. A backup
//!   that does not verify inside the reach is kept (`unverified: kept, counts for nothing`); when
//!   some rule still has periods left, the reach is everything (fewer verified backups than the
//!   policy asks for: nothing that does not verify is deleted).
//! - At least one verified backup always stays (every rule keeps the newest one it can).
//! - Pinned and protected backups are never deleted, and that is all they do: each counts only
//!   for what it is (a verified backup in its place by time), so it never displaces another.
//! - A backup not read yet ([`Verdict::Unknown`]) counts as not verified; those whose verdict
//!   could change the decision are listed in [`Plan::to_read`], newest first. Deleting what the
//!   plan deletes is safe at any point: a backup found verified later only makes rules reach
//!   less far, never keeps one the plan deletes. Reading the first of `to_read` and planning
//!   again until it is empty reads each backup at most once and none that cannot matter.
//!
//! With `last=N` alone this is exactly the keep-N rule of [`super::decide`].

use std::fmt;

use chrono_tz::Tz;

use super::calendar::{Calendar, Made, Period, Unit, When};
use super::policy::{Policy, Within};
use super::Verdict;

/// One backup as [`plan`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// When it was made.
    pub made: Made,
    /// Whether it verifies.
    pub verdict: Verdict,
    /// Pinned by the operator: never deleted.
    pub pinned: bool,
    /// The backup just made or just copied in: never deleted by this decision.
    pub protected: bool,
}

/// Why a backup stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `last #rank`: the rank-th newest verified backup, within `last=N`.
    Last { rank: u32 },
    /// The newest verified backup of `period` (`daily 2026-11-30`); `oldest`: the oldest
    /// verified backup, kept because the rule had periods left (`oldest daily 2026-11-28`).
    Period {
        unit: Unit,
        period: Period,
        oldest: bool,
    },
    /// Made within the duration before the newest backup (`within 2d`).
    Within(Within),
    /// Pinned by the operator.
    Pinned,
    /// The backup just made or just copied in.
    Protected,
    /// It does not verify and lies within the rules' reach: left alone, not counted.
    Unverified,
    /// Not read yet and its verdict matters: left alone until it is read.
    Unread,
    /// The policy has no rule on: everything is kept.
    NoRule,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last { rank } => write!(f, "last #{rank}"),
            Reason::Period {
                unit,
                period,
                oldest,
            } => {
                let oldest = if *oldest { "oldest " } else { "" };
                write!(f, "{oldest}{} {period}", rule_name(*unit))
            }
            Reason::Within(within) => write!(f, "within {within}"),
            Reason::Pinned => f.write_str("pinned"),
            Reason::Protected => f.write_str("protected"),
            Reason::Unverified => f.write_str("unverified: kept, counts for nothing"),
            Reason::Unread => f.write_str("not read yet: kept for now"),
            Reason::NoRule => f.write_str("no rule is on: everything is kept"),
        }
    }
}

fn rule_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Hour => "hourly",
        Unit::Day => "daily",
        Unit::Week => "weekly",
        Unit::Month => "monthly",
        Unit::Year => "yearly",
    }
}

/// Why a backup goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deletion {
    /// It verifies and no rule keeps it: `delete`.
    Policy,
    /// It does not verify and lies past the rules' reach.
    Unverified,
    /// Not read, and past the rules' reach: it would go whatever it is.
    Unread,
}

impl fmt::Display for Deletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deletion::Policy => "delete",
            Deletion::Unverified => "delete (unverified, older than what the rules keep)",
            Deletion::Unread => "delete (not read, older than what the rules keep)",
        })
    }
}

/// What becomes of one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It stays, for these reasons (never empty): the rules that keep it in the order last,
    /// hourly, daily, weekly, monthly, yearly, within; then pinned, protected; then
    /// unverified or not read yet.
    Keep(Vec<Reason>),
    /// It goes.
    Delete(Deletion),
}

impl Fate {
    /// True for [`Fate::Keep`].
    pub fn is_kept(&self) -> bool {
        matches!(self, Fate::Keep(_))
    }
}

impl fmt::Display for Fate {
    /// The reasons joined by `, ` (`last #1, daily 2026-11-30`), or the deletion (`delete`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::Keep(reasons) => {
                for (i, reason) in reasons.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{reason}")?;
                }
                Ok(())
            }
            Fate::Delete(deletion) => write!(f, "{deletion}"),
        }
    }
}

/// The decision over a list of backups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// What becomes of each entry, in the order the entries were given.
    pub fates: Vec<Fate>,
    /// The entries' indices newest first (by instant; entries made at the same instant in the
    /// order given).
    pub order: Vec<usize>,
    /// Entries not read yet whose verdict can change the decision, newest first. Empty: the
    /// decision is final.
    pub to_read: Vec<usize>,
    /// How many of `to_read`, from the front, are needed at least: the decision is final after
    /// these if each of them verifies (more are needed for each that does not).
    pub needed: usize,
}

impl Plan {
    /// True when no entry needs to be read: the decision is final.
    pub fn is_final(&self) -> bool {
        self.to_read.is_empty()
    }

    /// The indices of the entries to delete, newest first.
    pub fn deleted(&self) -> Vec<usize> {
        self.order
            .iter()
            .copied()
            .filter(|&i| !self.fates[i].is_kept())
            .collect()
    }

    /// The indices of the entries kept, newest first.
    pub fn kept(&self) -> Vec<usize> {
        self.order
            .iter()
            .copied()
            .filter(|&i| self.fates[i].is_kept())
            .collect()
    }

    /// The indices of the entries kept because they do not verify and lie within the rules'
    /// reach ([`Reason::Unverified`]), newest first.
    pub fn unverified_kept(&self) -> Vec<usize> {
        self.order
            .iter()
            .copied()
            .filter(|&i| matches!(&self.fates[i], Fate::Keep(r) if r.contains(&Reason::Unverified)))
            .collect()
    }
}

/// Decides, for every entry, whether it stays and why (see the module documentation for the
/// rules). The entries may come in any order; [`Plan::fates`] follows it.
///
/// ```
/// use chrono::NaiveDate;
/// use guard_core::retention::{plan, Calendar, Entry, Made, Policy, Verdict};
///
/// // One verified backup a day at 02:00, 2026-11-01 to 2026-11-30 (a Monday), in Berlin.
/// let entries: Vec<Entry> = (1..=30)
///     .map(|day| Entry {
///         made: Made::Named(
///             NaiveDate::from_ymd_opt(2026, 11, day).unwrap().and_hms_opt(2, 0, 0).unwrap(),
///         ),
///         verdict: Verdict::Good,
///         pinned: day == 3,
///         protected: false,
///     })
///     .collect();
/// let policy = Policy::parse("last=2 daily=3 weekly=2")?;
/// let calendar = Calendar::new("Europe/Berlin".parse().unwrap());
/// let plan = plan(&policy, &calendar, &entries);
/// let why = |day: usize| plan.fates[day - 1].to_string();
/// assert_eq!(why(30), "last #1, daily 2026-11-30, weekly 2026-W49");
/// assert_eq!(why(29), "last #2, daily 2026-11-29, weekly 2026-W48");
/// assert_eq!(why(28), "daily 2026-11-28");
/// assert_eq!(why(27), "delete");
/// assert_eq!(why(3), "pinned");
/// assert_eq!(plan.kept().len(), 4);
/// assert!(plan.is_final());
/// # Ok::<(), guard_core::retention::PolicyError>(())
/// ```
pub fn plan(policy: &Policy, calendar: &Calendar, entries: &[Entry]) -> Plan {
    Planner::new(*policy, *calendar, entries.to_vec()).plan()
}

/// [`plan`] for a caller that learns verdicts one at a time (retention reading what
/// [`Plan::to_read`] asks for): the backups are placed in time and ordered once, then planned
/// again after each [`Planner::set_verdict`] at the cost of two walks over them.
///
/// ```
/// use guard_core::retention::{Calendar, Entry, Made, Planner, Policy, Verdict};
///
/// let entries = (0..3)
///     .map(|i| Entry {
///         made: Made::At(1_780_000_000_000 - i * 86_400_000),
///         verdict: if i == 0 { Verdict::Unknown } else { Verdict::Good },
///         pinned: false,
///         protected: false,
///     })
///     .collect();
/// let mut planner = Planner::new(Policy::keep_last(1), Calendar::new(chrono_tz::UTC), entries);
/// let first = planner.plan();
/// assert_eq!((first.to_read.clone(), first.needed), (vec![0], 1));
/// assert_eq!(first.fates[1].to_string(), "last #1");
/// planner.set_verdict(0, Verdict::Good);
/// let last = planner.plan();
/// assert!(last.is_final());
/// assert_eq!(last.deleted(), [1, 2]);
/// ```
#[derive(Debug, Clone)]
pub struct Planner {
    policy: Policy,
    calendar: Calendar,
    entries: Vec<Entry>,
    whens: Vec<When>,
    order: Vec<usize>,
}

impl Planner {
    /// Places `entries` in time in `calendar` and orders them newest first (stable: entries
    /// made at the same instant stay in the order given).
    pub fn new(policy: Policy, calendar: Calendar, entries: Vec<Entry>) -> Planner {
        let whens: Vec<When> = entries.iter().map(|e| calendar.when(e.made)).collect();
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by(|&a, &b| whens[b].at_ms.cmp(&whens[a].at_ms));
        Planner {
            policy,
            calendar,
            entries,
            whens,
            order,
        }
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Sets what is known of entry `index` (e.g. after reading it). An index past the entries
    /// changes nothing.
    pub fn set_verdict(&mut self, index: usize, verdict: Verdict) {
        if let Some(entry) = self.entries.get_mut(index) {
            entry.verdict = verdict;
        }
    }

    /// The decision for what is known now: [`plan`].
    pub fn plan(&self) -> Plan {
        let (mut reasons, reach, reach_at_best) = self.picks();
        let mut fates = vec![Fate::Delete(Deletion::Policy); self.entries.len()];
        let mut to_read = Vec::new();
        let mut needed = 0;
        for (pos, &i) in self.order.iter().enumerate() {
            let entry = &self.entries[i];
            let mut why = std::mem::take(&mut reasons[i]);
            if entry.pinned {
                why.push(Reason::Pinned);
            }
            if entry.protected {
                why.push(Reason::Protected);
            }
            let within_reach = reach.covers(pos);
            match entry.verdict {
                Verdict::Good => {}
                Verdict::Bad if within_reach => why.push(Reason::Unverified),
                Verdict::Unknown if within_reach => {
                    why.push(Reason::Unread);
                    // Under the empty policy nothing goes, so no verdict matters.
                    if !self.policy.is_empty() {
                        to_read.push(i);
                        needed += usize::from(reach_at_best.covers(pos));
                    }
                }
                Verdict::Bad | Verdict::Unknown => {}
            }
            fates[i] = if why.is_empty() {
                Fate::Delete(match entry.verdict {
                    Verdict::Good => Deletion::Policy,
                    Verdict::Bad => Deletion::Unverified,
                    Verdict::Unknown => Deletion::Unread,
                })
            } else {
                Fate::Keep(why)
            };
        }
        Plan {
            fates,
            order: self.order.clone(),
            to_read,
            needed,
        }
    }

    /// The rules' picks among what is known to verify, with how far the rules reach, and how far
    /// they would reach at best (every unread backup verifying).
    fn picks(&self) -> (Vec<Vec<Reason>>, Reach, Reach) {
        let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); self.entries.len()];
        if self.policy.is_empty() {
            for (i, entry) in self.entries.iter().enumerate() {
                if entry.verdict == Verdict::Good {
                    reasons[i].push(Reason::NoRule);
                }
            }
            return (reasons, Reach::All, Reach::All);
        }
        let walk = Walk {
            policy: &self.policy,
            calendar: &self.calendar,
            entries: &self.entries,
            whens: &self.whens,
            order: &self.order,
        };
        let reach = walk.run(|v| v == Verdict::Good, Some(&mut reasons));
        let at_best = if self.entries.iter().any(|e| e.verdict == Verdict::Unknown) {
            walk.run(|v| v != Verdict::Bad, None)
        } else {
            reach
        };
        (reasons, reach, at_best)
    }
}

/// How far the rules reach, as a position in the newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Up to and including this position.
    To(usize),
    /// Every backup (some rule has periods left, or `within` has no newest backup).
    All,
}

impl Reach {
    fn covers(self, pos: usize) -> bool {
        match self {
            Reach::To(last) => pos <= last,
            Reach::All => true,
        }
    }

    fn max(self, other: Reach) -> Reach {
        match (self, other) {
            (Reach::To(a), Reach::To(b)) => Reach::To(a.max(b)),
            _ => Reach::All,
        }
    }
}

/// One counting rule while walking the backups.
struct Counter {
    /// `None` for `last`.
    unit: Option<Unit>,
    left: u32,
    picked: u32,
    last_key: Option<i64>,
    /// Where its count ran out.
    done_at: Option<usize>,
}

impl Counter {
    /// The counting rules of `policy` that are on.
    fn all_of(policy: &Policy) -> Vec<Counter> {
        [
            (None, policy.last),
            (Some(Unit::Hour), policy.hourly),
            (Some(Unit::Day), policy.daily),
            (Some(Unit::Week), policy.weekly),
            (Some(Unit::Month), policy.monthly),
            (Some(Unit::Year), policy.yearly),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(unit, left)| Counter {
            unit,
            left,
            picked: 0,
            last_key: None,
            done_at: None,
        })
        .collect()
    }

    /// Offers the counted backup at `pos` (made `when`; `oldest`: the last counted one) to the
    /// rule: the reason it keeps it for, if it does.
    fn offer(&mut self, pos: usize, when: &When, oldest: bool, zone: &Tz) -> Option<Reason> {
        if self.left == 0 {
            return None;
        }
        let (reason, fresh) = match self.unit {
            None => (
                Reason::Last {
                    rank: self.picked + 1,
                },
                true,
            ),
            Some(unit) => {
                let key = when.key(unit);
                let fresh = self.last_key != Some(key);
                if !fresh && !oldest {
                    return None;
                }
                self.last_key = Some(key);
                let period = when.period(unit, zone);
                (
                    Reason::Period {
                        unit,
                        period,
                        oldest: !fresh,
                    },
                    fresh,
                )
            }
        };
        self.picked += 1;
        self.left -= 1;
        // The extra pick of the oldest backup is no period: the rule still found fewer periods
        // than it asks for, so its reach stays everything.
        if self.left == 0 && fresh {
            self.done_at = Some(pos);
        }
        Some(reason)
    }
}

/// Where `within` reaches back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cutoff {
    /// The rule is off.
    Off,
    /// No counted backup to count back from (none, or all made after the present): everything
    /// is within.
    Everything,
    /// Backups made after this instant (Unix ms) are within.
    After(i64),
}

impl Cutoff {
    fn covers(self, at_ms: i64) -> bool {
        match self {
            Cutoff::Off => false,
            Cutoff::Everything => true,
            Cutoff::After(cutoff) => at_ms > cutoff,
        }
    }
}

/// The backups and the policy, walked newest first.
struct Walk<'a> {
    policy: &'a Policy,
    calendar: &'a Calendar,
    entries: &'a [Entry],
    whens: &'a [When],
    order: &'a [usize],
}

impl Walk<'_> {
    /// Applies the rules to the backups `counts` says count, recording each pick's reason in
    /// `reasons` when given, and returns how far the rules reach.
    fn run(
        &self,
        counts: impl Fn(Verdict) -> bool,
        mut reasons: Option<&mut Vec<Vec<Reason>>>,
    ) -> Reach {
        let counted = |i: usize| counts(self.entries[i].verdict);
        let mut counters = Counter::all_of(self.policy);
        let oldest = self.order.iter().rposition(|&i| counted(i));
        let cutoff = self.cutoff(&counted);
        let zone = self.calendar.zone();
        for (pos, &i) in self.order.iter().enumerate() {
            if !counted(i) {
                continue;
            }
            let when = &self.whens[i];
            for counter in counters.iter_mut() {
                let reason = counter.offer(pos, when, Some(pos) == oldest, &zone);
                if let (Some(reason), Some(reasons)) = (reason, reasons.as_deref_mut()) {
                    reasons[i].push(reason);
                }
            }
            if let (true, Some(reasons)) = (cutoff.covers(when.at_ms), reasons.as_deref_mut()) {
                reasons[i].push(Reason::Within(self.policy.within));
            }
        }
        self.reach(&counters, cutoff)
    }

    /// Where `within` reaches back to: from the newest counted backup not made after the
    /// present.
    fn cutoff(&self, counted: &impl Fn(usize) -> bool) -> Cutoff {
        let within = self.policy.within;
        if within.is_zero() {
            return Cutoff::Off;
        }
        let now = self.calendar.now_ms();
        let anchor = self
            .order
            .iter()
            .map(|&i| (i, self.whens[i].at_ms))
            .find(|&(i, at)| counted(i) && now.is_none_or(|now| at <= now));
        match anchor {
            Some((_, at)) => Cutoff::After(self.calendar.reach_back(at, within)),
            None => Cutoff::Everything,
        }
    }

    /// How far the rules reach: to the last pick each counting rule needed (everything when one
    /// ran out of backups first) and to the oldest backup within `within`.
    fn reach(&self, counters: &[Counter], cutoff: Cutoff) -> Reach {
        let mut reach = Reach::To(0);
        for counter in counters {
            reach = reach.max(counter.done_at.map_or(Reach::All, Reach::To));
        }
        match cutoff {
            Cutoff::Off => reach,
            Cutoff::Everything => Reach::All,
            Cutoff::After(cutoff) => {
                let inside = self
                    .order
                    .partition_point(|&i| self.whens[i].at_ms > cutoff);
                reach.max(Reach::To(inside.saturating_sub(1)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDateTime};
    use chrono_tz::Tz;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn entry(at: &str, verdict: Verdict) -> Entry {
        Entry {
            made: Made::At(ms(at)),
            verdict,
            pinned: false,
            protected: false,
        }
    }

    fn shown(plan: &Plan) -> Vec<String> {
        plan.fates.iter().map(Fate::to_string).collect()
    }

    fn utc() -> Calendar {
        Calendar::new(Tz::UTC)
    }

    #[test]
    fn an_empty_policy_keeps_everything() {
        use Verdict::{Bad, Good, Unknown};
        let entries = [
            entry("2026-01-03T00:00:00Z", Good),
            entry("2026-01-02T00:00:00Z", Bad),
            entry("2026-01-01T00:00:00Z", Unknown),
        ];
        let plan = plan(&Policy::default(), &utc(), &entries);
        assert_eq!(
            shown(&plan),
            [
                "no rule is on: everything is kept",
                "unverified: kept, counts for nothing",
                "not read yet: kept for now"
            ]
        );
        assert!(plan.is_final());
    }

    #[test]
    fn entries_in_any_order_keep_their_places() {
        use Verdict::Good;
        let entries = [
            entry("2026-01-01T00:00:00Z", Good),
            entry("2026-01-03T00:00:00Z", Good),
            entry("2026-01-02T00:00:00Z", Good),
        ];
        let plan = plan(&Policy::keep_last(2), &utc(), &entries);
        assert_eq!(shown(&plan), ["delete", "last #1", "last #2"]);
        assert_eq!(plan.order, [1, 2, 0]);
        assert_eq!(plan.deleted(), [0]);
        assert_eq!(plan.kept(), [1, 2]);
    }

    #[test]
    fn unverified_inside_the_reach_stays_and_past_it_goes() {
        use Verdict::{Bad, Good};
        let entries = [
            entry("2026-01-05T00:00:00Z", Bad),
            entry("2026-01-04T00:00:00Z", Good),
            entry("2026-01-03T00:00:00Z", Bad),
            entry("2026-01-02T00:00:00Z", Good),
            entry("2026-01-01T00:00:00Z", Bad),
        ];
        let plan = plan(&Policy::keep_last(2), &utc(), &entries);
        assert_eq!(
            shown(&plan),
            [
                "unverified: kept, counts for nothing",
                "last #1",
                "unverified: kept, counts for nothing",
                "last #2",
                "delete (unverified, older than what the rules keep)"
            ]
        );
        assert_eq!(plan.unverified_kept(), [0, 2]);
        // Fewer verified than the rule asks for: nothing unverified goes.
        let plan = super::plan(&Policy::keep_last(3), &utc(), &entries);
        assert_eq!(plan.deleted(), Vec::<usize>::new());
    }

    #[test]
    fn the_oldest_backup_is_kept_while_a_rule_has_periods_left() {
        use Verdict::Good;
        let entries = [
            entry("2026-01-02T12:00:00Z", Good),
            entry("2026-01-02T06:00:00Z", Good),
            entry("2026-01-01T12:00:00Z", Good),
            entry("2026-01-01T06:00:00Z", Good),
        ];
        let policy = Policy::parse("daily=3").unwrap();
        let plan = plan(&policy, &utc(), &entries);
        assert_eq!(
            shown(&plan),
            [
                "daily 2026-01-02",
                "delete",
                "daily 2026-01-01",
                "oldest daily 2026-01-01"
            ]
        );
        // With no period left, the oldest goes.
        let plan = super::plan(&Policy::parse("daily=2").unwrap(), &utc(), &entries);
        assert_eq!(plan.deleted(), [1, 3]);
    }

    #[test]
    fn within_counts_back_from_the_newest_backup_not_from_a_future_one() {
        use Verdict::Good;
        let entries = [
            // Made by a node whose clock ran a year ahead.
            entry("2027-06-01T00:00:00Z", Good),
            entry("2026-06-01T00:00:00Z", Good),
            entry("2026-05-31T01:00:00Z", Good),
            entry("2026-05-30T23:00:00Z", Good),
        ];
        let policy = Policy::parse("within=1d").unwrap();
        let now = ms("2026-06-01T12:00:00Z");
        let plan = plan(&policy, &utc().now(now), &entries);
        assert_eq!(
            shown(&plan),
            ["within 1d", "within 1d", "within 1d", "delete"]
        );
        // Without the present, the future backup is the newest: only it stays.
        let plan = super::plan(&policy, &utc(), &entries);
        assert_eq!(shown(&plan), ["within 1d", "delete", "delete", "delete"]);
        // Only future backups: nothing to count back from, everything stays.
        let plan = super::plan(&policy, &utc().now(now), &entries[..1]);
        assert_eq!(shown(&plan), ["within 1d"]);
    }

    #[test]
    fn reading_an_unknown_backup_can_only_delete_more() {
        use Verdict::{Good, Unknown};
        // daily=1: the unknown newest one, if good, takes the day from the good one.
        let entries = [
            entry("2026-01-01T12:00:00Z", Unknown),
            entry("2026-01-01T06:00:00Z", Good),
            entry("2025-12-31T06:00:00Z", Unknown),
        ];
        let policy = Policy::parse("daily=1").unwrap();
        let plan = plan(&policy, &utc(), &entries);
        assert_eq!(
            shown(&plan),
            [
                "not read yet: kept for now",
                "daily 2026-01-01",
                "delete (not read, older than what the rules keep)"
            ]
        );
        assert_eq!((plan.to_read.clone(), plan.needed), (vec![0], 1));
        let mut read = entries;
        read[0].verdict = Good;
        let plan = super::plan(&policy, &utc(), &read);
        assert_eq!(shown(&plan)[..2], ["daily 2026-01-01", "delete"]);
        assert!(plan.is_final());
    }

    #[test]
    fn reasons_come_in_a_fixed_order() {
        let entries = [Entry {
            made: Made::Named(
                NaiveDateTime::parse_from_str("2026-11-30 02:00:00", "%Y-%m-%d %H:%M:%S").unwrap(),
            ),
            verdict: Verdict::Good,
            pinned: true,
            protected: true,
        }];
        let policy =
            Policy::parse("within=2d yearly=1 monthly=1 weekly=1 daily=1 hourly=1 last=1").unwrap();
        let plan = plan(&policy, &utc(), &entries);
        assert_eq!(
            shown(&plan),
            ["last #1, hourly 2026-11-30 02:00, daily 2026-11-30, weekly 2026-W49, monthly 2026-11, yearly 2026, within 2d, pinned, protected"]
        );
    }
}
