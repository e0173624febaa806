//! Which files in EMQX's backup directory are exports, and pruning them under a retention policy
//! (restic's rules; keep-last N the simplest), counting only the exports that verify.
//!
//! Only regular files directly in the directory whose names are EMQX export names
//! (`emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz`, see [`is_export_name`]) exist for retention.
//! Uploads, hand-named files, temporary files, subdirectories and symlinks (whatever their names) are
//! invisible: never listed, never counted, never deleted. The directory itself may be a symlink (it
//! is resolved once); entries inside it never are.
//!
//! Verification records ([`crate::record`]): [`prune_with_records`] and [`list_verified`] take
//! the records the caller kept from earlier verifications and verify only the exports that no
//! record's identity matches (new, unknown or changed files); they return the records of what
//! they verified, for the caller to keep.
//!
//! The rule of retention is one pure function, [`plan`] (no clock, no file system): given the
//! [`Policy`] (the operator's text), the [`Calendar`] its periods are counted in and what is
//! known of each export (its time, its verdict, a pin), it says for every export the rule(s)
//! that keep it or why it goes, and which unknown exports must be read before the decision is
//! final. [`Rules`] gathers what it decides by. [`prune_with_records`] lists the directory,
//! reads what the plan asks for (newest first, one at a time, [`Planner`]) and then deletes;
//! the off-site prune makes the same decision over the remote objects. [`decide`] is the keep-N
//! rule the plan grew from, kept as the reference `last=N` is tested against.

use std::cmp::Ordering;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use chrono::NaiveDate;

use crate::reading::ReadControl;
use crate::record::{self, FileId, Record, Trusted};

mod calendar;
mod decide;
mod listing;
mod plan;
mod policy;
mod rules;

pub use calendar::{Calendar, Made, Period, Unit};
pub use decide::{decide, Candidate, Decision, Verdict};
pub use listing::{list_verified, Check, Listed, Listing};
pub use plan::{plan, Deletion, Entry, Fate, Plan, Planner, Reason};
pub use policy::{Policy, PolicyError, Rule, Within, MAX_COUNT};
pub use rules::{export_wall_time, Rules};

/// One export file in the backup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// File name, an export name.
    pub name: String,
    /// `dir` joined with `name`.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, Unix milliseconds.
    pub mtime_ms: i64,
    /// Modification time, Unix nanoseconds (part of the file's identity).
    pub mtime_ns: i64,
    /// Inode number (part of the file's identity).
    pub inode: u64,
    /// Device number (part of the file's identity).
    pub dev: u64,
}

impl Backup {
    /// The identity a verification record of this file must match ([`crate::record`]).
    pub fn id(&self) -> FileId {
        FileId {
            name: self.name.clone(),
            size: self.size,
            mtime_ns: self.mtime_ns,
            inode: self.inode,
            dev: self.dev,
        }
    }
}

/// What [`prune`] did, each list oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Files deleted (on a dry run: the files that would be deleted).
    pub deleted: Vec<Backup>,
    /// Files that could not be deleted, with a one-line reason; the other deletions went ahead.
    pub failed: Vec<(Backup, String)>,
    /// Export files within the rules' reach that do not verify, with the verifier's one-line
    /// reason: neither counted nor deleted ([`Reason::Unverified`]).
    pub skipped_unverified: Vec<(Backup, String)>,
    /// Every export and what the decision made of it, newest first: the same for a dry run and
    /// for the real prune (a deletion that failed is in `failed` too).
    pub plan: Vec<(Backup, Fate)>,
    /// The records of the exports verified in this call (good and bad, newest first); exports
    /// trusted from a record are not in it.
    pub verified_now: Vec<Record>,
    /// Bytes read from the backup directory's files by this call's verifications.
    pub bytes_read: u64,
}

/// Why listing or pruning could not start. [`RetentionError::reason`] is a stable short name;
/// `Display` is one line for a person.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The policy has no rule on: it would keep nothing, so nothing is done.
    #[error("the retention policy has no rule on: set at least one, e.g. last=5")]
    BadKeep,
    /// The backup directory is missing or not a directory.
    #[error("{}: {}: check the backup directory setting", shown(.dir), .detail)]
    NotADirectory { dir: PathBuf, detail: String },
    /// Reading the directory failed.
    #[error("{}: cannot read the backup directory: {}", shown(.dir), .source)]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The work was cancelled before it finished: nothing was deleted (the verdicts reached
    /// were reported as they came, see [`prune_reporting`]).
    #[error("{}: retention cancelled before it finished (the plugin stopped or the job was cancelled); nothing was deleted", shown(.dir))]
    Cancelled { dir: PathBuf },
}

impl RetentionError {
    /// Stable short name of the failure, used as the Erlang error atom.
    pub fn reason(&self) -> &'static str {
        match self {
            RetentionError::BadKeep => "bad_keep",
            RetentionError::NotADirectory { .. } => "not_a_directory",
            RetentionError::Io { .. } => "io",
            RetentionError::Cancelled { .. } => "cancelled",
        }
    }
}

fn shown(path: &Path) -> String {
    path.to_string_lossy().escape_default().to_string()
}

const PREFIX: &str = "emqx-export-";
const SUFFIX: &str = ".tar.gz";

/// The time written in an export name, as comparable digits (`YYYYMMDDHHMMSSmmm`).
fn name_time(name: &str) -> Option<u64> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.as_bytes();
    // YYYY-MM-DD-HH-MM-SS.mmm
    const SHAPE: &[u8; 23] = b"dddd-dd-dd-dd-dd-dd.ddd";
    if stamp.len() != SHAPE.len() {
        return None;
    }
    for (c, want) in stamp.iter().zip(SHAPE) {
        let ok = match want {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        };
        if !ok {
            return None;
        }
    }
    let num = |from: usize, len: usize| {
        stamp[from..from + len]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 2), num(8, 2));
    let (hour, minute, second, milli) = (num(11, 2), num(14, 2), num(17, 2), num(20, 3));
    let year_i32 = i32::try_from(year).ok()?;
    if year < 1970 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    NaiveDate::from_ymd_opt(year_i32, month, day)?;
    let digits = [year, month, day, hour, minute, second]
        .iter()
        .fold(u64::from(0u8), |acc, v| acc * 100 + u64::from(*v));
    Some(digits * 1000 + u64::from(milli))
}

/// True when `name` is exactly an EMQX export name: `emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz`
/// with ASCII digits, a real calendar date from 1970 on, hour 0-23, minute and second 0-59.
///
/// ```
/// use guard_core::retention::is_export_name;
///
/// assert!(is_export_name("emqx-export-2026-11-27-18-58-45.951.tar.gz"));
/// assert!(!is_export_name("emqx-export-2026-02-30-18-58-45.951.tar.gz")); // no February 30
/// assert!(!is_export_name("emqx-export-2026-11-27-18-58-45.tar.gz")); // no milliseconds
/// assert!(!is_export_name("my-upload.tar.gz"));
/// ```
pub fn is_export_name(name: &str) -> bool {
    name_time(name).is_some()
}

/// Newest first: by the time in the name, then by mtime, then by name.
fn newest_first(a: &Backup, b: &Backup) -> Ordering {
    let key = |x: &Backup| (name_time(&x.name), x.mtime_ms);
    key(b).cmp(&key(a)).then_with(|| b.name.cmp(&a.name))
}

fn mtime_ms(meta: &fs::Metadata) -> i64 {
    match meta.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis())
                .map(|ms| -ms)
                .unwrap_or(i64::MIN),
        },
        Err(_) => 0,
    }
}

