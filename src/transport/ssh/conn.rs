//! One SSH session and what its errors need: commands over exec channels, streaming into
//! an SFTP file with a deadline, and the shut-down after a time-out or a lost link.

use super::errors::{classify, io_error, is_link_error, tcp_state, TCP_CLOSE, TCP_CLOSE_WAIT};
use super::exec;
use crate::hashing::{self, StreamError};
use crate::transport::{Output, Source, TransportError};
use ssh2::{ErrorCode, Session};
use std::io::{self, ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The session and what messages need; apart from the SFTP handle so both can be borrowed.
pub(super) struct Conn {
    pub(super) name: String,
    pub(super) session: Session,
    /// A second handle on the session's socket, to wait for input while a command runs.
    pub(super) socket: TcpStream,
    pub(super) io_timeout: Duration,
    /// Uploads still streaming then are cut ([`Transport::set_deadline`]).
    pub(super) deadline: Option<Instant>,
    /// Set once the socket is shut down after a time-out or a lost link.
    pub(super) broken: std::cell::Cell<bool>,
}

impl Conn {
    /// Run a command line; a non-zero exit is a `Command` error.
    pub(super) fn run(&self, command: &str) -> Result<Output, TransportError> {
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
            let tail = match (&signal, exec::stderr_tail(&stderr)) {
                (Some(signal), tail) if tail.is_empty() => format!("killed by SIG{signal}"),
                (Some(signal), tail) => format!("killed by SIG{signal}; {tail}"),
                (None, tail) => tail,
            };
            return Err(TransportError::Command {
                host: self.name.clone(),
                command: command.to_string(),
                status: if signal.is_some() { -1 } else { status },
                stderr: tail,
            });
        }
        Ok(Output { stdout, stderr })
    }

    fn drain_error(&self, what: &str, err: exec::DrainError) -> TransportError {
        let host = self.name.clone();
        self.dead(match err {
            exec::DrainError::TooLarge(stream) => TransportError::io(
                host,
                what,
                format!(
                    "output too large: more than {} MiB on {stream}; stopped reading and closed the channel",
                    exec::OUTPUT_LIMIT >> 20
                ),
            ),
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
    pub(super) fn dead(&self, mut err: TransportError) -> TransportError {
        if let TransportError::Lost { reason, .. } = &mut err {
            // Once we shut the socket ourselves its state says nothing about the host.
            let how = match tcp_state(&self.socket) {
                _ if self.broken.get() => None,
                Some(TCP_CLOSE) => Some("connection reset"),
                Some(TCP_CLOSE_WAIT) => Some("closed by the far end"),
                _ => None,
            };
            *reason = match (reason.is_empty(), how) {
                (true, how) => how.unwrap_or("the far end closed it").to_string(),
                (false, Some(how)) => format!("{reason} ({how})"),
                (false, None) => std::mem::take(reason),
            };
        }
        if matches!(
            err,
            TransportError::Timeout { .. } | TransportError::Lost { .. }
        ) && !self.broken.replace(true)
        {
            let _ = self.socket.shutdown(std::net::Shutdown::Both);
        }
        err
    }

    /// Stream the source into the open temp file, then fsync it (the caller closes it); the
    /// upload is cut when the deadline passes.
    pub(super) fn fill(
        &self,
        file: &mut ssh2::File,
        source: Source,
        path: &str,
    ) -> Result<(), TransportError> {
        let what = format!("writing {path}");
        let mut sent = 0u64;
        hashing::stream(source.reader, |chunk| {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(TransportError::Timeout {
                    host: self.name.clone(),
                    during: format!("during the upload: deadline reached after {sent} bytes"),
                });
            }
            if let Err(e) = file.write_all(chunk) {
                let left = source.size.saturating_sub(sent);
                return Err(self.dead(self.write_failure(file, &what, e, left)));
            }
            sent += chunk.len() as u64;
            (source.progress)(sent);
            Ok(())
        })
        .map_err(|e| match e {
            StreamError::Read(e) => {
                TransportError::io(&self.name, format!("reading {}", source.label), e)
            }
            StreamError::Sink(e) => e,
        })?;
        match file.fsync() {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::SFTP(super::errors::LIBSSH2_FX_OP_UNSUPPORTED) => {
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
        Ok(())
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
        let free = file
            .statvfs()
            .map(|v| v.f_bavail.saturating_mul(v.f_frsize));
        let reason = match free {
            Ok(free) if free < left => format!(
                "no space left on the host's file system ({free} bytes free); the old file is unchanged"
            ),
            _ => format!("write failed: {err}; the old file is unchanged"),
        };
        TransportError::io(host, what, reason)
    }

    pub(super) fn fail(&self, what: &str, err: ssh2::Error) -> TransportError {
        self.dead(classify(&self.name, what, err))
    }
}
