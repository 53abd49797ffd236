//! `agent-payload/` to `agent.zip` and `cloud-scripts.tgz`, byte-reproducibly.
//!
//! The payload is walked once, in sorted byte order, and checked before anything is
//! written: symlinks must resolve to files inside the payload, special files are refused, a
//! file with hard links must have all of them inside the payload (else it may be a file
//! from elsewhere, such as `/etc/shadow`, linked in), and no file or tree may reach 4 GiB
//! (the ISO 9660 and zip32 limit: such a payload is refused, by its metadata, before a byte
//! is read). While the archives are written each file is checked to be the one the walk saw
//! (same device, inode and size), so a file swapped for a symlink meanwhile is an error,
//! not a leak. The archives then record only what we choose: names, contents, one timestamp
//! (the build epoch) and explicit modes; never the payload's mtimes, owners or the order
//! the file system lists entries in. Files are streamed, so memory does not grow with the
//! payload.

mod archive;

pub use archive::{
    scripts_mode, write_agent_zip, write_scripts_tgz, AGENT_DIGEST_NAME, SIGNATURE_DIGEST_NAME,
};

use crate::dirfd::{self, Dir, Entry, Kind};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Subdirectory that becomes the agent zip.
pub const AGENT_DIR: &str = "agent";
/// Subdirectory that becomes cloud-scripts.tgz (unpacked at `/` in the system VM).
pub const SCRIPTS_DIR: &str = "scripts";
/// ISO 9660 (level 3 aside) and zip without zip64 stop below 4 GiB.
pub const MAX_FILE: u64 = u32::MAX as u64;

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("payload {path} does not exist")]
    Missing { path: PathBuf },
    #[error("payload {path} has no {sub}/ directory (expected agent/ and scripts/)")]
    NoSubdir { path: PathBuf, sub: &'static str },
    #[error("cannot read {path}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{path} is a symlink to {target}, outside the payload")]
    SymlinkOutside { path: PathBuf, target: PathBuf },
    #[error("{path} is a broken or looping symlink")]
    SymlinkBroken { path: PathBuf },
    #[error("{path} is a symlink to a directory; only file symlinks are followed")]
    SymlinkDir { path: PathBuf },
    #[error("{path} changed while it was checked (swapped for a symlink?); refusing it, run again with a payload nobody else writes")]
    Swapped { path: PathBuf },
    #[error("{path} is a {kind}; a payload holds only files and directories")]
    Special { path: PathBuf, kind: &'static str },
    #[error("{path} is {size} bytes; payload files and archives must stay below 4 GiB")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path} has a name that is not UTF-8")]
    BadName { path: PathBuf },
    #[error("{path} has {links} hard links but only {inside} in the payload's agent/ and scripts/: it may be a file from elsewhere; copy it instead of linking")]
    HardLinkOutside {
        path: PathBuf,
        links: u64,
        inside: u64,
    },
}

/// One file or directory of a payload tree.
#[derive(Debug, Clone)]
pub struct Item {
    /// Path inside the archive, `/`-separated, no leading `/`.
    pub name: String,
    /// Where to read it (through a symlink if it is one).
    pub source: PathBuf,
    pub is_dir: bool,
    pub executable: bool,
    pub size: u64,
    /// Modification time, seconds since 1970 (only the fallback build epoch uses it).
    pub mtime: i64,
    /// Device and inode of the file read, to check it is still the same when archived.
    pub dev: u64,
    pub ino: u64,
    /// Hard links to it (counted only for entries that are not symlinks).
    pub links: u64,
}

/// A checked payload: the agent tree, the scripts tree, and an optional `patch-sysvms.sh`.
#[derive(Debug)]
pub struct Payload {
    pub root: PathBuf,
    pub agent: Vec<Item>,
    pub scripts: Vec<Item>,
    pub patch_script: Option<PathBuf>,
}

impl Payload {
    pub fn load(root: &Path) -> Result<Payload, PayloadError> {
        let canonical = fs::canonicalize(root).map_err(|_| PayloadError::Missing {
            path: root.to_path_buf(),
        })?;
        let handle = Dir::open(root).map_err(unreadable(root))?;
        let tree = |sub| {
            let mut items = Vec::new();
            let dir = open_subdir(root, &handle, sub)?;
            walk_handle(&canonical, &dir, "", &mut items)?;
            Ok(items)
        };
        let (agent, scripts) = (tree(AGENT_DIR)?, tree(SCRIPTS_DIR)?);
        let patch = root.join(crate::layout::PATCH_SCRIPT_NAME);
        Payload::from_items(root, agent, scripts, patch.is_file().then_some(patch))
    }

    /// A payload from archive items gathered elsewhere (a CloudStack checkout), checked as a
    /// walked one is: each tree below 4 GiB, every hard link inside.
    pub fn from_items(
        root: &Path,
        agent: Vec<Item>,
        scripts: Vec<Item>,
        patch_script: Option<PathBuf>,
    ) -> Result<Payload, PayloadError> {
        for (tree, sub) in [(&agent, AGENT_DIR), (&scripts, SCRIPTS_DIR)] {
            let total: u64 = tree.iter().map(|i| i.size).sum();
            if total >= MAX_FILE {
                return Err(PayloadError::TooLarge {
                    path: root.join(sub),
                    size: total,
                });
            }
        }
        check_hard_links(agent.iter().chain(&scripts))?;
        Ok(Payload {
            root: root.to_path_buf(),
            agent,
            scripts,
            patch_script,
        })
    }

    /// The newest file modification time in the payload: the build epoch when
    /// `SOURCE_DATE_EPOCH` is not set.
    pub fn newest_mtime(&self) -> i64 {
        let items = self.agent.iter().chain(&self.scripts);
        let files = items.filter(|i| !i.is_dir);
        files.map(|i| i.mtime).max().unwrap_or(0).max(0)
    }

    /// Total bytes of file content.
    pub fn size(&self) -> u64 {
        self.agent.iter().chain(&self.scripts).map(|i| i.size).sum()
    }
}

/// `agent/` or `scripts/` of the payload, opened from its handle: a symlink is refused.
fn open_subdir(root: &Path, handle: &Dir, sub: &'static str) -> Result<Dir, PayloadError> {
    let missing = || PayloadError::NoSubdir {
        path: root.to_path_buf(),
        sub,
    };
    let name = std::ffi::OsStr::new(sub);
    let err = match handle.open_dir(name) {
        Ok(dir) => return Ok(dir),
        Err(e) => e,
    };
    match handle.entry(name) {
        Ok(Some(entry)) if entry.kind == Kind::Symlink => Err(PayloadError::SymlinkDir {
            path: root.join(sub),
        }),
        Ok(Some(entry)) if entry.kind == Kind::Dir => Err(unreadable(&root.join(sub))(err)),
        _ => Err(missing()),
    }
}

/// Every file with several hard links must have all of them among `items`.
fn check_hard_links<'a>(items: impl Iterator<Item = &'a Item>) -> Result<(), PayloadError> {
    let mut seen: std::collections::BTreeMap<(u64, u64), (u64, &Item)> = Default::default();
    for item in items.filter(|i| !i.is_dir && i.links > 1) {
        seen.entry((item.dev, item.ino)).or_insert((0, item)).0 += 1;
    }
    for (inside, item) in seen.into_values() {
        if inside < item.links {
            return Err(PayloadError::HardLinkOutside {
                path: item.source.clone(),
                links: item.links,
                inside,
            });
        }
    }
    Ok(())
}

