//! The exports of a directory, each with its verification ([`list_verified`]): the caller's
//! record when one matches the export's identity, else a verification done now.

use std::path::Path;

use super::{list_backups, shown, Backup, RetentionError};
use crate::reading::ReadControl;
use crate::record::{self, Record, Trusted};

/// How [`list_verified`] knows whether a listed export verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// From the caller's record at this index of `trusted` (its identity matched).
    Trusted(usize),
    /// Verified by this call (good or bad).
    Now(Record),
    /// Checking failed without a verdict (`not_found`, `io`): the reason atom's name and a line.
    Failed { reason: String, detail: String },
}

/// One export of [`list_verified`] and how it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub backup: Backup,
    pub check: Check,
}

/// What [`list_verified`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Every export in the directory, newest first (as [`list_backups`]).
    pub backups: Vec<Listed>,
    /// Bytes read by this call's verifications.
    pub bytes_read: u64,
}

/// [`list_backups`], each export with its verification: the caller's record when one of
/// `trusted` matches the export's identity, else a verification done now through `control`.
/// When `control`'s job is cancelled the result is [`RetentionError::Cancelled`].
///
/// ```
/// use guard_core::reading::ReadControl;
/// use guard_core::record::Trusted;
/// use guard_core::retention::{list_verified, Check};
///
/// # let dir = tempfile::tempdir()?;
/// # let d = dir.path();
/// # let fixture = concat!(env!("CARGO_MANIFEST_DIR"),
/// #     "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// std::fs::copy(fixture, d.join("emqx-export-2026-11-27-18-58-45.951.tar.gz"))?;
/// let listing = list_verified(d, &[], &mut ReadControl::unlimited())?;
/// let Check::Now(record) = &listing.backups[0].check else { panic!("read now") };
/// assert!(record.is_good());
/// let trusted = [Trusted::from(record)];
/// let again = list_verified(d, &trusted, &mut ReadControl::unlimited())?;
/// assert_eq!((&again.backups[0].check, again.bytes_read), (&Check::Trusted(0), 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn list_verified(
    dir: &Path,
    trusted: &[Trusted],
    control: &mut ReadControl,
) -> Result<Listing, RetentionError> {
    let start = control.bytes_read();
    let mut backups = Vec::new();
    for backup in list_backups(dir)? {
        let check = match record::find(trusted, &backup.id()) {
            Some((index, _)) => Check::Trusted(index),
            None => {
                let (result, record) = record::verify_recorded(&backup.path, control);
                if control.is_cancelled() {
                    return Err(RetentionError::Cancelled {
                        dir: dir.to_path_buf(),
                    });
                }
                match (record, result) {
                    (Some(record), _) => Check::Now(record),
                    (None, Err(e)) => Check::Failed {
                        reason: e.reason().to_string(),
                        detail: e.to_string(),
                    },
                    // Verified, but the file changed meanwhile: no verdict about what is there now.
                    (None, Ok(_)) => Check::Failed {
                        reason: "changed".to_string(),
                        detail: format!(
                            "{}: the file changed while it was verified; list again",
                            shown(&backup.path)
                        ),
                    },
                }
            }
        };
        backups.push(Listed { backup, check });
    }
    Ok(Listing {
        backups,
        bytes_read: control.bytes_read() - start,
    })
}
