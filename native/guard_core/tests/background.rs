//! Background jobs: low-priority threads, cancellation, panics, and the read-throughput cap.
//!
//! The tests that count jobs or threads share process-wide state, so they take [`serial`] first.

mod common;

use std::fs;
use std::io::Write;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use guard_core::reading::ReadControl;
use guard_core::record::verify_recorded;
use guard_core::verify::verify_controlled;
use guard_core::worker::{self, Policy, LOW_NICE};
use tempfile::TempDir;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn threads() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An export in EMQX's layout whose gzip stream is stored, not deflated, so the file is about
/// `mib` MiB.
fn big_export(dir: &Path, mib: usize) -> PathBuf {
    let table = vec![b'x'; mib * 1024 * 1024];
    common::write_export(
        dir,
        "emqx-export-2024-01-25-10-41-48.962",
        "mnesia/emqx_table",
        &table,
    )
}

#[test]
fn a_job_runs_on_its_own_thread_at_idle_priority() {
    let _serial = serial();
    let (tx, rx) = mpsc::channel();
    worker::spawn(
        |_cancel| (worker::current_priority(), std::thread::current().id()),
        move |result| tx.send(result).unwrap(),
    )
    .unwrap();
    let (priority, thread) = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_ne!(thread, std::thread::current().id());
    assert_eq!(priority.policy, Policy::Idle);
    assert_eq!(priority.nice, LOW_NICE);
    // The caller's own thread is untouched.
    assert_eq!(worker::current_priority().policy, Policy::Other);
    wait_until("the job to end", || worker::running_jobs() == 0);
}

#[test]
fn a_panic_in_a_job_is_delivered_as_an_error() {
    let _serial = serial();
    let (tx, rx) = mpsc::channel();
    worker::spawn(
        |_cancel| -> u32 { panic!("deliberate\npanic") },
        move |result| tx.send(result).unwrap(),
    )
    .unwrap();
    let err = rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.reason(), "panicked");
    assert_eq!(err.0, "deliberate panic");
    wait_until("the job to end", || worker::running_jobs() == 0);
}

#[test]
fn cancel_stops_a_verification_promptly_and_leaves_no_thread() {
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let path = big_export(dir.path(), 8);
    let before = threads();
    let (tx, rx) = mpsc::channel();
    let job_path = path.clone();
    // 1 MiB/s: the whole file would take about 8 s.
    let cancel = worker::spawn(
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), NonZeroU64::new(1 << 20));
            verify_recorded(&job_path, &mut control)
        },
        move |result| tx.send(result).unwrap(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(worker::running_jobs(), 1);
    let asked = Instant::now();
    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    let (result, record) = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(result.unwrap_err().reason(), "cancelled");
    assert!(record.is_none(), "a cancelled check is no verdict");
    wait_until("the job's thread to end", || {
        worker::running_jobs() == 0 && threads() == before
    });
}

#[test]
fn cancel_all_cancels_every_running_job() {
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let path = big_export(dir.path(), 2);
    let (tx, rx) = mpsc::channel();
    for _ in 0..3 {
        let (tx, path) = (tx.clone(), path.clone());
        worker::spawn(
            move |cancel| {
                let mut control = ReadControl::new(cancel.clone(), NonZeroU64::new(256 * 1024));
                verify_controlled(&path, &mut control)
            },
            move |result| tx.send(result).unwrap(),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(worker::cancel_all(), 3);
    for _ in 0..3 {
        let result = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(result.unwrap_err().reason(), "cancelled");
    }
    wait_until("the jobs to end", || worker::running_jobs() == 0);
}

#[test]
fn an_uncancelled_job_verifies_and_records() {
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let path = big_export(dir.path(), 1);
    let (tx, rx) = mpsc::channel();
    let job_path = path.clone();
    worker::spawn(
        move |cancel| {
            let mut control = ReadControl::new(cancel.clone(), None);
            let out = verify_recorded(&job_path, &mut control);
            (out, control.bytes_read())
        },
        move |result| tx.send(result).unwrap(),
    )
    .unwrap();
    let ((result, record), bytes) = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    let verified = result.unwrap();
    let record = record.unwrap();
    assert_eq!(record.outcome.as_ref().unwrap(), &verified);
    assert_eq!(record.id.size, fs::metadata(&path).unwrap().len());
    assert_eq!(bytes, record.id.size);
    wait_until("the job to end", || worker::running_jobs() == 0);
}

/// The cap is honoured within 10% on a file of a few hundred MB: 256 MiB at 128 MiB/s.
#[test]
fn io_limit_is_honoured_within_ten_percent() {
    let _serial = serial();
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("big");
    let size: u64 = 256 * 1024 * 1024;
    {
        let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
        for _ in 0..size / block.len() as u64 {
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    let limit: u64 = 128 * 1024 * 1024;
    let mut control = ReadControl::new(
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        NonZeroU64::new(limit),
    );
    // Read through the control only (a debug build hashes slower than the limit); the control
    // is the same one hash_file and verify read through.
    let start = Instant::now();
    let copied = std::io::copy(
        &mut control.reader(fs::File::open(&path).unwrap()),
        &mut std::io::sink(),
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(copied, size);
    assert_eq!(control.bytes_read(), size);
    let rate = size as f64 / secs;
    let ratio = rate / limit as f64;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "read at {:.1} MiB/s against a limit of {} MiB/s ({ratio:.3}x) in {secs:.2} s",
        rate / 1048576.0,
        limit / 1048576
    );
}
