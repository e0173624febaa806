//! The backup files: `list_backups` (a dirty IO NIF), and the jobs that read them
//! ([`crate::jobs`]): `verify_async`, `prune_async` (retention trusting verification records,
//! with a progress report per verdict) and `list_verified_async`.
//!
//! The terms they answer are the types below, each shaped by its derive; the records passed in
//! are decoded by one too ([`RecordIn`]).

use std::path::Path;

use guard_core::reading::ReadControl;
use guard_core::record::{self, FileId, Record, Trusted};
use guard_core::retention::{self, Backup, Check, Fate, Listing, Progress, PruneReport};
use guard_core::verify::{Verified, VerifyError};
use guard_core::worker::Panicked;
use rustler::env::{OwnedEnv, SavedTerm};
use rustler::{
    Atom, Binary, Encoder, Env, ErlOption, NifMap, NifResult, NifTaggedEnum, NifUntaggedEnum, Term,
};

use crate::jobs::{self, decode_opts};
use crate::path_arg;
use crate::retention::{decode_rules, fate_fields};
use crate::terms::{job_reply, one_line, ArgError, AtomName, Failure, NifError, PathBytes, Reply};

mod atoms {
    rustler::atoms! {
        record,
    }
}

/// A backup file (`emqx_guard_nif_types:backup()`).
#[derive(NifMap)]
#[rustler(encode)]
struct BackupMap {
    name: String,
    path: PathBytes,
    size: u64,
    mtime: i64,
}

impl From<Backup> for BackupMap {
    fn from(b: Backup) -> Self {
        BackupMap {
            name: b.name,
            path: PathBytes(b.path),
            size: b.size,
            mtime: b.mtime_ms,
        }
    }
}

/// A backup with the reason it was not deleted or does not count (`failed_backup()`).
#[derive(NifMap)]
#[rustler(encode)]
struct BackupErrorMap {
    name: String,
    path: PathBytes,
    size: u64,
    mtime: i64,
    error: String,
}

impl From<(Backup, String)> for BackupErrorMap {
    fn from((b, why): (Backup, String)) -> Self {
        BackupErrorMap {
            name: b.name,
            path: PathBytes(b.path),
            size: b.size,
            mtime: b.mtime_ms,
            error: one_line(&why),
        }
    }
}

/// A record's verdict (its `result`).
#[derive(NifTaggedEnum)]
#[rustler(encode)]
enum Verdict {
    Ok,
    Error(Failure),
}

/// A verification record (`record()`).
#[derive(NifMap)]
#[rustler(encode)]
struct RecordMap {
    name: String,
    size: u64,
    mtime_ns: i64,
    inode: u64,
    dev: u64,
    verified_at: i64,
    result: Verdict,
    sha256: ErlOption<String>,
    version: ErlOption<String>,
    edition: ErlOption<String>,
    entries: ErlOption<u64>,
    bytes: ErlOption<u64>,
}

impl From<&Record> for RecordMap {
    fn from(r: &Record) -> Self {
        let found = r.outcome.as_ref().ok();
        let of = |field: fn(&Verified) -> String| ErlOption::from(found.map(field));
        RecordMap {
            name: r.id.name.clone(),
            size: r.id.size,
            mtime_ns: r.id.mtime_ns,
            inode: r.id.inode,
            dev: r.id.dev,
            verified_at: r.verified_at_ms,
            result: match &r.outcome {
                Ok(_) => Verdict::Ok,
                Err(f) => Verdict::Error(Failure {
                    reason: AtomName(f.reason.clone()),
                    detail: one_line(&f.detail),
                }),
            },
            sha256: of(|v| v.sha256.clone()),
            version: of(|v| v.version.clone()),
            edition: of(|v| v.edition.clone()),
            entries: found.map(|v| v.entries).into(),
            bytes: found.map(|v| v.bytes).into(),
        }
    }
}

/// A record passed in: the derived decoder reads only the identity and the verdict, so the
/// caller's own keys are ignored.
#[derive(NifMap)]
#[rustler(decode)]
struct RecordIn<'a> {
    name: String,
    size: u64,
    mtime_ns: i64,
    inode: u64,
    dev: u64,
    result: VerdictIn<'a>,
}

/// The verdict of a record passed in.
#[derive(NifTaggedEnum)]
#[rustler(decode)]
enum VerdictIn<'a> {
    Ok,
    Error((Atom, Binary<'a>)),
}

impl From<RecordIn<'_>> for Trusted {
    fn from(r: RecordIn<'_>) -> Self {
        Trusted {
            id: FileId {
                name: r.name,
                size: r.size,
                mtime_ns: r.mtime_ns,
                inode: r.inode,
                dev: r.dev,
            },
            failure: match r.result {
                VerdictIn::Ok => None,
                VerdictIn::Error((_, detail)) => {
                    Some(String::from_utf8_lossy(detail.as_slice()).into_owned())
                }
            },
        }
    }
}

