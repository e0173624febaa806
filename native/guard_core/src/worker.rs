//! Background jobs, each on its own OS thread at the lowest CPU priority.
//!
//! Heavy work (inflate + tar walk + SHA-256 of an export, retention's reads, an off-site upload
//! or download) must not compete with the threads that serve MQTT clients. [`spawn`] runs a job
//! on a new thread, named `emqx_guard_job`, that first lowers its own priority
//! ([`lower_current_thread`]: `nice` 19 via `setpriority` on its thread id, then the `SCHED_IDLE`
//! policy, which runs only when no other thread wants the CPU), then runs the work, then hands
//! the result to a delivery function (the NIF sends it to an Erlang process), and ends. There is
//! no pool: no thread exists while no job runs.
//!
//! - A job is cancelled through its [`CancelFlag`] (the work checks it between reads, see
//!   [`crate::reading`]); [`cancel_all`] cancels every running job (the plugin stopping).
//! - A panic in the work (or in the delivery) never leaves the thread: the work's panic is
//!   delivered as [`Panicked`], a panic while delivering is dropped.
//! - At most [`MAX_JOBS`] jobs run at once; one more is refused with [`SpawnError::Busy`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::reading::CancelFlag;

/// Most jobs running at once.
pub const MAX_JOBS: usize = 16;

/// The nice value background threads ask for (the lowest priority).
pub const LOW_NICE: i32 = 19;

/// A thread's scheduling policy, as Linux names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_OTHER`, the default.
    Other,
    /// `SCHED_BATCH`.
    Batch,
    /// `SCHED_IDLE`: runs only when nothing else wants the CPU.
    Idle,
    /// Anything else (a real-time policy), or the policy could not be read.
    Unknown(i32),
}

/// A thread's CPU priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub policy: Policy,
    /// The nice value, -20 (highest) to 19 (lowest).
    pub nice: i32,
}

/// The calling thread's scheduling policy and nice value.
#[cfg(target_os = "linux")]
pub fn current_priority() -> Priority {
    // SAFETY: plain system calls on the calling thread, with no pointers.
    let (policy, nice) = unsafe {
        let policy = libc::sched_getscheduler(0);
        // getpriority may legitimately return -1: errno tells an error apart.
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
        let failed = nice == -1 && *libc::__errno_location() != 0;
        (policy, if failed { 0 } else { nice })
    };
    let policy = match policy {
        libc::SCHED_OTHER => Policy::Other,
        libc::SCHED_BATCH => Policy::Batch,
        libc::SCHED_IDLE => Policy::Idle,
        other => Policy::Unknown(other),
    };
    Priority { policy, nice }
}

/// The calling thread's scheduling policy and nice value (not Linux: unknown).
#[cfg(not(target_os = "linux"))]
pub fn current_priority() -> Priority {
    Priority {
        policy: Policy::Unknown(-1),
        nice: 0,
    }
}

/// Lowers the calling thread (only it, not the process) to nice [`LOW_NICE`] and the
/// `SCHED_IDLE` policy, and returns the priority it then has. Lowering a priority needs no
/// privilege; a step that fails anyway is skipped (the other still applies).
///
/// ```
/// use guard_core::worker::{current_priority, lower_current_thread, Policy, LOW_NICE};
///
/// std::thread::spawn(|| {
///     let after = lower_current_thread();
///     assert_eq!((after.policy, after.nice), (Policy::Idle, LOW_NICE));
///     assert_eq!(current_priority(), after);
/// })
/// .join()
/// .unwrap();
/// ```
#[cfg(target_os = "linux")]
pub fn lower_current_thread() -> Priority {
    // SAFETY: system calls on the calling thread; `param` outlives the call.
    unsafe {
        // On Linux a thread id is a process id for setpriority: this renices this thread only.
        let _ = libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, LOW_NICE);
        let param = libc::sched_param { sched_priority: 0 };
        // pid 0 is the calling thread.
        let _ = libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
    current_priority()
}

/// Not Linux: nothing is changed.
#[cfg(not(target_os = "linux"))]
pub fn lower_current_thread() -> Priority {
    current_priority()
}

/// A job's helper thread (a download's writing or checking thread) at its job's priority:
/// lowered ([`lower_current_thread`]) when `job` (its job thread's [`current_priority`]) is
/// `SCHED_IDLE`, as every job thread of the plugin is; otherwise left as it is (on Linux a new
/// thread already has its creator's priority), so that work called from a thread that was not
/// lowered, such as a benchmark's, is not starved behind it.
///
/// ```
/// use guard_core::worker::{current_priority, lower_current_thread, lower_like, Policy};
///
/// std::thread::spawn(|| {
///     let job = lower_current_thread();
///     let helper = std::thread::spawn(move || lower_like(job)).join().unwrap();
///     assert_eq!(helper, job);
/// })
/// .join()
/// .unwrap();
/// assert_eq!(lower_like(current_priority()).policy, Policy::Other);
/// ```
pub fn lower_like(job: Priority) -> Priority {
    if job.policy == Policy::Idle {
        lower_current_thread()
    } else {
        current_priority()
    }
}

/// A panic in a job's work, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the background job panicked: {0}; this is a bug in emqx_guard, please report it")]
pub struct Panicked(pub String);

