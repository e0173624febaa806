//! Writing an export in EMQX's layout for the tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

/// Writes `<dir>/<base>.tar.gz`, an export in EMQX's layout (`<base>/META.hocon` of an EMQX
/// 5.3.2 CE node, an empty `<base>/cluster.hocon` and `<base>/<table_name>` holding `table`),
/// its gzip stream stored, not deflated, so the file is about as large as `table`; returns
/// its path.
pub fn write_export(dir: &Path, base: &str, table_name: &str, table: &[u8]) -> PathBuf {
    let path = dir.join(format!("{base}.tar.gz"));
    let gz = GzEncoder::new(fs::File::create(&path).unwrap(), Compression::none());
    let mut builder = tar::Builder::new(gz);
    for (name, data) in [
        (
            "META.hocon",
            b"edition = ce\nversion = \"5.3.2\"\n".as_slice(),
        ),
        ("cluster.hocon", b"".as_slice()),
        (table_name, table),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, format!("{base}/{name}"), data)
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    path
}
