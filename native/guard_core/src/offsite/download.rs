//! One object down into a file ([`download`]), the way the fastest S3 clients do it and the
//! way every S3-compatible server answers:
//!
//! - Ranges are `part_size` bytes up to 8 MiB, and as many are in flight or in memory at once
//!   as fit the transfer's budget of `concurrency x part_size` bytes (the defaults: 8 ranges of
//!   8 MiB): more, smaller requests keep the connections busy while earlier ranges are written
//!   and checked, and give their memory back sooner.
//! - The first request is a GET of the first range, pinned to the object's ETag (`If-Match`).
//!   Its answer tells how the server serves ranges: `206 Partial Content` (or, as
//!   `rclone serve s3` answers, `200` with the range's `Content-Range`) means ranges work, and
//!   the rest of the object is asked for at once, while the first body still comes in; a `200`
//!   without `Content-Range` (RFC 9110 lets a server ignore `Range`) carries the whole object,
//!   which is then read as one stream.
//! - Every answer's `ETag` is compared with the one HEAD gave (not every server honours
//!   `If-Match`): an object replaced meanwhile is an `integrity` failure, never a mix.
//! - Each range is written at its offset into the file as it arrives (in writes of 256 KiB; a
//!   download may also go to no file), on a writing thread, and the bytes are hashed there in
//!   order as the ranges complete (a range that arrives early waits in memory for the ones
//!   before it), so the SHA-256 is ready when the last byte is. The writing thread then hands
//!   each range on, in order, to the caller's check ([`InOrderCheck`], on a thread of its own:
//!   the fetch verifies a plain export there, or decrypts an encrypted one), so its verdict is
//!   ready about when the last byte is, and nothing is read again. A range counts against the
//!   memory budget until it is hashed and checked.
//! - The whole download has ONE deadline ([`OffsiteConfig::fetch_deadline`]) instead of one per
//!   request, so a server that streams the whole object is not cut off; a wait of
//!   `request_timeout` without a byte is a `timeout`. A failed range (connection, timeout, 5xx,
//!   a body cut short) is asked again `max_retries` times with backoff.
//! - The writing and checking threads run at the calling job's priority
//!   ([`crate::worker::lower_like`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::client::HttpResponse;
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::{channel, Receiver, Sender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::client::{cancellable, ObjectInfo};
use super::signed::{Failure, Signed};
use super::{OffsiteConfig, OffsiteError};
use crate::reading::{hex, CancelFlag};

/// The buffers of one download, allocated once and reused.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// An empty buffer of at least `capacity` bytes from `pool`.
fn buffer(pool: &Pool, capacity: usize) -> Vec<u8> {
    let mut data = pool
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop()
        .unwrap_or_default();
    data.reserve(capacity);
    data
}

/// Bytes of the object at `offset`, holding a permit of the memory budget until hashed; its
/// buffer goes back to the pool before the permit is released.
struct Piece {
    offset: u64,
    data: Vec<u8>,
    pool: Pool,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Piece {
    fn drop(&mut self) {
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(data);
    }
}

/// What the network side of a download shares.
struct Shared<'a> {
    cfg: &'a OffsiteConfig,
    /// The size of a range (the last one may be shorter).
    range: usize,
    /// How many ranges may be in flight or in memory at once.
    slots: usize,
    signed: Signed<'a>,
    found: &'a ObjectInfo,
    permits: Arc<Semaphore>,
    pool: Pool,
    pieces: Sender<Piece>,
}

/// How the server answered the first ranged GET.
enum Served {
    /// Ranges work: the first range's answer.
    Ranges(HttpResponse),
    /// The whole object in one answer.
    Whole(HttpResponse),
}

/// A check of an object's bytes made while they download ([`download`]): it reads them, in
/// order, from the reader it is given, on a thread of its own, and returns its verdict.
pub(super) type InOrderCheck<'a, T> = Box<dyn FnOnce(&mut dyn Read) -> T + Send + 'a>;

/// Downloads the object `name` (as HEAD `found` it; see the module documentation), driving the
/// requests on `rt`, into the file `to` when given (its writeback to disk started as each range
/// is written, synced once complete: the file is kept), or into no file at all (the bytes only
/// hashed and handed to `check`); returns what [`Downloaded`] holds. `check`, when given, is fed the bytes in order as the ranges complete
/// (the writing thread hands each range on once the ones before it are there), so its verdict
/// is ready about when the last byte is; a range stays in memory until `check` has read it,
/// within the same `concurrency x part_size` budget. A `check` that stops reading early is
/// simply no longer fed (the download goes on to its last byte); its verdict is returned only
/// when the download succeeded, and is the caller's to weigh after the SHA-256.
pub(super) fn download<T: Send>(
    cfg: &OffsiteConfig,
    rt: &Runtime,
    name: &str,
    found: &ObjectInfo,
    to: Option<&FsPath>,
    check: Option<InOrderCheck<'_, T>>,
    cancel: &CancelFlag,
) -> Result<Downloaded<T>, OffsiteError> {
    let file = to
        .map(|to| File::create(to).map_err(|e| OffsiteError::io(to, &e)))
        .transpose()?;
    // What errors name: the file, or the object when there is none.
    let key = cfg.key(name);
    let to = to.unwrap_or(FsPath::new(&key));
    let (range, slots) = ranges_of(cfg);
    let (pieces, incoming) = channel(slots + 1);
    let shared = Shared {
        cfg,
        range,
        slots,
        signed: Signed::new(cfg, name, None)?,
        found,
        permits: Arc::new(Semaphore::new(slots)),
        pool: Pool::default(),
        pieces,
    };
    let job = crate::worker::current_priority();
    std::thread::scope(|scope| {
        let (forward, in_order) = std::sync::mpsc::channel::<Piece>();
        let checking = check
            .map(|check| {
                spawn_named(scope, "emqx_guard_check", to, move || {
                    crate::worker::lower_like(job);
                    check(&mut ChannelReader::new(in_order))
                })
            })
            .transpose()?;
        let forward = checking.is_some().then_some(forward);
        let file = file.as_ref();
        let writing = spawn_named(scope, "emqx_guard_write", to, move || {
            crate::worker::lower_like(job);
            write_pieces(incoming, file, to, found.size, forward)
        })?;
        let fetched = rt
            .block_on(cancellable(cancel, shared.fetch_within_deadline()))
            .and_then(|r| r);
        drop(shared);
        let written = joined(writing, to).and_then(|r| r);
        let last_byte = Instant::now();
        let checked = checking.map(|c| joined(c, to)).transpose();
        let sha256 = match (fetched, written) {
            (Ok(()), written) => written,
            // The writer stopped first (a full disk): its error is the cause.
            (Err(_), Err(e)) if !matches!(e, OffsiteError::Integrity(_)) => Err(e),
            (Err(e), _) => Err(e),
        }?;
        Ok(Downloaded {
            sha256,
            checked: checked?,
            last_byte,
        })
    })
}

/// What a successful [`download`] returns.
pub(super) struct Downloaded<T> {
    /// The SHA-256 of the object's bytes, lowercase hex.
    pub(super) sha256: String,
    /// The verdict of the check made alongside (when one was given).
    pub(super) checked: Option<T>,
    /// When the last byte was in, hashed (and its file synced): what the check did after that
    /// is the time it added to the download.
    pub(super) last_byte: Instant,
}

/// `run` on a new thread of `scope` named `name` (`to`: the file an error names).
fn spawn_named<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    to: &FsPath,
    run: impl FnOnce() -> T + Send + 'scope,
) -> Result<std::thread::ScopedJoinHandle<'scope, T>, OffsiteError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, run)
        .map_err(|e| OffsiteError::io(to, &std::io::Error::other(e)))
}

