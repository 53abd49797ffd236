//! A directory held open, and the operations on its entries relative to that handle.
//!
//! Directories that others may write (VMware's secondary storage, which the SSVM mounts
//! read-write; a payload tree) are opened once with `O_NOFOLLOW | O_DIRECTORY` and then used
//! only through their descriptor: `openat`, `mkdirat`, `fstatat(AT_SYMLINK_NOFOLLOW)`,
//! `renameat`, `unlinkat`, listing by `fdopendir`. A symlink planted in place of a
//! directory is refused ([`is_planted`]), and a file is opened `O_NOFOLLOW | O_NONBLOCK`
//! and checked to be a regular file before a byte is read, so neither a symlink nor a FIFO
//! can redirect or stall us. Entry names are single path components; `..` and `/` are
//! refused.

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What an entry is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Special,
}

/// An entry's `lstat`, the fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub size: u64,
    pub mtime: i64,
    /// Permission bits only (`& 0o7777`).
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
    /// The file type in full (FIFO, socket, device...), for naming a special file.
    pub format: FileType,
}

/// Whether an open failed because the name is a symlink or not a directory (`ELOOP`,
/// `ENOTDIR`): something planted where a directory should be.
pub fn is_planted(e: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(Errno::from_io_error(e), Some(Errno::LOOP | Errno::NOTDIR))
}

impl Dir {
    /// Open a directory that the caller trusts by path (an inventory's mount point):
    /// symlinks in `path` itself are followed, its entries are then used through the handle.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(Dir {
            fd: rustix::fs::open(path, flags, Mode::empty())?,
            path: path.to_path_buf(),
        })
    }

    /// The path it was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the subdirectory `name`, refusing a symlink ([`is_planted`]).
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self.openat(name, flags, 0)?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Walk `relative` (plain components only) down from this directory, each step
    /// refusing a symlink; with `create`, missing directories are made (`mode`).
    pub fn descend(&self, relative: &Path, create: Option<u32>) -> io::Result<Dir> {
        let mut dir = self.reopen()?;
        for part in relative.components() {
            let name = match part {
                Component::Normal(name) => name,
                Component::CurDir => continue,
                _ => return Err(invalid(relative)),
            };
            if let Some(mode) = create {
                dir.create_dir(name, mode)?;
            }
            dir = dir.open_dir(name)?;
        }
        Ok(dir)
    }

    /// `fstat` of the directory itself.
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        File::from(self.fd.try_clone()?).metadata()
    }

    /// A second handle on the same directory.
    pub fn reopen(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// Make the subdirectory `name`; one already there (of any kind) is not an error here:
    /// [`Dir::open_dir`] then refuses what is not a directory.
    pub fn create_dir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        match rustix::fs::mkdirat(&self.fd, entry_name(name)?, Mode::from_raw_mode(mode)) {
            Err(rustix::io::Errno::EXIST) => Ok(()),
            other => Ok(other?),
        }
    }

    /// Create `name`, which must not exist (a symlink there counts), for reading and
    /// writing with `mode`.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(self.openat(name, flags, mode)?))
    }

    /// Create `name` or open it as it is, for writing, refusing a symlink and never
    /// blocking on a FIFO; it must be a regular file.
    pub fn open_or_create(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let file = File::from(self.openat(name, flags | OFlags::CLOEXEC, mode)?);
        regular(file, &self.path.join(name))
    }

    /// Open the regular file `name` for reading: a symlink, FIFO or device is refused.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = File::from(self.openat(name, flags, 0)?);
        let file = regular(file, &self.path.join(name))?;
        let blocking = rustix::fs::fcntl_getfl(&file)? - OFlags::NONBLOCK;
        rustix::fs::fcntl_setfl(&file, blocking)?;
        Ok(file)
    }

    /// Whether this directory is a mount point: its parent is on another device (or it is
    /// its own parent, `/`), or the kernel's mount table lists its path (a bind mount of the
    /// same file system).
    pub fn is_mount_point(&self) -> io::Result<bool> {
        let stat = |name| rustix::fs::statat(&self.fd, name, AtFlags::empty());
        let (here, parent) = (stat(c".")?, stat(c"..")?);
        if here.st_dev != parent.st_dev || here.st_ino == parent.st_ino {
            return Ok(true);
        }
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let path = std::fs::canonicalize(&self.path)?;
        let listed = mount_points(&table).any(|m| Path::new(&m) == path);
        Ok(listed)
    }

    /// `lstat` of an entry; `None` when there is none.
    pub fn entry(&self, name: &OsStr) -> io::Result<Option<Entry>> {
        match rustix::fs::statat(&self.fd, entry_name(name)?, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Entry::from(st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Rename `from` to `to` within this directory, replacing `to` (never following it).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (a, b) = (entry_name(from)?, entry_name(to)?);
        Ok(rustix::fs::renameat(&self.fd, a, &self.fd, b)?)
    }

    /// Remove the non-directory `name`; absent is fine.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, entry_name(name)?, AtFlags::empty()) {
            Err(rustix::io::Errno::NOENT) => Ok(()),
            other => Ok(other?),
        }
    }

    /// The entry names, sorted, without `.` and `..`.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        names.sort();
        Ok(names)
    }

    /// Flush the directory (a rename in it) to stable storage. Best effort: some file
    /// systems refuse to fsync a directory.
    pub fn sync(&self) {
        let _ = rustix::fs::fsync(&self.fd);
    }

    fn openat(&self, name: &OsStr, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
        let (name, mode) = (entry_name(name)?, Mode::from_raw_mode(mode));
        Ok(rustix::fs::openat(&self.fd, name, flags, mode)?)
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<rustix::fs::Stat> for Entry {
    fn from(st: rustix::fs::Stat) -> Entry {
        let format = FileType::from_raw_mode(st.st_mode);
        let kind = match format {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Special,
        };
        Entry {
            kind,
            size: st.st_size as u64,
            mtime: st.st_mtime,
            mode: st.st_mode & 0o7777,
            dev: st.st_dev,
            ino: st.st_ino,
            format,
        }
    }
}

/// Device and inode of an open file: which file it is.
pub fn identity(file: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

fn regular(file: File, path: &Path) -> io::Result<File> {
    if file.metadata()?.file_type().is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ))
    }
}

