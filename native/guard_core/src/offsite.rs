//! Off-site copies of verified exports on S3-compatible object storage (AWS S3, MinIO, Ceph RGW,
//! Garage, R2, GCS's S3 API...), optionally encrypted with age.
//!
//! The S3 protocol (SigV4 signing, multipart uploads, request checksums, retries with backoff)
//! comes from Apache Arrow's `object_store` crate. The one request it cannot send, a copy of an
//! object onto itself that replaces its metadata, is framed in [`restamp`] and signed there with
//! object_store's own SigV4 signer.
//! `object_store` is async: every operation here is a plain blocking function that builds a
//! current-thread tokio runtime on the calling thread (the NIF calls them on its low-priority job
//! threads, [`crate::worker`]), so no S3 work ever runs on an Erlang scheduler.
//!
//! # Objects
//! An export `emqx-export-….tar.gz` is stored as `<prefix>/<export name>`, or as
//! `<prefix>/<export name>.age` when the configuration has an age recipient (the bucket then never
//! holds plaintext). Only keys directly under the prefix whose name is an export name
//! ([`crate::retention::is_export_name`]), optionally followed by `.age`, exist for [`list`] and
//! [`prune`]: nothing else in the bucket is ever listed, counted or deleted.
//!
//! # Integrity
//! - Every request that carries data (the single PUT of a small object, each part of a multipart
//!   upload) carries `x-amz-checksum-sha256` of its body: a server that implements S3 checksums
//!   rejects a body that arrives altered (AWS S3 checks PUTs and parts; s3s checks PUTs).
//! - Every object records as metadata the export's SHA-256 and size
//!   (`x-amz-meta-emqx-guard-sha256`, `-size`), the SHA-256 and size of the object's bytes as
//!   stored (`-stored-sha256`, `-stored-size`: the age ciphertext when encrypted, the export
//!   itself otherwise) and, when encrypted, the age recipient (`-recipient`, a public key). The
//!   export's are known before the upload starts (the file is hashed first); the stored bytes'
//!   only once the last byte went out (age encrypts under a fresh random key). A single PUT
//!   holds the whole object in memory and sends all of them with it; a multipart upload records
//!   the stored bytes' afterwards with a server-side copy of the object onto itself that
//!   replaces its metadata ([`restamp`]; over 5 GiB with UploadPartCopy). While uploading the
//!   file is hashed again: a file that changed in between is not completed (`integrity`).
//! - After the upload a HEAD request checks that the object's size is the number of bytes sent and
//!   that every metadata value reads back; a mismatch deletes the object (`integrity`). The bytes
//!   are not downloaded again: that would double the transfer (and egress cost) of every backup,
//!   and the request checksums already prove what the server received.
//! - [`upload`] first asks for the object (HEAD): one that already records this export, its
//!   stored bytes and the configured recipient is not sent again ([`Uploaded::reused`]).
//! - [`fetch`] checks what it downloaded against the stored bytes' metadata before it decrypts
//!   anything, then lets age authenticate every 64 KiB, compares the export with its metadata and
//!   verifies it ([`verify`]) like any local backup; an object without the metadata (uploaded by
//!   another tool, or kept by a server that drops metadata) still gets the last checks. The
//!   result names the checks made, an error the check that refused ([`Check`]).
//!
//! # Failures leave nothing that counts
//! A single PUT is atomic on S3. A multipart upload makes no object until it is completed; on any
//! failure or cancellation it is aborted (when the server is reachable; otherwise an incomplete
//! upload is left for the bucket's `AbortIncompleteMultipartUpload` lifecycle rule, and it is
//! never listed as an object). [`fetch`] works inside a private directory in the destination and
//! links the file under its export name only once it has verified.
//!
//! # Secrets
//! The secret key lives in a [`Secret`], whose `Debug` is `<redacted>`; error texts are scrubbed
//! of it ([`OffsiteError`]'s `Display` never contains it). The age identity (private key) is
//! never stored in the configuration: [`fetch`] reads it from a file the operator names, and
//! neither its path's content nor any part of it appears in an error.

use std::cell::RefCell;
use std::fmt;
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path as FsPath, PathBuf};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, GetRange, MultipartUpload,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};

use crate::reading::{hex, CancelFlag, ReadControl, READ_CHUNK};
use crate::retention::is_export_name;
use crate::verify::{verify_controlled, Verified};

mod restamp;
pub use restamp::COPY_OBJECT_LIMIT;

/// Smallest part of a multipart upload S3 accepts (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// Default part size: a file up to this size is one PUT, a larger one a multipart upload.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
/// Default bound on connecting to the server.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on one request (a request moves at most one part, or one part-sized range of a
/// download: the slowest link that works is `part_size / request_timeout`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Default number of retries of a failed request (with exponential backoff) before giving up.
pub const DEFAULT_MAX_RETRIES: usize = 3;

/// Suffix of an encrypted object's name.
pub const AGE_SUFFIX: &str = ".age";
/// Metadata key of the export's SHA-256 (lowercase hex), sent as `x-amz-meta-emqx-guard-sha256`.
pub const META_SHA256: &str = "emqx-guard-sha256";
/// Metadata key of the export's size in bytes.
pub const META_SIZE: &str = "emqx-guard-size";
/// Metadata key of the SHA-256 (lowercase hex) of the object's bytes as stored: the age
/// ciphertext of an encrypted object, the export itself otherwise.
pub const META_STORED_SHA256: &str = "emqx-guard-stored-sha256";
/// Metadata key of the object's size as stored.
pub const META_STORED_SIZE: &str = "emqx-guard-stored-size";
/// Metadata key of the age recipient an encrypted object was made for (a public key).
pub const META_RECIPIENT: &str = "emqx-guard-recipient";

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

