//! The payload's archives, byte-reproducibly: `agent.zip` (members in walk order, one
//! timestamp, explicit modes) and `cloud-scripts.tgz` (CloudStack's Ant modes). Each file is
//! checked, as it is copied, to be the one the walk saw.

use super::{open_checked, Item};
use crate::epoch;
use flate2::{Compression, GzBuilder};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// Extensions whose content is already compressed: stored, not deflated again.
const STORED: &[&str] = &[
    "jar", "war", "zip", "gz", "tgz", "bz2", "xz", "zst", "png", "jpg", "jpeg", "gif", "ico",
    "woff", "woff2",
];

fn compression_for(name: &str) -> CompressionMethod {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext {
        Some(e) if STORED.contains(&e.as_str()) => CompressionMethod::Stored,
        _ => CompressionMethod::Deflated,
    }
}

/// Write the agent zip: every entry mode 0555 (as CloudStack's assembly does), one timestamp.
pub fn write_agent_zip(items: &[Item], out: File, epoch_secs: i64) -> io::Result<File> {
    let stamp = epoch::zip_datetime(epoch_secs)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let base = SimpleFileOptions::default()
        .last_modified_time(stamp)
        .unix_permissions(0o555);
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(256 * 1024, out));
    for item in items {
        if item.is_dir {
            zip.add_directory(item.name.as_str(), base)?;
            continue;
        }
        let options = base.compression_method(compression_for(&item.name));
        zip.start_file(item.name.as_str(), options)?;
        let mut source = open_checked(item)?;
        let copied = io::copy(&mut source, &mut zip)?;
        shrank(item, copied)?;
    }
    let writer = zip.finish()?;
    writer.into_inner().map_err(|e| e.into_error())
}

/// Where cloud-scripts.tgz records the agent zip's sha256 (`<hex>  <name>`): any change to
/// the agent changes the scripts tarball, and with it the signature CloudStack compares
/// before it re-patches a VM (it has no signature of the agent itself).
pub const AGENT_DIGEST_NAME: &str = "usr/share/systemvm/agent.sha256";
/// Where cloud-scripts.tgz names the digest its release compares it by (`md5`, `sha512`),
/// for the bundled scripts that write and print the signature.
pub const SIGNATURE_DIGEST_NAME: &str = "usr/share/systemvm/signature-digest";

/// The mode CloudStack's Ant tar gives a file of `cloud-scripts.tgz` (`systemvm/pom.xml`):
/// 0644 for names starting with `log` and for everything under a `logrotate.d/`, else 0755.
pub fn scripts_mode(name: &str) -> u32 {
    let mut parts = name.split('/').rev();
    let base = parts.next().unwrap_or_default();
    if base.starts_with("log") || parts.any(|dir| dir == "logrotate.d") {
        0o644
    } else {
        0o755
    }
}

/// Write cloud-scripts.tgz: files only (unpacking at `/` must not change the modes of `/etc`
/// or `/root`), with CloudStack's modes ([`scripts_mode`]); then the files `tail` returns
/// once the payload's are written (the agent digest, which waits for the agent zip).
pub fn write_scripts_tgz(
    items: &[Item],
    out: File,
    epoch_secs: i64,
    tail: impl FnOnce() -> io::Result<Vec<(String, Vec<u8>)>>,
) -> io::Result<File> {
    let gz = GzBuilder::new().mtime(0).write(
        BufWriter::with_capacity(256 * 1024, out),
        Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for item in items.iter().filter(|i| !i.is_dir) {
        let mut header = tar_header(item.size, scripts_mode(&item.name), epoch_secs)?;
        let mut source = Counted::new(open_checked(item)?);
        tar.append_data(&mut header, &item.name, &mut source)?;
        shrank(item, source.count)?;
    }
    for (name, bytes) in tail()? {
        let mut header = tar_header(bytes.len() as u64, 0o644, epoch_secs)?;
        tar.append_data(&mut header, &name, bytes.as_slice())?;
    }
    let gz = tar.into_inner()?;
    let mut writer = gz.finish()?;
    writer.flush()?;
    writer.into_inner().map_err(|e| e.into_error())
}

/// A regular file's header: root-owned, one timestamp.
fn tar_header(size: u64, mode: u32, epoch_secs: i64) -> io::Result<tar::Header> {
    let mtime = epoch_secs.max(0) as u64;
    crate::deb::tar_header(tar::EntryType::Regular, size, mode, mtime)
}

/// An error when fewer bytes than the walk saw were archived.
fn shrank(item: &Item, copied: u64) -> io::Result<()> {
    if copied != item.size {
        return Err(io::Error::other(format!(
            "{} shrank during the build; run it again",
            item.source.display()
        )));
    }
    Ok(())
}

/// A reader that counts what passed through it.
struct Counted<R> {
    inner: R,
    count: u64,
}

impl<R> Counted<R> {
    fn new(inner: R) -> Self {
        Counted { inner, count: 0 }
    }
}

impl<R: io::Read> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