/// The mount points of a `/proc/self/mountinfo` table (the fifth field, octal escapes such
/// as `\040` for a space undone).
fn mount_points(table: &str) -> impl Iterator<Item = String> + '_ {
    table.lines().filter_map(|line| {
        let field = line.split(' ').nth(4)?;
        let mut out = Vec::new();
        let mut rest = field.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            let octal = tail.get(..3).and_then(|d| std::str::from_utf8(d).ok());
            let (byte, skip) = match (b, octal.and_then(|d| u8::from_str_radix(d, 8).ok())) {
                (b'\\', Some(c)) => (c, 3),
                _ => (b, 0),
            };
            out.push(byte);
            rest = &tail[skip..];
        }
        String::from_utf8(out).ok()
    })
}

/// A single path component: not empty, `.`, `..`, nor holding `/` or NUL.
fn entry_name(name: &OsStr) -> io::Result<&OsStr> {
    let bytes = name.as_bytes();
    let special = bytes.is_empty() || bytes == b"." || bytes == b"..";
    if special || bytes.contains(&b'/') || bytes.contains(&0) {
        return Err(invalid(Path::new(name)));
    }
    Ok(name)
}

fn invalid(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not a plain name", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_from_mountinfo_with_escapes() {
        let table = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                     30 22 0:40 / /mnt/sec\\040one rw,relatime - nfs4 srv:/ rw\n";
        let points: Vec<String> = mount_points(table).collect();
        assert_eq!(points, ["/", "/mnt/sec one"]);
    }

    #[test]
    fn the_root_is_a_mount_point_and_a_plain_directory_is_not() {
        assert!(Dir::open(Path::new("/")).unwrap().is_mount_point().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        assert!(!Dir::open(&plain).unwrap().is_mount_point().unwrap());
    }

    #[test]
    fn symlinks_are_refused_and_files_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        let dir = Dir::open(root).unwrap();
        let e = dir.open_dir(OsStr::new("link")).unwrap_err();
        assert!(is_planted(&e), "{e}");
        assert!(dir.descend(Path::new("real/../link"), None).is_err());
        let made = dir.descend(Path::new("a/b"), Some(0o755)).unwrap();
        let f = made.create_new(OsStr::new("f"), 0o600).unwrap();
        drop(f);
        assert!(made.create_new(OsStr::new("f"), 0o600).is_err());
        assert_eq!(made.names().unwrap(), [OsString::from("f")]);
        assert_eq!(dir.names().unwrap().len(), 3);
        let entry = dir.entry(OsStr::new("link")).unwrap().unwrap();
        assert_eq!(entry.kind, Kind::Symlink);
        assert!(dir.open_file(OsStr::new("link")).is_err());
        assert!(dir.open_file(OsStr::new("..")).is_err());
    }
}
