//! Verification records: a verification's verdict tied to the identity of the file it read, so
//! that a file is verified once and trusted afterwards for as long as it is provably the same
//! file.
//!
//! A file's identity ([`FileId`]) is its name, size, modification time in nanoseconds, inode and
//! device. A record is trusted only while all five still match the file on disk:
//! - a file appended to or truncated changes size (and mtime);
//! - a file rewritten in place with the same size changes mtime;
//! - a file replaced by another one (written elsewhere, renamed over it) changes inode;
//! - a file restored with its old mtime (`touch -d`, `cp -p`) still gets a new inode.
//!
//! What identity cannot see: the content rewritten in place, same size, with the mtime set back
//! to the old nanosecond afterwards (deliberate, or a disk corrupting data silently). That is
//! what a full re-check on demand (`guard backup_verify`) is for. The change time (ctime) is
//! left out on purpose: `chmod`, `chown` and a rename change it without changing a byte.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::reading::ReadControl;
use crate::verify::{verify_controlled, Verified, VerifyError};

/// What identifies a file's content for a verification record (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId {
    /// The file name (no directory).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub inode: u64,
    /// Device number of the file system holding it.
    pub dev: u64,
}

impl FileId {
    /// The identity of the file `name` described by `meta`.
    pub fn from_metadata(name: &str, meta: &fs::Metadata) -> FileId {
        let mtime_ns = meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec());
        FileId {
            name: name.to_string(),
            size: meta.len(),
            mtime_ns,
            inode: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The identity of the file at `path` now (following a symlink, as [`crate::verify::verify`]
    /// does); the name is the last component of `path`.
    ///
    /// ```
    /// use guard_core::record::FileId;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("a");
    /// std::fs::write(&path, b"one")?;
    /// let before = FileId::of_path(&path)?;
    /// assert_eq!((before.name.as_str(), before.size), ("a", 3));
    /// // Replaced by another file (even of the same size): another identity.
    /// std::fs::write(dir.path().join("b"), b"two")?;
    /// std::fs::rename(dir.path().join("b"), &path)?;
    /// assert_ne!(FileId::of_path(&path)?, before);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn of_path(path: &Path) -> io::Result<FileId> {
        let meta = fs::metadata(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(FileId::from_metadata(&name, &meta))
    }
}

/// A verdict about a file's content: why it is not a usable export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The stable reason ([`VerifyError::reason`]), e.g. `corrupt`.
    pub reason: String,
    /// One line for a person.
    pub detail: String,
}

/// The result of one verification of one file, as it was when verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The file's identity, taken before the verification and unchanged after it.
    pub id: FileId,
    /// When the verification finished, Unix milliseconds.
    pub verified_at_ms: i64,
    /// What the verification found.
    pub outcome: Result<Verified, Failure>,
}

impl Record {
    /// True when the file verified.
    pub fn is_good(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// What a caller knows from an earlier [`Record`]: the identity, and whether the file verified
/// (`failure` is `None`) or not (`Some(detail)`, the one-line reason). Retention trusts it while
/// the identity matches the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    pub id: FileId,
    pub failure: Option<String>,
}

impl From<&Record> for Trusted {
    fn from(record: &Record) -> Self {
        Trusted {
            id: record.id.clone(),
            failure: record.outcome.as_ref().err().map(|f| f.detail.clone()),
        }
    }
}

/// The record among `trusted` whose identity is exactly `id`.
///
/// ```
/// use guard_core::record::{find, FileId, Trusted};
///
/// let id = |size| FileId { name: "n".into(), size, mtime_ns: 1, inode: 2, dev: 3 };
/// let trusted = [Trusted { id: id(10), failure: None }];
/// assert_eq!(find(&trusted, &id(10)).map(|(i, _)| i), Some(0));
/// assert!(find(&trusted, &id(11)).is_none());
/// ```
pub fn find<'t>(trusted: &'t [Trusted], id: &FileId) -> Option<(usize, &'t Trusted)> {
    trusted.iter().enumerate().find(|(_, t)| t.id == *id)
}

/// Now, in Unix milliseconds.
///
/// ```
/// assert!(guard_core::record::now_ms() > 1_767_225_600_000); // after 2026-01-01
/// ```
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Verifies the file at `path` through `control` and records the verdict with the file's
/// identity.
///
/// The record is `None` when there is no verdict to keep: the check itself failed
/// ([`VerifyError::is_verdict`] is false: `not_found`, `io`, `cancelled`), or the file's
/// identity was different after the verification than before it (the file changed while it was
/// read, so the verdict is about no file that exists). The verification result is returned in
/// every case.
///
/// ```
/// use guard_core::reading::ReadControl;
/// use guard_core::record::{verify_recorded, FileId};
///
/// # let fixture = concat!(env!("CARGO_MANIFEST_DIR"),
/// #     "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// let (result, record) = verify_recorded(fixture.as_ref(), &mut ReadControl::unlimited());
/// let record = record.expect("a verdict");
/// assert!(result.is_ok() && record.is_good());
/// assert_eq!(record.id, FileId::of_path(fixture.as_ref())?);
/// // No file, no verdict: nothing to record.
/// let (result, record) = verify_recorded("/nonexistent.tar.gz".as_ref(), &mut ReadControl::unlimited());
/// assert_eq!((result.unwrap_err().reason(), record), ("not_found", None));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn verify_recorded(
    path: &Path,
    control: &mut ReadControl,
) -> (Result<Verified, VerifyError>, Option<Record>) {
    let before = FileId::of_path(path);
    let result = verify_controlled(path, control);
    let record = match (&before, &result) {
        (_, Err(e)) if !e.is_verdict() => None,
        (Ok(before), _) if FileId::of_path(path).ok().as_ref() == Some(before) => Some(Record {
            id: before.clone(),
            verified_at_ms: now_ms(),
            outcome: match &result {
                Ok(v) => Ok(v.clone()),
                Err(e) => Err(Failure {
                    reason: e.reason().to_string(),
                    detail: e.to_string(),
                }),
            },
        }),
        _ => None,
    };
    (result, record)
}
