//! The library's entry: `nif_init`, built by hand instead of with `rustler::init!`.
//!
//! EMQX (up to 5.8) purges and reloads every beam of a plugin when it restarts it, while the
//! previous instance of `emqx_guard_nif` still holds this library. The BEAM then calls the
//! library's `upgrade` callback instead of `load`, and refuses the load ("Upgrade not supported
//! by this NIF library") when there is none. `rustler::init!` (0.39) always leaves `upgrade`
//! empty and cannot be told otherwise, so [`nif_init`] builds the `ErlNifEntry` from the same
//! inventory of `#[rustler::nif]` functions that `rustler::init!` would use, with an `upgrade`
//! callback. The library keeps no private data; its one resource type, `emqx_guard_job`
//! ([`crate::jobs`]), is created on load and taken over on upgrade. Both callbacks also resolve
//! the `local` time zone once (see [`resolve_local_zone`]).

use std::sync::OnceLock;

use guard_core::schedule;
use rustler::codegen_runtime::{c_int, c_void, ErlNifEntry, ErlNifEnv, ErlNifFunc, ErlNifTerm};

use crate::jobs;

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

/// Initial load: resolves the `local` zone and creates the job resource type; no private data.
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
/// library (EMQX reloading the plugin's beams): the job resource type is taken over, so jobs
/// started by the old instance keep their terms. There is no private data to carry over; the
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
