//! The end of an upload ([`seal`]): the metadata known only once the last byte went out (the
//! export's and the stored bytes' SHA-256 and size) recorded on a multipart upload by a copy of
//! the object onto itself ([`restamp`]), then the object checked with HEAD; and whether an
//! object found before uploading already holds the export ([`reusable`]).

use object_store::aws::AmazonS3;
use object_store::{Attribute, Attributes, ObjectStore};

use super::client::{head_object, object_path, ObjectInfo};
use super::parts::Summary;
use super::{
    restamp, OffsiteConfig, OffsiteError, Uploaded, META_RECIPIENT, META_SHA256, META_SIZE,
    META_STORED_SHA256, META_STORED_SIZE,
};
use crate::reading::{CancelFlag, Hashed};

/// What the requests of an upload stored: the whole object's summary, its parts (0: a single
/// PUT) and the ETag it was completed with.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) summary: Summary,
    pub(super) parts: usize,
    pub(super) e_tag: Option<String>,
}

/// Whether the object `found` may hold the export of `size` bytes: it records that size, a
/// stored size equal to its own, both SHA-256 and the configured recipient (none for a plain
/// object). Only then is the export hashed to compare ([`reusable`]).
pub(super) fn may_hold(cfg: &OffsiteConfig, found: &ObjectInfo, size: u64) -> bool {
    found.meta(META_SIZE) == Some(size.to_string().as_str())
        && found.meta(META_STORED_SIZE) == Some(found.size.to_string().as_str())
        && found.meta(META_RECIPIENT) == cfg.recipient.as_deref()
        && found.meta(META_SHA256).is_some()
        && found.meta(META_STORED_SHA256).is_some()
}

/// The upload `found` stands for when it already holds the export `hashed` (see
/// [`super::upload`]).
pub(super) fn reusable(
    cfg: &OffsiteConfig,
    name: &str,
    found: &ObjectInfo,
    hashed: &Hashed,
) -> Option<Uploaded> {
    let same = may_hold(cfg, found, hashed.size)
        && found.meta(META_SHA256) == Some(hashed.sha256.as_str());
    let stored_sha256 = found.meta(META_STORED_SHA256)?.to_string();
    same.then(|| Uploaded {
        name: name.to_string(),
        key: cfg.key(name),
        size: found.size,
        stored_sha256,
        source_size: hashed.size,
        source_sha256: hashed.sha256.clone(),
        encrypted: cfg.recipient.is_some(),
        parts: 0,
        reused: true,
    })
}

/// The metadata of an object of the export `hashed`: its SHA-256 and size, the recipient of an
/// encrypted one, and the stored bytes' SHA-256 and size once they are known.
pub(super) fn object_metadata(
    cfg: &OffsiteConfig,
    hashed: &Hashed,
    stored: Option<&Hashed>,
) -> Vec<(&'static str, String)> {
    let mut meta = vec![
        (META_SHA256, hashed.sha256.clone()),
        (META_SIZE, hashed.size.to_string()),
    ];
    if let Some(recipient) = &cfg.recipient {
        meta.push((META_RECIPIENT, recipient.clone()));
    }
    if let Some(stored) = stored {
        meta.push((META_STORED_SHA256, stored.sha256.clone()));
        meta.push((META_STORED_SIZE, stored.size.to_string()));
    }
    meta
}

/// The attributes a multipart upload is created with: its content type and, when encrypted,
/// its recipient (the rest is known only at the end: [`seal`]).
pub(super) fn creation_attributes(cfg: &OffsiteConfig) -> Attributes {
    let mut meta = Vec::new();
    if let Some(recipient) = &cfg.recipient {
        meta.push((META_RECIPIENT, recipient.clone()));
    }
    attributes(cfg, meta)
}

fn content_type(cfg: &OffsiteConfig) -> &'static str {
    match cfg.recipient {
        Some(_) => "application/octet-stream",
        None => "application/gzip",
    }
}

