//! The inventory (`hosts.toml`): which hosts and secondary storages get the ISO, and how to
//! reach them. Parsing is strict: unknown keys, wrong types, duplicate or unsafe names and
//! missing credentials are errors that name the file, the line and the key. Secrets are
//! never in the file itself: a password comes from a file or an environment variable and is
//! read only when a host is contacted.

use crate::profile::{self, Profile};
use anyhow::Result;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub const DEFAULT_PATH: &str = "/etc/systemvm/hosts.toml";
pub const DEFAULT_KNOWN_HOSTS: &str = "/etc/systemvm/known_hosts";

#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct InventoryError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    user: Option<Spanned<String>>,
    port: Option<u16>,
    identity: Option<PathBuf>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    known_hosts: Option<PathBuf>,
    connect_timeout: Option<u64>,
    transfer_timeout: Option<u64>,
    retries: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    address: Spanned<String>,
    hypervisor: Spanned<String>,
    port: Option<u16>,
    profile: Option<Spanned<String>>,
    zone: Option<String>,
    cluster: Option<String>,
    user: Option<String>,
    identity: Option<PathBuf>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    /// Hyper-V (SMB) hosts only.
    domain: Option<String>,
    /// Hyper-V (SMB) hosts only.
    encrypt: Option<crate::transport::smb::Encrypt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecondary {
    name: Spanned<String>,
    hypervisor: Spanned<String>,
    /// A mounted directory (vmware, management).
    path: Option<Spanned<PathBuf>>,
    profile: Option<Spanned<String>>,
    zone: Option<String>,
    keep: Option<usize>,
    /// An SMB share, `//server/share` (hyperv), and how to log in to it.
    share: Option<Spanned<String>>,
    port: Option<u16>,
    folder: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    domain: Option<String>,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
    encrypt: Option<crate::transport::smb::Encrypt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    host: Vec<RawHost>,
    #[serde(default)]
    secondary: Vec<RawSecondary>,
    #[serde(default)]
    profile: BTreeMap<String, toml::Table>,
}

/// How to log in to a host. Secrets are read at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Identity(PathBuf),
    PasswordFile(PathBuf),
    PasswordEnv(String),
}

#[derive(Debug, Clone)]
pub enum Endpoint {
    Ssh {
        address: String,
        port: u16,
        user: String,
        credentials: Credentials,
    },
    /// A mounted secondary storage.
    Directory { path: PathBuf, keep: Option<usize> },
    /// A folder on an SMB share (Hyper-V), reached with `smbclient`.
    Smb {
        address: String,
        port: u16,
        share: String,
        /// The folder the ISO goes into, relative to the share's root, `/`-separated.
        folder: String,
        user: String,
        domain: Option<String>,
        /// A password file or environment variable (never an SSH identity).
        credentials: Credentials,
        /// Signing is always required; this says whether encryption is too.
        encrypt: crate::transport::smb::Encrypt,
    },
}

/// One place the ISO must reach.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub hypervisor: String,
    pub zone: Option<String>,
    pub cluster: Option<String>,
    pub profile: Profile,
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    pub targets: Vec<Target>,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
    pub transfer_timeout: Duration,
    pub retries: u32,
}

/// Which hypervisors take SSH hosts and which take secondary storage directories; Hyper-V
/// takes both, over SMB.
const SSH_KINDS: &[&str] = &["xenserver", "kvm"];
const DIRECTORY_KINDS: &[&str] = &["vmware", "management"];
const SMB_KIND: &str = "hyperv";

