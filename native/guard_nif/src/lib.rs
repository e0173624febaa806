//! rustler glue between `emqx_guard_nif.erl` and [`guard_core`].
//!
//! This crate only converts terms and picks schedulers; all logic lives in `guard_core`.
//! The Erlang face is the table in `docs/design.md`:
//!
//! - every result is `{ok, Value}` or `{error, {Reason :: atom(), Detail :: binary()}}`, where
//!   `Reason` is the stable `reason()` of the `guard_core` error and `Detail` its one-line
//!   `Display`;
//! - strings are UTF-8 binaries, paths are binaries taken byte for byte (Unix `OsStr`);
//! - arguments of the wrong Erlang type raise `badarg`;
//! - the file NIFs (`list_backups`, `prune`, `verify`, `disk_space`) and `send_mail` ([`mail`]) run on dirty
//!   IO schedulers, `next_fires` for many fire times on a dirty CPU scheduler, the rest on normal
//!   schedulers (they are bounded by `guard_core` and return within microseconds);
//! - a Rust panic is caught by rustler and raised as the Erlang error `nif_panicked`.
//!
//! # Loading the library again
//!
//! EMQX (up to 5.8) purges and reloads every beam of a plugin when it restarts it, while the
//! previous instance of `emqx_guard_nif` still holds this library. The BEAM then calls the
//! library's `upgrade` callback instead of `load`, and refuses the load ("Upgrade not supported
//! by this NIF library") when there is none. `rustler::init!` (0.39) always leaves `upgrade`
//! empty and cannot be told otherwise, so this crate builds its own `ErlNifEntry` (see
//! [`nif_init`]) from the same inventory of `#[rustler::nif]` functions that `rustler::init!`
//! would use, with an `upgrade` callback. The library keeps no private data and defines no
//! resource types, so both callbacks have nothing to carry over; both resolve the `local` time
//! zone once (see [`on_load`]) and accept.

use std::ffi::OsStr;
use std::fmt::Display;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use guard_core::retention::{self, Backup, RetentionError};
use guard_core::schedule::{self, ScheduleError};
use guard_core::verify::VerifyError;
use rustler::codegen_runtime::{c_int, c_void, ErlNifEntry, ErlNifEnv, ErlNifFunc, ErlNifTerm};
use rustler::{Atom, Binary, Encoder, Env, NewBinary, NifResult, Term};

mod background;
mod jobs;
mod mail;
mod offsite;

mod atoms {
    rustler::atoms! {
        ok,
        error,
        undefined,
        name,
        path,
        size,
        mtime,
        deleted,
        failed,
        skipped_unverified,
        entries,
        bytes,
        version,
        edition,
        sha256,
        bad_char,
        bad_zone,
        bad_count,
        bad_keep,
        emqx_guard_job,
        mtime_ns,
        inode,
        dev,
        verified_at,
        result,
        verified,
        bytes_read,
        backups,
        verification,
        io_limit,
        infinity,
        available,
        total,
    }
}

/// An error that crosses into Erlang as `{error, {Reason, Detail}}`.
pub(crate) trait NifError: Display {
    /// The stable reason atom's name.
    fn reason(&self) -> &'static str;
}

impl NifError for ScheduleError {
    fn reason(&self) -> &'static str {
        ScheduleError::reason(self)
    }
}

impl NifError for RetentionError {
    fn reason(&self) -> &'static str {
        RetentionError::reason(self)
    }
}

impl NifError for VerifyError {
    fn reason(&self) -> &'static str {
        VerifyError::reason(self)
    }
}

impl NifError for guard_core::disk::DiskError {
    fn reason(&self) -> &'static str {
        guard_core::disk::DiskError::reason(self)
    }
}

impl NifError for guard_core::reading::ReadError {
    fn reason(&self) -> &'static str {
        guard_core::reading::ReadError::reason(self)
    }
}

impl NifError for guard_core::worker::SpawnError {
    fn reason(&self) -> &'static str {
        guard_core::worker::SpawnError::reason(self)
    }
}

impl NifError for guard_core::worker::Panicked {
    fn reason(&self) -> &'static str {
        guard_core::worker::Panicked::reason(self)
    }
}

/// An error detected here, before `guard_core` is called (an argument outside the domain
/// that the core's Rust signature can express, such as a negative count).
pub(crate) struct ArgError {
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
}

impl Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl NifError for ArgError {
    fn reason(&self) -> &'static str {
        self.reason
    }
}

/// `{ok, Value}`.
pub(crate) fn ok<'a>(env: Env<'a>, value: Term<'a>) -> Term<'a> {
    (atoms::ok(), value).encode(env)
}

