//! The `Examples:` shown after each command's `--help` (and as EXAMPLES in its man page):
//! the two or three invocations operators run, with the paths a CloudStack install uses.

pub const SYSTEMVM: &str = "\
Examples:
  systemvm doctor
  systemvm status --inventory /etc/systemvm/hosts.toml
  systemvm propagate --iso /usr/share/cloudstack-common/vms/systemvm.iso";

pub const BUILD: &str = "\
Examples:
  systemvm build --payload /srv/systemvm/payload --version 4.16.0.0 \\
      --key /etc/systemvm/id_ed25519.pub -o /srv/systemvm/systemvm.iso
  systemvm build --payload ~/cloudstack --version 4.20.0.0 \\
      --agent-jars-from /usr/share/cloudstack-common/vms -o patch-files
  systemvm build --from /usr/share/cloudstack-common/vms --version 4.20.0.0 \\
      --overlay-scripts hotfix/ -o patch-files";

pub const INSPECT: &str = "\
Examples:
  systemvm inspect /usr/share/cloudstack-common/vms/systemvm.iso";

pub const KEYS: &str = "\
Examples:
  systemvm keys generate -o /etc/systemvm/id_ed25519
  systemvm keys show /etc/systemvm/id_ed25519.pub";

pub const KEYS_GENERATE: &str = "\
Examples:
  systemvm keys generate -o /etc/systemvm/id_ed25519
  systemvm keys generate --type rsa --bits 4096 -o /etc/systemvm/id_rsa";

pub const KEYS_SHOW: &str = "\
Examples:
  systemvm keys show /etc/systemvm/id_ed25519.pub
  systemvm keys show /var/lib/cloudstack/management/.ssh/id_rsa";

pub const INJECT: &str = "\
Examples:
  systemvm inject /usr/share/cloudstack-common/vms/systemvm.iso \\
      --key /etc/systemvm/id_ed25519.pub
  systemvm inject systemvm.iso --key old.pub --key new.pub -o keyed.iso";

pub const STATUS: &str = "\
Examples:
  systemvm status
  systemvm status --inventory /etc/systemvm/hosts.toml --hypervisor kvm
  systemvm status --output-format json";

pub const PROPAGATE: &str = "\
Examples:
  systemvm propagate --dry-run
  systemvm propagate --iso /usr/share/cloudstack-common/vms/systemvm.iso
  systemvm propagate --only kvm1,kvm2 --accept-new";

pub const PACKAGE: &str = "\
Examples:
  systemvm package deb /usr/share/cloudstack-common/vms/systemvm.iso
  systemvm package self -o /srv/apt/incoming/";

pub const PACKAGE_DEB: &str = "\
Examples:
  systemvm package deb /usr/share/cloudstack-common/vms/systemvm.iso
  systemvm package deb systemvm.iso --iso-version 4.16.0.0 -o /srv/apt/incoming/";

pub const PACKAGE_SELF: &str = "\
Examples:
  systemvm package self
  systemvm package self -o /srv/apt/incoming/";

pub const INVENTORY: &str = "\
Examples:
  systemvm inventory from-cloudstack --api-url https://mgmt.example.org:8443/client/api \\
      --api-key-file /etc/systemvm/api.key \\
      --secret-key-file /etc/systemvm/api.secret -o /etc/systemvm/hosts.toml";

pub const INVENTORY_CHECK: &str = "\
Examples:
  systemvm inventory check
  systemvm inventory check /usr/share/doc/systemvm/examples/hosts.toml";

pub const RESTART_SYSTEMVMS: &str = "\
Examples:
  systemvm restart-systemvms --api-url https://mgmt.example.org:8443/client/api \\
      --api-key-file /etc/systemvm/api.key \\
      --secret-key-file /etc/systemvm/api.secret --zone ZONE-ID
  systemvm restart-systemvms --dry-run
  systemvm restart-systemvms --zone ZONE-ID --reboot --no-routers";

pub const PATCH_SYSTEMVMS: &str = "\
Examples:
  systemvm patch-systemvms --dry-run --zone ZONE-ID
  systemvm patch-systemvms --zone ZONE-ID
  systemvm patch-systemvms --yes --forced --no-routers";

pub const VERSION: &str = "\
Examples:
  systemvm version check 4.16.0.0 --min 4.16.0
  systemvm version check 16.4.1 --min 16.3.0";

pub const STARTUP: &str = "\
Examples:
  systemvm startup
  systemvm startup --config /etc/systemvm/config.toml --deadline 600";

pub const DOCTOR: &str = "\
Examples:
  systemvm doctor
  systemvm doctor --config /etc/systemvm/config.toml --no-hosts";

pub const APPLIANCE: &str = "\
Examples:
  systemvm appliance build --version 4.18.0 -o /srv/templates
  systemvm appliance export disk.raw --version 4.18.0 -o /srv/out";

pub const APPLIANCE_BUILD: &str = "\
Examples:
  sudo systemvm appliance build --payload cloudstack-4.20.0.0 -o /srv/templates
  sudo systemvm appliance build --payload systemvm-packer -o /srv/cosmic
  sudo systemvm appliance build --rootfs /srv/templates/rootfs.tar --no-export";

pub const APPLIANCE_EXPORT: &str = "\
Examples:
  systemvm appliance export disk.raw --version 4.18.0 -o /srv/out
  systemvm appliance export disk.raw --version 4.18.0 -o /srv/out \\
      --formats kvm,vmware";

pub const APPLIANCE_SEED: &str = "\
Examples:
  systemvm appliance seed systemvmtemplate-4.18.0-x86_64-kvm.qcow2.bz2 \\
      --secondary /mnt/secondary --hypervisor kvm";

pub const APPLIANCE_PACKER: &str = "\
Examples:
  systemvm appliance packer -o /srv/packer --version 4.18.0
  systemvm appliance packer -o /srv/packer --cosmic";

/// The EXIT STATUS section of every man page.
pub const EXIT_STATUS: &str = "\
0 done (status: every target current).
1 some targets failed, or (status) are stale or unreachable; the others were done.
2 usage error or fatal error (bad flag or value, unreadable inventory or config).
130 interrupted by SIGINT (Ctrl-C) or SIGTERM; our temp files are removed.";

/// The FILES section of every man page: the defaults the commands read.
pub const FILES: &[(&str, &str)] = &[
    (
        crate::inventory::DEFAULT_PATH,
        "The inventory of hosts and secondary storages (--inventory, $SYSTEMVM_INVENTORY).",
    ),
    (
        crate::startup::DEFAULT_CONFIG,
        "The startup and doctor config (--config, $SYSTEMVM_CONFIG).",
    ),
    (
        crate::inventory::DEFAULT_KNOWN_HOSTS,
        "Pinned host keys (--known-hosts, or the inventory's known_hosts).",
    ),
    (
        crate::selfpkg::UNIT_PATH,
        "The systemd unit that runs systemvm startup before the management server.",
    ),
    (
        crate::selfpkg::EXAMPLE_PATH,
        "The commented example config.",
    ),
    (
        crate::selfpkg::EXAMPLE_HOSTS_PATH,
        "The commented example inventory; every key in systemvm-inventory(5).",
    ),
    (
        crate::selfpkg::PAYLOAD_PATH,
        "The bundled payload, build's --payload when ./agent-payload is absent.",
    ),
];