/// What the thread of `handle` returned; its panic an error.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>, to: &FsPath) -> Result<T, OffsiteError> {
    handle.join().map_err(|_| {
        OffsiteError::io(
            to,
            &std::io::Error::other("a thread of the download panicked"),
        )
    })
}

/// The bytes of the items a channel delivers, in order, as one reader; each item is dropped
/// once read (a download's range: its buffer and its share of the memory budget given back).
/// Every sender gone is the end of the bytes.
pub(super) struct ChannelReader<T> {
    incoming: std::sync::mpsc::Receiver<T>,
    current: Option<T>,
    at: usize,
}

impl<T> ChannelReader<T> {
    pub(super) fn new(incoming: std::sync::mpsc::Receiver<T>) -> Self {
        ChannelReader {
            incoming,
            current: None,
            at: 0,
        }
    }
}

impl<T: AsRef<[u8]>> Read for ChannelReader<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(item) = &self.current {
                let rest = &item.as_ref()[self.at..];
                if !rest.is_empty() {
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    self.at += n;
                    return Ok(n);
                }
            }
            // Done with it: back to its owner before waiting for the next.
            self.current = None;
            match self.incoming.recv() {
                Ok(item) => {
                    self.current = Some(item);
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
    }
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Shared<'_> {
    /// [`Shared::fetch_all`] within the download's one deadline.
    async fn fetch_within_deadline(&self) -> Result<(), OffsiteError> {
        let deadline = self.cfg.fetch_deadline(self.found.size);
        match tokio::time::timeout(deadline, self.fetch_all()).await {
            Ok(done) => done,
            Err(_) => Err(OffsiteError::Timeout {
                where_: self.cfg.where_(),
                detail: format!(
                    "{}: the download did not finish within {} s",
                    self.signed.key(),
                    deadline.as_secs()
                ),
            }),
        }
    }

    /// Every byte of the object to the writer: the first range, then the rest as the first
    /// answer allows.
    async fn fetch_all(&self) -> Result<(), OffsiteError> {
        let size = self.found.size;
        let range = self.range as u64;
        let first = 0..range.min(size);
        let permit = self.acquire().await?;
        let served = with_retries(self.cfg, || self.first_answer(first.clone())).await?;
        match served {
            Served::Whole(response) => self.stream_whole(response, permit).await,
            Served::Ranges(response) => {
                // The rest is asked for as soon as the first answer says ranges work, while
                // the first range's body still comes in.
                let first_body = async {
                    match self.collect(response, first.clone()).await {
                        Ok(data) => self.send(first.start, data, permit).await,
                        Err(Failure { retry: true, .. }) => {
                            drop(permit);
                            self.fetch_range(first.clone()).await
                        }
                        Err(failure) => Err(failure.error),
                    }
                };
                let rest = stream::iter(ranges_after(first.end, size, range))
                    .map(|range| self.fetch_range(range))
                    .buffer_unordered(self.slots)
                    .try_collect::<()>();
                futures_util::future::try_join(first_body, rest)
                    .await
                    .map(|_| ())
            }
        }
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, OffsiteError> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| OffsiteError::Cancelled)
    }

    async fn send(
        &self,
        offset: u64,
        data: Vec<u8>,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), OffsiteError> {
        let piece = Piece {
            offset,
            data,
            pool: self.pool.clone(),
            _permit: permit,
        };
        self.pieces.send(piece).await.map_err(|_| OffsiteError::Io {
            path: "(download)".into(),
            detail: "the writing thread stopped".into(),
        })
    }

    /// One range (after the first), asked again on failures that may pass.
    async fn fetch_range(&self, range: Range<u64>) -> Result<(), OffsiteError> {
        let permit = self.acquire().await?;
        let data = with_retries(self.cfg, || async {
            let response = self
                .signed
                .get(Some(range.clone()), self.found.e_tag.as_deref())
                .await?;
            self.check_etag(&response)?;
            match content_range(&response) {
                Some(got) if got == range => {}
                _ => return Err(unexpected(&self.signed, &range, &response)),
            }
            self.collect(response, range.clone()).await
        })
        .await?;
        self.send(range.start, data, permit).await
    }

    /// The first GET (`range` from 0) and what it says about the server.
    async fn first_answer(&self, range: Range<u64>) -> Result<Served, Failure> {
        let asked = (!range.is_empty()).then(|| range.clone());
        let response = self.signed.get(asked, self.found.e_tag.as_deref()).await?;
        self.check_etag(&response)?;
        let status = response.status().as_u16();
        match serving(status, content_range(&response), &range, self.found.size) {
            Some(Serving::Ranges) => Ok(Served::Ranges(response)),
            Some(Serving::Whole) => Ok(Served::Whole(response)),
            None => Err(unexpected(&self.signed, &range, &response)),
        }
    }

    /// An answer whose ETag is not the one HEAD gave: the object was replaced meanwhile.
    fn check_etag(&self, response: &HttpResponse) -> Result<(), Failure> {
        let got = response.headers().get("etag").and_then(|v| v.to_str().ok());
        match (self.found.e_tag.as_deref(), got) {
            (Some(want), Some(got)) if want.trim_matches('"') != got.trim_matches('"') => {
                Err(Failure {
                    retry: false,
                    error: OffsiteError::Integrity(format!(
                        "{} was replaced while it was downloaded: fetch it again",
                        self.signed.key()
                    )),
                })
            }
            _ => Ok(()),
        }
    }

    /// The body of `response`, which must be exactly `range`'s bytes; each wait for the next
    /// bytes is bounded by `request_timeout`.
    async fn collect(&self, response: HttpResponse, range: Range<u64>) -> Result<Vec<u8>, Failure> {
        let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        let mut data = buffer(&self.pool, want);
        let mut body = response.into_body().bytes_stream();
        while let Some(chunk) = self.next_chunk(&mut body).await? {
            if data.len() + chunk.len() > want {
                break;
            }
            data.extend_from_slice(&chunk);
        }
        if data.len() != want {
            let got = data.len();
            data.clear();
            self.pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(data);
            return Err(Failure {
                retry: true,
                error: OffsiteError::Remote {
                    where_: self.cfg.where_(),
                    detail: format!(
                        "{}: asked for bytes {}..{}, got {got} bytes",
                        self.signed.key(),
                        range.start,
                        range.end
                    ),
                },
            });
        }
        Ok(data)
    }

    /// The next bytes of `body`, `None` at its end; a wait of `request_timeout` is a `timeout`.
    async fn next_chunk(&self, body: &mut Body) -> Result<Option<Bytes>, Failure> {
        let cfg = self.cfg;
        match tokio::time::timeout(cfg.request_timeout, body.next()).await {
            Err(_) => Err(Failure {
                retry: true,
                error: OffsiteError::Timeout {
                    where_: cfg.where_(),
                    detail: format!(
                        "{}: no data for {} s",
                        self.signed.key(),
                        cfg.request_timeout.as_secs()
                    ),
                },
            }),
            Ok(None) => Ok(None),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            // A body cut off mid-way (a connection reset) is worth asking for again, whatever
            // the kind of the error says.
            Ok(Some(Err(e))) => Err(Failure {
                retry: true,
                ..self.signed.transport(e)
            }),
        }
    }

    /// The whole object from one answer, in pieces of a range's size (each with a permit).
    async fn stream_whole(
        &self,
        response: HttpResponse,
        mut permit: OwnedSemaphorePermit,
    ) -> Result<(), OffsiteError> {
        let part_size = self.range;
        let mut body = response.into_body().bytes_stream();
        let mut offset = 0u64;
        let mut data = buffer(&self.pool, part_size);
        while let Some(chunk) = self.next_chunk(&mut body).await.map_err(|f| f.error)? {
            let mut chunk: &[u8] = &chunk;
            while !chunk.is_empty() {
                let take = (part_size - data.len()).min(chunk.len());
                data.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if data.len() == part_size {
                    let next = self.acquire().await?;
                    let full = std::mem::replace(&mut data, buffer(&self.pool, part_size));
                    let len = full.len() as u64;
                    self.send(offset, full, std::mem::replace(&mut permit, next))
                        .await?;
                    offset += len;
                }
            }
        }
        self.send(offset, data, permit).await
    }
}

