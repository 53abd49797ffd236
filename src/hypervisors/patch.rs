//! CloudStack 4.17+ live patching: no ISO; the loose `agent.zip`, `cloud-scripts.tgz` and
//! `patch-sysvms.sh` of a `--layout patch-files` build go to a folder on each target
//! (XenServer: /opt/xensource/packages/resources, KVM and the management server:
//! /usr/share/cloudstack-common/vms). A file is current when its sha512 on the target is the
//! build's; the others are uploaded with the usual temp, verify, rename.

use super::{IsoInfo, Look, Plan, Reason, Step, Strategy};
use crate::inventory::{Access, Target};
use crate::kind::Hypervisor;
use crate::layout::Layout;
use crate::manifest::{Checksums, Manifest};
use crate::transport::Transport;
use crate::version::Version;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One file of a patch set.
#[derive(Debug, Clone)]
pub struct PatchFile {
    pub name: String,
    pub local: PathBuf,
    pub sha256: String,
    pub sha512: String,
    pub mode: u32,
}

/// The output directory of `systemvm build --layout patch-files`, checked.
#[derive(Debug, Clone)]
pub struct PatchSet {
    pub dir: PathBuf,
    pub version: Version,
    pub files: Vec<PatchFile>,
}

impl PatchSet {
    /// Read the manifest and check every file against it.
    pub fn load(dir: &Path) -> Result<PatchSet> {
        let manifest = Manifest::read(&dir.join("manifest.json"))
            .with_context(|| format!("{} is not a patch-files build", dir.display()))?;
        if manifest.layout != Layout::PatchFiles {
            bail!(
                "{} holds a {} build, not patch-files",
                dir.display(),
                manifest.layout
            );
        }
        let mut files = Vec::new();
        for member in &manifest.members {
            let local = dir.join(&member.name);
            let sums = Checksums::of_file(&local)?;
            if sums != member.checksums {
                bail!(
                    "{} does not match {}/manifest.json; rebuild it",
                    local.display(),
                    dir.display()
                );
            }
            files.push(PatchFile {
                name: member.name.clone(),
                local,
                sha256: sums.sha256,
                sha512: sums.sha512,
                mode: u32::from_str_radix(&member.mode, 8).unwrap_or(0o644),
            });
        }
        Ok(PatchSet {
            dir: dir.to_path_buf(),
            version: Version::parse(&manifest.version)?,
            files,
        })
    }

    /// The set as the engine's [`IsoInfo`]: identity is the sha256 of the sha512 list.
    pub fn info(&self) -> IsoInfo {
        let list: String = self
            .files
            .iter()
            .map(|f| format!("{}  {}\n", f.sha512, f.name))
            .collect();
        IsoInfo {
            path: self.dir.clone(),
            version: self.version.clone(),
            sha256: crate::hashing::sha256_bytes(list.as_bytes()),
            size: self
                .files
                .iter()
                .filter_map(|f| std::fs::metadata(&f.local).ok())
                .map(|m| m.len())
                .sum(),
        }
    }
}

/// Where a target keeps CloudStack 4.17+ patch files: an SSH host's profile folder, or the
/// management server's own directory; `None` for targets that take none.
pub fn folder(t: &Target) -> Option<String> {
    match &t.access {
        Access::Ssh(_, profile) => Some(profile.patch_files_dir().to_string()),
        Access::Directory(dir, _) if t.hypervisor == Hypervisor::Management => {
            Some(dir.path.to_string_lossy().into_owned())
        }
        Access::Directory(..) | Access::Smb(..) => None,
    }
}

/// Why a target takes no patch files (CloudStack 4.17+), or `None` when it takes them.
pub fn left_out(t: &Target) -> Option<&'static str> {
    if folder(t).is_some() {
        return None;
    }
    Some(match t.hypervisor {
        Hypervisor::Vmware => {
            "CloudStack 4.17+ reads no ISO from VMware secondary storage; its system VMs \
             get the patch files from the management target"
        }
        Hypervisor::Hyperv => "CloudStack 4.17+ has no patch-file path for Hyper-V",
        _ => "its profile names no patch-file folder",
    })
}

/// Keep the targets that take patch files; a line for each one left out, saying why.
pub fn retain_takers(targets: &mut Vec<Target>) -> Vec<String> {
    let mut left = Vec::new();
    targets.retain(|t| match left_out(t) {
        Some(why) => {
            left.push(format!("{}: left out: {why}", t.name));
            false
        }
        None => true,
    });
    left
}

pub struct PatchFiles {
    pub folder: String,
    pub set: PatchSet,
    /// The management server's own copies: divert each from its package before writing it.
    pub divert: bool,
}

impl Strategy for PatchFiles {
    fn plan(&self, t: &mut dyn Transport, _iso: &IsoInfo, look: &Look) -> Result<Plan> {
        let force = look.force;
        let mut steps = Vec::new();
        let mut stale = Vec::new();
        for file in &self.set.files {
            let remote = format!("{}/{}", self.folder.trim_end_matches('/'), file.name);
            let current = t.sha512(&remote)?;
            if force || current.as_deref() != Some(file.sha512.as_str()) {
                stale.push(file.name.clone());
                if self.divert {
                    steps.extend(super::divert_step(&remote));
                }
                steps.push(Step::Upload {
                    local: file.local.clone(),
                    remote,
                    mode: file.mode,
                    sha256: file.sha256.clone(),
                });
            }
        }
        if steps.is_empty() {
            let version = self.set.version.to_string();
            return Ok(Plan::up_to_date(Reason::PatchFilesMatch(version), []));
        }
        Ok(Plan::push(force, Reason::FilesDiffer(stale), steps))
    }
}
