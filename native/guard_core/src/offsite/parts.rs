//! The reading side of an upload ([`produce`]): the export is read once, on a thread of its own,
//! through the job's [`ReadControl`] (cancel flag, `io_limit`), hashed (the export's SHA-256),
//! encrypted with age when a recipient is set, the stored bytes hashed, and cut into parts of
//! `part_size` that go to the sending side ([`super::upload`]) through a channel.
//!
//! Memory is bounded by [`Slots`]: a part buffer exists only while it holds a slot, the slot is
//! given back once the part's request is done, and there are `concurrency` slots. So at most
//! `concurrency × part_size` bytes of the object are in memory, whether the reading or the
//! network is the slower side; the reading waits for a slot, the network for a part.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path as FsPath;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

use super::error::shown;
use super::{OffsiteConfig, OffsiteError};
use crate::reading::{hex, Hashed, ReadControl, READ_CHUNK};

/// How often a wait for a slot checks the cancel flag.
const SLOT_POLL: Duration = Duration::from_millis(50);

/// The memory budget of one transfer: `concurrency` part buffers at most, allocated once and
/// reused (so the process's memory does not grow with the allocator's habits either).
#[derive(Debug)]
pub(super) struct Slots {
    state: Mutex<SlotState>,
    freed: Condvar,
    /// Set by the side that stops first: every wait for a slot ends.
    closed: AtomicBool,
}

#[derive(Debug)]
struct SlotState {
    free: usize,
    spare: Vec<Vec<u8>>,
}

impl Slots {
    pub(super) fn new(count: usize) -> Arc<Slots> {
        Arc::new(Slots {
            state: Mutex::new(SlotState {
                free: count,
                spare: Vec::new(),
            }),
            freed: Condvar::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Takes a slot and its (empty) buffer of at least `capacity` bytes, waiting while none is
    /// free; `None` once the transfer is closed or `cancelled` returns true.
    pub(super) fn take(
        self: &Arc<Self>,
        capacity: usize,
        cancelled: impl Fn() -> bool,
    ) -> Option<Buffer> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.closed.load(Ordering::Relaxed) || cancelled() {
                return None;
            }
            if state.free > 0 {
                state.free -= 1;
                let mut data = state.spare.pop().unwrap_or_default();
                data.reserve(capacity);
                return Some(Buffer {
                    data,
                    slots: self.clone(),
                });
            }
            state = match self.freed.wait_timeout(state, SLOT_POLL) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Ends every wait for a slot, now and later.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.freed.notify_all();
    }
}

/// A part buffer holding one slot of [`Slots`]; dropped, it goes back to them for the next part.
#[derive(Debug)]
pub(super) struct Buffer {
    data: Vec<u8>,
    slots: Arc<Slots>,
}

impl Buffer {
    pub(super) fn len(&self) -> usize {
        self.data.len()
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        let mut state = self.slots.state.lock().unwrap_or_else(|p| p.into_inner());
        state.free += 1;
        if data.capacity() > 0 {
            state.spare.push(data);
        }
        self.slots.freed.notify_one();
    }
}

/// What the whole export and the stored object turned out to be, known after the last byte.
#[derive(Debug, Clone)]
pub(super) struct Summary {
    /// The export's SHA-256 and size.
    pub(super) source: Hashed,
    /// The stored bytes' SHA-256 (the export's when not encrypted) and size.
    pub(super) stored: Hashed,
}

/// One part of the object, in order, in the buffer of its slot.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) data: Buffer,
    /// Set on the last part: the object ends with it.
    pub(super) last: Option<Summary>,
}

/// What the reading side sends.
#[derive(Debug)]
pub(super) enum Produced {
    Part(Part),
    /// The reading failed; nothing more comes.
    Failed(OffsiteError),
}

/// The (possibly encrypted) object's bytes, cut into parts as they come.
struct PartSink {
    part_size: usize,
    current: Option<Buffer>,
    slots: Arc<Slots>,
    out: UnboundedSender<Produced>,
    /// The stored bytes' hash when they differ from the export (encrypted).
    stored: Option<Sha256>,
    stored_size: u64,
    cancelled: Box<dyn Fn() -> bool + Send>,
}

impl PartSink {
    fn stopped() -> io::Error {
        io::Error::other("the upload stopped")
    }

    /// Sends the current part (not the last) and starts the next one, in a new slot.
    fn ship(&mut self) -> io::Result<()> {
        let data = self.current.take().ok_or_else(Self::stopped)?;
        self.out
            .send(Produced::Part(Part { data, last: None }))
            .map_err(|_| Self::stopped())?;
        let next = self.slots.take(self.part_size, &self.cancelled);
        self.current = Some(next.ok_or_else(Self::stopped)?);
        Ok(())
    }

