//! Hypervisor profiles: paths, modes, tag formats and names per hypervisor, from
//! `hypervisors/*.toml` embedded at build time. An inventory may override any key with a
//! `[profile.<name>]` table; unknown keys are errors, so a typo cannot silently fall back to
//! a default.

use crate::kind::Hypervisor;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

const BUILTIN: &[(&str, &str)] = &[
    ("xenserver", include_str!("../hypervisors/xenserver.toml")),
    ("xcp", include_str!("../hypervisors/xcp.toml")),
    ("xcpng83", include_str!("../hypervisors/xcpng83.toml")),
    (
        "xenserver84",
        include_str!("../hypervisors/xenserver84.toml"),
    ),
    ("xcp-oss", include_str!("../hypervisors/xcp-oss.toml")),
    ("vmware", include_str!("../hypervisors/vmware.toml")),
    ("kvm", include_str!("../hypervisors/kvm.toml")),
    ("cosmic-kvm", include_str!("../hypervisors/cosmic-kvm.toml")),
    ("management", include_str!("../hypervisors/management.toml")),
    ("hyperv", include_str!("../hypervisors/hyperv.toml")),
];

/// Names of the built-in profiles.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XenServer {
    pub iso_path: String,
    pub iso_mode: u32,
    pub resource_class: String,
    pub content_tag_prefix: String,
    pub tools_sr_names: Vec<String>,
    pub stale_files: Vec<String>,
    pub private_key_path: String,
    pub patch_files_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vmware {
    pub folder: String,
    pub file_name: String,
    pub iso_mode: u32,
    pub lock_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kvm {
    pub agent_properties: String,
    pub iso_path: String,
    pub iso_mode: u32,
    pub service: String,
    pub private_key_path: String,
    pub public_key_path: String,
    pub patch_files_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperv {
    pub folder: String,
    pub file_name: String,
    pub host_share: String,
    pub host_folder: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Profile {
    Xenserver(XenServer),
    Vmware(Vmware),
    Kvm(Kvm),
    /// The management server's local copy; the same settings as VMware's folder.
    Management(Vmware),
    Hyperv(Hyperv),
}

impl Profile {
    pub fn kind(&self) -> Hypervisor {
        match self {
            Profile::Xenserver(_) => Hypervisor::Xenserver,
            Profile::Vmware(_) => Hypervisor::Vmware,
            Profile::Kvm(_) => Hypervisor::Kvm,
            Profile::Management(_) => Hypervisor::Management,
            Profile::Hyperv(_) => Hypervisor::Hyperv,
        }
    }
}

/// The profile `name`, with `overrides` laid over the built-in values.
pub fn load(name: &str, overrides: Option<&toml::Table>) -> Result<Profile> {
    let text = BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            anyhow!(
                "unknown profile {name:?} (built in: {})",
                builtin_names().join(", ")
            )
        })?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("built-in profile {name} is not valid TOML"))?;
    if let Some(overrides) = overrides {
        for (key, value) in overrides {
            if key == "kind" {
                bail!("profile {name}: `kind` cannot be overridden");
            }
            table.insert(key.clone(), value.clone());
        }
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| anyhow!("profile {name}: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for name in builtin_names() {
            load(name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn overrides_apply_and_typos_fail() {
        let mut o = toml::Table::new();
        o.insert("iso_path".into(), "/srv/iso/systemvm.iso".into());
        let Profile::Xenserver(x) = load("xenserver", Some(&o)).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(x.iso_path, "/srv/iso/systemvm.iso");
        let mut typo = toml::Table::new();
        typo.insert("iso_pth".into(), "/x".into());
        let err = load("xenserver", Some(&typo)).unwrap_err().to_string();
        assert!(err.contains("iso_pth"), "{err}");
    }
}
