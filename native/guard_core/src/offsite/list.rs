//! The backups under the prefix ([`list`]) and remote retention ([`prune`]). Only keys directly
//! under the prefix whose name is an export name, with or without `.age`, exist here; the plugins
//! companion of an export ([`super::COMPANION_SUFFIX`]) is deleted with it, never listed.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use super::client::{cancellable, object_path, runtime, store};
use super::error::remote_error;
use super::{remote_export_name, OffsiteConfig, OffsiteError};
use crate::reading::CancelFlag;
use crate::retention::{plan, Fate, Rules, Verdict};

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
    /// Every object and what the decision made of its export, newest first (by when the
    /// export was made): the same for a dry run and for the real prune.
    pub plan: Vec<(RemoteBackup, Fate)>,
}

/// Remote retention, the local rule: `rules` applied to the exports in the bucket
/// ([`crate::retention::plan`], every export counting as verified: each object was checked when
/// it was uploaded; an export stored plain and encrypted counts once, both objects share its
/// fate), every object of an export no rule keeps deleted (`dry_run`: only reported). A pinned
/// export is never deleted. Keys that are not backups ([`list`]) are never touched. A policy
/// with no rule on is refused (`bad_keep`).
///
/// ```
/// use guard_core::offsite::{prune, OffsiteConfig, Secret};
/// use guard_core::reading::CancelFlag;
/// use guard_core::retention::Rules;
///
/// # let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
/// # cfg.endpoint = Some("http://127.0.0.1:1".into()); // nothing listens here
/// # cfg.path_style = true;
/// # cfg.max_retries = 0;
/// let never = CancelFlag::default();
/// assert_eq!(prune(&cfg, &Rules::keep_last(0), true, &never).unwrap_err().reason(), "bad_keep");
/// match prune(&cfg, &Rules::keep_last(5), true, &never) {
///     Ok(report) => assert!(report.failed.is_empty()), // a dry run deletes nothing
///     Err(e) => assert_eq!(e.reason(), "connect"),
/// }
/// ```
pub fn prune(
    cfg: &OffsiteConfig,
    rules: &Rules,
    dry_run: bool,
    cancel: &CancelFlag,
) -> Result<RemotePruneReport, OffsiteError> {
    if rules.policy.is_empty() {
        return Err(OffsiteError::BadKeep);
    }
    let store = store(cfg)?;
    runtime()?.block_on(async {
        let listed = list_inner(cfg, &store, cancel).await?;
        let mut report = decided(rules, listed);
        let mut doomed: Vec<RemoteBackup> = report
            .plan
            .iter()
            .filter(|(_, fate)| !fate.is_kept())
            .map(|(backup, _)| backup.clone())
            .collect();
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
                Ok(()) => {
                    delete_companion(&store, &backup, cancel).await?;
                    report.deleted.push(backup);
                }
                Err(e) => {
                    let why = remote_error(e, cfg).to_string();
                    report.failed.push((backup, why));
                }
            }
        }
        Ok(report)
    })
}

/// Deletes the plugins companion object of a deleted export object (the same prefix, encrypted
/// as it), if there is one: the pair goes together. Best effort: a companion that cannot be
/// deleted is never a reason to keep its export (no listing counts it).
async fn delete_companion(
    store: &AmazonS3,
    backup: &RemoteBackup,
    cancel: &CancelFlag,
) -> Result<(), OffsiteError> {
    let Some(companion) = super::companion_name(&backup.export_name) else {
        return Ok(());
    };
    let Some(at) = backup.key.rfind(backup.export_name.as_str()) else {
        return Ok(());
    };
    let key = format!(
        "{}{}{}",
        &backup.key[..at],
        companion,
        &backup.key[at + backup.export_name.len()..]
    );
    if let Ok(path) = ObjectPath::parse(&key) {
        let _ = cancellable(cancel, store.delete(&path)).await?;
    }
    Ok(())
}

/// The decision over the listed objects: `plan` (every object with its export's fate, newest
/// first) and `kept`; nothing deleted yet.
fn decided(rules: &Rules, listed: Vec<RemoteBackup>) -> RemotePruneReport {
    let mut exports: Vec<String> = Vec::new();
    for backup in &listed {
        if !exports.contains(&backup.export_name) {
            exports.push(backup.export_name.clone());
        }
    }
    // Listed objects have export names; one that had none would be kept (it cannot be placed).
    let entries: Vec<_> = exports
        .iter()
        .filter_map(|name| rules.entry(name, Verdict::Good, false))
        .collect();
    let decision = if entries.len() == exports.len() {
        plan(&rules.policy, &rules.calendar, &entries)
    } else {
        return RemotePruneReport {
            kept: listed,
            ..RemotePruneReport::default()
        };
    };
    let mut report = RemotePruneReport::default();
    for &i in &decision.order {
        for backup in listed.iter().filter(|b| b.export_name == exports[i]) {
            report
                .plan
                .push((backup.clone(), decision.fates[i].clone()));
            if decision.fates[i].is_kept() {
                report.kept.push(backup.clone());
            }
        }
    }
    report
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
        let err = prune(&cfg(), &Rules::keep_last(0), true, &CancelFlag::default()).unwrap_err();
        assert_eq!(err.reason(), "bad_keep");
    }

    fn object(export: &str, encrypted: bool) -> RemoteBackup {
        let name = if encrypted {
            format!("{export}.age")
        } else {
            export.to_string()
        };
        RemoteBackup {
            key: format!("p/{name}"),
            name,
            export_name: export.to_string(),
            size: 1,
            last_modified_ms: 0,
            encrypted,
        }
    }

    #[test]
    fn both_objects_of_an_export_share_its_fate_and_pins_stay() {
        let a = "emqx-export-2026-11-30-02-00-00.000.tar.gz";
        let b = "emqx-export-2026-11-29-02-00-00.000.tar.gz";
        let c = "emqx-export-2026-11-28-02-00-00.000.tar.gz";
        let listed = vec![
            object(a, true),
            object(a, false),
            object(b, false),
            object(c, true),
        ];
        let mut rules = Rules::keep_last(1);
        rules.pins.insert(c.to_string());
        let report = decided(&rules, listed);
        let fates: Vec<(&str, String)> = report
            .plan
            .iter()
            .map(|(o, f)| (o.name.as_str(), f.to_string()))
            .collect();
        let age = |n: &str| format!("{n}.age");
        assert_eq!(
            fates,
            [
                (age(a).as_str(), "last #1".to_string()),
                (a, "last #1".to_string()),
                (b, "delete".to_string()),
                (age(c).as_str(), "pinned".to_string()),
            ]
        );
        assert_eq!(report.kept.len(), 3);
    }
}
