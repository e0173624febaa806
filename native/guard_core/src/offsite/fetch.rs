//! One backup down from the bucket ([`fetch`]): found with HEAD, downloaded in ranges several at
//! a time pinned to its ETag ([`super::download`]), checked against the stored bytes' metadata,
//! decrypted (age authenticates it), compared with the export's metadata, verified, and linked
//! into place under its export name, never over a file.
//!
//! No byte is read twice, and no work waits for the last byte: the ranges are fed in order, as
//! they complete, to the work that checks them. A plain export is written and verified while it
//! downloads (the one SHA-256 of the download serves both checks); an encrypted one is decrypted
//! while it downloads ([`super::decrypt`]: its ciphertext is never written, the decrypted bytes
//! go to the export's temporary file in the private work directory and to its verification, on
//! a thread of its own).
//!
//! Integrity before decryption: decryption runs alongside the download; nothing it produced
//! counts before the stored SHA-256 matched. Whatever age or the verification found meanwhile is
//! looked at only once the whole download's size and SHA-256 matched the metadata the upload
//! recorded; if they do not, the refusal is that of [`Check::StoredSha256`] (`integrity`), age's
//! verdict is dropped and the work directory, with all that was decrypted, is removed. Only then
//! age's verdict, then the export's checks, count, in that order.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3;

use super::client::{head_object, runtime, store, ObjectInfo};
use super::decrypt::{decrypt_and_verify, load_identities, Identities};
use super::download::{download, InOrderCheck};
use super::{
    fetchable_name, object_name, OffsiteConfig, OffsiteError, AGE_SUFFIX, META_SHA256, META_SIZE,
    META_STORED_SHA256, META_STORED_SIZE,
};
use crate::reading::{CancelFlag, ReadControl};
use crate::verify::{verify_stream, Verified, VerifyError};

/// One check [`fetch`] makes of what it downloaded. `Display` is the stable short name
/// (the Erlang atom of [`Fetched::checked_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The SHA-256 and size of the downloaded bytes against [`META_STORED_SHA256`] and
    /// [`META_STORED_SIZE`], before anything is decrypted. Only for objects that carry them.
    StoredSha256,
    /// age's authentication of every 64 KiB chunk and of the header (encrypted objects).
    Age,
    /// The export's SHA-256 and size against [`META_SHA256`] and [`META_SIZE`]. Only for
    /// objects that carry them.
    ExportSha256,
    /// The export verifies ([`crate::verify`]) like any local backup.
    Verify,
}

impl Check {
    /// The stable short name.
    ///
    /// ```
    /// use guard_core::offsite::Check;
    ///
    /// assert_eq!(Check::StoredSha256.as_str(), "stored_sha256");
    /// assert_eq!(Check::Age.to_string(), "age");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Check::StoredSha256 => "stored_sha256",
            Check::Age => "age",
            Check::ExportSha256 => "export_sha256",
            Check::Verify => "verify",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`fetch`] put into the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The export name (the file's name in the destination).
    pub name: String,
    /// The file's path.
    pub path: PathBuf,
    /// The export's size.
    pub size: u64,
    /// The object's size.
    pub object_size: u64,
    /// The object was encrypted.
    pub encrypted: bool,
    /// What [`verify`] found.
    pub verified: Verified,
    /// The checks the backup passed, in the order they were made: [`Check::StoredSha256`] and
    /// [`Check::ExportSha256`] only when the object carries their metadata (an object uploaded
    /// by another tool, or kept by a server that drops metadata, does not), [`Check::Age`] when
    /// it was encrypted, [`Check::Verify`] always.
    pub checked_by: Vec<Check>,
    /// How long each phase took (what a benchmark prints; no check depends on it).
    pub timings: FetchTimings,
}

/// The wall time of each phase of a [`fetch`], one after the other: they add up to the whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchTimings {
    /// HEAD (the object found, its size, ETag and metadata).
    pub head: Duration,
    /// The download, up to its last byte in, hashed (and, for a plain export, written and
    /// synced); a plain export is verified, an encrypted one decrypted and verified, alongside.
    pub download: Duration,
    /// What decryption and verification, running alongside the download, still took after its
    /// last byte (the ranges still waiting for them, the decrypted export synced).
    pub decrypt: Duration,
    /// What checking the export took after that ([`Check::ExportSha256`], [`Check::Verify`]).
    pub check: Duration,
    /// The export linked into place.
    pub link: Duration,
}