/// Decodes a list of records into what retention trusts; `bad_record` names the first bad one.
/// Not a list: `badarg`.
fn decode_records(term: Term) -> NifResult<Result<Vec<Trusted>, ArgError>> {
    let list: Vec<Term> = term.decode()?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        match item.decode::<RecordIn>() {
            Ok(record) => out.push(record.into()),
            Err(_) => {
                return Ok(Err(ArgError {
                    reason: "bad_record",
                    detail: format!(
                        "record {} of {} is not a verification record (needs name, size, mtime_ns, inode, dev and result ok or {{error, {{Reason, Detail}}}}): {item:?}",
                        i + 1,
                        list.len()
                    ),
                }))
            }
        }
    }
    Ok(Ok(out))
}

/// Retention's result (`prune_report()`).
#[derive(NifMap)]
#[rustler(encode)]
struct PruneMap {
    deleted: Vec<BackupMap>,
    failed: Vec<BackupErrorMap>,
    skipped_unverified: Vec<BackupErrorMap>,
    verified: Vec<RecordMap>,
    bytes_read: u64,
    plan: Vec<FateMap>,
}

/// A backup with what retention's decision made of it (`fate()`): `keep`, the one-line `why`,
/// and for one that does not verify the verifier's `error` line (else `undefined`).
#[derive(NifMap)]
#[rustler(encode)]
struct FateMap {
    name: String,
    path: PathBytes,
    size: u64,
    mtime: i64,
    keep: bool,
    why: String,
    error: ErlOption<String>,
}

impl FateMap {
    fn new(backup: Backup, fate: &Fate, skipped: &[(Backup, String)]) -> Self {
        let (keep, why) = fate_fields(fate);
        let error = skipped
            .iter()
            .find(|(b, _)| b.name == backup.name)
            .map(|(_, e)| one_line(e));
        FateMap {
            name: backup.name,
            path: PathBytes(backup.path),
            size: backup.size,
            mtime: backup.mtime_ms,
            keep,
            why,
            error: error.into(),
        }
    }
}

impl From<PruneReport> for PruneMap {
    fn from(r: PruneReport) -> Self {
        let skipped = &r.skipped_unverified;
        let plan = r
            .plan
            .iter()
            .map(|(b, f)| FateMap::new(b.clone(), f, skipped))
            .collect();
        PruneMap {
            plan,
            verified: r.verified_now.iter().map(RecordMap::from).collect(),
            deleted: r.deleted.into_iter().map(BackupMap::from).collect(),
            failed: r.failed.into_iter().map(BackupErrorMap::from).collect(),
            skipped_unverified: r
                .skipped_unverified
                .into_iter()
                .map(BackupErrorMap::from)
                .collect(),
            bytes_read: r.bytes_read,
        }
    }
}

/// Retention's progress (`progress()`), but its optional `record`.
#[derive(NifMap)]
#[rustler(encode)]
struct ProgressMap {
    checked: usize,
    checked_bytes: u64,
    remaining: usize,
    remaining_bytes: u64,
    bytes_read: u64,
}

/// [`ProgressMap`] with the `record` key added by hand when there is one: a derived map always
/// has every key, and the contract has this one only when the export just read reached a
/// verdict.
fn progress_term<'a>(env: Env<'a>, p: &Progress<'_>) -> Term<'a> {
    let map = ProgressMap {
        checked: p.checked,
        checked_bytes: p.checked_bytes,
        remaining: p.remaining,
        remaining_bytes: p.remaining_bytes,
        bytes_read: p.bytes_read,
    }
    .encode(env);
    match p.record {
        // `map` is a map: putting a key into it cannot fail.
        Some(record) => map
            .map_put(atoms::record(), RecordMap::from(record))
            .unwrap_or(map),
        None => map,
    }
}

/// The listing of `list_verified_async/3` (`listing()`).
#[derive(NifMap)]
#[rustler(encode)]
struct ListingMap<'a> {
    backups: Vec<ListedMap<'a>>,
    verified: Vec<RecordMap>,
    bytes_read: u64,
}

/// A listed backup and how it was checked.
#[derive(NifMap)]
#[rustler(encode)]
struct ListedMap<'a> {
    name: String,
    path: PathBytes,
    size: u64,
    mtime: i64,
    verification: Verification<'a>,
}

/// How a listed backup was checked: the caller's own record term (trusted), a record made now,
/// or why the check reached no verdict.
#[derive(NifUntaggedEnum)]
#[rustler(encode)]
enum Verification<'a> {
    Trusted(ErlOption<Term<'a>>),
    Now(RecordMap),
    Failed(Verdict),
}