/// Checks that `dir` is a directory (following a symlink for `dir` itself only).
fn check_dir(dir: &Path) -> Result<(), RetentionError> {
    let not_a_dir = |detail: &str| RetentionError::NotADirectory {
        dir: dir.to_path_buf(),
        detail: detail.to_string(),
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(not_a_dir("not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_a_dir("no such directory")),
        Err(e) => Err(RetentionError::Io {
            dir: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// The export files directly in `dir`, newest first by the time in their names (mtime, then name,
/// break ties). Only regular files count: symlinks and directories are skipped without being
/// followed, as is every file whose name is not an export name. A file that disappears while
/// listing is skipped.
///
/// ```
/// use guard_core::retention::list_backups;
///
/// # let dir = tempfile::tempdir()?;
/// for name in ["emqx-export-2026-01-01-00-00-00.000.tar.gz", "my-upload.tar.gz",
///              "emqx-export-2026-01-02-00-00-00.000.tar.gz"] {
///     std::fs::write(dir.path().join(name), b"x")?;
/// }
/// let names: Vec<String> = list_backups(dir.path())?.into_iter().map(|b| b.name).collect();
/// assert_eq!(names, ["emqx-export-2026-01-02-00-00-00.000.tar.gz",
///                    "emqx-export-2026-01-01-00-00-00.000.tar.gz"]);
/// let missing = list_backups(&dir.path().join("nope")).unwrap_err();
/// assert_eq!(missing.reason(), "not_a_directory");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_backups(dir: &Path) -> Result<Vec<Backup>, RetentionError> {
    check_dir(dir)?;
    let io_err = |source: io::Error| RetentionError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        if !is_export_name(name) {
            continue;
        }
        let path = dir.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(e)),
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let id = FileId::from_metadata(name, &meta);
        found.push(Backup {
            name: name.to_string(),
            path,
            size: meta.len(),
            mtime_ms: mtime_ms(&meta),
            mtime_ns: id.mtime_ns,
            inode: meta.ino(),
            dev: meta.dev(),
        });
    }
    found.sort_by(newest_first);
    Ok(found)
}

/// Applies `rules` to the exports in `dir` ([`plan`]: the policy, counting only exports that
/// verify, in the rules' calendar, pins never deleted) and deletes what no rule keeps; returns
/// what was deleted (or, when `dry_run`, what would be), oldest first, and the whole plan. With
/// [`Rules::keep_last`] it keeps the newest N that verify, as it always has.
///
/// - A policy with no rule on is refused (`bad_keep`): it would keep nothing.
/// - Only backups that pass [`crate::verify::verify`] count. The exports whose verdict matters
///   are verified newest first, one at a time, until the decision is final ([`Plan::to_read`]);
///   one past the rules' reach is deleted without being read. An export within the reach that
///   does not verify is neither counted nor deleted: it is listed in
///   [`PruneReport::skipped_unverified`]. When the rules find fewer verified backups than they
///   ask for, nothing that does not verify is deleted: a verified backup is never deleted to
///   make room for an unverified one.
/// - When each export was made is its recorded run start ([`Rules::made`]) or else the wall time
///   in its name, read in [`Calendar::names_zone`].
/// - Pinned exports ([`Rules::pins`]) and `protect` (the backup just made or just copied in) are
///   never deleted, and that is all they do: each counts only as what it is (a verified export
///   in its place by time), so it never displaces a newer verified backup. `protect` is matched
///   by file name: the name it was given with (whatever its directory, to stay on the safe side)
///   and the name of its canonical path when that lies directly in `dir`.
/// - Each candidate is checked again with `symlink_metadata` right before removal and must still be
///   a regular file; only `dir/<export name>` is ever removed, so nothing outside `dir` is touched
///   and no symlink is followed.
/// - A delete that fails is reported in `failed` and the others go ahead. A candidate that vanished
///   meanwhile (someone else deleted it) appears in neither list.
///
/// ```
/// use guard_core::retention::{prune, Rules};
///
/// # let dir = tempfile::tempdir()?;
/// # let d = dir.path();
/// # let fixture = concat!(env!("CARGO_MANIFEST_DIR"),
/// #     "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// // A real export, an older file and a newer one that is cut short, all with export names:
/// std::fs::copy(fixture, d.join("emqx-export-2026-11-27-18-58-45.951.tar.gz"))?;
/// std::fs::write(d.join("emqx-export-2026-01-01-00-00-00.000.tar.gz"), b"old")?;
/// std::fs::write(d.join("emqx-export-2026-12-01-00-00-00.000.tar.gz"), b"")?;
///
/// let report = prune(d, &Rules::keep_last(1), None, false)?;
/// // The one that verifies is kept; what is older goes; the newer one that does not verify is
/// // neither counted nor deleted.
/// assert_eq!(report.deleted[0].name, "emqx-export-2026-01-01-00-00-00.000.tar.gz");
/// assert_eq!(report.skipped_unverified[0].0.name, "emqx-export-2026-12-01-00-00-00.000.tar.gz");
/// assert_eq!(std::fs::read_dir(d)?.count(), 2);
/// assert_eq!(report.plan[1].1.to_string(), "last #1");
/// assert_eq!(prune(d, &Rules::keep_last(0), None, true).unwrap_err().reason(), "bad_keep");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn prune(
    dir: &Path,
    rules: &Rules,
    protect: Option<&Path>,
    dry_run: bool,
) -> Result<PruneReport, RetentionError> {
    prune_with_records(
        dir,
        rules,
        protect,
        dry_run,
        &[],
        &mut ReadControl::unlimited(),
    )
}

/// [`prune`], trusting earlier verifications: an export whose identity (name, size, mtime in
/// nanoseconds, inode, device) matches one of `trusted` is not read; it counts when its record
/// says it verified, and is reported in `skipped_unverified` (with the record's
/// reason) when it did not. Every other export considered is verified through `control` (rate
/// limited, cancellable, counted in [`PruneReport::bytes_read`]) and its record returned in
/// [`PruneReport::verified_now`] (no record when the check reached no verdict, e.g. a read
/// error: such a file is skipped, as before, and checked again next time).
///
/// When `control`'s job is cancelled while verifying, nothing is deleted and the result is
/// [`RetentionError::Cancelled`].
///
/// ```
/// use guard_core::reading::ReadControl;
/// use guard_core::record::Trusted;
/// use guard_core::retention::{prune_with_records, Rules};
///
/// # let dir = tempfile::tempdir()?;
/// # let d = dir.path();
/// # let fixture = concat!(env!("CARGO_MANIFEST_DIR"),
/// #     "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// std::fs::copy(fixture, d.join("emqx-export-2026-11-27-18-58-45.951.tar.gz"))?;
/// let keep_one = Rules::keep_last(1);
/// let first = prune_with_records(d, &keep_one, None, true, &[], &mut ReadControl::unlimited())?;
/// assert!(first.verified_now[0].is_good() && first.bytes_read > 0);
///
/// // The caller keeps the records; while the file is the same, it is not read again.
/// let trusted: Vec<Trusted> = first.verified_now.iter().map(Trusted::from).collect();
/// let again = prune_with_records(d, &keep_one, None, true, &trusted, &mut ReadControl::unlimited())?;
/// assert_eq!((again.verified_now.len(), again.bytes_read), (0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn prune_with_records(
    dir: &Path,
    rules: &Rules,
    protect: Option<&Path>,
    dry_run: bool,
    trusted: &[Trusted],
    control: &mut ReadControl,
) -> Result<PruneReport, RetentionError> {
    prune_reporting(dir, rules, protect, dry_run, trusted, control, &mut |_| {})
}

/// How far [`prune_reporting`] has got with reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'r> {
    /// Exports read so far by this call.
    pub checked: usize,
    /// Their sizes, as listed.
    pub checked_bytes: u64,
    /// Exports still to read at least: the decision is final after these if each verifies
    /// ([`Plan::needed`]); more when some do not.
    pub remaining: usize,
    /// Their sizes, as listed.
    pub remaining_bytes: u64,
    /// Bytes read by this call so far (less than `checked_bytes` when a bad file was refused
    /// before its end).
    pub bytes_read: u64,
    /// The record of the export just read, when its check reached a verdict: for the caller to
    /// keep at once, so that the next call does not read it again even if this one never ends.
    pub record: Option<&'r Record>,
}

/// [`prune_with_records`], reporting as it goes: `report` is called once after listing (nothing
/// checked yet; `remaining` is what is left to read) and once after each export read, with that
/// export's record. A call cut short (cancelled, or its caller gone) has handed over every
/// verdict it reached, so the next one resumes where this one stopped.
///
/// ```
/// use guard_core::reading::ReadControl;
/// use guard_core::retention::{prune_reporting, Rules};
///
/// # let dir = tempfile::tempdir()?;
/// # let d = dir.path();
/// # let fixture = concat!(env!("CARGO_MANIFEST_DIR"),
/// #     "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// std::fs::copy(fixture, d.join("emqx-export-2026-11-27-18-58-45.951.tar.gz"))?;
/// let mut reports = Vec::new();
/// let mut report = |p: &guard_core::retention::Progress<'_>| {
///     reports.push((p.checked, p.remaining, p.record.map(|r| r.is_good())));
/// };
/// let keep_one = Rules::keep_last(1);
/// prune_reporting(d, &keep_one, None, true, &[], &mut ReadControl::unlimited(), &mut report)?;
/// // After listing: one file to read; after reading it: its verdict.
/// assert_eq!(reports, [(0, 1, None), (1, 0, Some(true))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn prune_reporting(
    dir: &Path,
    rules: &Rules,
    protect: Option<&Path>,
    dry_run: bool,
    trusted: &[Trusted],
    control: &mut ReadControl,
    report: &mut dyn FnMut(&Progress<'_>),
) -> Result<PruneReport, RetentionError> {
    let callbacks = Callbacks {
        progress: report,
        step: &mut |_, _| {},
    };
    prune_with_hook(dir, rules, protect, dry_run, trusted, control, callbacks)
}

