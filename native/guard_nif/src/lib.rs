//! rustler glue between the Erlang module `emqx_guard_nif` and [`guard_core`].
//!
//! The contract of every function (arguments, results, errors, the scheduler or thread it runs
//! on) is stated once, in `erlang/nif/emqx_guard_nif.erl`: its `-spec`s and `%% @doc`s, and the
//! module doc for the rules all functions share. This crate implements it and does not state it
//! again: it only converts terms and picks the scheduler or job thread; what each computation
//! does is `guard_core`'s, documented there.
//!
//! - [`terms`]: the reply shape every NIF shares, `{ok, Value}` or
//!   `{error, {Reason, Detail}}`; the values are Rust types whose rustler derives say their
//!   Erlang shape, next to the NIFs that return them;
//! - this file: the schedule NIFs, `disk_space`, `is_export_name`, `panic_probe`;
//! - [`backups`]: listing, verification and retention of the backup files (jobs);
//! - [`retention`]: retention policies, and the rules the prune NIFs take;
//! - [`offsite`]: off-site copies (jobs); [`mail`]: the backup e-mail;
//! - [`jobs`]: the `emqx_guard_job` resource, starting and cancelling jobs, their `Opts`;
//! - [`entry`]: the library entry, with the `upgrade` callback `rustler::init!` cannot declare.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use guard_core::schedule;
use rustler::{Atom, Binary, NifMap, NifResult, Term};

mod backups;
mod entry;
mod jobs;
mod mail;
mod offsite;
mod retention;
mod terms;

use terms::{ArgError, Reply};

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

#[rustler::nif]
fn validate(expr: Binary) -> Reply<String> {
    Ok(schedule::validate(utf8(&expr, "bad_char", "expression")?)?)
}

/// `next_fires/4` in one of two NIFs: `next_fires_nif/4` on a normal scheduler and
/// `next_fires_dirty_nif/4` on a dirty CPU scheduler (the Erlang side picks by N). A count that
/// is not an integer raises `badarg`; any integer outside 1 to [`schedule::MAX_FIRES`] (a
/// bignum too) is `bad_count`.
fn next_fires_impl(
    expr: Binary,
    zone: Binary,
    after_unix_ms: i64,
    n: Term,
) -> NifResult<Reply<Vec<i64>>> {
    if !n.is_integer() {
        return Err(rustler::Error::BadArg);
    }
    let fires = || {
        let expr = utf8(&expr, "bad_char", "expression")?;
        let zone = utf8(&zone, "bad_zone", "time zone")?;
        let n = n
            .decode::<i64>()
            .ok()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| ArgError {
                reason: "bad_count",
                detail: format!(
                    "count {n:?} is out of range: ask for 1 to {} fire times",
                    schedule::MAX_FIRES
                ),
            })?;
        Ok(schedule::next_fires(expr, zone, after_unix_ms, n)?)
    };
    Ok(fires())
}

#[rustler::nif(name = "next_fires_nif")]
fn next_fires_normal(
    expr: Binary,
    zone: Binary,
    after_unix_ms: i64,
    n: Term,
) -> NifResult<Reply<Vec<i64>>> {
    next_fires_impl(expr, zone, after_unix_ms, n)
}

#[rustler::nif(name = "next_fires_dirty_nif", schedule = "DirtyCpu")]
fn next_fires_dirty(
    expr: Binary,
    zone: Binary,
    after_unix_ms: i64,
    n: Term,
) -> NifResult<Reply<Vec<i64>>> {
    next_fires_impl(expr, zone, after_unix_ms, n)
}

#[rustler::nif]
fn describe(expr: Binary) -> Reply<String> {
    Ok(schedule::describe(utf8(&expr, "bad_char", "expression")?)?)
}

#[rustler::nif]
fn resolve_zone(zone: Binary) -> Reply<String> {
    Ok(schedule::resolve_zone(utf8(
        &zone,
        "bad_zone",
        "time zone",
    )?)?)
}

#[rustler::nif]
fn utc_offset(zone: Binary, unix_ms: i64) -> Reply<i32> {
    let zone = utf8(&zone, "bad_zone", "time zone")?;
    Ok(schedule::utc_offset_seconds(zone, unix_ms)?)
}

/// The space of `disk_space/1`.
#[derive(NifMap)]
#[rustler(encode)]
struct SpaceMap {
    available: u64,
    total: u64,
}

/// Dirty IO: a hung network file system blocks `statvfs`.
#[rustler::nif(schedule = "DirtyIo")]
fn disk_space(path: Binary) -> Reply<SpaceMap> {
    let space = guard_core::disk::space(path_arg(&path))?;
    Ok(SpaceMap {
        available: space.available,
        total: space.total,
    })
}

/// Not UTF-8 is not an export name.
#[rustler::nif]
fn is_export_name(name: Binary) -> bool {
    std::str::from_utf8(name.as_slice()).is_ok_and(guard_core::retention::is_export_name)
}

#[rustler::nif]
fn panic_probe() -> Atom {
    panic!("panic_probe: deliberate panic to test that a Rust panic becomes an Erlang error")
}
