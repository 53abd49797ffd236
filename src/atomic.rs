//! Files appear whole or not at all: everything is written to a temp file in the target's
//! own directory (same file system), flushed, fsynced and renamed over the target. A failure
//! at any point drops the temp file, so no half-written file is left under either name.

use anyhow::{Context, Result};
use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temp file beside `target`, named after it so a leftover is recognisable.
pub fn temp_beside(target: &Path) -> Result<NamedTempFile> {
    let (dir, builder_prefix) = temp_names(target)?;
    let file = tempfile::Builder::new()
        .prefix(&builder_prefix)
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| unwritable(&dir, e))?;
    crate::interrupt::register(file.path());
    Ok(file)
}

/// A temp directory beside `target` for multi-file work; removed when dropped.
pub fn temp_dir_beside(target: &Path) -> Result<tempfile::TempDir> {
    let (dir, builder_prefix) = temp_names(target)?;
    let work = tempfile::Builder::new()
        .prefix(&builder_prefix)
        .suffix(".tmp")
        .tempdir_in(&dir)
        .map_err(|e| unwritable(&dir, e))?;
    crate::interrupt::register(work.path());
    Ok(work)
}

/// The directory of `target` (which must exist) and a temp name prefix, `.<name>.<pid>.`;
/// temps of that name left by processes that are gone are removed first.
fn temp_names(target: &Path) -> Result<(PathBuf, String)> {
    let dir = parent_dir(target);
    if !dir.is_dir() {
        anyhow::bail!("output directory {} does not exist", dir.display());
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "systemvm".into());
    crate::interrupt::clean_stale(&dir, &name);
    let prefix = crate::interrupt::temp_prefix(&name);
    crate::interrupt::register_prefix(&dir, &prefix);
    Ok((dir, prefix))
}

fn unwritable(dir: &Path, err: std::io::Error) -> anyhow::Error {
    // tempfile's message repeats the random path; the kind says what matters.
    let reason = std::io::Error::from(err.kind());
    anyhow::anyhow!("cannot write in {}: {reason}", dir.display())
}

/// Fsync a finished temp file, set its mode and rename it over `target`.
pub fn persist(file: NamedTempFile, target: &Path, mode: u32) -> Result<()> {
    crate::interrupt::forget(file.path());
    file.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", target.display()))?;
    file.as_file()
        .sync_all()
        .with_context(|| format!("cannot flush {}", target.display()))?;
    file.persist(target)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rename into {}", target.display()))?;
    sync_dir(&parent_dir(target));
    Ok(())
}

/// Move a finished file (already fsynced) from a temp directory over `target`.
pub fn rename_into_place(from: &Path, target: &Path) -> Result<()> {
    fs::rename(from, target).with_context(|| format!("cannot rename into {}", target.display()))?;
    sync_dir(&parent_dir(target));
    Ok(())
}

/// Write `bytes` to `target` atomically with `mode`.
pub fn write(target: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = temp_beside(target)?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", target.display()))?;
    persist(file, target, mode)
}

/// Make a rename durable. Best effort: some file systems refuse to fsync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