/// `{error, {Reason, Detail}}`, Detail forced onto one line.
pub(crate) fn error<'a>(env: Env<'a>, err: &dyn NifError) -> NifResult<Term<'a>> {
    Ok(error_term(env, err))
}

/// `{error, {Reason, Detail}}` as a term (the reason atoms are short: making one cannot fail;
/// should it, the reason is `error`).
pub(crate) fn error_term<'a>(env: Env<'a>, err: &dyn NifError) -> Term<'a> {
    let reason = Atom::from_str(env, err.reason()).unwrap_or_else(|_| atoms::error());
    let text = err.to_string();
    let detail = one_line(&text);
    (atoms::error(), (reason, detail.as_ref())).encode(env)
}

/// `text` with any line breaks (and the white space around them) turned into one space.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\n', '\r']) {
        text.split_whitespace().collect::<Vec<_>>().join(" ").into()
    } else {
        text.into()
    }
}

/// `{ok, Value}` or `{error, {Reason, Detail}}` from a core result.
fn reply<'a, T, E: NifError>(
    env: Env<'a>,
    result: Result<T, E>,
    encode: impl FnOnce(T) -> NifResult<Term<'a>>,
) -> NifResult<Term<'a>> {
    match result {
        Ok(value) => Ok(ok(env, encode(value)?)),
        Err(err) => error(env, &err),
    }
}

/// A UTF-8 binary argument, or the error to return when it is not UTF-8.
fn utf8<'b>(bin: &'b Binary, reason: &'static str, what: &str) -> Result<&'b str, ArgError> {
    std::str::from_utf8(bin.as_slice()).map_err(|e| ArgError {
        reason,
        detail: format!(
            "the {what} is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ),
    })
}

/// A path argument, byte for byte.
pub(crate) fn path_arg<'b>(bin: &'b Binary) -> &'b Path {
    Path::new(OsStr::from_bytes(bin.as_slice()))
}

/// A path as a binary, byte for byte.
pub(crate) fn path_term<'a>(env: Env<'a>, path: &Path) -> Term<'a> {
    NewBinary::from_slice(env, path.as_os_str().as_bytes()).into()
}

pub(crate) fn backup_map<'a>(env: Env<'a>, backup: &Backup) -> NifResult<Term<'a>> {
    Term::map_from_term_arrays(
        env,
        &[
            atoms::name().encode(env),
            atoms::path().encode(env),
            atoms::size().encode(env),
            atoms::mtime().encode(env),
        ],
        &[
            backup.name.as_str().encode(env),
            path_term(env, &backup.path),
            backup.size.encode(env),
            backup.mtime_ms.encode(env),
        ],
    )
}

/// `validate(Expr)` -> `{ok, Normalized}`: the expression trimmed and single-spaced.
#[rustler::nif]
fn validate<'a>(env: Env<'a>, expr: Binary) -> NifResult<Term<'a>> {
    let expr = match utf8(&expr, "bad_char", "expression") {
        Ok(expr) => expr,
        Err(err) => return error(env, &err),
    };
    reply(env, schedule::validate(expr), |s| Ok(s.encode(env)))
}

/// `next_fires(Expr, Zone, AfterUnixMs, N)` -> `{ok, [UnixMs]}`: N (1 to
/// [`schedule::MAX_FIRES`]) fire instants in UTC milliseconds, strictly increasing, all after
/// `AfterUnixMs`; any other N is `bad_count`.
///
/// Two NIFs run it: `next_fires_nif/4` on a normal scheduler and `next_fires_dirty_nif/4` on a
/// dirty CPU scheduler. One fire time costs at most a few microseconds (the search is bounded),
/// so `emqx_guard_nif:next_fires/4` sends small N to the first and large N (up to 1000 sparse
/// fire times can take a few milliseconds) to the second.
fn next_fires_impl<'a>(
    env: Env<'a>,
    expr: Binary,
    zone: Binary,
    after_unix_ms: i64,
    n: Term<'a>,
) -> NifResult<Term<'a>> {
    if !n.is_integer() {
        return Err(rustler::Error::BadArg);
    }
    let expr = match utf8(&expr, "bad_char", "expression") {
        Ok(expr) => expr,
        Err(err) => return error(env, &err),
    };
    let zone = match utf8(&zone, "bad_zone", "time zone") {
        Ok(zone) => zone,
        Err(err) => return error(env, &err),
    };
    // Any integer is accepted here; one that does not fit (negative, a bignum) is `bad_count`.
    let n = match n.decode::<i64>().ok().and_then(|v| usize::try_from(v).ok()) {
        Some(n) => n,
        None => {
            let err = ArgError {
                reason: "bad_count",
                detail: format!(
                    "count {n:?} is out of range: ask for 1 to {} fire times",
                    schedule::MAX_FIRES
                ),
            };
            return error(env, &err);
        }
    };
    reply(
        env,
        schedule::next_fires(expr, zone, after_unix_ms, n),
        |fires| Ok(fires.encode(env)),
    )
}

