//! The xorriso driver. xorriso runs as a subprocess with an explicit argument list (never a
//! shell string) and `-no_rc`, so no user startup file changes its behaviour. Its output is
//! captured (drained by `Command::output`, so it cannot block on a full pipe) and the last
//! meaningful line is surfaced on failure.
//!
//! Reproducibility: the volume dates, the volume UUID and every file's timestamps come from
//! one epoch; owners are 0, modes explicit (files 0444, root 0555, as `mkisofs -r` gives);
//! xorriso sorts directory records itself.

use crate::epoch;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The xorriso program: `$SYSTEMVM_XORRISO`, else `xorriso` on PATH.
pub fn program() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SYSTEMVM_XORRISO") {
        return Ok(PathBuf::from(p));
    }
    find_on_path("xorriso").context(
        "xorriso is not installed (it writes the ISO); install it with: apt-get install xorriso",
    )
}

/// The first executable named `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A file to put at the ISO root.
#[derive(Debug, Clone)]
pub struct Member {
    pub source: PathBuf,
    pub name: String,
}

/// What goes into a new ISO.
#[derive(Debug, Clone)]
pub struct Spec {
    pub application_id: String,
    pub epoch: i64,
    pub members: Vec<Member>,
}

/// Write a new ISO at `output` (which must not exist yet).
pub fn build(spec: &Spec, output: &Path) -> Result<()> {
    let mut args: Vec<OsString> = vec!["-outdev".into(), output.into()];
    args.extend(volume_args(&spec.application_id, spec.epoch));
    for m in &spec.members {
        args.extend(map_args(m));
    }
    args.extend(words("-chmod_r 0444 / -- -chmod 0555 / --"));
    run(args)
}

/// Write a copy of `input` at `output` with `members` added or replaced.
pub fn remaster(input: &Path, output: &Path, members: &[Member], epoch: i64) -> Result<()> {
    let mut args: Vec<OsString> = vec![
        "-indev".into(),
        input.into(),
        "-outdev".into(),
        output.into(),
    ];
    args.extend(words("-boot_image any keep"));
    args.extend(words(TREES_ROOT_OWNED));
    args.extend(["-volume_date", "all_file_dates", &format!("={epoch}")].map(OsString::from));
    for m in members {
        args.extend(map_args(m));
        args.extend(["-chmod", "0444", &format!("/{}", m.name), "--"].map(OsString::from));
    }
    run(args)
}

/// Rock Ridge and Joliet trees, every file owned by root.
const TREES_ROOT_OWNED: &str = "-joliet on -rockridge on -uid 0 -gid 0";

/// Fixed arguments written as xorriso's manual does, one word each (none holds a space).
fn words(line: &'static str) -> impl Iterator<Item = OsString> {
    line.split(' ').map(OsString::from)
}

fn volume_args(application_id: &str, epoch: i64) -> Vec<OsString> {
    let (at, stamp) = (format!("={epoch}"), epoch::iso_volume_stamp(epoch));
    let mut args = vec![
        "-volid",
        super::VOLUME_ID,
        "-application_id",
        application_id,
        "-preparer_id",
        "systemvm",
    ];
    args.extend(TREES_ROOT_OWNED.split(' '));
    let dates = [
        ("c", at.as_str()),
        ("m", &at),
        ("x", "default"),
        ("f", "default"),
        ("uuid", &stamp),
        ("all_file_dates", &at),
    ];
    for (date, value) in dates {
        args.extend(["-volume_date", date, value]);
    }
    args.into_iter().map(OsString::from).collect()
}

fn map_args(m: &Member) -> Vec<OsString> {
    vec![
        "-map".into(),
        m.source.clone().into(),
        format!("/{}", m.name).into(),
    ]
}

fn run(args: Vec<OsString>) -> Result<()> {
    let program = program()?;
    let mut cmd = Command::new(&program);
    cmd.args(["-no_rc", "-report_about", "SORRY", "-abort_on", "FAILURE"])
        .args(&args)
        .args(["-commit", "-end"])
        .stdin(Stdio::null());
    crate::secret::scrub_env(&mut cmd);
    tracing::debug!("running {:?}", cmd);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let pid = child.id();
    crate::interrupt::register_child(pid);
    let out = child.wait_with_output();
    crate::interrupt::forget_child(pid);
    let out = out.with_context(|| format!("cannot run {}", program.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|l| l.contains("FAILURE") || l.contains("SORRY") || l.contains("FATAL"))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("no message")
            .trim();
        bail!("xorriso failed ({}): {reason}", out.status);
    }
    Ok(())
}
