//! `systemvm doctor`: what is missing on this machine, what it matters for, and the command
//! that fixes it. Changes nothing.
//!
//! Checks, in order: the external tools each command runs (looked up on PATH, as the commands
//! themselves do, each with its Debian package), the startup config and the inventory (parsed
//! with the same strict parsers the commands use), the key files' modes, and every target:
//! an SSH host gets a real connection with short timeouts (TCP, host key against
//! known_hosts, login; never pinning a key), a directory target must be a writable
//! directory. Hosts are checked concurrently so a dead one costs one timeout, not one each.
//! When the startup unit is installed, each VMware secondary storage path must be among its
//! `ReadWritePaths=` (unit and drop-ins, [`crate::sandbox`]), or `ProtectSystem=strict`
//! keeps the start hook from writing there.

mod targets;

use targets::{host_checks, is_ssh, unit_checks};

use crate::inventory::{self, Credentials, Inventory};
use crate::startup::{Config, KeySource, Payload};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth knowing; nothing fails because of it.
    Warning,
    /// A tool or file a command needs is not there.
    Missing,
    /// There but wrong: a parse error, an unsafe mode, a host that does not answer.
    Failed,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Missing => "missing",
            Status::Failed => "failed",
        }
    }

    pub fn is_problem(self) -> bool {
        matches!(self, Status::Missing | Status::Failed)
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `tool`, `config`, `inventory`, `key`, `host`
    pub kind: &'static str,
    pub name: String,
    pub status: Status,
    /// Which commands need it.
    pub matters_for: String,
    pub detail: String,
    /// The command that fixes it.
    pub fix: Option<String>,
}

/// What the inventory's targets matter for.
const TARGETS: &str = "status, propagate, startup";

impl Check {
    /// A check of `name`: ok, with no detail and no fix until [`Check::with`] says otherwise.
    fn of(kind: &'static str, name: impl std::fmt::Display, matters_for: &str) -> Check {
        Check {
            kind,
            name: name.to_string(),
            status: Status::Ok,
            matters_for: matters_for.into(),
            detail: String::new(),
            fix: None,
        }
    }

    fn with(mut self, status: Status, detail: impl Into<String>, fix: Option<String>) -> Check {
        (self.status, self.detail, self.fix) = (status, detail.into(), fix);
        self
    }
}

/// A missing file is a problem when it was named, and worth a warning when it is a default.
fn absent(given: bool) -> Status {
    if given {
        Status::Missing
    } else {
        Status::Warning
    }
}

/// A tool: the program, its Debian package, what needs it.
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
    pub matters_for: &'static str,
    pub appliance: bool,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        program: "xorriso",
        package: "xorriso",
        matters_for: "build, inject (stock ISOs), startup",
        appliance: false,
    },
    Tool {
        program: "mmdebstrap",
        package: "mmdebstrap",
        matters_for: "appliance build (root file system)",
        appliance: true,
    },
    Tool {
        program: "qemu-img",
        package: "qemu-utils",
        matters_for: "appliance build (qcow2, vhd, vmdk, vhdx exports)",
        appliance: true,
    },
    Tool {
        program: "sfdisk",
        package: "fdisk",
        matters_for: "appliance build (partition table)",
        appliance: true,
    },
    Tool {
        program: "mkfs.ext4",
        package: "e2fsprogs",
        matters_for: "appliance build (root partition)",
        appliance: true,
    },
    Tool {
        program: "mkfs.vfat",
        package: "dosfstools",
        matters_for: "appliance build (EFI system partition)",
        appliance: true,
    },
    Tool {
        program: "mcopy",
        package: "mtools",
        matters_for: "appliance build (EFI system partition)",
        appliance: true,
    },
    Tool {
        program: "grub-mkimage",
        package: "grub-common",
        matters_for: "appliance build (boot loader)",
        appliance: true,
    },
];

/// What to check.
#[derive(Debug, Clone)]
pub struct Request {
    /// The startup config, and whether the user named it (a missing default is a warning).
    pub config: PathBuf,
    pub config_given: bool,
    /// An inventory that overrides the config's.
    pub inventory: Option<PathBuf>,
    pub appliance: bool,
    pub hosts: bool,
    pub connect_timeout: Duration,
    /// Where systemd's unit directories are looked up: `/` but for tests.
    pub systemd_root: PathBuf,
}