    /// Sends the last part with the summary of the whole (`source`: the export's hash).
    fn finish(mut self, source: Hashed) -> io::Result<()> {
        let data = self.current.take().ok_or_else(Self::stopped)?;
        let stored = match self.stored.take() {
            Some(hasher) => Hashed {
                sha256: hex(&hasher.finalize()),
                size: self.stored_size,
            },
            None => source.clone(),
        };
        let last = Some(Summary { source, stored });
        self.out
            .send(Produced::Part(Part { data, last }))
            .map_err(|_| Self::stopped())
    }
}

impl Write for PartSink {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        if let Some(hasher) = self.stored.as_mut() {
            hasher.update(buf);
        }
        self.stored_size += n as u64;
        while !buf.is_empty() {
            let filled = self.current.as_ref().map_or(0, Buffer::len);
            if filled == self.part_size {
                self.ship()?;
                continue;
            }
            let take = (self.part_size - filled).min(buf.len());
            let current = self.current.as_mut().ok_or_else(Self::stopped)?;
            current.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plain or age-encrypting, into a [`PartSink`].
enum Encoder {
    Plain(PartSink),
    Age(age::stream::StreamWriter<PartSink>),
}

impl Encoder {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(s) => s.write_all(data),
            Encoder::Age(w) => w.write_all(data),
        }
    }

    fn finish(self) -> io::Result<PartSink> {
        match self {
            Encoder::Plain(s) => Ok(s),
            Encoder::Age(w) => w.finish(),
        }
    }
}

/// The age encryptor for `recipient`.
fn age_writer(recipient: &str, sink: PartSink) -> Result<Encoder, OffsiteError> {
    let recipient = age::x25519::Recipient::from_str(recipient)
        .map_err(|_| OffsiteError::BadConfig("recipient is not an age X25519 recipient".into()))?;
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| OffsiteError::BadConfig(format!("recipient: {e}")))?;
    let writer = encryptor.wrap_output(sink).map_err(|e| OffsiteError::Io {
        path: "(age)".into(),
        detail: e.to_string(),
    })?;
    Ok(Encoder::Age(writer))
}

/// A reader that stops once the transfer is closed (the sending side failed), so that the
/// reading thread ends within one read.
struct Watched<'a, R> {
    inner: R,
    slots: &'a Slots,
}

impl<R: Read> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.slots.closed.load(Ordering::Relaxed) {
            return Err(io::Error::other("the upload stopped"));
        }
        self.inner.read(buf)
    }
}

/// Reads the export at `local` once through `control` and sends the object's parts to `out`
/// (see the module documentation); a failure is sent as [`Produced::Failed`]. A file whose
/// size or modification time changed while it was read, or that gave another number of bytes
/// than its size, is an `integrity` failure: its last part is never sent, so nothing is stored.
pub(super) fn produce(
    cfg: &OffsiteConfig,
    local: &FsPath,
    control: &mut ReadControl,
    slots: &Arc<Slots>,
    out: UnboundedSender<Produced>,
) {
    crate::worker::lower_current_thread();
    if let Err(e) = read_and_send(cfg, local, control, slots, out.clone()) {
        let e = match e {
            _ if control.is_cancelled() => OffsiteError::Cancelled,
            e => e,
        };
        let _ = out.send(Produced::Failed(e));
    }
}

fn read_and_send(
    cfg: &OffsiteConfig,
    local: &FsPath,
    control: &mut ReadControl,
    slots: &Arc<Slots>,
    out: UnboundedSender<Produced>,
) -> Result<(), OffsiteError> {
    let io_err = |e: io::Error| OffsiteError::io(local, &e);
    let file = File::open(local).map_err(io_err)?;
    let before = file.metadata().map_err(io_err)?;
    let cancel = control.cancel_flag();
    let cancelled = move || cancel.load(Ordering::Relaxed);
    // A small export's one part needs no buffer of a whole part size.
    let first = before.len().min(cfg.part_size as u64) as usize + 4096;
    let buffer = slots.take(first.min(cfg.part_size), &cancelled);
    let sink = PartSink {
        part_size: cfg.part_size,
        current: Some(buffer.ok_or(OffsiteError::Cancelled)?),
        slots: slots.clone(),
        out,
        stored: cfg.recipient.as_ref().map(|_| Sha256::new()),
        stored_size: 0,
        cancelled: Box::new(cancelled),
    };
    let mut encoder = match &cfg.recipient {
        Some(recipient) => age_writer(recipient, sink)?,
        None => Encoder::Plain(sink),
    };
    let mut source = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut reader = control.reader(Watched {
        inner: &file,
        slots,
    });
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        source.update(&buf[..n]);
        size += n as u64;
        encoder.write_all(&buf[..n]).map_err(io_err)?;
    }
    let after = file.metadata().map_err(io_err)?;
    if size != before.len()
        || after.len() != before.len()
        || after.mtime_nsec() != before.mtime_nsec()
        || after.mtime() != before.mtime()
    {
        return Err(OffsiteError::Integrity(format!(
            "{} changed while it was uploaded; nothing was stored: upload it again",
            shown(local)
        )));
    }
    let sink = encoder.finish().map_err(io_err)?;
    let hashed = Hashed {
        sha256: hex(&source.finalize()),
        size,
    };
    sink.finish(hashed).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_the_buffers_and_come_back() {
        let slots = Slots::new(2);
        let mut a = slots.take(10, || false).unwrap();
        a.extend_from_slice(b"part");
        let _b = slots.take(10, || false).unwrap();
        // None free: a cancelled wait ends with nothing.
        assert!(slots.take(10, || true).is_none());
        drop(a);
        // The buffer comes back empty, its memory kept.
        let c = slots.take(4, || false).unwrap();
        assert_eq!((c.len(), c.data.capacity() >= 10), (0, true));
        slots.close();
        assert!(slots.take(10, || false).is_none());
    }
}