/// The private work directory of a fetch in the destination (`.emqx_guard_fetch-…`, invisible
/// to retention), removed with everything in it when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(dest_dir: &FsPath) -> Result<WorkDir, OffsiteError> {
        let path = dest_dir.join(format!(
            ".emqx_guard_fetch-{}-{}",
            std::process::id(),
            crate::record::now_ms()
        ));
        fs::create_dir(&path).map_err(|e| OffsiteError::io(&path, &e))?;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o700));
        Ok(WorkDir(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Downloads the off-site backup `name` (an export name, with or without `.age`: without it the
/// plain object is taken when it exists, else the encrypted one), checks it and puts it into
/// `dest_dir` under its export name (mode 0600). The checks, each refusing the backup with the
/// error that names it ([`Check`]):
///
/// 1. `stored_sha256`: the object's size (before downloading) and the SHA-256 of the downloaded
///    bytes (before anything decrypted counts) against the metadata the upload recorded; any
///    changed, cut or added byte is `integrity`, wherever it is (age header, body, last chunk),
///    whatever decryption found meanwhile.
/// 2. `age`: decryption with the identities in `identity_file` authenticates the header and
///    every 64 KiB chunk: an altered object is `integrity`; no matching identity is `decrypt`.
/// 3. `export_sha256`: the export's size and SHA-256 against the recorded ones (`integrity`).
/// 4. `verify`: the export verifies ([`crate::verify`]) like any local backup (`verify`).
///
/// A backup's plugins companion (`….plugins.tgz[.age]`, [`super::COMPANION_SUFFIX`]) is fetched
/// the same way, minus 4 (it is no export): [`Fetched::verified`] then holds only its SHA-256.
///
/// An object without the metadata of 1 and 3 (uploaded by hand, or by a server that drops
/// metadata) is still protected by 2 and 4; [`Fetched::checked_by`] says which checks were made.
/// Work happens in a private directory `dest_dir/.emqx_guard_fetch-…` that is removed whatever
/// happens: on any error nothing is left in `dest_dir`. An existing file of that name is never
/// replaced (`exists`). The download goes in `part_size` ranges, `concurrency` at once, pinned to
/// the object's ETag, or as one stream where the server ignores ranges, within one overall
/// deadline ([`OffsiteConfig::fetch_deadline`]); its bytes are hashed in order as the ranges
/// complete, so check 1 needs no second read ([`super::download`]). Checks 2 to 4 read no file
/// either: a plain export is verified while it downloads, an encrypted one decrypted and
/// verified while it downloads (its ciphertext fed to age in order as the ranges complete). Their
/// verdicts count in the order above, and only after check 1 passed: decryption runs alongside
/// the download; nothing it produced counts before the stored SHA-256 matched. Memory: the
/// ranges in flight or waiting, `concurrency x part_size`, plus 2.5 MiB when decrypting.
/// [`Fetched::timings`] says how long each phase took.
///
/// ```
/// use guard_core::offsite::{fetch, OffsiteConfig, Secret};
/// use guard_core::reading::ReadControl;
///
/// # let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
/// # cfg.endpoint = Some("http://127.0.0.1:1".into()); // nothing listens here
/// # cfg.path_style = true;
/// # cfg.max_retries = 0;
/// # let dest = tempfile::tempdir()?;
/// let name = "emqx-export-2026-11-27-18-58-45.951.tar.gz"; // `.age` found by itself
/// match fetch(&cfg, name, None, dest.path(), &mut ReadControl::unlimited()) {
///     Ok(fetched) => println!("{} passed {:?}", fetched.path.display(), fetched.checked_by),
///     Err(e) => assert_eq!(e.reason(), "connect"),
/// }
/// assert_eq!(std::fs::read_dir(dest.path())?.count(), 0); // a failure leaves nothing
/// let bad = fetch(&cfg, "../x", None, dest.path(), &mut ReadControl::unlimited());
/// assert_eq!(bad.unwrap_err().reason(), "bad_name");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn fetch(
    cfg: &OffsiteConfig,
    name: &str,
    identity_file: Option<&FsPath>,
    dest_dir: &FsPath,
    control: &mut ReadControl,
) -> Result<Fetched, OffsiteError> {
    cfg.validate()?;
    if fetchable_name(name).is_none() {
        return Err(OffsiteError::BadName(name.to_string()));
    }
    check_dest_dir(dest_dir)?;
    let identities = identity_file.map(load_identities).transpose()?;
    let store = store(cfg)?;
    let cancel = control.cancel_flag();
    let rt = runtime()?;
    let mut clock = Clock::start();
    let (object_name, found) = rt.block_on(find_object(cfg, &store, name, &cancel))?;
    let (export_name, encrypted, companion) = fetchable_name(&object_name)
        .map(|(e, enc, c)| (e.to_string(), enc, c))
        .ok_or_else(|| OffsiteError::BadName(object_name.clone()))?;
    if encrypted && identities.is_none() {
        return Err(no_identity(&object_name));
    }
    let final_path = dest_dir.join(&export_name);
    if fs::symlink_metadata(&final_path).is_ok() {
        return Err(OffsiteError::Exists(final_path));
    }
    let work = WorkDir::create(dest_dir)?;
    let head = clock.lap();
    let key = cfg.key(&object_name);
    let mut checked_by = Vec::new();

    let export_path = work.0.join(&export_name);
    let source = Source {
        cfg,
        object_name: &object_name,
        key: &key,
        found: &found,
        encrypted,
        companion,
    };
    let (size, verified, download_time) = export_of(
        &source,
        rt,
        identities,
        (&work.0, &export_path),
        control,
        &mut checked_by,
    )?;
    // What decryption and verification, running alongside the download, still took after it.
    let decrypt_time = clock.lap().saturating_sub(download_time);
    // 3 and 4. The export against its recorded checksum, and verified (a companion: checksum).
    let (size, verified) = match verified {
        Some(verified) => (
            size,
            check_export(&key, &found, size, verified, &mut checked_by)?,
        ),
        None => check_companion(&key, &found, &export_path, control, &mut checked_by)?,
    };
    if control.is_cancelled() {
        return Err(OffsiteError::Cancelled);
    }
    let check_time = clock.lap();
    // Into place, never over an existing file.
    fs::hard_link(&export_path, &final_path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => OffsiteError::Exists(final_path.clone()),
        _ => OffsiteError::io(&final_path, &e),
    })?;
    drop(work);
    Ok(Fetched {
        name: export_name,
        path: final_path,
        size,
        object_size: found.size,
        encrypted,
        verified,
        checked_by,
        timings: FetchTimings {
            head,
            download: download_time,
            decrypt: decrypt_time,
            check: check_time,
            link: clock.lap(),
        },
    })
}

/// What verifying an export found.
pub(super) type Verdict = Result<Verified, VerifyError>;

/// The object a fetch downloads, as HEAD found it.
struct Source<'a> {
    cfg: &'a OffsiteConfig,
    object_name: &'a str,
    key: &'a str,
    found: &'a ObjectInfo,
    encrypted: bool,
    /// A plugins companion: no export, so nothing to verify on the way.
    companion: bool,
}