/// The point of a removal at which [`prune_with_hook`] calls its hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Before the candidate is checked again.
    BeforeCheck,
    /// After the check, right before `remove_file`.
    BeforeRemove,
}

/// What [`prune_with_hook`] calls back.
struct Callbacks<'c> {
    /// After listing and after each file read (see [`prune_reporting`]).
    progress: &'c mut dyn FnMut(&Progress<'_>),
    /// At each [`Step`] of each removal (tests use it to change the directory at the worst
    /// moment).
    step: &'c mut dyn FnMut(Step, &Path),
}

/// [`prune_reporting`], with a hook at each step of each removal.
fn prune_with_hook(
    dir: &Path,
    rules: &Rules,
    protect: Option<&Path>,
    dry_run: bool,
    trusted: &[Trusted],
    control: &mut ReadControl,
    callbacks: Callbacks<'_>,
) -> Result<PruneReport, RetentionError> {
    if rules.policy.is_empty() {
        return Err(RetentionError::BadKeep);
    }
    let backups = list_backups(dir)?;
    let mut known = Known::new(&backups, rules, trusted, &Protection::new(dir, protect));
    let mut report = PruneReport::default();
    let plan = known.read_until_final(dir, control, callbacks.progress, &mut report)?;
    report.skipped_unverified = plan
        .unverified_kept()
        .iter()
        .rev()
        .map(|&i| {
            (
                backups[i].clone(),
                known.reasons[i].clone().unwrap_or_default(),
            )
        })
        .collect();
    report.plan = plan
        .order
        .iter()
        .map(|&i| (backups[i].clone(), plan.fates[i].clone()))
        .collect();
    let doomed = plan.deleted().into_iter().rev().map(|i| backups[i].clone());
    if dry_run {
        report.deleted.extend(doomed);
    } else {
        for backup in doomed {
            remove(dir, backup, callbacks.step, &mut report);
        }
    }
    Ok(report)
}

/// What retention knows of each export (in listing order), and why the bad ones are bad.
struct Known<'b> {
    backups: &'b [Backup],
    planner: Planner,
    reasons: Vec<Option<String>>,
}

impl<'b> Known<'b> {
    /// What the records say of `backups` (trusted verdicts, the rest unknown), under `rules`.
    fn new(
        backups: &'b [Backup],
        rules: &Rules,
        trusted: &[Trusted],
        protection: &Protection,
    ) -> Self {
        let mut reasons: Vec<Option<String>> = vec![None; backups.len()];
        let mut entries: Vec<Entry> = Vec::with_capacity(backups.len());
        for (i, backup) in backups.iter().enumerate() {
            let verdict = match record::find(trusted, &backup.id()) {
                None => Verdict::Unknown,
                Some((_, known)) => match &known.failure {
                    None => Verdict::Good,
                    Some(detail) => {
                        reasons[i] = Some(detail.clone());
                        Verdict::Bad
                    }
                },
            };
            // Listed backups have export names, so they have a time.
            let made = rules
                .made_of(&backup.name)
                .unwrap_or(Made::At(backup.mtime_ms));
            entries.push(Entry {
                made,
                verdict,
                pinned: rules.pins.contains(&backup.name),
                protected: protection.covers(backup),
            });
        }
        Known {
            backups,
            planner: Planner::new(rules.policy, rules.calendar, entries),
            reasons,
        }
    }

    /// Reads what the decision still depends on, newest first, until it is final, and says how
    /// far it got after listing and after each file (with that file's record). The records of
    /// what was read and the bytes read go into `report`.
    fn read_until_final(
        &mut self,
        dir: &Path,
        control: &mut ReadControl,
        progress: &mut dyn FnMut(&Progress<'_>),
        report: &mut PruneReport,
    ) -> Result<Plan, RetentionError> {
        let start = control.bytes_read();
        let mut decision = self.planner.plan();
        let (mut checked, mut checked_bytes) = (0, 0);
        progress(&self.progress(&decision, checked, checked_bytes, 0, None));
        while let Some(&next) = decision.to_read.first() {
            let (result, record) = record::verify_recorded(&self.backups[next].path, control);
            if control.is_cancelled() {
                return Err(RetentionError::Cancelled {
                    dir: dir.to_path_buf(),
                });
            }
            let verdict = match result {
                Ok(_) => Verdict::Good,
                // A verdict, or a check without one (a read error): either way it does not count.
                Err(e) => {
                    self.reasons[next] = Some(e.to_string());
                    Verdict::Bad
                }
            };
            self.planner.set_verdict(next, verdict);
            decision = self.planner.plan();
            checked += 1;
            checked_bytes += self.backups[next].size;
            let read = control.bytes_read() - start;
            progress(&self.progress(&decision, checked, checked_bytes, read, record.as_ref()));
            report.verified_now.extend(record);
        }
        report.bytes_read = control.bytes_read() - start;
        Ok(decision)
    }

    /// The progress report after `checked` files: what `decision` still needs read at least.
    fn progress<'r>(
        &self,
        decision: &Plan,
        checked: usize,
        checked_bytes: u64,
        bytes_read: u64,
        record: Option<&'r Record>,
    ) -> Progress<'r> {
        let needed = &decision.to_read[..decision.needed];
        Progress {
            checked,
            checked_bytes,
            remaining: needed.len(),
            remaining_bytes: needed.iter().map(|&i| self.backups[i].size).sum(),
            bytes_read,
            record,
        }
    }
}

/// Removes `dir/<backup's name>` when it is still a regular file, reporting it in `deleted` or
/// `failed` (a file gone meanwhile is in neither). `hook` is called at each [`Step`].
fn remove(dir: &Path, backup: Backup, hook: &mut dyn FnMut(Step, &Path), report: &mut PruneReport) {
    // Only ever `dir/<export name>`: the name was checked when listing, it has no separator.
    let target = dir.join(&backup.name);
    hook(Step::BeforeCheck, &target);
    match fs::symlink_metadata(&target) {
        Ok(meta) if meta.file_type().is_file() => {}
        Ok(meta) => {
            let what = if meta.file_type().is_symlink() {
                "a symlink"
            } else if meta.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            let why = format!("it is now {what}, so it was left alone");
            report.failed.push((backup, why));
            return;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            report.failed.push((backup, e.to_string()));
            return;
        }
    }
    hook(Step::BeforeRemove, &target);
    match fs::remove_file(&target) {
        Ok(()) => report.deleted.push(backup),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => report.failed.push((backup, e.to_string())),
    }
}

/// The protected file, matched by file name: the name `protect` was given with, and the name of its
/// canonical path when that lies directly in `dir` (so a relative or symlinked `protect` works too).
struct Protection {
    names: Vec<String>,
}

impl Protection {
    fn new(dir: &Path, protect: Option<&Path>) -> Self {
        let mut names = Vec::new();
        let name_of = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(str::to_string);
        if let Some(protect) = protect {
            names.extend(name_of(protect));
            let canonical = fs::canonicalize(protect).ok();
            let canonical_dir = fs::canonicalize(dir).ok();
            if let (Some(file), Some(dir)) = (canonical, canonical_dir) {
                if file.parent() == Some(dir.as_path()) {
                    names.extend(name_of(&file));
                }
            }
        }
        Protection { names }
    }

    fn covers(&self, backup: &Backup) -> bool {
        self.names.contains(&backup.name)
    }
}

/// SplitMix64 of the randomized tests, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/rng.rs"]
mod test_rng;

#[cfg(test)]
mod tests {
    use super::*;

    /// `last=n` alone.
    fn last(n: usize) -> Rules {
        Rules::keep_last(u32::try_from(n).unwrap_or(u32::MAX))
    }
    use std::os::unix::fs::symlink;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use tempfile::TempDir;

    /// Export names in increasing time order.
    const NAMES: [&str; 6] = [
        "emqx-export-2023-12-31-23-59-59.999.tar.gz",
        "emqx-export-2024-01-25-10-41-48.962.tar.gz",
        "emqx-export-2024-01-25-10-41-48.963.tar.gz",
        "emqx-export-2024-02-29-00-00-00.000.tar.gz",
        "emqx-export-2024-10-01-09-05-00.500.tar.gz",
        "emqx-export-2025-01-01-00-00-00.000.tar.gz",
    ];

