//! How bytes and commands reach a host. Every remote write follows one rule (architecture
//! decision 8), written once in [`upload`] over the primitives of [`Transport`]: upload to a
//! temp name in the destination directory, verify the sha256 on the far side, set the mode,
//! rename. A crash, a lost link or a full disk leaves the old file intact and no half file
//! under the final name.
//!
//! [`ssh`] talks to XenServer and KVM hosts; [`local`] writes a mounted secondary storage
//! directory; [`smb`] writes Hyper-V's SMB shares through `smbclient`. Errors say whether a
//! retry can help ([`TransportError::is_transient`]).

pub mod local;
pub mod quote;
pub mod smb;
pub mod ssh;
pub mod upload;

pub use upload::{is_temp_name, temp_name, Source};

use std::path::Path;

/// What a remote command printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Size, mtime and mode of a remote file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime: i64,
    pub mode: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{host}: cannot connect: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host}: timed out {during}")]
    Timeout { host: String, during: String },
    /// An established connection went away (reset, closed, cut).
    #[error("{host}: connection lost {during}: {reason}")]
    Lost {
        host: String,
        during: String,
        reason: String,
    },
    #[error("{host}: unknown host key {fingerprint}; check it, then pin it with `systemvm propagate --accept-new` (dry runs and status never pin)")]
    UnknownHostKey { host: String, fingerprint: String },
    #[error("{host}: HOST KEY CHANGED: known_hosts has {expected}, the host presents {actual}; refusing (remove the old entry only if you know why it changed)")]
    ChangedHostKey {
        host: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{host}: {file} line {line} may name this host but systemvm cannot check it \
         (a pattern, @cert-authority or a key type it cannot use); refusing to treat the \
         host as new: give it a plain line (ssh-keyscan) or remove that one"
    )]
    UncheckableHostKey {
        host: String,
        file: String,
        line: usize,
    },
    #[error("{host}: host key {fingerprint} is marked @revoked in {file}; refusing")]
    RevokedHostKey {
        host: String,
        fingerprint: String,
        file: String,
    },
    #[error("{host}: authentication failed for {user} ({method})")]
    Auth {
        host: String,
        user: String,
        method: String,
    },
    #[error("{host}: `{command}` exited with {status}: {stderr}")]
    Command {
        host: String,
        command: String,
        status: i32,
        stderr: String,
    },
    #[error(
        "{host}: {path}: checksum mismatch after upload (expected {expected}, host has {actual})"
    )]
    Checksum {
        host: String,
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{host}: {what}: {reason}")]
    Io {
        host: String,
        what: String,
        reason: String,
    },
}

impl TransportError {
    /// An [`TransportError::Io`]: `host` failed at `what` because of `reason`.
    pub fn io(host: impl Into<String>, what: impl Into<String>, reason: impl ToString) -> Self {
        TransportError::Io {
            host: host.into(),
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Connection resets and time-outs may pass; refused keys and passwords will not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Connect { .. }
                | TransportError::Timeout { .. }
                | TransportError::Lost { .. }
        )
    }

    /// The kind of failure, for reports (`cause` in the JSON `done` event).
    pub fn cause(&self) -> Cause {
        match self {
            TransportError::Connect { .. } => Cause::Connect,
            TransportError::Timeout { .. } => Cause::Timeout,
            TransportError::Lost { .. } => Cause::ConnectionLost,
            TransportError::UnknownHostKey { .. } => Cause::UnknownHostKey,
            TransportError::ChangedHostKey { .. } | TransportError::UncheckableHostKey { .. } => {
                Cause::HostKeyChanged
            }
            TransportError::RevokedHostKey { .. } => Cause::HostKeyRevoked,
            TransportError::Auth { .. } => Cause::Auth,
            TransportError::Command { .. } => Cause::Command,
            TransportError::Checksum { .. } => Cause::Checksum,
            TransportError::Io { .. } => Cause::Io,
        }
    }
}

/// Why a target failed, in one word (kebab-case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    Connect,
    Timeout,
    ConnectionLost,
    UnknownHostKey,
    HostKeyChanged,
    HostKeyRevoked,
    Auth,
    Command,
    Checksum,
    Io,
    /// The run's `--deadline` passed before the target was done.
    Deadline,
    /// A failure outside the transport (a bad plan, a local file).
    Other,
}

/// Progress callback: bytes sent so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Held while a target is planned and changed (a directory target's folder lock).
pub type Guard = Box<dyn Send>;

/// A host's file system and shell, as strategies need them.
pub trait Transport: Send {
    /// The host's name, for messages.
    fn host(&self) -> &str;

    /// Run a command line (built with [`quote::command`]); a non-zero exit is an error.
    fn run(&mut self, command: &str) -> Result<Output, TransportError>;

    /// Stat a file; `None` when it does not exist.
    fn stat(&mut self, path: &str) -> Result<Option<Stat>, TransportError>;

    /// Read a small file (at most `limit` bytes); `None` when it does not exist.
    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError>;

    /// Upload `local` to `remote` with `mode` by [`upload`]'s protocol: temp name beside
    /// it, verify `sha256` on the host, set the mode, rename. Creates the parent directory.
    fn upload(
        &mut self,
        local: &Path,
        remote: &str,
        mode: u32,
        sha256: &str,
        progress: Progress,
    ) -> Result<(), TransportError> {
        upload::file(self, local, remote, mode, sha256, progress)
    }

    /// Write small contents (markers, keys) by the same protocol.
    fn write(&mut self, remote: &str, bytes: &[u8], mode: u32) -> Result<(), TransportError> {
        upload::bytes(self, remote, bytes, mode)
    }

