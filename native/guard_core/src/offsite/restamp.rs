//! Recording metadata that is only known once an object is stored: the SHA-256 and size of the
//! stored bytes of a multipart upload (the age ciphertext when encrypted; age encrypts under a
//! fresh random key, so they exist only after the last part went out).
//!
//! S3 cannot change an object's metadata in place; the way every S3-compatible server accepts
//! (AWS S3, MinIO, R2, B2, OSS, COS, OBS, s3s, `rclone serve s3`) is a server-side copy of the
//! object onto itself with `x-amz-metadata-directive: REPLACE` and the complete new metadata
//! ([`restamp`]). No byte crosses the network again. object_store 0.12 cannot send that header
//! (its `copy` sends `x-amz-copy-source` only), so the requests are built by hand and signed
//! ([`super::signed`]).
//!
//! # Objects over 5 GiB
//! One CopyObject copies at most 5 GiB ([`COPY_OBJECT_LIMIT`]) on AWS S3 and the servers that
//! follow it. A larger object is copied onto itself as a multipart upload whose parts are
//! UploadPartCopy requests of `part_size` ranges (the same number of parts its upload had, so
//! never more than S3's 10 000); every range is pinned with `x-amz-copy-source-if-match` to the
//! ETag the upload completed with. If that fails, the copy's multipart upload is aborted. A
//! server without UploadPartCopy (it answers 501 NotImplemented, or, as `rclone serve s3`
//! does, 200 without the `CopyPartResult` ETag) has no such copy limit either: there the
//! metadata is replaced with one CopyObject.
//!
//! # Bounds and retries
//! A CopyObject is bounded by `request_timeout` for each part of the upload it re-stamps (a
//! server-side copy is not slower than receiving the same parts); each UploadPartCopy, like each
//! upload part, by one `request_timeout`. Connection failures, timeouts, 5xx and 429 answers, and
//! the 200 answers that carry an `<Error>` body (S3 may send one for a copy that failed after it
//! started) are retried `max_retries` times with the store's backoff (0.2 s doubling, at most
//! 5 s). On a bucket with versioning, the copy adds a version; the version the upload made
//! becomes noncurrent (a lifecycle rule for noncurrent versions removes it).

use http::Method;

use super::signed::{encode, xml_escape, xml_field, Signed};
use super::{OffsiteConfig, OffsiteError};
use crate::reading::CancelFlag;

/// Largest object one CopyObject may copy (S3's limit: 5 GiB).
pub const COPY_OBJECT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// The object to re-stamp and its new metadata.
pub(super) struct Restamp<'a> {
    /// Object name under the prefix.
    pub name: &'a str,
    /// The object's size.
    pub size: u64,
    /// Parts of the upload that made it.
    pub parts: usize,
    /// The ETag the upload completed with (pins the copy's source when known).
    pub e_tag: Option<String>,
    /// `(header, value)`: `content-type` and the `x-amz-meta-…` headers, complete (REPLACE).
    pub headers: Vec<(String, String)>,
}

/// Replaces the metadata of the object `job.name` with `job.headers` by a server-side copy onto
/// itself (see the module documentation). On error the object is as the upload left it.
pub(super) async fn restamp(
    cfg: &OffsiteConfig,
    job: &Restamp<'_>,
    cancel: &CancelFlag,
) -> Result<(), OffsiteError> {
    if job.size <= cfg.copy_object_limit {
        return copy_object(cfg, job, cancel).await;
    }
    let signed = Signed::new(cfg, job.name, Some(cfg.request_timeout))?;
    match copy_in_parts(cfg, &signed, job, cancel).await {
        Err(PartsCopy::Unsupported) => copy_object(cfg, job, cancel).await,
        Err(PartsCopy::Failed(e)) => Err(e),
        Ok(()) => Ok(()),
    }
}

/// One CopyObject of the object onto itself with the new metadata.
async fn copy_object(
    cfg: &OffsiteConfig,
    job: &Restamp<'_>,
    cancel: &CancelFlag,
) -> Result<(), OffsiteError> {
    let parts = u32::try_from(job.parts.max(1)).unwrap_or(u32::MAX);
    let timeout = cfg.request_timeout.saturating_mul(parts);
    let signed = Signed::new(cfg, job.name, Some(timeout))?;
    let mut headers = signed.copy_source_headers(job.e_tag.as_ref());
    headers.push(("x-amz-metadata-directive".into(), "REPLACE".into()));
    headers.extend(job.headers.iter().cloned());
    signed
        .send(Method::PUT, "", &headers, Vec::new(), cancel)
        .await
        .map(|_| ())
}

/// Why a copy in UploadPartCopy ranges did not happen.
enum PartsCopy {
    /// The server has no UploadPartCopy (see the module documentation); nothing was copied.
    Unsupported,
    /// It failed; the copy's multipart upload was aborted.
    Failed(OffsiteError),
}

/// Whether `e` is a server's 501 NotImplemented.
fn not_implemented(e: &OffsiteError) -> bool {
    matches!(e, OffsiteError::Remote { detail, .. }
        if detail.contains("HTTP 501") || detail.contains("NotImplemented"))
}

/// The copy of an object over [`OffsiteConfig::copy_object_limit`]: a multipart upload of
/// UploadPartCopy ranges, completed, or aborted on any failure.
async fn copy_in_parts(
    cfg: &OffsiteConfig,
    signed: &Signed<'_>,
    job: &Restamp<'_>,
    cancel: &CancelFlag,
) -> Result<(), PartsCopy> {
    let created = match signed
        .send(Method::POST, "uploads=", &job.headers, Vec::new(), cancel)
        .await
    {
        Ok(answer) => answer,
        Err(e) if not_implemented(&e) => return Err(PartsCopy::Unsupported),
        Err(e) => return Err(PartsCopy::Failed(e)),
    };
    let upload_id = xml_field(&created, "UploadId")
        .ok_or_else(|| PartsCopy::Failed(signed.malformed("UploadId")))?;
    let upload = format!("uploadId={}", encode(&upload_id, false));
    let copied = async {
        let mut etags = Vec::new();
        let mut offset = 0u64;
        while offset < job.size {
            let end = (offset + cfg.part_size as u64).min(job.size);
            let mut headers = signed.copy_source_headers(job.e_tag.as_ref());
            let range = format!("bytes={offset}-{}", end - 1);
            headers.push(("x-amz-copy-source-range".into(), range));
            let query = format!("partNumber={}&{upload}", etags.len() + 1);
            let answer = match signed
                .send(Method::PUT, &query, &headers, Vec::new(), cancel)
                .await
            {
                Ok(answer) => answer,
                Err(e) if not_implemented(&e) => return Err(PartsCopy::Unsupported),
                Err(e) => return Err(PartsCopy::Failed(e)),
            };
            // A CopyPartResult without its ETag: the server took the request for an empty part.
            etags.push(xml_field(&answer, "ETag").ok_or(PartsCopy::Unsupported)?);
            offset = end;
        }
        let mut body = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml_escape(etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let headers = [("content-type".to_string(), "application/xml".to_string())];
        signed
            .send(Method::POST, &upload, &headers, body.into_bytes(), cancel)
            .await
            .map(|_| ())
            .map_err(PartsCopy::Failed)
    }
    .await;
    if copied.is_err() {
        // Best effort, as for an upload: an unreachable server keeps an incomplete upload
        // (never an object) for the bucket's AbortIncompleteMultipartUpload rule.
        let abort = signed.send(Method::DELETE, &upload, &[], Vec::new(), cancel);
        let _ = tokio::time::timeout(cfg.request_timeout, abort).await;
    }
    copied
}
