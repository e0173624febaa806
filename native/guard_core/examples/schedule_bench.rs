//! Prints the per-call time of the schedule API (a benchmark, not a test: no assertions on
//! time). Run with `cargo run --release -p guard_core --example schedule_bench`.

use std::hint::black_box;
use std::time::Instant;

use guard_core::schedule::{describe, next_fires, resolve_zone, validate};

/// 2026-01-01T00:00:00Z
const AFTER: i64 = 1_767_225_600_000;

fn per_call_us(iterations: u32, mut f: impl FnMut()) -> f64 {
    f(); // warm up (zone tables, caches)
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
}

fn main() {
    let cases: [(&str, &str, i64); 10] = [
        ("*/15 * * * *", "UTC", AFTER),
        ("0 2 * * *", "Europe/Berlin", AFTER),
        ("30 2 * * *", "Europe/Berlin", 1_774_648_800_000), // 2026-03-28, across the gap
        ("0 22 * * 1-5", "America/New_York", AFTER),
        ("0 0 1,15 * 1", "America/Santiago", AFTER),
        ("15 2 * * *", "Australia/Lord_Howe", AFTER),
        ("0 0 29 2 *", "UTC", AFTER),
        ("0 0 29 2 *", "Europe/Berlin", 4_000_000_000_000), // 2096: skips 2100
        ("0 0 29 2 */7", "UTC", AFTER), // Feb 29 that is a Sunday: 2032, 2060, 2088
        ("* * * * *", "Pacific/Apia", 1_325_239_080_000), // Samoa skipped 2011-12-30
    ];
    println!(
        "{:<16} {:<20} {:>14} {:>12} {:>12}",
        "expr", "zone", "next_fires(3)", "validate", "describe"
    );
    for (expr, zone, after) in cases {
        let nf = per_call_us(20_000, || {
            black_box(next_fires(black_box(expr), zone, after, 3).ok());
        });
        let va = per_call_us(100_000, || {
            black_box(validate(black_box(expr)).ok());
        });
        let de = per_call_us(100_000, || {
            black_box(describe(black_box(expr)).ok());
        });
        println!("{expr:<16} {zone:<20} {nf:>11.2} µs {va:>9.2} µs {de:>9.2} µs");
    }
    for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
        let va = per_call_us(100_000, || {
            black_box(validate(black_box(expr)).err());
        });
        let nf = per_call_us(100_000, || {
            black_box(next_fires(black_box(expr), "UTC", AFTER, 3).err());
        });
        println!("{expr:<16} (never fires)        {nf:>11.2} µs {va:>9.2} µs");
    }
    let local = per_call_us(20_000, || {
        black_box(next_fires("0 2 * * *", "local", AFTER, 3).ok());
    });
    let resolved = resolve_zone("local").unwrap_or_default();
    println!("0 2 * * *        local ({resolved}) {local:>8.2} µs (reads TZ and /etc each call)");
    let nf = per_call_us(200, || {
        black_box(next_fires("* * * * *", "Europe/Berlin", AFTER, 1000).ok());
    });
    println!("* * * * *        Europe/Berlin, n=1000 {nf:>8.2} µs");
}
