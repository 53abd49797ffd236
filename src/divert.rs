//! The management server's own copy under dpkg: `cloudstack-common` ships
//! `/usr/share/cloudstack-common/vms/systemvm.iso` (and, from 4.17, the patch files), so an
//! upgrade of that package would overwrite ours. A local diversion (`dpkg-divert --local
//! --no-rename`) makes dpkg put the package's copy beside it, as `NAME.cloudstack`, and
//! leaves ours in place; files dpkg does not own, or machines without dpkg, need none.
//! `dpkg-divert --local --no-rename --remove PATH` undoes it. `DPKG_ADMINDIR` is honoured,
//! as dpkg's own tools honour it.

use std::path::Path;
use std::process::{Command, Stdio};

/// Where dpkg stands on a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// No dpkg here, or no package owns the file: an upgrade cannot overwrite it.
    Unpackaged,
    /// Already diverted (by us, another admin, or a package): upgrades leave it alone.
    Diverted,
    /// This package owns it and would overwrite it on an upgrade.
    Owned(String),
}

/// The suffix of the name dpkg gives the package's copy.
pub const SUFFIX: &str = ".cloudstack";

/// What dpkg knows of `path`.
pub fn status(path: &Path) -> Status {
    let diverted = query("dpkg-divert", &["--listpackage"], path);
    if diverted.is_some_and(|out| !out.trim().is_empty()) {
        return Status::Diverted;
    }
    // `PACKAGE[, PACKAGE]: PATH`; the first owner is named.
    let out = query("dpkg-query", &["-S"], path).unwrap_or_default();
    match out.lines().find_map(|l| l.split_once(": ")) {
        Some((owners, _)) => Status::Owned(owners.split(", ").next().unwrap_or(owners).into()),
        None => Status::Unpackaged,
    }
}

/// Divert `path` locally, leaving the file where it is; the error is dpkg-divert's own.
pub fn add(path: &Path) -> Result<(), String> {
    let mut divert = path.as_os_str().to_owned();
    divert.push(SUFFIX);
    let out = Command::new("dpkg-divert")
        .args(["--local", "--no-rename", "--divert"])
        .arg(&divert)
        .arg("--add")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run dpkg-divert: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(err
        .lines()
        .next()
        .unwrap_or("dpkg-divert failed")
        .to_string())
}

/// A dpkg tool's stdout when it succeeds; `None` when it fails or is not installed.
fn query(program: &str, args: &[&str], path: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .arg(path)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