pub fn run(req: &Request) -> Vec<Check> {
    let mut checks: Vec<Check> = TOOLS
        .iter()
        .filter(|t| req.appliance || !t.appliance)
        .map(tool)
        .collect();

    let config = config_check(req, &mut checks);
    let (inv_path, inv_given) = match (&req.inventory, &config) {
        (Some(p), _) => (p.clone(), true),
        (None, Some(c)) => (c.inventory.clone(), true),
        (None, None) => (PathBuf::from(inventory::DEFAULT_PATH), false),
    };
    if let Some(c) = &config {
        key_checks(c, &mut checks);
    }
    let inv = inventory_check(&inv_path, inv_given, &mut checks);
    if let Some(inv) = &inv {
        credential_checks(inv, &mut checks);
        unit_checks(&req.systemd_root, inv, &mut checks);
        if req.hosts {
            checks.extend(host_checks(inv, req.connect_timeout));
        }
    }
    checks
}

fn tool(t: &Tool) -> Check {
    let check = Check::of("tool", t.program, t.matters_for);
    match crate::iso::xorriso::find_on_path(t.program) {
        Some(p) => check.with(Status::Ok, p.display().to_string(), None),
        None => check.with(
            Status::Missing,
            "not on PATH",
            Some(format!("apt-get install {}", t.package)),
        ),
    }
}

fn config_check(req: &Request, checks: &mut Vec<Check>) -> Option<Config> {
    let name = req.config.display().to_string();
    let check = |status, detail, fix| config_line(&name, status, detail, fix);
    if !req.config.exists() {
        let fix = Some(copy_example(crate::selfpkg::EXAMPLE_PATH, &req.config));
        checks.push(check(
            absent(req.config_given),
            "not there (only `systemvm startup` needs it)".into(),
            fix,
        ));
        return None;
    }
    match Config::load(&req.config) {
        Ok(c) => {
            config_contents(&c, &name, checks);
            Some(c)
        }
        Err(e) => {
            checks.push(check(
                Status::Failed,
                e.to_string(),
                Some(format!("fix line {} of {name}", e.line)),
            ));
            None
        }
    }
}

/// A check of the config file `name`, which matters for `startup`.
fn config_line(name: &str, status: Status, detail: String, fix: Option<String>) -> Check {
    Check::of("config", name, "startup").with(status, detail, fix)
}

/// What a config that parses names: its payload, its inventory, the management server's
/// directory, each there or reported with its fix.
fn config_contents(c: &Config, name: &str, checks: &mut Vec<Check>) {
    let check = |status, detail, fix| config_line(name, status, detail, fix);
    let (what, path, there, fix) = match &c.payload {
        Payload::Iso(p) => (
            "ISO",
            p,
            p.is_file(),
            "systemvm build -o <path>, or fix `iso` in the config",
        ),
        Payload::PatchFiles(p) => (
            "patch files",
            p,
            p.join("manifest.json").is_file(),
            "systemvm build --layout patch-files -o <dir>, or fix `patch_files` in the config",
        ),
    };
    checks.push(check(
        Status::Ok,
        format!(
            "parses: {what} {}, inventory {}, deadline {} s",
            path.display(),
            c.inventory.display(),
            c.deadline.as_secs()
        ),
        None,
    ));
    if !there {
        let detail = format!("the config's {what}: not there");
        let check = Check::of("iso", path.display(), "startup");
        checks.push(check.with(Status::Missing, detail, Some(fix.into())));
    }
    if !c.management_dir.is_dir() {
        checks.push(check(
            Status::Missing,
            format!(
                "management_dir {}: not a directory (startup updates the management \
                 server's own copy there first)",
                c.management_dir.display()
            ),
            Some("apt-get install cloudstack-common, or fix `management_dir` in the config".into()),
        ));
    }
}

