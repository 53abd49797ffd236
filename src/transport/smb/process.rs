//! One `smbclient` process per operation: an explicit argument list, a clean environment,
//! stdin streamed from the source, stdout into a sink, and a watchdog that kills the child
//! when neither side has moved for the time-out.

use super::{SmbTransport, SMBCLIENT};
use crate::hashing::{self, StreamError};
use crate::transport::{Progress, TransportError};
use std::convert::Infallible;
use std::io::{ErrorKind, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How much of smbclient's text output is kept (listings, messages).
const TEXT_LIMIT: usize = 16 << 20;

/// Where a call's stdout goes, chunk by chunk (a hasher, a bounded buffer).
pub(super) type Sink<'a> = &'a mut (dyn FnMut(&[u8]) + Send);

/// What one smbclient call printed, and how it ended.
pub(super) struct Call {
    pub(super) success: bool,
    /// Its messages: stderr, then the start of stdout (smbclient prints some errors there).
    pub(super) text: String,
    /// All of stdout, when no sink took it.
    pub(super) stdout: String,
    pub(super) timed_out: bool,
}

impl Call {
    /// The first `NT_STATUS_...` code in its messages.
    pub(super) fn status(&self) -> Option<&str> {
        let at = self.text.find("NT_STATUS_")?;
        let rest = &self.text[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    }

    pub(super) fn has(&self, codes: &[&str]) -> bool {
        self.status().is_some_and(|s| codes.contains(&s))
    }

    /// A bad exit, or an NT status reported.
    pub(super) fn failed(&self) -> bool {
        !self.success || self.status().is_some()
    }
}

impl SmbTransport {
    /// One smbclient run: `command` (smbclient's `-c` syntax), stdin from `input`, stdout
    /// into `sink` (else collected), under the watchdog.
    pub(super) fn call(
        &mut self,
        command: &str,
        input: Option<&mut (dyn Read + Send)>,
        sink: Option<Sink>,
        progress: Progress,
    ) -> Result<Call, TransportError> {
        let c = &self.config;
        let mut child = self
            .command(command, input.is_some())
            .spawn()
            .map_err(|e| {
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
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let mut out = Collected::default();
        let mut errors = Vec::new();
        let mut sink = sink;
        let (status, timed_out) = std::thread::scope(|s| {
            if let (Some(pipe), Some(input)) = (stdin, input) {
                let (touch, source_error) = (&touch, &source_error);
                s.spawn(move || feed(pipe, input, touch, progress, source_error));
            }
            if let Some(err) = stderr {
                let errors = &mut errors;
                s.spawn(move || drain_stderr(err, errors));
            }
            if let Some(stdout) = stdout {
                let (out, sink, touch) = (&mut out, &mut sink, &touch);
                s.spawn(move || drain_stdout(stdout, out, sink, touch));
            }
            // This thread owns the child, so it alone may kill it.
            watch(&mut child, started, &alive, limit)
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
        text.push_str(&String::from_utf8_lossy(&out.head));
        Ok(Call {
            success: !timed_out && status.is_some_and(|s| s.success()),
            text,
            stdout: String::from_utf8_lossy(&out.collected).into_owned(),
            timed_out,
        })
    }

    /// smbclient with our private config and credentials file, for one `-c` command line.
    fn command(&self, command: &str, piped_stdin: bool) -> Command {
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
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// What smbclient wrote on stdout: its first 4 KiB (for error messages) and, without a sink,
/// the whole text up to [`TEXT_LIMIT`].
#[derive(Default)]
struct Collected {
    head: Vec<u8>,
    collected: Vec<u8>,
}

/// Stream `input` into smbclient's stdin; a read error is kept for the caller. Dropping the
/// pipe at the end tells smbclient the file is complete.
fn feed(
    mut pipe: std::process::ChildStdin,
    input: &mut (dyn Read + Send),
    touch: &(dyn Fn() + Sync),
    progress: Progress,
    source_error: &std::sync::Mutex<Option<std::io::Error>>,
) {
    let mut done = 0u64;
    let fed = hashing::stream(input, |chunk| {
        pipe.write_all(chunk)?;
        done += chunk.len() as u64;
        touch();
        progress(done);
        Ok::<(), std::io::Error>(())
    });
    if let (Err(StreamError::Read(e)), Ok(mut slot)) = (fed, source_error.lock()) {
        *slot = Some(e);
    }
}

/// smbclient's stderr, up to [`TEXT_LIMIT`].
fn drain_stderr(mut err: std::process::ChildStderr, errors: &mut Vec<u8>) {
    let _ = hashing::stream(&mut err, |chunk| {
        if errors.len() < TEXT_LIMIT {
            errors.extend_from_slice(chunk);
        }
        Ok::<(), Infallible>(())
    });
}

/// smbclient's stdout into `sink` (a download) or `out`; every read is a sign of life.
fn drain_stdout(
    mut stdout: std::process::ChildStdout,
    out: &mut Collected,
    sink: &mut Option<Sink>,
    touch: &(dyn Fn() + Sync),
) {
    let _ = hashing::stream(&mut stdout, |chunk| {
        touch();
        if out.head.len() < 4096 {
            let take = chunk.len().min(4096 - out.head.len());
            out.head.extend_from_slice(&chunk[..take]);
        }
        match sink {
            Some(sink) => sink(chunk),
            None if out.collected.len() < TEXT_LIMIT => out.collected.extend_from_slice(chunk),
            None => {}
        }
        Ok::<(), Infallible>(())
    });
}

/// The watchdog: wait for the child, killing it once it has shown no sign of life for
/// `limit`. Returns its exit status and whether it was killed.
fn watch(
    child: &mut std::process::Child,
    started: Instant,
    alive: &AtomicU64,
    limit: Duration,
) -> (Option<std::process::ExitStatus>, bool) {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) => {}
            Err(_) => return (None, false),
        }
        let idle = started
            .elapsed()
            .saturating_sub(Duration::from_millis(alive.load(Ordering::Relaxed)));
        if idle > limit {
            let _ = child.kill();
            return (child.wait().ok(), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
