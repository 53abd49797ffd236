//! A mounted directory as a target (VMware's secondary storage over NFS, the management
//! server's own copy): the same upload-to-temp, verify, rename rule as SSH, with local
//! files and no commands.
//!
//! The share is writable by the less trusted SSVM, so nothing here goes by path below the
//! inventory's directory (`root`, the admin's mount point): each directory under it is
//! opened once with `O_NOFOLLOW | O_DIRECTORY` ([`crate::dirfd`]) and kept, and every file
//! operation is relative to that handle. A symlinked folder is refused; the temp file is
//! created exclusively without following, fsynced, kept open, hashed and `fchmod`ed through
//! its descriptor; after the `renameat` the final name must be that same file (device and
//! inode, regular), else it is removed and the upload fails. Memory does not grow with file
//! size.
//!
//! The root is never created: a missing root, or one that is not a mount point when the
//! entry requires it (VMware's secondary storage), means the share is not mounted, and any
//! operation fails naming it. Several management servers may write one share at once:
//! [`Transport::lock`] takes a lock file in a folder (`flock`, which Linux maps to NFS
//! byte-range locks), made, checked and removed through the folder's handle. A process that
//! takes it checks that the file it locked is still the one at the lock's name, so a lock
//! file removed and recreated by another process cannot give two holders.

use crate::dirfd::{self, Dir, Kind};
use crate::hashing::{self, Algorithm, StreamError};
use crate::transport::{capped, Guard, Output, Source, Stat, Transport, TransportError};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Permissions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name in a locked folder.
pub const LOCK_NAME: &str = ".systemvm.lock";

/// What a directory target's root is, for its checks and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// A secondary storage share mounted here (VMware); with `require_mount`, the root must
    /// be a mount point.
    Share { require_mount: bool },
    /// The management server's own directory (cloudstack-common's `vms`).
    Local,
}

/// A directory target; paths given to it are local paths under its root.
pub struct LocalDir {
    name: String,
    root: PathBuf,
    kind: Root,
    /// Directories opened so far, by their path relative to `root` (`""` for the root).
    dirs: HashMap<PathBuf, Dir>,
    /// Temp files this transport created and still holds open, by path.
    written: HashMap<String, File>,
}