/// The default SMB port.
pub const SMB_PORT: u16 = 445;

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory> {
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
            path: path.to_path_buf(),
            line: 0,
            message: format!("cannot read the inventory: {e}"),
        })?;
        Ok(Inventory::parse(&text, path)?)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
        let at = |span: Option<Range<usize>>, message: String| InventoryError {
            path: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)).unwrap_or(0),
            message,
        };
        let raw: RawInventory =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
        let d = &raw.defaults;
        if let Some(user) = &d.user {
            check_user(user.get_ref()).map_err(|m| at(Some(user.span()), m))?;
        }
        let mut names = HashSet::new();
        let mut targets = Vec::new();
        for h in &raw.host {
            check_name(&h.name).map_err(|m| at(Some(h.name.span()), m))?;
            if !names.insert(h.name.get_ref().clone()) {
                return Err(at(
                    Some(h.name.span()),
                    format!("duplicate name {:?}", h.name.get_ref()),
                ));
            }
            check_address(&h.address).map_err(|m| at(Some(h.address.span()), m))?;
            let kind = h.hypervisor.get_ref();
            if kind == SMB_KIND {
                let profile = load_profile(h.profile.as_ref(), kind, &raw.profile)
                    .map_err(|m| at(Some(h.name.span()), m))?;
                let endpoint = smb_host(h, &profile).map_err(|m| at(Some(h.name.span()), m))?;
                targets.push(Target {
                    name: h.name.get_ref().clone(),
                    hypervisor: kind.clone(),
                    zone: h.zone.clone(),
                    cluster: h.cluster.clone(),
                    profile,
                    endpoint,
                });
                continue;
            }
            if h.domain.is_some() || h.encrypt.is_some() {
                let key = if h.domain.is_some() {
                    "domain"
                } else {
                    "encrypt"
                };
                return Err(at(
                    Some(h.name.span()),
                    format!("`{key}` is for hyperv (SMB) hosts only"),
                ));
            }
            if !SSH_KINDS.contains(&kind.as_str()) {
                let hint = if DIRECTORY_KINDS.contains(&kind.as_str()) {
                    format!("{kind} takes a [[secondary]] storage, not a [[host]]")
                } else {
                    format!(
                        "unknown hypervisor {kind:?} (supported: {}, {SMB_KIND})",
                        SSH_KINDS.join(", ")
                    )
                };
                return Err(at(Some(h.hypervisor.span()), hint));
            }
            if let Some(user) = &h.user {
                check_user(user).map_err(|m| at(Some(h.name.span()), m))?;
            }
            let profile = load_profile(h.profile.as_ref(), kind, &raw.profile)
                .map_err(|m| at(Some(h.name.span()), m))?;
            let credentials = credentials(h, d).map_err(|m| at(Some(h.name.span()), m))?;
            targets.push(Target {
                name: h.name.get_ref().clone(),
                hypervisor: kind.clone(),
                zone: h.zone.clone(),
                cluster: h.cluster.clone(),
                profile,
                endpoint: Endpoint::Ssh {
                    address: h.address.get_ref().clone(),
                    port: h.port.or(d.port).unwrap_or(22),
                    user: h
                        .user
                        .clone()
                        .or(d.user.as_ref().map(|u| u.get_ref().clone()))
                        .unwrap_or_else(|| "root".into()),
                    credentials,
                },
            });
        }
        for s in &raw.secondary {
            check_name(&s.name).map_err(|m| at(Some(s.name.span()), m))?;
            if !names.insert(s.name.get_ref().clone()) {
                return Err(at(
                    Some(s.name.span()),
                    format!("duplicate name {:?}", s.name.get_ref()),
                ));
            }
            let kind = s.hypervisor.get_ref();
            if kind == SMB_KIND {
                let profile = load_profile(s.profile.as_ref(), kind, &raw.profile)
                    .map_err(|m| at(Some(s.name.span()), m))?;
                let endpoint = smb_secondary(s, &profile).map_err(|(span, m)| at(span, m))?;
                targets.push(Target {
                    name: s.name.get_ref().clone(),
                    hypervisor: kind.clone(),
                    zone: s.zone.clone(),
                    cluster: None,
                    profile,
                    endpoint,
                });
                continue;
            }
            if !DIRECTORY_KINDS.contains(&kind.as_str()) {
                return Err(at(
                    Some(s.hypervisor.span()),
                    format!(
                        "a [[secondary]] storage is for {}, {SMB_KIND}, not {kind:?}",
                        DIRECTORY_KINDS.join(", ")
                    ),
                ));
            }
            let smb_only = [
                ("share", s.share.is_some()),
                ("port", s.port.is_some()),
                ("folder", s.folder.is_some()),
                ("user", s.user.is_some()),
                ("domain", s.domain.is_some()),
                ("password_file", s.password_file.is_some()),
                ("password_env", s.password_env.is_some()),
                ("encrypt", s.encrypt.is_some()),
            ];
            if let Some((key, _)) = smb_only.iter().find(|(_, set)| *set) {
                return Err(at(
                    Some(s.name.span()),
                    format!("`{key}` is for {SMB_KIND} (SMB) storage, not {kind}"),
                ));
            }
            let Some(path) = &s.path else {
                return Err(at(
                    Some(s.name.span()),
                    format!("a {kind} storage needs `path` (the mounted directory)"),
                ));
            };
            if !path.get_ref().is_absolute() {
                return Err(at(Some(path.span()), "path must be absolute".into()));
            }
            let profile = load_profile(s.profile.as_ref(), kind, &raw.profile)
                .map_err(|m| at(Some(s.name.span()), m))?;
            targets.push(Target {
                name: s.name.get_ref().clone(),
                hypervisor: kind.clone(),
                zone: s.zone.clone(),
                cluster: None,
                profile,
                endpoint: Endpoint::Directory {
                    path: path.get_ref().clone(),
                    keep: s.keep,
                },
            });
        }
        Ok(Inventory {
            path: path.to_path_buf(),
            targets,
            known_hosts: d
                .known_hosts
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KNOWN_HOSTS)),
            connect_timeout: crate::propagate::timeout_secs(d.connect_timeout.unwrap_or(10)),
            transfer_timeout: crate::propagate::timeout_secs(d.transfer_timeout.unwrap_or(120)),
            retries: d.retries.unwrap_or(2),
        })
    }
}

