//! KVM hosts (REFERENCE 6), over SSH.
//!
//! The ISO goes where the agent reads it: `systemvm.iso.path` in `agent.properties` when
//! set, else the profile's path. Up to date means the file's sha256 matches; the sha256 is
//! cached in a marker beside the ISO, trusted only while the file's size and mtime are the
//! ones recorded, so `status` does not hash 150 MB on every host every time.
//!
//! The agent reads the path when it starts and the file on each system VM start, so it is
//! restarted only when the ISO was absent before the push (up to 4.16 it would not pick the
//! file up otherwise). A restart-pending file beside the ISO is written before the restart
//! and removed after it succeeded: a failed restart is retried on the next run.

use super::{marker, Extras, IsoInfo, Look, Plan, Reason, Step, Strategy};
use crate::profile;
use crate::transport::Transport;
use anyhow::{bail, Result};

pub struct Kvm {
    pub profile: profile::Kvm,
    pub extras: Extras,
}

/// The property that moves the ISO.
pub const ISO_PATH_PROPERTY: &str = "systemvm.iso.path";

impl Kvm {
    /// Where the agent reads the ISO.
    fn iso_path(&self, t: &mut dyn Transport) -> Result<String> {
        let Some(bytes) = t.read(&self.profile.agent_properties, 1 << 20)? else {
            return Ok(self.profile.iso_path.clone());
        };
        let text = String::from_utf8_lossy(&bytes);
        match crate::properties::property(&text, ISO_PATH_PROPERTY) {
            Some(path) if path.starts_with('/') => Ok(path),
            Some(path) => bail!(
                "{}: {} sets {ISO_PATH_PROPERTY}={path:?}, which is not an absolute path",
                t.host(),
                self.profile.agent_properties
            ),
            None => Ok(self.profile.iso_path.clone()),
        }
    }
}

/// While an agent restart is owed for `/dir/name`: `/dir/.name.restart-pending`
pub fn restart_pending_path(file: &str) -> String {
    marker::beside(file, "restart-pending")
}

impl Strategy for Kvm {
    fn plan(&self, t: &mut dyn Transport, iso: &IsoInfo, look: &Look) -> Result<Plan> {
        let force = look.force;
        let path = self.iso_path(t)?;
        let marker = marker::path_for(&path);
        let pending = restart_pending_path(&path);
        let restart_pending = t.stat(&pending)?.is_some();
        let (current, mark) = match t.stat(&path)? {
            Some(stat) => marker::cached_sha256(t, &path, &marker, &stat, look.verify)?,
            None => (None, None),
        };
        let key_steps = self.key_steps(t)?;
        let iso_current = current.as_deref() == Some(iso.sha256.as_str());
        let reason = match &current {
            _ if iso_current && force => Reason::Forced,
            _ if iso_current && restart_pending => Reason::RestartPending,
            _ if iso_current && key_steps.is_empty() => {
                return Ok(Plan::up_to_date(Reason::Matches(path), mark));
            }
            _ if iso_current => Reason::KeyPairDiffers,
            None => Reason::Absent(path.clone()),
            Some(_) => Reason::OtherContent(path.clone()),
        };
        let push = !iso_current || force;
        let restart = restart_pending || current.is_none();
        let mut steps = Vec::new();
        if push {
            steps.push(Step::upload_iso(iso, path.clone(), self.profile.iso_mode));
        }
        if restart {
            // The pending file goes only once the restart succeeded.
            steps.push(Step::mark(&path, &pending, &iso.sha256));
            let argv = ["systemctl", "restart", &self.profile.service].map(String::from);
            steps.push(Step::Run { argv: argv.into() });
            steps.push(Step::Remove { path: pending });
        }
        if push || restart {
            steps.push(Step::mark(&path, &marker, &iso.sha256));
        }
        steps.extend(key_steps);
        Ok(Plan::push(force, reason, steps))
    }
}

impl Kvm {
    /// The deliveries of the key pair, when one is to be delivered and differs.
    fn key_steps(&self, t: &mut dyn Transport) -> Result<Vec<Step>> {
        let Some(key) = &self.extras.private_key else {
            return Ok(Vec::new());
        };
        let public = std::path::PathBuf::from(format!("{}.pub", key.display()));
        let private = super::deliver(t, key, &self.profile.private_key_path, 0o600)?;
        let public = super::deliver(t, &public, &self.profile.public_key_path, 0o644)?;
        Ok(private.into_iter().chain(public).collect())
    }
}