/// What an answer to the first GET (bytes `asked` of an object of `size`) says.
#[derive(Debug, PartialEq, Eq)]
enum Serving {
    /// The range asked for: ranges work.
    Ranges,
    /// The whole object.
    Whole,
}

/// How the server serves, from the first answer's status and `Content-Range`: the range asked
/// for under `206`, or under `200` (as `rclone serve s3` answers); the whole object under
/// `200` without `Content-Range` (the server ignored `Range`), or with one that covers it.
/// `None`: anything else.
fn serving(status: u16, got: Option<Range<u64>>, asked: &Range<u64>, size: u64) -> Option<Serving> {
    let whole = 0..size;
    match (status, got) {
        (200 | 206, Some(got)) if got == whole => Some(Serving::Whole),
        (200 | 206, Some(got)) if got == *asked => Some(Serving::Ranges),
        (200, None) => Some(Serving::Whole),
        _ => None,
    }
}

/// The largest range a download asks for at once.
const MAX_RANGE: usize = 8 * 1024 * 1024;

/// The size of a download's ranges and how many may be in flight or in memory at once: ranges
/// of `part_size` up to [`MAX_RANGE`], as many as fit the transfer's memory budget of
/// `concurrency x part_size` (the defaults: 8 ranges of 8 MiB). More, smaller ranges keep more
/// requests going while earlier ones are written and checked, and give memory back sooner.
fn ranges_of(cfg: &OffsiteConfig) -> (usize, usize) {
    let range = cfg.part_size.clamp(1, MAX_RANGE);
    let budget = cfg.concurrency.max(1).saturating_mul(cfg.part_size);
    (range, (budget / range).max(1))
}

