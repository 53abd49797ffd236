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
    /// Local `.deb` files (absolute paths), each its own `--include`.
    pub debs: &'a [std::path::PathBuf],
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
        .arg(format!("--include={}", r.packages.join(",")));
    for deb in r.debs {
        // A path as the start of --include is one item, not split at commas or spaces.
        cmd.arg(format!("--include={}", deb.display()));
    }
    cmd.arg("--format=tar")
        .arg("--aptopt=Acquire::Languages \"none\"");
    for f in DPKG_FILTERS {
        cmd.arg(format!("--dpkgopt={f}"));
    }
    cmd.arg(r.suite).arg(out).arg(r.mirror);
    runner.run(&mut cmd)
}

/// The package a local `.deb` file holds, from its control file (`dpkg-deb --info FILE
/// control`); a file that `dpkg-deb` cannot read as a Debian package is refused, naming it.
pub fn deb_package(path: &Path) -> anyhow::Result<String> {
    let out = Command::new("dpkg-deb")
        .arg("--info")
        .arg(path)
        .arg("control")
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run dpkg-deb to check --extra-deb {}: {e}",
                path.display()
            )
        })?;
    let control = String::from_utf8_lossy(&out.stdout);
    let name = control
        .lines()
        .find_map(|l| l.strip_prefix("Package:"))
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    if !out.status.success() || name.is_empty() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().next().unwrap_or("no Package field").trim();
        anyhow::bail!(
            "--extra-deb {} is not a Debian package ({why})",
            path.display()
        );
    }
    Ok(name)
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
