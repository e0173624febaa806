//! One export up to the bucket ([`upload`]): a HEAD first (an object that already holds the
//! export is kept), the file hashed, then streamed through the age encryptor into a single PUT
//! or a multipart upload, the stored bytes' metadata recorded ([`super::restamp`]), and the
//! object checked with HEAD.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path as FsPath;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::Ordering;

use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, MultipartUpload, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload,
};
use sha2::{Digest, Sha256};

use super::client::{cancellable, head_object, object_path, runtime, store, ObjectInfo};
use super::error::{remote_error, shown};
use super::{
    object_name, restamp, OffsiteConfig, OffsiteError, META_RECIPIENT, META_SHA256, META_SIZE,
    META_STORED_SHA256, META_STORED_SIZE,
};
use crate::reading::{hex, CancelFlag, Hashed, ReadControl, READ_CHUNK};
use crate::retention::is_export_name;

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
///
/// ```
/// use guard_core::offsite::{upload, OffsiteConfig, Secret};
/// use guard_core::reading::ReadControl;
///
/// # let fixture = concat!(env!("CARGO_MANIFEST_DIR"),
/// #     "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// let mut cfg = OffsiteConfig::new("backups", "AKIDEXAMPLE", Secret::new("s3cr3t"));
/// cfg.endpoint = Some("http://127.0.0.1:1".into()); // nothing listens here
/// cfg.path_style = true;
/// cfg.max_retries = 0;
/// let name = "emqx-export-2026-11-27-18-58-45.951.tar.gz";
/// match upload(&cfg, fixture.as_ref(), name, &mut ReadControl::unlimited()) {
///     Ok(uploaded) => assert_eq!(uploaded.key, name),
///     Err(e) => assert_eq!(e.reason(), "connect"),
/// }
/// // Only exports (and their plugins companions) go up, under their own name:
/// let other = upload(&cfg, fixture.as_ref(), "notes.txt", &mut ReadControl::unlimited());
/// assert_eq!(other.unwrap_err().reason(), "bad_name");
/// ```
pub fn upload(
    cfg: &OffsiteConfig,
    local: &FsPath,
    export_name: &str,
    control: &mut ReadControl,
) -> Result<Uploaded, OffsiteError> {
    cfg.validate()?;
    // an export, or the plugins companion beside one (uploaded and encrypted the same way)
    if !is_export_name(export_name) && super::companion_export(export_name).is_none() {
        return Err(OffsiteError::BadName(export_name.to_string()));
    }
    let store = store(cfg)?;
    let cancel = control.cancel_flag();
    let name = object_name(export_name, cfg.recipient.is_some());
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
    hashed: &Hashed,
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
    hashed: &Hashed,
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
    hashed: &'a Hashed,
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
    hashed: &Hashed,
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
    hashed: &Hashed,
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