/// How often a wait on the network checks the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// A secret string (the S3 secret key): `Debug` and `Display` print `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that needs it (the request signer).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where off-site copies go. Build one with [`OffsiteConfig::new`] and set the optional fields;
/// every operation checks it first ([`OffsiteConfig::validate`], `bad_config`).
#[derive(Debug, Clone)]
pub struct OffsiteConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix ("folder") inside the bucket, without leading or trailing `/`; empty: the
    /// bucket's top.
    pub prefix: String,
    /// Region, e.g. `us-east-1` (anything for servers that ignore it, such as MinIO).
    pub region: String,
    /// `http(s)://host[:port]` of an S3-compatible server; `None`: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: Secret,
    /// Path-style requests (`endpoint/bucket/key`, what MinIO and most self-hosted servers
    /// want) instead of virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Verify the server's TLS certificate (default true). Off is for tests and lab set-ups only.
    pub tls_verify: bool,
    /// A PEM file of CA certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// An age X25519 recipient (`age1…`): uploads are encrypted to it. `None`: plaintext.
    pub recipient: Option<String>,
    /// Part size of multipart uploads and of ranged downloads, [`MIN_PART_SIZE`] to
    /// [`MAX_PART_SIZE`]. Files up to this size are uploaded with one PUT.
    pub part_size: usize,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Bound on each request.
    pub request_timeout: Duration,
    /// Retries of a failed request, with exponential backoff (0.2 s doubling, at most 5 s).
    pub max_retries: usize,
    /// Largest object whose stored-bytes metadata is recorded with one CopyObject (default
    /// [`COPY_OBJECT_LIMIT`], S3's 5 GiB); a larger multipart upload is re-stamped with
    /// UploadPartCopy ranges ([`restamp`]). Lower it only for a server with a smaller copy
    /// limit; the NIF does not expose it.
    pub copy_object_limit: u64,
}

impl OffsiteConfig {
    /// A configuration with the defaults: no prefix, region `us-east-1`, AWS endpoint,
    /// virtual-hosted style, TLS verified, no encryption, [`DEFAULT_PART_SIZE`], default timeouts.
    pub fn new(bucket: &str, access_key: &str, secret_key: Secret) -> Self {
        OffsiteConfig {
            bucket: bucket.to_string(),
            prefix: String::new(),
            region: "us-east-1".to_string(),
            endpoint: None,
            access_key: access_key.to_string(),
            secret_key,
            path_style: false,
            tls_verify: true,
            ca_file: None,
            recipient: None,
            part_size: DEFAULT_PART_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            copy_object_limit: COPY_OBJECT_LIMIT,
        }
    }

    /// Checks every field; the first problem is `bad_config` naming the field.
    pub fn validate(&self) -> Result<(), OffsiteError> {
        let bad = |detail: String| Err(OffsiteError::BadConfig(detail));
        if self.bucket.is_empty()
            || self.bucket.len() > 63
            || !self
                .bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return bad(format!(
                "bucket {:?} is not a bucket name (1 to 63 letters, digits, '-', '.', '_')",
                self.bucket
            ));
        }
        if !self.prefix.is_empty()
            && (self.prefix.starts_with('/')
                || self.prefix.ends_with('/')
                || self
                    .prefix
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == "..")
                || self.prefix.chars().any(char::is_control))
        {
            return bad(format!(
                "prefix {:?} is not a key prefix: segments separated by single '/', no leading or trailing '/', no '.' or '..', no control characters",
                self.prefix
            ));
        }
        // Both go into the Authorization header, which takes printable ASCII only.
        if self.region.is_empty() || !self.region.bytes().all(|b| b.is_ascii_graphic()) {
            return bad(format!("region {:?} is not a region name", self.region));
        }
        if let Some(endpoint) = &self.endpoint {
            let rest = endpoint
                .strip_prefix("https://")
                .or_else(|| endpoint.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.chars().any(char::is_whitespace) => {}
                _ => {
                    return bad(format!(
                        "endpoint {endpoint:?} is not an http:// or https:// URL"
                    ))
                }
            }
        }
        if self.access_key.is_empty() {
            return bad("access_key is empty".to_string());
        }
        if !self.access_key.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("access_key must be printable ASCII without spaces".to_string());
        }
        if self.secret_key.expose().is_empty() {
            return bad("secret_key is empty".to_string());
        }
        if let Some(recipient) = &self.recipient {
            if age::x25519::Recipient::from_str(recipient).is_err() {
                return bad(
                    "recipient is not an age X25519 recipient (age1… as printed by age-keygen -y)"
                        .to_string(),
                );
            }
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return bad(format!(
                "part_size {} is out of range: {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB) bytes",
                self.part_size
            ));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return bad("timeouts must be positive".to_string());
        }
        Ok(())
    }

    /// The object key of `name` (`<prefix>/<name>`).
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.prefix, name)
        }
    }

    /// Where the server is, for error messages.
    fn where_(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("{e} bucket {}", self.bucket),
            None => format!("AWS S3 ({}) bucket {}", self.region, self.bucket),
        }
    }
}

/// Why an off-site operation failed. [`OffsiteError::reason`] is a stable short name (the Erlang
/// error atom); `Display` is one line saying what went wrong and what to do, and never contains
/// the secret key.
#[derive(Debug, thiserror::Error)]
pub enum OffsiteError {
    /// A configuration field is missing or wrong.
    #[error("off-site configuration: {0}")]
    BadConfig(String),
    /// `keep` was 0.
    #[error("keep must be at least 1 (got 0): set the number of backups to keep to 1 or more")]
    BadKeep,
    /// A name that is not an export name (optionally with `.age`).
    #[error("{0:?} is not an EMQX export name (emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz, optionally .age)")]
    BadName(String),
    /// The server refused the credentials or the permission (401/403).
    #[error("{where_}: access denied: {detail}: check access_key and secret_key and the key's permissions on the bucket")]
    Auth { where_: String, detail: String },
    /// The object or the bucket does not exist.
    #[error("{where_}: not found: {detail}")]
    NotFound { where_: String, detail: String },
    /// Connecting failed (refused, unreachable, DNS).
    #[error("{where_}: cannot connect: {detail}: check endpoint, region and the network")]
    Connect { where_: String, detail: String },
    /// A request or the connection timed out.
    #[error("{where_}: timed out: {detail}")]
    Timeout { where_: String, detail: String },
    /// The TLS handshake failed (certificate not trusted, wrong name).
    #[error("{where_}: TLS failed: {detail}: check the certificate, ca_file or tls_verify")]
    Tls { where_: String, detail: String },
    /// Any other answer of the server (5xx, a malformed answer).
    #[error("{where_}: {detail}")]
    Remote { where_: String, detail: String },
    /// An upload does not match what was sent, or an object changed while it was handled.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A check of [`fetch`] refused the object: it was altered or damaged. Nothing was written.
    #[error("integrity check failed ({check}): {detail}; nothing was written")]
    Refused { check: Check, detail: String },
    /// The encrypted object cannot be decrypted with the identity given (or no identity given).
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
    /// The identity file cannot be read or holds no usable age identity.
    #[error("{}: not a usable age identity file: {}", shown(.path), .detail)]
    Identity { path: PathBuf, detail: String },
    /// The fetched export does not verify (the [`Check::Verify`] check). Nothing was written.
    #[error("the fetched export does not verify (check verify: {reason}): {detail}; nothing was written")]
    Verify {
        reason: &'static str,
        detail: String,
    },
    /// The destination already has a file of that name.
    #[error("{}: already exists: remove or rename it first", shown(.0))]
    Exists(PathBuf),
    /// Reading or writing a local file failed.
    #[error("{}: {}", shown(.path), .detail)]
    Io { path: PathBuf, detail: String },
    /// The job was cancelled; nothing that counts was left behind.
    #[error("cancelled before it finished (the plugin stopped or the job was cancelled): nothing was left behind; run it again")]
    Cancelled,
}

