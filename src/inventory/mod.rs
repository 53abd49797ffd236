//! The inventory (`hosts.toml`): which hosts and secondary storages get the ISO, and how to
//! reach them. Parsing is strict: unknown keys, wrong types, duplicate or unsafe names and
//! missing credentials are errors that name the file, the line and the key. Secrets are
//! never in the file itself: a password comes from a file or an environment variable and is
//! read only when a host is contacted.

mod checks;
pub mod identity;
mod raw;
mod resolve;
mod smb;

use crate::kind::Hypervisor;
use crate::profile;
use crate::tomlfile::{self, FileError, TomlFile};
use crate::version::Version;
use anyhow::Result;
use raw::RawInventory;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use checks::address_chars;

pub const DEFAULT_PATH: &str = "/etc/systemvm/hosts.toml";
pub const DEFAULT_KNOWN_HOSTS: &str = "/etc/systemvm/known_hosts";

/// An error in the inventory: its file, line and message.
pub type InventoryError = FileError;

/// How to log in to a host. Secrets are read at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Identity(PathBuf),
    PasswordFile(PathBuf),
    PasswordEnv(String),
}

/// A host reached over SSH (XenServer, KVM).
#[derive(Debug, Clone)]
pub struct SshHost {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub credentials: Credentials,
}

/// A mounted secondary storage (VMware), or the management server's own directory.
#[derive(Debug, Clone)]
pub struct Directory {
    pub path: PathBuf,
    pub keep: Option<usize>,
    /// `path` must be a mount point (VMware's secondary storage, unless the entry says
    /// `require_mount = false`): an unmounted share's empty directory is refused.
    pub require_mount: bool,
}

/// A folder on an SMB share (Hyper-V: a host's admin share, or secondary storage).
#[derive(Debug, Clone)]
pub struct SmbShare {
    pub address: String,
    pub port: u16,
    pub share: String,
    /// The folder the ISO goes into, relative to the share's root, `/`-separated.
    pub folder: String,
    pub user: String,
    pub domain: Option<String>,
    /// A password file or environment variable (never an SSH identity).
    pub credentials: Credentials,
    /// Signing is always required; this says whether encryption is too.
    pub encrypt: crate::transport::smb::Encrypt,
}

/// The profiles of hosts reached over SSH.
#[derive(Debug, Clone)]
pub enum SshProfile {
    Xenserver(profile::XenServer),
    Kvm(profile::Kvm),
}

impl SshProfile {
    /// Where CloudStack 4.17+ patch files go on the host.
    pub fn patch_files_dir(&self) -> &str {
        match self {
            SshProfile::Xenserver(p) => &p.patch_files_dir,
            SshProfile::Kvm(p) => &p.patch_files_dir,
        }
    }
}

/// How a target is reached, paired with the profile for that way, so that no strategy can
/// be handed a profile and an endpoint that do not fit: an SSH host with a XenServer or KVM
/// profile, a directory with VMware's folder settings (VMware's and the management
/// server's), an SMB share with Hyper-V's.
#[derive(Debug, Clone)]
pub enum Access {
    Ssh(SshHost, SshProfile),
    Directory(Directory, profile::Vmware),
    Smb(SmbShare, profile::Hyperv),
}

impl Access {
    /// The directory of a directory target.
    pub fn directory(&self) -> Option<&Directory> {
        match self {
            Access::Directory(dir, _) => Some(dir),
            Access::Ssh(..) | Access::Smb(..) => None,
        }
    }

    /// How an SSH or SMB target logs in; a directory needs no login.
    pub fn credentials(&self) -> Option<&Credentials> {
        match self {
            Access::Ssh(host, _) => Some(&host.credentials),
            Access::Smb(share, _) => Some(&share.credentials),
            Access::Directory(..) => None,
        }
    }
}

/// One place the ISO must reach.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub hypervisor: Hypervisor,
    pub place: Place,
    pub zone: Option<String>,
    pub cluster: Option<String>,
    pub access: Access,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    pub targets: Vec<Target>,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
    pub transfer_timeout: Duration,
    pub retries: u32,
    /// The management server's release (`[defaults] cloudstack_version`).
    pub cloudstack_version: Option<Version>,
    /// CloudStack's database, whose lock guards secondary-storage writes.
    pub cloudstack_db: Option<DbSettings>,
}

