//! Streaming check that an EMQX data export tarball is complete and importable.
//!
//! [`verify`] reads the file once, front to back, in constant memory (a few hundred KiB whatever the
//! file size). While reading it
//! - hashes the raw bytes (SHA-256 of the whole file),
//! - inflates the gzip stream and checks that it is complete, that its CRC and length trailer match,
//!   and that nothing follows it,
//! - walks the tar archive to its end-of-archive marker, checking every header,
//! - checks EMQX's layout: every entry lies under ONE top directory named exactly like the file
//!   without `.tar.gz` (EMQX's import refuses anything else), `<top>/META.hocon` and
//!   `<top>/cluster.hocon` are present, and no entry path (or link target) is absolute or has a `..`.
//!
//! A real export has no directory entries at all, only files such as `<top>/META.hocon`, so the top
//! directory is known only from the entry paths; directory entries are accepted too.
//!
//! Memory stays constant for any input except one kind of crafted archive: the `tar` crate reads a
//! GNU long-name or PAX extension header's data whole, so a forged header announcing gigabytes of
//! "long name" costs that much memory. EMQX's exports have none of those headers.
//!
//! When the content looks wrong (bad tar header, unsafe or foreign path), the rest of the gzip stream
//! is still read: a damaged or cut-off gzip stream explains garbage content, so `truncated` and
//! `corrupt` win over `bad_tar`, `wrong_top_dir` and `unsafe_path`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::bufread::GzDecoder;
use sha2::Digest;

use crate::reading::ReadControl;

mod layers;

use layers::{count_rest, drain, GzFailure, Hashing, Inflated};

/// How much of `META.hocon` is read; the rest of an oversized file is skipped.
const META_LIMIT: u64 = 64 * 1024;
/// Read buffer for the raw file.
const READ_BUFFER: usize = 128 * 1024;

/// What a successful [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Number of tar entries (files, and directories if the archive has any).
    pub entries: u64,
    /// Total uncompressed size of the entries' contents, in bytes (tar headers not counted).
    pub bytes: u64,
    /// `version` from `META.hocon`, e.g. `5.3.2`.
    pub version: String,
    /// `edition` from `META.hocon`, e.g. `ce` or `ee`.
    pub edition: String,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
}

/// Why a file is not a usable export. [`VerifyError::reason`] is a stable short name; `Display` is one
/// line for a person: what is wrong and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file does not exist.
    #[error("{}: no such file", shown(.path))]
    NotFound { path: PathBuf },
    /// The file is empty.
    #[error("{}: the file is empty (0 bytes): the export failed or was cut off; take a new export", shown(.path))]
    EmptyFile { path: PathBuf },
    /// The file does not start with the gzip magic bytes.
    #[error("{}: not a gzip file (it starts with {}): an EMQX export is a .tar.gz", shown(.path), .start)]
    NotGzip { path: PathBuf, start: String },
    /// The gzip stream (header, data or trailer) ends before it is complete.
    #[error("{}: gzip stream ends early after {} bytes: the file was cut off (incomplete export or copy)", shown(.path), .size)]
    Truncated { path: PathBuf, size: u64 },
    /// The gzip stream is damaged: bad header, bad compressed data, wrong CRC or length, or data after it.
    #[error("{}: {}: the file is damaged; take a new export", shown(.path), one_line(.detail))]
    Corrupt { path: PathBuf, detail: String },
    /// The gzip stream is fine but the tar inside is not.
    #[error("{}: the tar archive inside is malformed ({}): the export is unusable; take a new one", shown(.path), one_line(.detail))]
    BadTar { path: PathBuf, detail: String },
    /// An entry lies outside the one top directory EMQX's import requires.
    #[error("{}: entry `{}` is not under `{}/`: EMQX imports an export only if its one top directory matches the file name (was the file renamed?)", shown(.path), one_line(.entry), one_line(.expected))]
    WrongTopDir {
        path: PathBuf,
        entry: String,
        expected: String,
    },
    /// `<top>/META.hocon` is missing, or lacks `version` / `edition`.
    #[error("{}: {}: EMQX cannot import it", shown(.path), one_line(.detail))]
    MissingMeta { path: PathBuf, detail: String },
    /// `<top>/cluster.hocon` is missing.
    #[error("{}: `{}/cluster.hocon` is missing: EMQX cannot import it", shown(.path), one_line(.top))]
    MissingClusterConf { path: PathBuf, top: String },
    /// An entry path or link target is absolute or contains `..`.
    #[error("{}: unsafe entry `{}` (absolute path or `..`): refusing this archive", shown(.path), one_line(.entry))]
    UnsafePath { path: PathBuf, entry: String },
    /// Any other I/O error while reading the file.
    #[error("{}: cannot read the file: {}", shown(.path), one_line(.detail))]
    Io { path: PathBuf, detail: String },
    /// The check was cancelled before it finished (see [`verify_controlled`]): no verdict.
    #[error("{}: verification cancelled before it finished (the plugin stopped or the job was cancelled): no verdict; verify it again", shown(.path))]
    Cancelled { path: PathBuf },
}

