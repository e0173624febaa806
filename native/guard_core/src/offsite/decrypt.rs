//! The age side of a fetch ([`super::fetch`]): the identities read from the operator's file, and
//! decryption of a ciphertext read in order from a stream ([`decrypt_and_verify`]: the
//! download's ranges as they complete) into the export's temporary file, each decrypted chunk
//! also handed to the export's verification on a thread of its own, so neither the ciphertext
//! nor the export is ever read from disk.
//!
//! Nothing here decides whether what it produced counts: decryption runs alongside the download,
//! and [`super::fetch`] looks at its verdict (and keeps its file) only once the SHA-256 of the
//! whole download matched the stored one; otherwise the verdict is dropped with the file.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path as FsPath;
use std::sync::mpsc::{channel, sync_channel, Sender, SyncSender};

use super::download::{start_writeback, write_at, ChannelReader};
use super::error::one_line;
use super::fetch::{Check, Verdict};
use super::OffsiteError;
use crate::reading::ReadControl;
use crate::verify::{verify_stream, VerifyError};

/// The age identities of a fetch.
pub(super) type Identities = Vec<Box<dyn age::Identity + Send + Sync>>;

/// The identities in the file at `path` (`identity`: never quoting the file).
pub(super) fn load_identities(path: &FsPath) -> Result<Identities, OffsiteError> {
    let bad = |detail: String| OffsiteError::Identity {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path).map_err(|e| bad(one_line(&e.to_string())))?;
    // The parser's own errors may quote a line of the file: never show them.
    let parsed = age::IdentityFile::from_buffer(BufReader::new(file)).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            bad("the file does not hold age identities (AGE-SECRET-KEY-1… lines as written by age-keygen)".into())
        } else {
            bad(format!("cannot read it ({})", e.kind()))
        }
    })?;
    let identities = parsed.into_identities().map_err(|_| {
        bad("the identities in it cannot be used (passphrase-protected or plugin identities are not supported)".into())
    })?;
    if identities.is_empty() {
        return Err(bad("the file holds no identity".into()));
    }
    Ok(identities)
}

/// How much of a decrypted export is written before its writeback to disk is started.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;
/// The size of the decrypted chunks handed from decryption to the export's check (and of each
/// write of the export, the size that costs the page cache least CPU, see `write_at`): few
/// enough handovers between the threads, few enough bytes in each.
const DECRYPTED_CHUNK: usize = 256 * 1024;
/// How many decrypted chunks wait for the export's check at most.
const DECRYPTED_CHUNKS: usize = 8;

/// Decrypts the age ciphertext read from `ciphertext` ([`Check::Age`]; through `control`: its
/// `io_limit` and cancellation) into the file `to` (created, written in chunks of 256 KiB, synced;
/// `named`: the export's path, which the verification's errors name)
/// and, with `verify`, verifies the export as it is written, on a thread of its own at the
/// priority of the calling job, fed each decrypted chunk (at most 8 wait for it: with the chunk
/// being decrypted and the one being verified, 2.5 MiB of memory). Returns age's verdict:
/// the export's size, with the verdict of its verification when `verify`. `key` names the
/// object in errors.
///
/// The verdicts are only what decryption and verification found in the bytes they were given;
/// whether those were the stored bytes is the caller's to establish.
pub(super) fn decrypt_and_verify<R: Read>(
    ciphertext: R,
    (to, named): (&FsPath, &FsPath),
    identities: &Identities,
    key: &str,
    control: &mut ReadControl,
    verify: bool,
) -> Result<(u64, Option<Verdict>), OffsiteError> {
    if !verify {
        return decrypt_into(ciphertext, to, identities, key, control, None).map(|n| (n, None));
    }
    let mut check_control = ReadControl::new(control.cancel_flag(), None);
    let job = crate::worker::current_priority();
    std::thread::scope(|scope| {
        let (chunks, decrypted) = sync_channel::<Decrypted>(DECRYPTED_CHUNKS);
        let checking = std::thread::Builder::new()
            .name("emqx_guard_verify".into())
            .spawn_scoped(scope, move || {
                crate::worker::lower_like(job);
                let raw = ChannelReader::new(decrypted);
                verify_stream(named, raw, true, &mut check_control)
            })
            .map_err(|e| OffsiteError::io(to, &io::Error::other(e)))?;
        let written = decrypt_into(ciphertext, to, identities, key, control, Some(chunks));
        let verified = checking.join().unwrap_or_else(|_| {
            Err(VerifyError::Io {
                path: named.to_path_buf(),
                detail: "the checking thread panicked".into(),
            })
        });
        Ok((written?, Some(verified)))
    })
}

