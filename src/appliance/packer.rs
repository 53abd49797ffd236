//! The classic way, for teams that keep Packer: a Packer template (qemu builder, JSON, since
//! Debian's packer 1.6.6 validates JSON offline) and a Debian installer preseed that build
//! the same appliance as `appliance build`: the same disk size (5000 MiB by default), GPT
//! with a BIOS boot partition, an ESP and one ext4 root partition named and labelled like
//! `--root-label` (ROOT by default), serial console on, the same kind of package list,
//! the same cleanup (apt caches, logs, machine-id) and the release file.
//!
//! No mirror is hard-coded: the preseed takes the first Debian mirror of this machine's own
//! apt sources (`/etc/apt/sources.list` and `sources.list.d/*.list|*.sources`), or `--mirror`.
//! The installer ISO is a Packer variable (`iso_url`, `iso_checksum`) unless given here.

use super::sources::{parse_deb822, parse_one_line};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// The packages a system VM needs beyond the installer's standard system.
pub const DEFAULT_PACKAGES: &[&str] = &[
    "openssh-server",
    "rsyslog",
    "logrotate",
    "cron",
    "chrony",
    "sudo",
    "curl",
    "ca-certificates",
    "iproute2",
    "iptables",
    "ipset",
    "conntrack",
    "ethtool",
    "ifupdown",
    "dnsmasq",
    "haproxy",
    "keepalived",
    "nfs-common",
    "cifs-utils",
    "sharutils",
    "genisoimage",
    "python3",
    "openjdk-17-jre-headless",
    "qemu-guest-agent",
    "open-vm-tools",
    "hyperv-daemons",
    "xenstore-utils",
    "gdisk",
];

#[derive(Debug, Clone)]
pub struct PackerOptions {
    pub out_dir: PathBuf,
    pub version: String,
    pub arch: String,
    pub suite: String,
    pub disk_size_mib: u64,
    pub root_label: String,
    /// `http://host/path` of a Debian mirror; None: from the apt sources.
    pub mirror: Option<String>,
    pub packages: Vec<String>,
    pub iso_url: Option<String>,
    pub iso_checksum: Option<String>,
    pub cosmic: bool,
    pub force: bool,
}

/// The files written, relative to the output directory.
pub const TEMPLATE: &str = "systemvmtemplate.json";
pub const PRESEED: &str = "http/preseed.cfg";

/// A Debian mirror split the way the installer asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub scheme: String,
    pub host: String,
    pub directory: String,
}

/// Parse `http://host[:port]/dir`.
pub fn parse_mirror(url: &str) -> Option<Mirror> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, dir) = match rest.split_once('/') {
        Some((h, d)) => (h, format!("/{}", d.trim_end_matches('/'))),
        None => (rest, "/".to_string()),
    };
    let clean = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '"');
    if !clean(host) || !clean(&dir) {
        return None;
    }
    Some(Mirror {
        scheme: scheme.into(),
        host: host.into(),
        directory: dir,
    })
}

/// The first plain Debian mirror (not security, updates or backports) in apt source texts,
/// one-line `deb URI SUITE ...` lists and deb822 `.sources` files, read as the build reads
/// them ([`super::sources`]): disabled stanzas and `deb-src` entries do not count.
pub fn mirror_from_sources(texts: &[String]) -> Option<String> {
    let plain = |suite: &String| !suite.contains("security") && !suite.contains('-');
    let parsed = |text: &String| [parse_deb822(text), parse_one_line(text)].concat();
    let entries = texts.iter().flat_map(parsed);
    let mut plain_entries = entries.filter(|e| e.suites.iter().any(plain));
    plain_entries.find_map(|e| e.uris.into_iter().find(|u| u.starts_with("http")))
}

/// This machine's apt source files, read.
fn apt_sources() -> Vec<String> {
    super::sources::apt_files(Path::new("/etc/apt"))
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .collect()
}

