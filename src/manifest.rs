//! `systemvm.iso.manifest.json`: what a build produced, written beside the ISO.
//!
//! It records the version and layout, the sha256 and sha512 of the ISO and of every member,
//! and the fingerprints of the keys in the key area. `inject` rewrites it with the new key
//! area; the whole-ISO checksums are cleared then (`null`) rather than recomputed, because
//! injection must not read the whole ISO. `inspect` recomputes them on demand.

use crate::hashing::{self, Algorithm};
use crate::keys::PublicKeyInfo;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    pub size: u64,
    pub sha256: String,
    pub sha512: String,
}

impl Checksums {
    /// Stream `reader` through both hashes.
    pub fn of(mut reader: impl Read) -> std::io::Result<Checksums> {
        let sums = hashing::of_reader(&mut reader, &[Algorithm::Sha256, Algorithm::Sha512])?;
        Ok(Checksums {
            size: sums.size,
            sha256: sums.get(Algorithm::Sha256).to_string(),
            sha512: sums.get(Algorithm::Sha512).to_string(),
        })
    }

    pub fn of_file(path: &Path) -> Result<Checksums> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        Checksums::of(file).with_context(|| format!("cannot read {}", path.display()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// Permission bits as stored (octal string, e.g. "0444").
    pub mode: String,
    #[serde(flatten)]
    pub checksums: Checksums,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The systemvm release that wrote it.
    pub tool: String,
    pub version: String,
    pub layout: crate::layout::Layout,
    pub source_date_epoch: i64,
    /// The ISO itself (absent for the patch-files layout; null after an injection).
    pub iso: Option<Checksums>,
    pub members: Vec<Member>,
    /// Size of the reserved `authorized_keys`, when there is one.
    pub key_area: Option<u64>,
    pub keys: Vec<PublicKeyInfo>,
}

/// `<iso>.manifest.json`
pub fn path_for(iso: &Path) -> PathBuf {
    let mut name = iso.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

impl Manifest {
    /// A manifest for a build by this release of systemvm.
    pub fn new(
        layout: crate::layout::Layout,
        version: &crate::version::Version,
        source_date_epoch: i64,
        members: Vec<Member>,
    ) -> Manifest {
        Manifest {
            format: FORMAT,
            tool: format!("systemvm {}", env!("CARGO_PKG_VERSION")),
            version: version.to_string(),
            layout,
            source_date_epoch,
            iso: None,
            members,
            key_area: None,
            keys: vec![],
        }
    }

    pub fn read(path: &Path) -> Result<Manifest> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Manifest::parse(&bytes, path)
    }

    /// A manifest from its JSON bytes; `origin` names the file in errors.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Manifest> {
        serde_json::from_slice(bytes)
            .with_context(|| format!("{} is not a systemvm manifest", origin.display()))
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        crate::atomic::write(path, text.as_bytes(), 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_vectors() {
        let c = Checksums::of(&b"abc"[..]).unwrap();
        assert_eq!(c.size, 3);
        assert_eq!(
            c.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(c.sha512.starts_with("ddaf35a193617aba"));
    }
}
