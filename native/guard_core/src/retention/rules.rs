//! What retention decides by besides the backups themselves: the [`Policy`], the [`Calendar`],
//! the pins, and what is recorded of when each backup was made. [`Rules`] turns an export name
//! into the [`Entry`] the decision ([`super::plan`]) takes, the same way for the backups on this
//! node's disk and for the off-site copies.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDateTime;

use super::calendar::{Calendar, Made};
use super::plan::Entry;
use super::policy::Policy;
use super::{is_export_name, Verdict};

/// The rules of one retention: the policy, the calendar its periods are counted in, the pinned
/// export names (never deleted) and the recorded run starts (Unix ms) by export name.
///
/// ```
/// use guard_core::retention::{Calendar, Made, Policy, Rules, Verdict};
///
/// let mut rules = Rules::new(Policy::parse("daily=7")?, Calendar::new(chrono_tz::UTC));
/// rules.pins.insert("emqx-export-2026-11-01-02-00-00.000.tar.gz".to_string());
/// rules.made.insert("emqx-export-2026-11-30-02-00-00.000.tar.gz".to_string(), 1_796_004_000_000);
///
/// let recorded = rules.entry("emqx-export-2026-11-30-02-00-00.000.tar.gz", Verdict::Good, false);
/// assert_eq!(recorded.map(|e| e.made), Some(Made::At(1_796_004_000_000)));
/// let pinned = rules.entry("emqx-export-2026-11-01-02-00-00.000.tar.gz", Verdict::Good, false);
/// assert!(pinned.is_some_and(|e| e.pinned && matches!(e.made, Made::Named(_))));
/// assert!(rules.entry("upload.tar.gz", Verdict::Good, false).is_none());
/// # Ok::<(), guard_core::retention::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub policy: Policy,
    pub calendar: Calendar,
    pub pins: BTreeSet<String>,
    pub made: HashMap<String, i64>,
}

impl Rules {
    /// `policy` in `calendar`, nothing pinned, no run start recorded.
    pub fn new(policy: Policy, calendar: Calendar) -> Rules {
        Rules {
            policy,
            calendar,
            pins: BTreeSet::new(),
            made: HashMap::new(),
        }
    }

    /// `last=n` alone (periods do not matter, so the calendar is UTC's): keep-N.
    pub fn keep_last(n: u32) -> Rules {
        Rules::new(Policy::keep_last(n), Calendar::new(chrono_tz::UTC))
    }

    /// When the export `name` was made: its recorded run start, else the wall time in its name.
    /// `None` for a name that is not an export name.
    pub fn made_of(&self, name: &str) -> Option<Made> {
        match self.made.get(name) {
            Some(&ms) if is_export_name(name) => Some(Made::At(ms)),
            _ => export_wall_time(name).map(Made::Named),
        }
    }

    /// The export `name` as the decision sees it (`None` for a name that is not an export name).
    pub fn entry(&self, name: &str, verdict: Verdict, protected: bool) -> Option<Entry> {
        Some(Entry {
            made: self.made_of(name)?,
            verdict,
            pinned: self.pins.contains(name),
            protected,
        })
    }
}

/// The wall time written in an export name (`emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz`), or
/// `None` when `name` is not an export name.
pub fn export_wall_time(name: &str) -> Option<NaiveDateTime> {
    if !is_export_name(name) {
        return None;
    }
    let stamp = name.strip_prefix("emqx-export-")?.strip_suffix(".tar.gz")?;
    NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d-%H-%M-%S%.3f").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_time_of_an_export_name() {
        let wall = export_wall_time("emqx-export-2024-02-29-23-59-58.007.tar.gz").unwrap();
        assert_eq!(wall.to_string(), "2024-02-29 23:59:58.007");
        assert_eq!(
            export_wall_time("emqx-export-2023-02-29-23-59-58.007.tar.gz"),
            None
        );
        assert_eq!(export_wall_time("emqx-export-manual.tar.gz"), None);
    }

    #[test]
    fn a_recorded_start_wins_over_the_name_but_only_for_an_export_name() {
        let mut rules = Rules::keep_last(1);
        let name = "emqx-export-2026-01-01-00-00-00.000.tar.gz";
        rules.made.insert(name.to_string(), 42);
        rules.made.insert("other.tar.gz".to_string(), 42);
        assert_eq!(rules.made_of(name), Some(Made::At(42)));
        assert_eq!(rules.made_of("other.tar.gz"), None);
    }
}
