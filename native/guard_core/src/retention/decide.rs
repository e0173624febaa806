//! Keep-N, the rule of retention before policies, as one pure function, [`decide`]: no clock, no
//! file system, only what is known of each export, newest first. Retention now decides with
//! [`super::plan`], which grew from it and, with `last=N` alone, decides exactly as it does: the
//! property tests hold the plan to this reference ([`Verdict`] is shared by both).

/// What retention knows of one export when it decides ([`decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It verifies (read now, or a record whose identity matches says so).
    Good,
    /// It does not verify, or its check reached no verdict this time (a read error).
    Bad,
    /// Not known yet: no record matches it and it has not been read.
    Unknown,
}

/// One export as [`decide`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub verdict: Verdict,
    /// Never to be deleted (the backup just made, or a copy just received).
    pub protected: bool,
}

/// What [`decide`] found. Every list holds indices into the candidates, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// To delete: every export older than the `keep`-th newest good one, except the protected.
    /// While [`Decision::to_read`] is not empty these are the exports doomed whatever the unknown
    /// ones turn out to be (more may follow).
    pub delete: Vec<usize>,
    /// Bad exports newer than the `keep`-th newest good one (all bad ones when fewer than `keep`
    /// are good): neither counted nor deleted.
    pub skipped: Vec<usize>,
    /// Unknown exports whose verdict can change the decision: those newer than the `keep`-th
    /// newest good one. Empty: the decision is final.
    pub to_read: Vec<usize>,
    /// How many of `to_read`, from the front, are needed at least: the decision is final after
    /// these if each of them turns out good (more are needed for each that does not).
    pub needed: usize,
}

/// The rule of retention over `candidates`, given newest first (by the time in their names):
/// keep the newest `keep` good exports, delete every export older than the oldest of them.
///
/// - Only good exports count. A bad one newer than the `keep`-th good one is left in place and
///   reported ([`Decision::skipped`]); one older than it is deleted like any other. Fewer than
///   `keep` good exports: nothing is deleted (an unverified file never pushes out a verified one).
/// - Protection stops a deletion and does nothing else: a protected export counts only for what
///   its verdict is, in its place by time. So it never displaces a newer good one; a protected
///   export older than the `keep`-th good one is kept besides them (the kept set is one larger).
/// - Unknown exports are counted as not good; those that could change the decision are listed in
///   [`Decision::to_read`] (newest first). Reading the first and deciding again, until none is
///   left, reads each export at most once and reads none that cannot matter.
///
/// A pure function (no clock, no file system), so that other rules can grow from it.
///
/// ```
/// use guard_core::retention::{decide, Candidate, Verdict};
///
/// let export = |verdict| Candidate { verdict, protected: false };
/// let (good, bad, unknown) = (Verdict::Good, Verdict::Bad, Verdict::Unknown);
///
/// // Newest first; keep 2: the bad one is skipped, the 2nd good one is the boundary.
/// let d = decide(&[export(good), export(bad), export(good), export(good), export(bad)], 2);
/// assert_eq!((d.delete, d.skipped), (vec![3, 4], vec![1]));
///
/// // Fewer good than `keep`: nothing is deleted.
/// assert!(decide(&[export(good), export(bad)], 2).delete.is_empty());
///
/// // Protection only stops a deletion: the protected one is kept besides the newest good one.
/// let old = Candidate { verdict: good, protected: true };
/// assert_eq!(decide(&[export(good), old, export(good)], 1).delete, [2]);
///
/// // An unknown export that can change the decision must be read first (then decide again).
/// let d = decide(&[export(unknown), export(good), export(good)], 1);
/// assert_eq!((d.to_read, d.needed, d.delete), (vec![0], 1, vec![2]));
/// ```
pub fn decide(candidates: &[Candidate], keep: usize) -> Decision {
    let mut decision = Decision::default();
    let mut good = 0;
    // Good plus unknown so far: the count if every unknown one turned out good.
    let mut good_at_best = 0;
    for (i, candidate) in candidates.iter().enumerate() {
        if good >= keep {
            if !candidate.protected {
                decision.delete.push(i);
            }
            continue;
        }
        match candidate.verdict {
            Verdict::Good => {
                good += 1;
                good_at_best += 1;
            }
            Verdict::Bad => decision.skipped.push(i),
            Verdict::Unknown => {
                if good_at_best < keep {
                    decision.needed += 1;
                }
                good_at_best += 1;
                decision.to_read.push(i);
            }
        }
    }
    decision
}
