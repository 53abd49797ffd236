//! What `appliance build` checks before it touches anything: the label, the suite, the
//! contents (a payload or a CloudStack tree), the output directory and the tools, so that bad
//! input leaves nothing behind.

use super::{Contents, Options};
use crate::appliance::disk::Layout;
use crate::appliance::{boot, configure, rootfs};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A root label `mkfs.ext4 -L` and `LABEL=` in fstab both take: 1 to 16 of A-Z a-z 0-9 _ -.
pub fn label_ok(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 16
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// [`label_ok`], or the error naming `--root-label`.
pub fn check_label(label: &str) -> Result<()> {
    if !label_ok(label) {
        bail!("--root-label {label:?} is not a file system label: 1 to 16 of A-Z a-z 0-9 _ -");
    }
    Ok(())
}

/// A suite name apt accepts (`bookworm`, `stable`, `trixie`).
pub fn check_suite(suite: &str) -> Result<()> {
    let ok = !suite.is_empty()
        && suite
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
    if !ok {
        bail!("--suite {suite:?} is not a Debian suite name (bookworm, trixie, stable...)");
    }
    Ok(())
}

/// Everything checked before any work: tools, payload, the reused tarball, privileges.
pub fn preflight(o: &Options) -> Result<()> {
    check_label(&o.root_label)?;
    check_suite(&o.suite)?;
    Layout::new(o.disk_mib)?;
    check_contents(&o.contents)?;
    for deb in &o.extra_debs {
        rootfs::deb_package(deb)?;
    }
    if !o.extra_debs.is_empty() && o.rootfs.is_none() && !Path::new(rootfs::DEB_HOOK).is_dir() {
        bail!(
            "--extra-deb needs mmdebstrap's hook {} (mmdebstrap 1.1 or later)",
            rootfs::DEB_HOOK
        );
    }
    check_output_dir(&o.output_dir)?;
    if let Some(tar) = &o.rootfs {
        let meta = fs::metadata(tar)
            .with_context(|| format!("cannot read the rootfs tarball {}", tar.display()))?;
        if !meta.is_file() {
            bail!("--rootfs {} is not a file", tar.display());
        }
        fs::File::open(tar)
            .with_context(|| format!("cannot read the rootfs tarball {}", tar.display()))?;
    }
    let mut tools = vec![
        ("tar", "tar"),
        ("mkfs.ext4", "e2fsprogs"),
        ("dumpe2fs", "e2fsprogs"),
        ("debugfs", "e2fsprogs"),
        ("mkfs.vfat", "dosfstools"),
        ("mcopy", "mtools"),
        ("sfdisk", "fdisk"),
        ("grub-mkimage", "grub-common"),
    ];
    if o.rootfs.is_none() {
        tools.push(("mmdebstrap", "mmdebstrap"));
    }
    for (tool, package) in tools {
        if find_program(tool).is_none() {
            bail!("{tool} is not installed: apt-get install {package} (setup.sh installs it)");
        }
    }
    let efi = boot::grub_dir(o.arch.grub_efi_platform());
    if !efi.join("moddep.lst").is_file() {
        bail!(
            "GRUB's {} modules are missing ({}): apt-get install {}",
            o.arch.grub_efi_platform(),
            efi.display(),
            o.arch.grub_efi_package()
        );
    }
    if let Some((platform, package)) = o.arch.grub_bios() {
        if !boot::grub_dir(platform).join("boot.img").is_file() {
            bail!(
                "GRUB's {platform} images are missing ({}): apt-get install {package}",
                boot::grub_dir(platform).display()
            );
        }
    }
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0) != 0 {
        bail!("appliance build needs root: the unpacked root file system keeps its files' owners, which mkfs.ext4 -d copies (run it as root)");
    }
    Ok(())
}

/// The payload holds what the template takes from it.
fn check_contents(contents: &Contents) -> Result<()> {
    match contents {
        Contents::Minimal { payload } => {
            for rel in [configure::PATCH_SCRIPT, configure::PATCH_UNIT] {
                if !payload.join(rel).is_file() {
                    bail!(
                        "payload {} has no {rel}: give our agent payload or a CloudStack checkout with --payload DIR",
                        payload.display()
                    );
                }
            }
        }
        Contents::Cosmic(t) => {
            if !crate::appliance::cosmic::is_checkout(&t.tree) {
                bail!(
                    "{} is not a checkout of Cosmic's systemvm-packer (no files/startup/patch-scripts.sh)",
                    t.tree.display()
                );
            }
        }
        Contents::Cloudstack(t) => {
            if crate::source::detect(&t.tree)? != crate::source::Shape::CloudstackTree {
                bail!("{} is not a CloudStack checkout", t.tree.display());
            }
            if let Some(from) = &t.agent_jars_from {
                if !from.exists() {
                    bail!("--agent-jars-from {} does not exist", from.display());
                }
            }
        }
    }
    Ok(())
}

/// The output directory exists as a directory, or can be created: its nearest existing
/// ancestor is a writable directory.
fn check_output_dir(dir: &Path) -> Result<()> {
    let probe = dir
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(Path::new("."));
    if !probe.is_dir() {
        bail!(
            "cannot create the output directory {}: {} is not a directory",
            dir.display(),
            probe.display()
        );
    }
    let meta = fs::metadata(probe)
        .with_context(|| format!("cannot use the output directory {}", dir.display()))?;
    if meta.permissions().readonly() {
        bail!("cannot write in {}: it is read-only", probe.display());
    }
    Ok(())
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
