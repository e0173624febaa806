//! One export up to the bucket ([`upload`]): a HEAD first (an object that already holds the
//! export is kept), then ONE read of the file ([`super::parts`]: hashed, encrypted, cut into
//! parts on a reading thread) while the parts go out several at a time, the metadata known
//! only at the end recorded and the object checked ([`super::seal`]).

use std::path::Path as FsPath;
use std::pin::pin;

use bytes::Bytes;

use futures_util::future::{select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStore, PutMultipartOptions, PutOptions, PutPayload};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::client::{cancellable, head_object, object_path, runtime, store};
use super::error::remote_error;
use super::parts::{produce, Part, Produced, Slots, Summary};
use super::seal::{
    attributes, creation_attributes, may_hold, object_metadata, reusable, seal, Sent,
};
use super::{object_name, OffsiteConfig, OffsiteError};
use crate::reading::{CancelFlag, ReadControl};
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
    /// hex; also stored as metadata ([`super::META_STORED_SHA256`]).
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
/// it; records the export's and the stored bytes' SHA-256 and size; checks the object (HEAD).
/// See the module documentation of [`super`], Integrity.
///
/// First a HEAD of the target key: when the object exists and its metadata records this
/// export's size, a stored size equal to the object's size, both SHA-256 and the configured
/// recipient (none for a plain object), the file is hashed through `control` and, when the
/// SHA-256 matches too, nothing is sent: the answer is the object with `reused: true`.
///
/// Otherwise the file is read ONCE through `control` (cancel flag, io limit) on a reading
/// thread that hashes it, encrypts it and cuts it into `cfg.part_size` parts, while up to
/// `cfg.concurrency` parts are sent at once: at most `concurrency × part_size` bytes of the
/// object are in memory. An object up to `part_size` (after encryption) goes up as one PUT
/// with all its metadata; a larger one as a multipart upload whose metadata (known only after
/// its last byte) is recorded afterwards by a server-side copy onto itself
/// ([`super::restamp`]). Each request carries its SHA-256 (`x-amz-checksum-sha256`). A file
/// that changed while it was read is not completed (`integrity`). On any failure or
/// cancellation no object of that name is left (multipart uploads are aborted, an object whose
/// metadata could not be recorded is deleted); an existing object of the same name is replaced
/// only by a complete upload.
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
    let size = std::fs::metadata(local)
        .map_err(|e| OffsiteError::io(local, &e))?
        .len();
    if let Some(found) = existing.filter(|found| may_hold(cfg, found, size)) {
        let hashed = crate::reading::hash_file(local, control).map_err(|e| match e.reason() {
            "cancelled" => OffsiteError::Cancelled,
            _ => OffsiteError::Io {
                path: local.to_path_buf(),
                detail: e.to_string(),
            },
        })?;
        if let Some(reused) = reusable(cfg, &name, &found, &hashed) {
            return Ok(reused);
        }
    }
    let path = object_path(cfg, &name)?;
    let slots = Slots::new(cfg.concurrency);
    let (parts, incoming) = unbounded_channel();
    let sent = std::thread::scope(|scope| {
        let reading = std::thread::Builder::new()
            .name("emqx_guard_read".into())
            .spawn_scoped(scope, || produce(cfg, local, control, &slots, parts))
            .map_err(|e| OffsiteError::Io {
                path: local.to_path_buf(),
                detail: format!("cannot start the reading thread: {e}"),
            })?;
        let sent = rt.block_on(send_parts(cfg, &store, &path, incoming, &cancel));
        slots.close();
        let _ = reading.join();
        sent
    })?;
    rt.block_on(seal(cfg, &store, &name, &sent, &cancel))
}

/// The requests of one upload: a single PUT of an object that is one part, or a multipart
/// upload created by the first part that is not the last.
struct Sender<'a> {
    cfg: &'a OffsiteConfig,
    store: &'a AmazonS3,
    path: &'a ObjectPath,
    cancel: &'a CancelFlag,
    upload: Option<Box<dyn MultipartUpload>>,
    parts: usize,
}

/// What the sending side waits for next.
enum Event {
    /// A part from the reading side, or `None`: the reading side is gone.
    Produced(Option<Produced>),
    /// A part's request ended.
    Sent(Result<(), object_store::Error>),
}

type Running = FuturesUnordered<futures_util::future::BoxFuture<'static, object_store::Result<()>>>;

