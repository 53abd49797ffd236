//! The root file system as a tarball, made by mmdebstrap from Debian packages: the minbase
//! variant plus the package list, for the target suite and architecture, from the
//! machine's own apt sources (see [`crate::appliance::sources`]) unless a mirror is given.
//! Documentation, man pages and translations are left out (copyright files stay): a system
//! VM has no reader for them. With SOURCE_DATE_EPOCH mmdebstrap's output is reproducible.
//! Unpacking keeps owners, modes and extended attributes (file capabilities).

use crate::appliance::arch::Arch;
use crate::appliance::runner::{CommandFailed, Runner};
use std::path::Path;
use std::process::Command;

/// What mmdebstrap gets.
#[derive(Debug, Clone)]
pub struct Rootfs<'a> {
    pub suite: &'a str,
    pub arch: Arch,
    pub packages: &'a [String],
    /// A mirror URI, or a file of apt sources (the machine's, rewritten).
    pub mirror: &'a str,
    pub epoch: i64,
}

/// Paths dpkg leaves out of the image.
const DPKG_FILTERS: &[&str] = &[
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
];

/// Run mmdebstrap, writing the tarball to `out`.
pub fn mmdebstrap(runner: &mut Runner, r: &Rootfs, out: &Path) -> Result<(), CommandFailed> {
    let mut cmd = Command::new("mmdebstrap");
    cmd.env("SOURCE_DATE_EPOCH", r.epoch.to_string())
        .arg("--variant=minbase")
        .arg(format!("--architectures={}", r.arch.debian()))
        .arg(format!("--include={}", r.packages.join(",")))
        .arg("--format=tar")
        .arg("--aptopt=Acquire::Languages \"none\"");
    for f in DPKG_FILTERS {
        cmd.arg(format!("--dpkgopt={f}"));
    }
    cmd.arg(r.suite).arg(out).arg(r.mirror);
    runner.run(&mut cmd)
}

/// Unpack a tarball into `dir` keeping owners, modes and extended attributes.
pub fn unpack(runner: &mut Runner, tarball: &Path, dir: &Path) -> Result<(), CommandFailed> {
    runner.run(
        Command::new("tar")
            .args([
                "--extract",
                "--numeric-owner",
                "--same-permissions",
                "--xattrs",
                "--xattrs-include=*",
                "--file",
            ])
            .arg(tarball)
            .arg("--directory")
            .arg(dir),
    )
}