/// Open an item's file for archiving: it must still be the file the walk checked, and it
/// yields exactly its recorded size (an error if it shrank, nothing past it if it grew).
fn open_checked(item: &Item) -> io::Result<impl io::Read> {
    let file = File::open(&item.source)?;
    let meta = file.metadata()?;
    if (meta.dev(), meta.ino(), meta.len()) != (item.dev, item.ino, item.size) {
        return Err(io::Error::other(format!(
            "{} changed during the build; run it again",
            item.source.display()
        )));
    }
    Ok(io::Read::take(file, item.size))
}

/// Walk `dir` in sorted order, checking every entry, into `out` as `prefix` + relative name;
/// symlinks must stay inside `root`. `dir` itself is opened as given; below it, see
/// [`walk_handle`].
pub fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<Item>,
) -> Result<(), PayloadError> {
    let handle = Dir::open(dir).map_err(unreadable(dir))?;
    walk_handle(root, &handle, prefix, out)
}

/// Walk an open directory: every subdirectory is opened from its parent's handle with
/// `O_NOFOLLOW | O_DIRECTORY` and must be the directory its `lstat` showed, so a directory
/// swapped for a symlink (or another directory) between the check and the read is refused,
/// never listed; every file is opened the same way once, to fail now rather than halfway
/// through an archive.
fn walk_handle(
    root: &Path,
    dir: &Dir,
    prefix: &str,
    out: &mut Vec<Item>,
) -> Result<(), PayloadError> {
    let names = dir.names().map_err(unreadable(dir.path()))?;
    for file_name in names {
        let path = dir.path().join(&file_name);
        let name = file_name
            .to_str()
            .ok_or_else(|| PayloadError::BadName { path: path.clone() })?;
        let rel = format!("{prefix}{name}");
        let entry = dir.entry(&file_name).map_err(unreadable(&path))?;
        let entry = entry.ok_or_else(|| vanished(&path))?;
        match entry.kind {
            Kind::Symlink => out.push(symlinked_file(root, &path, &rel)?),
            Kind::Dir => {
                let sub = dir.open_dir(&file_name).map_err(|e| swapped(&path, e))?;
                let meta = sub.metadata().map_err(unreadable(&path))?;
                let meta = same_as(&meta, &entry, &path)?;
                out.push(dir_item(&rel, &path, &meta));
                walk_handle(root, &sub, &format!("{rel}/"), out)?;
            }
            Kind::File => {
                let file = dir.open_file(&file_name).map_err(|e| swapped(&path, e))?;
                let meta = file.metadata().map_err(unreadable(&path))?;
                let meta = same_as(&meta, &entry, &path)?;
                out.push(file_item(rel, path, &meta, false)?);
            }
            Kind::Special => return Err(special(path, &entry)),
        }
    }
    Ok(())
}