impl Panicked {
    /// Stable short name, used as the Erlang error atom.
    pub fn reason(&self) -> &'static str {
        "panicked"
    }
}

/// Why a job was not started. [`SpawnError::reason`] is a stable short name.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// [`MAX_JOBS`] jobs are running already.
    #[error("{max} background jobs are running already: wait for one to finish or cancel one")]
    Busy { max: usize },
    /// The OS refused a new thread.
    #[error("cannot start a background thread: {detail}")]
    Thread { detail: String },
}

impl SpawnError {
    /// Stable short name of the failure, used as the Erlang error atom.
    pub fn reason(&self) -> &'static str {
        match self {
            SpawnError::Busy { .. } => "busy",
            SpawnError::Thread { .. } => "thread",
        }
    }
}

/// The running jobs: id and cancel flag.
static RUNNING: Mutex<Vec<(u64, CancelFlag)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn running() -> MutexGuard<'static, Vec<(u64, CancelFlag)>> {
    // The lock is never held across anything that can panic; recover from poisoning anyway.
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Number of jobs whose thread has not finished its work and delivery yet.
///
/// ```
/// use std::sync::mpsc;
/// use guard_core::worker::{cancel_all, running_jobs, spawn};
///
/// let (done, finished) = mpsc::channel();
/// let before = running_jobs();
/// // A job that runs until it is cancelled:
/// spawn(|cancel| while !cancel.load(std::sync::atomic::Ordering::Relaxed) {
///     std::thread::sleep(std::time::Duration::from_millis(5));
/// }, move |_| done.send(()).unwrap())?;
/// assert!(running_jobs() > before);
/// assert!(cancel_all() >= 1);
/// finished.recv()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn running_jobs() -> usize {
    running().len()
}

/// Cancels every running job; returns how many there were.
pub fn cancel_all() -> usize {
    let jobs = running();
    for (_, flag) in jobs.iter() {
        flag.store(true, Ordering::Relaxed);
    }
    jobs.len()
}

/// Removes a job from [`RUNNING`] when its thread is done with it, even after a panic.
struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        running().retain(|(id, _)| *id != self.0);
    }
}

/// Starts a job: a new thread lowers its own priority ([`lower_current_thread`]), runs
/// `work(&cancel)`, passes the result (or the work's panic) to `deliver`, and ends. Returns the
/// job's cancel flag: setting it makes the work stop at its next check.
///
/// `deliver` is called exactly once, on the job's thread, unless the thread could not start
/// (then `Err` is returned and neither closure runs).
///
/// ```
/// use std::sync::mpsc;
/// use guard_core::worker::{spawn, Policy};
///
/// let (tx, rx) = mpsc::channel();
/// spawn(|_cancel| guard_core::worker::current_priority(), move |result| tx.send(result).unwrap())?;
/// let priority = rx.recv()?.expect("no panic");
/// assert_eq!(priority.policy, Policy::Idle);
///
/// // A panic in the work is delivered, the thread ends normally:
/// let (tx, rx) = mpsc::channel();
/// spawn(|_| -> () { panic!("boom") }, move |result| tx.send(result).unwrap())?;
/// assert_eq!(rx.recv()?.unwrap_err().reason(), "panicked");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn<T, W, D>(work: W, deliver: D) -> Result<CancelFlag, SpawnError>
where
    W: FnOnce(&CancelFlag) -> T + Send + 'static,
    D: FnOnce(Result<T, Panicked>) + Send + 'static,
{
    let cancel: CancelFlag = Arc::new(AtomicBool::new(false));
    spawn_with(cancel.clone(), work, deliver)?;
    Ok(cancel)
}

/// [`spawn`] with a cancel flag the caller made (e.g. one an Erlang term refers to already).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::{mpsc, Arc};
/// use guard_core::worker::spawn_with;
///
/// let cancel = Arc::new(AtomicBool::new(true)); // cancelled before it starts
/// let (tx, rx) = mpsc::channel();
/// spawn_with(cancel, |c| c.load(Ordering::Relaxed), move |seen| tx.send(seen).unwrap())?;
/// assert_eq!(rx.recv()?, Ok(true));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn_with<T, W, D>(cancel: CancelFlag, work: W, deliver: D) -> Result<(), SpawnError>
where
    W: FnOnce(&CancelFlag) -> T + Send + 'static,
    D: FnOnce(Result<T, Panicked>) + Send + 'static,
{
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    {
        let mut jobs = running();
        if jobs.len() >= MAX_JOBS {
            return Err(SpawnError::Busy { max: MAX_JOBS });
        }
        jobs.push((id, cancel.clone()));
    }
    let registered = Registered(id);
    let flag = cancel.clone();
    let started = std::thread::Builder::new()
        .name("emqx_guard_job".to_string())
        .spawn(move || {
            let _registered = registered;
            let _ = lower_current_thread();
            let result = catch_unwind(AssertUnwindSafe(|| work(&flag))).map_err(panic_text);
            let _ = catch_unwind(AssertUnwindSafe(|| deliver(result)));
        });
    match started {
        Ok(_detached) => Ok(()),
        // The closure (and with it `registered`) was dropped: the job is unregistered already.
        Err(e) => Err(SpawnError::Thread {
            detail: e.to_string(),
        }),
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> Panicked {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    };
    Panicked(text.replace(['\n', '\r'], " "))
}
