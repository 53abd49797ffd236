//! A mounted directory as a target (VMware's secondary storage over NFS): the same
//! upload-to-temp, verify, rename rule as SSH, with local paths and no commands.
//!
//! Its primitives for [`super::upload`]: the temp file is created exclusively and fsynced,
//! its sha256 is read back from the share (what landed, not what we meant to send), and a
//! rename fsyncs the directory. Memory does not grow with file size.

use crate::hashing::{self, Algorithm, StreamError};
use crate::transport::{Output, Source, Stat, Transport, TransportError};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

    /// A file's digest, read back from the directory; `None` when it does not exist.
    fn digest(&self, path: &str, algorithm: Algorithm) -> Result<Option<String>, TransportError> {
        match hashing::of_file(Path::new(path), &[algorithm]) {
            Ok(sums) => Ok(Some(sums.get(algorithm).to_string())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(format!("{algorithm:?} of {path}"), e)),
        }
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

    fn create_dir_all(&mut self, dir: &str) -> Result<(), TransportError> {
        fs::create_dir_all(dir).map_err(|e| self.error(format!("creating {dir}"), e))
    }

    fn create_new(&mut self, path: &str, source: Source) -> Result<(), TransportError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
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
            .map_err(|e| self.error(format!("flushing {path}"), e))
    }

    fn set_mode(&mut self, path: &str, mode: u32) -> Result<(), TransportError> {
        fs::set_permissions(path, Permissions::from_mode(mode))
            .map_err(|e| self.error(format!("setting the mode of {path}"), e))
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
        self.digest(path, Algorithm::Sha256)
    }

    fn sha512(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        self.digest(path, Algorithm::Sha512)
    }
}

/// Make a rename durable. Best effort: some file systems refuse to fsync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