fn unreadable(path: &Path) -> impl FnOnce(io::Error) -> PayloadError {
    let path = path.to_path_buf();
    move |source| PayloadError::Unreadable { path, source }
}

fn vanished(path: &Path) -> PayloadError {
    PayloadError::Unreadable {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::NotFound, "vanished during the walk"),
    }
}

/// An entry that could not be opened as what its `lstat` showed.
fn swapped(path: &Path, e: io::Error) -> PayloadError {
    if dirfd::is_planted(&e) {
        PayloadError::Swapped {
            path: path.to_path_buf(),
        }
    } else {
        unreadable(path)(e)
    }
}

/// The opened entry's metadata, when it is the one the `lstat` saw.
fn same_as(meta: &fs::Metadata, entry: &Entry, path: &Path) -> Result<fs::Metadata, PayloadError> {
    if (meta.dev(), meta.ino()) == (entry.dev, entry.ino) {
        Ok(meta.clone())
    } else {
        Err(PayloadError::Swapped {
            path: path.to_path_buf(),
        })
    }
}

/// A symlink: it must resolve to a file inside `root`.
fn symlinked_file(root: &Path, path: &Path, rel: &str) -> Result<Item, PayloadError> {
    let target =
        fs::canonicalize(path).map_err(|_| PayloadError::SymlinkBroken { path: path.into() })?;
    if !target.starts_with(root) {
        return Err(PayloadError::SymlinkOutside {
            path: path.into(),
            target,
        });
    }
    let meta = fs::metadata(&target).map_err(unreadable(path))?;
    if meta.is_dir() {
        return Err(PayloadError::SymlinkDir { path: path.into() });
    }
    if !meta.is_file() {
        return Err(PayloadError::Special {
            path: path.into(),
            kind: "special file",
        });
    }
    // Fail now, not halfway through writing an archive.
    File::open(&target).map_err(unreadable(path))?;
    file_item(rel.to_string(), path.to_path_buf(), &meta, true)
}

