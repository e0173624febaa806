//! `make bench`'s retention decision figures (a benchmark: it prints figures and asserts nothing
//! about time): `retention::plan` over BACKUPS backups under the full POLICY, against the same
//! plan under `last=5` alone and against keep-last's own rule, `retention::decide` with keep 5.
//!
//! Usage: `bench_retention_policy BACKUPS ZONE POLICY`.
//! The backups are one an hour going back from 2026-11-30T23:00Z, every other one known by its
//! recorded run start ([`Made::At`]) and the others by their export name's wall time in ZONE
//! ([`Made::Named`]: each is placed on the time line, DST changes included); one in 50 does not
//! verify, one in 500 is pinned. Each decision runs [`ROUNDS`] times and the fastest counts, which
//! keeps a busy machine's noise out of the figure. Prints one line:
//! `backups=<n> full_ms=<float> last_ms=<float> decide_ms=<float> kept_full=<n> unverified_full=<n>
//! kept_last=<n>` (`unverified_full`: of those kept by the full policy, the ones that do not verify
//! and lie within the rules' reach, five years here).

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use guard_core::retention::{
    decide, plan, Calendar, Candidate, Entry, Made, Plan, Policy, Verdict,
};

/// Each decision runs this many times; the fastest is reported.
const ROUNDS: u32 = 5;

/// 2026-11-30T23:00:00Z, the newest backup.
const NEWEST_MS: i64 = 1_796_079_600_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [count, zone, policy] => count
            .parse::<usize>()
            .ok()
            .zip(zone.parse::<chrono_tz::Tz>().ok())
            .zip(Policy::parse(policy).ok())
            .map(|((count, zone), policy)| (count, zone, policy)),
        _ => None,
    };
    let Some((count, zone, full)) = parsed else {
        eprintln!("usage: bench_retention_policy BACKUPS ZONE POLICY (an IANA zone, a policy such as \"last=5 daily=7\")");
        return ExitCode::from(2);
    };
    let calendar = Calendar::new(zone);
    let entries: Vec<Entry> = (0..count)
        .map(|i| {
            let at_ms = NEWEST_MS - i as i64 * 3_600_000;
            let made = if i % 2 == 0 {
                Made::At(at_ms)
            } else {
                match chrono::DateTime::from_timestamp_millis(at_ms) {
                    Some(t) => Made::Named(t.with_timezone(&zone).naive_local()),
                    None => Made::At(at_ms),
                }
            };
            Entry {
                made,
                verdict: if i % 50 == 7 {
                    Verdict::Bad
                } else {
                    Verdict::Good
                },
                pinned: i % 500 == 11,
                protected: i == 0,
            }
        })
        .collect();
    // keep-last's rule takes the backups newest first, as the entries are.
    let candidates: Vec<Candidate> = entries
        .iter()
        .map(|e| Candidate {
            verdict: e.verdict,
            protected: e.protected || e.pinned,
        })
        .collect();

    let best_ms = |run: &mut dyn FnMut()| {
        let mut best = f64::INFINITY;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            run();
            best = best.min(start.elapsed().as_secs_f64() * 1e3);
        }
        best
    };
    let last = Policy::keep_last(5);
    let kept = |p: &Plan| p.fates.iter().filter(|f| f.is_kept()).count();
    let (mut kept_full, mut kept_last, mut unverified_full) = (0, 0, 0);
    let full_ms = best_ms(&mut || {
        let decided = plan(black_box(&full), &calendar, black_box(&entries));
        kept_full = kept(&decided);
        unverified_full = decided.unverified_kept().len();
    });
    let last_ms = best_ms(&mut || {
        let decided = plan(black_box(&last), &calendar, black_box(&entries));
        kept_last = kept(&decided);
    });
    let decide_ms = best_ms(&mut || {
        black_box(decide(black_box(&candidates), 5));
    });
    println!(
        "backups={count} full_ms={full_ms:.2} last_ms={last_ms:.2} decide_ms={decide_ms:.3} kept_full={kept_full} unverified_full={unverified_full} kept_last={kept_last}"
    );
    ExitCode::SUCCESS
}