/// A decrypted chunk on its way to the export's verification: its buffer goes back to
/// decryption once read, so the few buffers in use are allocated (and zeroed) once.
struct Decrypted {
    data: Vec<u8>,
    len: usize,
    back: Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Decrypted {
    fn as_ref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

impl Drop for Decrypted {
    fn drop(&mut self) {
        let _ = self.back.send(std::mem::take(&mut self.data));
    }
}

/// Decrypts `ciphertext` into `to` ([`Check::Age`]), each decrypted chunk also sent to `chunks`
/// while its reader listens; the export's size. `key` names the object in errors.
fn decrypt_into<R: Read>(
    ciphertext: R,
    to: &FsPath,
    identities: &Identities,
    key: &str,
    control: &mut ReadControl,
    mut chunks: Option<SyncSender<Decrypted>>,
) -> Result<u64, OffsiteError> {
    let decryptor =
        age::Decryptor::new(control.reader(ciphertext)).map_err(|e| decrypt_error(&e, key))?;
    let mut plain = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| decrypt_error(&e, key))?;
    let out = File::create(to).map_err(|e| OffsiteError::io(to, &e))?;
    let (back, spare) = channel::<Vec<u8>>();
    let mut written = 0u64;
    loop {
        let mut chunk = spare.try_recv().unwrap_or_default();
        chunk.resize(DECRYPTED_CHUNK, 0);
        let n = match fill(&mut plain, &mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.to_string() == "cancelled" => return Err(OffsiteError::Cancelled),
            Err(_) => {
                return Err(OffsiteError::Refused {
                    check: Check::Age,
                    detail: format!(
                        "{key} is damaged or was altered (the authentication of its encrypted data failed)"
                    ),
                })
            }
        };
        write_at(&out, &chunk[..n], written).map_err(|e| OffsiteError::io(to, &e))?;
        let n = n as u64;
        // The export is kept: its writeback starts as it is written (see `start_writeback`).
        if (written + n) / WRITEBACK_STEP != written / WRITEBACK_STEP {
            start_writeback(
                &out,
                written / WRITEBACK_STEP * WRITEBACK_STEP,
                WRITEBACK_STEP,
            );
        }
        written += n;
        let decrypted = Decrypted {
            data: chunk,
            len: n as usize,
            back: back.clone(),
        };
        // A check that stopped (its verdict made) is fed no more (the buffer comes back).
        if chunks.as_ref().is_some_and(|c| c.send(decrypted).is_err()) {
            chunks = None;
        }
    }
    // Its end for the check, which finishes while the export is synced.
    drop(chunks);
    out.sync_all().map_err(|e| OffsiteError::io(to, &e))?;
    Ok(written)
}

/// Reads from `from` until `buf` is full or `from` ends; how many bytes it holds.
fn fill(from: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match from.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn decrypt_error(e: &age::DecryptError, key: &str) -> OffsiteError {
    let refused = |detail: String| OffsiteError::Refused {
        check: Check::Age,
        detail,
    };
    match e {
        age::DecryptError::NoMatchingKeys => OffsiteError::Decrypt(
            "no identity in the identity file matches the object's recipient: use the identity of the recipient it was uploaded with".into(),
        ),
        age::DecryptError::Io(io) if io.to_string() == "cancelled" => OffsiteError::Cancelled,
        age::DecryptError::InvalidMac
        | age::DecryptError::DecryptionFailed
        | age::DecryptError::InvalidHeader => refused(format!(
            "the age header of {key} is damaged or was altered (its authentication failed)"
        )),
        age::DecryptError::UnknownFormat => refused(format!(
            "{key} is not an age file (its header is damaged, or something else was stored under its name)"
        )),
        other => OffsiteError::Decrypt(one_line(&other.to_string())),
    }
}
