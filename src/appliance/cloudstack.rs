//! CloudStack's system VM template from a CloudStack checkout, as file writes on the unpacked
//! root (no chroot, no package scripts): what the release's `configure_systemvm_services.sh`
//! and `configure_networking.sh` do. `cloud-scripts.tgz` is made exactly as `systemvm build`
//! makes it for the release (same members, modes, times and digest records), unpacked at
//! `/`, and kept as `/usr/share/cloud/cloud-scripts.tgz` with its signature in the release's
//! digest; the release's services are enabled and disabled; the directories the daemons
//! expect exist; cloud-init is configured for CloudStack and left disabled.
//!
//! The kept tarball's gzip header carries the build's time where `systemvm build` writes 0,
//! so its signature never equals a patch-files build's digest, even from the same tree at
//! the same `SOURCE_DATE_EPOCH`. `cloud-early-config` patches only when they differ, and
//! only a patch makes `bootstrap.sh` unzip `agent.zip`: with equal digests a secondary
//! storage VM or console proxy would never get its agent. CloudStack's own template (its
//! tarball made at template build time) differs from every management server's too.

use crate::appliance::configure::write;
use crate::appliance::package_set::Services;
use crate::appliance::runner::Runner;
use crate::appliance::units::{self, Applied};
use crate::hashing::{self, Algorithm};
use crate::layout::{Layout, SCRIPTS_NAME};
use crate::source::{self, Shape};
use crate::version::{Digest, Version};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the template keeps the tarball, and where the VM keeps its signature.
pub const STORED_SCRIPTS: &str = "usr/share/cloud/cloud-scripts.tgz";
pub const SIGNATURE: &str = "var/cache/cloud/cloud-scripts-signature";

/// Directories CloudStack's services script creates (dnsmasq's TFTP root, haproxy's state).
const DIRECTORIES: &[&str] = &[
    "var/www/html",
    "opt/cloud/bin",
    "var/cache/cloud",
    "usr/share/cloud",
    "usr/local/cloud",
    "opt/tftpboot",
    "var/lib/haproxy",
];

/// The tarball made from the tree, and its signature.
#[derive(Debug, Clone)]
pub struct Scripts {
    pub tgz: PathBuf,
    pub signature: String,
    pub digest: Digest,
    /// JARs taken from `--agent-jars-from` (they change the signature, not the image).
    pub jars: usize,
}

/// The release a CloudStack checkout is, from `systemvm/pom.xml`'s parent `<version>`.
pub fn tree_version(tree: &Path) -> Result<Version> {
    let path = tree.join("systemvm/pom.xml");
    let pom =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let version = pom
        .find("<parent>")
        .map(|at| &pom[at..])
        .and_then(|parent| {
            let start = parent.find("<version>")? + "<version>".len();
            let end = parent[start..].find('<')? + start;
            Some(parent[start..end].trim())
        })
        .with_context(|| format!("{} names no parent <version>", path.display()))?;
    Version::parse(version).with_context(|| format!("{}", path.display()))
}

/// `cloud-scripts.tgz` of the tree for `version`, written into `dir`: the tar stream
/// `systemvm build` writes (the agent zip it records is made and dropped: the template does
/// not ship it), the gzip header stamped with `epoch`.
pub fn scripts(
    tree: &Path,
    jars_from: Option<&Path>,
    version: &Version,
    epoch: i64,
    dir: &Path,
) -> Result<Scripts> {
    let loaded = source::load(tree, jars_from)?;
    if loaded.shape != Shape::CloudstackTree {
        bail!("{} is not a CloudStack checkout", tree.display());
    }
    let layout = Layout::for_version(Some(version));
    let written = crate::build::write_archives(&loaded.payload, layout, version, dir, epoch)?;
    let mut tgz = None;
    for (name, path) in written {
        if name == SCRIPTS_NAME {
            tgz = Some(path);
        } else {
            let _ = fs::remove_file(&path);
        }
    }
    let tgz = tgz.context("the scripts tarball was not written")?;
    stamp_gzip_time(&tgz, epoch)?;
    let digest = version.signature_digest();
    let algorithm = match digest {
        Digest::Md5 => Algorithm::Md5,
        Digest::Sha512 => Algorithm::Sha512,
    };
    let signature = hashing::of_file(&tgz, &[algorithm])
        .with_context(|| format!("cannot read {}", tgz.display()))?
        .get(algorithm)
        .to_string();
    Ok(Scripts {
        tgz,
        signature,
        digest,
        jars: loaded.jars,
    })
}

/// Set the gzip header's MTIME (bytes 4-7, little-endian; outside every checksum) to
/// `epoch`, at least 1: the same tar stream, another file digest.
fn stamp_gzip_time(tgz: &Path, epoch: i64) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tgz)
        .with_context(|| format!("cannot open {}", tgz.display()))?;
    let mut header = [0u8; 4];
    f.read_exact(&mut header)
        .with_context(|| format!("cannot read {}", tgz.display()))?;
    if header[..3] != [0x1f, 0x8b, 8] {
        bail!("{} is not a gzip file", tgz.display());
    }
    let time = u32::try_from(epoch.max(1)).unwrap_or(u32::MAX);
    f.seek(SeekFrom::Start(4))
        .and_then(|_| f.write_all(&time.to_le_bytes()))
        .with_context(|| format!("cannot write {}", tgz.display()))
}

