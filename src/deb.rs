//! A Debian package writer, without dpkg (after cargo-deb's rules): an `ar` archive of
//! `debian-binary`, `control.tar.gz` and `data.tar.gz`, with fixed member order, one mtime
//! (the build epoch), uid/gid 0, sorted paths with every parent directory, explicit modes,
//! and gzip headers without timestamps, so the same inputs give the same bytes.
//! Payload files are streamed; only control files are held in memory.

use crate::hashing::hex;
use flate2::{Compression, GzBuilder};
use md5::{Digest, Md5};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file to install: absolute target path, local source, mode.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub target: String,
    pub source: PathBuf,
    pub mode: u32,
}

/// A maintainer script or other control member (`preinst`, `postrm`, ...).
#[derive(Debug, Clone)]
pub struct ControlFile {
    pub name: String,
    pub contents: String,
    pub mode: u32,
}

#[derive(Debug, Clone)]
pub struct Package {
    /// `Field: value` pairs in order; `Installed-Size` is added.
    pub fields: Vec<(String, String)>,
    pub files: Vec<DataFile>,
    pub scripts: Vec<ControlFile>,
    pub mtime: u64,
}

/// Map a systemvm version to a Debian version: a qualifier becomes a `~` suffix so that
/// `4.5.0-SNAPSHOT` sorts before `4.5.0`, as it does for CloudStack.
pub fn debian_version(version: &str) -> String {
    let (numbers, qualifier) = match version.split_once('-') {
        Some((n, q)) => (n, Some(q)),
        None => (version, None),
    };
    let clean = |s: &str| s.replace(|c: char| !(c.is_ascii_alphanumeric() || c == '.'), ".");
    match qualifier {
        Some(q) => format!("{}~{}", clean(numbers), clean(q)),
        None => clean(numbers),
    }
}

/// Write the package to `out`.
pub fn write(pkg: &Package, out: File) -> io::Result<File> {
    let mut writer = io::BufWriter::new(out);
    writer.write_all(b"!<arch>\n")?;
    // An ar member: its 60-byte header, the data, and a pad byte to an even length.
    let mut member = |name: &str, size: u64, data: &mut dyn Read| -> io::Result<()> {
        let header = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n",
            pkg.mtime, 0, 0, 100_644
        );
        debug_assert_eq!(header.len(), 60);
        writer.write_all(header.as_bytes())?;
        io::copy(data, &mut writer)?;
        if size % 2 == 1 {
            writer.write_all(b"\n")?;
        }
        Ok(())
    };
    member("debian-binary", 4, &mut &b"2.0\n"[..])?;
    // The data tarball goes to a temp file first: its md5sums belong in control.tar.
    let (mut data, md5sums, installed_kib) = data_tar(pkg)?;
    let control = control_tar(pkg, &md5sums, installed_kib)?;
    member(
        "control.tar.gz",
        control.len() as u64,
        &mut control.as_slice(),
    )?;
    let size = data.seek(SeekFrom::End(0))?;
    data.rewind()?;
    member("data.tar.gz", size, &mut data)?;
    writer.into_inner().map_err(|e| e.into_error())
}

/// A tar header owned by root, at `mtime` (also the payload's `cloud-scripts.tgz`'s).
pub(crate) fn tar_header(
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    mtime: u64,
) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root")?;
    h.set_groupname("root")?;
    Ok(h)
}

fn gz<W: Write>(out: W) -> flate2::write::GzEncoder<W> {
    GzBuilder::new().mtime(0).write(out, Compression::best())
}

/// data.tar.gz in a temp file, the md5sums lines, and the installed size in KiB.
fn data_tar(pkg: &Package) -> io::Result<(File, String, u64)> {
    let mut dirs = BTreeSet::new();
    for f in &pkg.files {
        let mut p = Path::new(f.target.trim_start_matches('/')).parent();
        while let Some(dir) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(format!("./{}/", dir.display()));
            p = dir.parent();
        }
    }
    let mut files = pkg.files.clone();
    files.sort_by(|a, b| a.target.cmp(&b.target));
    let mut tar = tar::Builder::new(gz(tempfile::tempfile()?));
    for dir in std::iter::once("./").chain(dirs.iter().map(String::as_str)) {
        let mut h = tar_header(tar::EntryType::Directory, 0, 0o755, pkg.mtime)?;
        tar.append_data(&mut h, dir, io::empty())?;
    }
    let mut md5sums = String::new();
    let mut bytes = 0u64;
    for f in &files {
        let rel = f.target.trim_start_matches('/');
        let size = std::fs::metadata(&f.source)?.len();
        let mut h = tar_header(tar::EntryType::Regular, size, f.mode, pkg.mtime)?;
        let mut reader = HashingReader {
            inner: File::open(&f.source)?,
            md5: Md5::new(),
        };
        tar.append_data(&mut h, format!("./{rel}"), &mut reader)?;
        md5sums.push_str(&format!("{}  {rel}\n", hex(&reader.md5.finalize())));
        bytes += size;
    }
    let mut file = tar.into_inner()?.finish()?;
    file.flush()?;
    let kib = bytes.div_ceil(1024) + dirs.len() as u64;
    Ok((file, md5sums, kib))
}

fn control_tar(pkg: &Package, md5sums: &str, installed_kib: u64) -> io::Result<Vec<u8>> {
    let mut control = String::new();
    for (k, v) in &pkg.fields {
        control.push_str(&format!("{k}: {v}\n"));
        if k == "Architecture" {
            control.push_str(&format!("Installed-Size: {installed_kib}\n"));
        }
    }
    let mut members = vec![
        ("control".to_string(), control, 0o644),
        ("md5sums".to_string(), md5sums.to_string(), 0o644),
    ];
    members.extend(
        pkg.scripts
            .iter()
            .map(|s| (s.name.clone(), s.contents.clone(), s.mode)),
    );
    members.sort();
    let mut tar = tar::Builder::new(gz(Vec::new()));
    let mut root = tar_header(tar::EntryType::Directory, 0, 0o755, pkg.mtime)?;
    tar.append_data(&mut root, "./", io::empty())?;
    for (name, contents, mode) in members {
        let size = contents.len() as u64;
        let mut h = tar_header(tar::EntryType::Regular, size, mode, pkg.mtime)?;
        tar.append_data(&mut h, format!("./{name}"), contents.as_bytes())?;
    }
    tar.into_inner()?.finish()
}

struct HashingReader<R> {
    inner: R,
    md5: Md5,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_debian_order() {
        assert_eq!(debian_version("4.16.0.0"), "4.16.0.0");
        assert_eq!(debian_version("4.5.0-SNAPSHOT"), "4.5.0~SNAPSHOT");
        assert_eq!(debian_version("16.4.3"), "16.4.3");
        assert_eq!(debian_version("4.5.0-rc_1"), "4.5.0~rc.1");
    }
}