impl VerifyError {
    /// Stable short name of the failure, used as the Erlang error atom.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::NotFound { .. } => "not_found",
            VerifyError::EmptyFile { .. } => "empty_file",
            VerifyError::NotGzip { .. } => "not_gzip",
            VerifyError::Truncated { .. } => "truncated",
            VerifyError::Corrupt { .. } => "corrupt",
            VerifyError::BadTar { .. } => "bad_tar",
            VerifyError::WrongTopDir { .. } => "wrong_top_dir",
            VerifyError::MissingMeta { .. } => "missing_meta",
            VerifyError::MissingClusterConf { .. } => "missing_cluster_conf",
            VerifyError::UnsafePath { .. } => "unsafe_path",
            VerifyError::Io { .. } => "io",
            VerifyError::Cancelled { .. } => "cancelled",
        }
    }

    /// True when the error says something about the file's content (a verdict: the file is not a
    /// usable export), false when the check could not reach a verdict (`not_found`, `io`,
    /// `cancelled`: the file may be fine; check it again later).
    pub fn is_verdict(&self) -> bool {
        !matches!(
            self,
            VerifyError::NotFound { .. } | VerifyError::Io { .. } | VerifyError::Cancelled { .. }
        )
    }
}

/// Verifies the export tarball at `path`; see the module documentation for every check.
///
/// Reads the file exactly once, in constant memory. The expected top directory is the file name
/// without `.tar.gz` (the whole file name if it does not end so, as EMQX's import does).
///
/// ```
/// use guard_core::verify::verify;
///
/// # let dir = tempfile::tempdir()?;
/// # let fixture = concat!(env!("CARGO_MANIFEST_DIR"),
/// #     "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// let path = dir.path().join("emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// std::fs::copy(fixture, &path)?; // a real export of EMQX 5.3.2
/// let found = verify(&path)?;
/// assert_eq!((found.version.as_str(), found.edition.as_str(), found.entries), ("5.3.2", "ce", 9));
///
/// // Renamed, it no longer matches its top directory; cut short, it is truncated.
/// let renamed = dir.path().join("emqx-export-2026-11-27-18-58-46.000.tar.gz");
/// std::fs::copy(&path, &renamed)?;
/// assert_eq!(verify(&renamed).unwrap_err().reason(), "wrong_top_dir");
/// let bytes = std::fs::read(&path)?;
/// std::fs::write(&path, &bytes[..bytes.len() / 2])?;
/// let cut = verify(&path).unwrap_err();
/// assert_eq!((cut.reason(), cut.is_verdict()), ("truncated", true));
/// assert!(!verify(&dir.path().join("absent.tar.gz")).unwrap_err().is_verdict());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(path: &Path) -> Result<Verified, VerifyError> {
    verify_controlled(path, &mut ReadControl::unlimited())
}

/// [`verify`], reading the file through `control`: its reads are counted, rate limited when
/// `control` has a limit, and stop once `control`'s job is cancelled, in which case the result
/// is [`VerifyError::Cancelled`] whatever else went wrong.
///
/// ```
/// use std::sync::atomic::Ordering;
/// use guard_core::reading::ReadControl;
/// use guard_core::verify::verify_controlled;
///
/// # let fixture = concat!(env!("CARGO_MANIFEST_DIR"),
/// #     "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz");
/// let mut control = ReadControl::unlimited();
/// let found = verify_controlled(fixture.as_ref(), &mut control)?;
/// assert_eq!(control.bytes_read(), std::fs::metadata(fixture)?.len());
///
/// control.cancel_flag().store(true, Ordering::Relaxed);
/// let cancelled = verify_controlled(fixture.as_ref(), &mut control).unwrap_err();
/// assert_eq!((cancelled.reason(), cancelled.is_verdict()), ("cancelled", false));
/// # let _ = found;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_controlled(path: &Path, control: &mut ReadControl) -> Result<Verified, VerifyError> {
    let result = verify_inner(path, control);
    cancelled_wins(path, control, result)
}

