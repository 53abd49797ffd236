//! Secrets (passwords, passphrases) come from a file or an environment variable, never from
//! argv, and never show in `Debug` output or logs.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::Path;

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

    /// The first line of a file, without its line ending. An empty secret is refused.
    pub fn from_file(path: &Path) -> Result<Secret> {
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
