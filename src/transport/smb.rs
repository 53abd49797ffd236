//! An SMB share as a target (Hyper-V's secondary storage, a Hyper-V host's admin share),
//! through Samba's own `smbclient` program: the same upload-to-temp, verify, rename rule as
//! SSH, with share-relative paths (`systemvm/systemvm-4.16.0.0.iso`) and no commands.
//!
//! # SMB client
//!
//! Tried against a real Samba 4.17 `smbd` on loopback (50 MiB file):
//!
//! - the `smb2` crate (0.18, pure Rust, needs a tokio runtime despite "runtime agnostic"):
//!   streamed upload and read-back worked, and its errors classify well (`AuthRequired` for
//!   a wrong password, `Io` for a refused connection), but its rename always sends
//!   `ReplaceIfExists = false`, so renaming over an existing ISO fails with
//!   `STATUS_OBJECT_NAME_COLLISION`; replacing would mean delete-then-rename, a window with
//!   no ISO at all on every update. The probe (a debug build that uploaded and read back)
//!   peaked at ~100 MB resident for the 50 MiB file.
//! - `smbclient` (Samba 4.17): `rename OLD NEW -f` is an SMB2 rename with replace;
//!   `put - NAME` and `get NAME -` stream through pipes (~36 MB resident for 50 MiB, and
//!   35 MiB for a 512 MiB ISO: flat); ~200 MB/s on loopback; one call costs ~45-60 ms. Its
//!   NT status codes classify errors exactly: `NT_STATUS_LOGON_FAILURE` (wrong password:
//!   final), `NT_STATUS_CONNECTION_REFUSED` (transient), `NT_STATUS_BAD_NETWORK_NAME` (no
//!   such share: final).
//!
//! Neither client's own timeout covered a server that accepts and never answers (both
//! waited until the listener closed), so we enforce ours (below). We use `smbclient`:
//! correct replacing renames matter more than avoiding a subprocess.
//!
//! # How a call runs
//!
//! Each operation is one `smbclient` process with an explicit argument list (no shell),
//! a private config file and an authentication file (mode 0600) in a private temp dir
//! (mode 0700, named with our PID so that a later run removes it if we were killed) that
//! lives as long as the transport: the password is never on a command
//! line or in the environment of the child, which gets only `PATH`, `LC_ALL=C` and
//! `TZ=UTC` (the last two make its output parseable). A watchdog kills the child when
//! neither its output nor our input has moved for the connect timeout (the first call,
//! which logs in) or the connect plus the transfer timeout (later calls); that is reported
//! as a (transient) time-out. Paths are quoted for smbclient's command parser; characters
//! it (or Windows) cannot take (`"`, `;`, `*`, `?`, `<`, `>`, `|`, `:`, control
//! characters) are refused up front.
//!
//! An upload streams the file into smbclient's stdin (`put -`) under a temp name that starts
//! with a dot (so never matches `systemvm*.iso`), reads it back over SMB (`get NAME -`)
//! through a sha256 hasher, and renames it into place with replace. Any failure removes the
//! temp file. SMB has no Unix modes: `mode` is ignored and [`Stat::mode`] is reported as 0644.