/// The preseed text.
pub fn preseed(opts: &PackerOptions, mirror: &Mirror) -> String {
    let packages = opts.packages.join(" ");
    let (label, version, suite) = (&opts.root_label, &opts.version, &opts.suite);
    let (scheme, host, directory) = (&mirror.scheme, &mirror.host, &mirror.directory);
    let release = if opts.cosmic {
        "/etc/cosmic-release"
    } else {
        "/etc/cloudstack-release"
    };
    format!(
        "# Debian installer preseed for the CloudStack system VM template {version}.
# Written by `systemvm appliance packer`; served to the installer by Packer's HTTP server.
d-i debian-installer/locale string en_US.UTF-8
d-i keyboard-configuration/xkb-keymap select us
d-i netcfg/choose_interface select auto
d-i netcfg/get_hostname string systemvm
d-i netcfg/get_domain string localdomain
d-i hw-detect/load_firmware boolean false
d-i mirror/country string manual
d-i mirror/protocol string {scheme}
d-i mirror/{scheme}/hostname string {host}
d-i mirror/{scheme}/directory string {directory}
d-i mirror/{scheme}/proxy string
d-i mirror/suite string {suite}
d-i passwd/root-login boolean true
d-i passwd/make-user boolean false
d-i passwd/root-password password password
d-i passwd/root-password-again password password
d-i clock-setup/utc boolean true
d-i time/zone string UTC
d-i clock-setup/ntp boolean false
# One disk, GPT: BIOS boot, ESP, root ({label}) taking the rest; no swap.
d-i partman-auto/disk string /dev/vda
d-i partman-auto/method string regular
d-i partman-partitioning/choose_label select gpt
d-i partman-partitioning/default_label string gpt
d-i partman-auto/expert_recipe string systemvm :: \\
    1 1 1 free $bios_boot{{ }} method{{ biosgrub }} . \\
    256 256 256 fat32 $primary{{ }} method{{ efi }} format{{ }} . \\
    1000 10000 -1 ext4 $primary{{ }} $bootable{{ }} method{{ format }} format{{ }} \\
        use_filesystem{{ }} filesystem{{ ext4 }} mountpoint{{ / }} label{{ {label} }} .
d-i partman-auto/choose_recipe select systemvm
d-i partman-basicfilesystems/no_swap boolean false
d-i partman-efi/non_efi_system boolean true
d-i partman-partitioning/confirm_write_new_label boolean true
d-i partman/choose_partition select finish
d-i partman/confirm boolean true
d-i partman/confirm_nooverwrite boolean true
d-i apt-setup/non-free-firmware boolean false
d-i apt-setup/services-select multiselect security, updates
tasksel tasksel/first multiselect ssh-server
d-i pkgsel/include string {packages}
d-i pkgsel/upgrade select full-upgrade
popularity-contest popularity-contest/participate boolean false
d-i grub-installer/only_debian boolean true
d-i grub-installer/bootdev string /dev/vda
d-i grub-installer/force-efi-extra-removable boolean true
d-i debian-installer/add-kernel-opts string console=tty0 console=ttyS0,115200n8
# Name the root partition like the label (the GPT name netboot bases look for), let Packer
# log in as root, record the version.
d-i preseed/late_command string \\
    in-target sgdisk --change-name=3:{label} /dev/vda; \\
    in-target sh -c 'echo PermitRootLogin yes > /etc/ssh/sshd_config.d/packer.conf'; \\
    in-target sh -c 'echo {version} > {release}'
d-i finish-install/reboot_in_progress note
",
    )
}

/// The Packer template (JSON).
pub fn template(opts: &PackerOptions) -> serde_json::Value {
    let name = format!("systemvmtemplate-{}-{}", opts.version, opts.arch);
    json!({
        "description": format!(
            "CloudStack system VM template {} (Debian {}), the installer way; \
             written by systemvm appliance packer",
            opts.version, opts.suite
        ),
        "variables": {
            "iso_url": opts.iso_url,
            "iso_checksum": opts.iso_checksum,
            "disk_size": format!("{}M", opts.disk_size_mib),
            "headless": "true",
            "accelerator": "kvm"
        },
        "builders": [{
            "type": "qemu",
            "vm_name": format!("{name}.qcow2"),
            "iso_url": "{{user `iso_url`}}",
            "iso_checksum": "{{user `iso_checksum`}}",
            "output_directory": "output",
            "format": "qcow2",
            "disk_size": "{{user `disk_size`}}",
            "disk_interface": "virtio",
            "disk_discard": "unmap",
            "disk_compression": true,
            "net_device": "virtio-net",
            "accelerator": "{{user `accelerator`}}",
            "headless": "{{user `headless`}}",
            "memory": 512,
            "cpus": 1,
            "http_directory": "http",
            "boot_wait": "5s",
            "boot_command": [
                "<esc><wait>",
                "auto preseed/url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg ",
                "debian-installer/locale=en_US.UTF-8 keyboard-configuration/xkb-keymap=us ",
                "netcfg/get_hostname=systemvm netcfg/get_domain=localdomain ",
                "console=ttyS0,115200n8 <enter>"
            ],
            "qemuargs": [["-serial", "file:output-serial.log"]],
            "ssh_username": "root",
            "ssh_password": "password",
            "ssh_timeout": "30m",
            "shutdown_command": "passwd -l root && systemctl poweroff"
        }],
        "provisioners": [{
            "type": "shell",
            "inline": [
                "apt-get -y autoremove --purge",
                "apt-get clean",
                "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin",
                "rm -f /etc/ssh/sshd_config.d/packer.conf /etc/ssh/ssh_host_*",
                "find /var/log -type f -exec truncate -s 0 {} +",
                "truncate -s 0 /etc/machine-id",
                "rm -f /var/lib/dbus/machine-id",
                "fstrim -av || true"
            ]
        }]
    })
}

