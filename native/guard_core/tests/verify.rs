//! `verify` against real files: the EMQX 5.3.2 fixture and tarballs built here in EMQX's layout
//! (one top directory named like the file, files only, no directory entries).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use guard_core::verify::{verify, VerifyError};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../test/fixtures/emqx-5.3.2/emqx-export-2026-11-27-18-58-45.951.tar.gz"
);
const NAME: &str = "emqx-export-2024-01-25-10-41-48.962.tar.gz";
const BASE: &str = "emqx-export-2024-01-25-10-41-48.962";

/// Deterministic, partly compressible bytes, so the gzip stream has real Huffman blocks.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if i % 3 == 0 {
                b'a' + (i % 7) as u8
            } else {
                (x >> 33) as u8
            }
        })
        .collect()
}

/// A tar header for `path` written byte for byte, so that paths `tar::Builder` refuses (absolute,
/// `..`) can be made too.
fn raw_header(path: &[u8], size: u64) -> tar::Header {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    header
}

/// An uncompressed tar of `files` (paths as given, files only), ended with the end-of-archive marker.
fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let header = raw_header(path.as_bytes(), data.len() as u64);
        builder.append(&header, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// The files of an export in EMQX's layout under `base`.
fn export_files(base: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            format!("{base}/META.hocon"),
            b"edition = ee\nversion = \"5.8.4\"\n".to_vec(),
        ),
        (format!("{base}/cluster.hocon"), b"".to_vec()),
        (format!("{base}/mnesia/emqx_admin"), noise(40_000, 1)),
        (format!("{base}/mnesia/emqx_acl"), noise(25_000, 2)),
        (format!("{base}/mnesia/emqx_banned"), noise(700, 3)),
    ]
}

fn good_export() -> Vec<u8> {
    gzip(&tar_of(&export_files(BASE)))
}

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn reason(path: &Path) -> &'static str {
    match verify(path) {
        Ok(v) => panic!("{} verified unexpectedly: {v:?}", path.display()),
        Err(e) => e.reason(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn real_emqx_532_export_verifies() {
    let dir = TempDir::new().unwrap();
    let name = Path::new(FIXTURE).file_name().unwrap();
    let path = dir.path().join(name);
    fs::copy(FIXTURE, &path).unwrap();
    let v = verify(&path).unwrap();
    assert_eq!(v.version, "5.3.2");
    assert_eq!(v.edition, "ce");
    assert_eq!(v.entries, 9);
    // Sizes as listed by `tar tzvf` on the fixture.
    assert_eq!(v.bytes, 31 + 637 + 910 + 670 + 692 + 617 + 632 + 625);
    assert_eq!(v.sha256, sha256_hex(&fs::read(&path).unwrap()));
}

#[test]
fn real_export_renamed_is_wrong_top_dir() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(NAME);
    fs::copy(FIXTURE, &path).unwrap();
    let err = verify(&path).unwrap_err();
    assert_eq!(err.reason(), "wrong_top_dir");
    let text = err.to_string();
    assert!(text.contains(BASE), "{text}");
    assert!(text.contains("renamed"), "{text}");
}

#[test]
fn good_export_reports_counts_version_and_hash() {
    let dir = TempDir::new().unwrap();
    let bytes = good_export();
    let path = write(&dir, NAME, &bytes);
    let v = verify(&path).unwrap();
    let files = export_files(BASE);
    assert_eq!(v.entries, files.len() as u64);
    assert_eq!(
        v.bytes,
        files.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
    );
    assert_eq!(v.version, "5.8.4");
    assert_eq!(v.edition, "ee");
    assert_eq!(v.sha256, sha256_hex(&bytes));
}

#[test]
fn directory_entries_and_dot_slash_paths_are_accepted() {
    let dir = TempDir::new().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir_header = tar::Header::new_gnu();
    dir_header.set_entry_type(tar::EntryType::Directory);
    dir_header.set_size(0);
    dir_header.set_mode(0o755);
    builder
        .append_data(&mut dir_header, format!("./{BASE}/"), &[][..])
        .unwrap();
    for (path, data) in export_files(BASE) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, format!("./{path}"), data.as_slice())
            .unwrap();
    }
    let path = write(&dir, NAME, &gzip(&builder.into_inner().unwrap()));
    let v = verify(&path).unwrap();
    assert_eq!(v.entries, export_files(BASE).len() as u64 + 1);
}

