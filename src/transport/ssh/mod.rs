//! The SSH transport (libssh2 through the `ssh2` crate) for XenServer and KVM hosts.
//!
//! Connecting is bounded: TCP, the handshake and the login with `connect_timeout`, then
//! every libssh2 call with the session timeout (`io_timeout`), so a host that accepts TCP
//! and never speaks fails with [`TransportError::Timeout`] within the connect timeout. The
//! host key is checked against known_hosts right after the key exchange and before any
//! credential leaves this machine ([`known_hosts`]). Secrets go to libssh2 and nowhere
//! else: not to logs, not to error messages.
//!
//! Commands run over exec channels with stdout and stderr read apart and capped ([`exec`]).
//! Files go over one SFTP session per connection, opened on first use. The upload protocol
//! ([`super::upload`]) runs on its primitives: an exclusive SFTP create (mode 0600) that
//! streams and fsyncs ([`conn`]), the host's own sha256, `fsetstat` on the SFTP handle,
//! still open from the create, and `mv`. Those name the temp file by path, so the target
//! directory must be owned by root and writable by nobody else ([`safe_dir`]): another
//! directory is refused, naming host and directory, before anything is uploaded.
//!
//! After a time-out or a lost link the session is unusable (libssh2 may have sent half a
//! packet), so the socket is shut down at once ([`Conn::dead`]): closing the file handle,
//! the channel, SFTP and the session then fail immediately instead of each waiting out its
//! own time-out, and the temp file is left for the next run to clear.
//!
//! The rename is `mv -f -T` on the host, not SFTP: OpenSSH speaks SFTP version 3, where
//! libssh2 cannot pass the overwrite flag and the server's rename refuses an existing
//! target; its `posix-rename@openssh.com` extension is not exposed by the `ssh2` crate.

mod conn;
mod connect;
mod errors;
mod exec;
mod known_hosts;
mod safe_dir;

use crate::secret::Secret;
use crate::transport::quote;
use crate::transport::{capped, Output, Source, Stat, Transport, TransportError};
use conn::Conn;
use connect::{authenticate, check_identity, millis, open_socket, prefer_fast_ciphers};
use errors::{classify, io_error, is_not_found};
use ssh2::{FileStat, OpenFlags, OpenType, Session, Sftp};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// The temp file just written, still open for its mode: (path, handle).
    written: Option<(String, ssh2::File)>,
}

