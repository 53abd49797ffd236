//! The management server's CloudStack release, where we learnt it, and what it decides: an
//! ISO (up to 4.16) or the three patch files (4.17+), the scripts' digest, and the name of
//! the VMware and Hyper-V secondary-storage file (`systemvm-<MS version>.iso`).

use crate::layout::Layout;
use crate::version::{Digest, Version};
use serde::Serialize;
use std::fmt;

/// Where the release came from, in the order they are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `--cloudstack-version`.
    Flag,
    /// The inventory's `cloudstack_version`.
    Inventory,
    /// The API's `listCapabilities` (`cloudstackversion`).
    Api,
    /// `systemvm startup`'s config (`cloudstack_version`).
    Config,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub version: Version,
    pub source: Source,
}

impl Generation {
    /// 4.17 and later read patch files, not an ISO.
    pub fn takes_patch_files(&self) -> bool {
        Layout::for_version(Some(&self.version)) == Layout::PatchFiles
    }

    pub fn digest(&self) -> Digest {
        self.version.signature_digest()
    }

    /// What the management server reads: `patch files` or `an ISO`.
    pub fn takes(&self) -> &'static str {
        if self.takes_patch_files() {
            "patch files"
        } else {
            "an ISO"
        }
    }

    /// The warning when the ISO or patch files (`patch_files`) of `version` were built for
    /// another release than the management server's; `None` when they match.
    pub fn mismatch(&self, version: &Version, patch_files: bool) -> Option<String> {
        if *version == self.version {
            return None;
        }
        let what = if patch_files {
            "the patch files are"
        } else {
            "the ISO is"
        };
        let mut line = format!(
            "{what} version {version}, the management server is CloudStack {}",
            self.version
        );
        if !patch_files {
            line.push_str(&format!(
                "; VMware and Hyper-V copies are named after the management server ({})",
                self.version.secondary_storage_file_name()
            ));
        }
        Some(line)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Flag => "--cloudstack-version",
            Source::Inventory => "the inventory",
            Source::Api => "listCapabilities",
            Source::Config => "the config",
        })
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CloudStack {} (from {}): takes {}, {} digests",
            self.version,
            self.source,
            self.takes(),
            self.digest().name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(v: &str) -> Generation {
        Generation {
            version: Version::parse(v).unwrap(),
            source: Source::Flag,
        }
    }

    #[test]
    fn releases_decide_iso_or_patch_files_and_digest() {
        assert!(!of("4.16.1.0").takes_patch_files());
        assert!(of("4.17.0.0").takes_patch_files());
        assert_eq!(of("4.21.0.0").digest(), Digest::Md5);
        assert_eq!(of("4.22.0.0").digest(), Digest::Sha512);
        assert_eq!(
            of("4.20.0.0").to_string(),
            "CloudStack 4.20.0.0 (from --cloudstack-version): takes patch files, md5 digests"
        );
    }
}
