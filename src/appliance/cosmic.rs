//! Cosmic's system VM template from a checkout of Cosmic's systemvm-packer, as file writes on
//! the unpacked root: what its `template.json` provisioners and kickstart `%post` do, on
//! Debian. Cosmic's units go to `/etc/systemd/system` (they override the packages' units
//! there, as Packer's copy over `/usr/lib/systemd/system` does on CentOS) and are enabled;
//! its startup scripts go to `/opt/cosmic/startup`. Two drop-ins fit them to Debian: a unit
//! whose interpreter the image lacks (CentOS's `python3.6`) runs the image's `python3`, and
//! a unit whose script reads `/dev/cdrom` waits for that device (udev makes the link seconds
//! after the unit would otherwise run, and the script gives up at once). The set's daemons
//! are enabled where the image has them, `/tmp` becomes a tmpfs (qemu-ga writes the command
//! line to `/tmp/cmdline`, which the `.path` unit watches), the conntrack helpers Cosmic
//! loads are loaded where this kernel has them, and chrony follows the hypervisor's clock.

use crate::appliance::configure::{mkdir, write};
use crate::appliance::package_set::Services;
use crate::appliance::units::{self, Applied};
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// In the checkout: the units, and the scripts the template runs at boot.
const UNITS: &str = "files/systemd";
const STARTUP: &str = "files/startup";
/// In the image.
const LOCAL_UNITS: &str = "etc/systemd/system";
const STARTUP_IN_IMAGE: &str = "opt/cosmic/startup";

/// The modules Cosmic's `scripts/conntrack.sh` has loaded at boot. Newer kernels merged
/// some into `nf_conntrack`; only those the image's kernel has are listed.
const CONNTRACK: &[&str] = &[
    "nf_conntrack_ipv4",
    "nf_conntrack",
    "nf_conntrack_ftp",
    "nf_conntrack_pptp",
    "nf_conntrack_proto_gre",
    "nf_nat_tftp",
    "nf_nat_ftp",
];
const MODULES_LOAD: &str = "etc/modules-load.d/10-conntrack-modules.conf";

/// The hypervisor's NTP service on the link-local network (Cosmic's chrony.conf edit).
const HYPERVISOR_NTP: &str = "server 169.254.0.1 iburst\n";

/// Whether `dir` is a systemvm-packer checkout: its patch script and its units.
pub fn is_checkout(dir: &Path) -> bool {
    dir.join(STARTUP).join("patch-scripts.sh").is_file() && dir.join(UNITS).is_dir()
}

/// What [`install`] did, for the stage summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Cosmic's own units and the set's daemons the image has, enabled.
    pub services: Applied,
    /// The set's daemons the image does not have (their packages are not installed).
    pub not_enabled: Vec<String>,
    /// Conntrack modules loaded at boot.
    pub modules: Vec<String>,
}

/// Install the checkout's units and scripts and set the services up as Cosmic's template.
pub fn install(root: &Path, tree: &Path, services: &Services) -> Result<Installed> {
    let own = copy_units(root, tree)?;
    copy_dir(&tree.join(STARTUP), root, STARTUP_IN_IMAGE, 0o755)?;
    mkdir(root, "var/cache/cloud", 0o755)?;
    mkdir(root, "root/.ssh", 0o700)?;
    interpreter_drop_ins(root, &own)?;
    cdrom_drop_ins(root, tree, &own)?;
    tmp_on_tmpfs(root)?;
    let (present, not_enabled): (Vec<String>, Vec<String>) = services
        .enable
        .iter()
        .cloned()
        .partition(|name| units::exists(root, name));
    let enable: Vec<String> = own
        .iter()
        .map(|(name, _)| name.clone())
        .chain(present)
        .collect();
    let applied = units::apply(root, &enable, &services.disable)?;
    let modules = conntrack_modules(root)?;
    chrony_from_the_hypervisor(root)?;
    Ok(Installed {
        services: applied,
        not_enabled,
        modules,
    })
}

/// The checkout's unit files into /etc/systemd/system (0644); returns the names of those
/// with an `[Install]` section (Cosmic enables them all) with their text.
fn copy_units(root: &Path, tree: &Path) -> Result<Vec<(String, String)>> {
    let copied = copy_dir(&tree.join(UNITS), root, LOCAL_UNITS, 0o644)?;
    let mut wanted = Vec::new();
    for (name, path) in copied {
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let install = units::parse_install(&text);
        if !install.wanted_by.is_empty() || !install.required_by.is_empty() {
            wanted.push((name, text));
        }
    }
    Ok(wanted)
}