fn load_profile(
    chosen: Option<&Spanned<String>>,
    kind: &str,
    overrides: &BTreeMap<String, toml::Table>,
) -> Result<Profile, String> {
    let name = chosen.map(|s| s.get_ref().as_str()).unwrap_or(kind);
    let profile = profile::load(name, overrides.get(name)).map_err(|e| e.to_string())?;
    if profile.kind() != kind {
        return Err(format!(
            "profile {name:?} is for {}, not {kind}",
            profile.kind()
        ));
    }
    Ok(profile)
}

/// A Hyper-V host's local copy, through its admin share (the profile's `host_share`).
fn smb_host(h: &RawHost, profile: &Profile) -> Result<Endpoint, String> {
    let Profile::Hyperv(p) = profile else {
        return Err("a hyperv host needs a hyperv profile".into());
    };
    if h.identity.is_some() {
        return Err(
            "hyperv hosts log in over SMB with a password (password_file or \
                    password_env), not an SSH identity"
                .into(),
        );
    }
    let user = h
        .user
        .clone()
        .ok_or("a hyperv host needs `user` (an administrator of the host)")?;
    if user.is_empty() || user.contains(['\n', '\r']) {
        return Err("`user` must be one non-empty line".into());
    }
    let credentials = smb_password(h.password_file.as_ref(), h.password_env.as_ref())?;
    let folder = normalise_folder(&p.host_folder)?;
    crate::transport::smb::check_path(&p.host_share)?;
    Ok(Endpoint::Smb {
        address: h.address.get_ref().clone(),
        port: h.port.unwrap_or(SMB_PORT),
        share: p.host_share.clone(),
        folder,
        user,
        domain: h.domain.clone(),
        credentials,
        encrypt: h.encrypt.unwrap_or_default(),
    })
}