/// What the check made alongside the download found: the export's size and the verdict of its
/// verification (`None` for a companion, which is no export); for an encrypted object, age's
/// verdict first.
type Streamed = Result<(u64, Option<Verdict>), OffsiteError>;

/// The file of the work directory a plain object downloads into, and the one an encrypted
/// object's export is decrypted into while it downloads; each is renamed to the export's name
/// once the download's checks passed. The CLI's progress line reads their size
/// (`emqx_guard_offsite_cli:fetching/1`).
const DOWNLOADING: &str = "object.download";
const DECRYPTING: &str = "object.decrypting";

/// Checks 1 and 2 of [`fetch`]: the object downloaded (its stored bytes checked), its export at
/// `export` in the work directory `work` (the download itself, or decrypted on the way; mode
/// 0600); the export's size, the verdict of its verification (made on the way; `None` for a
/// companion) and how long the download took (to its last byte; what ran alongside it may finish
/// later).
fn export_of(
    src: &Source<'_>,
    rt: tokio::runtime::Runtime,
    identities: Option<Identities>,
    (work, export): (&FsPath, &FsPath),
    control: &mut ReadControl,
    checked_by: &mut Vec<Check>,
) -> Result<(u64, Option<Verdict>, Duration), OffsiteError> {
    let started = Instant::now();
    let cancel = control.cancel_flag();
    // 1. The object's size, checked against what the upload stored before anything is asked.
    check_stored(src.key, src.found, None)?;
    // The work alongside the download, fed its bytes in order as the ranges complete (nothing
    // is read twice): a plain export is verified and written as it comes; an encrypted object's
    // ciphertext is not written at all, but decrypted on the way into the export, which is
    // verified as it is written. What that work finds is only looked at below, once the download's SHA-256 is
    // proven (integrity before decryption: nothing decrypted counts before that).
    let (size, companion) = (src.found.size, src.companion);
    let part = work.join(if src.encrypted {
        DECRYPTING
    } else {
        DOWNLOADING
    });
    let file = part.as_path();
    let streamed: Option<InOrderCheck<'_, Streamed>> = match (src.encrypted, &identities) {
        (true, Some(ids)) => {
            let (key, control) = (src.key, &mut *control);
            Some(Box::new(move |raw: &mut dyn Read| {
                decrypt_and_verify(raw, (file, export), ids, key, control, !companion)
            }))
        }
        (true, None) => return Err(no_identity(src.object_name)),
        (false, _) if companion => None,
        (false, _) => {
            let control = &mut *control;
            Some(Box::new(move |raw: &mut dyn Read| {
                Ok((size, Some(verify_stream(export, raw, false, control))))
            }))
        }
    };
    let kept = (!src.encrypted).then_some(file);
    let downloaded = download(
        src.cfg,
        &rt,
        src.object_name,
        src.found,
        kept,
        streamed,
        &cancel,
    )?;
    drop(rt);
    let download_time = downloaded.last_byte.saturating_duration_since(started);
    // 1. The bytes are the stored ones, or whatever ran alongside is dropped (with the work dir).
    if check_stored(src.key, src.found, Some(&downloaded.sha256))? {
        checked_by.push(Check::StoredSha256);
    }
    // 2. The export: age's verdict first (an encrypted object), then what verification found.
    let (size, verified) = match downloaded.checked {
        Some(streamed) => streamed?,
        // a plain companion: the download itself (its checksum is checked by the caller)
        None => (size, None),
    };
    if src.encrypted {
        checked_by.push(Check::Age);
    }
    // A plain export's bytes verified are the stored ones: one SHA-256 for both.
    let verified = match verified {
        Some(Ok(v)) if !src.encrypted => Some(Ok(Verified {
            sha256: downloaded.sha256,
            ..v
        })),
        other => other,
    };
    fs::rename(file, export).map_err(|e| OffsiteError::io(export, &e))?;
    fs::set_permissions(export, fs::Permissions::from_mode(0o600))
        .map_err(|e| OffsiteError::io(export, &e))?;
    Ok((size, verified, download_time))
}