/// Unpack the scripts at `/`, keep the tarball and its signature, set up the services.
pub fn install(
    runner: &mut Runner,
    root: &Path,
    scripts: &Scripts,
    services: &Services,
) -> Result<Applied> {
    runner.run(
        Command::new("tar")
            .args([
                "--extract",
                "--gzip",
                "--numeric-owner",
                "--same-permissions",
                "--no-overwrite-dir",
                "--file",
            ])
            .arg(&scripts.tgz)
            .arg("--directory")
            .arg(root),
    )?;
    for dir in DIRECTORIES {
        let path = root.join(dir);
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    }
    let stored = root.join(STORED_SCRIPTS);
    fs::copy(&scripts.tgz, &stored)
        .with_context(|| format!("cannot write {}", stored.display()))?;
    set_mode(&stored, 0o644)?;
    let signature = format!("{}\n", scripts.signature);
    write(root, SIGNATURE, signature.as_bytes(), 0o644)?;
    units_not_executable(root)?;
    let installed = units::apply(root, &services.enable, &services.disable)?;
    cloud_init_for_cloudstack(root)?;
    interfaces(root)?;
    Ok(installed)
}

/// Unit files are not programs (the tarball gives everything 0755; CloudStack's script
/// does `chmod -x /etc/systemd/system/*`).
fn units_not_executable(root: &Path) -> Result<()> {
    let dir = root.join("etc/systemd/system");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            set_mode(&e.path(), 0o644)?;
        }
    }
    Ok(())
}

/// cloud-init looks only for CloudStack's data source, and stays off until a role wants it.
fn cloud_init_for_cloudstack(root: &Path) -> Result<()> {
    if !root.join("etc/cloud").is_dir() {
        return Ok(());
    }
    let datasource = "datasource_list: ['CloudStack']\ndatasource:\n  CloudStack:\n    max_wait: 120\n    timeout: 50\n";
    write(
        root,
        "etc/cloud/cloud.cfg.d/cloudstack.cfg",
        datasource.as_bytes(),
        0o644,
    )?;
    write(root, "etc/cloud/cloud-init.disabled", b"", 0o644)
}

/// With ifupdown: the loopback and DHCP on eth0 until `cloud-early-config` writes the role's.
fn interfaces(root: &Path) -> Result<()> {
    const INTERFACES: &str = "etc/network/interfaces";
    if !root.join(INTERFACES).exists() {
        return Ok(());
    }
    let text = "source /etc/network/interfaces.d/*\n\n# The loopback network interface\nauto lo\niface lo inet loopback\n\n# The primary network interface\nauto eth0\niface eth0 inet dhcp\n";
    write(root, INTERFACES, text.as_bytes(), 0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_changes_the_digest_not_the_tar() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("cloud-scripts.tgz");
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(fs::File::create(&tgz).unwrap(), flate2::Compression::best());
        gz.write_all(b"a tar stream").unwrap();
        gz.finish().unwrap();
        let before = fs::read(&tgz).unwrap();
        stamp_gzip_time(&tgz, 1_700_000_000).unwrap();
        let after = fs::read(&tgz).unwrap();
        assert_ne!(before, after);
        assert_eq!(after[4..8], 1_700_000_000u32.to_le_bytes());
        let mut text = String::new();
        flate2::read::GzDecoder::new(&after[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "a tar stream");
        fs::write(&tgz, "not gzip").unwrap();
        assert!(stamp_gzip_time(&tgz, 1).is_err());
    }

    #[test]
    fn version_from_the_pom_parent() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("systemvm")).unwrap();
        let pom = dir.path().join("systemvm/pom.xml");
        fs::write(&pom, "<project><parent><artifactId>x</artifactId><version> 4.20.0.0 </version></parent><version>9</version></project>").unwrap();
        assert_eq!(tree_version(dir.path()).unwrap().to_string(), "4.20.0.0");
        fs::write(&pom, "<project></project>").unwrap();
        let err = tree_version(dir.path()).unwrap_err().to_string();
        assert!(err.contains("names no parent <version>"), "{err}");
    }

    #[test]
    fn a_symlink_in_the_image_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("host-file"));
        fs::create_dir_all(root.join("etc/network")).unwrap();
        fs::create_dir_all(root.join("etc/cloud/cloud.cfg.d")).unwrap();
        fs::write(&outside, "the build host's own\n").unwrap();
        for link in [
            "etc/network/interfaces",
            "etc/cloud/cloud.cfg.d/cloudstack.cfg",
        ] {
            std::os::unix::fs::symlink(&outside, root.join(link)).unwrap();
        }
        interfaces(&root).unwrap();
        cloud_init_for_cloudstack(&root).unwrap();
        assert_eq!(
            fs::read_to_string(&outside).unwrap(),
            "the build host's own\n"
        );
        let written = fs::read_to_string(root.join("etc/network/interfaces")).unwrap();
        assert!(written.contains("iface eth0 inet dhcp"), "{written}");
        let cfg = root.join("etc/cloud/cloud.cfg.d/cloudstack.cfg");
        assert!(fs::symlink_metadata(&cfg).unwrap().is_file());
    }
}
