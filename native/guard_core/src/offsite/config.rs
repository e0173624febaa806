//! Where off-site copies go: [`OffsiteConfig`], its defaults and its checks, and the secret key
//! that never shows ([`Secret`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::restamp::COPY_OBJECT_LIMIT;
use super::OffsiteError;

/// Smallest part of a multipart upload S3 accepts (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// Default part size: a file up to this size is one PUT, a larger one a multipart upload.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
/// Default number of parts of an upload, or ranges of a download, in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Most parts or ranges in flight at once.
pub const MAX_CONCURRENCY: usize = 64;
/// Default bound on connecting to the server.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on one request of an upload (a request moves at most one part; with
/// `concurrency` parts sharing the link, the slowest link that works is
/// `concurrency × part_size / request_timeout`), and on a download's wait for its next bytes.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Default number of retries of a failed request (with exponential backoff) before giving up.
pub const DEFAULT_MAX_RETRIES: usize = 3;

/// A secret string (the S3 secret key): `Debug` and `Display` print `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    ///
    /// ```
    /// use guard_core::offsite::Secret;
    ///
    /// let secret = Secret::new("wJalrXUtnFEMI/K7MDENG");
    /// assert_eq!(format!("{secret:?}"), "<redacted>");
    /// assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG");
    /// ```
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
    /// Parts of an upload, or ranges of a download, in flight at once, 1 to
    /// [`MAX_CONCURRENCY`] (default [`DEFAULT_CONCURRENCY`]). A transfer holds at most
    /// `concurrency × part_size` bytes of the object in memory.
    pub concurrency: usize,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Bound on each request of an upload (and of a listing, a HEAD, a copy). A download is
    /// bounded as a whole instead ([`OffsiteConfig::fetch_deadline`]), and by this much time
    /// without a byte arriving.
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
    ///
    /// ```
    /// use guard_core::offsite::{OffsiteConfig, Secret};
    ///
    /// let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
    /// cfg.endpoint = Some("http://127.0.0.1:9000".into()); // e.g. MinIO
    /// cfg.path_style = true;
    /// assert!(cfg.validate().is_ok());
    /// assert!(!format!("{cfg:?}").contains("s3cr3t"));
    /// ```
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
            concurrency: DEFAULT_CONCURRENCY,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            copy_object_limit: COPY_OBJECT_LIMIT,
        }
    }

    /// Checks every field; the first problem is `bad_config` naming the field.
    ///
    /// ```
    /// use guard_core::offsite::{OffsiteConfig, Secret, MIN_PART_SIZE};
    ///
    /// let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
    /// cfg.part_size = MIN_PART_SIZE - 1;
    /// let err = cfg.validate().unwrap_err();
    /// assert_eq!(err.reason(), "bad_config");
    /// assert!(err.to_string().contains("part_size"));
    /// ```
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
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return bad(format!(
                "concurrency {} is out of range: 1 to {MAX_CONCURRENCY} parts in flight",
                self.concurrency
            ));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return bad("timeouts must be positive".to_string());
        }
        Ok(())
    }

    /// The object key of `name` (`<prefix>/<name>`).
    ///
    /// ```
    /// use guard_core::offsite::{OffsiteConfig, Secret};
    ///
    /// let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
    /// assert_eq!(cfg.key("emqx-export-2026-11-27-18-58-45.951.tar.gz"),
    ///            "emqx-export-2026-11-27-18-58-45.951.tar.gz");
    /// cfg.prefix = "emqx/prod".into();
    /// assert_eq!(cfg.key("emqx-export-2026-11-27-18-58-45.951.tar.gz"),
    ///            "emqx/prod/emqx-export-2026-11-27-18-58-45.951.tar.gz");
    /// ```
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.prefix, name)
        }
    }

    /// The overall bound on downloading an object of `size` bytes: the time its part-sized ranges
    /// take one after the other at the slowest link that works
    /// (`part_size / request_timeout`), plus one `request_timeout`, whether the server answers
    /// in ranges or with one stream of the whole object.
    ///
    /// ```
    /// use std::time::Duration;
    /// use guard_core::offsite::{OffsiteConfig, Secret, DEFAULT_PART_SIZE};
    ///
    /// let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
    /// cfg.request_timeout = Duration::from_secs(60);
    /// assert_eq!(cfg.fetch_deadline(0), Duration::from_secs(60));
    /// assert_eq!(cfg.fetch_deadline(10 * DEFAULT_PART_SIZE as u64 + 1), Duration::from_secs(12 * 60));
    /// ```
    pub fn fetch_deadline(&self, size: u64) -> Duration {
        let ranges = size.div_ceil(self.part_size.max(1) as u64);
        let ranges = u32::try_from(ranges.saturating_add(1)).unwrap_or(u32::MAX);
        self.request_timeout.saturating_mul(ranges)
    }

    /// Where the server is, for error messages.
    pub(super) fn where_(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("{e} bucket {}", self.bucket),
            None => format!("AWS S3 ({}) bucket {}", self.region, self.bucket),
        }
    }
}

/// A configuration for tests: a server that is not there (`127.0.0.1:1`), path style, and a
/// secret key whose every occurrence a test can look for.
#[cfg(test)]
pub(super) fn unreachable_test_config() -> OffsiteConfig {
    let mut c = OffsiteConfig::new("backups", "AKID", Secret::new("s3cr3t-Key/Value+42"));
    c.endpoint = Some("http://127.0.0.1:1".into());
    c.path_style = true;
    c
}

#[cfg(test)]
mod tests {
    use super::unreachable_test_config as cfg;
    use super::*;

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
            (Box::new(|c| c.concurrency = 0), "concurrency"),
            (Box::new(|c| c.concurrency = 65), "concurrency"),
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
    fn the_secret_never_shows_in_debug() {
        assert!(!format!("{:?}", cfg()).contains("s3cr3t"));
    }
}