/// Laps of wall time.
struct Clock(Instant);

impl Clock {
    fn start() -> Clock {
        Clock(Instant::now())
    }

    /// The time since the last lap (or the start).
    fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let since = now.duration_since(self.0);
        self.0 = now;
        since
    }
}

fn no_identity(object_name: &str) -> OffsiteError {
    OffsiteError::Decrypt(format!(
        "{object_name} is encrypted: give the age identity file of its recipient (identity=<path>)"
    ))
}

fn check_dest_dir(dest_dir: &FsPath) -> Result<(), OffsiteError> {
    match fs::metadata(dest_dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(OffsiteError::Io {
            path: dest_dir.to_path_buf(),
            detail: "not a directory".into(),
        }),
        Err(e) => Err(OffsiteError::io(dest_dir, &e)),
    }
}

/// [`Check::StoredSha256`]: the object's size against the recorded one (before downloading),
/// and with `downloaded`, the SHA-256 of the downloaded bytes against the recorded one (before
/// decrypting). True when the object records a SHA-256 and it matched.
fn check_stored(
    key: &str,
    found: &ObjectInfo,
    downloaded: Option<&str>,
) -> Result<bool, OffsiteError> {
    let refused = |detail: String| OffsiteError::Refused {
        check: Check::StoredSha256,
        detail,
    };
    if let Some(want) = found.meta(META_STORED_SIZE) {
        if want != found.size.to_string() {
            return Err(refused(format!(
                "{key} has {} bytes, the upload recorded {want}: the object was cut, extended or replaced",
                found.size
            )));
        }
    }
    match (found.meta(META_STORED_SHA256), downloaded) {
        (Some(want), Some(got)) if want != got => Err(refused(format!(
            "the SHA-256 of {key} is {got}, the upload recorded {want}: the object was altered"
        ))),
        (Some(_), Some(_)) => Ok(true),
        _ => Ok(false),
    }
}

