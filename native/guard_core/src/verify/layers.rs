//! The layers [`super::verify`] reads an export through: the raw bytes hashed and counted
//! ([`Hashing`]), the gzip stream inflated ([`Inflated`]), and what follows the tar ([`drain`]).

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::GzDecoder;
use sha2::{Digest, Sha256};

/// Counts (and hashes) whatever raw bytes remain after the gzip member ended.
pub(super) fn count_rest<R: BufRead>(reader: &mut R) -> io::Result<u64> {
    io::copy(reader, &mut io::sink())
}

/// Passes the raw file bytes through while hashing them; remembers the first read error so that a
/// failing disk is reported as `io`, not as a gzip problem.
pub(super) struct Hashing<R> {
    pub(super) inner: R,
    pub(super) hasher: Option<Sha256>,
    pub(super) bytes: u64,
    pub(super) failure: Option<String>,
}

impl<R> Hashing<R> {
    pub(super) fn new(inner: R, hash: bool) -> Self {
        Hashing {
            inner,
            hasher: hash.then(Sha256::new),
            bytes: 0,
            failure: None,
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if let Some(hasher) = &mut self.hasher {
                    hasher.update(&buf[..n]);
                }
                self.bytes += n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted && self.failure.is_none() {
                    self.failure = Some(e.to_string());
                }
                Err(e)
            }
        }
    }
}

/// The first error the gzip decoder reported.
pub(super) struct GzFailure {
    pub(super) kind: io::ErrorKind,
    pub(super) message: String,
}

/// The inflated (tar) byte stream. Remembers the first gzip error, after which it keeps failing,
/// and whether the end of the stream was reached.
pub(super) struct Inflated<R: BufRead> {
    pub(super) gz: GzDecoder<R>,
    pub(super) failure: Option<GzFailure>,
    pub(super) at_eof: bool,
}

impl<R: BufRead> Inflated<R> {
    pub(super) fn new(gz: GzDecoder<R>) -> Self {
        Inflated {
            gz,
            failure: None,
            at_eof: false,
        }
    }
}

impl<R: Read> Inflated<BufReader<Hashing<R>>> {
    /// Raw bytes read from the file so far (including what sits in the read buffer).
    pub(super) fn raw_bytes(&self) -> u64 {
        self.gz.get_ref().get_ref().bytes
    }
}

impl<R: BufRead> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(io::Error::new(f.kind, f.message.clone()));
        }
        match self.gz.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.at_eof = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failure = Some(GzFailure {
                        kind: e.kind(),
                        message: e.to_string(),
                    });
                }
                Err(e)
            }
        }
    }
}

/// What follows the last tar entry.
pub(super) struct Tail {
    /// The tar walk stopped at a zero block (not at the end of the stream).
    pub(super) saw_end_marker: bool,
    /// Non-zero bytes after the end-of-archive marker.
    pub(super) nonzero_after_end: u64,
}

/// Reads the inflated stream to its end. `walked_ok` says the tar walk ended normally, in which case
/// it ended on a zero block unless the stream was already exhausted.
pub(super) fn drain<R: BufRead>(inflated: &mut Inflated<R>, walked_ok: bool) -> io::Result<Tail> {
    let saw_end_marker = walked_ok && !inflated.at_eof;
    let mut nonzero_after_end = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match inflated.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                nonzero_after_end += buf[..n].iter().filter(|b| **b != 0).count() as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Tail {
        saw_end_marker,
        nonzero_after_end,
    })
}