/// [`next_fires_impl`] on a normal scheduler, for small N.
#[rustler::nif(name = "next_fires_nif")]
fn next_fires_normal<'a>(
    env: Env<'a>,
    expr: Binary,
    zone: Binary,
    after_unix_ms: i64,
    n: Term<'a>,
) -> NifResult<Term<'a>> {
    next_fires_impl(env, expr, zone, after_unix_ms, n)
}

/// [`next_fires_impl`] on a dirty CPU scheduler, for large N.
#[rustler::nif(name = "next_fires_dirty_nif", schedule = "DirtyCpu")]
fn next_fires_dirty<'a>(
    env: Env<'a>,
    expr: Binary,
    zone: Binary,
    after_unix_ms: i64,
    n: Term<'a>,
) -> NifResult<Term<'a>> {
    next_fires_impl(env, expr, zone, after_unix_ms, n)
}

/// `describe(Expr)` -> `{ok, English}`, e.g. `<<"At 12:00, on Sunday">>`.
#[rustler::nif]
fn describe<'a>(env: Env<'a>, expr: Binary) -> NifResult<Term<'a>> {
    let expr = match utf8(&expr, "bad_char", "expression") {
        Ok(expr) => expr,
        Err(err) => return error(env, &err),
    };
    reply(env, schedule::describe(expr), |s| Ok(s.encode(env)))
}

/// `resolve_zone(Zone)` -> `{ok, IanaName}`; `<<"local">>` becomes the node's IANA zone.
#[rustler::nif]
fn resolve_zone<'a>(env: Env<'a>, zone: Binary) -> NifResult<Term<'a>> {
    let zone = match utf8(&zone, "bad_zone", "time zone") {
        Ok(zone) => zone,
        Err(err) => return error(env, &err),
    };
    reply(env, schedule::resolve_zone(zone), |s| Ok(s.encode(env)))
}

/// `utc_offset(Zone, UnixMs)` -> `{ok, OffsetSeconds}` in force in Zone at that instant.
#[rustler::nif]
fn utc_offset<'a>(env: Env<'a>, zone: Binary, unix_ms: i64) -> NifResult<Term<'a>> {
    let zone = match utf8(&zone, "bad_zone", "time zone") {
        Ok(zone) => zone,
        Err(err) => return error(env, &err),
    };
    reply(env, schedule::utc_offset_seconds(zone, unix_ms), |secs| {
        Ok(secs.encode(env))
    })
}

/// `list_backups(Dir)` -> `{ok, [Backup]}` newest first. Dirty IO.
#[rustler::nif(schedule = "DirtyIo")]
fn list_backups<'a>(env: Env<'a>, dir: Binary) -> NifResult<Term<'a>> {
    reply(env, retention::list_backups(path_arg(&dir)), |list| {
        let terms = list
            .iter()
            .map(|b| backup_map(env, b))
            .collect::<NifResult<Vec<_>>>()?;
        Ok(terms.encode(env))
    })
}

/// `Keep` and `Protect` (`undefined` or a path binary) of the prune NIFs: `bad_keep` for a
/// negative Keep, `badarg` for a Protect of another type.
pub(crate) fn prune_args<'a>(
    env: Env<'a>,
    keep: i64,
    protect: Term<'a>,
) -> NifResult<Result<(usize, Option<Binary<'a>>), ArgError>> {
    let protect_bin = if protect == atoms::undefined().encode(env) {
        None
    } else {
        Some(protect.decode::<Binary>()?)
    };
    Ok(match usize::try_from(keep) {
        Ok(keep) => Ok((keep, protect_bin)),
        Err(_) => Err(ArgError {
            reason: "bad_keep",
            detail: format!("keep must be at least 1, got {keep}"),
        }),
    })
}

/// `#{deleted, failed, skipped_unverified}` of a prune report.
pub(crate) fn prune_report_map<'a>(
    env: Env<'a>,
    report: &retention::PruneReport,
) -> NifResult<Term<'a>> {
    {
        let deleted = report
            .deleted
            .iter()
            .map(|b| backup_map(env, b))
            .collect::<NifResult<Vec<_>>>()?;
        let with_error = |list: &[(Backup, String)]| {
            list.iter()
                .map(|(b, why)| backup_map(env, b)?.map_put(atoms::error(), one_line(why).as_ref()))
                .collect::<NifResult<Vec<_>>>()
        };
        let failed = with_error(&report.failed)?;
        let skipped = with_error(&report.skipped_unverified)?;
        Term::map_from_arrays(
            env,
            &[
                atoms::deleted(),
                atoms::failed(),
                atoms::skipped_unverified(),
            ],
            &[deleted.encode(env), failed.encode(env), skipped.encode(env)],
        )
    }
}

