//! The root file system as a tarball, made by mmdebstrap from Debian packages: the minbase
//! variant plus the package list, for the target suite and architecture, from the
//! machine's own apt sources (see [`crate::appliance::sources`]) unless a mirror is given.
//! Documentation, man pages and translations are left out (copyright files stay): a system
//! VM has no reader for them. With SOURCE_DATE_EPOCH mmdebstrap's output is reproducible.
//! Unpacking keeps owners, modes and extended attributes (file capabilities).

use crate::appliance::arch::Arch;
use crate::appliance::runner::{CommandFailed, Runner};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What mmdebstrap gets.
#[derive(Debug, Clone)]
pub struct Rootfs<'a> {
    pub suite: &'a str,
    pub arch: Arch,
    pub packages: &'a [String],
    /// Local `.deb` files (absolute paths), each its own `--include`.
    pub debs: &'a [PathBuf],
    /// A mirror URI, or a file of apt sources (the machine's, rewritten).
    pub mirror: &'a str,
    pub epoch: i64,
}

/// mmdebstrap's hook that makes `--include` .deb files visible inside the chroot.
pub const DEB_HOOK: &str = "/usr/share/mmdebstrap/hooks/file-mirror-automount";

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
    // A path as the start of --include is one item, not split at commas or spaces.
    cmd.args(r.debs.iter().map(|d| format!("--include={}", d.display())));
    if !r.debs.is_empty() {
        // dpkg runs inside the chroot and gets the path verbatim: mmdebstrap's own hook
        // makes each file visible there under the same path, and removes it at the end.
        cmd.arg(format!("--hook-dir={DEB_HOOK}"));
    }
    cmd.arg("--format=tar")
        .arg("--aptopt=Acquire::Languages \"none\"");
    cmd.args(DPKG_FILTERS.iter().map(|f| format!("--dpkgopt={f}")));
    // With man pages left out, dpkg makes no /usr/share/man/man1, but update-alternatives
    // still links slave man pages there (openjdk's postinst fails without it).
    cmd.arg(r#"--setup-hook=mkdir -p "$1/usr/share/man/man1""#);
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

/// Copies of the `.deb` files in a new directory under `/tmp`: dpkg inside the chroot sees
/// each under the same path, and the image's `/tmp` is emptied later, so no path of this
/// machine is left in the image. The directory goes when the returned guard is dropped.
pub fn stage_debs(debs: &[PathBuf]) -> anyhow::Result<(Option<tempfile::TempDir>, Vec<PathBuf>)> {
    if debs.is_empty() {
        return Ok((None, Vec::new()));
    }
    let dir = tempfile::Builder::new()
        .prefix("systemvm-debs-")
        .tempdir_in("/tmp")
        .map_err(|e| {
            anyhow::anyhow!("cannot create a directory in /tmp for the .deb files: {e}")
        })?;
    let mut staged = Vec::new();
    for (i, deb) in debs.iter().enumerate() {
        let name = deb
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("package.deb");
        let to = dir.path().join(format!("{i:02}-{name}"));
        std::fs::copy(deb, &to)
            .map_err(|e| anyhow::anyhow!("cannot copy --extra-deb {}: {e}", deb.display()))?;
        staged.push(to);
    }
    Ok((Some(dir), staged))
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