    /// A small export that verifies, in EMQX's layout: one top directory named as `name` without
    /// `.tar.gz`, holding META.hocon and cluster.hocon.
    fn export_bytes(name: &str) -> Vec<u8> {
        let base = name.strip_suffix(".tar.gz").unwrap_or(name);
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut builder = tar::Builder::new(gz);
        let meta: &[u8] = b"edition = ce\nversion = \"5.3.2\"\n";
        for (path, data) in [
            (format!("{base}/META.hocon"), meta),
            (format!("{base}/cluster.hocon"), b"".as_slice()),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// A file named `name` that verifies (see [`export_bytes`]), with the given mtime.
    fn file(dir: &Path, name: &str, mtime_ms: u64) -> PathBuf {
        write_with_mtime(dir, name, &export_bytes(name), mtime_ms)
    }

    /// A file named `name` that does not verify (not gzip), with the given mtime.
    fn junk(dir: &Path, name: &str, mtime_ms: u64) -> PathBuf {
        write_with_mtime(dir, name, b"junk, not an export", mtime_ms)
    }

    fn write_with_mtime(dir: &Path, name: &str, bytes: &[u8], mtime_ms: u64) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_millis(mtime_ms))
            .unwrap();
        path
    }

    /// A directory holding all of NAMES, with mtimes in the same order as the names.
    fn six() -> TempDir {
        let dir = TempDir::new().unwrap();
        for (i, name) in NAMES.iter().enumerate() {
            file(dir.path(), name, 1_700_000_000_000 + i as u64 * 1000);
        }
        dir
    }

    /// What a report decided, without the records and byte count (which differ between runs).
    type Decisions = (Vec<Backup>, Vec<(Backup, String)>, Vec<(Backup, String)>);
    fn decisions(report: &PruneReport) -> Decisions {
        (
            report.deleted.clone(),
            report.failed.clone(),
            report.skipped_unverified.clone(),
        )
    }

    fn names(backups: &[Backup]) -> Vec<&str> {
        backups.iter().map(|b| b.name.as_str()).collect()
    }

    fn on_disk(dir: &Path) -> Vec<String> {
        let mut all: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        all.sort();
        all
    }

    #[test]
    fn export_names() {
        for good in NAMES {
            assert!(is_export_name(good), "{good}");
        }
        for bad in [
            "",
            "emqx-export-.tar.gz",
            "emqx-export-2024-01-25-10-41-48.tar.gz",
            "emqx-export-2024-01-25-10-41-48.96.tar.gz",
            "emqx-export-2024-01-25-10-41-48.9620.tar.gz",
            "emqx-export-2024-01-25-10-41-48.962.tar.gz.tmp",
            "emqx-export-2024-01-25-10-41-48.962.tgz",
            "EMQX-export-2024-01-25-10-41-48.962.tar.gz",
            "emqx-export-2024-01-25-10-41-48.962.TAR.GZ",
            " emqx-export-2024-01-25-10-41-48.962.tar.gz",
            ".emqx-export-2024-01-25-10-41-48.962.tar.gz",
            "emqx-export-2024-01-25-10-41-48.962.tar.gz/",
            "x/emqx-export-2024-01-25-10-41-48.962.tar.gz",
            "emqx-export-2024-01-25_10-41-48.962.tar.gz",
            "emqx-export-2024-13-25-10-41-48.962.tar.gz",
            "emqx-export-2024-00-25-10-41-48.962.tar.gz",
            "emqx-export-2024-01-32-10-41-48.962.tar.gz",
            "emqx-export-2024-02-30-10-41-48.962.tar.gz",
            "emqx-export-2023-02-29-10-41-48.962.tar.gz",
            "emqx-export-2024-01-25-24-41-48.962.tar.gz",
            "emqx-export-2024-01-25-10-60-48.962.tar.gz",
            "emqx-export-2024-01-25-10-41-60.962.tar.gz",
            "emqx-export-0999-01-25-10-41-48.962.tar.gz",
            "emqx-export-2024-01-25-10-41-4٨.962.tar.gz",
            "emqx-export-+024-01-25-10-41-48.962.tar.gz",
            "emqx-export-manual.tar.gz",
            "upload.tar.gz",
        ] {
            assert!(!is_export_name(bad), "{bad}");
        }
    }

    #[test]
    fn lists_only_regular_export_files_newest_first() {
        let dir = TempDir::new().unwrap();
        let outside = TempDir::new().unwrap();
        let d = dir.path();
        file(d, NAMES[1], 5_000);
        file(d, NAMES[3], 6_000);
        file(d, NAMES[0], 7_000);
        for other in [
            "my-upload.tar.gz",
            "emqx-export-manual.tar.gz",
            "emqx-export-2024-02-29-00-00-00.000.tar.gz.tmp",
            ".emqx-export-2024-02-29-00-00-00.000.tar.gz",
            "notes.txt",
        ] {
            file(d, other, 1_000);
        }
        fs::create_dir(d.join(NAMES[5])).unwrap();
        fs::write(d.join(NAMES[5]).join("META.hocon"), "x").unwrap();
        let target = file(outside.path(), NAMES[4], 1_000);
        symlink(&target, d.join(NAMES[4])).unwrap();
        symlink(d.join(NAMES[1]), d.join(NAMES[2])).unwrap();

        let listed = list_backups(d).unwrap();
        assert_eq!(names(&listed), [NAMES[3], NAMES[1], NAMES[0]]);
        let first = &listed[0];
        assert_eq!(first.path, d.join(NAMES[3]));
        assert_eq!(first.size, export_bytes(NAMES[3]).len() as u64);
        assert_eq!(first.mtime_ms, 6_000);
    }

    #[test]
    fn name_time_wins_over_mtime() {
        let dir = TempDir::new().unwrap();
        // mtimes in the opposite order of the names (e.g. files copied back from elsewhere).
        for (i, name) in NAMES.iter().enumerate() {
            file(dir.path(), name, 9_000_000 - i as u64 * 1000);
        }
        let listed = list_backups(dir.path()).unwrap();
        let mut expected = NAMES.to_vec();
        expected.reverse();
        assert_eq!(names(&listed), expected);
    }

    #[test]
    fn mtime_then_name_break_ties() {
        // Equal name times only happen for equal names, e.g. the same export seen in two places.
        let backup = |dir: &str, mtime_ms| Backup {
            name: NAMES[2].to_string(),
            path: Path::new(dir).join(NAMES[2]),
            size: 1,
            mtime_ms,
            mtime_ns: mtime_ms * 1_000_000,
            inode: 1,
            dev: 1,
        };
        let mut list = [backup("/a", 10), backup("/b", 30), backup("/c", 20)];
        list.sort_by(newest_first);
        let mtimes: Vec<i64> = list.iter().map(|b| b.mtime_ms).collect();
        assert_eq!(mtimes, [30, 20, 10]);
        let older = Backup {
            name: NAMES[1].to_string(),
            mtime_ms: 99,
            ..backup("/a", 0)
        };
        assert_eq!(newest_first(&backup("/a", 0), &older), Ordering::Less);
    }

