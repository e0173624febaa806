//! The pure-Rust half of `make bench`'s `next_fires` comparison (a benchmark: it prints figures
//! and asserts nothing about time).
//!
//! Usage: `bench_next_fires ITERATIONS EXPR ZONE AFTER_UNIX_MS N`.
//! Call `i` (0-based) asks for `next_fires(EXPR, ZONE, AFTER_UNIX_MS + (i % 1000) * 60000, N)`,
//! exactly what `scripts/emqx_guard_bench.erl` does through the NIF. The calls are made in
//! [`ROUNDS`] rounds and the fastest round counts, which keeps a busy machine's noise out of the
//! figure. Prints one line: `ns_per_call=<float> result=<ok|error reason>`.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use guard_core::schedule::next_fires;

/// The calls are split into this many rounds; the fastest round is reported.
const ROUNDS: u32 = 5;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [iters, expr, zone, after, n] => iters
            .parse::<u32>()
            .ok()
            .zip(after.parse::<i64>().ok())
            .zip(n.parse::<usize>().ok())
            .map(|((iters, after), n)| (iters, expr.as_str(), zone.as_str(), after, n)),
        _ => None,
    };
    let Some((iters, expr, zone, after, n)) = parsed else {
        eprintln!("usage: bench_next_fires ITERATIONS EXPR ZONE AFTER_UNIX_MS N");
        return ExitCode::from(2);
    };
    let call = |i: u32| {
        next_fires(
            black_box(expr),
            zone,
            after + i64::from(i % 1000) * 60_000,
            n,
        )
    };
    let outcome = match call(0) {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("error {}", e.reason()),
    };
    let per_round = (iters / ROUNDS).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for i in 0..per_round {
            let _ = black_box(call(i));
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / f64::from(per_round));
    }
    let ns = best;
    println!("ns_per_call={ns:.1} result={outcome}");
    ExitCode::SUCCESS
}