impl OffsiteError {
    /// Stable short name of the failure, used as the Erlang error atom.
    pub fn reason(&self) -> &'static str {
        match self {
            OffsiteError::BadConfig(_) => "bad_config",
            OffsiteError::BadKeep => "bad_keep",
            OffsiteError::BadName(_) => "bad_name",
            OffsiteError::Auth { .. } => "auth",
            OffsiteError::NotFound { .. } => "not_found",
            OffsiteError::Connect { .. } => "connect",
            OffsiteError::Timeout { .. } => "timeout",
            OffsiteError::Tls { .. } => "tls",
            OffsiteError::Remote { .. } => "remote",
            OffsiteError::Integrity(_) | OffsiteError::Refused { .. } => "integrity",
            OffsiteError::Decrypt(_) => "decrypt",
            OffsiteError::Identity { .. } => "identity",
            OffsiteError::Verify { .. } => "verify",
            OffsiteError::Exists(_) => "exists",
            OffsiteError::Io { .. } => "io",
            OffsiteError::Cancelled => "cancelled",
        }
    }

    fn io(path: &FsPath, e: &io::Error) -> Self {
        OffsiteError::Io {
            path: path.to_path_buf(),
            detail: one_line(&e.to_string()),
        }
    }
}

fn shown(path: &FsPath) -> String {
    path.to_string_lossy().escape_default().to_string()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` on one line with every occurrence of the secret replaced.
fn scrub(text: &str, cfg: &OffsiteConfig) -> String {
    let line = one_line(text);
    let secret = cfg.secret_key.expose();
    if secret.is_empty() {
        line
    } else {
        line.replace(secret, "<redacted>")
    }
}

/// Every error in the chain of `e`, with `io::Error`s looked into (their `source` skips the
/// error they wrap).
fn chain<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> Vec<&'e (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        out.push(err);
        next = match err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
        if out.len() > 32 {
            break;
        }
    }
    out
}

/// Classifies an `object_store` error.
fn remote_error(e: object_store::Error, cfg: &OffsiteConfig) -> OffsiteError {
    let where_ = cfg.where_();
    let text = scrub(&e.to_string(), cfg);
    match &e {
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            return OffsiteError::Auth {
                where_,
                detail: text,
            }
        }
        object_store::Error::NotFound { .. } => {
            return OffsiteError::NotFound {
                where_,
                detail: text,
            }
        }
        _ => {}
    }
    let links = chain(&e);
    let tls = links
        .iter()
        .any(|l| l.downcast_ref::<rustls::Error>().is_some())
        || links.iter().any(|l| {
            let s = l.to_string().to_ascii_lowercase();
            s.contains("certificate") || s.contains("tls handshake")
        });
    if tls {
        return OffsiteError::Tls {
            where_,
            detail: text,
        };
    }
    for link in &links {
        if let Some(http) = link.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind;
            match http.kind() {
                HttpErrorKind::Connect => {
                    return OffsiteError::Connect {
                        where_,
                        detail: text,
                    }
                }
                HttpErrorKind::Timeout => {
                    return OffsiteError::Timeout {
                        where_,
                        detail: text,
                    }
                }
                _ => {}
            }
        }
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("timed out") {
        OffsiteError::Timeout {
            where_,
            detail: text,
        }
    } else if lower.contains("connection refused") || lower.contains("error sending request") {
        OffsiteError::Connect {
            where_,
            detail: text,
        }
    } else if lower.contains("signaturedoesnotmatch")
        || lower.contains("status 401")
        || lower.contains("status 403")
        || lower.contains("invalidaccesskeyid")
        || lower.contains("accessdenied")
    {
        OffsiteError::Auth {
            where_,
            detail: text,
        }
    } else {
        OffsiteError::Remote {
            where_,
            detail: text,
        }
    }
}

/// The endpoint the client is given: for virtual-hosted style with a custom endpoint,
/// `scheme://<bucket>.host…` (object_store expects the bucket in it).
fn client_endpoint(cfg: &OffsiteConfig) -> Option<String> {
    let endpoint = cfg.endpoint.as_ref()?.trim_end_matches('/').to_string();
    if cfg.path_style {
        return Some(endpoint);
    }
    let (scheme, host) = endpoint.split_once("://")?;
    Some(format!("{scheme}://{}.{host}", cfg.bucket))
}

/// The HTTP client options of `cfg` (timeouts, TLS verification, CA file, plain HTTP).
fn client_options(cfg: &OffsiteConfig) -> Result<ClientOptions, OffsiteError> {
    let mut client = ClientOptions::new()
        .with_connect_timeout(cfg.connect_timeout)
        .with_timeout(cfg.request_timeout)
        .with_allow_invalid_certificates(!cfg.tls_verify);
    if let Some(ca) = &cfg.ca_file {
        let pem = fs::read(ca).map_err(|e| {
            OffsiteError::BadConfig(format!(
                "ca_file {}: {}",
                shown(ca),
                one_line(&e.to_string())
            ))
        })?;
        let cert = object_store::Certificate::from_pem(&pem).map_err(|e| {
            OffsiteError::BadConfig(format!(
                "ca_file {}: not a PEM certificate: {}",
                shown(ca),
                one_line(&e.to_string())
            ))
        })?;
        client = client.with_root_certificate(cert);
    }
    if cfg
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
    {
        client = client.with_allow_http(true);
    }
    Ok(client)
}

/// The client for `cfg`.
fn store(cfg: &OffsiteConfig) -> Result<AmazonS3, OffsiteError> {
    cfg.validate()?;
    let client = client_options(cfg)?;
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: cfg.max_retries,
        retry_timeout: cfg.request_timeout * 2,
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&cfg.bucket)
        .with_region(&cfg.region)
        .with_access_key_id(&cfg.access_key)
        .with_secret_access_key(cfg.secret_key.expose())
        .with_virtual_hosted_style_request(!cfg.path_style)
        .with_client_options(client)
        .with_retry(retry)
        .with_checksum_algorithm(Checksum::SHA256);
    if let Some(endpoint) = client_endpoint(cfg) {
        builder = builder.with_endpoint(endpoint);
    }
    builder
        .build()
        .map_err(|e| OffsiteError::BadConfig(scrub(&e.to_string(), cfg)))
}

