//! Hyper-V (REFERENCE 7), over SMB: the ISO goes to `systemvm/systemvm-<version>.iso` on
//! the secondary storage share (or, for a `[[host]]`, to the local copy older agents keep
//! in `C$\Users\Public\Documents\Hyper-V\Virtual Hard Disks`), and every other
//! `systemvm*.iso` in that folder goes, because the agent needs exactly one match.
//!
//! Up to date means: the file is there with the ISO's size and sha256, and no other
//! `systemvm*.iso` is beside it (compared without regard to case, as Windows globs do).
//! The sha256 is read back over SMB once and cached in a marker beside the ISO
//! (`.systemvm-<version>.iso.sha256`, which does not match the glob), trusted only while the
//! file's size and write time are the ones recorded, so `status` does not read 150 MB
//! back on every run.
//!
//! A new ISO is first uploaded, verified and staged under a dot name (the transport's temp,
//! verify, rename), then the other ISOs are removed, then the staged file is renamed into
//! place. So there is a short window with **zero** ISOs (one SMB call per old ISO plus the
//! rename), never one with two. We chose zero over two because an interrupted run then
//! heals by itself: the management server copies `systemvm-<version>.iso` when it finds
//! none, and our next run finishes the job; two ISOs side by side break every system VM
//! start until someone removes one. When only the content of the same name changes there
//! is no window at all: the rename replaces the file in one step.
//!
//! The staged name is the run's own (writer host and PID in it), so two management servers
//! never stage into one file. Temp and staged files whose writer is gone (the rule of
//! [`crate::transport::upload`]) are removed, and so are markers of ISOs that are gone.

use super::{marker, IsoInfo, Look, Plan, Reason, Step, Strategy};
use crate::inventory::SmbShare;
use crate::profile;
use crate::transport::{is_temp_name, upload, Transport};
use anyhow::Result;

pub struct Hyperv {
    profile: profile::Hyperv,
    /// The folder the ISO goes into, relative to the share's root.
    folder: String,
}

/// Whether the Hyper-V agent's `systemvm*.iso` glob matches a name (case-insensitively).
pub fn agent_matches(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("systemvm") && lower.ends_with(".iso")
}

impl Hyperv {
    pub fn new(profile: profile::Hyperv, share: &SmbShare) -> Hyperv {
        Hyperv {
            profile,
            folder: share.folder.clone(),
        }
    }

    fn path(&self, name: &str) -> String {
        if self.folder.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.folder)
        }
    }
}

/// `.NAME.sha256`: the marker beside `NAME`.
pub fn marker_name(name: &str) -> String {
    format!(".{name}.sha256")
}

/// What the folder holds besides the ISO's own name.
struct Folder {
    /// Other `systemvm*.iso` files the agent would also see.
    others: Vec<String>,
    /// Temp files of writers that are gone, and markers of ISOs no longer there.
    cleanup: Vec<Step>,
}

impl Hyperv {
    fn survey(&self, t: &mut dyn Transport, name: &str) -> Result<Folder> {
        let names = t.list(&self.folder)?;
        // The name itself, in whatever case the share holds it, is ours; the rest go.
        let others = names
            .iter()
            .filter(|n| agent_matches(n) && !n.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        let temps: Vec<String> = names.iter().filter(|n| is_temp_name(n)).cloned().collect();
        let mut cleanup: Vec<Step> = upload::dead_temps(t, &self.folder, &temps)?
            .into_iter()
            .map(|path| Step::Remove { path })
            .collect();
        cleanup.extend(
            names
                .iter()
                .filter(|n| n.starts_with(".systemvm") && n.ends_with(".iso.sha256"))
                .filter(|n| **n != marker_name(name))
                .map(|n| Step::Remove { path: self.path(n) }),
        );
        Ok(Folder { others, cleanup })
    }

    fn remove(&self, names: &[String]) -> Vec<Step> {
        names
            .iter()
            .map(|n| Step::Remove { path: self.path(n) })
            .collect()
    }

    /// Stage, remove the others, rename over, mark: the folder never holds two ISOs.
    fn push_steps(&self, iso: &IsoInfo, name: &str, folder: Folder) -> Vec<Step> {
        let target = self.path(name);
        let staged = self.path(&upload::staged_name(name));
        let mut steps = folder.cleanup;
        steps.push(Step::upload_iso(iso, staged.clone(), 0o644));
        // From here to the rename the folder holds no systemvm*.iso (see the module header).
        steps.extend(self.remove(&folder.others));
        steps.push(Step::Rename {
            from: staged,
            to: target.clone(),
        });
        let marker = self.path(&marker_name(name));
        steps.push(Step::mark(&target, &marker, &iso.sha256));
        steps
    }
}

/// The ISO on the share: absent (`None`), of another size (`Some(None)`), or its sha256.
type Present = Option<Option<String>>;

impl Strategy for Hyperv {
    fn plan(&self, t: &mut dyn Transport, iso: &IsoInfo, look: &Look) -> Result<Plan> {
        let name = look.name_version(iso).file_name(&self.profile.file_name);
        let target = self.path(&name);
        let marker = self.path(&marker_name(&name));
        let folder = self.survey(t, &name)?;
        let (present, mark): (Present, _) = match t.stat(&target)? {
            None => (None, None),
            Some(s) if s.size != iso.size => (Some(None), None),
            Some(s) => {
                let (sha, mark) = marker::cached_sha256(t, &target, &marker, &s, look.verify)?;
                (Some(sha), mark)
            }
        };
        let current = matches!(&present, Some(Some(sha)) if *sha == iso.sha256);
        if current && !look.force {
            return Ok(self.keep(name, folder, mark));
        }
        let reason = match &present {
            _ if current => Reason::Forced,
            None => Reason::Absent(name.clone()),
            Some(None) => Reason::OtherSize(name.clone()),
            Some(Some(_)) => Reason::OtherContent(name.clone()),
        };
        let steps = self.push_steps(iso, &name, folder);
        Ok(Plan::push(look.force, reason, steps))
    }
}

impl Hyperv {
    /// The right ISO is there: up to date, or (others beside it) going from two to one.
    fn keep(&self, name: String, folder: Folder, mark: Option<Step>) -> Plan {
        if folder.others.is_empty() {
            let housekeeping = folder.cleanup.into_iter().chain(mark);
            return Plan::up_to_date(Reason::Matches(name), housekeeping);
        }
        let mut steps = self.remove(&folder.others);
        steps.extend(folder.cleanup.into_iter().chain(mark));
        let others = folder.others;
        Plan::push(false, Reason::Beside { name, others }, steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_glob_is_case_insensitive() {
        assert!(agent_matches("systemvm-4.16.0.0.iso"));
        assert!(agent_matches("SystemVM.ISO"));
        assert!(agent_matches("systemvm.iso"));
        assert!(!agent_matches(".systemvm-4.16.0.0.iso.systemvm-1-2.tmp"));
        assert!(!agent_matches(".systemvm-4.16.0.0.iso.sha256"));
        assert!(!agent_matches("systemvm-4.16.0.0.iso.part"));
        assert!(!agent_matches("my-systemvm.iso"));
    }
}