#[test]
fn pax_global_header_is_not_an_entry() {
    let dir = TempDir::new().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let record = b"18 comment=hello\n";
    let mut global = raw_header(b"pax_global_header", record.len() as u64);
    global.set_entry_type(tar::EntryType::XGlobalHeader);
    global.set_cksum();
    builder.append(&global, &record[..]).unwrap();
    for (path, data) in export_files(BASE) {
        builder
            .append(
                &raw_header(path.as_bytes(), data.len() as u64),
                data.as_slice(),
            )
            .unwrap();
    }
    let path = write(&dir, NAME, &gzip(&builder.into_inner().unwrap()));
    assert_eq!(
        verify(&path).unwrap().entries,
        export_files(BASE).len() as u64
    );
}

#[test]
fn any_file_name_sets_the_expected_top_dir() {
    let dir = TempDir::new().unwrap();
    let path = write(
        &dir,
        "nightly.tar.gz",
        &gzip(&tar_of(&export_files("nightly"))),
    );
    assert_eq!(verify(&path).unwrap().version, "5.8.4");
}

#[test]
fn truncated_anywhere_is_truncated() {
    let dir = TempDir::new().unwrap();
    let bytes = good_export();
    let len = bytes.len();
    // 1: inside the magic; 5 and 9: inside the 10-byte gzip header; then the deflate data at
    // several points; len-8: just before the CRC/length trailer; len-3: inside the trailer.
    for cut in [
        1,
        5,
        9,
        12,
        len / 4,
        len / 2,
        3 * len / 4,
        len - 9,
        len - 8,
        len - 3,
        len - 1,
    ] {
        let path = write(&dir, NAME, &bytes[..cut]);
        let err = verify(&path).unwrap_err();
        assert_eq!(err.reason(), "truncated", "cut at {cut} of {len}: {err}");
        assert!(err.to_string().contains("cut off"), "{err}");
    }
}

#[test]
fn flipped_byte_is_corrupt() {
    let dir = TempDir::new().unwrap();
    let bytes = good_export();
    let len = bytes.len();
    // The middle of the deflate data, the CRC and the length in the trailer.
    for at in [len / 2, len - 6, len - 2] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        let path = write(&dir, NAME, &damaged);
        assert_eq!(reason(&path), "corrupt", "flipped byte {at} of {len}");
    }
}

#[test]
fn damaged_gzip_header_is_corrupt() {
    let dir = TempDir::new().unwrap();
    let mut bytes = good_export();
    bytes[2] = 7; // compression method other than deflate
    let path = write(&dir, NAME, &bytes);
    assert_eq!(reason(&path), "corrupt");
}

#[test]
fn trailing_garbage_is_corrupt() {
    let dir = TempDir::new().unwrap();
    let mut bytes = good_export();
    bytes.extend_from_slice(b"garbage");
    let path = write(&dir, NAME, &bytes);
    let err = verify(&path).unwrap_err();
    assert_eq!(err.reason(), "corrupt");
    assert!(err.to_string().contains("7 bytes"), "{err}");
}

#[test]
fn tar_cut_before_compression_is_bad_tar() {
    let dir = TempDir::new().unwrap();
    let tar = tar_of(&export_files(BASE));
    // Without the end-of-archive marker (the last 1024 zero bytes).
    let path = write(&dir, NAME, &gzip(&tar[..tar.len() - 1024]));
    assert_eq!(reason(&path), "bad_tar");
    // Cut inside an entry's data.
    let path = write(&dir, NAME, &gzip(&tar[..tar.len() / 2]));
    assert_eq!(reason(&path), "bad_tar");
}

#[test]
fn garbage_inside_valid_gzip_is_bad_tar() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, NAME, &gzip(&noise(10_000, 9)));
    let err = verify(&path).unwrap_err();
    assert_eq!(err.reason(), "bad_tar", "{err}");
}

#[test]
fn data_after_end_of_archive_is_bad_tar() {
    let dir = TempDir::new().unwrap();
    let mut tar = tar_of(&export_files(BASE));
    tar.extend_from_slice(&noise(512, 4));
    let path = write(&dir, NAME, &gzip(&tar));
    assert_eq!(reason(&path), "bad_tar");
}

#[test]
fn wrong_top_directory() {
    let dir = TempDir::new().unwrap();
    let other = "emqx-export-2024-01-25-10-41-49.000";
    let path = write(&dir, NAME, &gzip(&tar_of(&export_files(other))));
    let err = verify(&path).unwrap_err();
    assert_eq!(err.reason(), "wrong_top_dir");
    assert!(err.to_string().contains(other), "{err}");

    // One stray file next to an otherwise correct layout.
    let mut files = export_files(BASE);
    files.push(("README".to_string(), b"hi".to_vec()));
    let path = write(&dir, NAME, &gzip(&tar_of(&files)));
    assert_eq!(reason(&path), "wrong_top_dir");

    // The top "directory" is a file.
    let files = vec![(BASE.to_string(), b"x".to_vec())];
    let path = write(&dir, NAME, &gzip(&tar_of(&files)));
    assert_eq!(reason(&path), "wrong_top_dir");
}