/// [`verify_controlled`] of an export that arrives as a stream (`raw`, its bytes in order, e.g.
/// as a download completes) instead of a file: `path` is the name it is to have (its file name
/// gives the top directory; errors name it), nothing is read from it. Unless `hash`, the bytes
/// are not hashed and [`Verified::sha256`] is empty (for a caller that hashes them itself).
/// Reads `raw` to its end unless it stops at a failure; an empty stream is `empty_file`.
pub(crate) fn verify_stream<R: Read>(
    path: &Path,
    raw: R,
    hash: bool,
    control: &mut ReadControl,
) -> Result<Verified, VerifyError> {
    let result = verify_source(path, control.reader(raw), hash);
    cancelled_wins(path, control, result)
}

fn cancelled_wins(
    path: &Path,
    control: &ReadControl,
    result: Result<Verified, VerifyError>,
) -> Result<Verified, VerifyError> {
    match result {
        Err(_) if control.is_cancelled() => Err(VerifyError::Cancelled {
            path: path.to_path_buf(),
        }),
        other => other,
    }
}

fn verify_inner(path: &Path, control: &mut ReadControl) -> Result<Verified, VerifyError> {
    let io_err = |e: io::Error| io_error(path, e);
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(VerifyError::Io {
            path: path.to_path_buf(),
            detail: "it is a directory, not a file".to_string(),
        });
    }
    if meta.len() == 0 {
        return Err(VerifyError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let file = File::open(path).map_err(io_err)?;
    verify_source(path, control.reader(file), true)
}

/// The checks of [`verify`] on the bytes of `raw`, hashed when `hash`; `path` names them.
fn verify_source<R: Read>(path: &Path, mut raw: R, hash: bool) -> Result<Verified, VerifyError> {
    let io_err = |e: io::Error| io_error(path, e);
    let magic = check_magic(path, &mut raw)?;
    let top = expected_top_dir(path);
    let raw = io::Cursor::new(magic).chain(raw);
    let raw = BufReader::with_capacity(READ_BUFFER, Hashing::new(raw, hash));
    let mut archive = tar::Archive::new(Inflated::new(GzDecoder::new(raw)));
    let mut scan = Scan::new(&top);
    let walked = scan.walk(&mut archive);
    let mut inflated = archive.into_inner();

    // Read what the tar walk left of the gzip stream: this checks the gzip trailer (CRC, length) and,
    // after a clean end-of-archive, that only zero padding follows it.
    let tail = drain(&mut inflated, walked.is_ok());
    if let Some(detail) = inflated.gz.get_mut().get_mut().failure.take() {
        return Err(VerifyError::Io {
            path: path.to_path_buf(),
            detail,
        });
    }
    if let Some(failure) = inflated.failure.take() {
        return Err(gzip_error(path, inflated.raw_bytes(), failure));
    }
    let tail = tail.map_err(io_err)?;
    let trailing = count_rest(inflated.gz.get_mut()).map_err(io_err)?;
    if trailing > 0 {
        return Err(VerifyError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "{trailing} bytes of unexpected data follow the end of the gzip stream"
            ),
        });
    }
    let hasher = inflated.gz.into_inner().into_inner().hasher;
    let sha256 = hasher.map_or_else(String::new, |h| crate::reading::hex(&h.finalize()));

    walked.map_err(|p| p.into_error(path, &top))?;
    if !tail.saw_end_marker {
        return Err(bad_tar(
            path,
            "no end-of-archive marker: the tar was cut off before it was compressed",
        ));
    }
    if tail.nonzero_after_end > 0 {
        return Err(bad_tar(
            path,
            &format!(
                "{} non-zero bytes after the end-of-archive marker",
                tail.nonzero_after_end
            ),
        ));
    }
    scan.finish(path, sha256)
}

/// Reads the first two bytes and checks the gzip magic `1f 8b`; returns them.
fn check_magic(path: &Path, raw: &mut impl Read) -> Result<[u8; 2], VerifyError> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match raw.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(path, e)),
        }
    }
    match (got, magic) {
        (2, [0x1f, 0x8b]) => Ok(magic),
        (0, _) => Err(VerifyError::EmptyFile {
            path: path.to_path_buf(),
        }),
        (1, [0x1f, _]) => Err(VerifyError::Truncated {
            path: path.to_path_buf(),
            size: 1,
        }),
        _ => Err(VerifyError::NotGzip {
            path: path.to_path_buf(),
            start: describe_start(&magic[..got]),
        }),
    }
}

