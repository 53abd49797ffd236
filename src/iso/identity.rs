//! An ISO's identity as propagation sees it: its sha256, size and version, the version taken
//! from a flag, the manifest beside it, or the volume's application id.

use crate::hashing::{self, Algorithm};
use crate::layout::Layout;
use crate::version::Version;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The ISO being propagated.
#[derive(Debug, Clone)]
pub struct IsoInfo {
    pub path: PathBuf,
    pub version: Version,
    pub sha256: String,
    pub size: u64,
}

impl IsoInfo {
    /// Read the ISO's identity: sha256, size and version (flag, manifest, or volume id).
    pub fn from_path(path: &Path, version: Option<&str>) -> Result<IsoInfo> {
        let image = crate::iso::reader::Image::open(path)?;
        let version = match version {
            Some(v) => v.to_string(),
            None => {
                let manifest = crate::manifest::path_for(path);
                let from_manifest = manifest
                    .exists()
                    .then(|| crate::manifest::Manifest::read(&manifest))
                    .transpose()?
                    .map(|m| m.version);
                let from_volume = parse_application_id(&image.volume.application_id).1;
                from_manifest.or(from_volume).with_context(|| {
                    format!(
                        "cannot tell the version of {}; pass --iso-version",
                        path.display()
                    )
                })?
            }
        };
        let sums = hashing::of_file(path, &[Algorithm::Sha256])
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(IsoInfo {
            path: path.to_path_buf(),
            version: Version::parse(&version)?,
            sha256: sums.get(Algorithm::Sha256).to_string(),
            size: sums.size,
        })
    }
}

/// `SYSTEMVM CLOUDSTACK 4.16.0.0` to (layout, version); anything else to nothing.
pub fn parse_application_id(id: &str) -> (Option<Layout>, Option<String>) {
    let mut words = id.split_whitespace();
    if !words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("systemvm"))
    {
        return (None, None);
    }
    let layout = words.next().and_then(|w| w.parse::<Layout>().ok());
    let version = words.next().map(str::to_string);
    (layout, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_id_round_trip() {
        assert_eq!(
            parse_application_id("SYSTEMVM CLOUDSTACK 4.16.0.0"),
            (Some(Layout::Cloudstack), Some("4.16.0.0".into()))
        );
        assert_eq!(
            parse_application_id("SYSTEMVM PATCH-FILES 16.4.3").0,
            Some(Layout::PatchFiles)
        );
        assert_eq!(parse_application_id("GENISOIMAGE ISO 9660"), (None, None));
        assert_eq!(parse_application_id(""), (None, None));
    }
}
