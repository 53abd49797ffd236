//! Makes an unpacked root file system a system VM template: for the minimal template the
//! patch service from our payload, enabled at boot and logging to the console (CloudStack's
//! template gets its services from [`crate::appliance::cloudstack`] first); the release file
//! carrying the version; fstab by label; DHCP on the first NICs; SSH host keys made on first
//! boot instead of shipped; and the cleanup an image needs (apt caches and lists, logs,
//! machine-id, temp files). Every change is a file written with an explicit mode: no chroot,
//! no package scripts run here. The caller clamps the tree's times afterwards.

use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// CloudStack or Cosmic: which release file the template carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    Cloudstack,
    Cosmic,
}

impl Flavor {
    /// The release file (absolute, in the template).
    pub fn release_file(self) -> &'static str {
        match self {
            Flavor::Cloudstack => "/etc/cloudstack-release",
            Flavor::Cosmic => "/etc/cosmic-release",
        }
    }

    /// The product name at the start of the release line.
    pub fn product(self) -> &'static str {
        match self {
            Flavor::Cloudstack => "Cloudstack",
            Flavor::Cosmic => "Cosmic",
        }
    }
}

/// What the configuration needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    pub flavor: Flavor,
    pub version: String,
    /// The build's epoch, written into the release line as a date.
    pub epoch: i64,
    pub root_label: String,
    /// The ESP's FAT volume id as fstab spells it (`ABCD-1234`).
    pub esp_uuid: String,
    /// The payload holding scripts/opt/cloud/bin/systemvm-patch and its unit (the minimal
    /// template); `None` for CloudStack's, whose own services patch the VM.
    pub payload: Option<PathBuf>,
}

/// The payload files the template installs (relative to the payload directory).
pub const PATCH_SCRIPT: &str = "scripts/opt/cloud/bin/systemvm-patch";
pub const PATCH_UNIT: &str = "scripts/etc/systemd/system/systemvm-patch.service";

/// Kernel and initrd as GRUB finds them on the root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    pub kernel: String,
    pub initrd: String,
}

/// Apply the configuration to the tree at `root`.
pub fn configure(root: &Path, cfg: &Config) -> Result<BootFiles> {
    if !root.join("usr/lib/systemd/systemd").exists() && !root.join("lib/systemd/systemd").exists()
    {
        bail!("the root file system has no systemd: add systemd-sysv to the packages");
    }
    let boot = boot_files(root)?;
    if let Some(payload) = &cfg.payload {
        patch_service(root, payload)?;
    }
    release_file(root, cfg)?;
    machine_files(root, cfg)?;
    network(root)?;
    ssh_host_keys(root)?;
    cleanup(root)?;
    Ok(boot)
}

