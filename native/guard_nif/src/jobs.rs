//! How the jobs of the contract (`emqx_guard_nif`'s module doc) are made. A job is started by a
//! NIF (`verify_async/2`, ...), runs on its own low-priority thread ([`guard_core::worker`]) and
//! ends by sending `{emqx_guard_job, Job, Result}` to the process that started it. A job started
//! with [`start_reporting`] may send `{emqx_guard_job_progress, Job, Progress}` messages before
//! that one (in order: all of them arrive before the result). Also here: the jobs' `Opts`
//! ([`decode_opts`]) and the NIFs `cancel/1` and `cancel_all/0`.
//!
//! `Job` is a resource term of the type `emqx_guard_job` (opaque to Erlang; the same job's terms
//! compare equal, so a `receive` can match it). The resource holds the job's cancel flag:
//! - `cancel(Job)` sets it;
//! - the resource monitors the starting process: when that process exits (e.g. the plugin's run
//!   worker killed because the plugin stops) the job is cancelled, so no thread outlives its
//!   caller by more than one read;
//! - `cancel_all()` cancels every running job.
//!
//! The resource type is opened by hand (not with rustler's resource registry) because this
//! library supports the BEAM's `upgrade` callback ([`crate::entry`]), where the type already
//! exists and must be taken over (`ERL_NIF_RT_TAKEOVER`); rustler 0.39 registers resource types
//! with `ERL_NIF_RT_CREATE` only.

use std::ffi::CStr;
use std::mem::size_of;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

use std::num::NonZeroU64;

use guard_core::reading::CancelFlag;
use guard_core::worker::{self, Panicked};
use rustler::env::OwnedEnv;
use rustler::sys::{
    enif_alloc_resource, enif_get_resource, enif_init_resource_type, enif_make_resource,
    enif_monitor_process, enif_release_resource, ErlNifEnv, ErlNifMonitor, ErlNifPid,
    ErlNifResourceDown, ErlNifResourceDtor, ErlNifResourceFlags, ErlNifResourceType,
    ErlNifResourceTypeInit,
};
use rustler::types::map::MapIterator;
use rustler::{Atom, Encoder, Env, LocalPid, NifResult, Term};

use crate::terms::{ArgError, Reply};

mod atoms {
    rustler::atoms! {
        emqx_guard_job,
        emqx_guard_job_progress,
        io_limit,
        infinity,
        ok,
    }
}

const TYPE_NAME: &CStr = c"emqx_guard_job";

/// The resource type, set by [`open_type`] when the library is loaded or upgraded.
static JOB_TYPE: AtomicPtr<ErlNifResourceType> = AtomicPtr::new(ptr::null_mut());

/// What a job resource points to: `Arc::into_raw` of this, stored in the resource's memory.
struct Shared {
    cancel: CancelFlag,
}

/// Opens the `emqx_guard_job` resource type: creates it on the first load, takes it over from
/// the previous module instance on an upgrade. False when the BEAM refuses (the load fails).
///
/// # Safety
///
/// `env` is the environment of a load or upgrade callback.
pub unsafe fn open_type(env: *mut ErlNifEnv, upgrade: bool) -> bool {
    let init = ErlNifResourceTypeInit {
        dtor: job_dtor as *const ErlNifResourceDtor,
        stop: ptr::null(),
        down: job_down as *const ErlNifResourceDown,
        members: 3,
        dyncall: ptr::null(),
    };
    let open =
        |flags| enif_init_resource_type(env, TYPE_NAME.as_ptr(), &init, flags, ptr::null_mut());
    let mut ty = ptr::null();
    if upgrade {
        ty = open(ErlNifResourceFlags::ERL_NIF_RT_TAKEOVER);
    }
    if ty.is_null() {
        ty = open(ErlNifResourceFlags::ERL_NIF_RT_CREATE);
    }
    if ty.is_null() {
        return false;
    }
    JOB_TYPE.store(ty as *mut _, Ordering::Release);
    true
}

/// The `Shared` behind a resource object.
///
/// # Safety
///
/// `obj` is a live object of the job type.
unsafe fn shared<'o>(obj: *const std::ffi::c_void) -> &'o Shared {
    &*(*(obj as *const *const Shared))
}

unsafe extern "C" fn job_dtor(_env: *mut ErlNifEnv, obj: *mut std::ffi::c_void) {
    let raw = *(obj as *const *const Shared);
    if !raw.is_null() {
        drop(Arc::from_raw(raw));
    }
}

unsafe extern "C" fn job_down(
    _env: *mut ErlNifEnv,
    obj: *mut std::ffi::c_void,
    _pid: *const ErlNifPid,
    _mon: *const ErlNifMonitor,
) {
    shared(obj).cancel.store(true, Ordering::Relaxed);
}

/// A reference to a job resource object held by the job's thread (released on drop, also after
/// a panic).
struct Held(*const std::ffi::c_void);

// SAFETY: resource objects may be referenced from any thread; enif_make_resource and
// enif_release_resource are thread-safe. `Held` is only read (the pointer), never written, so
// sharing it between the job's work and its final delivery (both on the job's thread) is safe.
unsafe impl Send for Held {}
unsafe impl Sync for Held {}

impl Held {
    /// The job's term in `env`.
    fn term<'a>(&self, env: Env<'a>) -> Term<'a> {
        // SAFETY: `self` keeps the object alive; enif_make_resource is thread-safe.
        unsafe { Term::new(env, enif_make_resource(env.as_c_arg(), self.0)) }
    }
}

