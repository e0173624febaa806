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
//! - [`fetch`] checks what it downloaded against the stored bytes' metadata before anything it
//!   decrypted counts (decryption runs alongside the download; nothing it produced counts before
//!   the stored SHA-256 matched), then lets age's authentication of every 64 KiB count, compares
//!   the export with its metadata and verifies it ([`crate::verify`]) like any local backup; an
//!   object without the metadata (uploaded by another tool, or kept by a server that drops
//!   metadata) still gets the last checks. The result names the checks made, an error the check
//!   that refused ([`Check`]).
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
//!
//! # Where things are
//! - `config`: the destination and its checks ([`OffsiteConfig::validate`]), the secret key
//!   ([`Secret`]);
//! - `client`: the S3 client made from a configuration, the network runtime, cancellation, HEAD;
//! - [`upload`]: one export up (HEAD first, streamed parts, the stored bytes' metadata, the check);
//! - `restamp`: the stored bytes' metadata of a multipart upload, by a copy onto itself;
//! - [`list`] and [`prune`]: the backups under the prefix and remote retention;
//! - [`fetch`]: one backup down, its checks, into place; `decrypt`: age's side of it;
//! - [`OffsiteError`]: every failure, classified, one line, the secret scrubbed.

mod client;
mod config;
mod decrypt;
mod download;
mod error;
mod fetch;
mod list;
mod parts;
mod restamp;
mod seal;
mod signed;
mod upload;

pub use config::{
    OffsiteConfig, Secret, DEFAULT_CONCURRENCY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RETRIES,
    DEFAULT_PART_SIZE, DEFAULT_REQUEST_TIMEOUT, MAX_CONCURRENCY, MAX_PART_SIZE, MIN_PART_SIZE,
};
pub use error::OffsiteError;
pub use fetch::{fetch, Check, FetchTimings, Fetched};
pub use list::{list, prune, RemoteBackup, RemotePruneReport};
pub use restamp::COPY_OBJECT_LIMIT;
pub use upload::{upload, Uploaded};

use crate::retention::is_export_name;

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

/// The name of the object that holds the export `export_name`: the export name itself, or with
/// [`AGE_SUFFIX`] when it is encrypted.
///
/// ```
/// use guard_core::offsite::{object_name, remote_export_name};
///
/// let export = "emqx-export-2026-11-27-18-58-45.951.tar.gz";
/// assert_eq!(object_name(export, true), "emqx-export-2026-11-27-18-58-45.951.tar.gz.age");
/// // and back: the export an object holds, and whether it is encrypted
/// assert_eq!(remote_export_name(&object_name(export, true)), Some((export, true)));
/// assert_eq!(remote_export_name(&object_name(export, false)), Some((export, false)));
/// ```
pub fn object_name(export_name: &str, encrypted: bool) -> String {
    if encrypted {
        format!("{export_name}{AGE_SUFFIX}")
    } else {
        export_name.to_string()
    }
}

/// The export name of an object name under the prefix, and whether it is encrypted; `None`
/// for anything that is not a backup.
///
/// ```
/// use guard_core::offsite::remote_export_name;
///
/// let export = "emqx-export-2026-11-27-18-58-45.951.tar.gz";
/// assert_eq!(remote_export_name(&format!("{export}.age")), Some((export, true)));
/// assert_eq!(remote_export_name(&format!("{export}.age.age")), None);
/// assert_eq!(remote_export_name("notes.txt"), None);
/// ```
pub fn remote_export_name(name: &str) -> Option<(&str, bool)> {
    if is_export_name(name) {
        return Some((name, false));
    }
    let base = name.strip_suffix(AGE_SUFFIX)?;
    is_export_name(base).then_some((base, true))
}

/// Suffix of a backup's plugins companion, the file emqx_guard saves beside each export
/// (`emqx-export-….plugins.tgz` beside `emqx-export-….tar.gz`): no export name, so no listing,
/// count or retention decision ever takes it for a backup.
pub const COMPANION_SUFFIX: &str = ".plugins.tgz";

/// The name of the plugins companion of the export `export_name`, or `None` when it is no export.
///
/// ```
/// use guard_core::offsite::{companion_export, companion_name};
///
/// let export = "emqx-export-2026-11-27-18-58-45.951.tar.gz";
/// let companion = "emqx-export-2026-11-27-18-58-45.951.plugins.tgz";
/// assert_eq!(companion_name(export).as_deref(), Some(companion));
/// assert_eq!(companion_export(companion).as_deref(), Some(export));
/// assert_eq!(companion_name("notes.txt"), None);
/// assert_eq!(companion_export("notes.plugins.tgz"), None);
/// ```
pub fn companion_name(export_name: &str) -> Option<String> {
    let base = export_name.strip_suffix(".tar.gz")?;
    is_export_name(export_name).then(|| format!("{base}{COMPANION_SUFFIX}"))
}

/// The export whose plugins companion `name` is, when it is one.
pub fn companion_export(name: &str) -> Option<String> {
    let export = format!("{}.tar.gz", name.strip_suffix(COMPANION_SUFFIX)?);
    is_export_name(&export).then_some(export)
}

/// What an object name under the prefix holds, for a fetch: an export or a plugins companion
/// (its local name), whether it is encrypted, and whether it is a companion; `None` for anything
/// else.
///
/// ```
/// use guard_core::offsite::fetchable_name;
///
/// let c = "emqx-export-2026-11-27-18-58-45.951.plugins.tgz";
/// assert_eq!(fetchable_name(&format!("{c}.age")), Some((c, true, true)));
/// assert_eq!(fetchable_name("notes.txt"), None);
/// ```
pub fn fetchable_name(name: &str) -> Option<(&str, bool, bool)> {
    if let Some((export, encrypted)) = remote_export_name(name) {
        return Some((export, encrypted, false));
    }
    let (base, encrypted) = match name.strip_suffix(AGE_SUFFIX) {
        Some(base) => (base, true),
        None => (name, false),
    };
    companion_export(base).map(|_| (base, encrypted, true))
}

#[cfg(test)]
mod tests {
    use super::config::unreachable_test_config as cfg;
    use super::*;

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
}