use crate::secret::Secret;
use crate::transport::{
    is_temp_name, temp_name, Output, Progress, Stat, Transport, TransportError,
};
use sha2::{Digest, Sha256, Sha512};
use std::fs::{File, OpenOptions};
use std::io::{Cursor, ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes per read and write while streaming.
const CHUNK: usize = 256 * 1024;

/// How much of smbclient's text output is kept (listings, messages).
const TEXT_LIMIT: usize = 16 << 20;

/// The program we drive.
pub const SMBCLIENT: &str = "smbclient";

/// How to reach a share.
#[derive(Debug, Clone)]
pub struct SmbConfig {
    /// The inventory name, for messages.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub share: String,
    pub user: String,
    pub domain: Option<String>,
    pub password: Secret,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

/// A share reached through `smbclient`; paths are relative to the share's root, `/`-separated.
pub struct SmbTransport {
    config: SmbConfig,
    /// Holds `smb.conf` and `auth` (0600); removed when the transport is dropped.
    dir: tempfile::TempDir,
    /// Whether the first login worked: until then a call may idle for the connect
    /// timeout only, afterwards for the connect plus the transfer timeout.
    connected: bool,
}

/// Where a call's stdout goes, chunk by chunk (a hasher, a bounded buffer).
type Sink<'a> = &'a mut (dyn FnMut(&[u8]) + Send);

/// What one smbclient call printed, and how it ended.
struct Call {
    success: bool,
    /// Its messages: stderr, then the start of stdout (smbclient prints some errors there).
    text: String,
    /// All of stdout, when no sink took it.
    stdout: String,
    timed_out: bool,
}

impl Call {
    /// The first `NT_STATUS_...` code in its messages.
    fn status(&self) -> Option<&str> {
        let at = self.text.find("NT_STATUS_")?;
        let rest = &self.text[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    }

    fn has(&self, codes: &[&str]) -> bool {
        self.status().is_some_and(|s| codes.contains(&s))
    }
}

/// Status codes meaning "the file or folder is not there".
const NOT_FOUND: &[&str] = &[
    "NT_STATUS_OBJECT_NAME_NOT_FOUND",
    "NT_STATUS_OBJECT_PATH_NOT_FOUND",
    "NT_STATUS_NO_SUCH_FILE",
];

/// Status codes of a refused login: retrying cannot help.
const AUTH_FAILED: &[&str] = &[
    "NT_STATUS_LOGON_FAILURE",
    "NT_STATUS_WRONG_PASSWORD",
    "NT_STATUS_NO_SUCH_USER",
    "NT_STATUS_ACCOUNT_DISABLED",
    "NT_STATUS_ACCOUNT_LOCKED_OUT",
    "NT_STATUS_ACCOUNT_EXPIRED",
    "NT_STATUS_ACCOUNT_RESTRICTION",
    "NT_STATUS_PASSWORD_EXPIRED",
    "NT_STATUS_PASSWORD_MUST_CHANGE",
    "NT_STATUS_INVALID_LOGON_HOURS",
    "NT_STATUS_LOGON_TYPE_NOT_GRANTED",
];

/// Status codes of a lost or refused connection: a retry may pass.
const CONNECTION: &[&str] = &[
    "NT_STATUS_CONNECTION_REFUSED",
    "NT_STATUS_CONNECTION_RESET",
    "NT_STATUS_CONNECTION_DISCONNECTED",
    "NT_STATUS_CONNECTION_ABORTED",
    "NT_STATUS_IO_TIMEOUT",
    "NT_STATUS_HOST_UNREACHABLE",
    "NT_STATUS_NETWORK_UNREACHABLE",
    "NT_STATUS_PIPE_BROKEN",
    "NT_STATUS_NETWORK_NAME_DELETED",
    "NT_STATUS_INVALID_NETWORK_RESPONSE",
    "NT_STATUS_END_OF_FILE",
];

/// Our private temp dirs are `<temp>/systemvm-smb-<pid>-<random>`.
const PRIVATE_PREFIX: &str = "systemvm-smb-";

/// Remove private dirs (and the authentication files in them) that killed runs left behind:
/// ours by owner, and their process gone. Best effort; `ours` is the one just made.
fn remove_stale_private_dirs(ours: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (Some(parent), Ok(me)) = (ours.parent(), std::fs::metadata(ours)) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PRIVATE_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let owned = entry
            .metadata()
            .is_ok_and(|m| m.is_dir() && m.uid() == me.uid());
        if owned && !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!("removing {}, left by a killed run", entry.path().display());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Refuse path characters that smbclient's command parser or Windows cannot take.
pub fn check_path(path: &str) -> Result<(), String> {
    match path
        .chars()
        .find(|c| c.is_control() || "\";*?<>|:".contains(*c))
    {
        Some(c) => Err(format!(
            "{path:?}: {c:?} cannot be used in an SMB path (nor any of \" ; * ? < > | :)"
        )),
        None => Ok(()),
    }
}

/// `a/b c` as smbclient wants it: `"\a\b c"`.
fn smb_path(path: &str) -> String {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    format!("\"\\{}\"", parts.join("\\"))
}

/// The directory part and the name of a share-relative path.
fn split(path: &str) -> (&str, &str) {
    let path = path.trim_end_matches('/');
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }
}

impl SmbTransport {
    /// Prepare the private files and check that the share answers and the login works.
    pub fn connect(config: &SmbConfig) -> Result<SmbTransport, TransportError> {
        let io = |what: &str, e: std::io::Error| TransportError::Io {
            host: config.name.clone(),
            what: what.to_string(),
            reason: e.to_string(),
        };
        for (what, value) in [
            ("user", config.user.as_str()),
            ("domain", config.domain.as_deref().unwrap_or("")),
            ("password", config.password.expose()),
        ] {
            if value.contains(['\n', '\r']) {
                return Err(TransportError::Io {
                    host: config.name.clone(),
                    what: format!("SMB {what}"),
                    reason: "contains a line break".into(),
                });
            }
        }
        // tempfile creates the directory 0700. Our PID in its name lets a later run remove
        // it when we were killed before we could.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PRIVATE_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| io("creating a private temp dir", e))?;
        remove_stale_private_dirs(dir.path());
        let mut conf = format!(
            "[global]\n  client min protocol = SMB2_02\n  lock directory = {0}\n  \
             state directory = {0}\n  cache directory = {0}\n  private dir = {0}\n  \
             ncalrpc dir = {0}\n  log file = {0}/log\n  max log size = 64\n",
            dir.path().display()
        );
        conf.push_str("  load printers = no\n");
        std::fs::write(dir.path().join("smb.conf"), conf)
            .map_err(|e| io("writing the smbclient config", e))?;
        let mut auth = format!(
            "username = {}\npassword = {}\n",
            config.user,
            config.password.expose()
        );
        if let Some(domain) = &config.domain {
            auth.push_str(&format!("domain = {domain}\n"));
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.path().join("auth"))
            .map_err(|e| io("writing the authentication file", e))?;
        file.write_all(auth.as_bytes())
            .map_err(|e| io("writing the authentication file", e))?;
        // Best effort: overwrite the copy we formatted.
        // SAFETY: zero bytes are valid UTF-8.
        unsafe { auth.as_bytes_mut().fill(0) };
        drop(file);
        let mut transport = SmbTransport {
            config: config.clone(),
            dir,
            connected: false,
        };
        transport.simple("pwd", "connecting")?;
        transport.connected = true;
        Ok(transport)
    }

    fn error(&self, what: impl Into<String>, reason: impl ToString) -> TransportError {
        TransportError::Io {
            host: self.config.name.clone(),
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    fn checked(&self, path: &str) -> Result<String, TransportError> {
        check_path(path).map_err(|m| self.error(format!("path {path:?}"), m))?;
        Ok(smb_path(path))
    }

    /// Turn a failed call into the error a caller can branch on.
    fn classify(&self, call: &Call, what: &str) -> TransportError {
        let host = self.config.name.clone();
        if call.timed_out {
            return TransportError::Timeout {
                host,
                during: what.to_string(),
            };
        }
        let status = call.status().unwrap_or("");
        if call.has(AUTH_FAILED) {
            return TransportError::Auth {
                host,
                user: self.user_label(),
                method: format!("password, {status}"),
            };
        }
        if call.has(CONNECTION) {
            return TransportError::Connect {
                host,
                reason: format!("{}:{}: {status}", self.config.address, self.config.port),
            };
        }
        if status == "NT_STATUS_BAD_NETWORK_NAME" {
            return self.error(
                what,
                format!(
                    "no share {:?} on {} ({status})",
                    self.config.share, self.config.address
                ),
            );
        }
        let line = call
            .text
            .lines()
            .map(str::trim)
            .find(|l| l.contains("NT_STATUS_"))
            .or_else(|| call.text.lines().map(str::trim).find(|l| !l.is_empty()))
            .unwrap_or("smbclient failed without a message");
        self.error(what, line.chars().take(300).collect::<String>())
    }

    fn user_label(&self) -> String {
        match &self.config.domain {
            Some(d) => format!("{d}\\{}", self.config.user),
            None => self.config.user.clone(),
        }
    }

    /// A command whose only output is messages; a reported NT status is an error.
    fn simple(&mut self, command: &str, what: &str) -> Result<Call, TransportError> {
        let call = self.call(command, None, None, &|_| {})?;
        if !call.success || call.status().is_some() {
            return Err(self.classify(&call, what));
        }
        Ok(call)
    }

    /// One smbclient run: `command` (smbclient's `-c` syntax), stdin from `input`, stdout
    /// into `sink` (else collected), under the watchdog.
    fn call(
        &mut self,
        command: &str,
        input: Option<&mut (dyn Read + Send)>,
        sink: Option<Sink>,
        progress: Progress,
    ) -> Result<Call, TransportError> {
        let c = &self.config;
        let mut cmd = Command::new(SMBCLIENT);
        cmd.arg("-s")
            .arg(self.dir.path().join("smb.conf"))
            .arg("-A")
            .arg(self.dir.path().join("auth"))
            .arg("-p")
            .arg(c.port.to_string())
            .arg("-t")
            .arg(c.io_timeout.as_secs().max(1).to_string())
            .arg(format!("//{}/{}", c.address, c.share))
            .arg("-c")
            .arg(command)
            // Nothing of ours leaks into the child (a password in an environment variable,
            // smbclient's own PASSWD and USER): it gets a clean, parseable environment.
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            let hint = if e.kind() == ErrorKind::NotFound {
                " (install Samba's smbclient)"
            } else {
                ""
            };
            self.error(format!("running {SMBCLIENT}"), format!("{e}{hint}"))
        })?;
        let started = Instant::now();
        // Milliseconds since `started` at the last sign of life.
        let alive = AtomicU64::new(0);
        let touch = || alive.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let limit = if self.connected {
            c.connect_timeout + c.io_timeout
        } else {
            c.connect_timeout
        };
        let source_error = std::sync::Mutex::new(None::<std::io::Error>);
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut timed_out = false;
        let mut status = None;
        let mut head = Vec::new();
        let mut collected = Vec::new();
        let mut errors = Vec::new();
        let mut sink = sink;
        std::thread::scope(|s| {
            if let (Some(mut pipe), Some(input)) = (stdin, input) {
                let (touch, source_error) = (&touch, &source_error);
                s.spawn(move || {
                    let mut buf = vec![0u8; CHUNK];
                    let mut done = 0u64;
                    loop {
                        let n = match input.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                            Err(e) => {
                                if let Ok(mut slot) = source_error.lock() {
                                    *slot = Some(e);
                                }
                                break;
                            }
                        };
                        if pipe.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        done += n as u64;
                        touch();
                        progress(done);
                    }
                    // Dropping the pipe tells smbclient the file is complete.
                });
            }
            if let Some(mut err) = stderr.take() {
                let errors = &mut errors;
                s.spawn(move || {
                    let mut buf = vec![0u8; 8192];
                    while let Ok(n) = err.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if errors.len() < TEXT_LIMIT {
                            errors.extend_from_slice(&buf[..n]);
                        }
                    }
                });
            }
            if let Some(mut out) = stdout.take() {
                let (head, collected, touch) = (&mut head, &mut collected, &touch);
                let sink = &mut sink;
                s.spawn(move || {
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        let n = match out.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                            Err(_) => break,
                        };
                        touch();
                        if head.len() < 4096 {
                            let take = n.min(4096 - head.len());
                            head.extend_from_slice(&buf[..take]);
                        }
                        match sink {
                            Some(sink) => sink(&buf[..n]),
                            None if collected.len() < TEXT_LIMIT => {
                                collected.extend_from_slice(&buf[..n])
                            }
                            None => {}
                        }
                    }
                });
            }
            // The watchdog: this thread owns the child, so it alone may kill it.
            loop {
                match child.try_wait() {
                    Ok(Some(s)) => {
                        status = Some(s);
                        break;
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
                let idle = started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(alive.load(Ordering::Relaxed)));
                if idle > limit {
                    timed_out = true;
                    let _ = child.kill();
                    status = child.wait().ok();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        tracing::debug!(
            "{}: smbclient {command:?}: {:?} in {:.3}s",
            c.name,
            status,
            started.elapsed().as_secs_f64()
        );
        if let Some(e) = source_error.into_inner().ok().flatten() {
            return Err(self.error(
                format!("`{command}`"),
                format!("cannot read the source: {e}"),
            ));
        }
        let mut text = String::from_utf8_lossy(&errors).into_owned();
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(&head));
        Ok(Call {
            success: !timed_out && status.is_some_and(|s| s.success()),
            text,
            stdout: String::from_utf8_lossy(&collected).into_owned(),
            timed_out,
        })
    }

    /// Create `dir` and its parents; existing ones are fine.
    fn mkdirs(&mut self, dir: &str) -> Result<(), TransportError> {
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            path = join(&path, part);
            let quoted = self.checked(&path)?;
            let call = self.call(&format!("mkdir {quoted}"), None, None, &|_| {})?;
            let exists = call.has(&["NT_STATUS_OBJECT_NAME_COLLISION"]);
            if !exists && (!call.success || call.status().is_some()) {
                return Err(self.classify(&call, &format!("creating folder {path}")));
            }
        }
        Ok(())
    }

    /// Stream a file's bytes into `sink`; `false` when it does not exist.
    fn fetch(&mut self, path: &str, sink: Sink) -> Result<bool, TransportError> {
        let quoted = self.checked(path)?;
        let call = self.call(&format!("get {quoted} -"), None, Some(sink), &|_| {})?;
        if call.success {
            return Ok(true);
        }
        if call.has(NOT_FOUND) {
            return Ok(false);
        }
        Err(self.classify(&call, &format!("reading {path}")))
    }

    /// A digest of a file read back over SMB; `None` when it does not exist.
    fn digest<D: Digest + Send>(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        let mut hasher = D::new();
        let mut sink = |b: &[u8]| hasher.update(b);
        let found = self.fetch(path, &mut sink)?;
        Ok(found.then(|| crate::manifest::hex(&hasher.finalize())))
    }

    /// Upload from any reader: the common path of `upload` and `write`.
    fn push(
        &mut self,
        reader: &mut (dyn Read + Send),
        remote: &str,
        sha256: &str,
        progress: Progress,
    ) -> Result<(), TransportError> {
        let (dir, name) = split(remote);
        if name.is_empty() {
            return Err(self.error(format!("upload to {remote}"), "not a file path"));
        }
        self.checked(remote)?;
        self.mkdirs(dir)?;
        self.clear_leftovers(dir, name)?;
        let tmp = join(dir, &temp_name(name));
        let result = self.fill_and_commit(reader, &tmp, remote, sha256, progress);
        if result.is_err() {
            let _ = self.remove(&tmp);
        }
        result
    }

    fn fill_and_commit(
        &mut self,
        reader: &mut (dyn Read + Send),
        tmp: &str,
        remote: &str,
        sha256: &str,
        progress: Progress,
    ) -> Result<(), TransportError> {
        let quoted_tmp = self.checked(tmp)?;
        let what = format!("upload to {remote}");
        let call = self.call(&format!("put - {quoted_tmp}"), Some(reader), None, progress)?;
        if !call.success || call.status().is_some() {
            return Err(self.classify(&call, &what));
        }
        let actual = self
            .digest::<Sha256>(tmp)?
            .ok_or_else(|| self.error(what.clone(), format!("{tmp} vanished after writing")))?;
        let expected = sha256.trim().to_ascii_lowercase();
        if actual != expected {
            return Err(TransportError::Checksum {
                host: self.config.name.clone(),
                path: remote.to_string(),
                expected,
                actual,
            });
        }
        self.rename(tmp, remote)
    }

    /// Remove temp files that earlier, killed uploads of the same target left behind.
    fn clear_leftovers(&mut self, dir: &str, name: &str) -> Result<(), TransportError> {
        let prefix = format!(".{name}.systemvm-");
        for leftover in self.list(dir)? {
            if is_temp_name(&leftover) && leftover.starts_with(&prefix) {
                let path = join(dir, &leftover);
                tracing::info!("{}: removing leftover {path}", self.config.name);
                self.remove(&path)?;
            }
        }
        Ok(())
    }
}

impl Transport for SmbTransport {
    fn host(&self) -> &str {
        &self.config.name
    }

    fn run(&mut self, command: &str) -> Result<Output, TransportError> {
        Err(self.error(format!("`{command}`"), "no commands over SMB"))
    }

    /// Size and write time (`allinfo`); the mode is always 0644 (SMB has none).
    fn stat(&mut self, path: &str) -> Result<Option<Stat>, TransportError> {
        let quoted = self.checked(path)?;
        let call = self.call(&format!("allinfo {quoted}"), None, None, &|_| {})?;
        if call.has(NOT_FOUND) {
            return Ok(None);
        }
        if !call.success || call.status().is_some() {
            return Err(self.classify(&call, &format!("stat {path}")));
        }
        parse_allinfo(&call.stdout)
            .map(Some)
            .ok_or_else(|| self.error(format!("stat {path}"), "unexpected allinfo output"))
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let mut bytes = Vec::new();
        let mut sink = |b: &[u8]| {
            if (bytes.len() as u64) <= limit {
                bytes.extend_from_slice(b);
            }
        };
        if !self.fetch(path, &mut sink)? {
            return Ok(None);
        }
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
        _mode: u32,
        sha256: &str,
        progress: Progress,
    ) -> Result<(), TransportError> {
        let mut file =
            File::open(local).map_err(|e| self.error(format!("reading {}", local.display()), e))?;
        self.push(&mut file, remote, sha256, progress)
    }

    fn write(&mut self, remote: &str, bytes: &[u8], _mode: u32) -> Result<(), TransportError> {
        let sha256 = crate::manifest::hex(&Sha256::digest(bytes));
        self.push(&mut Cursor::new(bytes), remote, &sha256, &|_| {})
    }

    fn remove(&mut self, path: &str) -> Result<(), TransportError> {
        let quoted = self.checked(path)?;
        let call = self.call(&format!("del {quoted}"), None, None, &|_| {})?;
        if call.has(NOT_FOUND) {
            return Ok(());
        }
        if !call.success || call.status().is_some() {
            return Err(self.classify(&call, &format!("removing {path}")));
        }
        Ok(())
    }

    /// Files (not folders) in `dir`, sorted; an absent folder is empty.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, TransportError> {
        let pattern = join(dir, "*");
        check_path(dir).map_err(|m| self.error(format!("path {dir:?}"), m))?;
        let quoted = smb_path(&pattern);
        let call = self.call(&format!("ls {quoted}"), None, None, &|_| {})?;
        if call.has(NOT_FOUND) {
            return Ok(Vec::new());
        }
        if !call.success || call.status().is_some() {
            return Err(self.classify(&call, &format!("listing {pattern}")));
        }
        let mut names: Vec<String> = call
            .stdout
            .lines()
            .filter_map(parse_ls_line)
            .filter(|(_, is_dir)| !is_dir)
            .map(|(name, _)| name)
            .collect();
        names.sort();
        Ok(names)
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError> {
        let (a, b) = (self.checked(from)?, self.checked(to)?);
        self.simple(
            &format!("rename {a} {b} -f"),
            &format!("renaming {from} to {to}"),
        )
        .map(drop)
    }

    fn sha256(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        self.digest::<Sha256>(path)
    }

    fn sha512(&mut self, path: &str) -> Result<Option<String>, TransportError> {
        self.digest::<Sha512>(path)
    }
}

/// One line of smbclient's `ls`: `  NAME   ATTRS   SIZE  Tue Dec  1 07:56:13 2026`, read from
/// the right because names may hold spaces. `(name, is_directory)`; `.`/`..` are skipped.
fn parse_ls_line(line: &str) -> Option<(String, bool)> {
    let line = line.trim_end();
    let mut rest = line;
    let mut tokens = Vec::new();
    // year, time, day, month, weekday, size, attributes
    for _ in 0..7 {
        let trimmed = rest.trim_end();
        let at = trimmed.rfind(' ')?;
        tokens.push(&trimmed[at + 1..]);
        rest = &trimmed[..at];
    }
    let (year, time, size, attrs) = (tokens[0], tokens[1], tokens[5], tokens[6]);
    let looks_right = year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && time.matches(':').count() == 2
        && size.bytes().all(|b| b.is_ascii_digit())
        && attrs.bytes().all(|b| b.is_ascii_uppercase());
    // `ls` marks a listing's entries with two leading spaces.
    let name = rest.strip_prefix("  ")?.trim();
    if !looks_right || name.is_empty() || name == "." || name == ".." {
        return None;
    }
    Some((name.to_string(), attrs.contains('D')))
}

/// Size and write time from smbclient's `allinfo` (run with `TZ=UTC`, `LC_ALL=C`).
fn parse_allinfo(text: &str) -> Option<Stat> {
    let mut size = None;
    let mut mtime = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("write_time:") {
            mtime = parse_time(v.trim());
        } else if let Some(v) = line.strip_prefix("stream: [::$DATA], ") {
            size = v.strip_suffix(" bytes").and_then(|n| n.trim().parse().ok());
        }
    }
    Some(Stat {
        size: size?,
        mtime: mtime?,
        mode: 0o644,
    })
}

/// `Tue Dec  1 07:56:13 2026 UTC` to seconds since the epoch.
fn parse_time(text: &str) -> Option<i64> {
    let t: Vec<&str> = text.split_whitespace().collect();
    let [_, month, day, hms, year, ..] = t.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let hms: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, min, s] = hms.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_lines_are_read_from_the_right() {
        let out = "  .                                   D        0  Tue Dec  1 07:56:13 2026\n\
                   \x20 ..                                  D        0  Tue Dec  1 07:54:08 2026\n\
                   \x20 .tmp3                              AH 52428800  Tue Dec  1 07:55:41 2026\n\
                   \x20 x y.tmp                             A 52428800  Tue Dec 11 07:56:13 2026\n\
                   \x20 sub                                 D        0  Tue Dec  1 07:56:13 2026\n\
                   \n\t\t264212084 blocks of size 1024. 67053628 blocks available\n";
        let got: Vec<(String, bool)> = out.lines().filter_map(parse_ls_line).collect();
        assert_eq!(
            got,
            vec![
                (".tmp3".to_string(), false),
                ("x y.tmp".to_string(), false),
                ("sub".to_string(), true)
            ]
        );
    }

    #[test]
    fn allinfo_gives_size_and_time() {
        let out = "altname: X9DHUH~I.TMP\ncreate_time:    Tue Dec  1 07:56:13 2026 UTC\n\
                   write_time:     Thu Jan  1 00:01:05 1970 UTC\nattributes: A (20)\n\
                   stream: [::$DATA], 52428800 bytes\n";
        let s = parse_allinfo(out).unwrap();
        assert_eq!((s.size, s.mtime), (52428800, 65));
        assert_eq!(
            parse_time("Tue Dec  1 07:56:13 2026 UTC"),
            Some(1_796_111_773)
        );
        assert_eq!(parse_time("garbage"), None);
    }

    #[test]
    fn paths_are_quoted_and_checked() {
        assert_eq!(smb_path("systemvm/x y.iso"), "\"\\systemvm\\x y.iso\"");
        assert_eq!(
            smb_path("Users\\Public/Virtual Hard Disks"),
            "\"\\Users\\Public\\Virtual Hard Disks\""
        );
        assert!(check_path("a;b").is_err());
        assert!(check_path("a\"b").is_err());
        assert!(check_path("a*").is_err());
        assert!(check_path("Users/Public/Documents/Hyper-V/Virtual Hard Disks").is_ok());
        assert_eq!(split("systemvm/a.iso"), ("systemvm", "a.iso"));
        assert_eq!(split("a.iso"), ("", "a.iso"));
    }
}
