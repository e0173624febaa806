//! The NIFs of issue 13: verification records, record-aware retention, and background jobs.
//!
//! Term shapes (also in `docs/design.md`):
//! - `Record = #{name, size, mtime_ns, inode, dev, verified_at, result := ok | {error, {Reason,
//!   Detail}}, sha256, version, edition, entries, bytes}` (the last five `undefined` when the
//!   result is an error). Records passed in need only the identity keys and `result`; other
//!   keys are ignored (the caller may add its own).
//! - `Opts = #{io_limit => pos_integer() | infinity}` (bytes per second, default `infinity`).
//! - a job ends with the message `{emqx_guard_job, Job, Result}` to the process that started it;
//!   `prune_async` sends `{emqx_guard_job_progress, Job, Progress}` before it (see
//!   [`progress_map`]), so that every verdict it reaches is kept even if it never ends.

use std::num::NonZeroU64;

use guard_core::reading::ReadControl;
use guard_core::record::{self, FileId, Record, Trusted};
use guard_core::retention::{self, Check, Listing};
use guard_core::verify::{Verified, VerifyError};
use guard_core::worker::{self, Panicked};
use rustler::env::{OwnedEnv, SavedTerm};
use rustler::types::map::MapIterator;
use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};

use crate::jobs;

mod progress_atoms {
    rustler::atoms! {
        checked,
        checked_bytes,
        remaining,
        remaining_bytes,
        record,
    }
}
use crate::{
    atoms, backup_map, error, error_term, ok, path_arg, prune_args, prune_report_map, ArgError,
    NifError,
};

/// Decodes `Opts`: the io limit (`None`: no limit). Not a map: `badarg`; an unknown key or a
/// bad value: `bad_opts`.
pub(crate) fn decode_opts(term: Term) -> NifResult<Result<Option<NonZeroU64>, ArgError>> {
    let Some(iter) = MapIterator::new(term) else {
        return Err(rustler::Error::BadArg);
    };
    let bad = |detail: String| ArgError {
        reason: "bad_opts",
        detail,
    };
    let mut limit = None;
    for (key, value) in iter {
        if key != atoms::io_limit().encode(term.get_env()) {
            return Ok(Err(bad(format!(
                "unknown option {key:?}: the only option is io_limit"
            ))));
        }
        if value == atoms::infinity().encode(term.get_env()) {
            limit = None;
            continue;
        }
        match value.decode::<u64>().ok().and_then(NonZeroU64::new) {
            Some(n) => limit = Some(n),
            None => {
                let detail = format!(
                    "io_limit must be bytes per second (a positive integer) or infinity, got {value:?}"
                );
                return Ok(Err(bad(detail)));
            }
        }
    }
    Ok(Ok(limit))
}

/// Decodes a list of records into what retention trusts; `bad_record` names the first bad one.
/// Not a list: `badarg`.
fn decode_records<'a>(term: Term<'a>) -> NifResult<Result<Vec<Trusted>, ArgError>> {
    let list: Vec<Term<'a>> = term.decode()?;
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        match decode_record(*item) {
            Some(t) => out.push(t),
            None => {
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

fn decode_record(term: Term) -> Option<Trusted> {
    let env = term.get_env();
    let get = |key: Atom| term.map_get(key).ok();
    let name: Binary = get(atoms::name())?.decode().ok()?;
    let name = std::str::from_utf8(name.as_slice()).ok()?.to_string();
    let id = FileId {
        name,
        size: get(atoms::size())?.decode().ok()?,
        mtime_ns: get(atoms::mtime_ns())?.decode().ok()?,
        inode: get(atoms::inode())?.decode().ok()?,
        dev: get(atoms::dev())?.decode().ok()?,
    };
    let result = get(atoms::result())?;
    let failure = if result == atoms::ok().encode(env) {
        None
    } else {
        let (tag, (_reason, detail)): (Atom, (Atom, Binary)) = result.decode().ok()?;
        if tag != atoms::error() {
            return None;
        }
        Some(String::from_utf8_lossy(detail.as_slice()).into_owned())
    };
    Some(Trusted { id, failure })
}

/// A record as an Erlang map (see the module documentation).
fn record_map<'a>(env: Env<'a>, r: &Record) -> NifResult<Term<'a>> {
    let undefined = atoms::undefined().encode(env);
    let (result, sha256, version, edition, entries, bytes) = match &r.outcome {
        Ok(v) => (
            atoms::ok().encode(env),
            v.sha256.encode(env),
            v.version.encode(env),
            v.edition.encode(env),
            v.entries.encode(env),
            v.bytes.encode(env),
        ),
        Err(f) => {
            let reason = Atom::from_str(env, &f.reason)?;
            let detail = crate::one_line(&f.detail);
            (
                (atoms::error(), (reason, detail.as_ref())).encode(env),
                undefined,
                undefined,
                undefined,
                undefined,
                undefined,
            )
        }
    };
    Term::map_from_term_arrays(
        env,
        &[
            atoms::name().encode(env),
            atoms::size().encode(env),
            atoms::mtime_ns().encode(env),
            atoms::inode().encode(env),
            atoms::dev().encode(env),
            atoms::verified_at().encode(env),
            atoms::result().encode(env),
            atoms::sha256().encode(env),
            atoms::version().encode(env),
            atoms::edition().encode(env),
            atoms::entries().encode(env),
            atoms::bytes().encode(env),
        ],
        &[
            r.id.name.encode(env),
            r.id.size.encode(env),
            r.id.mtime_ns.encode(env),
            r.id.inode.encode(env),
            r.id.dev.encode(env),
            r.verified_at_ms.encode(env),
            result,
            sha256,
            version,
            edition,
            entries,
            bytes,
        ],
    )
}

/// An error detected after the work, with its own reason.
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

/// The result of a verification job: `{ok, Record}` when it reached a verdict (good or bad,
/// see `result` in the record); `{error, {Reason, Detail}}` when it did not (`not_found`, `io`,
/// `cancelled`, `changed`, `panicked`).
fn verify_result<'a>(
    env: Env<'a>,
    path: &std::path::Path,
    outcome: Result<(Result<Verified, VerifyError>, Option<Record>), Panicked>,
) -> Term<'a> {
    match outcome {
        Ok((_, Some(record))) => match record_map(env, &record) {
            Ok(map) => ok(env, map),
            Err(_) => error_term(env, &Panicked("cannot encode the record".to_string())),
        },
        Ok((Err(e), None)) if !e.is_verdict() => error_term(env, &e),
        Ok((_, None)) => error_term(env, &Changed(path.to_string_lossy().into_owned())),
        Err(p) => error_term(env, &p),
    }
}

