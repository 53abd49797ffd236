//! CloudStack's system VM package sets, one per generation, as data
//! (`appliance/packages/cloudstack-<release>.toml`, embedded at build time). Each set groups
//! Debian packages by purpose, lists the packages Debian lacks (they come from
//! `--extra-deb FILE`), the names of CloudStack's script that are deliberately not installed
//! (with the reason), and the services the template enables and disables. Cosmic's set
//! (`cosmic.toml`) has the same form and stands apart: it goes with no CloudStack version.

use crate::appliance::packages::valid_name;
use crate::version::Version;
use serde::Deserialize;

/// The sets that ship with the program: (file name, text).
pub const SETS: &[(&str, &str)] = &[
    (
        "cloudstack-4.16.toml",
        include_str!("../../appliance/packages/cloudstack-4.16.toml"),
    ),
    (
        "cloudstack-4.20.toml",
        include_str!("../../appliance/packages/cloudstack-4.20.toml"),
    ),
];

/// Cosmic's set, for `--flavor cosmic` with a systemvm-packer checkout.
pub const COSMIC: (&str, &str) = (
    "cosmic.toml",
    include_str!("../../appliance/packages/cosmic.toml"),
);

/// What a group of packages is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// Init, networking, growpart, logging, sshd: what every system VM boots with.
    Boot,
    /// The operator's and the scripts' everyday tools.
    Tools,
    /// The virtual router's daemons (dnsmasq, haproxy, keepalived, strongSwan, ...).
    Router,
    /// Java and NFS for the secondary storage VM and the console proxy.
    StorageAndConsole,
    /// The four hypervisors' guest agents, started per hypervisor.
    GuestAgents,
}

/// Packages for one purpose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub purpose: Purpose,
    pub packages: Vec<String>,
}

/// A package Debian lacks: the operator supplies it with `--extra-deb FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extra {
    pub name: String,
    pub purpose: Purpose,
    pub why: String,
}

/// A name of CloudStack's script that the set leaves out on purpose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Omit {
    pub name: String,
    pub why: String,
    /// The package installed in its place, if any.
    pub instead: Option<String>,
}

/// A package of another distribution's template and the Debian package doing its job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Equivalent {
    pub name: String,
    pub debian: String,
}

/// Units (`systemctl` names) the template enables and disables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    pub enable: Vec<String>,
    pub disable: Vec<String>,
}

/// One generation's package set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSet {
    /// The CloudStack release it is for, major.minor (`4.20`), or `cosmic`.
    pub release: String,
    /// The Debian suite that release's template is built on.
    pub suite: String,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
    #[serde(rename = "extra", default)]
    pub extras: Vec<Extra>,
    #[serde(rename = "omit", default)]
    pub omitted: Vec<Omit>,
    /// Cosmic's CentOS names that differ from Debian's.
    #[serde(rename = "equivalent", default)]
    pub equivalents: Vec<Equivalent>,
    pub services: Services,
}

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: the {purpose:?} group names no package")]
    EmptyGroup { origin: String, purpose: Purpose },
    #[error("{origin}: {name:?} is not a Debian package name")]
    BadName { origin: String, name: String },
    #[error("{origin}: {name} stands for {debian}, which the set does not install")]
    Unlisted {
        origin: String,
        name: String,
        debian: String,
    },
}

impl PackageSet {
    /// Parse and check a set; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PackageSet, SetError> {
        let origin = origin.to_string();
        let set: PackageSet = toml::from_str(text).map_err(|e| SetError::Parse {
            origin: origin.clone(),
            message: e.message().to_string(),
        })?;
        if let Some(group) = set.groups.iter().find(|g| g.packages.is_empty()) {
            let purpose = group.purpose;
            return Err(SetError::EmptyGroup { origin, purpose });
        }
        let packages = set.packages();
        if let Some(name) = packages.iter().find(|n| !valid_name(n)).cloned() {
            return Err(SetError::BadName { origin, name });
        }
        if let Some(e) = set
            .equivalents
            .iter()
            .find(|e| !packages.contains(&e.debian))
        {
            let (name, debian) = (e.name.clone(), e.debian.clone());
            return Err(SetError::Unlisted {
                origin,
                name,
                debian,
            });
        }
        Ok(set)
    }

    /// Every package of every group, in order, each once.
    pub fn packages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in self.groups.iter().flat_map(|g| &g.packages) {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// The group for `purpose`, if the set has one.
    pub fn group(&self, purpose: Purpose) -> Option<&Group> {
        self.groups.iter().find(|g| g.purpose == purpose)
    }
}