fn dir_item(rel: &str, path: &Path, meta: &fs::Metadata) -> Item {
    Item {
        name: format!("{rel}/"),
        source: path.to_path_buf(),
        is_dir: true,
        executable: true,
        size: 0,
        mtime: meta.mtime(),
        dev: meta.dev(),
        ino: meta.ino(),
        links: 0,
    }
}

fn file_item(
    rel: String,
    path: PathBuf,
    meta: &fs::Metadata,
    symlinked: bool,
) -> Result<Item, PayloadError> {
    if meta.len() >= MAX_FILE {
        return Err(PayloadError::TooLarge {
            path,
            size: meta.len(),
        });
    }
    Ok(Item {
        name: rel,
        source: path,
        is_dir: false,
        executable: meta.permissions().mode() & 0o111 != 0,
        size: meta.len(),
        mtime: meta.mtime(),
        dev: meta.dev(),
        ino: meta.ino(),
        links: if symlinked { 0 } else { meta.nlink() },
    })
}

/// Why an entry that is neither file, directory nor symlink is refused.
fn special(path: PathBuf, entry: &Entry) -> PayloadError {
    use rustix::fs::FileType;
    let kind = match entry.format {
        FileType::BlockDevice | FileType::CharacterDevice => "device file",
        FileType::Fifo => "named pipe",
        FileType::Socket => "socket",
        _ => "special file",
    };
    PayloadError::Special { path, kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(dir: &Path) -> PathBuf {
        let root = dir.join("payload");
        fs::create_dir_all(root.join("agent")).unwrap();
        fs::create_dir_all(root.join("scripts")).unwrap();
        fs::write(root.join("agent/a.txt"), b"agent file\n").unwrap();
        fs::write(root.join("scripts/s.sh"), b"#!/bin/sh\n").unwrap();
        root
    }

    fn sink(dir: &Path) -> File {
        File::create(dir.join("out")).unwrap()
    }

    #[test]
    fn a_file_swapped_for_a_symlink_after_the_walk_is_not_archived() {
        let dir = tempfile::tempdir().unwrap();
        let root = payload(dir.path());
        let loaded = Payload::load(&root).unwrap();
        // Between the check and the archive, agent/a.txt becomes a link to a secret.
        let secret = dir.path().join("secret");
        fs::write(&secret, b"not for the ISO\n").unwrap();
        fs::remove_file(root.join("agent/a.txt")).unwrap();
        std::os::unix::fs::symlink(&secret, root.join("agent/a.txt")).unwrap();
        let err = write_agent_zip(&loaded.agent, sink(dir.path()), 0).unwrap_err();
        assert!(
            err.to_string().contains("changed during the build"),
            "{err}"
        );
    }

    #[test]
    fn scripts_modes_follow_cloudstacks_ant_tar() {
        for (name, mode) in [
            ("opt/cloud/bin/setup/cloud-early-config", 0o755),
            ("root/health_checks/utility.py", 0o755),
            ("etc/sysctl.conf", 0o755),
            ("etc/logrotate.conf", 0o644),
            ("etc/logrotate.d/dnsmasq", 0o644),
            ("opt/cloud/bin/logger.py", 0o644),
            ("var/log/x/catalog", 0o755),
        ] {
            assert_eq!(scripts_mode(name), mode, "{name}");
        }
    }

    #[test]
    fn a_file_whose_size_changed_after_the_walk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = payload(dir.path());
        let loaded = Payload::load(&root).unwrap();
        // Same inode, new size: refused, since the size is part of what was checked.
        let file = fs::OpenOptions::new()
            .append(true)
            .open(root.join("agent/a.txt"))
            .unwrap();
        file.set_len(3).unwrap();
        let err = write_agent_zip(&loaded.agent, sink(dir.path()), 0).unwrap_err();
        assert!(
            err.to_string().contains("changed during the build"),
            "{err}"
        );
        let scripts = write_scripts_tgz(&loaded.scripts, sink(dir.path()), 0, || Ok(vec![]));
        assert!(scripts.is_ok(), "the scripts did not change");
    }
}
