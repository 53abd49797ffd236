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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecondary {
    name: Spanned<String>,
    hypervisor: Spanned<String>,
    path: Spanned<PathBuf>,
    profile: Option<Spanned<String>>,
    zone: Option<String>,
    keep: Option<usize>,
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

/// Which hypervisors take SSH hosts and which take secondary storage directories.
const SSH_KINDS: &[&str] = &["xenserver", "kvm"];
const DIRECTORY_KINDS: &[&str] = &["vmware", "management"];

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
            if !SSH_KINDS.contains(&kind.as_str()) {
                let hint = if DIRECTORY_KINDS.contains(&kind.as_str()) {
                    format!("{kind} takes a [[secondary]] storage, not a [[host]]")
                } else {
                    format!(
                        "unknown hypervisor {kind:?} (supported: {})",
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
            if !DIRECTORY_KINDS.contains(&kind.as_str()) {
                return Err(at(
                    Some(s.hypervisor.span()),
                    format!(
                        "a [[secondary]] storage is for {}, not {kind:?}",
                        DIRECTORY_KINDS.join(", ")
                    ),
                ));
            }
            if !s.path.get_ref().is_absolute() {
                return Err(at(Some(s.path.span()), "path must be absolute".into()));
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
                    path: s.path.get_ref().clone(),
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
            connect_timeout: Duration::from_secs(d.connect_timeout.unwrap_or(10).max(1)),
            transfer_timeout: Duration::from_secs(d.transfer_timeout.unwrap_or(120).max(1)),
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
        assert!(x.iso_path.starts_with("/usr/share/xcp"));
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