/// `[cloudstack_db]`: where CloudStack's `db.properties` is, and what it cannot give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSettings {
    pub properties: PathBuf,
    /// The plain password, when `db.properties` holds it encrypted.
    pub password_file: Option<PathBuf>,
    pub lock_timeout: Duration,
}

/// Whether a target is a host or a zone's secondary storage (which CloudStack also writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Host,
    Secondary,
}

/// The default SMB port.
pub const SMB_PORT: u16 = 445;

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory> {
        let text = tomlfile::read(path, "the inventory")?;
        Ok(Inventory::parse(&text, path)?)
    }

    /// Parse the file as written, resolve each entry to a target, and check the names are
    /// unique.
    pub fn parse(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
        let file = TomlFile { text, path };
        let raw: RawInventory = file.parse()?;
        if let Some(user) = &raw.defaults.user {
            checks::check_user(user.get_ref()).map_err(|m| file.at(Some(user.span()), m))?;
        }
        let hosts = raw.host.iter().map(|h| (&h.name, resolve::host(h, &raw)));
        let storages = raw
            .secondary
            .iter()
            .map(|s| (&s.name, resolve::secondary(s, &raw)));
        let mut names = HashSet::new();
        let mut targets = Vec::new();
        for (name, target) in hosts.chain(storages) {
            let target = target.map_err(|(span, m)| file.at(span, m))?;
            if !names.insert(target.name.clone()) {
                let message = format!("duplicate name {:?}", name.get_ref());
                return Err(file.at(Some(name.span()), message));
            }
            targets.push(target);
        }
        let d = &raw.defaults;
        let cloudstack_version = d
            .cloudstack_version
            .as_ref()
            .map(|v| {
                Version::parse(v.get_ref()).map_err(|e| file.at(Some(v.span()), e.to_string()))
            })
            .transpose()?;
        let retries = d.retries.as_ref().map_or(Ok(2), |n| retries(n, &file))?;
        let cloudstack_db = raw.cloudstack_db.as_ref().map(|db| DbSettings {
            properties: db
                .properties
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::dblock::DB_PROPERTIES)),
            password_file: db.password_file.clone(),
            lock_timeout: crate::timeout::secs(db.lock_timeout.unwrap_or(600)),
        });
        Ok(Inventory {
            cloudstack_version,
            cloudstack_db,
            path: path.to_path_buf(),
            targets,
            known_hosts: d
                .known_hosts
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KNOWN_HOSTS)),
            connect_timeout: crate::timeout::secs(d.connect_timeout.unwrap_or(10)),
            transfer_timeout: crate::timeout::secs(d.transfer_timeout.unwrap_or(120)),
            retries,
        })
    }
}