/// Write the template and the preseed; the paths written.
pub fn write(opts: &PackerOptions) -> Result<Vec<PathBuf>> {
    if !crate::appliance::build::label_ok(&opts.root_label) {
        bail!(
            "--root-label {:?} must be 1 to 16 letters, digits, _ or -",
            opts.root_label
        );
    }
    if opts.disk_size_mib < 1024 {
        bail!(
            "--disk-size {} MiB is too small for a Debian install (1024 at least)",
            opts.disk_size_mib
        );
    }
    let word_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b))
    };
    if !word_ok(&opts.version) || !word_ok(&opts.arch) || !word_ok(&opts.suite) {
        bail!("version, arch and suite must be plain words (letters, digits, . _ + - ~)");
    }
    if let Some(p) = opts.packages.iter().find(|p| !word_ok(p)) {
        bail!("{p:?} is not a Debian package name");
    }
    let url = match &opts.mirror {
        Some(m) => m.clone(),
        None => mirror_from_sources(&apt_sources()).ok_or_else(|| {
            anyhow::anyhow!("no Debian mirror in this machine's apt sources; pass --mirror URL")
        })?,
    };
    let mirror = parse_mirror(&url)
        .ok_or_else(|| anyhow::anyhow!("mirror {url:?} is not an http:// or https:// URL"))?;

    let out = &opts.out_dir;
    let targets = [out.join(TEMPLATE), out.join(PRESEED)];
    if !opts.force {
        if let Some(t) = targets.iter().find(|t| t.exists()) {
            bail!("{} already exists; use --force to overwrite", t.display());
        }
    }
    let created = super::missing_dirs(&out.join("http"));
    let result = (|| -> Result<()> {
        fs::create_dir_all(out.join("http"))
            .map_err(|e| std::io::Error::from(e.kind()))
            .with_context(|| format!("cannot create {}", out.join("http").display()))?;
        let text = serde_json::to_string_pretty(&template(opts))? + "\n";
        crate::atomic::write(&targets[0], text.as_bytes(), 0o644)?;
        // The preseed carries the throwaway build password: not for everyone's eyes.
        crate::atomic::write(&targets[1], preseed(opts, &mirror).as_bytes(), 0o600)?;
        Ok(())
    })();
    if result.is_err() {
        for dir in &created {
            let _ = fs::remove_dir(dir);
        }
    }
    result?;
    Ok(targets.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_from_both_source_formats() {
        let one_line = "# c\ndeb [arch=amd64] http://m.example/debian bookworm main\n".to_string();
        assert_eq!(
            mirror_from_sources(&[one_line]).as_deref(),
            Some("http://m.example/debian")
        );
        let deb822 = "Types: deb\nURIs: http://s.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n".to_string();
        assert_eq!(
            mirror_from_sources(&[deb822]).as_deref(),
            Some("http://m.example/debian")
        );
        let source_only = "deb-src http://src.example/debian bookworm main".to_string();
        assert_eq!(mirror_from_sources(&[source_only]), None);
    }

    #[test]
    fn mirror_urls_split() {
        let m = parse_mirror("http://m.example:8080/debian/").unwrap();
        assert_eq!(
            (m.host.as_str(), m.directory.as_str()),
            ("m.example:8080", "/debian")
        );
        assert!(parse_mirror("ftp://x/y").is_none());
    }
}