type PruneResult = Result<retention::PruneReport, retention::RetentionError>;
type ListResult = Result<Listing, retention::RetentionError>;

macro_rules! try_arg {
    ($env:expr, $e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(err) => return error($env, &err),
        }
    };
}

/// `verify_async(Path, Opts)` -> `{ok, Job}`; later `{emqx_guard_job, Job, {ok, Record} |
/// {error, {Reason, Detail}}}` (see [`verify_result`]).
#[rustler::nif]
fn verify_async<'a>(env: Env<'a>, path: Binary, opts: Term<'a>) -> NifResult<Term<'a>> {
    let limit = try_arg!(env, decode_opts(opts));
    let path = path_arg(&path).to_path_buf();
    let shown = path.clone();
    jobs::start(
        env,
        OwnedEnv::new(),
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            record::verify_recorded(&path, &mut control)
        },
        Box::new(move |env, outcome| verify_result(env, &shown, outcome)),
    )
}

/// `#{deleted, failed, skipped_unverified, verified := [Record], bytes_read}`.
fn prune_records_map<'a>(env: Env<'a>, report: &retention::PruneReport) -> NifResult<Term<'a>> {
    let verified = report
        .verified_now
        .iter()
        .map(|r| record_map(env, r))
        .collect::<NifResult<Vec<_>>>()?;
    prune_report_map(env, report)?
        .map_put(atoms::verified(), verified)?
        .map_put(atoms::bytes_read(), report.bytes_read)
}

/// Retention's progress: `#{checked, checked_bytes, remaining, remaining_bytes, bytes_read}`
/// plus `record => Record` when the export just read reached a verdict (see
/// [`retention::Progress`]).
fn progress_map<'a>(env: Env<'a>, p: &retention::Progress<'_>) -> NifResult<Term<'a>> {
    let map = Term::map_from_term_arrays(
        env,
        &[
            progress_atoms::checked().encode(env),
            progress_atoms::checked_bytes().encode(env),
            progress_atoms::remaining().encode(env),
            progress_atoms::remaining_bytes().encode(env),
            atoms::bytes_read().encode(env),
        ],
        &[
            p.checked.encode(env),
            p.checked_bytes.encode(env),
            p.remaining.encode(env),
            p.remaining_bytes.encode(env),
            p.bytes_read.encode(env),
        ],
    )?;
    match p.record {
        Some(record) => map.map_put(progress_atoms::record(), record_map(env, record)?),
        None => Ok(map),
    }
}

