//! Runs the build's stages and external commands. Each stage shows a spinner (on a
//! terminal) and, when done, one line with the time it took. Every command's argv, the
//! environment it was given and its output are appended to one log file; a failing command
//! becomes a [`CommandFailed`] naming the program, its exit status, its last line of output
//! and the log, which the build then keeps.

use crate::appliance::tool::command_line;
use crate::printer::Printer;
use crate::transport::quote::quote;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
#[error("{program} failed ({status}){detail}")]
pub struct CommandFailed {
    pub program: String,
    pub status: String,
    /// `: <last line of output>`, or empty.
    pub detail: String,
    pub log: String,
}

pub struct Runner<'a> {
    printer: &'a Printer,
    log_path: PathBuf,
    log: File,
}

impl<'a> Runner<'a> {
    /// Start a log at `log_path` (truncated).
    pub fn new(printer: &'a Printer, log_path: &Path) -> std::io::Result<Self> {
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .read(true)
            .open(log_path)?;
        Ok(Runner {
            printer,
            log_path: log_path.to_path_buf(),
            log,
        })
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Run one stage: a spinner while it works, `name  12.3s  summary` when done.
    pub fn stage<T>(
        &mut self,
        name: &str,
        what: &str,
        work: impl FnOnce(&mut Self) -> anyhow::Result<(T, String)>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let spinner = self.printer.spinner(format!("{name}: {what}"));
        let _ = writeln!(self.log, "=== stage {name}: {what}");
        let result = work(self);
        spinner.finish_and_clear();
        let took = started.elapsed();
        match result {
            Ok((value, summary)) => {
                self.printer
                    .info(format!("{name:<11}{:>7.1}s  {summary}", took.as_secs_f64()));
                let _ = writeln!(
                    self.log,
                    "=== stage {name} done in {:.1}s",
                    took.as_secs_f64()
                );
                Ok(value)
            }
            Err(err) => {
                let _ = writeln!(self.log, "=== stage {name} failed: {err:#}");
                Err(err.context(format!("stage {name} failed")))
            }
        }
    }

    /// Write a note into the log.
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.log, "{text}");
    }

    /// Run a command with its output in the log.
    pub fn run(&mut self, cmd: &mut Command) -> Result<(), CommandFailed> {
        self.spawn(cmd, None, false).map(|_| ())
    }

    /// Run a command fed `input` on stdin.
    pub fn run_with_input(&mut self, cmd: &mut Command, input: &[u8]) -> Result<(), CommandFailed> {
        self.spawn(cmd, Some(input), false).map(|_| ())
    }

    /// Run a command and return its stdout (stderr goes to the log).
    pub fn output(&mut self, cmd: &mut Command) -> Result<Vec<u8>, CommandFailed> {
        self.spawn(cmd, None, true)
    }

    fn spawn(
        &mut self,
        cmd: &mut Command,
        input: Option<&[u8]>,
        capture: bool,
    ) -> Result<Vec<u8>, CommandFailed> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut line = String::from("$ ");
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                line.push_str(&format!(
                    "{}={} ",
                    k.to_string_lossy(),
                    quote(&v.to_string_lossy())
                ));
            }
        }
        line.push_str(&command_line(cmd));
        let _ = writeln!(self.log, "{line}");
        let _ = self.log.flush();
        let start = self.log.seek(SeekFrom::End(0)).unwrap_or(0);
        self.exec(cmd, input, capture).map_err(|status| {
            let detail = self
                .last_line_since(start)
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            CommandFailed {
                program,
                status,
                detail,
                log: self.log_path.display().to_string(),
            }
        })
    }

    /// Run `cmd` with its output going to the log (stdout captured instead with `capture`);
    /// a failure as its exit status or why it could not run.
    fn exec(
        &self,
        cmd: &mut Command,
        input: Option<&[u8]>,
        capture: bool,
    ) -> Result<Vec<u8>, String> {
        let log_file = || self.log.try_clone().map(Stdio::from);
        let log = || log_file().map_err(|e| e.to_string());
        cmd.stderr(log()?);
        cmd.stdout(if capture { Stdio::piped() } else { log()? });
        cmd.stdin(input.map_or_else(Stdio::null, |_| Stdio::piped()));
        let mut child = cmd.spawn().map_err(|e| format!("cannot start it: {e}"))?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            // A child that exits early closes the pipe; its exit status tells why.
            let _ = stdin.write_all(bytes);
        }
        let mut stdout = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_end(&mut stdout);
        }
        match child.wait().map_err(|e| e.to_string())? {
            status if status.success() => Ok(stdout),
            status => Err(status.to_string()),
        }
    }

    /// The last non-empty line the log got since `offset`, shortened.
    fn last_line_since(&mut self, offset: u64) -> Option<String> {
        let mut file = File::open(&self.log_path).ok()?;
        let len = file.metadata().ok()?.len();
        let from = offset.max(len.saturating_sub(1 << 20));
        file.seek(SeekFrom::Start(from)).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let tail = String::from_utf8_lossy(&bytes);
        // apt and mmdebstrap mark errors "E: ", and the first one is the cause ("Unable to
        // locate package"); otherwise the last line that says something (tar ends with a
        // summary of its earlier errors).
        let mut lines = tail.lines().map(str::trim);
        let line = match lines.clone().find(|l| l.starts_with("E: ")) {
            Some(first_error) => first_error,
            None => lines.rfind(|l| !l.is_empty() && !l.contains("due to previous errors"))?,
        };
        Some(line.chars().take(200).collect())
    }
}