/// A file path for a message: one line, control characters escaped.
fn shown(path: &Path) -> String {
    one_line(&path.to_string_lossy())
}

/// Text for a one-line message: control characters escaped, at most 200 characters.
fn one_line(text: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn describe_start(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The top directory EMQX expects: the file name without `.tar.gz`.
fn expected_top_dir(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_suffix(".tar.gz") {
        Some(base) => base.to_string(),
        None => name,
    }
}

fn io_error(path: &Path, e: io::Error) -> VerifyError {
    if e.kind() == io::ErrorKind::NotFound {
        VerifyError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        VerifyError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    }
}

fn bad_tar(path: &Path, detail: &str) -> VerifyError {
    VerifyError::BadTar {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Maps the first gzip decoder error; `size` is how many raw bytes were read by then.
fn gzip_error(path: &Path, size: u64, failure: GzFailure) -> VerifyError {
    if failure.kind == io::ErrorKind::UnexpectedEof {
        VerifyError::Truncated {
            path: path.to_path_buf(),
            size,
        }
    } else {
        let detail = if failure.message.contains("checksum") {
            "gzip checksum (CRC or length) does not match the data".to_string()
        } else if failure.message.contains("header") {
            "the gzip header is damaged".to_string()
        } else {
            format!("the gzip stream is corrupt ({})", failure.message)
        };
        VerifyError::Corrupt {
            path: path.to_path_buf(),
            detail,
        }
    }
}

/// A content problem found while walking the tar.
enum Problem {
    Tar(String),
    Unsafe(String),
    WrongTop(String),
}

impl Problem {
    fn into_error(self, path: &Path, top: &str) -> VerifyError {
        match self {
            Problem::Tar(detail) => bad_tar(path, &detail),
            Problem::Unsafe(entry) => VerifyError::UnsafePath {
                path: path.to_path_buf(),
                entry,
            },
            Problem::WrongTop(entry) => VerifyError::WrongTopDir {
                path: path.to_path_buf(),
                entry,
                expected: top.to_string(),
            },
        }
    }
}

/// What the tar walk collected.
struct Scan<'a> {
    top: &'a str,
    entries: u64,
    bytes: u64,
    meta: Option<Vec<u8>>,
    has_cluster_conf: bool,
}

/// Where an entry sits relative to the expected top directory.
enum Place {
    Top,
    Meta,
    ClusterConf,
    Other,
}

impl<'a> Scan<'a> {
    fn new(top: &'a str) -> Self {
        Scan {
            top,
            entries: 0,
            bytes: 0,
            meta: None,
            has_cluster_conf: false,
        }
    }

    /// Walks every entry up to the end-of-archive marker; stops at the first problem.
    fn walk<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<(), Problem> {
        let entries = archive.entries().map_err(|e| Problem::Tar(e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Problem::Tar(e.to_string()))?;
            if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
                // PAX global metadata (e.g. from `git archive`), not a file.
                continue;
            }
            let entry_path = entry
                .path()
                .map_err(|e| Problem::Tar(e.to_string()))?
                .into_owned();
            let shown = entry_path.to_string_lossy().into_owned();
            if !is_safe(&entry_path) {
                return Err(Problem::Unsafe(shown));
            }
            if let Some(link) = entry.link_name().map_err(|e| Problem::Tar(e.to_string()))? {
                if !is_safe(&link) {
                    return Err(Problem::Unsafe(format!("{shown} -> {}", link.display())));
                }
            }
            let kind = entry.header().entry_type();
            let place = self
                .place(&entry_path)
                .ok_or(Problem::WrongTop(shown.clone()))?;
            self.entries += 1;
            self.bytes += entry.size();
            match place {
                Place::Top if !kind.is_dir() => return Err(Problem::WrongTop(shown)),
                Place::Meta if kind.is_file() && self.meta.is_none() => {
                    let mut content = Vec::new();
                    entry
                        .by_ref()
                        .take(META_LIMIT)
                        .read_to_end(&mut content)
                        .map_err(|e| Problem::Tar(e.to_string()))?;
                    self.meta = Some(content);
                }
                Place::ClusterConf if kind.is_file() => self.has_cluster_conf = true,
                _ => {}
            }
        }
        Ok(())
    }

    /// `None` when the path is not under the expected top directory.
    fn place(&self, entry_path: &Path) -> Option<Place> {
        let mut parts = entry_path.components().filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        });
        if parts.next()?.to_str() != Some(self.top) {
            return None;
        }
        let second = parts.next();
        let third = parts.next();
        Some(match (second.and_then(|s| s.to_str()), third) {
            (None, _) => Place::Top,
            (Some("META.hocon"), None) => Place::Meta,
            (Some("cluster.hocon"), None) => Place::ClusterConf,
            _ => Place::Other,
        })
    }

    fn finish(self, path: &Path, sha256: String) -> Result<Verified, VerifyError> {
        let missing_meta = |detail: String| VerifyError::MissingMeta {
            path: path.to_path_buf(),
            detail,
        };
        let meta = match self.meta {
            Some(meta) => meta,
            None if self.entries == 0 => {
                return Err(missing_meta(format!(
                    "the archive is empty (expected `{}/META.hocon`)",
                    self.top
                )))
            }
            None => {
                return Err(missing_meta(format!(
                    "`{}/META.hocon` is missing",
                    self.top
                )))
            }
        };
        if !self.has_cluster_conf {
            return Err(VerifyError::MissingClusterConf {
                path: path.to_path_buf(),
                top: self.top.to_string(),
            });
        }
        let text = String::from_utf8_lossy(&meta);
        let version = meta_value(&text, "version")
            .ok_or_else(|| missing_meta("`META.hocon` has no `version`".to_string()))?;
        let edition = meta_value(&text, "edition")
            .ok_or_else(|| missing_meta("`META.hocon` has no `edition`".to_string()))?;
        Ok(Verified {
            entries: self.entries,
            bytes: self.bytes,
            version,
            edition,
            sha256,
        })
    }
}

