//! `systemvm status` and `systemvm propagate`

use super::render::{execute, summarise};
use super::targets::TargetArgs;
use crate::cloudstack::restart::Method;
use crate::exit::ExitStatus;
use crate::hypervisors::Extras;
use crate::inventory::Endpoint;
use crate::printer::Printer;
use crate::propagate::{Mode, Outcome};
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
        let (_, targets, iso, opts) = self.targets.prepare(Mode::Status, printer)?;
        let reports = execute(&targets, &iso, &opts, self.targets.output_format, printer);
        Ok(summarise(
            &reports,
            Mode::Status,
            self.targets.output_format,
            printer,
        ))
    }
}

impl PropagateArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let mode = if self.dry_run {
            Mode::DryRun
        } else {
            Mode::Apply
        };
        let (_, mut targets, iso, mut opts) = self.targets.prepare(mode, printer)?;
        opts.force = self.force;
        opts.extras = Extras {
            private_key: None,
            reset_cloudstack_setup: self.reset_cloudstack_setup,
        };
        if let Some(key) = &self.deliver_key {
            check_private_key(key)?;
            opts.extras.private_key = Some(key.clone());
        }
        if let Some(keep) = self.keep {
            if keep == 0 {
                bail!("--keep must be at least 1");
            }
            for t in &mut targets {
                if let Endpoint::Directory { keep: k, .. } = &mut t.endpoint {
                    *k = Some(keep);
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
        let reports = execute(&targets, &iso, &opts, self.targets.output_format, printer);
        let updated = reports.iter().any(|r| r.outcome == Outcome::Updated);
        let result = summarise(&reports, mode, self.targets.output_format, printer);
        let Some(method) = after else {
            return Ok(result);
        };
        let format = self.targets.output_format;
        super::restart::after_propagate(
            &self.targets.api,
            method,
            result,
            updated,
            mode,
            format,
            printer,
        )
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
    crate::untrusted::public_half(path)?;
    Ok(())
}
