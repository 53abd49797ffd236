//! VMware (REFERENCE 5): the ISO goes to `<secondary>/systemvm/systemvm-<version>.iso` on
//! the NFS secondary storage this machine mounts (and, as the `management` kind, to the
//! management server's own directory).
//!
//! Everything goes through the transport ([`crate::transport::local`]): the mount check,
//! the folder's lock that serialises management servers writing one share, the ISO's
//! digest, the temp + verify + rename copy (readers only ever see a whole ISO) and
//! `--keep`'s removals, all through handles of the share's directories.

use super::{Guard, IsoInfo, Look, Plan, Reason, Step, Strategy};
use crate::profile;
use crate::transport::Transport;
use crate::version::Version;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

pub struct Vmware {
    profile: profile::Vmware,
    /// The profile's folder inside the secondary storage's mount point.
    folder: PathBuf,
    keep: Option<usize>,
    /// The management server's own copy: divert it from its package before writing it.
    pub divert: bool,
}

impl Vmware {
    /// `root` is the mounted secondary storage (or the management server's directory).
    pub fn new(profile: profile::Vmware, root: PathBuf, keep: Option<usize>) -> Vmware {
        Vmware {
            divert: false,
            folder: root.join(&profile.folder),
            profile,
            keep,
        }
    }

    fn path_str(&self, name: &str) -> String {
        self.folder.join(name).to_string_lossy().into_owned()
    }

    /// Older `systemvm-*.iso` files beyond the newest `keep` (the new one counts).
    fn surplus(&self, t: &mut dyn Transport, current: &str) -> Result<Vec<String>> {
        let Some(keep) = self.keep else {
            return Ok(vec![]);
        };
        let mut others: Vec<(Version, String)> = t
            .list(&self.folder.to_string_lossy())?
            .into_iter()
            .filter(|n| n != current && n.starts_with("systemvm-") && n.ends_with(".iso"))
            .filter_map(|n| {
                let v = n.strip_prefix("systemvm-")?.strip_suffix(".iso")?;
                Some((Version::parse(v).ok()?, n))
            })
            .collect();
        others.sort();
        let keep_others = keep.saturating_sub(1);
        let cut = others.len().saturating_sub(keep_others);
        Ok(others.into_iter().take(cut).map(|(_, n)| n).collect())
    }
}

impl Strategy for Vmware {
    fn lock(&self, t: &mut dyn Transport) -> Result<Option<Guard>> {
        let timeout = Duration::from_secs(self.profile.lock_timeout_secs);
        Ok(t.lock(&self.folder.to_string_lossy(), timeout)?)
    }

    /// The first look at the share (`stat`) fails when it is not mounted.
    fn plan(&self, t: &mut dyn Transport, iso: &IsoInfo, look: &Look) -> Result<Plan> {
        let force = look.force;
        let name = look.name_version(iso).file_name(&self.profile.file_name);
        let target = self.path_str(&name);
        let reason = match t.stat(&target)? {
            None => Some(Reason::Absent(name.clone())),
            Some(s) if s.size != iso.size => Some(Reason::OtherSize(name.clone())),
            Some(_) => {
                let sha = t.sha256(&target)?;
                if sha.as_deref() != Some(iso.sha256.as_str()) {
                    Some(Reason::OtherContent(name.clone()))
                } else {
                    force.then_some(Reason::Forced)
                }
            }
        };
        let mut steps = Vec::new();
        let divert = self.divert.then(|| super::divert_step(&target)).flatten();
        if reason.is_some() {
            steps.extend(divert.clone());
            steps.push(Step::upload_iso(iso, target, self.profile.iso_mode));
        }
        let surplus = self.surplus(t, &name)?;
        steps.extend(surplus.iter().map(|n| Step::Remove {
            path: self.path_str(n),
        }));
        if steps.is_empty() {
            // Ours already (keyed in place by `startup`, say): divert it all the same.
            return Ok(Plan::up_to_date(Reason::Matches(name), divert));
        }
        let reason = reason.unwrap_or(Reason::Surplus(surplus.len()));
        Ok(Plan::push(force, reason, steps))
    }
}