/// Copy the regular files of `from` (sorted, not following symlinks) into `root/to` with
/// `mode`; returns (name, source path) of each.
fn copy_dir(from: &Path, root: &Path, to: &str, mode: u32) -> Result<Vec<(String, PathBuf)>> {
    let entries = fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut files: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect();
    files.sort();
    for (name, path) in &files {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        write(root, &format!("{to}/{name}"), &bytes, mode)?;
    }
    Ok(files)
}

/// For a unit whose `ExecStart=` runs a `/usr/bin/python3.N` the image lacks: a drop-in
/// that runs the same line with the image's `/usr/bin/python3`.
fn interpreter_drop_ins(root: &Path, own: &[(String, String)]) -> Result<()> {
    for (name, text) in own {
        let Some(line) = text
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix("ExecStart="))
        else {
            continue;
        };
        let Some(program) = line.split_whitespace().next() else {
            continue;
        };
        let is_versioned_python = program
            .strip_prefix("/usr/bin/python3.")
            .is_some_and(|minor| minor.bytes().all(|b| b.is_ascii_digit()));
        if !is_versioned_python || root.join(&program[1..]).exists() {
            continue;
        }
        let rest = &line[program.len()..];
        let drop_in = format!(
            "# Written by systemvm appliance build: the image has no {program}.\n[Service]\nExecStart=\nExecStart=/usr/bin/python3{rest}\n"
        );
        write(
            root,
            &format!("{LOCAL_UNITS}/{name}.d/python3.conf"),
            drop_in.as_bytes(),
            0o644,
        )?;
    }
    Ok(())
}

/// For a unit whose `ExecStart=` names a startup script that reads `/dev/cdrom`: a drop-in
/// ordering it after the device (and pulling the device in).
fn cdrom_drop_ins(root: &Path, tree: &Path, own: &[(String, String)]) -> Result<()> {
    let startup = tree.join(STARTUP);
    let in_image = format!("/{STARTUP_IN_IMAGE}/");
    for (name, text) in own {
        let reads_cdrom = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ExecStart="))
            .flat_map(str::split_whitespace)
            .filter_map(|word| word.strip_prefix(in_image.as_str()))
            .any(|script| {
                fs::read_to_string(startup.join(script)).is_ok_and(|t| t.contains("/dev/cdrom"))
            });
        if reads_cdrom {
            write(
                root,
                &format!("{LOCAL_UNITS}/{name}.d/cdrom.conf"),
                b"# Written by systemvm appliance build: the script reads /dev/cdrom; wait for it.\n[Unit]\nWants=dev-cdrom.device\nAfter=dev-cdrom.device\n",
                0o644,
            )?;
        }
    }
    Ok(())
}

/// Debian ships `tmp.mount` outside the unit path; put it in /etc so it can be enabled.
fn tmp_on_tmpfs(root: &Path) -> Result<()> {
    let shipped = root.join("usr/share/systemd/tmp.mount");
    if units::exists(root, "tmp.mount") || !shipped.is_file() {
        return Ok(());
    }
    let bytes = fs::read(&shipped).with_context(|| format!("cannot read {}", shipped.display()))?;
    write(root, &format!("{LOCAL_UNITS}/tmp.mount"), &bytes, 0o644)
}

/// The conntrack modules of [`CONNTRACK`] the image's kernel has, listed for
/// systemd-modules-load; returns them.
fn conntrack_modules(root: &Path) -> Result<Vec<String>> {
    let available = kernel_modules(root);
    let modules: Vec<String> = CONNTRACK
        .iter()
        .filter(|m| available.iter().any(|a| a == *m))
        .map(|m| m.to_string())
        .collect();
    if !modules.is_empty() {
        let text = modules.join("\n") + "\n";
        write(root, MODULES_LOAD, text.as_bytes(), 0o644)?;
    }
    Ok(modules)
}

/// Names of the modules under `lib/modules` (`nf_nat_ftp.ko.xz` is `nf_nat_ftp`).
fn kernel_modules(root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![root.join("usr/lib/modules"), root.join("lib/modules")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if kind.is_dir() {
                stack.push(e.path());
            } else if let Some((stem, _)) = name.split_once(".ko") {
                names.push(stem.to_string());
            }
        }
    }
    names
}

