//! The SSH transport (libssh2 through the `ssh2` crate) for XenServer and KVM hosts.
//!
//! Connecting is bounded: TCP with `connect_timeout`, then every libssh2 call with the
//! session timeout (`io_timeout`), so a host that accepts TCP and never speaks fails with
//! [`TransportError::Timeout`]. The host key is checked against known_hosts right after the
//! key exchange and before any credential leaves this machine ([`known_hosts`]). Secrets go
//! to libssh2 and nowhere else: not to logs, not to error messages.
//!
//! Commands run over exec channels with stdout and stderr read apart and capped ([`exec`]).
//! Files go over one SFTP session per connection, opened on first use. An upload streams
//! 256 KiB chunks into a temp name beside the target (mode 0600), fsyncs it, has the host
//! compute its sha256, sets the mode and renames it over the target; any failure on the way
//! removes the temp file, and leftovers of killed runs are cleared before the next upload.
//!
//! After a time-out or a lost link the session is unusable (libssh2 may have sent half a
//! packet), so the socket is shut down at once ([`Conn::dead`]): closing the file handle,
//! the channel, SFTP and the session then fail immediately instead of each waiting out its
//! own time-out, and the temp file is left for the next run to clear.
//!
//! The rename is `mv -f -T` on the host, not SFTP: OpenSSH speaks SFTP version 3, where
//! libssh2 cannot pass the overwrite flag and the server's rename refuses an existing
//! target; its `posix-rename@openssh.com` extension is not exposed by the `ssh2` crate.

mod exec;
mod known_hosts;

use crate::secret::Secret;
use crate::transport::quote;
use crate::transport::{
    is_temp_name, temp_name, Output, Progress, Stat, Transport, TransportError,
};
use sha2::{Digest, Sha256};
use ssh2::{ErrorCode, FileStat, OpenFlags, OpenType, Session, Sftp};
use std::io::{self, Cursor, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes per SFTP write during an upload.
const CHUNK: usize = 256 * 1024;

// libssh2 error codes (libssh2.h, libssh2_sftp.h) that decide how an error is reported.
const LIBSSH2_ERROR_SOCKET_NONE: i32 = -1;
const LIBSSH2_ERROR_BANNER_RECV: i32 = -2;
const LIBSSH2_ERROR_BANNER_SEND: i32 = -3;
const LIBSSH2_ERROR_SOCKET_SEND: i32 = -7;
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
const LIBSSH2_ERROR_SOCKET_DISCONNECT: i32 = -13;
const LIBSSH2_ERROR_FILE: i32 = -16;
const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;
const LIBSSH2_ERROR_SOCKET_RECV: i32 = -43;
const LIBSSH2_FX_NO_SUCH_FILE: i32 = 2;
const LIBSSH2_FX_OP_UNSUPPORTED: i32 = 8;
const LIBSSH2_FX_NO_SUCH_PATH: i32 = 10;

/// How to log in.
#[derive(Debug, Clone)]
pub enum SshAuth {
    /// An OpenSSH private key file (ed25519, RSA, ECDSA), optionally passphrase-protected.
    Key {
        path: PathBuf,
        passphrase: Option<Secret>,
    },
    Password(Secret),
}

/// One host to connect to.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The inventory name, for messages.
    pub name: String,
    /// Host name or IP address (an IPv6 literal with or without brackets).
    pub address: String,
    pub port: u16,
    pub user: String,
    pub auth: SshAuth,
    pub known_hosts: PathBuf,
    /// Pin the key of a host not yet in known_hosts (a changed key is refused regardless).
    pub accept_new: bool,
    /// Bound on the TCP connect, over all the addresses the name resolves to.
    pub connect_timeout: Duration,
    /// Bound on every SSH operation, and on silence while a command runs.
    pub io_timeout: Duration,
}

/// An authenticated SSH connection to one host.
pub struct SshTransport {
    conn: Conn,
    sftp: Option<Sftp>,
}