/// The `part_size` ranges from `start` to `size`.
fn ranges_after(start: u64, size: u64, part_size: u64) -> Vec<Range<u64>> {
    let mut ranges = Vec::new();
    let mut offset = start;
    while offset < size {
        let end = (offset + part_size).min(size);
        ranges.push(offset..end);
        offset = end;
    }
    ranges
}

/// An answer that is neither the range asked for nor the whole object.
fn unexpected(signed: &Signed<'_>, range: &Range<u64>, response: &HttpResponse) -> Failure {
    let shown = response
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("no Content-Range");
    Failure {
        retry: false,
        error: OffsiteError::Integrity(format!(
            "{}: asked for bytes {}..{}, the server answered HTTP {} with {shown}",
            signed.key(),
            range.start,
            range.end,
            response.status().as_u16()
        )),
    }
}

/// The range of `Content-Range: bytes a-b/total`, as `a..b+1`.
fn content_range(response: &HttpResponse) -> Option<Range<u64>> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    let spec = value.trim().strip_prefix("bytes ")?;
    let (span, _total) = spec.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    (a <= b).then(|| a..b + 1)
}

type Body =
    futures_util::stream::BoxStream<'static, Result<Bytes, object_store::client::HttpError>>;

/// `attempt` until it succeeds, fails for good, or failed `max_retries + 1` times (backoff 0.2 s
/// doubling, at most 5 s).
async fn with_retries<T, F, Fut>(cfg: &OffsiteConfig, mut attempt: F) -> Result<T, OffsiteError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Failure { retry, error }) if !retry || tries >= cfg.max_retries => {
                return Err(error)
            }
            Err(_) => {}
        }
        let wait = Duration::from_millis(200u64.saturating_mul(1 << tries.min(10)));
        tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
        tries += 1;
    }
}