/// The parts of `incoming` sent as they come, at most `cfg.concurrency` at once (the reading
/// side's slots bound them); on any failure the multipart upload is aborted.
async fn send_parts(
    cfg: &OffsiteConfig,
    store: &AmazonS3,
    path: &ObjectPath,
    mut incoming: UnboundedReceiver<Produced>,
    cancel: &CancelFlag,
) -> Result<Sent, OffsiteError> {
    let mut sender = Sender {
        cfg,
        store,
        path,
        cancel,
        upload: None,
        parts: 0,
    };
    let mut running: Running = FuturesUnordered::new();
    let result = cancellable(cancel, sender.run(&mut incoming, &mut running)).await;
    let result = result.and_then(|r| r);
    if result.is_err() {
        // The requests in flight stop here; their parts' slots come back.
        drop(running);
        incoming.close();
        sender.abort().await;
    }
    result
}

impl Sender<'_> {
    async fn run(
        &mut self,
        incoming: &mut UnboundedReceiver<Produced>,
        running: &mut Running,
    ) -> Result<Sent, OffsiteError> {
        let mut summary: Option<Summary> = None;
        loop {
            if summary.is_some() && running.is_empty() {
                break;
            }
            match next_event(incoming, running, summary.is_some()).await {
                Event::Produced(Some(Produced::Part(part))) => {
                    if part.last.is_some() && self.upload.is_none() {
                        return self.single_put(part).await;
                    }
                    summary = part.last.clone();
                    self.start_part(part, running).await?;
                }
                Event::Produced(Some(Produced::Failed(e))) => return Err(e),
                Event::Produced(None) => {
                    return Err(OffsiteError::Io {
                        path: "(upload)".into(),
                        detail: "the reading thread ended before the last part".into(),
                    })
                }
                Event::Sent(Err(e)) => return Err(remote_error(e, self.cfg)),
                Event::Sent(Ok(())) => {}
            }
        }
        let summary = summary.ok_or(OffsiteError::Cancelled)?;
        self.complete(summary).await
    }

    /// Starts the request of `part` (after creating the multipart upload for the first one).
    async fn start_part(&mut self, part: Part, running: &mut Running) -> Result<(), OffsiteError> {
        if self.upload.is_none() {
            let opts = PutMultipartOptions {
                attributes: creation_attributes(self.cfg),
                ..PutMultipartOptions::default()
            };
            let created = self.store.put_multipart_opts(self.path, opts).await;
            self.upload = Some(created.map_err(|e| remote_error(e, self.cfg))?);
        }
        if let Some(up) = self.upload.as_mut() {
            // The buffer goes back to its slot once the request (and its retries) dropped it.
            let request = up.put_part(PutPayload::from(Bytes::from_owner(part.data)));
            running.push(request);
            self.parts += 1;
        }
        Ok(())
    }

    /// The single PUT of an object that is one part, with all its metadata.
    async fn single_put(&mut self, part: Part) -> Result<Sent, OffsiteError> {
        let summary = part.last.ok_or(OffsiteError::Cancelled)?;
        let meta = object_metadata(self.cfg, &summary.source, Some(&summary.stored));
        let opts = PutOptions {
            attributes: attributes(self.cfg, meta),
            ..PutOptions::default()
        };
        let put = self.store.put_opts(
            self.path,
            PutPayload::from(Bytes::from_owner(part.data)),
            opts,
        );
        let done = put.await.map_err(|e| remote_error(e, self.cfg))?;
        Ok(Sent {
            summary,
            parts: 0,
            e_tag: done.e_tag,
        })
    }

    async fn complete(&mut self, summary: Summary) -> Result<Sent, OffsiteError> {
        let up = self.upload.as_mut().ok_or(OffsiteError::Cancelled)?;
        let done = up.complete().await.map_err(|e| remote_error(e, self.cfg))?;
        self.upload = None;
        Ok(Sent {
            summary,
            parts: self.parts,
            e_tag: done.e_tag,
        })
    }

    /// Aborts a multipart upload, best effort: an unreachable server keeps an incomplete
    /// upload, never an object.
    async fn abort(&mut self) {
        if let Some(mut up) = self.upload.take() {
            let _ = tokio::time::timeout(self.cfg.request_timeout, up.abort()).await;
        }
        let _ = self.cancel;
    }
}

/// The next part from the reading side or the end of a request in flight, whichever comes
/// first (`reading_done`: only requests are waited for).
async fn next_event(
    incoming: &mut UnboundedReceiver<Produced>,
    running: &mut Running,
    reading_done: bool,
) -> Event {
    if running.is_empty() {
        return Event::Produced(incoming.recv().await);
    }
    if reading_done {
        return Event::Sent(running.next().await.unwrap_or(Ok(())));
    }
    let produced = pin!(incoming.recv());
    let sent = pin!(running.next());
    match select(produced, sent).await {
        Either::Left((produced, _)) => Event::Produced(produced),
        Either::Right((sent, _)) => Event::Sent(sent.unwrap_or(Ok(()))),
    }
}
