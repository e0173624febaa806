//! The pure-Rust half of `make bench`'s `verify` figures (a benchmark: it prints figures and
//! asserts nothing about time or memory).
//!
//! Usage: `bench_verify PATH`. Verifies one export tarball in a process that does nothing else,
//! then prints `seconds=<float> peak_rss_kib=<VmHWM> result=<...>` so the peak memory of the
//! streaming check can be read without the noise of a BEAM.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use guard_core::verify::verify;

/// The process's peak resident set size (`VmHWM`) in KiB, if `/proc` has it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: bench_verify PATH");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let result = verify(Path::new(&path));
    let secs = start.elapsed().as_secs_f64();
    let peak = peak_rss_kib().map_or_else(|| "unknown".to_string(), |k| k.to_string());
    match result {
        Ok(v) => {
            println!(
                "seconds={secs:.3} peak_rss_kib={peak} result=ok entries={} bytes={} sha256={}",
                v.entries, v.bytes, v.sha256
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!(
                "seconds={secs:.3} peak_rss_kib={peak} result=error {}: {e}",
                e.reason()
            );
            ExitCode::FAILURE
        }
    }
}