/// chrony asks the hypervisor, not the public pool.
fn chrony_from_the_hypervisor(root: &Path) -> Result<()> {
    let conf = root.join("etc/chrony/chrony.conf");
    let Ok(text) = fs::read_to_string(&conf) else {
        return Ok(());
    };
    let edited: String = text
        .lines()
        .map(|l| {
            let mark = if l.starts_with("pool ") { "# " } else { "" };
            format!("{mark}{l}\n")
        })
        .collect();
    write(root, "etc/chrony/chrony.conf", edited.as_bytes(), 0o644)?;
    write(
        root,
        "etc/chrony/sources.d/cosmic.sources",
        HYPERVISOR_NTP.as_bytes(),
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkout with a patch script, a python3.6 unit and a .path unit; an image with
    /// systemd's tmp.mount, one daemon and a kernel with some conntrack modules.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        let root = dir.path().join("root");
        for (rel, text) in [
            ("tree/files/startup/patch-scripts.sh", "#!/bin/sh\nCDROM_DEV=\"/dev/cdrom\"\n"),
            ("tree/files/systemd/cosmic-patch.service", "[Service]\nExecStart=/bin/bash -x /opt/cosmic/startup/patch-scripts.sh\n[Install]\nWantedBy=multi-user.target\n"),
            ("tree/files/systemd/cosmic-hook.service", "[Service]\nExecStart=/usr/bin/python3.6 /opt/cosmic/startup/hook.py\n[Install]\nWantedBy=multi-user.target\n"),
            ("tree/files/systemd/cosmic-hook.path", "[Path]\nPathChanged=/tmp/cmdline\n[Install]\nWantedBy=multi-user.target\n"),
            ("tree/files/systemd/helper.service", "[Service]\nExecStart=/bin/true\n"),
            (
                "root/usr/share/systemd/tmp.mount",
                "[Mount]\nWhat=tmpfs\n[Install]\nWantedBy=local-fs.target\n",
            ),
            (
                "root/usr/lib/systemd/system/keepalived.service",
                "[Install]\nWantedBy=multi-user.target\n",
            ),
            (
                "root/usr/lib/modules/6.1.0-1-cloud-amd64/kernel/net/netfilter/nf_conntrack.ko.xz",
                "",
            ),
            (
                "root/usr/lib/modules/6.1.0-1-cloud-amd64/kernel/net/netfilter/nf_nat_ftp.ko.xz",
                "",
            ),
            (
                "root/etc/chrony/chrony.conf",
                "pool 2.debian.pool.ntp.org iburst\nsourcedir /etc/chrony/sources.d\n",
            ),
        ] {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        (dir, tree, root)
    }

    #[test]
    fn a_checkout_becomes_cosmics_template() {
        let (_dir, tree, root) = fixture();
        assert!(is_checkout(&tree));
        assert!(!is_checkout(&root));
        let services = Services {
            enable: vec!["tmp.mount".into(), "keepalived".into(), "nginx".into()],
            disable: vec!["rpcbind.socket".into()],
        };
        let done = install(&root, &tree, &services).unwrap();
        assert_eq!(
            done.services.enabled,
            [
                "cosmic-hook.path",
                "cosmic-hook.service",
                "cosmic-patch.service",
                "tmp.mount",
                "keepalived"
            ]
        );
        assert_eq!(done.not_enabled, ["nginx"]);
        assert_eq!(done.services.absent, ["rpcbind.socket"]);
        let wants = root.join("etc/systemd/system/multi-user.target.wants");
        assert!(wants.join("cosmic-hook.path").symlink_metadata().is_ok());
        assert!(root
            .join("etc/systemd/system/local-fs.target.wants/tmp.mount")
            .symlink_metadata()
            .is_ok());
        assert!(!wants.join("helper.service").exists());
        assert_eq!(
            fs::read_to_string(root.join("opt/cosmic/startup/patch-scripts.sh")).unwrap(),
            "#!/bin/sh\nCDROM_DEV=\"/dev/cdrom\"\n"
        );
        let cdrom =
            fs::read_to_string(root.join("etc/systemd/system/cosmic-patch.service.d/cdrom.conf"))
                .unwrap();
        assert!(cdrom.ends_with("[Unit]\nWants=dev-cdrom.device\nAfter=dev-cdrom.device\n"));
        assert!(!root
            .join("etc/systemd/system/cosmic-hook.service.d/cdrom.conf")
            .exists());
        let drop_in =
            fs::read_to_string(root.join("etc/systemd/system/cosmic-hook.service.d/python3.conf"))
                .unwrap();
        assert!(drop_in
            .ends_with("ExecStart=\nExecStart=/usr/bin/python3 /opt/cosmic/startup/hook.py\n"));
        assert_eq!(done.modules, ["nf_conntrack", "nf_nat_ftp"]);
        assert_eq!(
            fs::read_to_string(root.join(MODULES_LOAD)).unwrap(),
            "nf_conntrack\nnf_nat_ftp\n"
        );
        let chrony = fs::read_to_string(root.join("etc/chrony/chrony.conf")).unwrap();
        assert!(chrony.starts_with("# pool "), "{chrony}");
        assert_eq!(
            fs::read_to_string(root.join("etc/chrony/sources.d/cosmic.sources")).unwrap(),
            HYPERVISOR_NTP
        );
    }
}
