//! `systemvm inspect`: what an ISO holds, read without mounting or extracting.
//!
//! Works on any ISO 9660 image: ours (version and layout come from the volume's application
//! id, keys from the key area) and stock ones made with `mkisofs -r` (layout guessed from
//! the member names, keys read from a plain `authorized_keys`).

use crate::iso::keyarea;
use crate::iso::reader::Image;
use crate::keys::{self, PublicKeyInfo};
use crate::layout::Layout;
use crate::manifest::Checksums;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize)]
pub struct Report {
    pub path: PathBuf,
    pub volume_id: String,
    pub application_id: String,
    pub version: Option<String>,
    pub layout: Option<Layout>,
    #[serde(flatten)]
    pub checksums: Checksums,
    pub members: Vec<MemberReport>,
    /// Size of the reserved key area; `None` for a plain (stock) `authorized_keys` or none.
    pub key_area: Option<u32>,
    pub keys: Vec<PublicKeyInfo>,
}

#[derive(Debug, Serialize)]
pub struct MemberReport {
    pub name: String,
    pub is_dir: bool,
    pub mode: Option<String>,
    #[serde(flatten)]
    pub checksums: Checksums,
}

pub fn inspect(path: &Path) -> Result<Report> {
    let image = Image::open(path)?;
    let mut members = Vec::new();
    for entry in &image.root {
        let checksums = if entry.is_dir {
            Checksums::of(std::io::empty())?
        } else {
            Checksums::of(image.reader(entry)?)
                .with_context(|| format!("cannot read {} in {}", entry.name, path.display()))?
        };
        members.push(MemberReport {
            name: entry.name.clone(),
            is_dir: entry.is_dir,
            mode: entry.mode.map(|m| format!("{m:04o}")),
            checksums,
        });
    }
    let (key_area, found) = keyarea::read_keys(&image)?;
    let keys = found.iter().map(keys::info).collect();
    let (layout, version) =
        crate::iso::identity::parse_application_id(&image.volume.application_id);
    let layout = layout.or_else(|| Layout::detect(image.root.iter().map(|e| e.name.as_str())));
    Ok(Report {
        path: path.to_path_buf(),
        volume_id: image.volume.volume_id.clone(),
        application_id: image.volume.application_id.clone(),
        version,
        layout,
        checksums: Checksums::of_file(path)?,
        members,
        key_area,
        keys,
    })
}

impl Report {
    /// Aligned text for people.
    pub fn human(&self) -> String {
        let mut out = format!(
            "{}: version {}, layout {}\n  volume {:?}, {}\n  sha256 {}\n\n",
            self.path.display(),
            crate::printer::printable(self.version.as_deref().unwrap_or("unknown")),
            self.layout.map(|l| l.name()).unwrap_or("unknown"),
            self.volume_id,
            crate::size::mib(self.checksums.size),
            self.checksums.sha256,
        );
        // Within 80 columns: each member's sha256 on a line of its own below it.
        let width = self
            .members
            .iter()
            .map(|m| crate::printer::printable(&m.name).chars().count())
            .max()
            .unwrap_or(4)
            .clamp(6, 54);
        out.push_str(&format!("{:width$}  mode  {:>12}\n", "member", "size"));
        for m in &self.members {
            out.push_str(&format!(
                "{:width$}  {:4}  {:>12}\n  sha256 {}\n",
                crate::printer::printable(&m.name),
                m.mode.as_deref().unwrap_or("-"),
                crate::size::mib(m.checksums.size),
                m.checksums.sha256
            ));
        }
        out.push('\n');
        match self.key_area {
            Some(size) => out.push_str(&format!(
                "key area: {size} bytes, {} key(s)\n",
                self.keys.len()
            )),
            None if self.members.iter().any(|m| m.name == keyarea::FILE_NAME) => out
                .push_str("authorized_keys has no key area: the first inject remasters this ISO\n"),
            None => out.push_str("no authorized_keys\n"),
        }
        for k in &self.keys {
            out.push_str(&format!(
                "  {}\n",
                crate::printer::printable(&k.ssh_keygen_line())
            ));
        }
        out
    }
}