fn runtime() -> Result<tokio::runtime::Runtime, OffsiteError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OffsiteError::Io {
            path: PathBuf::from("(runtime)"),
            detail: format!("cannot start the network runtime: {e}"),
        })
}

/// `fut`, unless `cancel` is set first (checked every [`CANCEL_POLL`]).
async fn cancellable<F: Future>(cancel: &CancelFlag, fut: F) -> Result<F::Output, OffsiteError> {
    let watch = async {
        loop {
            if cancel.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(CANCEL_POLL).await;
        }
    };
    let fut = std::pin::pin!(fut);
    let watch = std::pin::pin!(watch);
    match futures_util::future::select(fut, watch).await {
        futures_util::future::Either::Left((out, _)) => Ok(out),
        futures_util::future::Either::Right(_) => Err(OffsiteError::Cancelled),
    }
}

fn object_path(cfg: &OffsiteConfig, name: &str) -> Result<ObjectPath, OffsiteError> {
    ObjectPath::parse(cfg.key(name))
        .map_err(|e| OffsiteError::BadConfig(format!("object key: {}", one_line(&e.to_string()))))
}

// ---------------------------------------------------------------------------------------------
// Upload

/// What [`upload`] stored, or found already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Object name under the prefix: the export name, `.age` appended when encrypted.
    pub name: String,
    /// Full object key.
    pub key: String,
    /// Object size in bytes (what the server holds).
    pub size: u64,
    /// SHA-256 of the object's bytes as stored (the age ciphertext when encrypted), lowercase
    /// hex; also stored as metadata ([`META_STORED_SHA256`]).
    pub stored_sha256: String,
    /// The export's size.
    pub source_size: u64,
    /// The export's SHA-256, lowercase hex (also stored as metadata).
    pub source_sha256: String,
    /// Encrypted with age.
    pub encrypted: bool,
    /// Parts of the multipart upload; 0 for a single PUT or a reused object.
    pub parts: usize,
    /// The object already held this export (see [`upload`]): nothing was sent.
    pub reused: bool,
}

/// A remote object as HEAD shows it: size, ETag and user metadata (keys in lowercase).
#[derive(Debug, Clone)]
struct ObjectInfo {
    size: u64,
    e_tag: Option<String>,
    metadata: Vec<(String, String)>,
}

impl ObjectInfo {
    fn from_head(got: &object_store::GetResult) -> Self {
        let metadata = got
            .attributes
            .iter()
            .filter_map(|(key, value)| match key {
                Attribute::Metadata(name) => {
                    Some((name.to_ascii_lowercase(), value.as_ref().to_string()))
                }
                _ => None,
            })
            .collect();
        ObjectInfo {
            size: got.meta.size,
            e_tag: got.meta.e_tag.clone(),
            metadata,
        }
    }

