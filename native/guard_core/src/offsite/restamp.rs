//! Recording metadata that is only known once an object is stored: the SHA-256 and size of the
//! stored bytes of a multipart upload (the age ciphertext when encrypted; age encrypts under a
//! fresh random key, so they exist only after the last part went out).
//!
//! S3 cannot change an object's metadata in place; the way every S3-compatible server accepts
//! (AWS S3, MinIO, R2, B2, OSS, COS, OBS, s3s, `rclone serve s3`) is a server-side copy of the
//! object onto itself with `x-amz-metadata-directive: REPLACE` and the complete new metadata
//! ([`restamp`]). No byte crosses the network again. object_store 0.12 cannot send that header
//! (its `copy` sends `x-amz-copy-source` only), so the requests here are built by hand, signed
//! with object_store's own SigV4 signer ([`AwsAuthorizer`]) and sent through an [`HttpClient`]
//! made from the same [`ClientOptions`] as the store (timeouts, TLS verification, CA file).
//!
//! # Objects over 5 GiB
//! One CopyObject copies at most 5 GiB ([`COPY_OBJECT_LIMIT`]). A larger object is copied onto
//! itself as a multipart upload whose parts are UploadPartCopy requests of `part_size` ranges
//! (the same number of parts its upload had, so never more than S3's 10 000); every range is
//! pinned with `x-amz-copy-source-if-match` to the ETag the upload completed with. If that
//! fails, the copy's multipart upload is aborted.
//!
//! # Bounds and retries
//! A CopyObject is bounded by `request_timeout` for each part of the upload it re-stamps (a
//! server-side copy is not slower than receiving the same parts); each UploadPartCopy, like each
//! upload part, by one `request_timeout`. Connection failures, timeouts, 5xx and 429 answers, and
//! the 200 answers that carry an `<Error>` body (S3 may send one for a copy that failed after it
//! started) are retried `max_retries` times with the store's backoff (0.2 s doubling, at most
//! 5 s). On a bucket with versioning, the copy adds a version; the version the upload made
//! becomes noncurrent (a lifecycle rule for noncurrent versions removes it).

use std::time::Duration;

use http::{Method, Request};
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequestBody, ReqwestConnector,
};

use super::client::{cancellable, client_endpoint, client_options};
use super::error::{one_line, remote_error, scrub};
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
        let parts = u32::try_from(job.parts.max(1)).unwrap_or(u32::MAX);
        let signed = Signed::new(cfg, job.name, cfg.request_timeout.saturating_mul(parts))?;
        let mut headers = signed.copy_source_headers(job);
        headers.push(("x-amz-metadata-directive".into(), "REPLACE".into()));
        headers.extend(job.headers.iter().cloned());
        signed
            .send(Method::PUT, "", &headers, Vec::new(), cancel)
            .await
            .map(|_| ())
    } else {
        let signed = Signed::new(cfg, job.name, cfg.request_timeout)?;
        copy_in_parts(cfg, &signed, job, cancel).await
    }
}