impl SshTransport {
    /// Connect, verify the host key, authenticate.
    pub fn connect(config: &SshConfig) -> Result<SshTransport, TransportError> {
        check_identity(config)?;
        let stream = open_socket(config)?;
        let socket = stream
            .try_clone()
            .map_err(|e| io_error(&config.name, "the TCP socket", e))?;
        let mut session = Session::new().map_err(|e| {
            TransportError::io(&config.name, "creating an SSH session", e.message())
        })?;
        // Until logged in, a host gets the connect timeout: one that accepts TCP and never
        // speaks SSH fails as soon as one that does not answer at all.
        session.set_timeout(millis(config.connect_timeout));
        session.set_tcp_stream(stream);

        let name = known_hosts::lookup_name(&config.address, config.port);
        let known = known_hosts::load(&session, &config.known_hosts, &name)
            .map_err(|reason| TransportError::io(&config.name, "known_hosts", reason))?;
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
        session.set_timeout(millis(config.io_timeout));
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
            written: None,
        })
    }

    /// Refuse a directory someone other than root may write (see [`safe_dir`]).
    fn check_dir(&mut self, dir: &str) -> Result<(), TransportError> {
        let dir = if dir.is_empty() { "." } else { dir };
        let (conn, sftp) = self.parts()?;
        let stat = sftp
            .stat(Path::new(dir))
            .map_err(|e| conn.fail(&format!("stat {dir}"), e))?;
        match safe_dir::problem(&stat) {
            None => Ok(()),
            Some(problem) => Err(TransportError::io(
                &conn.name,
                format!("target directory {dir}"),
                format!("{problem}; refusing to upload into it (chown root and chmod go-w it)"),
            )),
        }
    }

    /// Close the temp file's handle if it is still open.
    fn close_written(&mut self) -> Result<(), TransportError> {
        match self.written.take() {
            Some((path, mut file)) => file
                .close()
                .map_err(|e| self.conn.fail(&format!("closing {path}"), e)),
            None => Ok(()),
        }
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
        capped(&conn.name, path, bytes, limit)
    }

    /// `mkdir -p` on the host when the directory is missing; then it must be safe to
    /// upload into ([`safe_dir`]).
    fn create_dir_all(&mut self, dir: &str) -> Result<(), TransportError> {
        if !dir.is_empty() && self.stat(dir)?.is_none() {
            self.conn
                .run(&quote::command(&["mkdir", "-p", "--", dir]))?;
        }
        self.check_dir(dir)
    }

    /// The handle stays open for [`Transport::set_mode`].
    fn create_new(&mut self, path: &str, source: Source) -> Result<(), TransportError> {
        self.close_written()?;
        let (conn, sftp) = self.parts()?;
        let mut file = sftp
            .open_mode(
                Path::new(path),
                OpenFlags::WRITE | OpenFlags::EXCLUSIVE,
                0o600,
                OpenType::File,
            )
            .map_err(|e| conn.fail(&format!("creating {path}"), e))?;
        conn.fill(&mut file, source, path)?;
        self.written = Some((path.to_string(), file));
        Ok(())
    }

    /// `fsetstat` on the handle of the file just written; another file is opened (SFTP
    /// open, no create) and set through that handle.
    fn set_mode(&mut self, path: &str, mode: u32) -> Result<(), TransportError> {
        let what = format!("setting the mode of {path}");
        let mut file = match self.written.take() {
            Some((written, file)) if written == path => file,
            other => {
                self.written = other;
                self.close_written()?;
                let (conn, sftp) = self.parts()?;
                sftp.open_mode(Path::new(path), OpenFlags::READ, 0, OpenType::File)
                    .map_err(|e| conn.fail(&what, e))?
            }
        };
        let stat = FileStat {
            size: None,
            uid: None,
            gid: None,
            perm: Some(mode),
            atime: None,
            mtime: None,
        };
        let set = file.setstat(stat).map_err(|e| self.conn.fail(&what, e));
        let closed = file.close().map_err(|e| self.conn.fail(&what, e));
        set.and(closed)
    }

    /// `mv -f -T` on the host (see the module doc).
    fn rename(&mut self, from: &str, to: &str) -> Result<(), TransportError> {
        self.close_written()?;
        self.conn
            .run(&quote::command(&["mv", "-f", "-T", "--", from, to]))
            .map(drop)
    }

    fn is_broken(&self) -> bool {
        self.conn.broken.get()
    }

    fn remove(&mut self, path: &str) -> Result<(), TransportError> {
        if self.written.as_ref().is_some_and(|(p, _)| p == path) {
            // A failed upload: its handle goes, a close error with it.
            self.written = None;
        }
        let (conn, sftp) = self.parts()?;
        match sftp.unlink(Path::new(path)) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(conn.fail(&format!("removing {path}"), e)),
        }
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, TransportError> {
        let (conn, sftp) = self.parts()?;
        let entries = match sftp.readdir(Path::new(dir)) {
            Ok(entries) => entries,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(conn.fail(&format!("listing {dir}"), e)),
        };
        let mut names: Vec<String> = entries
            .iter()
            .filter_map(|(path, _)| path.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        Ok(names)
    }

    fn set_deadline(&mut self, at: Instant) {
        self.conn.deadline = Some(at);
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        self.written = None;
        self.sftp = None;
        let _ = self.conn.session.disconnect(None, "done", None);
    }
}
