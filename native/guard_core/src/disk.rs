//! The space on the file system that holds a path, as `statvfs(3)` reports it.
//!
//! Used to say, when an export fails for lack of space, how much was free where the backups are
//! written. OTP has no call for it that works without starting `os_mon` (whose `disksup` polls
//! `df` every 30 minutes and which EMQX turns off with `-os_mon start_disksup false`), so the core
//! asks the kernel directly.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Space on one file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// What a process without root's reserve may still write (`f_bavail * f_frsize`): what EMQX,
    /// which does not run as root, can use.
    pub available: u64,
    /// The size of the file system (`f_blocks * f_frsize`).
    pub total: u64,
}

/// Why the space could not be read. [`DiskError::reason`] is a stable short name; `Display` is
/// one line for a person.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The path does not exist (or a directory on the way does not).
    #[error("{}: does not exist, so its free space cannot be read", shown(.path))]
    NotFound { path: PathBuf },
    /// Any other failure of `statvfs` (permission, a NUL byte in the path, ...).
    #[error("{}: cannot read the free space of its file system: {source}", shown(.path))]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DiskError {
    /// Stable short name of the failure, used as the Erlang error atom.
    pub fn reason(&self) -> &'static str {
        match self {
            DiskError::NotFound { .. } => "not_found",
            DiskError::Io { .. } => "io",
        }
    }
}

fn shown(path: &Path) -> String {
    path.to_string_lossy().escape_default().to_string()
}

/// The space on the file system holding `path` (a file or a directory; symlinks are followed).
///
/// One `statvfs` call: it does not read the disk, but on a hung network file system it blocks
/// like any file access, so callers on a BEAM scheduler use a dirty IO one.
///
/// ```
/// use guard_core::disk::space;
///
/// let tmp = space(&std::env::temp_dir())?;
/// assert!(tmp.total > 0 && tmp.available <= tmp.total);
/// assert_eq!(space("/nonexistent/dir".as_ref()).unwrap_err().reason(), "not_found");
/// # Ok::<(), guard_core::disk::DiskError>(())
/// ```
// The `statvfs` fields are u64 on the 64-bit targets built here and u32 on 32-bit ones: the
// conversions are kept so that the code means the same everywhere.
#[allow(clippy::useless_conversion)]
pub fn space(path: &Path) -> Result<Space, DiskError> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| DiskError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path holds a NUL byte"),
    })?;
    let mut stat = MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `stat` points to
    // writable memory of the type `statvfs` fills.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        let source = io::Error::last_os_error();
        return Err(if source.kind() == io::ErrorKind::NotFound {
            DiskError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DiskError::Io {
                path: path.to_path_buf(),
                source,
            }
        });
    }
    // SAFETY: `statvfs` returned 0, so it filled the whole struct (it was zeroed before anyway).
    let stat = unsafe { stat.assume_init() };
    // The fragment size is the unit of the block counts; a file system that leaves it 0 counts in
    // `f_bsize`.
    let unit = match u64::from(stat.f_frsize) {
        0 => u64::from(stat.f_bsize),
        n => n,
    };
    Ok(Space {
        available: u64::from(stat.f_bavail).saturating_mul(unit),
        total: u64::from(stat.f_blocks).saturating_mul(unit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_has_some_space() {
        let dir = tempfile::tempdir().expect("temp dir");
        let space = space(dir.path()).expect("statvfs of a temp dir");
        assert!(space.total > 0);
        assert!(space.available <= space.total);
    }

    #[test]
    fn a_file_counts_as_its_file_system() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        let of_file = space(&file).expect("statvfs of a file");
        let of_dir = space(dir.path()).expect("statvfs of its dir");
        assert_eq!(of_file.total, of_dir.total);
    }

    #[test]
    fn a_missing_path_is_not_found() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = space(&dir.path().join("missing/deeper")).expect_err("missing");
        assert_eq!(err.reason(), "not_found");
        assert!(err.to_string().contains("missing/deeper"), "{err}");
    }

    #[test]
    fn a_nul_byte_is_an_io_error_not_a_panic() {
        let err = space(Path::new("/tmp/a\0b")).expect_err("NUL");
        assert_eq!(err.reason(), "io");
        assert!(err.to_string().contains("NUL"), "{err}");
    }
}
