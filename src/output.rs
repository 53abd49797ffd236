//! Where `-o` writes, and when an output may be replaced: one rule for every command.
//!
//! **Where.** `-o PATH` for a file output: an existing directory, or a path ending in `/`,
//! means the command's default file name inside it; anything else is the file itself, whose
//! directory must exist (it is named when missing, never created). A directory output (the
//! patch files, exports, Packer files) is created when its parent exists.
//!
//! **Replacing.** An output the command can make again from its inputs (an ISO without
//! keys, patch files, packages, exports) is replaced atomically. One that holds what no
//! input can give back (a private key, the keys injected into an ISO, a file written for
//! you to edit: an inventory, Packer files, a seeded template) is replaced only with
//! `--force`.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The file `-o` names: `given` (or the current directory) resolved against `default_name`.
pub fn file(given: Option<&Path>, default_name: &str) -> Result<PathBuf> {
    let Some(given) = given else {
        return Ok(PathBuf::from(default_name));
    };
    let slash = given.as_os_str().as_encoded_bytes().ends_with(b"/");
    if given.is_dir() {
        return Ok(given.join(default_name));
    }
    if slash {
        bail!("-o {}: no such directory", given.display());
    }
    parent_exists(given)?;
    Ok(given.to_path_buf())
}

/// The directory `given` goes in exists, or is named: missing, or not a directory.
fn parent_exists(given: &Path) -> Result<()> {
    let dir = crate::atomic::parent_dir(given);
    if dir.is_dir() {
        return Ok(());
    }
    let what = if dir.exists() {
        "is not a directory"
    } else {
        "does not exist"
    };
    bail!("-o {}: directory {} {what}", given.display(), dir.display())
}

/// A directory output: it may exist (as a directory), or its parent must.
pub fn dir(given: &Path) -> Result<()> {
    if given.is_dir() {
        return Ok(());
    }
    if given.exists() {
        bail!("-o {}: exists and is not a directory", given.display());
    }
    parent_exists(given)
}

/// Refuse to replace `path` without `force` (for outputs that hold what cannot be made
/// again); `what` says what would be lost.
pub fn refuse_existing(path: &Path, force: bool, what: &str) -> Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        bail!(
            "{} exists ({what}); pass --force to replace it, or -o another file",
            path.display()
        );
    }
    Ok(())
}

/// Refuse to replace the ISO at `path` without `force` when it holds keys that `kept` (the
/// keys of what replaces it) does not: those keys would be lost. Anything that is not a
/// readable ISO holds no keys.
pub fn refuse_losing_keys(path: &Path, kept: &[ssh_key::PublicKey], force: bool) -> Result<()> {
    if force || !path.is_file() {
        return Ok(());
    }
    let Ok(report) = crate::inspect::inspect(path) else {
        return Ok(());
    };
    let kept: Vec<String> = kept
        .iter()
        .map(|k| crate::keys::info(k).fingerprint)
        .collect();
    let lost: Vec<&str> = report
        .keys
        .iter()
        .filter(|k| !kept.contains(&k.fingerprint))
        .map(|k| k.fingerprint.as_str())
        .collect();
    if let Some(first) = lost.first() {
        let more = match lost.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        bail!(
            "{} has keys injected ({first}{more}); replacing it loses them: pass --force, \
             or the same keys with --key",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(file(None, "x.iso").unwrap(), PathBuf::from("x.iso"));
        assert_eq!(file(Some(d), "x.iso").unwrap(), d.join("x.iso"));
        let slash = PathBuf::from(format!("{}/", d.display()));
        assert_eq!(file(Some(&slash), "x.iso").unwrap(), d.join("x.iso"));
        assert_eq!(file(Some(&d.join("y")), "x").unwrap(), d.join("y"));
        let missing = file(Some(&d.join("no/y")), "x").unwrap_err().to_string();
        assert!(missing.contains("no does not exist"), "{missing}");
        let missing = file(Some(&d.join("no/")), "x").unwrap_err().to_string();
        assert!(missing.contains("no such directory"), "{missing}");
    }

    #[test]
    fn dir_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        super::dir(d).unwrap();
        super::dir(&d.join("new")).unwrap();
        super::dir(&PathBuf::from(format!("{}/new/", d.display()))).unwrap();
        let missing = super::dir(&d.join("a/b")).unwrap_err().to_string();
        assert!(missing.contains("a does not exist"), "{missing}");
    }
}