impl LocalDir {
    /// `name` is the inventory name, for messages; `root` the directory the inventory
    /// gives, the only path that is followed as it is, which must exist (and be a mount
    /// point, for a share that requires it).
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>, kind: Root) -> LocalDir {
        LocalDir {
            name: name.into(),
            root: root.into(),
            kind,
            dirs: HashMap::new(),
            written: HashMap::new(),
        }
    }

    fn error(&self, what: impl Into<String>, err: impl ToString) -> TransportError {
        TransportError::io(&self.name, what, err)
    }

    /// `path`'s directory relative to the root, checked to hold plain components only.
    fn relative(&self, path: &Path) -> Result<PathBuf, TransportError> {
        let outside = || {
            let root = self.root.display();
            self.error(path.display().to_string(), format!("not inside {root}"))
        };
        let rel = path.strip_prefix(&self.root).map_err(|_| outside())?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(outside());
        }
        Ok(rel.to_path_buf())
    }

    /// A file path as its directory (relative to the root) and its name.
    fn locate(&self, path: &str) -> Result<(PathBuf, OsString), TransportError> {
        let rel = self.relative(Path::new(path))?;
        match (rel.parent(), rel.file_name()) {
            (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_os_string())),
            _ => Err(self.error(path, "not a file inside the target's directory")),
        }
    }

    /// The directory `rel` below the root, opened without following symlinks (and made,
    /// with `create`); `None` when it does not exist.
    fn dir(&mut self, rel: &Path, create: bool) -> Result<Option<Dir>, TransportError> {
        if let Some(dir) = self.dirs.get(rel) {
            return dir
                .reopen()
                .map(Some)
                .map_err(|e| self.error("a handle", e));
        }
        let full = self.root.join(rel);
        let opened = self.open_root()?.descend(rel, create.then_some(0o755));
        match opened {
            Ok(dir) => {
                let handle = dir.reopen().map_err(|e| self.error("a handle", e))?;
                self.dirs.insert(rel.to_path_buf(), dir);
                Ok(Some(handle))
            }
            Err(e) if e.kind() == ErrorKind::NotFound && !create => Ok(None),
            Err(e) if dirfd::is_planted(&e) => Err(self.error(
                format!("opening {}", full.display()),
                "a symlink or not a directory (planted on the share?); refusing to write through it",
            )),
            Err(e) => Err(self.error(format!("opening {}", full.display()), e)),
        }
    }

    /// The root, as the inventory names it: there, and a mount point when it must be. A
    /// missing or unmounted mount point means the share is not mounted: writing there would
    /// fill the management server's own disk, and CloudStack would never see the file.
    fn open_root(&self) -> Result<Dir, TransportError> {
        let root = self.root.display();
        let (what, problem) = match (Dir::open(&self.root), self.kind) {
            (Err(_), Root::Local) => (
                format!("directory {root}"),
                "does not exist or is not a directory (is cloudstack-common installed?); \
                 nothing was written",
            ),
            (Err(_), Root::Share { .. }) => (
                format!("secondary storage {root}"),
                "does not exist or is not a directory (is the share mounted?); nothing was \
                 written",
            ),
            (
                Ok(dir),
                Root::Share {
                    require_mount: true,
                },
            ) if !dir.is_mount_point().unwrap_or(false) => (
                format!("secondary storage {root}"),
                "is not a mount point (is the share mounted?); nothing was written \
                     (require_mount = false allows a plain directory)",
            ),
            (Ok(dir), _) => return Ok(dir),
        };
        Err(self.error(what, problem))
    }

    /// The directory of `path` and the file name; `None` when the directory does not exist.
    fn existing(&mut self, path: &str) -> Result<Option<(Dir, OsString)>, TransportError> {
        let (rel, name) = self.locate(path)?;
        Ok(self.dir(&rel, false)?.map(|dir| (dir, name)))
    }

    /// The directory of `path` (which must exist) and the file name.
    fn parent(&mut self, path: &str) -> Result<(Dir, OsString), TransportError> {
        self.existing(path)?
            .ok_or_else(|| self.error(path, "its directory does not exist"))
    }

    /// The temp file we hold for `path`, else the file opened without following; `None`
    /// when absent. `what` names a failure to duplicate the handle.
    fn held(&mut self, path: &str, what: &str) -> Result<Option<File>, TransportError> {
        match self.written.get(path) {
            Some(file) => file.try_clone().map(Some).map_err(|e| self.error(what, e)),
            None => self.open_existing(path),
        }
    }

    /// A file's digest through its descriptor: the temp file we hold, or the file opened
    /// without following; `None` when it does not exist.
    fn digest(
        &mut self,
        path: &str,
        algorithm: Algorithm,
    ) -> Result<Option<String>, TransportError> {
        let what = format!("{algorithm:?} of {path}");
        let Some(mut file) = self.held(path, &what)? else {
            return Ok(None);
        };
        file.seek(SeekFrom::Start(0))
            .and_then(|_| hashing::of_reader(&mut file, &[algorithm]))
            .map(|sums| Some(sums.get(algorithm).to_string()))
            .map_err(|e| self.error(what, e))
    }

    /// A regular file opened through its directory's handle; `None` when absent.
    fn open_existing(&mut self, path: &str) -> Result<Option<File>, TransportError> {
        let Some((dir, name)) = self.existing(path)? else {
            return Ok(None);
        };
        match dir.open_file(&name) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if dirfd::is_planted(&e) => {
                Err(self.error(format!("opening {path}"), "a symlink; not followed"))
            }
            Err(e) => Err(self.error(format!("opening {path}"), e)),
        }
    }

    /// After `renameat`: `to` must be the file we wrote; anything else (the temp name
    /// swapped for a symlink or another file meanwhile) is removed and refused.
    fn check_renamed(
        &self,
        dir: &Dir,
        to: &str,
        name: &OsStr,
        ours: &File,
    ) -> Result<(), TransportError> {
        let stat_error = |e| self.error(format!("stat {to}"), e);
        let ours = dirfd::identity(ours).map_err(stat_error)?;
        let there = dir.entry(name).map_err(stat_error)?;
        let same = there.is_some_and(|e| e.kind == Kind::File && (e.dev, e.ino) == ours);
        if same {
            return Ok(());
        }
        let _ = dir.remove(name);
        Err(self.error(
            format!("renaming to {to}"),
            "the temp file was swapped on the share before the rename (planted?); removed what landed",
        ))
    }
}

impl Transport for LocalDir {
    fn host(&self) -> &str {
        &self.name
    }

    fn run(&mut self, command: &str) -> Result<Output, TransportError> {
        Err(self.error(format!("`{command}`"), "no commands on a directory target"))
    }