/// `prune_async(Dir, Keep, Protect, DryRun, Records, Opts)` -> `{ok, Job}` (or a `bad_keep`,
/// `bad_record`, `bad_opts` error at once); then `{emqx_guard_job_progress, Job, Progress}` once
/// after listing and once after each export read ([`progress_map`]: each verdict as soon as it
/// is known), and last `{emqx_guard_job, Job, Result}` with Result as `prune/5` returns it, or
/// `{error, {cancelled | panicked, Detail}}` (nothing deleted; the verdicts reached were sent).
#[rustler::nif]
fn prune_async<'a>(
    env: Env<'a>,
    dir: Binary,
    keep: i64,
    protect: Term<'a>,
    dry_run: bool,
    records: Term<'a>,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let (keep, protect_bin) = try_arg!(env, prune_args(env, keep, protect));
    let trusted = try_arg!(env, decode_records(records));
    let limit = try_arg!(env, decode_opts(opts));
    let dir = path_arg(&dir).to_path_buf();
    let protect = protect_bin.as_ref().map(|b| path_arg(b).to_path_buf());
    jobs::start_reporting(
        env,
        OwnedEnv::new(),
        move |cancel, reporter| {
            let mut control = ReadControl::new(cancel.clone(), limit);
            retention::prune_reporting(
                &dir,
                keep,
                protect.as_deref(),
                dry_run,
                &trusted,
                &mut control,
                &mut |progress| {
                    reporter.send(|env| {
                        progress_map(env, progress)
                            .unwrap_or_else(|_| atoms::undefined().encode(env))
                    })
                },
            )
        },
        Box::new(
            |env, outcome: Result<PruneResult, Panicked>| match outcome {
                Ok(Ok(report)) => match prune_records_map(env, &report) {
                    Ok(map) => ok(env, map),
                    Err(_) => error_term(env, &Panicked("cannot encode".to_string())),
                },
                Ok(Err(e)) => error_term(env, &e),
                Err(p) => error_term(env, &p),
            },
        ),
    )
}

/// `#{backups := [Backup#{verification := Record | {error, {Reason, Detail}}}], verified :=
/// [Record], bytes_read}`; a trusted export's `verification` is the caller's own record term.
fn listing_map<'a>(
    env: Env<'a>,
    listing: &Listing,
    trusted_term: &dyn Fn(usize) -> Option<Term<'a>>,
) -> NifResult<Term<'a>> {
    let mut backups = Vec::with_capacity(listing.backups.len());
    let mut verified = Vec::new();
    for listed in &listing.backups {
        let verification = match &listed.check {
            Check::Trusted(i) => trusted_term(*i).unwrap_or_else(|| atoms::undefined().encode(env)),
            Check::Now(record) => {
                let map = record_map(env, record)?;
                verified.push(map);
                map
            }
            Check::Failed { reason, detail } => {
                let reason = Atom::from_str(env, reason)?;
                let detail = crate::one_line(detail);
                (atoms::error(), (reason, detail.as_ref())).encode(env)
            }
        };
        backups
            .push(backup_map(env, &listed.backup)?.map_put(atoms::verification(), verification)?);
    }
    Term::map_from_arrays(
        env,
        &[atoms::backups(), atoms::verified(), atoms::bytes_read()],
        &[
            backups.encode(env),
            verified.encode(env),
            listing.bytes_read.encode(env),
        ],
    )
}

/// `list_verified_async(Dir, Records, Opts)` -> `{ok, Job}`; later `{emqx_guard_job, Job,
/// Result}` with Result as `list_verified/2` returns it, or `{error, {cancelled | panicked,
/// Detail}}`.
#[rustler::nif]
fn list_verified_async<'a>(
    env: Env<'a>,
    dir: Binary,
    records: Term<'a>,
    opts: Term<'a>,
) -> NifResult<Term<'a>> {
    let trusted = try_arg!(env, decode_records(records));
    let limit = try_arg!(env, decode_opts(opts));
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
        Box::new(
            move |env, outcome: Result<ListResult, Panicked>| match outcome {
                Ok(Ok(listing)) => {
                    match listing_map(env, &listing, &|i| saved.get(i).map(|s| s.load(env))) {
                        Ok(map) => ok(env, map),
                        Err(_) => error_term(env, &Panicked("cannot encode".to_string())),
                    }
                }
                Ok(Err(e)) => error_term(env, &e),
                Err(p) => error_term(env, &p),
            },
        ),
    )
}

/// `cancel(Job)` -> `ok`: the job stops at its next read (or wait for the io limit) and sends
/// `{error, {cancelled, _}}`; a job that has finished already is left as it is. Not a job:
/// `badarg`.
#[rustler::nif]
fn cancel(job: Term) -> NifResult<Atom> {
    jobs::cancel_flag(job)?.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(atoms::ok())
}

/// `cancel_all()` -> the number of running jobs, all now cancelled (the plugin stopping).
#[rustler::nif]
fn cancel_all() -> usize {
    worker::cancel_all()
}