    /// The metadata value of `key`.
    fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// HEAD of the object `name` under the prefix; `None` when there is none.
async fn head_object(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    name: &str,
    cancel: &CancelFlag,
) -> Result<Option<ObjectInfo>, OffsiteError> {
    let path = object_path(cfg, name)?;
    let opts = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    match cancellable(cancel, store.get_opts(&path, opts)).await? {
        Ok(got) => Ok(Some(ObjectInfo::from_head(&got))),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(remote_error(e, cfg)),
    }
}

/// Uploads the export at `local` as `export_name` (`<export name>.age` when `cfg.recipient` is
/// set: encrypted on the way, the bucket never sees plaintext), unless that object already holds
/// it; records the stored bytes' SHA-256 and size; checks the object (HEAD). See the module
/// documentation, Integrity.
///
/// First a HEAD of the target key: when the object exists and its metadata records this export
/// (the SHA-256 and size of the file, hashed through `control` as for an upload), a stored size
/// equal to the object's size, a stored SHA-256, and the configured recipient (none for a plain
/// object), nothing is sent: the answer is the object with `reused: true`.
///
/// Otherwise the file is read twice through `control` (cancel flag, io limit): once to hash it,
/// once to send it, streaming: at most one part (`cfg.part_size`) is in memory. An object up to
/// `part_size` (after encryption) goes up as one PUT, a larger one as a multipart upload of
/// `part_size` parts whose stored-bytes metadata is recorded afterwards by a server-side copy
/// onto itself ([`restamp`]). Each request carries its SHA-256 (`x-amz-checksum-sha256`). On any
/// failure or cancellation no object of that name is left (multipart uploads are aborted, an
/// object whose metadata could not be recorded is deleted); an existing object of the same name
/// is replaced only by a complete upload.
pub fn upload(
    cfg: &OffsiteConfig,
    local: &FsPath,
    export_name: &str,
    control: &mut ReadControl,
) -> Result<Uploaded, OffsiteError> {
    cfg.validate()?;
    if !is_export_name(export_name) {
        return Err(OffsiteError::BadName(export_name.to_string()));
    }
    let store = store(cfg)?;
    let cancel = control.cancel_flag();
    let name = match cfg.recipient {
        Some(_) => format!("{export_name}{AGE_SUFFIX}"),
        None => export_name.to_string(),
    };
    let rt = runtime()?;
    let existing = rt.block_on(head_object(cfg, &store, &name, &cancel))?;
    let hashed = crate::reading::hash_file(local, control).map_err(|e| match e.reason() {
        "cancelled" => OffsiteError::Cancelled,
        _ => OffsiteError::Io {
            path: local.to_path_buf(),
            detail: e.to_string(),
        },
    })?;
    if let Some(reused) = existing.and_then(|found| reusable(cfg, &name, &found, &hashed)) {
        return Ok(reused);
    }
    let sent = rt.block_on(send_object(cfg, &store, &name, local, &hashed, control))?;
    rt.block_on(seal(cfg, &store, &name, &hashed, &sent, &cancel))
}

/// The upload `found` stands for when it already holds the export `hashed` (see [`upload`]).
fn reusable(
    cfg: &OffsiteConfig,
    name: &str,
    found: &ObjectInfo,
    hashed: &crate::reading::Hashed,
) -> Option<Uploaded> {
    let same = found.meta(META_SHA256) == Some(hashed.sha256.as_str())
        && found.meta(META_SIZE) == Some(hashed.size.to_string().as_str())
        && found.meta(META_STORED_SIZE) == Some(found.size.to_string().as_str())
        && found.meta(META_RECIPIENT) == cfg.recipient.as_deref();
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
fn object_metadata(
    cfg: &OffsiteConfig,
    hashed: &crate::reading::Hashed,
    stored: Option<(&str, u64)>,
) -> Vec<(&'static str, String)> {
    let mut meta = vec![
        (META_SHA256, hashed.sha256.clone()),
        (META_SIZE, hashed.size.to_string()),
    ];
    if let Some(recipient) = &cfg.recipient {
        meta.push((META_RECIPIENT, recipient.clone()));
    }
    if let Some((sha256, size)) = stored {
        meta.push((META_STORED_SHA256, sha256.to_string()));
        meta.push((META_STORED_SIZE, size.to_string()));
    }
    meta
}

fn content_type(cfg: &OffsiteConfig) -> &'static str {
    match cfg.recipient {
        Some(_) => "application/octet-stream",
        None => "application/gzip",
    }
}

fn attributes(cfg: &OffsiteConfig, meta: Vec<(&'static str, String)>) -> Attributes {
    let mut attributes = Attributes::new();
    for (key, value) in meta {
        attributes.insert(Attribute::Metadata(key.into()), value.into());
    }
    attributes.insert(Attribute::ContentType, content_type(cfg).into());
    attributes
}

/// The upload buffer the (possibly encrypting) writer fills.
#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<u8>>>);

impl Sink {
    fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// The first `n` bytes (fewer when there are fewer), removed.
    fn take(&self, n: usize) -> Vec<u8> {
        let mut buffer = self.0.borrow_mut();
        let at = n.min(buffer.len());
        let rest = buffer.split_off(at);
        std::mem::replace(&mut *buffer, rest)
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Encoder {
    Plain(Sink),
    Age(age::stream::StreamWriter<Sink>),
}

impl Encoder {
    fn new(cfg: &OffsiteConfig, sink: &Sink, local: &FsPath) -> Result<Self, OffsiteError> {
        let Some(r) = &cfg.recipient else {
            return Ok(Encoder::Plain(sink.clone()));
        };
        let recipient = age::x25519::Recipient::from_str(r).map_err(|_| {
            OffsiteError::BadConfig("recipient is not an age X25519 recipient".into())
        })?;
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .map_err(|e| OffsiteError::BadConfig(format!("recipient: {e}")))?;
        let writer = encryptor
            .wrap_output(sink.clone())
            .map_err(|e| OffsiteError::io(local, &e))?;
        Ok(Encoder::Age(writer))
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(s) => s.write_all(data),
            Encoder::Age(w) => w.write_all(data),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            Encoder::Plain(_) => Ok(()),
            Encoder::Age(w) => w.finish().map(|_| ()),
        }
    }
}

/// What [`send_object`] sent.
struct Sent {
    size: u64,
    parts: usize,
    stored_sha256: String,
    e_tag: Option<String>,
}

/// The requests of one upload: a single PUT of the whole object, or a multipart upload that the
/// first full part starts. Hashes the stored bytes as they go out.
struct Sender<'a> {
    cfg: &'a OffsiteConfig,
    store: &'a AmazonS3,
    path: ObjectPath,
    hashed: &'a crate::reading::Hashed,
    cancel: CancelFlag,
    upload: Option<Box<dyn MultipartUpload>>,
    /// The hash of the encrypted bytes; `None` for a plain object, whose stored bytes are the
    /// export (its SHA-256 is `hashed`, checked before the PUT or the completion).
    stored: Option<Sha256>,
    size: u64,
    parts: usize,
}

impl Sender<'_> {
    /// Sends `part` as the next part of the multipart upload (created before the first).
    async fn part(&mut self, part: Vec<u8>) -> Result<(), OffsiteError> {
        self.hash_stored(&part);
        self.size += part.len() as u64;
        self.send_part(part).await
    }

    async fn send_part(&mut self, part: Vec<u8>) -> Result<(), OffsiteError> {
        if self.upload.is_none() {
            let opts = PutMultipartOptions {
                attributes: attributes(self.cfg, object_metadata(self.cfg, self.hashed, None)),
                ..PutMultipartOptions::default()
            };
            let created = cancellable(
                &self.cancel,
                self.store.put_multipart_opts(&self.path, opts),
            );
            self.upload = Some(created.await?.map_err(|e| remote_error(e, self.cfg))?);
        }
        if let Some(up) = self.upload.as_mut() {
            let sending = up.put_part(PutPayload::from(part));
            cancellable(&self.cancel, sending)
                .await?
                .map_err(|e| remote_error(e, self.cfg))?;
            self.parts += 1;
        }
        Ok(())
    }

    /// Ends the upload with `rest` (at most one part): the last part and the completion of a
    /// multipart upload, or the single PUT of the whole object with all its metadata.
    async fn finish(&mut self, rest: Vec<u8>) -> Result<Sent, OffsiteError> {
        self.hash_stored(&rest);
        let mut e_tag = None;
        if self.upload.is_none() {
            self.size += rest.len() as u64;
            let stored = self.stored_sha256();
            let meta = object_metadata(self.cfg, self.hashed, Some((&stored, self.size)));
            let opts = PutOptions {
                attributes: attributes(self.cfg, meta),
                ..PutOptions::default()
            };
            let put = self
                .store
                .put_opts(&self.path, PutPayload::from(rest), opts);
            let done = cancellable(&self.cancel, put).await?;
            e_tag = done.map_err(|e| remote_error(e, self.cfg))?.e_tag;
        } else if !rest.is_empty() {
            self.size += rest.len() as u64;
            self.send_part(rest).await?;
        }
        if let Some(up) = self.upload.as_mut() {
            let done = cancellable(&self.cancel, up.complete()).await?;
            e_tag = done.map_err(|e| remote_error(e, self.cfg))?.e_tag;
        }
        Ok(Sent {
            size: self.size,
            parts: self.parts,
            stored_sha256: self.stored_sha256(),
            e_tag,
        })
    }

    fn hash_stored(&mut self, bytes: &[u8]) {
        if let Some(hasher) = self.stored.as_mut() {
            hasher.update(bytes);
        }
    }

    fn stored_sha256(&self) -> String {
        match &self.stored {
            Some(hasher) => hex(&hasher.clone().finalize()),
            None => self.hashed.sha256.clone(),
        }
    }

    /// Aborts a multipart upload, best effort: an unreachable server keeps an incomplete
    /// upload, never an object.
    async fn abort(&mut self) {
        if let Some(mut up) = self.upload.take() {
            let _ = tokio::time::timeout(self.cfg.request_timeout, up.abort()).await;
        }
    }
}

/// Streams the file at `local` through the encoder into the object `name` (see [`upload`]).
async fn send_object(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    name: &str,
    local: &FsPath,
    hashed: &crate::reading::Hashed,
    control: &mut ReadControl,
) -> Result<Sent, OffsiteError> {
    let cancel = control.cancel_flag();
    let sink = Sink::default();
    let mut encoder = Encoder::new(cfg, &sink, local)?;
    let mut sender = Sender {
        cfg,
        store,
        path: object_path(cfg, name)?,
        hashed,
        cancel: cancel.clone(),
        upload: None,
        stored: cfg.recipient.as_ref().map(|_| Sha256::new()),
        size: 0,
        parts: 0,
    };
    let file = File::open(local).map_err(|e| OffsiteError::io(local, &e))?;
    let result = async {
        let mut source = Sha256::new();
        let mut source_size = 0u64;
        let mut buf = vec![0u8; READ_CHUNK];
        let mut reader = control.reader(file);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) if cancel.load(Ordering::Relaxed) => return Err(OffsiteError::Cancelled),
                Err(e) => return Err(OffsiteError::io(local, &e)),
            };
            source.update(&buf[..n]);
            source_size += n as u64;
            encoder
                .write_all(&buf[..n])
                .map_err(|e| OffsiteError::io(local, &e))?;
            while sink.len() > cfg.part_size {
                sender.part(sink.take(cfg.part_size)).await?;
            }
        }
        encoder.finish().map_err(|e| OffsiteError::io(local, &e))?;
        while sink.len() > cfg.part_size {
            sender.part(sink.take(cfg.part_size)).await?;
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(OffsiteError::Cancelled);
        }
        // Checked before the single PUT or the completion: a changed file stores nothing.
        if source_size != hashed.size || hex(&source.finalize()) != hashed.sha256 {
            return Err(changed(local));
        }
        sender.finish(sink.take(cfg.part_size)).await
    }
    .await;
    if result.is_err() {
        sender.abort().await;
    }
    result
}