/// The release file the VM reports to the management server.
fn release_file(root: &Path, cfg: &Config) -> Result<()> {
    let c = crate::epoch::civil(cfg.epoch);
    let (product, version) = (cfg.flavor.product(), &cfg.version);
    let release = format!(
        "{product} Release {version} {:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\n",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    let release_path = cfg.flavor.release_file().trim_start_matches('/');
    write(root, release_path, release.as_bytes(), 0o644)
}

/// fstab, host name and hosts; an empty resolv.conf.
fn machine_files(root: &Path, cfg: &Config) -> Result<()> {
    let fstab = format!(
        "# <file system> <mount point> <type> <options> <dump> <pass>\nLABEL={} / ext4 defaults,errors=remount-ro 0 1\nUUID={} /boot/efi vfat umask=0077,nofail 0 2\n",
        cfg.root_label, cfg.esp_uuid
    );
    write(root, "etc/fstab", fstab.as_bytes(), 0o644)?;
    mkdir(root, "boot/efi", 0o755)?;
    write(root, "etc/hostname", b"systemvm\n", 0o644)?;
    write(
        root,
        "etc/hosts",
        b"127.0.0.1\tlocalhost\n127.0.1.1\tsystemvm\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        0o644,
    )?;
    // The host's resolver configuration does not belong in the template.
    write(root, "etc/resolv.conf", b"", 0o644)
}

/// DHCP on eth* (the kernel command line keeps the classic names CloudStack expects),
/// through systemd-networkd unless the packages brought ifupdown.
fn network(root: &Path) -> Result<()> {
    let networkd = ["usr/lib/systemd/system", "lib/systemd/system"]
        .iter()
        .find(|d| root.join(d).join("systemd-networkd.service").exists());
    if let (Some(dir), false) = (networkd, root.join("etc/network/interfaces").exists()) {
        write(
            root,
            "etc/systemd/network/80-systemvm-dhcp.network",
            b"# Written by systemvm appliance build: DHCP until the system VM configures itself.\n[Match]\nName=eth* en*\n\n[Network]\nDHCP=yes\n",
            0o644,
        )?;
        for (wants, unit) in [
            ("multi-user.target.wants", "systemd-networkd.service"),
            ("sockets.target.wants", "systemd-networkd.socket"),
        ] {
            enable(root, wants, unit, &format!("/{dir}/{unit}"))?;
        }
    }

    Ok(())
}

/// Every VM makes its own SSH host keys on first boot; none ships in the template.
fn ssh_host_keys(root: &Path) -> Result<()> {
    remove_matching(&root.join("etc/ssh"), |n| n.starts_with("ssh_host_"))?;
    if root.join("usr/sbin/sshd").exists() {
        write(
            root,
            "etc/systemd/system/ssh-host-keys.service",
            b"# Written by systemvm appliance build: make missing SSH host keys before sshd starts.\n[Unit]\nDescription=Generate missing SSH host keys\nBefore=ssh.service\nConditionPathExists=/usr/bin/ssh-keygen\n\n[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\nRemainAfterExit=yes\n",
            0o644,
        )?;
        write(
            root,
            "etc/systemd/system/ssh.service.d/host-keys.conf",
            b"[Unit]\nWants=ssh-host-keys.service\nAfter=ssh-host-keys.service\n",
            0o644,
        )?;
    }

    Ok(())
}

/// The patch service, enabled the way `systemctl enable` would, and logging to the console
/// too, so its work shows on the serial log.
fn patch_service(root: &Path, payload: &Path) -> Result<()> {
    let script = fs::read(payload.join(PATCH_SCRIPT))
        .with_context(|| format!("cannot read {}", payload.join(PATCH_SCRIPT).display()))?;
    let unit = fs::read(payload.join(PATCH_UNIT))
        .with_context(|| format!("cannot read {}", payload.join(PATCH_UNIT).display()))?;
    write(root, "opt/cloud/bin/systemvm-patch", &script, 0o755)?;
    write(
        root,
        "etc/systemd/system/systemvm-patch.service",
        &unit,
        0o644,
    )?;
    enable(
        root,
        "multi-user.target.wants",
        "systemvm-patch.service",
        "/etc/systemd/system/systemvm-patch.service",
    )?;
    write(
        root,
        "etc/systemd/system/systemvm-patch.service.d/console.conf",
        b"# Written by systemvm appliance build: show the patching on the (serial) console.\n[Service]\nStandardOutput=journal+console\nStandardError=journal+console\n",
        0o644,
    )?;
    Ok(())
}

/// Empty machine-id (systemd makes one per VM at first boot), no apt caches or lists, no
/// logs, no temp files.
pub fn cleanup(root: &Path) -> Result<()> {
    write(root, "etc/machine-id", b"", 0o444)?;
    let dbus_id = root.join("var/lib/dbus/machine-id");
    if dbus_id.symlink_metadata().is_ok_and(|m| m.is_file()) {
        fs::remove_file(&dbus_id)
            .with_context(|| format!("cannot remove {}", dbus_id.display()))?;
    }
    remove_matching(&root.join("var/cache/apt"), |n| n.ends_with(".bin"))?;
    remove_matching(&root.join("var/cache/apt/archives"), |n| {
        n.ends_with(".deb")
    })?;
    remove_matching(&root.join("var/lib/apt/lists"), |n| {
        n != "partial" && n != "lock"
    })?;
    remove_matching(&root.join("var/cache/debconf"), |n| n.ends_with("-old"))?;
    remove_matching(&root.join("var/lib/dpkg"), |n| n.ends_with("-old"))?;
    remove_files_below(&root.join("var/log"))?;
    for dir in ["tmp", "var/tmp"] {
        let path = root.join(dir);
        if let Ok(entries) = fs::read_dir(&path) {
            for e in entries.flatten() {
                let p = e.path();
                let r = if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                r.with_context(|| format!("cannot remove {}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// `/vmlinuz` and `/initrd.img` (Debian keeps them pointing at the newest kernel, so the
/// template survives kernel upgrades), else the newest `/boot/vmlinuz-*`.
fn boot_files(root: &Path) -> Result<BootFiles> {
    if root.join("vmlinuz").exists() && root.join("initrd.img").exists() {
        return Ok(BootFiles {
            kernel: "/vmlinuz".into(),
            initrd: "/initrd.img".into(),
        });
    }
    let mut kernels: Vec<String> = fs::read_dir(root.join("boot"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with("vmlinuz-"))
                .collect()
        })
        .unwrap_or_default();
    kernels.sort();
    for kernel in kernels.iter().rev() {
        let release = &kernel["vmlinuz-".len()..];
        let initrd = format!("initrd.img-{release}");
        if root.join("boot").join(&initrd).exists() {
            return Ok(BootFiles {
                kernel: format!("/boot/{kernel}"),
                initrd: format!("/boot/{initrd}"),
            });
        }
    }
    bail!("the root file system has no kernel and initrd in /boot: add a linux-image package and initramfs-tools to the packages")
}

/// Create `root/rel` with `mode` unless it is a directory already.
pub(crate) fn mkdir(root: &Path, rel: &str, mode: u32) -> Result<()> {
    let path = root.join(rel);
    if !path.is_dir() {
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    Ok(())
}

/// Write `root/rel` with `mode`, creating its directories (0755).
pub(crate) fn write(root: &Path, rel: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = Path::new(rel).parent().and_then(|p| p.to_str()) {
        if !parent.is_empty() {
            mkdir(root, parent, 0o755)?;
        }
    }
    if path.symlink_metadata().is_ok_and(|m| !m.is_file()) {
        // A dangling symlink (resolv.conf) or similar: replace it, never write through it.
        fs::remove_file(&path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// The symlink `systemctl enable` makes: /etc/systemd/system/<wants>/<name> -> target.
fn enable(root: &Path, wants: &str, name: &str, target: &str) -> Result<()> {
    let dir = format!("etc/systemd/system/{wants}");
    mkdir(root, &dir, 0o755)?;
    crate::appliance::units::link(root, &format!("{dir}/{name}"), target)
}

fn remove_matching(dir: &Path, matches: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if matches(name) && e.file_type().is_ok_and(|t| !t.is_dir()) {
            fs::remove_file(e.path())
                .with_context(|| format!("cannot remove {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Remove every non-directory below `dir`, keeping the directories (services expect them).
fn remove_files_below(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_files_below(&path)?;
        } else {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in [
            "usr/lib/systemd/system",
            "boot",
            "etc/ssh",
            "var/lib/apt/lists/partial",
            "var/log/apt",
            "var/cache/apt/archives",
            "tmp",
        ] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        fs::write(r.join("usr/lib/systemd/systemd"), "").unwrap();
        fs::write(
            r.join("usr/lib/systemd/system/systemd-networkd.service"),
            "",
        )
        .unwrap();
        fs::write(r.join("boot/vmlinuz-6.1.0-1-amd64"), "k").unwrap();
        fs::write(r.join("boot/initrd.img-6.1.0-1-amd64"), "i").unwrap();
        fs::write(r.join("etc/machine-id"), "0123456789abcdef\n").unwrap();
        fs::write(r.join("etc/ssh/ssh_host_ed25519_key"), "secret").unwrap();
        fs::write(r.join("etc/ssh/sshd_config"), "").unwrap();
        fs::write(r.join("var/lib/apt/lists/x_Packages"), "").unwrap();
        fs::write(r.join("var/log/apt/history.log"), "").unwrap();
        fs::write(r.join("var/cache/apt/pkgcache.bin"), "").unwrap();
        fs::write(r.join("tmp/junk"), "").unwrap();
        dir
    }

    #[test]
    fn configures_a_tree() {
        let dir = tree();
        let r = dir.path();
        let cfg = Config {
            flavor: Flavor::Cosmic,
            version: "23.11.14".into(),
            epoch: 1_700_000_000,
            root_label: "SLX_SYS".into(),
            esp_uuid: "ABCD-1234".into(),
            payload: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("agent-payload")),
        };
        let boot = configure(r, &cfg).unwrap();
        assert_eq!(boot.kernel, "/boot/vmlinuz-6.1.0-1-amd64");
        assert_eq!(
            fs::read_to_string(r.join("etc/cosmic-release")).unwrap(),
            "Cosmic Release 23.11.14 2023-11-14T22:13:20Z\n"
        );
        assert!(fs::read_to_string(r.join("etc/fstab"))
            .unwrap()
            .contains("LABEL=SLX_SYS / ext4"));
        assert_eq!(
            fs::read_link(
                r.join("etc/systemd/system/multi-user.target.wants/systemvm-patch.service")
            )
            .unwrap(),
            Path::new("/etc/systemd/system/systemvm-patch.service")
        );
        let mode = fs::metadata(r.join("opt/cloud/bin/systemvm-patch"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(fs::read(r.join("etc/machine-id")).unwrap(), b"");
        assert!(!r.join("etc/ssh/ssh_host_ed25519_key").exists());
        assert!(r.join("etc/ssh/sshd_config").exists());
        assert!(!r.join("var/lib/apt/lists/x_Packages").exists());
        assert!(r.join("var/lib/apt/lists/partial").is_dir());
        assert!(!r.join("var/log/apt/history.log").exists());
        assert!(r.join("var/log/apt").is_dir());
        assert!(!r.join("var/cache/apt/pkgcache.bin").exists());
        assert!(!r.join("tmp/junk").exists());
        assert!(r
            .join("etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
            .symlink_metadata()
            .is_ok());
    }

    #[test]
    fn a_tree_without_a_kernel_is_refused() {
        let dir = tree();
        fs::remove_file(dir.path().join("boot/vmlinuz-6.1.0-1-amd64")).unwrap();
        let cfg = Config {
            flavor: Flavor::Cloudstack,
            version: "4.18.0".into(),
            epoch: 0,
            root_label: "ROOT".into(),
            esp_uuid: "ABCD-1234".into(),
            payload: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("agent-payload")),
        };
        let err = configure(dir.path(), &cfg).unwrap_err().to_string();
        assert!(err.contains("linux-image"), "{err}");
    }
}