#[test]
fn missing_meta_hocon() {
    let dir = TempDir::new().unwrap();
    let files: Vec<_> = export_files(BASE)
        .into_iter()
        .filter(|(p, _)| !p.ends_with("META.hocon"))
        .collect();
    let path = write(&dir, NAME, &gzip(&tar_of(&files)));
    let err = verify(&path).unwrap_err();
    assert_eq!(err.reason(), "missing_meta");
    assert!(err.to_string().contains("META.hocon"), "{err}");

    // META.hocon one level too deep does not count.
    let mut files = files;
    files.push((format!("{BASE}/mnesia/META.hocon"), b"version = 1".to_vec()));
    let path = write(&dir, NAME, &gzip(&tar_of(&files)));
    assert_eq!(reason(&path), "missing_meta");
}

#[test]
fn meta_hocon_without_version_is_missing_meta() {
    let dir = TempDir::new().unwrap();
    let mut files = export_files(BASE);
    files[0].1 = b"edition = ce\n# version = \"5.3.2\"\n".to_vec();
    let path = write(&dir, NAME, &gzip(&tar_of(&files)));
    let err = verify(&path).unwrap_err();
    assert_eq!(err.reason(), "missing_meta");
    assert!(err.to_string().contains("version"), "{err}");
}

#[test]
fn empty_archive_is_missing_meta() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, NAME, &gzip(&tar_of(&[])));
    assert_eq!(reason(&path), "missing_meta");
}

#[test]
fn missing_cluster_hocon() {
    let dir = TempDir::new().unwrap();
    let files: Vec<_> = export_files(BASE)
        .into_iter()
        .filter(|(p, _)| !p.ends_with("cluster.hocon"))
        .collect();
    let path = write(&dir, NAME, &gzip(&tar_of(&files)));
    assert_eq!(reason(&path), "missing_cluster_conf");
}

#[test]
fn dot_dot_entry_is_unsafe() {
    let dir = TempDir::new().unwrap();
    let mut files = export_files(BASE);
    files.push((
        format!("{BASE}/../../etc/cron.d/evil"),
        b"* * * * * root sh".to_vec(),
    ));
    let path = write(&dir, NAME, &gzip(&tar_of(&files)));
    let err = verify(&path).unwrap_err();
    assert_eq!(err.reason(), "unsafe_path");
    assert!(err.to_string().contains("../../etc/cron.d/evil"), "{err}");
}

#[test]
fn absolute_entry_is_unsafe() {
    let dir = TempDir::new().unwrap();
    let mut files = export_files(BASE);
    files.insert(0, ("/etc/passwd".to_string(), b"root:x:0:0".to_vec()));
    let path = write(&dir, NAME, &gzip(&tar_of(&files)));
    assert_eq!(reason(&path), "unsafe_path");
}

#[test]
fn symlink_entry_pointing_outside_is_unsafe() {
    let dir = TempDir::new().unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in export_files(BASE) {
        tar.append(
            &raw_header(path.as_bytes(), data.len() as u64),
            data.as_slice(),
        )
        .unwrap();
    }
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    tar.append_link(&mut link, format!("{BASE}/mnesia/link"), "/etc/shadow")
        .unwrap();
    let path = write(&dir, NAME, &gzip(&tar.into_inner().unwrap()));
    assert_eq!(reason(&path), "unsafe_path");
}

#[test]
fn empty_file() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, NAME, b"");
    let err = verify(&path).unwrap_err();
    assert_eq!(err.reason(), "empty_file");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn not_gzip() {
    let dir = TempDir::new().unwrap();
    // A plain, uncompressed tar in the right layout.
    let path = write(&dir, NAME, &tar_of(&export_files(BASE)));
    assert_eq!(reason(&path), "not_gzip");
    let path = write(&dir, NAME, b"x");
    assert_eq!(reason(&path), "not_gzip");
}

#[test]
fn missing_file_is_not_found() {
    let dir = TempDir::new().unwrap();
    assert_eq!(reason(&dir.path().join(NAME)), "not_found");
}

#[test]
fn directory_is_io() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(NAME);
    fs::create_dir(&path).unwrap();
    assert_eq!(reason(&path), "io");
}

#[test]
fn every_message_is_one_line_naming_the_file() {
    let dir = TempDir::new().unwrap();
    let bytes = good_export();
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"hello".to_vec(),
        bytes[..bytes.len() / 2].to_vec(),
        gzip(&noise(2000, 5)),
    ];
    for case in cases {
        let path = write(&dir, NAME, &case);
        let err: VerifyError = verify(&path).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains(NAME), "{text}");
    }
}
