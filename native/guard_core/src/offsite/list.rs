//! The backups under the prefix ([`list`]) and remote retention ([`prune`]). Only keys directly
//! under the prefix whose name is an export name, with or without `.age`, exist here.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use super::client::{cancellable, object_path, runtime, store};
use super::error::remote_error;
use super::{remote_export_name, OffsiteConfig, OffsiteError};
use crate::reading::CancelFlag;

/// One off-site backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBackup {
    /// Object name under the prefix (`emqx-export-….tar.gz` or `….tar.gz.age`).
    pub name: String,
    /// The export name (without `.age`).
    pub export_name: String,
    /// Full object key.
    pub key: String,
    /// Object size in bytes.
    pub size: u64,
    /// Last modified, Unix milliseconds.
    pub last_modified_ms: i64,
    /// Encrypted with age (`.age`).
    pub encrypted: bool,
}

/// The off-site backups directly under the prefix, newest first (by the time in the export
/// name; an export stored both plain and encrypted lists both, encrypted first). Other keys are
/// not listed.
///
/// ```
/// use guard_core::offsite::{list, OffsiteConfig, Secret};
/// use guard_core::reading::CancelFlag;
///
/// # let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
/// # cfg.endpoint = Some("http://127.0.0.1:1".into()); // nothing listens here
/// # cfg.path_style = true;
/// # cfg.max_retries = 0;
/// match list(&cfg, &CancelFlag::default()) {
///     Ok(backups) => backups.iter().for_each(|b| println!("{} {} bytes", b.name, b.size)),
///     Err(e) => assert_eq!(e.reason(), "connect"),
/// }
/// ```
pub fn list(cfg: &OffsiteConfig, cancel: &CancelFlag) -> Result<Vec<RemoteBackup>, OffsiteError> {
    let store = store(cfg)?;
    runtime()?.block_on(list_inner(cfg, &store, cancel))
}

async fn list_inner(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    cancel: &CancelFlag,
) -> Result<Vec<RemoteBackup>, OffsiteError> {
    let prefix = if cfg.prefix.is_empty() {
        None
    } else {
        Some(object_path(cfg, "")?)
    };
    // `object_path(cfg, "")` of prefix "a/b" is "a/b/" parsed to "a/b".
    let mut stream = store.list(prefix.as_ref());
    let mut out = Vec::new();
    loop {
        let next = cancellable(cancel, stream.next()).await?;
        let Some(item) = next else { break };
        let meta = item.map_err(|e| remote_error(e, cfg))?;
        let key = meta.location.to_string();
        let rest = if cfg.prefix.is_empty() {
            key.as_str()
        } else {
            match key
                .strip_prefix(cfg.prefix.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(rest) => rest,
                None => continue,
            }
        };
        if rest.contains('/') {
            continue;
        }
        if let Some((export, encrypted)) = remote_export_name(rest) {
            out.push(RemoteBackup {
                name: rest.to_string(),
                export_name: export.to_string(),
                key: key.clone(),
                size: meta.size,
                last_modified_ms: meta.last_modified.timestamp_millis(),
                encrypted,
            });
        }
    }
    // Export names sort by their time (fixed-width digits).
    out.sort_by(|a, b| {
        b.export_name
            .cmp(&a.export_name)
            .then_with(|| b.encrypted.cmp(&a.encrypted))
    });
    Ok(out)
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemotePruneReport {
    /// Objects kept, newest first.
    pub kept: Vec<RemoteBackup>,
    /// Objects deleted (dry run: that would be deleted), oldest first.
    pub deleted: Vec<RemoteBackup>,
    /// Objects whose deletion failed, with the reason, oldest first.
    pub failed: Vec<(RemoteBackup, String)>,
}

/// Remote retention, the local rule: the objects of the `keep` newest exports (by the time in
/// the name; an export stored plain and encrypted counts once) stay, every older backup object is
/// deleted (`dry_run`: only reported). Keys that are not backups ([`list`]) are never touched.
///
/// ```
/// use guard_core::offsite::{prune, OffsiteConfig, Secret};
/// use guard_core::reading::CancelFlag;
///
/// # let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
/// # cfg.endpoint = Some("http://127.0.0.1:1".into()); // nothing listens here
/// # cfg.path_style = true;
/// # cfg.max_retries = 0;
/// assert_eq!(prune(&cfg, 0, true, &CancelFlag::default()).unwrap_err().reason(), "bad_keep");
/// match prune(&cfg, 5, true, &CancelFlag::default()) {
///     Ok(report) => assert!(report.failed.is_empty()), // a dry run deletes nothing
///     Err(e) => assert_eq!(e.reason(), "connect"),
/// }
/// ```
pub fn prune(
    cfg: &OffsiteConfig,
    keep: usize,
    dry_run: bool,
    cancel: &CancelFlag,
) -> Result<RemotePruneReport, OffsiteError> {
    if keep == 0 {
        return Err(OffsiteError::BadKeep);
    }
    let store = store(cfg)?;
    runtime()?.block_on(async {
        let listed = list_inner(cfg, &store, cancel).await?;
        let mut report = RemotePruneReport::default();
        let mut exports_kept: Vec<String> = Vec::new();
        let mut doomed = Vec::new();
        for backup in listed {
            let kept_already = exports_kept.contains(&backup.export_name);
            if kept_already || exports_kept.len() < keep {
                if !kept_already {
                    exports_kept.push(backup.export_name.clone());
                }
                report.kept.push(backup);
            } else {
                doomed.push(backup);
            }
        }
        doomed.reverse();
        for backup in doomed {
            if cancel.load(Ordering::Relaxed) {
                return Err(OffsiteError::Cancelled);
            }
            if dry_run {
                report.deleted.push(backup);
                continue;
            }
            let path = ObjectPath::parse(&backup.key).map_err(|e| OffsiteError::Remote {
                where_: cfg.where_(),
                detail: e.to_string(),
            })?;
            match cancellable(cancel, store.delete(&path)).await? {
                Ok(()) => report.deleted.push(backup),
                Err(e) => {
                    let why = remote_error(e, cfg).to_string();
                    report.failed.push((backup, why));
                }
            }
        }
        Ok(report)
    })
}

#[cfg(test)]
mod tests {
    use super::super::config::unreachable_test_config as cfg;
    use super::*;
    use crate::reading::CancelFlag;

    #[test]
    fn nothing_listens_is_connect() {
        let c = OffsiteConfig {
            max_retries: 0,
            ..cfg()
        };
        let cancel = CancelFlag::default();
        let err = list(&c, &cancel).unwrap_err();
        assert_eq!(err.reason(), "connect", "{err}");
    }

    #[test]
    fn keep_zero_is_bad_keep() {
        let err = prune(&cfg(), 0, true, &CancelFlag::default()).unwrap_err();
        assert_eq!(err.reason(), "bad_keep");
    }
}