/// Records the stored bytes' SHA-256 and size on a multipart upload ([`restamp`]), then checks
/// what the server holds (HEAD: size and metadata). A failure deletes the object.
async fn seal(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    name: &str,
    hashed: &crate::reading::Hashed,
    sent: &Sent,
    cancel: &CancelFlag,
) -> Result<Uploaded, OffsiteError> {
    let path = object_path(cfg, name)?;
    let delete = || async {
        let _ = tokio::time::timeout(cfg.request_timeout, store.delete(&path)).await;
    };
    let meta = object_metadata(cfg, hashed, Some((&sent.stored_sha256, sent.size)));
    if sent.parts > 0 {
        let mut headers = vec![("content-type".to_string(), content_type(cfg).to_string())];
        headers.extend(
            meta.iter()
                .map(|(k, v)| (format!("x-amz-meta-{k}"), v.clone())),
        );
        let job = restamp::Restamp {
            name,
            size: sent.size,
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
        Some(f) if f.size != sent.size => Some(format!(
            "the server holds {} bytes for {}, {} were sent",
            f.size,
            cfg.key(name),
            sent.size
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
        size: sent.size,
        stored_sha256: sent.stored_sha256.clone(),
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
        format!("recording the stored SHA-256 of {key} (a server-side copy onto itself) failed, so the upload was deleted: {detail}")
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

fn changed(local: &FsPath) -> OffsiteError {
    OffsiteError::Integrity(format!(
        "{} changed while it was uploaded; nothing was stored: upload it again",
        shown(local)
    ))
}

// ---------------------------------------------------------------------------------------------
// List and prune

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

/// The export name of an object name under the prefix, and whether it is encrypted; `None`
/// for anything that is not a backup.
pub fn remote_export_name(name: &str) -> Option<(&str, bool)> {
    if is_export_name(name) {
        return Some((name, false));
    }
    let base = name.strip_suffix(AGE_SUFFIX)?;
    is_export_name(base).then_some((base, true))
}

/// The off-site backups directly under the prefix, newest first (by the time in the export
/// name; an export stored both plain and encrypted lists both, encrypted first). Other keys are
/// not listed.
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

// ---------------------------------------------------------------------------------------------
// Fetch

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
///    bytes (before decrypting) against the metadata the upload recorded; any changed, cut or
///    added byte is `integrity`, wherever it is (age header, body, last chunk).
/// 2. `age`: decryption with the identities in `identity_file` authenticates the header and
///    every 64 KiB chunk: an altered object is `integrity`; no matching identity is `decrypt`.
/// 3. `export_sha256`: the export's size and SHA-256 against the recorded ones (`integrity`).
/// 4. `verify`: the export verifies ([`crate::verify`]) like any local backup (`verify`).
///
/// An object without the metadata of 1 and 3 (uploaded by hand, or by a server that drops
/// metadata) is still protected by 2 and 4; [`Fetched::checked_by`] says which checks were made.
/// Work happens in a private directory `dest_dir/.emqx_guard_fetch-…` that is removed whatever
/// happens: on any error nothing is left in `dest_dir`. An existing file of that name is never
/// replaced (`exists`). Downloads go in `part_size` ranged requests (each bounded by the request
/// timeout), all pinned to the object's ETag.
pub fn fetch(
    cfg: &OffsiteConfig,
    name: &str,
    identity_file: Option<&FsPath>,
    dest_dir: &FsPath,
    control: &mut ReadControl,
) -> Result<Fetched, OffsiteError> {
    cfg.validate()?;
    if remote_export_name(name).is_none() {
        return Err(OffsiteError::BadName(name.to_string()));
    }
    check_dest_dir(dest_dir)?;
    let identities = identity_file.map(load_identities).transpose()?;
    let store = store(cfg)?;
    let cancel = control.cancel_flag();
    let rt = runtime()?;
    let (object_name, found) = rt.block_on(find_object(cfg, &store, name, &cancel))?;
    let (export_name, encrypted) = remote_export_name(&object_name)
        .map(|(e, enc)| (e.to_string(), enc))
        .ok_or_else(|| OffsiteError::BadName(object_name.clone()))?;
    if encrypted && identities.is_none() {
        return Err(OffsiteError::Decrypt(format!(
            "{object_name} is encrypted: give the age identity file of its recipient (identity=<path>)"
        )));
    }
    let final_path = dest_dir.join(&export_name);
    if fs::symlink_metadata(&final_path).is_ok() {
        return Err(OffsiteError::Exists(final_path));
    }
    let work = WorkDir::create(dest_dir)?;
    let key = cfg.key(&object_name);
    let mut checked_by = Vec::new();

    // 1. The object's bytes, checked against what the upload stored before anything reads them.
    check_stored(&key, &found, None)?;
    let download = work.0.join("object.download");
    let fetching = download_object(cfg, &store, &object_name, &found, &download, &cancel);
    let stored_sha256 = rt.block_on(fetching)?;
    drop(rt);
    if check_stored(&key, &found, Some(&stored_sha256))? {
        checked_by.push(Check::StoredSha256);
    }
    // 2. The export: decrypted (age authenticates it), or the download itself.
    let export_path = work.0.join(&export_name);
    match identities.filter(|_| encrypted) {
        Some(ids) => {
            decrypt_file(&download, &export_path, &ids, &key, control)?;
            let _ = fs::remove_file(&download);
            checked_by.push(Check::Age);
        }
        None => {
            fs::rename(&download, &export_path).map_err(|e| OffsiteError::io(&export_path, &e))?
        }
    }
    fs::set_permissions(&export_path, fs::Permissions::from_mode(0o600))
        .map_err(|e| OffsiteError::io(&export_path, &e))?;
    // 3 and 4. The export against its recorded checksum, and verified.
    let (size, verified) = check_export(&key, &found, &export_path, control, &mut checked_by)?;
    if control.is_cancelled() {
        return Err(OffsiteError::Cancelled);
    }
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
    })
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
/// [`Check::Verify`] of the export at `path`: its size and what [`verify`] found.
fn check_export(
    key: &str,
    found: &ObjectInfo,
    path: &FsPath,
    control: &mut ReadControl,
    checked_by: &mut Vec<Check>,
) -> Result<(u64, Verified), OffsiteError> {
    let refused = |detail: String| OffsiteError::Refused {
        check: Check::ExportSha256,
        detail,
    };
    let size = fs::metadata(path)
        .map_err(|e| OffsiteError::io(path, &e))?
        .len();
    if let Some(want) = found.meta(META_SIZE).filter(|w| *w != size.to_string()) {
        return Err(refused(format!(
            "the export in {key} has {size} bytes, the upload recorded {want}: the object was altered"
        )));
    }
    let verified = verify_controlled(path, control).map_err(|e| {
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
    Ok((size, verified))
}

type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

fn load_identities(path: &FsPath) -> Result<Identities, OffsiteError> {
    let bad = |detail: String| OffsiteError::Identity {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path).map_err(|e| bad(one_line(&e.to_string())))?;
    // The parser's own errors may quote a line of the file: never show them.
    let parsed = age::IdentityFile::from_buffer(BufReader::new(file)).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            bad("the file does not hold age identities (AGE-SECRET-KEY-1… lines as written by age-keygen)".into())
        } else {
            bad(format!("cannot read it ({})", e.kind()))
        }
    })?;
    let identities = parsed.into_identities().map_err(|_| {
        bad("the identities in it cannot be used (passphrase-protected or plugin identities are not supported)".into())
    })?;
    if identities.is_empty() {
        return Err(bad("the file holds no identity".into()));
    }
    Ok(identities)
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
    let encrypted = format!("{name}{AGE_SUFFIX}");
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

/// Downloads the object `name` into the file `to` in ranged requests pinned to its ETag;
/// returns the SHA-256 of the bytes, lowercase hex.
async fn download_object(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    name: &str,
    found: &ObjectInfo,
    to: &FsPath,
    cancel: &CancelFlag,
) -> Result<String, OffsiteError> {
    let path = object_path(cfg, name)?;
    let size = found.size;
    let mut out = File::create(to).map_err(|e| OffsiteError::io(to, &e))?;
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    while offset < size {
        let end = (offset + cfg.part_size as u64).min(size);
        let opts = GetOptions {
            range: Some(GetRange::Bounded(offset..end)),
            if_match: found.e_tag.clone(),
            ..GetOptions::default()
        };
        let part = cancellable(cancel, async {
            match store.get_opts(&path, opts).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            }
        })
        .await?
        .map_err(|e| match e {
            object_store::Error::Precondition { .. } => OffsiteError::Integrity(format!(
                "{} was replaced while it was downloaded: fetch it again",
                cfg.key(name)
            )),
            e => remote_error(e, cfg),
        })?;
        if part.len() as u64 != end - offset {
            return Err(OffsiteError::Integrity(format!(
                "{}: asked for bytes {offset}..{end}, got {}",
                cfg.key(name),
                part.len()
            )));
        }
        hasher.update(&part);
        out.write_all(&part).map_err(|e| OffsiteError::io(to, &e))?;
        offset = end;
    }
    out.sync_all().map_err(|e| OffsiteError::io(to, &e))?;
    Ok(hex(&hasher.finalize()))
}

/// Decrypts `from` into `to` ([`Check::Age`]); `key` names the object in errors.
fn decrypt_file(
    from: &FsPath,
    to: &FsPath,
    identities: &Identities,
    key: &str,
    control: &mut ReadControl,
) -> Result<(), OffsiteError> {
    let file = File::open(from).map_err(|e| OffsiteError::io(from, &e))?;
    let reader = BufReader::with_capacity(READ_CHUNK, control.reader(file));
    let decryptor = age::Decryptor::new(reader).map_err(|e| decrypt_error(&e, key))?;
    let mut plain = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| decrypt_error(&e, key))?;
    let mut out = File::create(to).map_err(|e| OffsiteError::io(to, &e))?;
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match plain.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.to_string() == "cancelled" => return Err(OffsiteError::Cancelled),
            Err(_) => {
                return Err(OffsiteError::Refused {
                    check: Check::Age,
                    detail: format!(
                        "{key} is damaged or was altered (the authentication of its encrypted data failed)"
                    ),
                })
            }
        };
        out.write_all(&buf[..n])
            .map_err(|e| OffsiteError::io(to, &e))?;
    }
    out.sync_all().map_err(|e| OffsiteError::io(to, &e))?;
    Ok(())
}

