//! `systemvm status` and `systemvm propagate`

use super::render::{execute, summarise};
use super::targets::TargetArgs;
use crate::cloudstack::restart::Method;
use crate::exit::ExitStatus;
use crate::hypervisors::{Extras, IsoInfo};
use crate::inventory::Access;
use crate::keys::deliver::{Delivery, Trusted};
use crate::printer::Printer;
use crate::propagate::{Mode, Options, Outcome};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// Show, per host, whether its ISO is current; changes nothing
///
/// Exit status: 0 every target current, 1 some stale or unreachable, 2 usage error.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
}

/// Bring every host's ISO up to date
///
/// Each target is inspected, planned (up to date, push or force, with the reason) and
/// updated: upload to a temp name, verify on the host, rename, then markers.
/// Exit status: 0 all done, 1 some targets failed (the rest were done), 2 usage error.
#[derive(Debug, Args)]
pub struct PropagateArgs {
    #[command(flatten)]
    pub targets: TargetArgs,

    /// Print each target's plan and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Push even to targets that are up to date (clears our tags first, never CloudStack's)
    #[arg(long)]
    pub force: bool,

    /// XenServer: remove CloudStack's vmops-version- tags, so that the management server's
    /// next connect re-runs its whole host setup (plugins, scripts, key, ISO): the admin's
    /// force procedure
    #[arg(long)]
    pub reset_cloudstack_setup: bool,

    /// Also deliver this private key where the profile keeps it (0600)
    #[arg(long, value_name = "KEY")]
    pub deliver_key: Option<PathBuf>,

    /// CloudStack's public key, which a delivered key must match from 4.16
    #[arg(long, value_name = "FILE", hide = true,
          default_value_t = format!("{}.pub", crate::keys::deliver::CLOUDSTACK_KEY))]
    pub cloudstack_public_key: String,

    /// VMware: keep only the newest N systemvm-*.iso in the folder
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,

    /// After updating a target, restart the system VMs and routers (CloudStack API)
    #[arg(long, conflicts_with = "patch_systemvms")]
    pub restart_systemvms: bool,

    /// After updating a target, live-patch the system VMs and routers (CloudStack 4.17+
    /// API: patchSystemVm, restartNetwork/restartVPC livepatch=true)
    #[arg(long)]
    pub patch_systemvms: bool,
}

impl StatusArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let (targets, iso, opts) = self.targets.prepare(Mode::Status, printer)?;
        let format = self.targets.output_format;
        let reports = execute(&targets, &iso, &opts, format, printer);
        Ok(summarise(&reports, Mode::Status, format, printer))
    }
}

impl PropagateArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let mode = if self.dry_run {
            Mode::DryRun
        } else {
            Mode::Apply
        };
        let (mut targets, iso, mut opts) = self.targets.prepare(mode, printer)?;
        opts.force = self.force;
        // Held until the run ends: a PEM copy lives as long as this.
        let delivery = match &self.deliver_key {
            Some(key) => Some(self.prepare_delivery(key, &opts, &iso, printer)?),
            None => None,
        };
        opts.extras = Extras {
            private_key: delivery.as_ref().map(|d| d.path().to_path_buf()),
            reset_cloudstack_setup: self.reset_cloudstack_setup,
        };
        if let Some(keep) = self.keep {
            if keep == 0 {
                bail!("--keep must be at least 1");
            }
            for t in &mut targets {
                if let Access::Directory(dir, _) = &mut t.access {
                    dir.keep = Some(keep);
                }
            }
        }
        let after = match (self.restart_systemvms, self.patch_systemvms) {
            (true, _) => Some(Method::StopStart),
            (false, true) => Some(Method::LivePatch { forced: false }),
            (false, false) => None,
        };
        if after.is_some() {
            // Bad API settings stop the run before any host is touched.
            self.targets.api.client()?;
        }
        let format = self.targets.output_format;
        let reports = execute(&targets, &iso, &opts, format, printer);
        let updated = reports.iter().any(|r| r.outcome == Outcome::Updated);
        let result = summarise(&reports, mode, format, printer);
        let Some(method) = after else {
            return Ok(result);
        };
        super::restart::after_propagate(&self.targets, method, result, updated, mode, printer)
    }

    /// `--deliver-key`'s key, checked against what the system VMs trust (CloudStack's key
    /// from 4.16, the ISO's up to 4.15) and in a format the hosts read.
    fn prepare_delivery(
        &self,
        key: &Path,
        opts: &Options,
        iso: &IsoInfo,
        printer: &Printer,
    ) -> Result<Delivery> {
        check_private_key(key)?;
        let version = opts.cloudstack.as_ref().unwrap_or(&iso.version);
        let cloudstack = Path::new(&self.cloudstack_public_key);
        let trusted = Trusted::for_version(version, cloudstack, &iso.path, || {
            Ok(crate::iso::keyarea::keys_of(&iso.path)?)
        })?;
        let delivery = crate::keys::deliver::prepare(key, key, version, &trusted)?;
        if let Some(note) = &delivery.note {
            printer.info(note);
        }
        Ok(delivery)
    }
}

/// `--deliver-key` overwrites the hosts' private key: it must be one, unencrypted, 0600.
fn check_private_key(path: &Path) -> Result<()> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !crate::keys::looks_private(&String::from_utf8_lossy(&text)) {
        bail!(
            "{} is not a private key (a public key?): --deliver-key writes it over each host's private key; give the private half (CloudStack's id_rsa)",
            path.display()
        );
    }
    if let Some(problem) = crate::secret::mode_problem(path) {
        bail!("{problem} first");
    }
    crate::keys::untrusted::public_half(path)?;
    Ok(())
}
