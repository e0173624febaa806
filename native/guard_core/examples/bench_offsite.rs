//! Off-site transfer timer for `make bench` (a benchmark helper: it asserts nothing).
//!
//! Usage:
//! `bench_offsite upload ENDPOINT BUCKET ACCESS_KEY SECRET_KEY FILE [KEY=VALUE...]`
//! `bench_offsite fetch ENDPOINT BUCKET ACCESS_KEY SECRET_KEY NAME DEST_DIR [KEY=VALUE...]`
//! with `prefix=`, `recipient=` (upload), `identity=` (fetch), `part_size=` (bytes) and
//! `concurrency=`. Calls the very functions the plugin's NIF jobs call (`offsite::upload`,
//! `offsite::fetch`), path-style, with the defaults otherwise, and prints
//! `seconds=… bytes=… parts=… mib_per_s=… peak_rss_kib=…` (`peak_rss_kib`: this process's
//! VmHWM, the most memory it held; `reused=true`: nothing was sent), and for a fetch the time of
//! each phase (`head_s= download_s= decrypt_s= check_s= link_s=`, [`offsite::FetchTimings`]).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use guard_core::offsite::{self, OffsiteConfig, Secret};
use guard_core::reading::ReadControl;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixed = match args.first().map(String::as_str) {
        Some("upload") => 6,
        Some("fetch") => 7,
        _ => 0,
    };
    if fixed == 0 || args.len() < fixed {
        eprintln!("usage: bench_offsite upload|fetch ENDPOINT BUCKET ACCESS_KEY SECRET_KEY FILE|NAME [DEST_DIR] [KEY=VALUE...]");
        return ExitCode::from(2);
    }
    let mut cfg = OffsiteConfig::new(&args[2], &args[3], Secret::new(args[4].clone()));
    cfg.endpoint = Some(args[1].clone());
    cfg.path_style = true;
    let mut identity = None;
    for option in &args[fixed..] {
        match option.split_once('=') {
            Some(("prefix", v)) => cfg.prefix = v.to_string(),
            Some(("recipient", v)) => cfg.recipient = Some(v.to_string()),
            Some(("identity", v)) => identity = Some(v.to_string()),
            Some(("part_size", v)) => cfg.part_size = v.parse().unwrap_or(cfg.part_size),
            Some(("concurrency", v)) => cfg.concurrency = v.parse().unwrap_or(cfg.concurrency),
            _ => {
                eprintln!("unknown option {option}");
                return ExitCode::from(2);
            }
        }
    }
    let mut control = ReadControl::unlimited();
    let start = Instant::now();
    let mut phases = String::new();
    let done = if args[0] == "upload" {
        let path = Path::new(&args[5]);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        offsite::upload(&cfg, path, name, &mut control)
            .map(|up| (up.source_size, up.parts, up.reused))
    } else {
        let dest = Path::new(&args[6]);
        offsite::fetch(
            &cfg,
            &args[5],
            identity.as_deref().map(Path::new),
            dest,
            &mut control,
        )
        .map(|got| {
            let t = got.timings;
            phases = format!(
                " head_s={:.3} download_s={:.3} decrypt_s={:.3} check_s={:.3} link_s={:.3}",
                t.head.as_secs_f64(),
                t.download.as_secs_f64(),
                t.decrypt.as_secs_f64(),
                t.check.as_secs_f64(),
                t.link.as_secs_f64()
            );
            (got.size, 0, false)
        })
    };
    let secs = start.elapsed().as_secs_f64();
    match done {
        Ok((bytes, parts, reused)) => {
            println!(
                "seconds={secs:.3} bytes={bytes} parts={parts} mib_per_s={:.1} peak_rss_kib={} reused={reused}{phases}",
                bytes as f64 / 1048576.0 / secs,
                peak_rss_kib()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} failed: {} ({})", args[0], e, e.reason());
            ExitCode::FAILURE
        }
    }
}
