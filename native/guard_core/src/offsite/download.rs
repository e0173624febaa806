//! One object down into a file ([`download`]), the way the fastest S3 clients do it and the
//! way every S3-compatible server answers:
//!
//! - The first request is a GET of the first `part_size` bytes, pinned to the object's ETag
//!   (`If-Match`). Its answer tells how the server serves ranges: `206 Partial Content` (or, as
//!   `rclone serve s3` answers, `200` with the range's `Content-Range`) means ranges work, and
//!   the rest of the object comes in `part_size` ranges, `concurrency` of them in flight at
//!   once; a `200` without `Content-Range` (RFC 9110 lets a server ignore `Range`) carries the
//!   whole object, which is then read as one stream.
//! - Every answer's `ETag` is compared with the one HEAD gave (not every server honours
//!   `If-Match`): an object replaced meanwhile is an `integrity` failure, never a mix.
//! - Each range is written at its offset into the file as it arrives, on a writing thread, and
//!   the bytes are hashed there in order as the ranges complete (a range that arrives early
//!   waits in memory for the ones before it), so the SHA-256 is ready when the last byte is.
//!   At most `concurrency` ranges of `part_size` exist in memory at once (in flight or
//!   waiting to be hashed).
//! - The whole download has ONE deadline ([`OffsiteConfig::fetch_deadline`]) instead of one per
//!   request, so a server that streams the whole object is not cut off; a wait of
//!   `request_timeout` without a byte is a `timeout`. A failed range (connection, timeout, 5xx,
//!   a body cut short) is asked again `max_retries` times with backoff.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

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