impl<'a> ListingMap<'a> {
    /// `listing`, a trusted export's verification being `trusted(i)`, the caller's record `i`.
    fn new(listing: Listing, trusted: impl Fn(usize) -> Option<Term<'a>>) -> Self {
        let mut verified = Vec::new();
        let backups = listing
            .backups
            .into_iter()
            .map(|listed| {
                let verification = match listed.check {
                    Check::Trusted(i) => Verification::Trusted(trusted(i).into()),
                    Check::Now(record) => {
                        verified.push(RecordMap::from(&record));
                        Verification::Now(RecordMap::from(&record))
                    }
                    Check::Failed { reason, detail } => {
                        Verification::Failed(Verdict::Error(Failure {
                            reason: AtomName(reason),
                            detail: one_line(&detail),
                        }))
                    }
                };
                let b = listed.backup;
                ListedMap {
                    name: b.name,
                    path: PathBytes(b.path),
                    size: b.size,
                    mtime: b.mtime_ms,
                    verification,
                }
            })
            .collect();
        ListingMap {
            backups,
            verified,
            bytes_read: listing.bytes_read,
        }
    }
}

/// Not a verdict: the file changed while it was verified.
struct Changed(String);

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the file changed while it was verified: no verdict; verify it again",
            self.0
        )
    }
}

impl NifError for Changed {
    fn reason(&self) -> &'static str {
        "changed"
    }
}

/// The result of a verification job: the record when the check reached a verdict (good or
/// bad), else why not (`not_found`, `io`, `cancelled`, `changed`, `panicked`).
fn verify_reply(
    path: &Path,
    outcome: Result<(Result<Verified, VerifyError>, Option<Record>), Panicked>,
) -> Reply<RecordMap> {
    match outcome {
        Ok((_, Some(record))) => Ok(RecordMap::from(&record)),
        Ok((Err(e), None)) if !e.is_verdict() => Err(e.into()),
        Ok((_, None)) => Err(Changed(path.to_string_lossy().into_owned()).into()),
        Err(p) => Err(p.into()),
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn list_backups(dir: Binary) -> Reply<Vec<BackupMap>> {
    let backups = retention::list_backups(path_arg(&dir))?;
    Ok(backups.into_iter().map(BackupMap::from).collect())
}

#[rustler::nif]
fn verify_async<'a>(env: Env<'a>, path: Binary, opts: Term<'a>) -> NifResult<Reply<Term<'a>>> {
    let limit = match decode_opts(opts)? {
        Ok(limit) => limit,
        Err(err) => return Ok(Err(err.into())),
    };
    let path = path_arg(&path).to_path_buf();
    let shown = path.clone();
    jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            record::verify_recorded(&path, &mut control)
        },
        Box::new(move |env, outcome| verify_reply(&shown, outcome).encode(env)),
    )
}

#[rustler::nif]
fn prune_async<'a>(
    env: Env<'a>,
    dir: Binary,
    keep: Term<'a>,
    protect: ErlOption<Binary>,
    dry_run: bool,
    records: Term<'a>,
    opts: Term<'a>,
) -> NifResult<Reply<Term<'a>>> {
    let checked = (
        decode_rules(keep)?,
        decode_records(records)?,
        decode_opts(opts)?,
    );
    let (rules, trusted, limit) = match checked {
        (Ok(rules), Ok(trusted), Ok(limit)) => (rules, trusted, limit),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(Err(e.into())),
    };
    let dir = path_arg(&dir).to_path_buf();
    let protect = Option::from(protect).map(|b: Binary| path_arg(&b).to_path_buf());
    jobs::start_reporting(
        env,
        OwnedEnv::new(),
        move |cancel, reporter| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            let mut report = |progress: &Progress<'_>| {
                reporter.send(|env| progress_term(env, progress));
            };
            let protect = protect.as_deref();
            retention::prune_reporting(
                &dir,
                &rules,
                protect,
                dry_run,
                &trusted,
                &mut control,
                &mut report,
            )
        },
        Box::new(|env, outcome| job_reply(outcome, PruneMap::from).encode(env)),
    )
}

#[rustler::nif]
fn list_verified_async<'a>(
    env: Env<'a>,
    dir: Binary,
    records: Term<'a>,
    opts: Term<'a>,
) -> NifResult<Reply<Term<'a>>> {
    let (trusted, limit) = match (decode_records(records)?, decode_opts(opts)?) {
        (Ok(trusted), Ok(limit)) => (trusted, limit),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e.into())),
    };
    // The caller's record terms, kept for the reply: a trusted export's verification is the
    // caller's own term, extra keys and all.
    let owned = OwnedEnv::new();
    let saved: Vec<SavedTerm> = records
        .decode::<Vec<Term<'a>>>()?
        .into_iter()
        .map(|t| owned.save(t))
        .collect();
    let dir = path_arg(&dir).to_path_buf();
    jobs::start(
        env,
        owned,
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            retention::list_verified(&dir, &trusted, &mut control)
        },
        Box::new(move |env, outcome: Result<Result<Listing, _>, Panicked>| {
            let trusted = |i: usize| saved.get(i).map(|s| s.load(env));
            let reply: Reply<ListingMap> =
                job_reply(outcome, |listing| ListingMap::new(listing, trusted));
            reply.encode(env)
        }),
    )
}
