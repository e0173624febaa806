//! Why an off-site operation failed ([`OffsiteError`]), and how the errors of the S3 client
//! are classified into it ([`remote_error`]) with the secret key scrubbed from their text.

use std::io;
use std::path::{Path as FsPath, PathBuf};

use super::{Check, OffsiteConfig};

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

    pub(super) fn io(path: &FsPath, e: &io::Error) -> Self {
        OffsiteError::Io {
            path: path.to_path_buf(),
            detail: one_line(&e.to_string()),
        }
    }
}

pub(super) fn shown(path: &FsPath) -> String {
    path.to_string_lossy().escape_default().to_string()
}

pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` on one line with every occurrence of the secret replaced.
pub(super) fn scrub(text: &str, cfg: &OffsiteConfig) -> String {
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
pub(super) fn chain<'e>(
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
pub(super) fn remote_error(e: object_store::Error, cfg: &OffsiteConfig) -> OffsiteError {
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

#[cfg(test)]
mod tests {
    use super::super::config::unreachable_test_config as cfg;
    use super::*;

    #[test]
    fn the_secret_never_shows_in_remote_errors() {
        let c = cfg();
        let e = remote_error(
            object_store::Error::Generic {
                store: "S3",
                source: "signature for s3cr3t-Key/Value+42 mismatch".into(),
            },
            &c,
        );
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}
