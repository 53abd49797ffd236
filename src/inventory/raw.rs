//! The inventory as written: serde types that refuse unknown keys and keep each value's span.

use crate::kind::Hypervisor;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) user: Option<Spanned<String>>,
    pub(super) port: Option<u16>,
    pub(super) identity: Option<PathBuf>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) password_env: Option<String>,
    pub(super) known_hosts: Option<PathBuf>,
    pub(super) cloudstack_version: Option<Spanned<String>>,
    pub(super) connect_timeout: Option<u64>,
    pub(super) transfer_timeout: Option<u64>,
    pub(super) retries: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    pub(super) name: Spanned<String>,
    pub(super) address: Spanned<String>,
    pub(super) hypervisor: Spanned<Hypervisor>,
    pub(super) port: Option<u16>,
    pub(super) profile: Option<Spanned<String>>,
    pub(super) zone: Option<String>,
    pub(super) cluster: Option<String>,
    pub(super) user: Option<String>,
    pub(super) identity: Option<PathBuf>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) password_env: Option<String>,
    /// Hyper-V (SMB) hosts only.
    pub(super) domain: Option<String>,
    /// Hyper-V (SMB) hosts only.
    pub(super) encrypt: Option<crate::transport::smb::Encrypt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecondary {
    pub(super) name: Spanned<String>,
    pub(super) hypervisor: Spanned<Hypervisor>,
    /// A mounted directory (vmware, management).
    pub(super) path: Option<Spanned<PathBuf>>,
    pub(super) profile: Option<Spanned<String>>,
    pub(super) zone: Option<String>,
    pub(super) keep: Option<usize>,
    /// A vmware `path` must be a mount point unless this is false.
    pub(super) require_mount: Option<bool>,
    /// An SMB share, `//server/share` (hyperv), and how to log in to it.
    pub(super) share: Option<Spanned<String>>,
    pub(super) port: Option<u16>,
    pub(super) folder: Option<Spanned<String>>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) domain: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) password_env: Option<String>,
    pub(super) encrypt: Option<crate::transport::smb::Encrypt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInventory {
    #[serde(default)]
    pub(super) defaults: RawDefaults,
    #[serde(default)]
    pub(super) host: Vec<RawHost>,
    #[serde(default)]
    pub(super) secondary: Vec<RawSecondary>,
    #[serde(default)]
    pub(super) profile: BTreeMap<String, toml::Table>,
    pub(super) cloudstack_db: Option<RawDb>,
}

/// CloudStack's database, for its `prepare.systemvm` lock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDb {
    pub(super) properties: Option<PathBuf>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) lock_timeout: Option<u64>,
}