fn decrypt_error(e: &age::DecryptError, key: &str) -> OffsiteError {
    let refused = |detail: String| OffsiteError::Refused {
        check: Check::Age,
        detail,
    };
    match e {
        age::DecryptError::NoMatchingKeys => OffsiteError::Decrypt(
            "no identity in the identity file matches the object's recipient: use the identity of the recipient it was uploaded with".into(),
        ),
        age::DecryptError::Io(io) if io.to_string() == "cancelled" => OffsiteError::Cancelled,
        age::DecryptError::InvalidMac
        | age::DecryptError::DecryptionFailed
        | age::DecryptError::InvalidHeader => refused(format!(
            "the age header of {key} is damaged or was altered (its authentication failed)"
        )),
        age::DecryptError::UnknownFormat => refused(format!(
            "{key} is not an age file (its header is damaged, or something else was stored under its name)"
        )),
        other => OffsiteError::Decrypt(one_line(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OffsiteConfig {
        let mut c = OffsiteConfig::new("backups", "AKID", Secret::new("s3cr3t-Key/Value+42"));
        c.endpoint = Some("http://127.0.0.1:1".into());
        c.path_style = true;
        c
    }

    #[test]
    fn defaults_validate() {
        cfg().validate().unwrap();
    }

    #[test]
    fn bad_configs_name_the_field() {
        type Change = Box<dyn Fn(&mut OffsiteConfig)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|c| c.bucket = String::new()), "bucket"),
            (Box::new(|c| c.bucket = "a/b".into()), "bucket"),
            (Box::new(|c| c.prefix = "/x".into()), "prefix"),
            (Box::new(|c| c.prefix = "x//y".into()), "prefix"),
            (Box::new(|c| c.prefix = "x/../y".into()), "prefix"),
            (Box::new(|c| c.region = String::new()), "region"),
            (
                Box::new(|c| c.endpoint = Some("ftp://x".into())),
                "endpoint",
            ),
            (Box::new(|c| c.access_key = String::new()), "access_key"),
            (Box::new(|c| c.access_key = "AKIDé".into()), "access_key"),
            (Box::new(|c| c.region = "eu-zentral-1ö".into()), "region"),
            (Box::new(|c| c.secret_key = Secret::default()), "secret_key"),
            (
                Box::new(|c| c.recipient = Some("age1nope".into())),
                "recipient",
            ),
            (Box::new(|c| c.part_size = 1024), "part_size"),
            (Box::new(|c| c.request_timeout = Duration::ZERO), "timeouts"),
        ];
        for (change, field) in cases {
            let mut c = cfg();
            change(&mut c);
            let err = c.validate().unwrap_err();
            assert_eq!(err.reason(), "bad_config");
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn the_secret_never_shows() {
        let c = cfg();
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let e = remote_error(
            object_store::Error::Generic {
                store: "S3",
                source: "signature for s3cr3t-Key/Value+42 mismatch".into(),
            },
            &c,
        );
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn keys_and_names() {
        let mut c = cfg();
        assert_eq!(c.key("n"), "n");
        c.prefix = "emqx/prod".into();
        assert_eq!(c.key("n"), "emqx/prod/n");
        let e = "emqx-export-2026-11-27-18-58-45.951.tar.gz";
        assert_eq!(remote_export_name(e), Some((e, false)));
        assert_eq!(remote_export_name(&format!("{e}.age")), Some((e, true)));
        assert_eq!(remote_export_name(&format!("{e}.age.age")), None);
        assert_eq!(remote_export_name("notes.txt"), None);
    }

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        let mut c = cfg();
        assert_eq!(client_endpoint(&c).as_deref(), Some("http://127.0.0.1:1"));
        c.path_style = false;
        c.endpoint = Some("https://s3.example.net/".into());
        assert_eq!(
            client_endpoint(&c).as_deref(),
            Some("https://backups.s3.example.net")
        );
        c.endpoint = None;
        assert_eq!(client_endpoint(&c), None);
    }

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
