//! Secrets (passwords, passphrases) come from a file or an environment variable, never from
//! argv, and never show in `Debug` output or logs.
//!
//! [`mode_problem`] is the one check of a secret file's mode (private keys, password files,
//! the API secret, passphrases): only its owner may read it. Reading a secret file with a
//! looser mode warns once per file and run, naming it.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A secret string; `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself: pass it only to the library that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first line of a file, without its line ending. An empty secret is refused; a
    /// file group or others may read is warned about ([`warn_if_readable`]).
    pub fn from_file(path: &Path) -> Result<Secret> {
        let secret = Secret::identifier_from_file(path)?;
        warn_if_readable(path);
        Ok(secret)
    }

    /// As [`Secret::from_file`], for a value that names rather than proves (CloudStack's
    /// API key, sent with every request): its file's mode is not warned about.
    pub fn identifier_from_file(path: &Path) -> Result<Secret> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read secret file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            bail!("secret file {} is empty", path.display());
        }
        Ok(Secret(line.to_string()))
    }

    /// The value of an environment variable, which must be set and non-empty.
    pub fn from_env(name: &str) -> Result<Secret> {
        if let Ok(mut names) = READ_FROM_ENV.lock() {
            names.insert(name.to_string());
        }
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Secret(v)),
            _ => bail!("environment variable {name} is not set"),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: overwrite before the allocator reuses the memory.
        // SAFETY: zero bytes are valid UTF-8.
        unsafe { self.0.as_bytes_mut().fill(0) };
    }
}

/// Why a file holding a secret is unsafe to keep as it is: group or others may read (or
/// write) it. `None` when only its owner may, or when it cannot be stat'ed (reading it then
/// fails with its own error).
pub fn mode_problem(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} has mode {mode:04o}, readable by others (group or world); chmod 600 it",
            path.display()
        )
    })
}

/// Warn about a secret file's mode ([`mode_problem`]), once per file in a run.
pub fn warn_if_readable(path: &Path) {
    let Some(problem) = mode_problem(path) else {
        return;
    };
    let first = WARNED
        .lock()
        .map_or(true, |mut warned| warned.insert(path.to_path_buf()));
    if first {
        tracing::warn!("{problem}");
    }
}

/// Secret files warned about so far.
static WARNED: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Environment variables that carry CloudStack's keys (clap reads them with `env = ...`).
pub const SECRET_VARS: &[&str] = &["CLOUDSTACK_API_KEY", "CLOUDSTACK_SECRET_KEY"];

/// Names of the variables [`Secret::from_env`] was asked for (inventory `password_env`).
static READ_FROM_ENV: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Keep secret-carrying environment variables out of a child we spawn.
pub fn scrub_env(cmd: &mut std::process::Command) {
    for name in SECRET_VARS {
        cmd.env_remove(name);
    }
    if let Ok(names) = READ_FROM_ENV.lock() {
        for name in names.iter() {
            cmd.env_remove(name);
        }
    }
}