/// The writing thread: every piece written at its offset into `file` (when there is one) as it
/// arrives, hashed in order and then handed on in order to `forward` (while it listens); the
/// SHA-256 once all `size` bytes are there (and the file synced to disk: `forward`'s reader has
/// its end by then and finishes meanwhile).
fn write_pieces(
    mut incoming: Receiver<Piece>,
    file: Option<&File>,
    to: &FsPath,
    size: u64,
    mut forward: Option<std::sync::mpsc::Sender<Piece>>,
) -> Result<String, OffsiteError> {
    let mut hasher = Sha256::new();
    let mut hashed = 0u64;
    let mut waiting: BTreeMap<u64, Piece> = BTreeMap::new();
    while let Some(piece) = incoming.blocking_recv() {
        if let Some(file) = file {
            write_at(file, &piece.data, piece.offset).map_err(|e| OffsiteError::io(to, &e))?;
            start_writeback(file, piece.offset, piece.data.len() as u64);
        }
        waiting.insert(piece.offset, piece);
        while let Some(next) = waiting.remove(&hashed) {
            hasher.update(&next.data);
            hashed += next.data.len() as u64;
            // A reader that stopped (its verdict made) is fed no more.
            if forward.as_ref().is_some_and(|to| to.send(next).is_err()) {
                forward = None;
            }
        }
    }
    drop(forward);
    if hashed != size || !waiting.is_empty() {
        return Err(OffsiteError::Integrity(format!(
            "the download stopped after {hashed} of {size} bytes"
        )));
    }
    if let Some(file) = file {
        file.sync_all().map_err(|e| OffsiteError::io(to, &e))?;
    }
    Ok(hex(&hasher.finalize()))
}