/// `disk_space(Path)` -> `{ok, #{available, total}}` in bytes, of the file system holding Path
/// (`guard_core::disk::space`); `not_found` or `io` otherwise. Dirty IO (a hung network file
/// system blocks `statvfs`).
#[rustler::nif(schedule = "DirtyIo")]
fn disk_space<'a>(env: Env<'a>, path: Binary) -> NifResult<Term<'a>> {
    reply(env, guard_core::disk::space(path_arg(&path)), |space| {
        Term::map_from_arrays(
            env,
            &[atoms::available(), atoms::total()],
            &[space.available, space.total],
        )
    })
}

/// `is_export_name(Name)` -> `true | false`: whether Name is exactly an EMQX export name
/// (`emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz`, a real date), the one rule for which files
/// retention, listing and copies may touch ([`retention::is_export_name`]). Not UTF-8 is `false`.
#[rustler::nif]
fn is_export_name(name: Binary) -> bool {
    std::str::from_utf8(name.as_slice()).is_ok_and(retention::is_export_name)
}

/// `panic_probe()`: always panics, so that tests prove a panic becomes the Erlang error
/// `nif_panicked` and the node carries on.
#[rustler::nif]
fn panic_probe() -> Atom {
    panic!("panic_probe: deliberate panic to test that a Rust panic becomes an Erlang error")
}

// ---------------------------------------------------------------------------------------------
// Library entry (replaces `rustler::init!`, which cannot declare an `upgrade` callback).

/// The Erlang module this library belongs to (must match the calling module).
const MODULE: &std::ffi::CStr = c"emqx_guard_nif";

/// Resolves the zone `local` stands for ([`schedule::local_zone`], which reads `TZ`,
/// `/etc/timezone` and `/etc/localtime` once per OS process). Done here because load and
/// upgrade callbacks run while the code is loaded, not on a scheduler that serves Erlang
/// processes: the schedule NIFs, which run on normal schedulers, then never touch a file.
/// `local_zone` cannot fail or panic (it falls back to UTC).
fn resolve_local_zone() {
    let _ = schedule::local_zone();
}

/// Initial load: resolves the `local` zone; no private data.
unsafe extern "C" fn on_load(
    env: *mut ErlNifEnv,
    _priv_data: *mut *mut c_void,
    _load_info: ErlNifTerm,
) -> c_int {
    resolve_local_zone();
    if jobs::open_type(env, false) {
        0
    } else {
        1
    }
}

/// Load into a new instance of `emqx_guard_nif` while an older instance still holds the
/// library (EMQX reloading the plugin's beams). There is no private data to carry over; the
/// `local` zone is resolved here too (a no-op when the library was already loaded in this OS
/// process, whose resolution stays cached).
unsafe extern "C" fn on_upgrade(
    env: *mut ErlNifEnv,
    _priv_data: *mut *mut c_void,
    _old_priv_data: *mut *mut c_void,
    _load_info: ErlNifTerm,
) -> c_int {
    resolve_local_zone();
    if jobs::open_type(env, true) {
        0
    } else {
        1
    }
}

/// The entry handed to the BEAM; it copies what it needs, the functions table stays ours.
struct Entry(ErlNifEntry);

// SAFETY: the entry and the function table it points to are built once, never mutated
// afterwards, and only hold pointers to `'static` data (C strings and `extern "C"` functions).
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}

static ENTRY: OnceLock<Entry> = OnceLock::new();

fn build_entry() -> Entry {
    let funcs: Vec<ErlNifFunc> = rustler::codegen_runtime::inventory::iter::<rustler::Nif>()
        .map(rustler::Nif::get_def)
        .collect();
    // Leaked on purpose: the BEAM reads the table for as long as the library is loaded.
    let funcs: &'static [ErlNifFunc] = Box::leak(funcs.into_boxed_slice());
    let mut entry = ErlNifEntry::new(MODULE, funcs, on_load);
    entry.upgrade = Some(on_upgrade);
    Entry(entry)
}

/// The symbol the BEAM looks up in a NIF library (`ERL_NIF_INIT` in C).
///
/// # Safety
///
/// Called by the BEAM's `erlang:load_nif/2`, which reads the returned entry.
#[no_mangle]
pub unsafe extern "C" fn nif_init() -> *const ErlNifEntry {
    rustler::codegen_runtime::internal_write_symbols();
    &ENTRY.get_or_init(build_entry).0
}