    /// Does not follow a symlink (its own size and mode are reported); `mode` holds the
    /// permission bits only (`& 0o7777`).
    fn stat(&mut self, path: &str) -> Result<Option<Stat>, TransportError> {
        let Some((dir, name)) = self.existing(path)? else {
            return Ok(None);
        };
        let entry = dir
            .entry(&name)
            .map_err(|e| self.error(format!("stat {path}"), e))?;
        Ok(entry.map(|e| Stat {
            size: e.size,
            mtime: e.mtime,
            mode: e.mode,
        }))
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let Some(file) = self.open_existing(path)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(format!("reading {path}"), e))?;
        capped(&self.name, path, bytes, limit)
    }

    fn create_dir_all(&mut self, dir: &str) -> Result<(), TransportError> {
        let rel = self.relative(Path::new(dir))?;
        self.dir(&rel, true).map(drop)
    }

    fn create_new(&mut self, path: &str, source: Source) -> Result<(), TransportError> {
        let (dir, name) = self.parent(path)?;
        let mut file = dir
            .create_new(&name, 0o600)
            .map_err(|e| self.error(format!("creating {path}"), e))?;
        let mut done = 0u64;
        hashing::stream(source.reader, |chunk| {
            file.write_all(chunk)?;
            done += chunk.len() as u64;
            (source.progress)(done);
            Ok::<(), std::io::Error>(())
        })
        .map_err(|e| match e {
            StreamError::Read(e) => self.error(format!("reading {}", source.label), e),
            StreamError::Sink(e) => self.error(
                format!("writing {path}"),
                format!("write failed after {done} bytes: {e}; the old file is unchanged"),
            ),
        })?;
        file.sync_all()
            .map_err(|e| self.error(format!("flushing {path}"), e))?;
        self.written.insert(path.to_string(), file);
        Ok(())
    }

    /// `fchmod` on the temp file we hold, else on the file opened without following.
    fn set_mode(&mut self, path: &str, mode: u32) -> Result<(), TransportError> {
        let what = format!("setting the mode of {path}");
        let file = self
            .held(path, "a handle")?
            .ok_or_else(|| self.error(&what, "not there"))?;
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| self.error(what, e))
    }

    fn remove(&mut self, path: &str) -> Result<(), TransportError> {
        self.written.remove(path);
        let Some((dir, name)) = self.existing(path)? else {
            return Ok(());
        };
        dir.remove(&name)
            .map_err(|e| self.error(format!("removing {path}"), e))
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, TransportError> {
        let rel = self.relative(Path::new(dir))?;
        let Some(handle) = self.dir(&rel, false)? else {
            return Ok(Vec::new());
        };
        let names = handle
            .names()
            .map_err(|e| self.error(format!("listing {dir}"), e))?;
        Ok(names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    /// `renameat` within one directory, then the final name is checked to be ours.
    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError> {
        let (from_rel, from_name) = self.locate(from)?;
        let (to_rel, to_name) = self.locate(to)?;
        if from_rel != to_rel {
            return Err(self.error(format!("renaming {from} to {to}"), "not one directory"));
        }
        let (dir, _) = self.parent(to)?;
        dir.rename(&from_name, &to_name)
            .map_err(|e| self.error(format!("renaming {from} to {to}"), e))?;
        if let Some(ours) = self.written.remove(from) {
            self.check_renamed(&dir, to, &to_name, &ours)?;
        }
        dir.sync();
        Ok(())
    }

    fn sha256(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        self.digest(path, Algorithm::Sha256)
    }

    fn sha512(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        self.digest(path, Algorithm::Sha512)
    }

    /// [`LOCK_NAME`] in `dir` (made when missing), waiting at most `timeout` for another
    /// holder; removed when the guard is dropped.
    fn lock(&mut self, dir: &str, timeout: Duration) -> Result<Option<Guard>, TransportError> {
        let rel = self.relative(Path::new(dir))?;
        let Some(folder) = self.dir(&rel, true)? else {
            return Err(self.error(dir, "not there"));
        };
        let lock = FolderLock::acquire(folder, timeout).map_err(|e| self.error(dir, e))?;
        Ok(Some(Box::new(lock)))
    }
}

/// An exclusive lock on the lock file in a folder, removed when dropped.
struct FolderLock {
    folder: Dir,
    file: File,
}

impl FolderLock {
    fn acquire(folder: Dir, timeout: Duration) -> Result<FolderLock, String> {
        let deadline = Instant::now() + timeout;
        let path = folder.path().join(LOCK_NAME);
        loop {
            // Planted by the share's other writers, a symlink is never followed (nor its
            // target created) and a FIFO or device is never waited on.
            let file = folder
                .open_or_create(OsStr::new(LOCK_NAME), 0o644)
                .map_err(|e| {
                    format!(
                        "cannot open lock {} (a symlink or FIFO planted on the share?): {e}",
                        path.display()
                    )
                })?;
            match file.try_lock() {
                Ok(()) if still_there(&folder, &file) => return Ok(FolderLock { folder, file }),
                Ok(()) | Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()))
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} is held by another copy for over {}s",
                    path.display(),
                    timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether the locked file is still the one at the lock's name: a previous holder may
/// have removed it (and a waiter then holds a lock on nothing).
fn still_there(folder: &Dir, file: &File) -> bool {
    let there = folder.entry(OsStr::new(LOCK_NAME)).ok().flatten();
    let ours = dirfd::identity(file).ok();
    there.zip(ours).is_some_and(|(e, id)| (e.dev, e.ino) == id)
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Remove while still holding the lock, so a waiter that wakes up sees a stale inode.
        let _ = self.folder.remove(OsStr::new(LOCK_NAME));
        let _ = self.file.unlock();
    }
}