/// Bytes of the object at `offset`, holding a permit of the memory budget until hashed.
struct Piece {
    offset: u64,
    data: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

/// How the server answered the first ranged GET.
enum Served {
    /// Ranges work: the first range's answer.
    Ranges(HttpResponse),
    /// The whole object in one answer.
    Whole(HttpResponse),
}

/// Downloads the object `name` (as HEAD `found` it) into the file `to` (see the module
/// documentation), driving the requests on `rt`; returns the SHA-256 of its bytes, lowercase hex.
pub(super) fn download(
    cfg: &OffsiteConfig,
    rt: &Runtime,
    name: &str,
    found: &ObjectInfo,
    to: &FsPath,
    cancel: &CancelFlag,
) -> Result<String, OffsiteError> {
    let file = File::create(to).map_err(|e| OffsiteError::io(to, &e))?;
    let signed = Signed::new(cfg, name, None)?;
    let permits = Arc::new(Semaphore::new(cfg.concurrency));
    let (pieces, incoming) = channel(cfg.concurrency + 1);
    std::thread::scope(|scope| {
        let writing = std::thread::Builder::new()
            .name("emqx_guard_write".into())
            .spawn_scoped(scope, || write_pieces(incoming, &file, to, found.size))
            .map_err(|e| OffsiteError::io(to, &std::io::Error::other(e)))?;
        let fetching = async {
            let deadline = cfg.fetch_deadline(found.size);
            let all = fetch_all(cfg, &signed, found, &permits, &pieces);
            match tokio::time::timeout(deadline, all).await {
                Ok(done) => done,
                Err(_) => Err(OffsiteError::Timeout {
                    where_: cfg.where_(),
                    detail: format!(
                        "{}: the download did not finish within {} s",
                        signed.key(),
                        deadline.as_secs()
                    ),
                }),
            }
        };
        let fetched = rt.block_on(cancellable(cancel, fetching)).and_then(|r| r);
        drop(pieces);
        let written = writing.join().unwrap_or_else(|_| {
            Err(OffsiteError::io(
                to,
                &std::io::Error::other("the writing thread panicked"),
            ))
        });
        match (fetched, written) {
            (Ok(()), written) => written,
            // The writer stopped first (a full disk): its error is the cause.
            (Err(_), Err(e)) if !matches!(e, OffsiteError::Integrity(_)) => Err(e),
            (Err(e), _) => Err(e),
        }
    })
}

/// Every byte of the object to `pieces`: the first range, then the rest as the first answer
/// allows.
async fn fetch_all(
    cfg: &OffsiteConfig,
    signed: &Signed<'_>,
    found: &ObjectInfo,
    permits: &Arc<Semaphore>,
    pieces: &Sender<Piece>,
) -> Result<(), OffsiteError> {
    let size = found.size;
    let first = 0..(cfg.part_size as u64).min(size);
    let permit = acquire(permits).await?;
    let served = with_retries(cfg, || first_answer(signed, found, first.clone())).await?;
    match served {
        Served::Whole(response) => {
            stream_whole(cfg, signed, response, permit, permits, pieces).await
        }
        Served::Ranges(response) => {
            match collect(cfg, signed, response, first.clone()).await {
                Ok(data) => send(pieces, first.start, data, permit).await?,
                Err(Failure { retry: true, .. }) => {
                    drop(permit);
                    fetch_range(cfg, signed, found, permits, pieces, first.clone()).await?;
                }
                Err(failure) => return Err(failure.error),
            }
            let ranges = ranges_after(first.end, size, cfg.part_size as u64);
            stream::iter(ranges)
                .map(|range| fetch_range(cfg, signed, found, permits, pieces, range))
                .buffer_unordered(cfg.concurrency)
                .try_collect::<()>()
                .await
        }
    }
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

async fn acquire(permits: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, OffsiteError> {
    permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| OffsiteError::Cancelled)
}

async fn send(
    pieces: &Sender<Piece>,
    offset: u64,
    data: Vec<u8>,
    permit: OwnedSemaphorePermit,
) -> Result<(), OffsiteError> {
    let piece = Piece {
        offset,
        data,
        _permit: permit,
    };
    pieces.send(piece).await.map_err(|_| writer_gone())
}

fn writer_gone() -> OffsiteError {
    OffsiteError::Io {
        path: "(download)".into(),
        detail: "the writing thread stopped".into(),
    }
}

/// One range (after the first), asked again on failures that may pass.
async fn fetch_range(
    cfg: &OffsiteConfig,
    signed: &Signed<'_>,
    found: &ObjectInfo,
    permits: &Arc<Semaphore>,
    pieces: &Sender<Piece>,
    range: Range<u64>,
) -> Result<(), OffsiteError> {
    let permit = acquire(permits).await?;
    let data = with_retries(cfg, || async {
        let response = signed
            .get(Some(range.clone()), found.e_tag.as_deref())
            .await?;
        check_etag(signed, found, &response)?;
        match content_range(&response) {
            Some(got) if got == range => {}
            _ => return Err(unexpected(signed, &range, &response)),
        }
        collect(cfg, signed, response, range.clone()).await
    })
    .await?;
    send(pieces, range.start, data, permit).await
}

/// The first GET (`range` from 0) and what it says about the server.
async fn first_answer(
    signed: &Signed<'_>,
    found: &ObjectInfo,
    range: Range<u64>,
) -> Result<Served, Failure> {
    let asked = (!range.is_empty()).then(|| range.clone());
    let response = signed.get(asked, found.e_tag.as_deref()).await?;
    check_etag(signed, found, &response)?;
    let whole = 0..found.size;
    match (response.status().as_u16(), content_range(&response)) {
        (206, Some(got)) | (200, Some(got)) if got == range && range != whole => {
            Ok(Served::Ranges(response))
        }
        (200 | 206, Some(got)) if got == whole => Ok(Served::Whole(response)),
        (200, None) => Ok(Served::Whole(response)),
        _ => Err(unexpected(signed, &range, &response)),
    }
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

/// An answer whose ETag is not the one HEAD gave: the object was replaced meanwhile.
fn check_etag(
    signed: &Signed<'_>,
    found: &ObjectInfo,
    response: &HttpResponse,
) -> Result<(), Failure> {
    let got = response.headers().get("etag").and_then(|v| v.to_str().ok());
    match (found.e_tag.as_deref(), got) {
        (Some(want), Some(got)) if want.trim_matches('"') != got.trim_matches('"') => {
            Err(Failure {
                retry: false,
                error: replaced(signed),
            })
        }
        _ => Ok(()),
    }
}

fn replaced(signed: &Signed<'_>) -> OffsiteError {
    OffsiteError::Integrity(format!(
        "{} was replaced while it was downloaded: fetch it again",
        signed.key()
    ))
}

/// The body of `response`, which must be exactly `range`'s bytes; each wait for the next bytes
/// is bounded by `request_timeout`.
async fn collect(
    cfg: &OffsiteConfig,
    signed: &Signed<'_>,
    response: HttpResponse,
    range: Range<u64>,
) -> Result<Vec<u8>, Failure> {
    let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
    let mut data = Vec::with_capacity(want);
    let mut body = response.into_body().bytes_stream();
    while let Some(chunk) = next_chunk(cfg, signed, &mut body).await? {
        if data.len() + chunk.len() > want {
            break;
        }
        data.extend_from_slice(&chunk);
    }
    if data.len() != want {
        return Err(Failure {
            retry: true,
            error: OffsiteError::Remote {
                where_: cfg.where_(),
                detail: format!(
                    "{}: asked for bytes {}..{}, got {} bytes",
                    signed.key(),
                    range.start,
                    range.end,
                    data.len()
                ),
            },
        });
    }
    Ok(data)
}

type Body =
    futures_util::stream::BoxStream<'static, Result<Bytes, object_store::client::HttpError>>;

/// The next bytes of `body`, `None` at its end; a wait of `request_timeout` is a `timeout`.
async fn next_chunk(
    cfg: &OffsiteConfig,
    signed: &Signed<'_>,
    body: &mut Body,
) -> Result<Option<Bytes>, Failure> {
    match tokio::time::timeout(cfg.request_timeout, body.next()).await {
        Err(_) => Err(Failure {
            retry: true,
            error: OffsiteError::Timeout {
                where_: cfg.where_(),
                detail: format!(
                    "{}: no data for {} s",
                    signed.key(),
                    cfg.request_timeout.as_secs()
                ),
            },
        }),
        Ok(None) => Ok(None),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(e))) => Err(signed.transport(e)),
    }
}

/// The whole object from one answer, in pieces of `part_size` (each with a permit).
async fn stream_whole(
    cfg: &OffsiteConfig,
    signed: &Signed<'_>,
    response: HttpResponse,
    mut permit: OwnedSemaphorePermit,
    permits: &Arc<Semaphore>,
    pieces: &Sender<Piece>,
) -> Result<(), OffsiteError> {
    let mut body = response.into_body().bytes_stream();
    let mut offset = 0u64;
    let mut data = Vec::with_capacity(cfg.part_size);
    while let Some(chunk) = next_chunk(cfg, signed, &mut body)
        .await
        .map_err(|f| f.error)?
    {
        let mut chunk: &[u8] = &chunk;
        while !chunk.is_empty() {
            let take = (cfg.part_size - data.len()).min(chunk.len());
            data.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if data.len() == cfg.part_size {
                let full = std::mem::replace(&mut data, Vec::with_capacity(cfg.part_size));
                let len = full.len() as u64;
                let next = acquire(permits).await?;
                send(pieces, offset, full, std::mem::replace(&mut permit, next)).await?;
                offset += len;
            }
        }
    }
    send(pieces, offset, data, permit).await
}

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

/// The writing thread: every piece written at its offset as it arrives, hashed in order;
/// the SHA-256 once all `size` bytes are there.
fn write_pieces(
    mut incoming: Receiver<Piece>,
    file: &File,
    to: &FsPath,
    size: u64,
) -> Result<String, OffsiteError> {
    crate::worker::lower_current_thread();
    let mut hasher = Sha256::new();
    let mut hashed = 0u64;
    let mut waiting: BTreeMap<u64, Piece> = BTreeMap::new();
    while let Some(piece) = incoming.blocking_recv() {
        file.write_all_at(&piece.data, piece.offset)
            .map_err(|e| OffsiteError::io(to, &e))?;
        waiting.insert(piece.offset, piece);
        while let Some(next) = waiting.remove(&hashed) {
            hasher.update(&next.data);
            hashed += next.data.len() as u64;
            if next.data.is_empty() {
                break;
            }
        }
    }
    if hashed != size || !waiting.is_empty() {
        return Err(OffsiteError::Integrity(format!(
            "the download stopped after {hashed} of {size} bytes"
        )));
    }
    let mut out = file;
    out.flush().map_err(|e| OffsiteError::io(to, &e))?;
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_object_in_part_sizes() {
        assert_eq!(ranges_after(10, 10, 4), Vec::<Range<u64>>::new());
        assert_eq!(ranges_after(4, 13, 4), vec![4..8, 8..12, 12..13]);
    }
}