/// True when the path is relative and has no `..` component.
fn is_safe(p: &Path) -> bool {
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The value of a top-level `key = value` (or `key: value`) line of a hocon file, quoted or not.
/// Comment lines (`#`, `//`) are skipped; an empty value counts as absent.
fn meta_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with("//") {
            return None;
        }
        let split = line.find(['=', ':'])?;
        let (k, rest) = (line[..split].trim(), line[split + 1..].trim());
        if k.trim_matches('"') != key {
            return None;
        }
        let value = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or(""),
            None => rest
                .split(|c: char| c.is_whitespace() || c == ',' || c == '#')
                .next()
                .unwrap_or(""),
        };
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz"
    );

    /// The export as a stream, in reads of at most `step` bytes (a download's pieces).
    struct Trickle(Vec<u8>, usize, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.2.min(buf.len()).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    fn streamed(name: &str, bytes: Vec<u8>, hash: bool) -> Result<Verified, VerifyError> {
        let path = Path::new("/nowhere").join(name);
        let mut control = ReadControl::unlimited();
        verify_stream(&path, Trickle(bytes, 0, 1), hash, &mut control)
    }

    #[test]
    fn a_stream_gets_the_verdict_of_its_file() {
        let name = "emqx-export-2026-11-27-18-58-45.951.tar.gz";
        let bytes = std::fs::read(FIXTURE).unwrap();
        let from_file = verify(Path::new(FIXTURE)).unwrap();
        // One byte per read: the magic, the gzip and the tar walk do not rely on read sizes.
        assert_eq!(streamed(name, bytes.clone(), true).unwrap(), from_file);
        let unhashed = streamed(name, bytes.clone(), false).unwrap();
        assert_eq!(unhashed.sha256, "");
        assert_eq!(unhashed.entries, from_file.entries);
        // Its name gives the top directory, as a file's does; cut short it is truncated.
        let renamed = streamed(
            "emqx-export-2026-11-27-18-58-46.000.tar.gz",
            bytes.clone(),
            true,
        );
        assert_eq!(renamed.unwrap_err().reason(), "wrong_top_dir");
        let cut = streamed(name, bytes[..bytes.len() / 2].to_vec(), false);
        assert_eq!(cut.unwrap_err().reason(), "truncated");
        assert_eq!(
            streamed(name, Vec::new(), true).unwrap_err().reason(),
            "empty_file"
        );
        assert_eq!(
            streamed(name, b"PK".to_vec(), true).unwrap_err().reason(),
            "not_gzip"
        );
    }
}