    #[test]
    fn list_refuses_a_missing_dir_or_a_file() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("nope");
        let err = list_backups(&missing).unwrap_err();
        assert_eq!(err.reason(), "not_a_directory");
        assert!(err.to_string().contains("no such directory"), "{err}");
        let f = file(dir.path(), "plain", 0);
        assert_eq!(list_backups(&f).unwrap_err().reason(), "not_a_directory");
        assert_eq!(
            prune(&f, &last(1), None, false).unwrap_err().reason(),
            "not_a_directory"
        );
    }

    #[test]
    fn keep_one() {
        let dir = six();
        let report = prune(dir.path(), &last(1), None, false).unwrap();
        assert_eq!(names(&report.deleted), &NAMES[..5]);
        assert!(report.failed.is_empty());
        assert_eq!(on_disk(dir.path()), [NAMES[5]]);
    }

    #[test]
    fn keep_five() {
        let dir = six();
        let report = prune(dir.path(), &last(5), None, false).unwrap();
        assert_eq!(names(&report.deleted), [NAMES[0]]);
        assert_eq!(on_disk(dir.path()), &NAMES[1..]);
    }

    #[test]
    fn keep_more_than_present_deletes_nothing() {
        let dir = six();
        let report = prune(dir.path(), &last(7), None, false).unwrap();
        assert_eq!(decisions(&report), decisions(&PruneReport::default()));
        // All six were verified to find that fewer than 7 verify.
        assert_eq!(report.verified_now.len(), 6);
        assert_eq!(on_disk(dir.path()), NAMES);
    }

    #[test]
    fn keep_zero_is_refused_and_deletes_nothing() {
        let dir = six();
        let err = prune(dir.path(), &last(0), None, false).unwrap_err();
        assert_eq!(err.reason(), "bad_keep");
        assert!(err.to_string().contains("no rule on"), "{err}");
        assert_eq!(on_disk(dir.path()), NAMES);
    }

    const UNREAD: &str = "delete (not read, older than what the rules keep)";

    #[test]
    fn a_policy_prunes_by_its_rules_pins_and_recorded_times() {
        // NAMES[1] and NAMES[2] are a millisecond apart on 2024-01-25, NAMES[0] is 2023-12-31.
        let dir = six();
        let d = dir.path();
        let mut rules = Rules::new(
            Policy::parse("daily=2 yearly=1").unwrap(),
            Calendar::new(chrono_tz::UTC),
        );
        rules.pins.insert(NAMES[1].to_string());
        // Recorded as made on 2024-10-01 at 16:26:40 UTC (not when its name says): the newest of
        // that day, before NAMES[4] (09:05).
        rules.made.insert(NAMES[3].to_string(), 1_727_800_000_000);
        let dry = prune(d, &rules, None, true).unwrap();
        let fates: Vec<(&str, String)> = dry
            .plan
            .iter()
            .map(|(b, f)| (b.name.as_str(), f.to_string()))
            .collect();
        assert_eq!(
            fates,
            [
                (NAMES[5], "daily 2025-01-01, yearly 2025".to_string()),
                (NAMES[3], "daily 2024-10-01".to_string()),
                (NAMES[4], UNREAD.to_string()),
                (NAMES[2], UNREAD.to_string()),
                (NAMES[1], "pinned".to_string()),
                (NAMES[0], UNREAD.to_string()),
            ]
        );
        // Only the two the rules needed were read.
        assert_eq!(record_names(&dry.verified_now), [NAMES[5], NAMES[3]]);
        let report = prune(d, &rules, None, false).unwrap();
        assert_eq!(report.plan, dry.plan);
        assert_eq!(names(&report.deleted), [NAMES[0], NAMES[2], NAMES[4]]);
        assert_eq!(on_disk(d), [NAMES[1], NAMES[3], NAMES[5]]);
    }

    #[test]
    fn dry_run_reports_and_deletes_nothing() {
        let dir = six();
        let dry = prune(dir.path(), &last(2), None, true).unwrap();
        assert_eq!(names(&dry.deleted), &NAMES[..4]);
        assert_eq!(on_disk(dir.path()), NAMES);
        let real = prune(dir.path(), &last(2), None, false).unwrap();
        assert_eq!(decisions(&real), decisions(&dry));
        assert_eq!(on_disk(dir.path()), &NAMES[4..]);
    }

    #[test]
    fn other_files_are_never_deleted() {
        let dir = six();
        let d = dir.path();
        file(d, "upload.tar.gz", 0);
        file(d, "emqx-export-2020-01-01-00-00-00.000.tar.gz.part", 0);
        let report = prune(d, &last(1), None, false).unwrap();
        assert_eq!(report.deleted.len(), 5);
        assert_eq!(
            on_disk(d),
            [
                "emqx-export-2020-01-01-00-00-00.000.tar.gz.part",
                NAMES[5],
                "upload.tar.gz"
            ]
        );
    }

    #[test]
    fn protected_file_with_an_odd_name_is_kept_and_counts_for_nothing() {
        // Not an export name: not a backup, never deleted anyway; the 3 newest exports stay.
        let dir = six();
        let d = dir.path();
        let just_made = file(d, "manual backup.tar.gz", 0);
        let report = prune(d, &last(3), Some(&just_made), false).unwrap();
        assert_eq!(names(&report.deleted), &NAMES[..3]);
        assert_eq!(
            on_disk(d),
            [NAMES[3], NAMES[4], NAMES[5], "manual backup.tar.gz"]
        );
    }

    #[test]
    fn protected_old_export_is_kept_besides_the_newest() {
        let dir = six();
        let d = dir.path();
        let report = prune(d, &last(2), Some(&d.join(NAMES[0])), false).unwrap();
        assert_eq!(names(&report.deleted), &NAMES[1..4]);
        assert_eq!(on_disk(d), [NAMES[0], NAMES[4], NAMES[5]]);
        // Keep 1, the protected file still old: the newest stays with it.
        let report = prune(d, &last(1), Some(&d.join(NAMES[0])), false).unwrap();
        assert_eq!(names(&report.deleted), [NAMES[4]]);
        assert_eq!(on_disk(d), [NAMES[0], NAMES[5]]);
        // Nothing protected any more: the newest only.
        let report = prune(d, &last(1), None, false).unwrap();
        assert_eq!(names(&report.deleted), [NAMES[0]]);
        assert_eq!(on_disk(d), [NAMES[5]]);
    }

    #[test]
    fn protect_given_by_another_path_still_protects() {
        let dir = six();
        let d = dir.path();
        let other = TempDir::new().unwrap();
        let link_to_dir = other.path().join("backup-link");
        symlink(d, &link_to_dir).unwrap();
        // Through a symlinked directory and a `.` component.
        let protect = link_to_dir.join(".").join(NAMES[1]);
        let report = prune(d, &last(1), Some(&protect), false).unwrap();
        assert_eq!(
            names(&report.deleted),
            [NAMES[0], NAMES[2], NAMES[3], NAMES[4]]
        );
        assert_eq!(on_disk(d), [NAMES[1], NAMES[5]]);

        // Through a symlink with another name ("latest"): matched by its canonical path.
        let dir = six();
        let d = dir.path();
        let latest = other.path().join("latest");
        symlink(d.join(NAMES[2]), &latest).unwrap();
        let report = prune(d, &last(2), Some(&latest), false).unwrap();
        assert_eq!(names(&report.deleted), [NAMES[0], NAMES[1], NAMES[3]]);
        assert_eq!(on_disk(d), [NAMES[2], NAMES[4], NAMES[5]]);
    }

    #[test]
    fn protect_elsewhere_with_another_name_counts_nothing() {
        let dir = six();
        let other = TempDir::new().unwrap();
        let elsewhere = file(other.path(), "x.tar.gz", 0);
        let report = prune(dir.path(), &last(2), Some(&elsewhere), false).unwrap();
        assert_eq!(names(&report.deleted), &NAMES[..4]);
        assert!(elsewhere.exists());
    }

    #[test]
    fn symlinks_and_their_targets_are_untouched() {
        let dir = six();
        let d = dir.path();
        let outside = TempDir::new().unwrap();
        let oldest_name = "emqx-export-2000-01-01-00-00-00.000.tar.gz";
        let target = file(outside.path(), oldest_name, 0);
        symlink(&target, d.join(oldest_name)).unwrap();
        let report = prune(d, &last(1), None, false).unwrap();
        assert_eq!(names(&report.deleted), &NAMES[..5]);
        assert!(fs::symlink_metadata(d.join(oldest_name))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), export_bytes(oldest_name));
    }

    #[test]
    fn a_failed_delete_is_reported_and_the_rest_go_ahead() {
        let dir = six();
        let d = dir.path();
        // Right before NAMES[1] is removed, something puts a non-empty directory in its place:
        // unlink fails (even as root) and the other deletions still happen.
        let victim = d.join(NAMES[1]);
        let mut hook = |step: Step, target: &Path| {
            if step == Step::BeforeRemove && target == victim {
                fs::remove_file(target).unwrap();
                fs::create_dir(target).unwrap();
                fs::write(target.join("inside"), "x").unwrap();
            }
        };
        let report = prune_with_hook(
            d,
            &last(2),
            None,
            false,
            &[],
            &mut ReadControl::unlimited(),
            Callbacks {
                progress: &mut |_| {},
                step: &mut hook,
            },
        )
        .unwrap();
        assert_eq!(names(&report.deleted), [NAMES[0], NAMES[2], NAMES[3]]);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0.name, NAMES[1]);
        assert!(!report.failed[0].1.is_empty());
        assert!(victim.join("inside").exists());
        assert_eq!(on_disk(d), [NAMES[1], NAMES[4], NAMES[5]]);
    }

    #[test]
    fn a_candidate_swapped_for_a_symlink_is_left_alone() {
        let dir = six();
        let d = dir.path();
        let outside = TempDir::new().unwrap();
        let precious = file(outside.path(), "precious", 0);
        let victim = d.join(NAMES[0]);
        let mut hook = |step: Step, target: &Path| {
            if step == Step::BeforeCheck && target == victim {
                fs::remove_file(target).unwrap();
                symlink(&precious, target).unwrap();
            }
        };
        let report = prune_with_hook(
            d,
            &last(4),
            None,
            false,
            &[],
            &mut ReadControl::unlimited(),
            Callbacks {
                progress: &mut |_| {},
                step: &mut hook,
            },
        )
        .unwrap();
        assert_eq!(names(&report.deleted), [NAMES[1]]);
        assert_eq!(report.failed.len(), 1);
        assert!(
            report.failed[0].1.contains("symlink"),
            "{:?}",
            report.failed
        );
        assert!(fs::symlink_metadata(&victim)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&precious).unwrap(), export_bytes("precious"));
    }

    #[test]
    fn a_candidate_that_vanished_is_in_neither_list() {
        let dir = six();
        let d = dir.path();
        let victim = d.join(NAMES[0]);
        let mut hook = |step: Step, target: &Path| {
            if step == Step::BeforeCheck && target == victim {
                fs::remove_file(target).unwrap();
            }
        };
        let report = prune_with_hook(
            d,
            &last(4),
            None,
            false,
            &[],
            &mut ReadControl::unlimited(),
            Callbacks {
                progress: &mut |_| {},
                step: &mut hook,
            },
        )
        .unwrap();
        assert_eq!(names(&report.deleted), [NAMES[1]]);
        assert!(report.failed.is_empty());
    }

    fn reasons(skipped: &[(Backup, String)]) -> Vec<&str> {
        skipped.iter().map(|(b, _)| b.name.as_str()).collect()
    }

    #[test]
    fn newer_junk_is_neither_counted_nor_deleted() {
        // keep 2: two good backups, then junk with a far-future export name; the next run's new
        // file must not cost the older good backup its place.
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        file(d, NAMES[0], 1_000);
        file(d, NAMES[1], 2_000);
        let future = "emqx-export-2099-01-01-00-00-00.000.tar.gz";
        junk(d, future, 3_000);
        let new = file(d, NAMES[2], 4_000);
        let report = prune(d, &last(2), Some(&new), false).unwrap();
        assert_eq!(names(&report.deleted), [NAMES[0]]);
        assert!(report.failed.is_empty());
        assert_eq!(reasons(&report.skipped_unverified), [future]);
        assert!(
            report.skipped_unverified[0].1.contains("gzip"),
            "{:?}",
            report.skipped_unverified
        );
        assert_eq!(on_disk(d), [NAMES[1], NAMES[2], future]);
    }

    #[test]
    fn unverified_older_than_the_kept_ones_are_deleted() {
        let dir = six();
        let d = dir.path();
        junk(d, NAMES[4], 1_700_000_004_000);
        junk(d, NAMES[1], 1_700_000_001_000);
        let dry = prune(d, &last(2), None, true).unwrap();
        assert_eq!(names(&dry.deleted), [NAMES[0], NAMES[1], NAMES[2]]);
        assert_eq!(reasons(&dry.skipped_unverified), [NAMES[4]]);
        assert_eq!(on_disk(d), NAMES);
        let real = prune(d, &last(2), None, false).unwrap();
        assert_eq!(decisions(&real), decisions(&dry));
        assert_eq!(on_disk(d), [NAMES[3], NAMES[4], NAMES[5]]);
    }

    #[test]
    fn fewer_verified_than_keep_deletes_nothing() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        junk(d, NAMES[0], 1_000);
        file(d, NAMES[1], 2_000);
        junk(d, NAMES[2], 3_000);
        file(d, NAMES[3], 4_000);
        junk(d, NAMES[4], 5_000);
        let report = prune(d, &last(3), None, false).unwrap();
        assert!(report.deleted.is_empty());
        assert_eq!(
            reasons(&report.skipped_unverified),
            [NAMES[0], NAMES[2], NAMES[4]]
        );
        assert_eq!(on_disk(d), &NAMES[..5]);
    }

    // ---- verification records -------------------------------------------------------------

    fn trusted_of(records: &[Record]) -> Vec<Trusted> {
        records.iter().map(Trusted::from).collect()
    }

    fn prune_trusting(dir: &Path, keep: usize, trusted: &[Trusted]) -> PruneReport {
        prune_with_records(
            dir,
            &last(keep),
            None,
            false,
            trusted,
            &mut ReadControl::unlimited(),
        )
        .unwrap()
    }

    fn record_names(records: &[Record]) -> Vec<&str> {
        records.iter().map(|r| r.id.name.as_str()).collect()
    }

    #[test]
    fn recorded_verifications_are_trusted_and_nothing_is_read() {
        let dir = six();
        let d = dir.path();
        let first = prune_with_records(d, &last(5), None, true, &[], &mut ReadControl::unlimited())
            .unwrap();
        assert_eq!(names(&first.deleted), [NAMES[0]]);
        // Newest first, the five that were needed; each one good, with the file's identity.
        let mut expected: Vec<&str> = NAMES[1..].to_vec();
        expected.reverse();
        assert_eq!(record_names(&first.verified_now), expected);
        let total: u64 = NAMES[1..]
            .iter()
            .map(|n| fs::metadata(d.join(n)).unwrap().len())
            .sum();
        assert_eq!(first.bytes_read, total);
        for record in &first.verified_now {
            assert!(record.is_good());
            assert_eq!(
                record.id,
                FileId::of_path(&d.join(&record.id.name)).unwrap()
            );
            let sha = &record.outcome.as_ref().unwrap().sha256;
            assert_eq!(sha.len(), 64);
        }

        let trusted = trusted_of(&first.verified_now);
        let second = prune_trusting(d, 5, &trusted);
        assert_eq!(second.bytes_read, 0);
        assert!(second.verified_now.is_empty());
        assert_eq!(names(&second.deleted), [NAMES[0]]);
        assert_eq!(on_disk(d), &NAMES[1..]);
    }

    #[test]
    fn a_changed_file_is_verified_again_and_if_bad_not_counted() {
        // For each way of changing NAMES[4] after it was verified: the record no longer matches,
        // the file is read again, and (bad) it does not count, so NAMES[2] keeps its place.
        type Change = fn(&Path, &Record);
        let touched: Change = |p, r| {
            let f = fs::File::options().write(true).open(p).unwrap();
            let later = UNIX_EPOCH + Duration::from_nanos(r.id.mtime_ns as u64 + 1_000_000);
            f.set_modified(later).unwrap();
        };
        let truncated: Change = |p, _| {
            let f = fs::File::options().write(true).open(p).unwrap();
            f.set_len(f.metadata().unwrap().len() / 2).unwrap();
        };
        let replaced_same_size: Change = |p, r| {
            // A damaged copy of the same size renamed over it, given the old mtime (as `cp -p`
            // would): only the inode tells.
            let mut bytes = fs::read(p).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            let tmp = p.with_extension("tmp");
            fs::write(&tmp, &bytes).unwrap();
            let f = fs::File::options().write(true).open(&tmp).unwrap();
            f.set_modified(UNIX_EPOCH + Duration::from_nanos(r.id.mtime_ns as u64))
                .unwrap();
            drop(f);
            fs::rename(&tmp, p).unwrap();
        };
        let rewritten_in_place: Change = |p, _| {
            let mut bytes = fs::read(p).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            std::thread::sleep(Duration::from_millis(5));
            fs::write(p, &bytes).unwrap();
        };
        for (what, change, still_good) in [
            ("touched", touched, true),
            ("truncated", truncated, false),
            ("replaced with the same size", replaced_same_size, false),
            ("rewritten in place", rewritten_in_place, false),
        ] {
            let dir = six();
            let d = dir.path();
            let first =
                prune_with_records(d, &last(3), None, true, &[], &mut ReadControl::unlimited())
                    .unwrap();
            let victim = d.join(NAMES[4]);
            let record = first
                .verified_now
                .iter()
                .find(|r| r.id.name == NAMES[4])
                .unwrap();
            change(&victim, record);
            assert_ne!(FileId::of_path(&victim).unwrap(), record.id, "{what}");

            let second = prune_trusting(d, 3, &trusted_of(&first.verified_now));
            let again = &second.verified_now[0];
            assert_eq!(again.id, FileId::of_path(&victim).unwrap(), "{what}");
            assert_eq!(again.is_good(), still_good, "{what}");
            // The changed file is read again; NAMES[5] and NAMES[3] are not. When it is bad,
            // NAMES[2] (never verified so far) is needed and read too.
            let read_now: Vec<&str> = if still_good {
                vec![NAMES[4]]
            } else {
                vec![NAMES[4], NAMES[2]]
            };
            assert_eq!(record_names(&second.verified_now), read_now, "{what}");
            let sizes: u64 = second.verified_now.iter().map(|r| r.id.size).sum();
            assert_eq!(second.bytes_read, sizes, "{what}");
            if still_good {
                assert_eq!(names(&second.deleted), &NAMES[..3], "{what}");
                assert!(second.skipped_unverified.is_empty(), "{what}");
            } else {
                // NAMES[5], NAMES[3] and NAMES[2] are the three kept; NAMES[4] is skipped.
                assert_eq!(reasons(&second.skipped_unverified), [NAMES[4]], "{what}");
                assert_eq!(names(&second.deleted), &NAMES[..2], "{what}");
                assert_eq!(on_disk(d), &NAMES[2..], "{what}");
            }
        }
    }

    #[test]
    fn a_recorded_bad_verdict_is_trusted_too() {
        let dir = six();
        let d = dir.path();
        junk(d, NAMES[4], 1_700_000_004_000);
        let first = prune_with_records(d, &last(2), None, true, &[], &mut ReadControl::unlimited())
            .unwrap();
        let bad = first
            .verified_now
            .iter()
            .find(|r| r.id.name == NAMES[4])
            .unwrap();
        assert_eq!(bad.outcome.as_ref().unwrap_err().reason, "not_gzip");
        let second = prune_trusting(d, 2, &trusted_of(&first.verified_now));
        assert_eq!(second.bytes_read, 0);
        assert_eq!(reasons(&second.skipped_unverified), [NAMES[4]]);
        assert!(second.skipped_unverified[0].1.contains("gzip"));
        assert_eq!(names(&second.deleted), &NAMES[..3]);
    }

    #[test]
    fn a_record_of_another_file_with_the_same_name_is_not_trusted() {
        let dir = six();
        let d = dir.path();
        let mut forged = trusted_of(
            &prune_with_records(d, &last(6), None, true, &[], &mut ReadControl::unlimited())
                .unwrap()
                .verified_now,
        );
        for t in &mut forged {
            t.id.inode += 1;
        }
        let again = prune_trusting(d, 6, &forged);
        assert_eq!(again.verified_now.len(), 6);
    }

    #[test]
    fn cancelled_prune_deletes_nothing() {
        let dir = six();
        let d = dir.path();
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut control = ReadControl::new(cancel, None);
        let err = prune_with_records(d, &last(1), None, false, &[], &mut control).unwrap_err();
        assert_eq!(err.reason(), "cancelled");
        assert_eq!(on_disk(d), NAMES);
    }

    #[test]
    fn list_verified_trusts_records_and_checks_the_rest() {
        let dir = six();
        let d = dir.path();
        junk(d, NAMES[0], 1_700_000_000_000);
        let first = list_verified(d, &[], &mut ReadControl::unlimited()).unwrap();
        assert_eq!(first.backups.len(), 6);
        let records: Vec<Record> = first
            .backups
            .iter()
            .map(|l| match &l.check {
                Check::Now(r) => r.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(!records[5].is_good());
        assert!(records[..5].iter().all(Record::is_good));
        // Trust all but the newest: only it is read.
        let trusted = trusted_of(&records[1..]);
        let second = list_verified(d, &trusted, &mut ReadControl::unlimited()).unwrap();
        assert_eq!(second.bytes_read, records[0].id.size);
        assert!(matches!(second.backups[0].check, Check::Now(_)));
        for (i, listed) in second.backups.iter().enumerate().skip(1) {
            assert_eq!(listed.check, Check::Trusted(i - 1));
        }
    }

    // ---- protection never displaces a newer backup (issue 19, defect 4) --------------------

    #[test]
    fn a_copy_of_an_older_backup_never_deletes_a_newer_one() {
        // Keep 1: a copy of NAMES[2] arrives (protected) while NAMES[5] is the newest export
        // here. The newest verified backup stays; the copy stays too, being protected.
        let dir = six();
        let d = dir.path();
        let report = prune(d, &last(1), Some(&d.join(NAMES[2])), false).unwrap();
        assert_eq!(
            names(&report.deleted),
            [NAMES[0], NAMES[1], NAMES[3], NAMES[4]]
        );
        assert_eq!(on_disk(d), [NAMES[2], NAMES[5]]);
    }

    #[test]
    fn a_late_catch_up_copy_never_pushes_out_a_newer_backup() {
        // Keep 2: a catch-up copy of the oldest backup arrives: the newest two stay, and so does
        // the copy (the kept set is one larger this time).
        let dir = six();
        let d = dir.path();
        let report = prune(d, &last(2), Some(&d.join(NAMES[0])), false).unwrap();
        assert_eq!(names(&report.deleted), [NAMES[1], NAMES[2], NAMES[3]]);
        assert_eq!(on_disk(d), [NAMES[0], NAMES[4], NAMES[5]]);
    }

    #[test]
    fn a_protected_file_that_does_not_verify_counts_for_nothing() {
        // Protection stops a deletion, nothing more: a protected file that does not verify is
        // not one of the kept backups, so the newest good one is still kept.
        let dir = six();
        let d = dir.path();
        let bad = junk(d, NAMES[5], 1_700_000_005_000);
        let report = prune(d, &last(1), Some(&bad), false).unwrap();
        assert_eq!(names(&report.deleted), &NAMES[..4]);
        assert_eq!(reasons(&report.skipped_unverified), [NAMES[5]]);
        assert_eq!(on_disk(d), [NAMES[4], NAMES[5]]);
    }

    #[test]
    fn decide_reads_only_what_can_matter() {
        use Verdict::{Bad, Good, Unknown};
        let c = |verdict, protected| Candidate { verdict, protected };
        // Newest first. Keep 2: the unknown newest one is needed; the next two unknown ones only
        // if something newer turns out bad; the protected good one is the second kept; the bad
        // one past it is deleted.
        let candidates = [
            c(Unknown, false),
            c(Good, false),
            c(Unknown, false),
            c(Unknown, false),
            c(Good, true),
            c(Bad, false),
        ];
        let decision = decide(&candidates, 2);
        assert_eq!(
            decision,
            Decision {
                delete: vec![5],
                skipped: vec![],
                to_read: vec![0, 2, 3],
                needed: 1,
            }
        );
        // The newest one read: good. Final: the two newest kept, everything older deleted but
        // the protected one.
        let mut read = candidates;
        read[0].verdict = Good;
        let decision = decide(&read, 2);
        assert_eq!(decision.to_read, Vec::<usize>::new());
        assert_eq!(decision.delete, [2, 3, 5]);
        // It was bad instead: skipped, and the next unknown one is needed.
        read[0].verdict = Bad;
        let decision = decide(&read, 2);
        assert_eq!((decision.to_read, decision.needed), (vec![2, 3], 1));
        assert_eq!(decision.skipped, [0]);
        // Fewer good than keep, however it turns out: nothing deleted.
        let decision = decide(&[c(Bad, false), c(Good, false), c(Bad, true)], 2);
        assert!(decision.delete.is_empty() && decision.to_read.is_empty());
        assert_eq!(decision.skipped, [0, 2]);
    }

    // ---- progress, and resuming where a cut-short call stopped (issue 19, defect 5) ---------

    /// A progress report with the record's name instead of the record.
    type Seen = (usize, u64, usize, u64, Option<String>);

    fn prune_seen(
        dir: &Path,
        keep: usize,
        trusted: &[Trusted],
        control: &mut ReadControl,
        on_record: &mut dyn FnMut(&Record),
    ) -> (Result<PruneReport, RetentionError>, Vec<Seen>) {
        let mut seen = Vec::new();
        let result = prune_reporting(dir, &last(keep), None, false, trusted, control, &mut |p| {
            if let Some(record) = p.record {
                on_record(record);
            }
            seen.push((
                p.checked,
                p.checked_bytes,
                p.remaining,
                p.remaining_bytes,
                p.record.map(|r| r.id.name.clone()),
            ));
        });
        (result, seen)
    }

    #[test]
    fn progress_is_reported_after_listing_and_after_each_file() {
        let dir = six();
        let d = dir.path();
        junk(d, NAMES[4], 1_700_000_004_000);
        let size = |i: usize| fs::metadata(d.join(NAMES[i])).unwrap().len();
        // Keep 2: NAMES[5] and NAMES[4] are needed; NAMES[4] is bad, so NAMES[3] is needed too.
        let (result, seen) = prune_seen(d, 2, &[], &mut ReadControl::unlimited(), &mut |_| {});
        let report = result.unwrap();
        assert_eq!(
            seen,
            [
                (0, 0, 2, size(5) + size(4), None),
                (1, size(5), 1, size(4), Some(NAMES[5].to_string())),
                (2, size(5) + size(4), 1, size(3), Some(NAMES[4].to_string())),
                (
                    3,
                    size(5) + size(4) + size(3),
                    0,
                    0,
                    Some(NAMES[3].to_string())
                ),
            ]
        );
        assert_eq!(names(&report.deleted), &NAMES[..3]);
    }

    #[test]
    fn a_cancelled_prune_has_reported_its_verdicts_and_the_next_one_resumes() {
        let dir = six();
        let d = dir.path();
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut control = ReadControl::new(cancel.clone(), None);
        // Cancelled (the plugin stopping, or retention's time up) once two files are checked.
        let mut kept: Vec<Record> = Vec::new();
        let (result, seen) = prune_seen(d, 5, &[], &mut control, &mut |record| {
            kept.push(record.clone());
            if kept.len() == 2 {
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        assert_eq!(result.unwrap_err().reason(), "cancelled");
        assert_eq!(record_names(&kept), [NAMES[5], NAMES[4]]);
        assert_eq!(seen.last().map(|s| (s.0, s.2)), Some((2, 3)));
        assert_eq!(on_disk(d), NAMES);
        // The next call trusts what was reported and reads only the three others.
        let trusted = trusted_of(&kept);
        let (result, seen) = prune_seen(d, 5, &trusted, &mut ReadControl::unlimited(), &mut |_| {});
        let report = result.unwrap();
        assert_eq!(seen[0].2, 3);
        assert_eq!(
            record_names(&report.verified_now),
            [NAMES[3], NAMES[2], NAMES[1]]
        );
        assert_eq!(names(&report.deleted), [NAMES[0]]);
    }

    use super::test_rng::Rng;

    /// The export name of hour `index` counted from 2024-01-01 00:00 (index below 24 * 28).
    fn hourly_name(index: u64) -> String {
        format!(
            "emqx-export-2024-01-{:02}-{:02}-00-00.000.tar.gz",
            1 + index / 24,
            index % 24
        )
    }

    /// One generated export: its name, whether it verifies, whether the caller holds a record of
    /// it.
    struct Generated {
        name: String,
        good: bool,
        recorded: bool,
    }

    /// One generated case of the property below: the exports (newest first), the records the
    /// caller holds, and what is protected.
    struct Case {
        keep: usize,
        files: Vec<Generated>,
        trusted: Vec<Trusted>,
        /// The index of the protected export, if one of them is.
        protected: Option<usize>,
        /// What `prune` is given to protect: the protected export, a file elsewhere, or nothing.
        protect: Option<PathBuf>,
        /// The case in words, for the assertion messages.
        what: String,
    }

    /// Writes a random mix of good, bad, recorded and unrecorded exports into `d`.
    fn generate(rng: &mut Rng, case: usize, d: &Path, elsewhere: &Path) -> Case {
        let count = 1 + rng.below(10) as usize;
        let keep = 1 + rng.below(6) as usize;
        let mut hours: Vec<u64> = Vec::new();
        while hours.len() < count {
            let h = rng.below(24 * 28);
            if !hours.contains(&h) {
                hours.push(h);
            }
        }
        // Newest first.
        hours.sort_unstable_by(|a, b| b.cmp(a));
        let files: Vec<Generated> = hours
            .iter()
            .map(|&h| Generated {
                name: hourly_name(h),
                good: rng.below(10) < 7,
                recorded: rng.below(10) < 6,
            })
            .collect();
        let mut trusted = Vec::new();
        for f in &files {
            // mtimes in random order: the time in the name decides.
            let mtime = 1_700_000_000_000 + rng.below(1_000_000);
            let path = if f.good {
                file(d, &f.name, mtime)
            } else {
                junk(d, &f.name, mtime)
            };
            if f.recorded {
                trusted.push(Trusted {
                    id: FileId::of_path(&path).unwrap(),
                    failure: (!f.good).then(|| "recorded as bad".to_string()),
                });
            }
        }
        let protected: Option<usize> = match rng.below(10) {
            0 | 1 => None,
            _ => Some(rng.below(count as u64) as usize),
        };
        let protect_path = match protected {
            Some(i) => d.join(&files[i].name),
            // Elsewhere, under a name no file here has (protection matches by name).
            None => elsewhere.join(hourly_name(
                (0..24 * 28).find(|h| !hours.contains(h)).unwrap_or(0),
            )),
        };
        let protect = (protected.is_some() || rng.below(2) == 0).then_some(protect_path);
        let what = format!(
            "case {case}: keep {keep}, protected {:?}, files (newest first, good, recorded) {:?}",
            protected.map(|i| &files[i].name),
            files
                .iter()
                .map(|f| (&f.name, f.good, f.recorded))
                .collect::<Vec<_>>()
        );
        Case {
            keep,
            files,
            trusted,
            protected,
            protect,
            what,
        }
    }

    /// Whatever is protected, and whatever mix of good, bad, recorded and unrecorded exports the
    /// directory holds: the newest `keep` verified backups survive, the protected file survives,
    /// nothing that does not verify pushes out one that does (fewer verified than `keep`:
    /// nothing is deleted), and every export older than the `keep`-th newest verified one that is
    /// not protected is deleted. Recorded files are never read.
    #[test]
    fn property_newest_verified_survive_whatever_is_protected() {
        let mut rng = Rng(0x6e65_7765_7374);
        for case in 0..300 {
            let dir = TempDir::new().unwrap();
            let elsewhere = TempDir::new().unwrap();
            let c = generate(&mut rng, case, dir.path(), elsewhere.path());
            let report = prune_with_records(
                dir.path(),
                &last(c.keep),
                c.protect.as_deref(),
                false,
                &c.trusted,
                &mut ReadControl::unlimited(),
            )
            .unwrap();
            check_against_the_oracle(&c, dir.path(), &report);
        }
    }

    /// The oracle: the keep-th newest good file is the boundary; everything older that is not
    /// protected goes; fewer good files than keep: nothing goes. Only unrecorded files are read,
    /// each at most once, and counted.
    fn check_against_the_oracle(c: &Case, d: &Path, report: &PruneReport) {
        let (files, what) = (&c.files, &c.what);
        let count = files.len();
        let good: Vec<usize> = (0..count).filter(|&i| files[i].good).collect();
        let boundary = good.get(c.keep - 1).copied();
        let doomed = |i: usize| boundary.is_some_and(|b| i > b) && Some(i) != c.protected;
        let oldest_first = |keep: &dyn Fn(usize) -> bool| -> Vec<&str> {
            let mut names: Vec<&str> = (0..count)
                .filter(|&i| keep(i))
                .map(|i| files[i].name.as_str())
                .collect();
            names.reverse();
            names
        };
        let expected_deleted = oldest_first(&doomed);
        let expected_skipped = oldest_first(&|i| !files[i].good && boundary.is_none_or(|b| i < b));
        for &i in good.iter().take(c.keep).chain(&c.protected) {
            assert!(
                d.join(&files[i].name).exists(),
                "{what}: {} (good or protected) was deleted",
                files[i].name
            );
        }
        assert_eq!(names(&report.deleted), expected_deleted, "{what}");
        assert_eq!(
            reasons(&report.skipped_unverified),
            expected_skipped,
            "{what}"
        );
        assert!(report.failed.is_empty(), "{what}");
        let mut left: Vec<String> = (0..count)
            .filter(|&i| !doomed(i))
            .map(|i| files[i].name.clone())
            .collect();
        left.sort();
        assert_eq!(on_disk(d), left, "{what}");
        for record in &report.verified_now {
            let f = files.iter().find(|f| f.name == record.id.name).unwrap();
            assert!(!f.recorded, "{what}: {} was read again", f.name);
            assert_eq!(record.is_good(), f.good, "{what}");
        }
        // A good file is read to its end, a bad one may be refused before.
        let size = |good: bool| -> u64 {
            report
                .verified_now
                .iter()
                .filter(|r| r.is_good() == good)
                .map(|r| r.id.size)
                .sum()
        };
        assert!(
            (size(true)..=size(true) + size(false)).contains(&report.bytes_read),
            "{what}: read {} bytes",
            report.bytes_read
        );
    }
}