fn key_checks(c: &Config, checks: &mut Vec<Check>) {
    let private = c.private_key();
    let check = |status, detail: String, fix: Option<String>| {
        Check::of("key", private.display(), "startup, propagate --deliver-key")
            .with(status, detail, fix)
    };
    if !private.exists() {
        let (status, detail) = match &c.keys {
            KeySource::Own { .. } => (
                Status::Ok,
                "not there yet; `systemvm startup` generates it".to_string(),
            ),
            KeySource::Import(_) => (
                Status::Warning,
                "CloudStack's key is not there yet (cloudstack-management writes it on its first start)"
                    .to_string(),
            ),
        };
        checks.push(check(status, detail, None));
        return;
    }
    if let Some(problem) = crate::secret::mode_problem(private) {
        checks.push(check(
            Status::Failed,
            problem,
            Some(format!("chmod 600 {}", private.display())),
        ));
        return;
    }
    let public = crate::keys::pub_path(private);
    match crate::keys::read_public_keys(&public) {
        // Never empty: read_public_keys refuses a file without a key.
        Ok(keys) => checks.push(check(
            Status::Ok,
            format!("mode 0600; public key {}", crate::keys::fingerprints(&keys)),
            None,
        )),
        Err(e) => checks.push(check(
            Status::Failed,
            format!("{e:#}"),
            Some(format!(
                "ssh-keygen -y -f {} > {}",
                private.display(),
                public.display()
            )),
        )),
    }
}

/// `cp EXAMPLE TARGET`, or `cp EXAMPLE DIR/` when the names match: short enough to fit a
/// line, so it can be copied whole.
fn copy_example(example: &str, target: &Path) -> String {
    let same = Path::new(example).file_name() == target.file_name();
    match target
        .parent()
        .filter(|p| same && !p.as_os_str().is_empty())
    {
        Some(dir) => format!("cp {example} {}/", dir.display()),
        None => format!("cp {example} {}", target.display()),
    }
}

fn inventory_check(path: &Path, given: bool, checks: &mut Vec<Check>) -> Option<Inventory> {
    let check = |status, detail: String, fix: Option<String>| {
        Check::of("inventory", path.display(), TARGETS).with(status, detail, fix)
    };
    if !path.exists() {
        checks.push(check(
            absent(given),
            "not there".into(),
            Some(format!(
                "{} (see man 5 systemvm-inventory)",
                copy_example(crate::selfpkg::EXAMPLE_HOSTS_PATH, path)
            )),
        ));
        return None;
    }
    match Inventory::load(path) {
        Ok(inv) => {
            checks.push(check(
                Status::Ok,
                format!("parses: {} target(s)", inv.targets.len()),
                None,
            ));
            Some(inv)
        }
        Err(e) => {
            checks.push(check(Status::Failed, format!("{e:#}"), None));
            None
        }
    }
}

/// Identity and password files: there, and readable by nobody else.
fn credential_checks(inv: &Inventory, checks: &mut Vec<Check>) {
    let mut seen = std::collections::BTreeSet::new();
    for t in &inv.targets {
        let Some(credentials) = t.access.credentials() else {
            continue;
        };
        let (path, what) = match credentials {
            Credentials::Identity(p) => (p, "SSH identity"),
            Credentials::PasswordFile(p) => (p, "password file"),
            Credentials::PasswordEnv(_) => continue,
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        let (status, detail, fix) = if !path.exists() {
            (Status::Missing, format!("{what}: not there"), None)
        } else if let Some(problem) = crate::secret::mode_problem(path) {
            (
                Status::Failed,
                format!("{what}: {problem}"),
                Some(format!("chmod 600 {}", path.display())),
            )
        } else {
            (Status::Ok, format!("{what}: mode 0600"), None)
        };
        checks.push(Check::of("key", path.display(), TARGETS).with(status, detail, fix));
    }
    if !inv.known_hosts.exists() && inv.targets.iter().any(is_ssh) {
        let fix = "check the hosts' keys, then pin them: systemvm propagate --accept-new";
        let detail = "no known_hosts: every host key would be unknown";
        let check = Check::of("known_hosts", inv.known_hosts.display(), TARGETS);
        checks.push(check.with(Status::Missing, detail, Some(fix.into())));
    }
}
