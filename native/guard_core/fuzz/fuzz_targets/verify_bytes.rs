//! `verify` on arbitrary file contents (named like a real export): never panic, and only accept
//! what is at least a gzip file.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use guard_core::verify::verify;
use libfuzzer_sys::fuzz_target;

/// Same name as the EMQX 5.3.2 fixture, so that file is a valid seed.
const NAME: &str = "emqx-export-2026-11-27-18-58-45.951.tar.gz";

/// One scratch directory per fuzzing process, under `$GUARD_FUZZ_SCRATCH` (scripts/fuzz.sh sets it
/// and removes it afterwards), else in memory (/dev/shm) when the system has it: a file is written
/// for every input, which on disk would be the bottleneck.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = match std::env::var_os("GUARD_FUZZ_SCRATCH") {
            Some(dir) => PathBuf::from(dir),
            None if shm.is_dir() => shm,
            None => std::env::temp_dir(),
        };
        let dir = base.join(format!("guard_fuzz_verify_{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch().join(NAME);
    std::fs::write(&path, data).expect("write the input file");
    match verify(&path) {
        Ok(v) => {
            assert!(data.starts_with(&[0x1f, 0x8b]));
            assert_eq!(v.sha256.len(), 64);
            assert!(v.entries >= 2, "{v:?}");
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(!e.reason().is_empty());
        }
    }
});
