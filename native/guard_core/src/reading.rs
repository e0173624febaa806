//! Reading files under control: a cancel flag checked between reads, an optional cap on read
//! throughput, and a count of the bytes read.
//!
//! Every file that background work reads (verification, hashing, the verifications retention
//! does) goes through one [`ReadControl`]. It is what lets a job stop promptly when it is
//! cancelled (the flag is checked before every read and while waiting for the rate limit, so a
//! cancelled job stops within one read of [`READ_CHUNK`] bytes or [`SLEEP_SLICE`]), keeps a job
//! from flooding a disk shared with EMQX's own data (the `io_limit`), and lets callers report
//! how much was read.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Largest read handed to the file at once by [`hash_file`].
pub const READ_CHUNK: usize = 128 * 1024;
/// Longest single sleep while waiting for the rate limit; the cancel flag is checked between
/// sleeps.
pub const SLEEP_SLICE: Duration = Duration::from_millis(20);

/// Shared cancel flag of one job.
pub type CancelFlag = Arc<AtomicBool>;

/// The message of the `io::Error` a controlled read fails with once its job is cancelled.
const CANCELLED: &str = "cancelled";

/// A token bucket: reads may run ahead by at most `burst` bytes, and on average at no more than
/// `rate` bytes per second.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    /// Bytes that may be read without waiting; negative when reads ran ahead (the debt is paid by
    /// sleeping before the next read).
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: NonZeroU64) -> Self {
        let rate = rate.get() as f64;
        // A tenth of a second of reading, at least one read: the file is read in bursts that
        // short, so a measured rate over a second or more stays within a few percent of `rate`.
        let burst = (rate / 10.0).max(READ_CHUNK as f64);
        TokenBucket {
            rate,
            burst,
            // Empty at the start: the first read goes ahead, the next ones wait for its cost.
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// How long to wait before the next read may start.
    fn wait(&mut self) -> Duration {
        self.refill();
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    fn take(&mut self, n: usize) {
        self.tokens -= n as f64;
    }
}

/// How the reads of one job are controlled: its cancel flag, its optional throughput cap, and
/// the bytes it has read so far.
#[derive(Debug)]
pub struct ReadControl {
    cancel: CancelFlag,
    bucket: Option<TokenBucket>,
    bytes_read: u64,
}

impl ReadControl {
    /// No limit, and a cancel flag nobody else holds (the work cannot be cancelled).
    pub fn unlimited() -> Self {
        ReadControl::new(Arc::new(AtomicBool::new(false)), None)
    }

    /// Reads stop once `cancel` is set; with `io_limit`, they average at most that many bytes
    /// per second (bursts of at most a tenth of a second's worth).
    ///
    /// ```
    /// use std::io::Read;
    /// use std::num::NonZeroU64;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use guard_core::reading::ReadControl;
    ///
    /// let cancel = Arc::new(AtomicBool::new(false));
    /// let mut control = ReadControl::new(cancel.clone(), NonZeroU64::new(50_000_000));
    /// let mut text = String::new();
    /// control.reader(&b"hello"[..]).read_to_string(&mut text)?;
    /// assert_eq!((text.as_str(), control.bytes_read()), ("hello", 5));
    ///
    /// cancel.store(true, Ordering::Relaxed);
    /// assert!(control.is_cancelled());
    /// assert!(control.reader(&b"more"[..]).read(&mut [0; 4]).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(cancel: CancelFlag, io_limit: Option<NonZeroU64>) -> Self {
        ReadControl {
            cancel,
            bucket: io_limit.map(TokenBucket::new),
            bytes_read: 0,
        }
    }

    /// True once the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The job's cancel flag (for work that also waits on something other than reads, such as
    /// a network request, and must stop promptly too).
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.clone()
    }

    /// Bytes read through this control so far (by every reader that used it).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Waits until the rate limit allows the next read; fails once the job is cancelled.
    fn before_read(&mut self) -> io::Result<()> {
        loop {
            if self.is_cancelled() {
                return Err(cancelled_error());
            }
            let wait = match &mut self.bucket {
                Some(bucket) => bucket.wait(),
                None => Duration::ZERO,
            };
            if wait.is_zero() {
                return Ok(());
            }
            std::thread::sleep(wait.min(SLEEP_SLICE));
        }
    }

    fn after_read(&mut self, n: usize) {
        self.bytes_read += n as u64;
        if let Some(bucket) = &mut self.bucket {
            bucket.take(n);
        }
    }

    /// `inner` read under this control.
    pub fn reader<R: Read>(&mut self, inner: R) -> Controlled<'_, R> {
        Controlled {
            inner,
            control: self,
        }
    }
}

fn cancelled_error() -> io::Error {
    io::Error::other(CANCELLED)
}

/// A reader whose reads go through a [`ReadControl`].
#[derive(Debug)]
pub struct Controlled<'c, R> {
    inner: R,
    control: &'c mut ReadControl,
}

impl<R: Read> Read for Controlled<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.control.before_read()?;
        let n = self.inner.read(buf)?;
        self.control.after_read(n);
        Ok(n)
    }
}

