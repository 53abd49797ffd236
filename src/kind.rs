//! What a target is: one of CloudStack's four hypervisors, or the management server's own
//! copy (`/usr/share/cloudstack-common/vms/`). Parsed in any case, so CloudStack's own
//! spellings (`XenServer`, `KVM`, `VMware`, `Hyperv`) are the same names.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Hypervisor {
    Xenserver,
    Kvm,
    Vmware,
    #[value(alias = "hyper-v")]
    Hyperv,
    Management,
}

/// How a kind of target is reached, as the inventory declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A `[[host]]` over SSH.
    Ssh,
    /// A `[[secondary]]` storage mounted on this machine.
    Directory,
    /// A `[[host]]` or `[[secondary]]` over SMB.
    Smb,
}

impl Hypervisor {
    pub const ALL: [Hypervisor; 5] = [
        Hypervisor::Xenserver,
        Hypervisor::Kvm,
        Hypervisor::Vmware,
        Hypervisor::Hyperv,
        Hypervisor::Management,
    ];

    /// The inventory's spelling, and the name of the default profile.
    pub fn as_str(self) -> &'static str {
        match self {
            Hypervisor::Xenserver => "xenserver",
            Hypervisor::Kvm => "kvm",
            Hypervisor::Vmware => "vmware",
            Hypervisor::Hyperv => "hyperv",
            Hypervisor::Management => "management",
        }
    }

    pub fn reach(self) -> Reach {
        match self {
            Hypervisor::Xenserver | Hypervisor::Kvm => Reach::Ssh,
            Hypervisor::Vmware | Hypervisor::Management => Reach::Directory,
            Hypervisor::Hyperv => Reach::Smb,
        }
    }

    /// The kinds reached as `reach` is, joined for a message.
    pub fn list(reach: Reach) -> String {
        let names: Vec<&str> = Hypervisor::ALL
            .iter()
            .filter(|h| h.reach() == reach)
            .map(|h| h.as_str())
            .collect();
        names.join(", ")
    }
}

impl fmt::Display for Hypervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so widths in format strings (aligned rows) apply.
        f.pad(self.as_str())
    }
}

impl FromStr for Hypervisor {
    type Err = String;

    fn from_str(s: &str) -> Result<Hypervisor, String> {
        let lower = s.to_ascii_lowercase();
        let name = if lower == "hyper-v" { "hyperv" } else { &lower };
        Hypervisor::ALL
            .into_iter()
            .find(|h| h.as_str() == name)
            .ok_or_else(|| {
                let all: Vec<&str> = Hypervisor::ALL.iter().map(|h| h.as_str()).collect();
                format!("unknown hypervisor {s:?} (supported: {})", all.join(", "))
            })
    }
}

impl Serialize for Hypervisor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Hypervisor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hypervisor, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudstack_spellings_parse() {
        for (text, kind) in [
            ("XenServer", Hypervisor::Xenserver),
            ("KVM", Hypervisor::Kvm),
            ("VMware", Hypervisor::Vmware),
            ("Hyperv", Hypervisor::Hyperv),
            ("Hyper-V", Hypervisor::Hyperv),
            ("management", Hypervisor::Management),
        ] {
            assert_eq!(text.parse::<Hypervisor>(), Ok(kind), "{text}");
        }
        let err = "vmwre".parse::<Hypervisor>().unwrap_err();
        assert!(err.contains("\"vmwre\"") && err.contains("supported: xenserver"));
    }

    #[test]
    fn serialised_as_the_inventory_spells_it() {
        let json = serde_json::to_string(&Hypervisor::Hyperv).unwrap();
        assert_eq!(json, "\"hyperv\"");
        let back: Hypervisor = serde_json::from_str("\"XenServer\"").unwrap();
        assert_eq!(back, Hypervisor::Xenserver);
    }

    #[test]
    fn reach_lists() {
        assert_eq!(Hypervisor::list(Reach::Ssh), "xenserver, kvm");
        assert_eq!(Hypervisor::list(Reach::Directory), "vmware, management");
    }
}