/// Hyper-V secondary storage: `share = "//server/share"`, the ISO in `folder/<profile folder>`.
fn smb_secondary(
    s: &RawSecondary,
    profile: &Profile,
) -> Result<Endpoint, (Option<Range<usize>>, String)> {
    let whole = Some(s.name.span());
    let Profile::Hyperv(p) = profile else {
        return Err((whole, "a hyperv storage needs a hyperv profile".into()));
    };
    if let Some(path) = &s.path {
        return Err((
            Some(path.span()),
            "a hyperv storage is an SMB share: give `share = \"//server/share\"`, not `path`"
                .into(),
        ));
    }
    if s.keep.is_some() {
        return Err((
            whole,
            "`keep` is for vmware: Hyper-V's agent needs exactly one systemvm*.iso".into(),
        ));
    }
    let Some(share) = &s.share else {
        return Err((
            whole,
            "a hyperv storage needs `share = \"//server/share\"`".into(),
        ));
    };
    let (address, share_name) =
        parse_share(share.get_ref()).map_err(|m| (Some(share.span()), m))?;
    let Some(user) = &s.user else {
        return Err((whole, "a hyperv storage needs `user`".into()));
    };
    if user.get_ref().is_empty() || user.get_ref().contains(['\n', '\r']) {
        return Err((
            Some(user.span()),
            "`user` must be one non-empty line".into(),
        ));
    }
    let credentials = smb_password(s.password_file.as_ref(), s.password_env.as_ref())
        .map_err(|m| (whole.clone(), m))?;
    let below = match &s.folder {
        Some(f) => normalise_folder(f.get_ref()).map_err(|m| (Some(f.span()), m))?,
        None => String::new(),
    };
    let own = normalise_folder(&p.folder).map_err(|m| (whole.clone(), m))?;
    let folder = [below, own]
        .into_iter()
        .filter(|f| !f.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    Ok(Endpoint::Smb {
        address,
        port: s.port.unwrap_or(SMB_PORT),
        share: share_name,
        folder,
        user: user.get_ref().clone(),
        domain: s.domain.clone(),
        credentials,
        encrypt: s.encrypt.unwrap_or_default(),
    })
}

/// `//server/share` (or `\\server\share`) to its server and share name.
fn parse_share(text: &str) -> Result<(String, String), String> {
    let t = text.replace('\\', "/");
    let rest = t
        .strip_prefix("//")
        .ok_or_else(|| format!("share {text:?} must look like //server/share"))?;
    let (server, share) = rest
        .split_once('/')
        .ok_or_else(|| format!("share {text:?} must look like //server/share"))?;
    let share = share.trim_end_matches('/');
    if share.is_empty() || share.contains('/') {
        return Err(format!(
            "share {text:?} must look like //server/share (put sub-folders in `folder`)"
        ));
    }
    let ok_server = !server.is_empty()
        && server.len() <= 253
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]%".contains(&b));
    if !ok_server {
        return Err(format!("{server:?} is not a host name or IP address"));
    }
    crate::transport::smb::check_path(share)?;
    Ok((server.to_string(), share.to_string()))
}

/// A folder below a share: `\` or `/` separated, relative, no `..`.
fn normalise_folder(text: &str) -> Result<String, String> {
    crate::transport::smb::check_path(text)?;
    let parts: Vec<&str> = text
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!("folder {text:?} must not contain `..`"));
    }
    Ok(parts.join("/"))
}

/// SMB passwords: exactly one of a file or an environment variable, on the entry itself.
fn smb_password(file: Option<&PathBuf>, env: Option<&String>) -> Result<Credentials, String> {
    match (file, env) {
        (Some(f), None) => Ok(Credentials::PasswordFile(f.clone())),
        (None, Some(e)) => Ok(Credentials::PasswordEnv(e.clone())),
        (Some(_), Some(_)) => Err("give only one of password_file, password_env".into()),
        (None, None) => Err(
            "no credentials: set password_file or password_env (SMB entries do not use \
             [defaults])"
                .into(),
        ),
    }
}

