//! Upload timer for `make bench`'s off-site figures (a benchmark helper: it asserts nothing).
//!
//! Usage: `bench_offsite_upload ENDPOINT BUCKET ACCESS_KEY SECRET_KEY FILE [RECIPIENT]`. Uploads
//! FILE (its name must be an export name) path-style to ENDPOINT with the default part size,
//! encrypted to RECIPIENT when given, and prints `seconds=… bytes=… parts=… mib_per_s=… reused=…`
//! (`reused=true`: the object already held FILE and nothing was sent).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use guard_core::offsite::{self, OffsiteConfig, Secret};
use guard_core::reading::ReadControl;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!(
            "usage: bench_offsite_upload ENDPOINT BUCKET ACCESS_KEY SECRET_KEY FILE [RECIPIENT]"
        );
        return ExitCode::from(2);
    }
    let mut cfg = OffsiteConfig::new(&args[1], &args[2], Secret::new(args[3].clone()));
    cfg.endpoint = Some(args[0].clone());
    cfg.path_style = true;
    cfg.recipient = args.get(5).cloned();
    let path = Path::new(&args[4]);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        eprintln!("bad file name");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    match offsite::upload(&cfg, path, name, &mut ReadControl::unlimited()) {
        Ok(up) => {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "seconds={secs:.3} bytes={} parts={} mib_per_s={:.1} reused={}",
                up.size,
                up.parts,
                up.source_size as f64 / 1048576.0 / secs,
                up.reused
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("upload failed: {} ({})", e, e.reason());
            ExitCode::FAILURE
        }
    }
}