/// The largest write [`write_at`] makes at once.
const WRITE_SLICE: usize = 256 * 1024;

/// `data` written into `file` at `offset`, in writes of at most [`WRITE_SLICE`]: measured on
/// Linux 6 (ext4), one write of a whole 16 MiB range often costs ten times as much CPU as the same
/// bytes in 256 KiB writes (the page cache takes a large write into large folios, whose
/// allocation is the cost), and that made the writing thread the bottleneck of a download.
pub(super) fn write_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    let mut at = offset;
    for slice in data.chunks(WRITE_SLICE) {
        file.write_all_at(slice, at)?;
        at += slice.len() as u64;
    }
    Ok(())
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk, without
/// waiting: the `fsync` that makes the finished file durable then finds most of it written.
/// Best effort (a no-op where `sync_file_range` does not exist).
pub(super) fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: a plain system call on an open file descriptor, with no pointers.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_answer_tells_how_the_server_serves() {
        let asked = 0..16;
        // 206 with the range (S3, s3s), 200 with it (rclone serve s3): ranges.
        assert_eq!(
            serving(206, Some(0..16), &asked, 100),
            Some(Serving::Ranges)
        );
        assert_eq!(
            serving(200, Some(0..16), &asked, 100),
            Some(Serving::Ranges)
        );
        // Range ignored (RFC 9110 allows it): the whole object, read as one stream.
        assert_eq!(serving(200, None, &asked, 100), Some(Serving::Whole));
        assert_eq!(
            serving(200, Some(0..100), &asked, 100),
            Some(Serving::Whole)
        );
        // An object no larger than the first range: whole either way.
        assert_eq!(
            serving(206, Some(0..10), &(0..10), 10),
            Some(Serving::Whole)
        );
        // Anything else is refused: another range, a 206 without Content-Range.
        assert_eq!(serving(206, Some(16..32), &asked, 100), None);
        assert_eq!(serving(206, None, &asked, 100), None);
        assert_eq!(serving(204, Some(0..16), &asked, 100), None);
    }

    #[test]
    fn ranges_fill_the_memory_budget_in_ranges_of_at_most_8_mib() {
        let mut cfg = OffsiteConfig::new("b", "k", super::super::Secret::new("s"));
        let mib = 1024 * 1024;
        // The defaults: 4 x 16 MiB of memory, as 8 ranges of 8 MiB.
        assert_eq!(ranges_of(&cfg), (8 * mib, 8));
        cfg.part_size = 5 * mib;
        cfg.concurrency = 3;
        assert_eq!(ranges_of(&cfg), (5 * mib, 3));
        cfg.part_size = 12 * mib;
        cfg.concurrency = 1;
        assert_eq!(ranges_of(&cfg), (8 * mib, 1));
    }

    #[test]
    fn a_channel_reader_gives_the_items_bytes_in_order_and_each_back_once_read() {
        let (send, receive) = std::sync::mpsc::channel::<Vec<u8>>();
        send.send(b"abc".to_vec()).unwrap();
        send.send(Vec::new()).unwrap();
        send.send(b"defg".to_vec()).unwrap();
        drop(send);
        let mut reader = ChannelReader::new(receive);
        let mut buf = [0u8; 2];
        let mut got = Vec::new();
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"abcdefg");
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn ranges_cover_the_object_in_part_sizes() {
        assert_eq!(ranges_after(10, 10, 4), Vec::<Range<u64>>::new());
        assert_eq!(ranges_after(4, 13, 4), vec![4..8, 8..12, 12..13]);
    }
}
