//! What a build produces for each CloudStack or Cosmic generation (REFERENCE 1).

use crate::version::Version;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// CloudStack 4.11 to 4.16: agent.zip, cloud-scripts.tgz, authorized_keys
    Cloudstack,
    /// CloudStack up to 4.10: systemvm.zip, cloud-scripts.tgz, authorized_keys
    Legacy,
    /// Cosmic: systemvm.zip, cloud-scripts.tgz
    Cosmic,
    /// CloudStack 4.17+: loose agent.zip, cloud-scripts.tgz, patch-sysvms.sh, no ISO
    PatchFiles,
}

pub const SCRIPTS_NAME: &str = "cloud-scripts.tgz";
pub const PATCH_SCRIPT_NAME: &str = "patch-sysvms.sh";

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Cloudstack => "cloudstack",
            Layout::Legacy => "legacy",
            Layout::Cosmic => "cosmic",
            Layout::PatchFiles => "patch-files",
        }
    }

    /// The agent archive's file name.
    pub fn agent_name(self) -> &'static str {
        match self {
            Layout::Cloudstack | Layout::PatchFiles => "agent.zip",
            Layout::Legacy | Layout::Cosmic => "systemvm.zip",
        }
    }

    /// Whether the build reserves an `authorized_keys` key area.
    pub fn has_key_area(self) -> bool {
        matches!(self, Layout::Cloudstack | Layout::Legacy)
    }

    /// The layout a CloudStack or Cosmic release consumes (REFERENCE 1): up to 4.10 legacy,
    /// 4.11 to 4.16 cloudstack, 4.17 and later patch files, a date version (or none, which
    /// builds the date version) Cosmic.
    pub fn for_version(version: Option<&Version>) -> Layout {
        let Some(version) = version else {
            return Layout::Cosmic;
        };
        match version.major_minor() {
            _ if version.is_date() => Layout::Cosmic,
            (0..=3, _) | (4, 0..=10) => Layout::Legacy,
            (4, 11..=16) => Layout::Cloudstack,
            _ => Layout::PatchFiles,
        }
    }

    /// Whether an explicit layout fits the version being built; an error names both.
    pub fn check_version(self, version: Option<&Version>) -> Result<(), String> {
        let expected = Layout::for_version(version);
        if self == expected {
            return Ok(());
        }
        let shown = version.map_or("the date version".to_string(), |v| v.to_string());
        Err(format!(
            "--layout {self} does not fit version {shown}, which takes --layout {expected}; \
             drop --layout, or give the version of the release you build for"
        ))
    }

    /// Guess the layout of an ISO from its root file names.
    pub fn detect<'a>(names: impl IntoIterator<Item = &'a str> + Clone) -> Option<Layout> {
        let has = |n: &str| names.clone().into_iter().any(|m| m == n);
        match (
            has("agent.zip"),
            has("systemvm.zip"),
            has("authorized_keys"),
        ) {
            (true, _, _) => Some(Layout::Cloudstack),
            (false, true, true) => Some(Layout::Legacy),
            (false, true, false) => Some(Layout::Cosmic),
            _ => None,
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Layout as clap::ValueEnum>::from_str(s, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_generation() {
        let cs = ["agent.zip", "cloud-scripts.tgz", "authorized_keys"];
        assert_eq!(Layout::detect(cs), Some(Layout::Cloudstack));
        let legacy = ["systemvm.zip", "cloud-scripts.tgz", "authorized_keys"];
        assert_eq!(Layout::detect(legacy), Some(Layout::Legacy));
        assert_eq!(
            Layout::detect(["systemvm.zip", "cloud-scripts.tgz"]),
            Some(Layout::Cosmic)
        );
        assert_eq!(Layout::detect(["README"]), None);
    }

    #[test]
    fn each_release_gets_the_layout_it_consumes() {
        let of = |v: &str| Layout::for_version(Some(&Version::parse(v).unwrap()));
        for (version, layout) in [
            ("4.2.1.0", Layout::Legacy),
            ("4.5.0-SNAPSHOT", Layout::Legacy),
            ("4.10.0.0", Layout::Legacy),
            ("4.11.0.0", Layout::Cloudstack),
            ("4.16.1.0", Layout::Cloudstack),
            ("4.17.0.0", Layout::PatchFiles),
            ("4.20.0.0", Layout::PatchFiles),
            ("4.22.0.0", Layout::PatchFiles),
            ("16.4.3", Layout::Cosmic),
            ("26.12.2", Layout::Cosmic),
        ] {
            assert_eq!(of(version), layout, "{version}");
        }
        assert_eq!(Layout::for_version(None), Layout::Cosmic);
        let v = Version::parse("4.16.0.0").unwrap();
        assert!(Layout::PatchFiles.check_version(Some(&v)).is_err());
        assert!(Layout::Cloudstack.check_version(Some(&v)).is_ok());
    }
}
