//! A mounted directory as a target (VMware's secondary storage over NFS): the same
//! upload-to-temp, verify, rename rule as SSH, with local paths and no commands.
//!
//! An upload streams the source into a temp name beside the target (mode 0600) in 256 KiB
//! chunks, fsyncs it, verifies its sha256 by reading the temp file back (what landed on the
//! share, not what we meant to send), sets the mode, renames it over the target and fsyncs
//! the directory. Any failure removes the temp file. Memory does not grow with file size.

use crate::transport::{
    is_temp_name, temp_name, Output, Progress, Stat, Transport, TransportError,
};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Cursor, ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where an upload goes: the temp file, then the target.
#[derive(Clone, Copy)]
struct Placement<'a> {
    tmp: &'a Path,
    target: &'a Path,
    mode: u32,
    sha256: &'a str,
}

/// Bytes per read and write during an upload or a verification.
const CHUNK: usize = 256 * 1024;

/// A directory target; paths given to it are local paths.
pub struct LocalDir {
    name: String,
}

impl LocalDir {
    /// `name` is the inventory name, for messages.
    pub fn new(name: impl Into<String>) -> LocalDir {
        LocalDir { name: name.into() }
    }

    fn error(&self, what: impl Into<String>, err: impl ToString) -> TransportError {
        TransportError::Io {
            host: self.name.clone(),
            what: what.into(),
            reason: err.to_string(),
        }
    }