/// `retries`, at most [`crate::timeout::MAX_RETRIES`].
fn retries(n: &toml::Spanned<u32>, file: &TomlFile) -> Result<u32, InventoryError> {
    let max = crate::timeout::MAX_RETRIES;
    match *n.get_ref() {
        n if n <= max => Ok(n),
        _ => Err(file.at(Some(n.span()), format!("retries must be 0 to {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse(text, Path::new("hosts.toml"))
    }

    const GOOD: &str = r#"
[defaults]
identity = "/etc/systemvm/id_ed25519"

[[host]]
name = "xen-01"
address = "10.1.0.11"
hypervisor = "xenserver"

[[host]]
name = "xcp-02"
address = "10.1.0.12"
hypervisor = "xenserver"
profile = "xcp"
port = 2222
password_env = "XEN_PASSWORD"

[[secondary]]
name = "nfs-zone1"
hypervisor = "vmware"
path = "/mnt/secondary/zone1"
"#;

    #[test]
    fn time_outs_absent_or_zero_are_finite() {
        let inv = parse(GOOD).unwrap();
        assert_eq!(inv.connect_timeout, Duration::from_secs(10));
        assert_eq!(inv.transfer_timeout, Duration::from_secs(120));
        assert_eq!(inv.retries, 2);
        let zero = GOOD.replace(
            "[defaults]\n",
            "[defaults]\nconnect_timeout = 0\ntransfer_timeout = 0\n",
        );
        let inv = parse(&zero).unwrap();
        assert_eq!(inv.connect_timeout, Duration::from_secs(1));
        assert_eq!(inv.transfer_timeout, Duration::from_secs(1));
        let huge = GOOD.replace(
            "[defaults]\n",
            &format!("[defaults]\ntransfer_timeout = {}\n", i64::MAX),
        );
        let inv = parse(&huge).unwrap();
        assert_eq!(
            inv.transfer_timeout,
            Duration::from_secs(crate::timeout::MAX_SECS)
        );
    }

    #[test]
    fn cloudstack_spellings_of_kinds_are_accepted() {
        let inv = parse(&GOOD.replace("\"xenserver\"", "\"XenServer\"")).unwrap();
        assert_eq!(inv.targets[0].hypervisor, Hypervisor::Xenserver);
    }

    #[test]
    fn a_good_inventory_resolves() {
        let inv = parse(GOOD).unwrap();
        assert_eq!(inv.targets.len(), 3);
        let Access::Ssh(ssh, SshProfile::Xenserver(x)) = &inv.targets[1].access else {
            panic!("not a xenserver host over ssh")
        };
        assert_eq!((ssh.port, ssh.user.as_str()), (2222, "root"));
        assert_eq!(
            ssh.credentials,
            Credentials::PasswordEnv("XEN_PASSWORD".into())
        );
        // Real XCP-ng serves the ISO where XenServer does (only the old XCP OSS differs).
        assert!(x.iso_path.starts_with("/opt/xensource/packages/iso"));
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let typo = GOOD.replace("address = \"10.1.0.11\"", "adress = \"10.1.0.11\"");
        let e = error(&typo);
        assert!(e.starts_with("hosts.toml:"), "{e}");
        assert!(e.contains("adress"), "{e}");

        let many = GOOD.replace("[defaults]\n", "[defaults]\nretries = 1000\n");
        assert_eq!(error(&many), "hosts.toml:3: retries must be 0 to 20");

        let dup = GOOD.replace("xcp-02", "xen-01");
        assert_eq!(error(&dup), "hosts.toml:11: duplicate name \"xen-01\"");

        let bad_type = GOOD.replace("port = 2222", "port = \"ssh\"");
        let e = error(&bad_type);
        assert!(e.starts_with("hosts.toml:15:"), "{e}");

        let hostile = GOOD.replace("xen-01", "; rm -rf /");
        assert!(error(&hostile).contains("is not allowed"));

        let unknown = GOOD.replace(
            "hypervisor = \"xenserver\"\n\n[[host]]",
            "hypervisor = \"ovm\"\n\n[[host]]",
        );
        assert!(error(&unknown).contains("unknown hypervisor \"ovm\""));
    }

    #[test]
    fn hyperv_shares_and_hosts_resolve() {
        let inv = parse(
            r#"
[defaults]
identity = "/etc/systemvm/id_ed25519"

[[secondary]]
name = "hv-zone1"
hypervisor = "hyperv"
share = '\\10.1.0.5\secondary'
folder = '\zone1\'
user = "cloudstack"
domain = "CORP"
password_env = "SMB_PASSWORD"

[[host]]
name = "hv-01"
address = "10.1.0.31"
hypervisor = "hyperv"
port = 4445
user = "Administrator"
password_file = "/etc/systemvm/hv.password"
"#,
        )
        .unwrap();
        let smb = |t: &Target| match &t.access {
            Access::Smb(s, _) => s.clone(),
            _ => panic!("not smb"),
        };
        let s = smb(&inv.targets[1]);
        assert_eq!(
            (
                s.address.as_str(),
                s.port,
                s.share.as_str(),
                s.folder.as_str()
            ),
            ("10.1.0.5", 445, "secondary", "zone1/systemvm")
        );
        assert_eq!(
            s.credentials,
            Credentials::PasswordEnv("SMB_PASSWORD".into())
        );
        let s = smb(&inv.targets[0]);
        assert_eq!(
            (s.port, s.share.as_str(), s.folder.as_str()),
            (
                4445,
                "C$",
                "Users/Public/Documents/Hyper-V/Virtual Hard Disks"
            )
        );
    }

    #[test]
    fn credentials_are_required_and_exclusive() {
        let none = GOOD.replace("identity = \"/etc/systemvm/id_ed25519\"", "");
        assert!(error(&none).contains("no credentials"));
        let both = GOOD.replace(
            "password_env = \"XEN_PASSWORD\"",
            "password_env = \"X\"\nidentity = \"/k\"",
        );
        assert!(error(&both).contains("only one of"));
    }
}
