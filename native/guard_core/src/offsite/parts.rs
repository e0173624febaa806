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

/// The memory budget of one transfer: `concurrency` part buffers at most.
#[derive(Debug)]
pub(super) struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
    /// Set by the side that stops first: every wait for a slot ends.
    closed: AtomicBool,
}

impl Slots {
    pub(super) fn new(count: usize) -> Arc<Slots> {
        Arc::new(Slots {
            free: Mutex::new(count),
            freed: Condvar::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Takes a slot, waiting while none is free; `None` once the transfer is closed or
    /// `cancelled` returns true.
    pub(super) fn take(self: &Arc<Self>, cancelled: impl Fn() -> bool) -> Option<Slot> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.closed.load(Ordering::Relaxed) || cancelled() {
                return None;
            }
            if *free > 0 {
                *free -= 1;
                return Some(Slot(self.clone()));
            }
            free = match self.freed.wait_timeout(free, SLOT_POLL) {
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

/// One slot of [`Slots`], given back when dropped.
#[derive(Debug)]
pub(super) struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.0.freed.notify_one();
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

/// One part of the object, in order, with the slot its buffer holds.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) data: Vec<u8>,
    pub(super) slot: Slot,
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
    current: Vec<u8>,
    slot: Option<Slot>,
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
        let slot = self.slot.take().ok_or_else(Self::stopped)?;
        let data = std::mem::take(&mut self.current);
        self.out
            .send(Produced::Part(Part {
                data,
                slot,
                last: None,
            }))
            .map_err(|_| Self::stopped())?;
        let slot = self.slots.take(&self.cancelled).ok_or_else(Self::stopped)?;
        self.slot = Some(slot);
        self.current = Vec::with_capacity(self.part_size);
        Ok(())
    }

    /// Sends the last part with the summary of the whole (`source`: the export's hash).
    fn finish(mut self, source: Hashed) -> io::Result<()> {
        let slot = self.slot.take().ok_or_else(Self::stopped)?;
        let stored = match self.stored.take() {
            Some(hasher) => Hashed {
                sha256: hex(&hasher.finalize()),
                size: self.stored_size,
            },
            None => source.clone(),
        };
        let data = std::mem::take(&mut self.current);
        let last = Some(Summary { source, stored });
        self.out
            .send(Produced::Part(Part { data, slot, last }))
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
            if self.current.len() == self.part_size {
                self.ship()?;
            }
            let room = self.part_size - self.current.len();
            let take = room.min(buf.len());
            self.current.extend_from_slice(&buf[..take]);
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
    let slot = slots.take(&cancelled).ok_or(OffsiteError::Cancelled)?;
    let first = before.len().min(cfg.part_size as u64) as usize;
    let sink = PartSink {
        part_size: cfg.part_size,
        current: Vec::with_capacity(first + 4096),
        slot: Some(slot),
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
    drop(reader);
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
        let a = slots.take(|| false).unwrap();
        let _b = slots.take(|| false).unwrap();
        // None free: a cancelled wait ends with nothing.
        assert!(slots.take(|| true).is_none());
        drop(a);
        let _c = slots.take(|| false).unwrap();
        slots.close();
        assert!(slots.take(|| false).is_none());
    }
}