fn credentials(h: &RawHost, d: &RawDefaults) -> Result<Credentials, String> {
    let own = [
        h.identity.clone().map(Credentials::Identity),
        h.password_file.clone().map(Credentials::PasswordFile),
        h.password_env.clone().map(Credentials::PasswordEnv),
    ];
    let own: Vec<Credentials> = own.into_iter().flatten().collect();
    if own.len() > 1 {
        return Err("give only one of identity, password_file, password_env".into());
    }
    if let Some(c) = own.into_iter().next() {
        return Ok(c);
    }
    let defaults = [
        d.identity.clone().map(Credentials::Identity),
        d.password_file.clone().map(Credentials::PasswordFile),
        d.password_env.clone().map(Credentials::PasswordEnv),
    ];
    defaults.into_iter().flatten().next().ok_or_else(|| {
        "no credentials: set identity, password_file or password_env here or in [defaults]".into()
    })
}

/// Names become file names and log keys: letters, digits, `.`, `_`, `-`.
fn check_name(name: &Spanned<String>) -> Result<(), String> {
    let n = name.get_ref();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !n.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {n:?} is not allowed: use letters, digits, '.', '_' and '-' (at most 64)"
        ))
    }
}

/// A host name or IP address literal: no blanks, quotes or shell metacharacters, and no
/// leading `-` that a tool could take for an option.
fn check_address(address: &Spanned<String>) -> Result<(), String> {
    let a = address.get_ref();
    let ok = !a.is_empty()
        && !a.starts_with('-')
        && a.len() <= 253
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]%".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("address {a:?} is not a host name or IP address"))
    }
}

/// A login name as POSIX tools accept it (plus `@` for directory accounts).
fn check_user(u: &str) -> Result<(), String> {
    let ok = !u.is_empty()
        && u.len() <= 64
        && !u.starts_with('-')
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user {u:?} is not a login name: use letters, digits, '.', '_', '-' and '@'"
        ))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
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
            Duration::from_secs(crate::propagate::MAX_TIMEOUT_SECS)
        );
    }

    #[test]
    fn a_good_inventory_resolves() {
        let inv = parse(GOOD).unwrap();
        assert_eq!(inv.targets.len(), 3);
        let Endpoint::Ssh {
            port,
            user,
            credentials,
            ..
        } = &inv.targets[1].endpoint
        else {
            panic!("not ssh")
        };
        assert_eq!((*port, user.as_str()), (2222, "root"));
        assert_eq!(
            credentials,
            &Credentials::PasswordEnv("XEN_PASSWORD".into())
        );
        let Profile::Xenserver(x) = &inv.targets[1].profile else {
            panic!()
        };
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

        let dup = GOOD.replace("xcp-02", "xen-01");
        assert_eq!(error(&dup), "hosts.toml:11: duplicate name \"xen-01\"");

        let bad_type = GOOD.replace("port = 2222", "port = \"ssh\"");
        assert!(
            error(&bad_type).starts_with("hosts.toml:15:"),
            "{}",
            error(&bad_type)
        );

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
        let Endpoint::Smb {
            address,
            port,
            share,
            folder,
            credentials,
            ..
        } = &inv.targets[1].endpoint
        else {
            panic!("not smb")
        };
        assert_eq!(
            (address.as_str(), *port, share.as_str(), folder.as_str()),
            ("10.1.0.5", 445, "secondary", "zone1/systemvm")
        );
        assert_eq!(
            credentials,
            &Credentials::PasswordEnv("SMB_PASSWORD".into())
        );
        let Endpoint::Smb {
            port,
            share,
            folder,
            ..
        } = &inv.targets[0].endpoint
        else {
            panic!("not smb")
        };
        assert_eq!(
            (*port, share.as_str(), folder.as_str()),
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