    // The primitives the upload protocol is made of.

    /// Create a directory and its parents; an existing one is fine.
    fn create_dir_all(&mut self, dir: &str) -> Result<(), TransportError>;

    /// Create `path`, which must not exist, with mode 0600; stream `source` into it, flush
    /// it to stable storage and close it.
    fn create_new(&mut self, path: &str, source: Source) -> Result<(), TransportError>;

    /// Set a file's permission bits.
    fn set_mode(&mut self, path: &str, mode: u32) -> Result<(), TransportError>;

    /// Whether the link is gone (after a time-out or a reset): nothing more can be done on
    /// it, and cleanup is left to the next run.
    fn is_broken(&self) -> bool {
        false
    }

    /// Remove a file; absent is fine.
    fn remove(&mut self, path: &str) -> Result<(), TransportError>;

    /// File names in a directory (not recursive); an absent directory is empty.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, TransportError>;

    /// Stop uploads that are still streaming at `at` (a [`TransportError::Timeout`]; the temp
    /// file goes, the target stays as it was). By default nothing is cut.
    fn set_deadline(&mut self, _at: std::time::Instant) {}
    /// Rename `from` to `to`, replacing `to` when it exists. By default `mv -f` on the host.
    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError> {
        self.run(&quote::command(&["mv", "-f", "--", from, to]))
            .map(drop)
    }

    /// The sha256 (hex) of a file, `None` when it does not exist. By default computed on
    /// the host with OpenSSL or sha256sum.
    fn sha256(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        remote_digest(self, path, "sha256")
    }

    /// Lock the folder `dir` against other writers until the guard is dropped, waiting at
    /// most `timeout`; `None` where the transport has no lock (a host over SSH or SMB,
    /// whose every write is atomic on its own).
    fn lock(
        &mut self,
        _dir: &str,
        _timeout: std::time::Duration,
    ) -> Result<Option<Guard>, TransportError> {
        Ok(None)
    }

    /// The sha512 (hex) of a file, `None` when it does not exist. By default computed on
    /// the host with OpenSSL or sha512sum.
    fn sha512(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        remote_digest(self, path, "sha512")
    }
}

/// A command that prints `<hex> ...` for a file on a host, `algorithm` being `sha256` or
/// `sha512`: OpenSSL's code when the host has it (SHA-NI makes it several times faster on
/// large ISOs), else coreutils' `sha256sum` / `sha512sum`. OpenSSL reads stdin, since 1.0
/// (XenServer 7, CentOS 7) knows neither `-r` nor `--`; it prints `(stdin)= <hex>`.
pub fn digest_command(algorithm: &str, path: &str) -> String {
    let script = format!(
        "if command -v openssl >/dev/null 2>&1; \
         then openssl dgst -{algorithm} < \"$1\"; else {algorithm}sum -- \"$1\"; fi"
    );
    quote::command(&["sh", "-c", &script, "sh", path])
}

/// The hex digest in the first word of a `digest_command`'s output, checked for length.
pub fn parse_digest(stdout: &str, algorithm: &str) -> Option<String> {
    let len = if algorithm == "sha512" { 128 } else { 64 };
    // GNU coreutils prefixes the line with `\` when the file name needs escaping.
    let mut words = stdout.split_whitespace();
    let mut first = words.next()?;
    // OpenSSL on stdin: `(stdin)= <hex>` (3.x: `SHA2-256(stdin)= <hex>`).
    if first.ends_with("(stdin)=") {
        first = words.next()?;
    }
    let hex = first.trim_start_matches('\\').to_ascii_lowercase();
    (hex.len() == len && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// `bytes` read from `path` by [`Transport::read`], checked against its `limit`.
fn capped(
    host: &str,
    path: &str,
    bytes: Vec<u8>,
    limit: u64,
) -> Result<Option<Vec<u8>>, TransportError> {
    if bytes.len() as u64 > limit {
        let reason = format!("larger than {limit} bytes");
        return Err(TransportError::io(host, format!("reading {path}"), reason));
    }
    Ok(Some(bytes))
}

/// The digest of a file computed on the host; `None` when the file does not exist.
fn remote_digest<T: Transport + ?Sized>(
    t: &mut T,
    path: &str,
    algorithm: &str,
) -> Result<Option<String>, TransportError> {
    if t.stat(path)?.is_none() {
        return Ok(None);
    }
    let out = t.run(&digest_command(algorithm, path))?;
    match parse_digest(&out.stdout, algorithm) {
        Some(hex) => Ok(Some(hex)),
        None => Err(TransportError::io(
            t.host(),
            format!("{algorithm} of {path}"),
            format!(
                "unexpected output {:?}",
                out.stdout.chars().take(80).collect::<String>()
            ),
        )),
    }
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    /// An OpenSSL 1.0 stand-in: refuses `-r` and `--` as 1.0 does, else prints `(stdin)= hex`.
    #[test]
    fn the_digest_command_works_with_openssl_1_0() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("openssl");
        std::fs::write(
            &fake,
            "#!/bin/sh\nfor a; do case $a in -r|--) echo \"unknown option '$a'\" >&2; exit 1;; esac; done\nprintf '(stdin)= %s\\n' \"$(sha256sum | cut -d' ' -f1)\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("-odd name");
        std::fs::write(&file, b"abc").unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(digest_command("sha256", file.to_str().unwrap()))
            .env("PATH", path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout} {:?}", out.stderr);
        assert_eq!(
            parse_digest(&stdout, "sha256").as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            parse_digest("SHA2-256(stdin)= BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\n", "sha256").as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }
}
