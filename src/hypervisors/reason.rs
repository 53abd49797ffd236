//! Why a plan does what it does, as a value: strategies decide on it, and it is written out
//! only for people and the JSON `reason` field.

use serde::{Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Up to date: the file (or files) named match.
    Matches(String),
    /// Up to date: XenServer's host carries our sha256 tag for this version.
    Tagged(String),
    Absent(String),
    OtherSize(String),
    OtherContent(String),
    Forced,
    /// The ISO is current; the agent restart after the last push did not succeed.
    RestartPending,
    /// The ISO is current; the key pair on the host differs from ours.
    KeyPairDiffers,
    /// The ISO is current; the private key on the host differs from the one delivered.
    PrivateKeyDiffers,
    /// The ISO is current; `--reset-cloudstack-setup` removes CloudStack's tags.
    ResetCloudstackSetup,
    /// XenServer: no content tag of ours on the host.
    NoTag,
    /// XenServer: our content tag names another sha256.
    TagDiffers,
    /// XenServer: tagged, but the file is missing or of another size.
    TaggedFileWrong(String),
    /// VMware: this many older ISOs beyond `--keep`.
    Surplus(usize),
    /// Hyper-V: the ISO matches, but other `systemvm*.iso` files are beside it.
    Beside {
        name: String,
        others: Vec<String>,
    },
    /// Up to date: every patch file of this version matches.
    PatchFilesMatch(String),
    /// Patch files whose sha512 differs.
    FilesDiffer(Vec<String>),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Matches(what) => write!(f, "{what} matches"),
            Reason::Tagged(version) => write!(f, "version {version} with sha256 tag"),
            Reason::Absent(what) => write!(f, "{what} is absent"),
            Reason::OtherSize(what) => write!(f, "{what} has another size"),
            Reason::OtherContent(what) => write!(f, "{what} has other content (sha256 differs)"),
            Reason::Forced => f.write_str("forced"),
            Reason::RestartPending => {
                f.write_str("ISO up to date; the agent restart after the last push did not succeed")
            }
            Reason::KeyPairDiffers => f.write_str("ISO up to date; the key pair differs"),
            Reason::PrivateKeyDiffers => f.write_str("ISO up to date; the private key differs"),
            Reason::ResetCloudstackSetup => {
                f.write_str("ISO up to date; resetting CloudStack's host setup")
            }
            Reason::NoTag => f.write_str("no sha256 tag of ours"),
            Reason::TagDiffers => f.write_str("different content (sha256 differs)"),
            Reason::TaggedFileWrong(path) => {
                write!(f, "tagged, but {path} is missing or of another size")
            }
            Reason::Surplus(n) => write!(f, "{n} older ISO(s) beyond --keep"),
            Reason::Beside { name, others } => {
                write!(f, "{name} matches, but {} is beside it", others.join(", "))
            }
            Reason::PatchFilesMatch(version) => write!(f, "patch files {version} match"),
            Reason::FilesDiffer(files) => write!(f, "sha512 differs: {}", files.join(", ")),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