/// The copy of an object over [`OffsiteConfig::copy_object_limit`]: a multipart upload of
/// UploadPartCopy ranges, completed, or aborted on any failure.
async fn copy_in_parts(
    cfg: &OffsiteConfig,
    signed: &Signed<'_>,
    job: &Restamp<'_>,
    cancel: &CancelFlag,
) -> Result<(), OffsiteError> {
    let created = signed
        .send(Method::POST, "uploads=", &job.headers, Vec::new(), cancel)
        .await?;
    let upload_id = xml_field(&created, "UploadId").ok_or_else(|| signed.malformed("UploadId"))?;
    let upload = format!("uploadId={}", encode(&upload_id, false));
    let copied = async {
        let mut etags = Vec::new();
        let mut offset = 0u64;
        while offset < job.size {
            let end = (offset + cfg.part_size as u64).min(job.size);
            let mut headers = signed.copy_source_headers(job);
            let range = format!("bytes={offset}-{}", end - 1);
            headers.push(("x-amz-copy-source-range".into(), range));
            let query = format!("partNumber={}&{upload}", etags.len() + 1);
            let answer = signed
                .send(Method::PUT, &query, &headers, Vec::new(), cancel)
                .await?;
            etags.push(xml_field(&answer, "ETag").ok_or_else(|| signed.malformed("ETag"))?);
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

/// Signed requests on one object of the bucket.
struct Signed<'a> {
    cfg: &'a OffsiteConfig,
    client: HttpClient,
    credential: AwsCredential,
    /// `…/<bucket>/<encoded key>` (path style) or `…<bucket>.host/<encoded key>`.
    url: String,
    /// The object's key, for messages.
    key: String,
}

impl<'a> Signed<'a> {
    fn new(cfg: &'a OffsiteConfig, name: &str, timeout: Duration) -> Result<Self, OffsiteError> {
        let options = client_options(cfg)?.with_timeout(timeout);
        let client = ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| OffsiteError::BadConfig(scrub(&e.to_string(), cfg)))?;
        let key = cfg.key(name);
        Ok(Signed {
            cfg,
            client,
            credential: AwsCredential {
                key_id: cfg.access_key.clone(),
                secret_key: cfg.secret_key.expose().to_string(),
                token: None,
            },
            url: format!("{}/{}", bucket_url(cfg), encode(&key, true)),
            key,
        })
    }

    /// `x-amz-copy-source` of the object itself, pinned to its ETag when known.
    fn copy_source_headers(&self, job: &Restamp<'_>) -> Vec<(String, String)> {
        let source = format!("{}/{}", self.cfg.bucket, encode(&self.key, true));
        let mut headers = vec![("x-amz-copy-source".to_string(), source)];
        if let Some(etag) = &job.e_tag {
            headers.push(("x-amz-copy-source-if-match".to_string(), etag.clone()));
        }
        headers
    }

    fn malformed(&self, what: &str) -> OffsiteError {
        OffsiteError::Remote {
            where_: self.cfg.where_(),
            detail: format!("{}: the answer has no {what}", self.key),
        }
    }

    /// Sends one request (retried as the module documentation says) and returns the answer's
    /// body; any other outcome is the error it means.
    async fn send(
        &self,
        method: Method,
        query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        cancel: &CancelFlag,
    ) -> Result<String, OffsiteError> {
        let mut attempt = 0;
        loop {
            let request = self.request(method.clone(), query, headers, body.clone())?;
            let answer = cancellable(cancel, self.exchange(request)).await?;
            match answer {
                Ok(text) => return Ok(text),
                Err(Failure { retry, error }) if !retry || attempt >= self.cfg.max_retries => {
                    return Err(error)
                }
                Err(_) => {}
            }
            let wait = Duration::from_millis(200u64.saturating_mul(1 << attempt.min(10)));
            cancellable(cancel, tokio::time::sleep(wait.min(Duration::from_secs(5)))).await?;
            attempt += 1;
        }
    }

    fn request(
        &self,
        method: Method,
        query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Request<HttpRequestBody>, OffsiteError> {
        let url = match query {
            "" => self.url.clone(),
            q => format!("{}?{q}", self.url),
        };
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut request = builder.body(HttpRequestBody::from(body)).map_err(|e| {
            OffsiteError::BadConfig(format!("{}: {}", self.key, one_line(&e.to_string())))
        })?;
        AwsAuthorizer::new(&self.credential, "s3", &self.cfg.region).authorize(&mut request, None);
        Ok(request)
    }

    async fn exchange(&self, request: Request<HttpRequestBody>) -> Result<String, Failure> {
        let transport = |e: HttpError| {
            let retry = matches!(
                e.kind(),
                object_store::client::HttpErrorKind::Connect
                    | object_store::client::HttpErrorKind::Timeout
                    | object_store::client::HttpErrorKind::Request
                    | object_store::client::HttpErrorKind::Interrupted
            );
            let error = object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            };
            Failure {
                retry,
                error: remote_error(error, self.cfg),
            }
        };
        let response = self.client.execute(request).await.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.into_body().bytes().await.map_err(transport)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if (200..300).contains(&status) && !text.contains("<Error>") {
            return Ok(text);
        }
        Err(self.refusal(status, &text))
    }

    /// What an error answer means.
    fn refusal(&self, status: u16, body: &str) -> Failure {
        let code = xml_field(body, "Code").unwrap_or_default();
        let message = xml_field(body, "Message").unwrap_or_default();
        let detail = scrub(
            &format!("{}: HTTP {status} {code} {message}", self.key),
            self.cfg,
        );
        let where_ = self.cfg.where_();
        let retry = status >= 500
            || status == 429
            || ["InternalError", "SlowDown", "ServiceUnavailable"].contains(&code.as_str());
        let error = match status {
            401 | 403 => OffsiteError::Auth { where_, detail },
            404 => OffsiteError::NotFound { where_, detail },
            412 => OffsiteError::Integrity(format!(
                "{} was replaced by another upload while its checksum metadata was recorded: upload it again",
                self.key
            )),
            _ => OffsiteError::Remote { where_, detail },
        };
        Failure { retry, error }
    }
}

/// A failed exchange, and whether trying it again may help.
struct Failure {
    retry: bool,
    error: OffsiteError,
}

/// `scheme://host[:port]/bucket` (path style) or `scheme://bucket.host[:port]`: the URL
/// object_store's client uses for the bucket.
fn bucket_url(cfg: &OffsiteConfig) -> String {
    match (client_endpoint(cfg), cfg.path_style) {
        (Some(endpoint), true) => format!("{endpoint}/{}", cfg.bucket),
        (Some(endpoint), false) => endpoint,
        (None, true) => format!("https://s3.{}.amazonaws.com/{}", cfg.region, cfg.bucket),
        (None, false) => format!("https://{}.s3.{}.amazonaws.com", cfg.bucket, cfg.region),
    }
}

/// Percent-encodes everything but `A-Z a-z 0-9 - . _ ~` (and `/` when `keep_slash`): S3's URI
/// encoding, the one the signer and the server both apply.
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<tag>…</tag>` in `xml`, entities decoded.
fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .trim()
            .replace("&quot;", "\"")
            .replace("&#34;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offsite::Secret;

    fn cfg() -> OffsiteConfig {
        let mut c = OffsiteConfig::new("backups", "AKID", Secret::new("s3cr3t"));
        c.region = "eu-central-1".into();
        c
    }

    #[test]
    fn bucket_urls_follow_the_request_style() {
        let mut c = cfg();
        assert_eq!(
            bucket_url(&c),
            "https://backups.s3.eu-central-1.amazonaws.com"
        );
        c.path_style = true;
        assert_eq!(
            bucket_url(&c),
            "https://s3.eu-central-1.amazonaws.com/backups"
        );
        c.endpoint = Some("http://127.0.0.1:9000/".into());
        assert_eq!(bucket_url(&c), "http://127.0.0.1:9000/backups");
        c.path_style = false;
        c.endpoint = Some("https://s3.example.net".into());
        assert_eq!(bucket_url(&c), "https://backups.s3.example.net");
    }

    #[test]
    fn keys_are_uri_encoded_as_s3_wants() {
        assert_eq!(
            encode(
                "emqx/prod/emqx-export-2026-01-01-00-00-00.000.tar.gz.age",
                true
            ),
            "emqx/prod/emqx-export-2026-01-01-00-00-00.000.tar.gz.age"
        );
        assert_eq!(encode("a b/ü+=", true), "a%20b/%C3%BC%2B%3D");
        assert_eq!(encode("x/y", false), "x%2Fy");
    }

    #[test]
    fn xml_fields_are_decoded() {
        let body = "<?xml version=\"1.0\"?><CopyPartResult><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyPartResult>";
        assert_eq!(
            xml_field(body, "ETag").as_deref(),
            Some("\"9b2cf535f27731c974343645a3985328\"")
        );
        assert_eq!(xml_field(body, "UploadId"), None);
        assert_eq!(xml_escape("\"a&b\""), "&quot;a&amp;b&quot;");
    }
}