/// The session and what messages need; apart from the SFTP handle so both can be borrowed.
struct Conn {
    name: String,
    session: Session,
    /// A second handle on the session's socket, to wait for input while a command runs.
    socket: TcpStream,
    io_timeout: Duration,
    /// Uploads still streaming then are cut ([`Transport::set_deadline`]).
    deadline: Option<Instant>,
    /// Set once the socket is shut down after a time-out or a lost link.
    broken: std::cell::Cell<bool>,
}

impl SshTransport {
    /// Connect, verify the host key, authenticate.
    pub fn connect(config: &SshConfig) -> Result<SshTransport, TransportError> {
        check_identity(config)?;
        let stream = open_socket(config)?;
        let socket = stream
            .try_clone()
            .map_err(|e| io_error(&config.name, "the TCP socket", e))?;
        let mut session = Session::new().map_err(|e| TransportError::Io {
            host: config.name.clone(),
            what: "creating an SSH session".into(),
            reason: e.message().to_string(),
        })?;
        session.set_timeout(millis(config.io_timeout));
        session.set_tcp_stream(stream);

        let name = known_hosts::lookup_name(&config.address, config.port);
        let known = known_hosts::load(&session, &config.known_hosts, &name).map_err(|reason| {
            TransportError::Io {
                host: config.name.clone(),
                what: "known_hosts".into(),
                reason,
            }
        })?;
        known_hosts::prefer_recorded(&session, &known);
        prefer_fast_ciphers(&session);
        session
            .handshake()
            .map_err(|e| classify(&config.name, "the SSH handshake", e))?;
        let check = known_hosts::Check {
            host: &config.name,
            file: &config.known_hosts,
            name: &name,
            accept_new: config.accept_new,
        };
        known_hosts::verify(&session, &check, &known)?;
        authenticate(&session, config)?;
        Ok(SshTransport {
            conn: Conn {
                name: config.name.clone(),
                session,
                socket,
                io_timeout: config.io_timeout,
                deadline: None,
                broken: std::cell::Cell::new(false),
            },
            sftp: None,
        })
    }

    /// The connection and the SFTP session, opened on first use.
    fn parts(&mut self) -> Result<(&Conn, &Sftp), TransportError> {
        let sftp = match self.sftp.take() {
            Some(sftp) => sftp,
            None => self
                .conn
                .session
                .sftp()
                .map_err(|e| self.conn.fail("opening the SFTP subsystem", e))?,
        };
        Ok((&self.conn, self.sftp.insert(sftp)))
    }

    /// Upload from any reader: the common path of `upload` and `write`.
    fn push(
        &mut self,
        source: Source,
        remote: &str,
        mode: u32,
        sha256: &str,
    ) -> Result<(), TransportError> {
        let target = RemotePath::parse(remote).ok_or_else(|| TransportError::Io {
            host: self.conn.name.clone(),
            what: format!("upload to {remote}"),
            reason: "not a file path".into(),
        })?;
        let (conn, sftp) = self.parts()?;
        match conn.names(sftp, &target.dir)? {
            Some(names) => conn.clear_leftovers(sftp, &target, &names)?,
            None => {
                conn.run(&quote::command(&["mkdir", "-p", "--", &target.dir]))?;
            }
        }
        let tmp = target.sibling(&temp_name(&target.name));
        let file = sftp
            .open_mode(
                Path::new(&tmp),
                OpenFlags::WRITE | OpenFlags::EXCLUSIVE,
                0o600,
                OpenType::File,
            )
            .map_err(|e| conn.fail(&format!("creating {tmp}"), e))?;
        let place = Placement {
            tmp: &tmp,
            target: &target,
            mode,
            sha256,
        };
        let result = conn.fill_and_commit(sftp, file, source, &place);
        if result.is_err() && conn.broken.get() {
            tracing::info!("{}: {tmp} stays until the next upload clears it", conn.name);
        } else if result.is_err() {
            if let Err(e) = sftp.unlink(Path::new(&tmp)) {
                if !is_not_found(&e) {
                    tracing::warn!("{}: cannot remove {tmp}: {}", conn.name, e.message());
                }
            }
        }
        result
    }
}