pub(super) fn attributes(cfg: &OffsiteConfig, meta: Vec<(&'static str, String)>) -> Attributes {
    let mut attributes = Attributes::new();
    for (key, value) in meta {
        attributes.insert(Attribute::Metadata(key.into()), value.into());
    }
    attributes.insert(Attribute::ContentType, content_type(cfg).into());
    attributes
}

/// Records the export's and the stored bytes' SHA-256 and size on a multipart upload
/// ([`restamp`]), then checks
/// what the server holds (HEAD: size and metadata). A failure deletes the object.
pub(super) async fn seal(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    name: &str,
    sent: &Sent,
    cancel: &CancelFlag,
) -> Result<Uploaded, OffsiteError> {
    let hashed = &sent.summary.source;
    let path = object_path(cfg, name)?;
    let delete = || async {
        let _ = tokio::time::timeout(cfg.request_timeout, store.delete(&path)).await;
    };
    let meta = object_metadata(cfg, hashed, Some(&sent.summary.stored));
    if sent.parts > 0 {
        let mut headers = vec![("content-type".to_string(), content_type(cfg).to_string())];
        headers.extend(
            meta.iter()
                .map(|(k, v)| (format!("x-amz-meta-{k}"), v.clone())),
        );
        let job = restamp::Restamp {
            name,
            size: sent.summary.stored.size,
            parts: sent.parts,
            e_tag: sent.e_tag.clone(),
            headers,
        };
        if let Err(e) = restamp::restamp(cfg, &job, cancel).await {
            // 412: another upload replaced the object meanwhile; it is not ours to delete.
            if !matches!(e, OffsiteError::Integrity(_)) {
                delete().await;
            }
            return Err(recording_failed(e, &cfg.key(name)));
        }
    }
    let found = head_object(cfg, store, name, cancel).await?;
    let problem = match &found {
        None => Some(format!("{} is gone right after its upload", cfg.key(name))),
        Some(f) if f.size != sent.summary.stored.size => Some(format!(
            "the server holds {} bytes for {}, {} were sent",
            f.size,
            cfg.key(name),
            sent.summary.stored.size
        )),
        Some(f) => meta
            .iter()
            .find(|(k, v)| f.meta(k) != Some(v.as_str()))
            .map(|(k, _)| {
                format!(
                    "the server did not keep the checksum metadata of {} ({k} reads back as {:?})",
                    cfg.key(name),
                    f.meta(k)
                )
            }),
    };
    if let Some(problem) = problem {
        delete().await;
        return Err(OffsiteError::Integrity(format!(
            "{problem}; the object was deleted"
        )));
    }
    Ok(Uploaded {
        key: cfg.key(name),
        name: name.to_string(),
        size: sent.summary.stored.size,
        stored_sha256: sent.summary.stored.sha256.clone(),
        source_size: hashed.size,
        source_sha256: hashed.sha256.clone(),
        encrypted: cfg.recipient.is_some(),
        parts: sent.parts,
        reused: false,
    })
}

/// `e`, its detail saying that it happened while the stored bytes' metadata was recorded.
fn recording_failed(e: OffsiteError, key: &str) -> OffsiteError {
    let context = |detail: String| {
        format!("recording the SHA-256 metadata of {key} (a server-side copy onto itself) failed, so the upload was deleted: {detail}")
    };
    match e {
        OffsiteError::Auth { where_, detail } => OffsiteError::Auth {
            where_,
            detail: context(detail),
        },
        OffsiteError::NotFound { where_, detail } => OffsiteError::NotFound {
            where_,
            detail: context(detail),
        },
        OffsiteError::Connect { where_, detail } => OffsiteError::Connect {
            where_,
            detail: context(detail),
        },
        OffsiteError::Timeout { where_, detail } => OffsiteError::Timeout {
            where_,
            detail: context(detail),
        },
        OffsiteError::Tls { where_, detail } => OffsiteError::Tls {
            where_,
            detail: context(detail),
        },
        OffsiteError::Remote { where_, detail } => OffsiteError::Remote {
            where_,
            detail: context(detail),
        },
        other => other,
    }
}
