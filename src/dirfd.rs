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

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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
    /// The file type bits (`S_IFMT`: `S_IFIFO`, `S_IFCHR`, ...), for naming a special file.
    pub format: u32,
}

/// Whether an open failed because the name is a symlink or not a directory (`ELOOP`,
/// `ENOTDIR`): something planted where a directory should be.
pub fn is_planted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}

impl Dir {
    /// Open a directory that the caller trusts by path (an inventory's mount point):
    /// symlinks in `path` itself are followed, its entries are then used through the handle.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = cstring(path.as_os_str())?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: `c` is a valid NUL-terminated string; the result is checked.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        Ok(Dir {
            fd: owned(fd)?,
            path: path.to_path_buf(),
        })
    }

    /// The path it was opened by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the subdirectory `name`, refusing a symlink ([`is_planted`]).
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
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
        let c = entry_name(name)?;
        // SAFETY: a valid descriptor and NUL-terminated name; the result is checked.
        let rc = unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) };
        match check(rc) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// Create `name`, which must not exist (a symlink there counts), for reading and
    /// writing with `mode`.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags =
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        Ok(File::from(self.openat(name, flags, mode)?))
    }

    /// Create `name` or open it as it is, for writing, refusing a symlink and never
    /// blocking on a FIFO; it must be a regular file.
    pub fn open_or_create(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let file = File::from(self.openat(name, flags | libc::O_CLOEXEC, mode)?);
        regular(file, &self.path.join(name))
    }

    /// Open the regular file `name` for reading: a symlink, FIFO or device is refused.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let file = File::from(self.openat(name, flags, 0)?);
        let file = regular(file, &self.path.join(name))?;
        set_blocking(&file)?;
        Ok(file)
    }

    /// Whether this directory is a mount point: its parent is on another device (or it is
    /// its own parent, `/`), or the kernel's mount table lists its path (a bind mount of the
    /// same file system).
    pub fn is_mount_point(&self) -> io::Result<bool> {
        let (here, parent) = (self.stat_at(c".", 0)?, self.stat_at(c"..", 0)?);
        if here.st_dev != parent.st_dev || here.st_ino == parent.st_ino {
            return Ok(true);
        }
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let path = std::fs::canonicalize(&self.path)?;
        let listed = mount_points(&table).any(|m| Path::new(&m) == path);
        Ok(listed)
    }

    fn stat_at(&self, name: &std::ffi::CStr, flags: libc::c_int) -> io::Result<libc::stat> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid descriptor, name and out pointer; `st` is read only on success.
        let rc =
            unsafe { libc::fstatat(self.fd.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), flags) };
        check(rc)?;
        Ok(unsafe { st.assume_init() })
    }

    /// `lstat` of an entry; `None` when there is none.
    pub fn entry(&self, name: &OsStr) -> io::Result<Option<Entry>> {
        match self.stat_at(&entry_name(name)?, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Entry::from(st))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Rename `from` to `to` within this directory, replacing `to` (never following it).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (a, b) = (entry_name(from)?, entry_name(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptors and names; the result is checked.
        check(unsafe { libc::renameat(fd, a.as_ptr(), fd, b.as_ptr()) })
    }

    /// Remove the non-directory `name`; absent is fine.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        let c = entry_name(name)?;
        // SAFETY: a valid descriptor and name; the result is checked.
        match check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// The entry names, sorted, without `.` and `..`.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let fd = self.fd.try_clone()?;
        // SAFETY: fdopendir takes ownership of the duplicated descriptor on success.
        let stream = unsafe { libc::fdopendir(fd.as_raw_fd()) };
        if stream.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(fd);
        // SAFETY: `stream` is a valid DIR*; rewound, since the duplicate shares the offset.
        unsafe { libc::rewinddir(stream) };
        let names = read_all(stream);
        // SAFETY: closes the stream and the duplicated descriptor, once.
        unsafe { libc::closedir(stream) };
        let mut names = names?;
        names.sort();
        Ok(names)
    }

    /// Flush the directory (a rename in it) to stable storage. Best effort: some file
    /// systems refuse to fsync a directory.
    pub fn sync(&self) {
        // SAFETY: a valid descriptor.
        let _ = unsafe { libc::fsync(self.fd.as_raw_fd()) };
    }

    fn openat(&self, name: &OsStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
        let c = entry_name(name)?;
        // SAFETY: a valid descriptor and name; the result is checked.
        let fd = unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode) };
        owned(fd)
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<libc::stat> for Entry {
    fn from(st: libc::stat) -> Entry {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Special,
        };
        Entry {
            kind,
            size: st.st_size as u64,
            mtime: st.st_mtime,
            mode: st.st_mode & 0o7777,
            dev: st.st_dev,
            ino: st.st_ino,
            format: st.st_mode & libc::S_IFMT,
        }
    }
}

/// Device and inode of an open file: which file it is.
pub fn identity(file: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

fn read_all(stream: *mut libc::DIR) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    loop {
        // readdir reports errors only through errno, so clear it first.
        // SAFETY: errno is thread-local; `stream` is a valid DIR*.
        unsafe { *libc::__errno_location() = 0 };
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(0) | None => Ok(names),
                Some(_) => Err(e),
            };
        }
        // SAFETY: d_name is NUL-terminated within the entry readdir returned.
        let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(OsString::from_vec(bytes.to_vec()));
        }
    }
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

fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: a valid descriptor; fcntl results are checked.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) })
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
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

/// A single path component as a C string: not empty, `.`, `..`, nor holding `/` or NUL.
fn entry_name(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(invalid(Path::new(name)));
    }
    cstring(name)
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| invalid(Path::new(s)))
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