/// Where an upload goes: the temp file, then the target.
struct Placement<'a> {
    tmp: &'a str,
    target: &'a RemotePath,
    mode: u32,
    sha256: &'a str,
}

/// What an upload reads from.
struct Source<'a> {
    reader: Box<dyn Read + 'a>,
    /// Where the bytes come from, for messages.
    label: String,
    size: u64,
    progress: Progress<'a>,
}

impl Conn {
    /// Run a command line; a non-zero exit is a `Command` error.
    fn run(&self, command: &str) -> Result<Output, TransportError> {
        let what = format!("`{command}`");
        let mut channel = self
            .session
            .channel_session()
            .map_err(|e| self.fail(&what, e))?;
        channel.exec(command).map_err(|e| self.fail(&what, e))?;
        let (stdout, stderr) =
            match exec::drain(&self.session, &self.socket, &channel, self.io_timeout) {
                Ok(output) => output,
                Err(e) => {
                    let err = self.drain_error(&what, e);
                    let _ = channel.close();
                    return Err(err);
                }
            };
        channel.wait_close().map_err(|e| self.fail(&what, e))?;
        let status = channel.exit_status().map_err(|e| self.fail(&what, e))?;
        let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        if status != 0 || signal.is_some() {
            let mut tail = exec::stderr_tail(&stderr);
            if let Some(signal) = &signal {
                tail = if tail.is_empty() {
                    format!("killed by SIG{signal}")
                } else {
                    format!("killed by SIG{signal}; {tail}")
                };
            }
            return Err(TransportError::Command {
                host: self.name.clone(),
                command: command.to_string(),
                status: if signal.is_some() { -1 } else { status },
                stderr: tail,
            });
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    fn drain_error(&self, what: &str, err: exec::DrainError) -> TransportError {
        let host = self.name.clone();
        self.dead(match err {
            exec::DrainError::TooLarge(stream) => TransportError::Io {
                host,
                what: what.to_string(),
                reason: format!(
                    "output too large: more than {} MiB on {stream}; stopped reading and closed the channel",
                    exec::OUTPUT_LIMIT >> 20
                ),
            },
            exec::DrainError::Idle => TransportError::Timeout {
                host,
                during: format!(
                    "running {what} (no output for {} s)",
                    self.io_timeout.as_secs_f32()
                ),
            },
            // `dead` says how (reset or closed).
            exec::DrainError::Closed => TransportError::Lost {
                host,
                during: format!("while running {what}"),
                reason: String::new(),
            },
            exec::DrainError::Io(e) => io_error(&self.name, what, e),
        })
    }

    /// Shut the socket after a time-out or a lost link (see the module doc). A lost link
    /// says how the kernel saw it go: reset, or closed by the far end.
    fn dead(&self, err: TransportError) -> TransportError {
        let err = match err {
            TransportError::Lost {
                host,
                during,
                reason,
            } => {
                // Once we shut the socket ourselves its state says nothing about the host.
                let how = match tcp_state(&self.socket) {
                    _ if self.broken.get() => None,
                    Some(TCP_CLOSE) => Some("connection reset"),
                    Some(TCP_CLOSE_WAIT) => Some("closed by the far end"),
                    _ => None,
                };
                let reason = match (reason.is_empty(), how) {
                    (true, how) => how.unwrap_or("the far end closed it").to_string(),
                    (false, Some(how)) => format!("{reason} ({how})"),
                    (false, None) => reason,
                };
                TransportError::Lost {
                    host,
                    during,
                    reason,
                }
            }
            other => other,
        };
        if matches!(
            err,
            TransportError::Timeout { .. } | TransportError::Lost { .. }
        ) && !self.broken.replace(true)
        {
            let _ = self.socket.shutdown(std::net::Shutdown::Both);
        }
        err
    }

    /// Remove temp files that earlier, killed uploads of the same target left behind.
    fn clear_leftovers(
        &self,
        sftp: &Sftp,
        target: &RemotePath,
        names: &[String],
    ) -> Result<(), TransportError> {
        let prefix = format!(".{}.systemvm-", target.name);
        for name in names {
            if is_temp_name(name) && name.starts_with(&prefix) {
                let path = target.sibling(name);
                tracing::info!("{}: removing leftover {path}", self.name);
                sftp.unlink(Path::new(&path))
                    .map_err(|e| self.fail(&format!("removing leftover {path}"), e))?;
            }
        }
        Ok(())
    }

    /// The names in a directory, sorted; `None` when it does not exist.
    fn names(&self, sftp: &Sftp, dir: &str) -> Result<Option<Vec<String>>, TransportError> {
        let entries = match sftp.readdir(Path::new(dir)) {
            Ok(entries) => entries,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(self.fail(&format!("listing {dir}"), e)),
        };
        let mut names: Vec<String> = entries
            .iter()
            .filter_map(|(path, _)| path.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        Ok(Some(names))
    }

    /// Write the temp file, verify it on the host, set its mode, rename it over the target.
    fn fill_and_commit(
        &self,
        sftp: &Sftp,
        mut file: ssh2::File,
        source: Source,
        place: &Placement,
    ) -> Result<(), TransportError> {
        let (tmp, final_path) = (place.tmp, place.target.path());
        self.fill(&mut file, source, &final_path)?;
        drop(file);
        self.verify(tmp, &final_path, place.sha256)?;
        let stat = FileStat {
            size: None,
            uid: None,
            gid: None,
            perm: Some(place.mode),
            atime: None,
            mtime: None,
        };
        sftp.setstat(Path::new(tmp), stat)
            .map_err(|e| self.fail(&format!("setting the mode of {tmp}"), e))?;
        self.run(&quote::command(&["mv", "-f", "-T", "--", tmp, &final_path]))?;
        Ok(())
    }

    /// Stream the source into the open temp file, then fsync and close it.
    fn fill(
        &self,
        file: &mut ssh2::File,
        mut source: Source,
        final_path: &str,
    ) -> Result<(), TransportError> {
        let what = format!("upload to {final_path}");
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        loop {
            let n = read_some(&mut source.reader, &mut buf).map_err(|e| TransportError::Io {
                host: self.name.clone(),
                what: format!("reading {}", source.label),
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(TransportError::Timeout {
                    host: self.name.clone(),
                    during: format!("during the {what}: deadline reached after {sent} bytes"),
                });
            }
            if let Err(e) = file.write_all(&buf[..n]) {
                let left = source.size.saturating_sub(sent);
                return Err(self.dead(self.write_failure(file, &what, e, left)));
            }
            sent += n as u64;
            (source.progress)(sent);
        }
        match file.fsync() {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::SFTP(LIBSSH2_FX_OP_UNSUPPORTED) => {
                tracing::warn!(
                    "{}: the SFTP server cannot fsync; relying on the checksum",
                    self.name
                );
            }
            Err(e) => {
                let left = source.size.saturating_sub(sent);
                return Err(self.dead(self.write_failure(file, &what, e.into(), left)));
            }
        }
        file.close().map_err(|e| self.fail(&what, e))
    }

    /// A failed write, explained: out of space (judged by the file system's free space, as
    /// OpenSSH reports ENOSPC as a bare "failure"), a lost link, a time-out, or else.
    fn write_failure(
        &self,
        file: &mut ssh2::File,
        what: &str,
        err: io::Error,
        left: u64,
    ) -> TransportError {
        let host = self.name.clone();
        if err.kind() == ErrorKind::TimedOut {
            return TransportError::Timeout {
                host,
                during: format!("during the {what}"),
            };
        }
        if let Some(last) = ssh2::Error::last_session_error(&self.session) {
            if matches!(last.code(), ErrorCode::Session(code) if is_link_error(code)) {
                return classify(&self.name, what, last);
            }
        }
        match file.statvfs() {
            Ok(vfs) if vfs.f_bavail.saturating_mul(vfs.f_frsize) < left => {
                no_space(host, what, vfs.f_bavail.saturating_mul(vfs.f_frsize))
            }
            _ => TransportError::Io {
                host,
                what: what.to_string(),
                reason: format!("write failed: {err}; the old file is unchanged"),
            },
        }
    }

    /// Have the host hash the temp file and compare.
    fn verify(&self, tmp: &str, final_path: &str, expected: &str) -> Result<(), TransportError> {
        let out = self.run(&super::digest_command("sha256", tmp))?;
        let actual = super::parse_digest(&out.stdout, "sha256").unwrap_or_else(|| {
            format!(
                "unreadable output {:?}",
                out.stdout.chars().take(80).collect::<String>()
            )
        });
        if actual != expected.trim().to_ascii_lowercase() {
            return Err(TransportError::Checksum {
                host: self.name.clone(),
                path: final_path.to_string(),
                expected: expected.trim().to_string(),
                actual,
            });
        }
        Ok(())
    }

    fn fail(&self, what: &str, err: ssh2::Error) -> TransportError {
        self.dead(classify(&self.name, what, err))
    }
}

fn no_space(host: String, what: &str, free: u64) -> TransportError {
    TransportError::Io {
        host,
        what: what.to_string(),
        reason: format!(
            "no space left on the host's file system ({free} bytes free); the old file is unchanged"
        ),
    }
}

/// AES-GCM first: with AES-NI it costs a fraction of CTR + HMAC, on both ends, which is
/// what bounds a push of a large ISO to many hosts. Servers without it fall back.
fn prefer_fast_ciphers(session: &Session) {
    const CIPHERS: &str = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,\
                           aes256-ctr,chacha20-poly1305@openssh.com,aes192-ctr";
    for kind in [ssh2::MethodType::CryptCs, ssh2::MethodType::CryptSc] {
        // A libssh2 without GCM refuses the list: keep its own defaults then.
        let _ = session.method_pref(kind, CIPHERS);
    }
}

impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.conn.name
    }

    fn run(&mut self, command: &str) -> Result<Output, TransportError> {
        self.conn.run(command)
    }

    /// `mode` holds the permission bits only (`& 0o7777`).
    fn stat(&mut self, path: &str) -> Result<Option<Stat>, TransportError> {
        let (conn, sftp) = self.parts()?;
        match sftp.stat(Path::new(path)) {
            Ok(st) => Ok(Some(Stat {
                size: st.size.unwrap_or(0),
                mtime: st.mtime.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)),
                mode: st.perm.unwrap_or(0) & 0o7777,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(conn.fail(&format!("stat {path}"), e)),
        }
    }

    fn read(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, TransportError> {
        let (conn, sftp) = self.parts()?;
        let file = match sftp.open(Path::new(path)) {
            Ok(file) => file,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(conn.fail(&format!("reading {path}"), e)),
        };
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| conn.dead(io_error(&conn.name, &format!("reading {path}"), e)))?;
        if bytes.len() as u64 > limit {
            return Err(TransportError::Io {
                host: conn.name.clone(),
                what: format!("reading {path}"),
                reason: format!("larger than {limit} bytes"),
            });
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
        let local_error = |e: io::Error| TransportError::Io {
            host: self.conn.name.clone(),
            what: format!("reading {}", local.display()),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(local).map_err(local_error)?;
        let size = file.metadata().map_err(local_error)?.len();
        let source = Source {
            reader: Box::new(file),
            label: local.display().to_string(),
            size,
            progress,
        };
        self.push(source, remote, mode, sha256)
    }

    fn write(&mut self, remote: &str, bytes: &[u8], mode: u32) -> Result<(), TransportError> {
        let sha256 = crate::manifest::hex(&Sha256::digest(bytes));
        let source = Source {
            reader: Box::new(Cursor::new(bytes)),
            label: "memory".into(),
            size: bytes.len() as u64,
            progress: &no_progress,
        };
        self.push(source, remote, mode, &sha256)
    }

    fn remove(&mut self, path: &str) -> Result<(), TransportError> {
        let (conn, sftp) = self.parts()?;
        match sftp.unlink(Path::new(path)) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(conn.fail(&format!("removing {path}"), e)),
        }
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, TransportError> {
        let (conn, sftp) = self.parts()?;
        Ok(conn.names(sftp, dir)?.unwrap_or_default())
    }

    fn set_deadline(&mut self, at: Instant) {
        self.conn.deadline = Some(at);
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        self.sftp = None;
        let _ = self.conn.session.disconnect(None, "done", None);
    }
}

/// A remote file path as directory and name.
struct RemotePath {
    /// `.` for a bare name (the login directory).
    dir: String,
    name: String,
}

impl RemotePath {
    fn parse(remote: &str) -> Option<RemotePath> {
        let (dir, name) = match remote.rsplit_once('/') {
            Some(("", name)) => ("/", name),
            Some((dir, name)) => (dir, name),
            None => (".", remote),
        };
        if name.is_empty() || name == "." || name == ".." {
            return None;
        }
        Some(RemotePath {
            dir: dir.to_string(),
            name: name.to_string(),
        })
    }

    /// Another file in the same directory.
    fn sibling(&self, name: &str) -> String {
        match self.dir.as_str() {
            "." => name.to_string(),
            "/" => format!("/{name}"),
            dir => format!("{dir}/{name}"),
        }
    }

    fn path(&self) -> String {
        self.sibling(&self.name)
    }
}

/// Refuse early, before any network, when the key file cannot be read.
fn check_identity(config: &SshConfig) -> Result<(), TransportError> {
    if let SshAuth::Key { path, .. } = &config.auth {
        std::fs::File::open(path).map_err(|e| TransportError::Io {
            host: config.name.clone(),
            what: format!("identity {}", path.display()),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// TCP to the first address that answers, all within `connect_timeout`.
fn open_socket(config: &SshConfig) -> Result<TcpStream, TransportError> {
    let host = config.address.trim_start_matches('[').trim_end_matches(']');
    let connect_error = |reason: String| TransportError::Connect {
        host: config.name.clone(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (host, config.port)
        .to_socket_addrs()
        .map_err(|e| connect_error(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(connect_error(format!("{host} resolves to no address")));
    }
    let deadline = Instant::now() + config.connect_timeout;
    let mut last: Option<(SocketAddr, io::Error)> = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return configure(stream, config),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) if !matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            connect_error(format!("{addr}: {e}"))
        }
        _ => TransportError::Timeout {
            host: config.name.clone(),
            during: format!(
                "connecting to {host} port {} ({} s)",
                config.port,
                config.connect_timeout.as_secs_f32()
            ),
        },
    })
}

fn configure(stream: TcpStream, config: &SshConfig) -> Result<TcpStream, TransportError> {
    let timeout = Some(config.io_timeout.max(Duration::from_millis(1)));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| io_error(&config.name, "the TCP socket", e))?;
    Ok(stream)
}

fn authenticate(session: &Session, config: &SshConfig) -> Result<(), TransportError> {
    let (result, method) = match &config.auth {
        SshAuth::Key { path, passphrase } => (
            session.userauth_pubkey_file(
                &config.user,
                None,
                path,
                passphrase.as_ref().map(Secret::expose),
            ),
            format!("key {}", path.display()),
        ),
        SshAuth::Password(password) => (
            session.userauth_password(&config.user, password.expose()),
            "password".to_string(),
        ),
    };
    let refused = |method: String| TransportError::Auth {
        host: config.name.clone(),
        user: config.user.clone(),
        method,
    };
    match result {
        Ok(()) if session.authenticated() => Ok(()),
        Ok(()) => Err(refused(method)),
        Err(e) => match e.code() {
            ErrorCode::Session(code) if is_link_error(code) || is_timeout(code) => {
                Err(classify(&config.name, "authentication", e))
            }
            ErrorCode::Session(LIBSSH2_ERROR_FILE) => Err(refused(format!(
                "{method}: cannot load it (wrong passphrase or unsupported key format)"
            ))),
            _ => Err(refused(method)),
        },
    }
}

/// A libssh2 error as a transport error: time-outs and lost links are transient.
fn classify(host: &str, what: &str, err: ssh2::Error) -> TransportError {
    match err.code() {
        ErrorCode::Session(code) if is_timeout(code) => TransportError::Timeout {
            host: host.to_string(),
            during: format!("during {what}"),
        },
        ErrorCode::Session(code) if is_link_error(code) => TransportError::Lost {
            host: host.to_string(),
            during: format!("during {what}"),
            reason: err.message().to_string(),
        },
        _ => TransportError::Io {
            host: host.to_string(),
            what: what.to_string(),
            reason: err.message().to_string(),
        },
    }
}

fn io_error(host: &str, what: &str, err: io::Error) -> TransportError {
    if err.kind() == ErrorKind::TimedOut {
        return TransportError::Timeout {
            host: host.to_string(),
            during: format!("during {what}"),
        };
    }
    TransportError::Io {
        host: host.to_string(),
        what: what.to_string(),
        reason: err.to_string(),
    }
}

// Linux TCP states (include/net/tcp_states.h): a reset leaves CLOSE, a FIN CLOSE_WAIT.
const TCP_CLOSE: u8 = 7;
const TCP_CLOSE_WAIT: u8 = 8;

/// The socket's TCP state (`tcpi_state`, the first byte of `struct tcp_info`).
fn tcp_state(socket: &TcpStream) -> Option<u8> {
    use std::os::fd::AsRawFd;
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, a buffer we own.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len > 0).then_some(info[0])
}

fn is_timeout(code: i32) -> bool {
    matches!(code, LIBSSH2_ERROR_TIMEOUT | LIBSSH2_ERROR_SOCKET_TIMEOUT)
}

fn is_link_error(code: i32) -> bool {
    matches!(
        code,
        LIBSSH2_ERROR_SOCKET_NONE
            | LIBSSH2_ERROR_BANNER_RECV
            | LIBSSH2_ERROR_BANNER_SEND
            | LIBSSH2_ERROR_SOCKET_SEND
            | LIBSSH2_ERROR_SOCKET_DISCONNECT
            | LIBSSH2_ERROR_SOCKET_RECV
    )
}

fn is_not_found(err: &ssh2::Error) -> bool {
    matches!(
        err.code(),
        ErrorCode::SFTP(LIBSSH2_FX_NO_SUCH_FILE | LIBSSH2_FX_NO_SUCH_PATH)
    )
}

fn no_progress(_: u64) {}

/// Read as much as is available now (a short read is fine; 0 means end of input).
fn read_some(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A duration as libssh2's millisecond timeout; never 0, which would mean "wait forever".
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_split_into_directory_and_name() {
        let p = RemotePath::parse("/opt/iso/systemvm.iso").unwrap();
        assert_eq!(
            (p.dir.as_str(), p.name.as_str()),
            ("/opt/iso", "systemvm.iso")
        );
        assert_eq!(p.sibling(".x.tmp"), "/opt/iso/.x.tmp");
        let p = RemotePath::parse("/systemvm.iso").unwrap();
        assert_eq!(p.path(), "/systemvm.iso");
        let p = RemotePath::parse("systemvm.iso").unwrap();
        assert_eq!(
            (p.dir.as_str(), p.path()),
            (".", "systemvm.iso".to_string())
        );
        assert!(RemotePath::parse("/opt/iso/").is_none());
        assert!(RemotePath::parse("/opt/..").is_none());
    }

    /// A socket whose peer goes away by `end`, once the kernel has seen it.
    fn state_after(end: impl FnOnce(TcpStream)) -> Option<u8> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(tcp_state(&client), Some(1), "ESTABLISHED first");
        end(server);
        for _ in 0..200 {
            match tcp_state(&client) {
                Some(1) => std::thread::sleep(Duration::from_millis(5)),
                other => return other,
            }
        }
        tcp_state(&client)
    }

    #[test]
    fn a_lost_link_tells_a_reset_from_a_close() {
        assert_eq!(state_after(drop), Some(TCP_CLOSE_WAIT));
        let reset = |server: TcpStream| {
            use std::os::fd::AsRawFd;
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt with a valid pointer and length; SO_LINGER 0 makes close
            // send a reset.
            let rc = unsafe {
                libc::setsockopt(
                    server.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0);
        };
        assert_eq!(state_after(reset), Some(TCP_CLOSE));
    }

    #[test]
    fn a_zero_timeout_never_means_forever() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