/// The SHA-256 of a whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// Lowercase hex.
    pub sha256: String,
    /// Bytes hashed (the file's size when it was read).
    pub size: u64,
}

/// Why [`hash_file`] did not produce a digest. [`ReadError::reason`] is a stable short name.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file does not exist.
    #[error("{}: no such file", .path.to_string_lossy().escape_default())]
    NotFound { path: PathBuf },
    /// Reading failed, or the path is not a regular file.
    #[error("{}: cannot read the file: {}", .path.to_string_lossy().escape_default(), .detail)]
    Io { path: PathBuf, detail: String },
    /// The job was cancelled before it finished.
    #[error("{}: cancelled before the file was read to its end (the plugin stopped or the job was cancelled); run it again", .path.to_string_lossy().escape_default())]
    Cancelled { path: PathBuf },
}

impl ReadError {
    /// Stable short name of the failure, used as the Erlang error atom.
    pub fn reason(&self) -> &'static str {
        match self {
            ReadError::NotFound { .. } => "not_found",
            ReadError::Io { .. } => "io",
            ReadError::Cancelled { .. } => "cancelled",
        }
    }
}

/// Hashes the whole regular file at `path` with SHA-256, reading through `control`.
///
/// ```
/// use guard_core::reading::{hash_file, ReadControl};
///
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("f");
/// std::fs::write(&path, b"abc")?;
/// let hashed = hash_file(&path, &mut ReadControl::unlimited())?;
/// assert_eq!(hashed.size, 3);
/// assert_eq!(hashed.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// let gone = hash_file(&dir.path().join("gone"), &mut ReadControl::unlimited()).unwrap_err();
/// assert_eq!(gone.reason(), "not_found");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn hash_file(path: &Path, control: &mut ReadControl) -> Result<Hashed, ReadError> {
    let io_err = |e: io::Error, control: &ReadControl| {
        if control.is_cancelled() {
            ReadError::Cancelled {
                path: path.to_path_buf(),
            }
        } else if e.kind() == io::ErrorKind::NotFound {
            ReadError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            ReadError::Io {
                path: path.to_path_buf(),
                detail: e.to_string().replace(['\n', '\r'], " "),
            }
        }
    };
    let file = File::open(path).map_err(|e| io_err(e, control))?;
    let meta = file.metadata().map_err(|e| io_err(e, control))?;
    if !meta.is_file() {
        return Err(ReadError::Io {
            path: path.to_path_buf(),
            detail: "not a regular file".to_string(),
        });
    }
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut reader = control.reader(file);
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                drop(reader);
                return Err(io_err(e, control));
            }
        }
    }
    drop(reader);
    if control.is_cancelled() {
        return Err(ReadError::Cancelled {
            path: path.to_path_buf(),
        });
    }
    Ok(Hashed {
        sha256: hex(&hasher.finalize()),
        size,
    })
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn hashes_like_sha256() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs_write(&path, &data);
        let mut control = ReadControl::unlimited();
        let got = hash_file(&path, &mut control).unwrap();
        assert_eq!(got.sha256, hex(&Sha256::digest(&data)));
        assert_eq!(got.size, data.len() as u64);
        assert_eq!(control.bytes_read(), data.len() as u64);
    }

    #[test]
    fn hash_errors() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut control = ReadControl::unlimited();
        let err = hash_file(&dir.path().join("absent"), &mut control).unwrap_err();
        assert_eq!(err.reason(), "not_found");
        let err = hash_file(dir.path(), &mut control).unwrap_err();
        assert_eq!(err.reason(), "io");
    }

    #[test]
    fn a_cancelled_control_reads_nothing() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("f");
        fs_write(&path, b"some bytes");
        let cancel: CancelFlag = Arc::new(AtomicBool::new(true));
        let mut control = ReadControl::new(cancel, None);
        let err = hash_file(&path, &mut control).unwrap_err();
        assert_eq!(err.reason(), "cancelled");
        assert_eq!(control.bytes_read(), 0);
    }

    #[test]
    fn cancel_stops_a_throttled_read_promptly() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("f");
        fs_write(&path, &vec![7u8; 4 * 1024 * 1024]);
        let cancel: CancelFlag = Arc::new(AtomicBool::new(false));
        // 1 MiB/s: reading the 4 MiB file would take about 4 s.
        let mut control = ReadControl::new(cancel.clone(), NonZeroU64::new(1024 * 1024));
        let setter = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                cancel.store(true, Ordering::Relaxed);
            })
        };
        let start = Instant::now();
        let err = hash_file(&path, &mut control).unwrap_err();
        let took = start.elapsed();
        setter.join().unwrap();
        assert_eq!(err.reason(), "cancelled");
        assert!(took < Duration::from_millis(800), "took {took:?}");
        assert!(control.bytes_read() < 2 * 1024 * 1024);
    }

    fn fs_write(path: &Path, data: &[u8]) {
        let mut f = File::create(path).unwrap();
        f.write_all(data).unwrap();
    }
}