    /// Upload from any reader: the common path of `upload` and `write`.
    fn push(
        &self,
        reader: &mut dyn Read,
        remote: &str,
        mode: u32,
        sha256: &str,
        progress: Progress,
    ) -> Result<(), TransportError> {
        let target = Path::new(remote);
        let what = format!("upload to {remote}");
        let name = match target.file_name() {
            Some(name) => name.to_string_lossy().into_owned(),
            None => return Err(self.error(what, "not a file path")),
        };
        let dir = crate::atomic::parent_dir(target);
        fs::create_dir_all(&dir).map_err(|e| {
            self.error(
                what.clone(),
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        self.clear_leftovers(&dir, &name)?;
        let tmp = dir.join(temp_name(&name));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| {
                self.error(
                    what.clone(),
                    format!("cannot create {}: {e}", tmp.display()),
                )
            })?;
        let place = Placement {
            tmp: &tmp,
            target,
            mode,
            sha256,
        };
        let result = self.fill_and_commit(file, reader, &place, progress);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Write the temp file, verify it, set its mode, rename it over the target.
    fn fill_and_commit(
        &self,
        mut file: File,
        reader: &mut dyn Read,
        place: &Placement,
        progress: Progress,
    ) -> Result<(), TransportError> {
        let Placement {
            tmp,
            target,
            mode,
            sha256,
        } = *place;
        let what = format!("upload to {}", target.display());
        copy(reader, &mut file, progress).map_err(|e| self.error(what.clone(), e))?;
        file.sync_all().map_err(|e| {
            self.error(what.clone(), format!("cannot flush {}: {e}", tmp.display()))
        })?;
        drop(file);
        let actual = hash_file(tmp).map_err(|e| {
            self.error(
                what.clone(),
                format!("cannot read back {}: {e}", tmp.display()),
            )
        })?;
        if actual != sha256.trim().to_ascii_lowercase() {
            return Err(TransportError::Checksum {
                host: self.name.clone(),
                path: target.display().to_string(),
                expected: sha256.trim().to_string(),
                actual,
            });
        }
        fs::set_permissions(tmp, Permissions::from_mode(mode))
            .map_err(|e| self.error(what.clone(), format!("cannot set the mode: {e}")))?;
        fs::rename(tmp, target)
            .map_err(|e| self.error(what, format!("cannot rename into place: {e}")))?;
        sync_dir(&crate::atomic::parent_dir(target));
        Ok(())
    }

    /// Remove temp files that earlier, killed uploads of the same target left behind.
    fn clear_leftovers(&self, dir: &Path, name: &str) -> Result<(), TransportError> {
        let prefix = format!(".{name}.systemvm-");
        for leftover in self.names(dir)? {
            if is_temp_name(&leftover) && leftover.starts_with(&prefix) {
                let path = dir.join(&leftover);
                tracing::info!("{}: removing leftover {}", self.name, path.display());
                fs::remove_file(&path)
                    .map_err(|e| self.error(format!("removing leftover {}", path.display()), e))?;
            }
        }
        Ok(())
    }

    fn names(&self, dir: &Path) -> Result<Vec<String>, TransportError> {
        let what = || format!("listing {}", dir.display());
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(what(), e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.error(what(), e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

impl Transport for LocalDir {
    fn host(&self) -> &str {
        &self.name
    }

    fn run(&mut self, command: &str) -> Result<Output, TransportError> {
        Err(self.error(format!("`{command}`"), "no commands on a directory target"))
    }

    /// Follows symlinks; `mode` holds the permission bits only (`& 0o7777`).
    fn stat(&mut self, path: &str) -> Result<Option<Stat>, TransportError> {
        match fs::metadata(path) {
            Ok(m) => Ok(Some(Stat {
                size: m.len(),
                mtime: m.mtime(),
                mode: m.mode() & 0o7777,
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(format!("stat {path}"), e)),
        }
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("reading {path}"), e)),
        };
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(format!("reading {path}"), e))?;
        if bytes.len() as u64 > limit {
            return Err(self.error(
                format!("reading {path}"),
                format!("larger than {limit} bytes"),
            ));
        }
        Ok(Some(bytes))
    }

    fn upload(
        &mut self,
        local: &Path,
        remote: &str,
        mode: u32,
        sha256: &str,
        progress: Progress,
    ) -> Result<(), TransportError> {
        let mut file =
            File::open(local).map_err(|e| self.error(format!("reading {}", local.display()), e))?;
        self.push(&mut file, remote, mode, sha256, progress)
    }

    fn write(&mut self, remote: &str, bytes: &[u8], mode: u32) -> Result<(), TransportError> {
        let sha256 = crate::manifest::hex(&Sha256::digest(bytes));
        self.push(&mut Cursor::new(bytes), remote, mode, &sha256, &|_| {})
    }

    fn remove(&mut self, path: &str) -> Result<(), TransportError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(format!("removing {path}"), e)),
        }
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, TransportError> {
        self.names(&PathBuf::from(dir))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError> {
        fs::rename(from, to).map_err(|e| self.error(format!("renaming {from} to {to}"), e))?;
        sync_dir(&crate::atomic::parent_dir(Path::new(to)));
        Ok(())
    }

    fn sha256(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        match hash_file(Path::new(path)) {
            Ok(hex) => Ok(Some(hex)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(format!("sha256 of {path}"), e)),
        }
    }

    fn sha512(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        if self.stat(path)?.is_none() {
            return Ok(None);
        }
        crate::manifest::Checksums::of_file(Path::new(path))
            .map(|c| Some(c.sha512))
            .map_err(|e| TransportError::Io {
                host: self.name.clone(),
                what: format!("sha512 of {path}"),
                reason: e.to_string(),
            })
    }
}

/// Copy in chunks, reporting progress; errors say which side failed.
fn copy(reader: &mut dyn Read, writer: &mut File, progress: Progress) -> Result<u64, String> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read the source: {e}")),
        };
        writer.write_all(&buf[..n]).map_err(|e| {
            format!("write failed after {done} bytes: {e}; the old file is unchanged")
        })?;
        done += n as u64;
        progress(done);
    }
}

/// The sha256 of a file, read in chunks.
fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(crate::manifest::hex(&hasher.finalize())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Make a rename durable. Best effort: some file systems refuse to fsync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