/// Every shipped set, parsed (they are checked by the tests, so an error is a build bug).
pub fn all() -> Result<Vec<PackageSet>, SetError> {
    SETS.iter()
        .map(|(name, text)| PackageSet::parse(text, name))
        .collect()
}

/// Cosmic's set, parsed (checked by the tests, so an error is a build bug).
pub fn cosmic() -> Result<PackageSet, SetError> {
    PackageSet::parse(COSMIC.1, COSMIC.0)
}

/// The set for a CloudStack version (same major.minor), if one ships.
pub fn for_version(version: &Version) -> Result<Option<PackageSet>, SetError> {
    let release = release_of(version);
    Ok(all()?.into_iter().find(|s| s.release == release))
}

/// The releases that have a set, for messages (`4.16, 4.20`).
pub fn releases() -> String {
    all()
        .map(|sets| {
            sets.iter()
                .map(|s| s.release.clone())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `4.20.0.0` to `4.20`.
pub fn release_of(version: &Version) -> String {
    let (major, minor) = version.major_minor();
    format!("{major}.{minor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sets_parse_with_every_group() {
        let sets = all().unwrap();
        assert_eq!(releases(), "4.16, 4.20");
        let cosmic = cosmic().unwrap();
        assert!(cosmic.packages().iter().any(|p| p == "qemu-guest-agent"));
        assert!(cosmic.services.enable.iter().any(|s| s == "tmp.mount"));
        for set in sets.iter().chain([&cosmic]) {
            for purpose in [
                Purpose::Boot,
                Purpose::Tools,
                Purpose::Router,
                Purpose::StorageAndConsole,
                Purpose::GuestAgents,
            ] {
                assert!(set.group(purpose).is_some(), "{} {purpose:?}", set.release);
            }
        }
        for set in &sets {
            assert!(set.packages().iter().any(|p| p == "cloud-guest-utils"));
            assert!(set.extras.iter().any(|e| e.name == "vhd-util"));
            assert!(set
                .services
                .enable
                .iter()
                .any(|s| s == "cloud-early-config"));
        }
        let v420 = for_version(&Version::parse("4.20.0.0").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(v420.suite, "bookworm");
        assert!(v420
            .packages()
            .iter()
            .any(|p| p == "openjdk-17-jre-headless"));
        assert!(for_version(&Version::parse("4.18.1.0").unwrap())
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_sets_are_refused() {
        let base =
            "release = \"4.20\"\nsuite = \"bookworm\"\n[services]\nenable = []\ndisable = []\n";
        let empty = format!("{base}[[group]]\npurpose = \"boot\"\npackages = []\n");
        let err = PackageSet::parse(&empty, "x.toml").unwrap_err().to_string();
        assert_eq!(err, "x.toml: the Boot group names no package");
        let bad = format!("{base}[[group]]\npurpose = \"dessert\"\npackages = [\"udev\"]\n");
        assert!(PackageSet::parse(&bad, "x.toml").is_err());
        let name = format!("{base}[[group]]\npurpose = \"boot\"\npackages = [\"Bad_Name\"]\n");
        assert!(PackageSet::parse(&name, "x.toml").is_err());
        let unlisted = format!(
            "{base}[[group]]\npurpose = \"boot\"\npackages = [\"udev\"]\n\
             [[equivalent]]\nname = \"ntp\"\ndebian = \"chrony\"\n"
        );
        let err = PackageSet::parse(&unlisted, "x.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "x.toml: ntp stands for chrony, which the set does not install"
        );
    }
}