/// [`Check::ExportSha256`] (when the object records the export's checksum) and
/// [`Check::Verify`] of the export of `size` bytes that `verified` is the verdict on.
fn check_export(
    key: &str,
    found: &ObjectInfo,
    size: u64,
    verified: Result<Verified, VerifyError>,
    checked_by: &mut Vec<Check>,
) -> Result<Verified, OffsiteError> {
    let refused = |detail: String| OffsiteError::Refused {
        check: Check::ExportSha256,
        detail,
    };
    if let Some(want) = found.meta(META_SIZE).filter(|w| *w != size.to_string()) {
        return Err(refused(format!(
            "the export in {key} has {size} bytes, the upload recorded {want}: the object was altered"
        )));
    }
    let verified = verified.map_err(|e| {
        if e.reason() == "cancelled" {
            OffsiteError::Cancelled
        } else {
            OffsiteError::Verify {
                reason: e.reason(),
                detail: e.to_string(),
            }
        }
    })?;
    if let Some(want) = found.meta(META_SHA256) {
        if want != verified.sha256 {
            return Err(refused(format!(
                "the SHA-256 of the export in {key} is {}, the upload recorded {want}: the object was altered",
                verified.sha256
            )));
        }
        checked_by.push(Check::ExportSha256);
    }
    checked_by.push(Check::Verify);
    Ok(verified)
}

/// [`Check::ExportSha256`] of a plugins companion at `path` (no export: nothing to verify): its
/// size and SHA-256 against the recorded ones. The [`Verified`] holds only its SHA-256.
fn check_companion(
    key: &str,
    found: &ObjectInfo,
    path: &FsPath,
    control: &mut ReadControl,
    checked_by: &mut Vec<Check>,
) -> Result<(u64, Verified), OffsiteError> {
    let hashed = crate::reading::hash_file(path, control).map_err(|e| match e.reason() {
        "cancelled" => OffsiteError::Cancelled,
        _ => OffsiteError::io(path, &io::Error::other(e.to_string())),
    })?;
    let same = found
        .meta(META_SIZE)
        .is_none_or(|w| w == hashed.size.to_string())
        && found.meta(META_SHA256).is_none_or(|w| w == hashed.sha256);
    if !same {
        return Err(OffsiteError::Refused {
            check: Check::ExportSha256,
            detail: format!(
                "the plugins companion in {key} has {} bytes with SHA-256 {}, not what the upload recorded: the object was altered",
                hashed.size, hashed.sha256
            ),
        });
    }
    if found.meta(META_SHA256).is_some() {
        checked_by.push(Check::ExportSha256);
    }
    let verified = Verified {
        entries: 0,
        bytes: 0,
        version: String::new(),
        edition: String::new(),
        sha256: hashed.sha256,
    };
    Ok((hashed.size, verified))
}

/// The object `name` refers to, with its HEAD answer (size, ETag, metadata).
async fn find_object(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    name: &str,
    cancel: &CancelFlag,
) -> Result<(String, ObjectInfo), OffsiteError> {
    if let Some(found) = head_object(cfg, store, name, cancel).await? {
        return Ok((name.to_string(), found));
    }
    let encrypted = object_name(name, true);
    if name.ends_with(AGE_SUFFIX) {
        return Err(OffsiteError::NotFound {
            where_: cfg.where_(),
            detail: format!("{} does not exist", cfg.key(name)),
        });
    }
    match head_object(cfg, store, &encrypted, cancel).await? {
        Some(found) => Ok((encrypted, found)),
        None => Err(OffsiteError::NotFound {
            where_: cfg.where_(),
            detail: format!(
                "neither {} nor {} exists",
                cfg.key(name),
                cfg.key(&encrypted)
            ),
        }),
    }
}