/// What a job's work uses to tell the starting process how far it got:
/// `{emqx_guard_job_progress, Job, Progress}`, sent at once from the job's thread.
pub struct Reporter {
    pid: LocalPid,
    job: Arc<Held>,
}

impl Reporter {
    /// Sends `{emqx_guard_job_progress, Job, make(env)}`. A process that is gone is not an
    /// error (the job is being cancelled then).
    pub fn send(&self, make: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        let mut owned = OwnedEnv::new();
        let _ = owned.send_and_clear(&self.pid, |env| {
            (
                atoms::emqx_guard_job_progress(),
                self.job.term(env),
                make(env),
            )
                .encode(env)
        });
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: we own one reference (from enif_alloc_resource).
        unsafe { enif_release_resource(self.0) };
    }
}

/// The cancel flag of the job `term` refers to; `badarg` when it is not a job.
pub fn cancel_flag(term: Term) -> NifResult<CancelFlag> {
    let ty = JOB_TYPE.load(Ordering::Acquire);
    if ty.is_null() {
        return Err(rustler::Error::BadArg);
    }
    let mut obj: *const std::ffi::c_void = ptr::null();
    // SAFETY: the term belongs to the caller's env; obj is only read while the term lives.
    let found =
        unsafe { enif_get_resource(term.get_env().as_c_arg(), term.as_c_arg(), ty, &mut obj) };
    if found == 0 || obj.is_null() {
        return Err(rustler::Error::BadArg);
    }
    // SAFETY: obj is a live job object.
    Ok(unsafe { shared(obj) }.cancel.clone())
}

/// A job's final message: the Erlang terms are built by `encode` on the job's thread, in the
/// job's own environment (where any terms saved from the caller live).
pub type Encode<T> = Box<dyn for<'a> FnOnce(Env<'a>, Result<T, Panicked>) -> Term<'a> + Send>;

/// Starts `work` on a low-priority thread; when it ends, `{emqx_guard_job, Job, encode(result)}`
/// is sent to the calling process. `owned` is the environment `encode` runs in (terms the caller
/// passed may be saved in it beforehand). Returns `{ok, Job}`, or `{error, {busy | thread,
/// Detail}}` when no thread could be started.
pub fn start<'a, T, W>(
    env: Env<'a>,
    owned: OwnedEnv,
    work: W,
    encode: Encode<T>,
) -> NifResult<Reply<Term<'a>>>
where
    T: Send + 'static,
    W: FnOnce(&CancelFlag) -> T + Send + 'static,
{
    start_reporting(env, owned, move |cancel, _| work(cancel), encode)
}

/// [`start`] for work that reports progress through the [`Reporter`] it is given.
pub fn start_reporting<'a, T, W>(
    env: Env<'a>,
    mut owned: OwnedEnv,
    work: W,
    encode: Encode<T>,
) -> NifResult<Reply<Term<'a>>>
where
    T: Send + 'static,
    W: FnOnce(&CancelFlag, &Reporter) -> T + Send + 'static,
{
    let ty = JOB_TYPE.load(Ordering::Acquire);
    if ty.is_null() {
        return Err(rustler::Error::RaiseAtom("job_type_not_loaded"));
    }
    let cancel: CancelFlag = Arc::new(AtomicBool::new(false));
    let pid: LocalPid = env.pid();
    // SAFETY: the object is initialised before any term refers to it; the reference we get from
    // enif_alloc_resource goes to `Held`, which releases it.
    let (held, term) = unsafe {
        let obj = enif_alloc_resource(ty, size_of::<*const Shared>());
        if obj.is_null() {
            return Err(rustler::Error::RaiseAtom("enomem"));
        }
        let raw = Arc::into_raw(Arc::new(Shared {
            cancel: cancel.clone(),
        }));
        ptr::write(obj as *mut *const Shared, raw);
        let held = Held(obj);
        let term = Term::new(env, enif_make_resource(env.as_c_arg(), obj));
        // Cancels the job when the caller exits; failure means the caller is exiting already.
        if enif_monitor_process(env.as_c_arg(), obj, pid.as_c_arg(), ptr::null_mut()) != 0 {
            cancel.store(true, Ordering::Relaxed);
        }
        (Arc::new(held), term)
    };
    let reporter = Reporter {
        pid,
        job: held.clone(),
    };
    let spawned = worker::spawn_with(
        cancel,
        move |cancel| work(cancel, &reporter),
        move |result| {
            let _ = owned.send_and_clear(&pid, |env| {
                (atoms::emqx_guard_job(), held.term(env), encode(env, result)).encode(env)
            });
        },
    );
    Ok(spawned.map(|()| term).map_err(Into::into))
}

/// Decodes `Opts`: the io limit (`None`: no limit). Not a map: `badarg`; an unknown key or a
/// bad value: `bad_opts`. By hand: a derived map decoder would ignore an unknown key (a typo
/// must be an error) and require `io_limit`, which is optional.
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
        if key.decode::<Atom>().ok() != Some(atoms::io_limit()) {
            return Ok(Err(bad(format!(
                "unknown option {key:?}: the only option is io_limit"
            ))));
        }
        if value.decode::<Atom>().ok() == Some(atoms::infinity()) {
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

/// Sets the job's cancel flag; the work checks it before every read and while it waits for the
/// io limit. Not a job: `badarg`.
#[rustler::nif]
fn cancel(job: Term) -> NifResult<Atom> {
    cancel_flag(job)?.store(true, Ordering::Relaxed);
    Ok(atoms::ok())
}

#[rustler::nif]
fn cancel_all() -> usize {
    worker::cancel_all()
}
