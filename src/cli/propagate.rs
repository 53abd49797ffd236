//! `systemvm status` and `systemvm propagate`

use crate::exit::ExitStatus;
use crate::hypervisors::patch::PatchSet;
use crate::hypervisors::{Extras, IsoInfo};
use crate::inventory::{self, Endpoint, Inventory, Target};
use crate::kind::Hypervisor;
use crate::printer::{OutputFormat, Printer};
use crate::propagate::{self, Event, Mode, Options, Outcome, Report};
use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which ISO, which hosts, and how to reach them
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Inventory of hosts and secondary storages
    #[arg(long, value_name = "FILE", env = "SYSTEMVM_INVENTORY", default_value = inventory::DEFAULT_PATH)]
    pub inventory: PathBuf,

    /// The ISO to propagate
    #[arg(
        long,
        value_name = "ISO",
        env = "SYSTEMVM_ISO",
        default_value = "/usr/share/cloudstack-common/vms/systemvm.iso"
    )]
    pub iso: PathBuf,

    /// CloudStack 4.17+: push this `build --layout patch-files` output instead
    #[arg(long, value_name = "DIR", conflicts_with = "iso_version")]
    pub patch_files: Option<PathBuf>,

    /// The ISO's version [default: from its manifest or volume id]
    #[arg(long = "iso-version", value_name = "V")]
    pub iso_version: Option<String>,

    /// Only these targets (repeat, or separate with commas)
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub only: Vec<String>,

    /// Only targets of this hypervisor (any case, as CloudStack spells it too)
    #[arg(long, value_name = "KIND", value_enum, ignore_case = true)]
    pub hypervisor: Option<Hypervisor>,

    /// Targets worked on at once
    #[arg(long, short = 'j', value_name = "N", default_value_t = 16,
          allow_negative_numbers = true, value_parser = crate::cli::parse_jobs)]
    pub jobs: usize,

    /// known_hosts file [default: the inventory's, else /etc/systemvm/known_hosts]
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,

    /// Trust and pin host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new: bool,

    /// Hash each target's ISO on the host, whatever its marker or tag says (markers are
    /// otherwise trusted for 7 days while size and mtime are unchanged)
    #[arg(long)]
    pub verify: bool,

    /// Seconds to wait for a connection (0 means 1) [default: inventory, else 10]
    #[arg(long, value_name = "SECS")]
    pub connect_timeout: Option<u64>,

    /// Seconds a transfer or command may stall (0 means 1) [default: inventory,
    /// else 120]
    #[arg(long, value_name = "SECS")]
    pub transfer_timeout: Option<u64>,

    /// Retries for connection resets and time-outs [default: inventory, else 2]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    /// Bound on the whole run: then targets not done fail "deadline reached"
    #[arg(long, value_name = "SECS", allow_negative_numbers = true,
          value_parser = crate::cli::parse_secs)]
    pub deadline: Option<u64>,

    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

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
    #[arg(long)]
    pub restart_systemvms: bool,

    #[command(flatten)]
    pub api: crate::cli::cloudstack::ApiArgs,
}

impl StatusArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let (inv, targets, iso, opts) = self.targets.prepare(Mode::Status, printer)?;
        let reports = execute(&targets, &iso, &opts, self.targets.output_format, printer);
        let _ = inv;
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
        if self.restart_systemvms {
            // Bad API settings stop the run before any host is touched.
            self.api.client()?;
        }
        let reports = execute(&targets, &iso, &opts, self.targets.output_format, printer);
        let updated = reports.iter().any(|r| r.outcome == Outcome::Updated);
        let result = summarise(&reports, mode, self.targets.output_format, printer);
        if !self.restart_systemvms {
            return Ok(result);
        }
        let format = self.targets.output_format;
        crate::cli::cloudstack::after_propagate(&self.api, result, updated, mode, format, printer)
    }
}

impl TargetArgs {
    fn prepare(
        &self,
        mode: Mode,
        printer: &Printer,
    ) -> Result<(Inventory, Vec<Target>, IsoInfo, Options)> {
        if self.accept_new && mode != Mode::Apply {
            printer.warn(accept_new_ignored(mode));
        }
        if self.jobs == 0 {
            bail!("--jobs must be at least 1");
        }
        let inv = Inventory::load(&self.inventory)?;
        let mut targets: Vec<Target> = inv.targets.clone();
        for name in &self.only {
            if !targets.iter().any(|t| &t.name == name) {
                bail!(
                    "--only {name}: no such target in {}",
                    self.inventory.display()
                );
            }
        }
        if !self.only.is_empty() {
            targets.retain(|t| self.only.contains(&t.name));
        }
        if let Some(kind) = self.hypervisor {
            targets.retain(|t| t.hypervisor == kind);
            if targets.is_empty() {
                bail!(
                    "--hypervisor {}: no such targets in {}",
                    kind.as_str(),
                    self.inventory.display()
                );
            }
        }
        if targets.is_empty() {
            bail!("no targets selected in {}", self.inventory.display());
        }
        let mut opts = Options::from_inventory(&inv, mode);
        let iso = match &self.patch_files {
            Some(dir) => {
                let set = PatchSet::load(dir)?;
                targets.retain(takes_patch_files);
                if targets.is_empty() {
                    bail!("no selected target takes patch files (XenServer, KVM or management)");
                }
                let info = set.info();
                opts.patch = Some(set);
                info
            }
            None => IsoInfo::from_path(&self.iso, self.iso_version.as_deref())?,
        };
        opts.jobs = self.jobs;
        opts.accept_new = self.accept_new;
        opts.verify = self.verify;
        if let Some(k) = &self.known_hosts {
            opts.known_hosts = k.clone();
        }
        if let Some(s) = self.connect_timeout {
            opts.connect_timeout = crate::timeout::secs(s);
        }
        if let Some(s) = self.transfer_timeout {
            opts.transfer_timeout = crate::timeout::secs(s);
        }
        if let Some(r) = self.retries {
            opts.retries = r;
        }
        opts.deadline = self.deadline.map(Duration::from_secs);
        Ok((inv, targets, iso, opts))
    }
}

/// Why `--accept-new` pins nothing in `status` or `propagate --dry-run`.
fn accept_new_ignored(mode: Mode) -> String {
    let what = if mode == Mode::Status {
        "status"
    } else {
        "a dry run"
    };
    format!(
        "--accept-new pins nothing in {what} (dry runs and status never pin); \
         run systemvm propagate --accept-new without --dry-run to pin"
    )
}

fn takes_patch_files(t: &Target) -> bool {
    match t.endpoint {
        Endpoint::Ssh { .. } => t.profile.patch_files_dir().is_some(),
        Endpoint::Directory { .. } => t.hypervisor == Hypervisor::Management,
        Endpoint::Smb { .. } => false,
    }
}

/// `--deliver-key` overwrites the hosts' private key: it must be one, unencrypted, 0600.
fn check_private_key(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !crate::keys::looks_private(&String::from_utf8_lossy(&text)) {
        bail!(
            "{} is not a private key (a public key?): --deliver-key writes it over each host's private key; give the private half (CloudStack's id_rsa)",
            path.display()
        );
    }
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} is readable by others; chmod 600 it first",
            path.display()
        );
    }
    crate::untrusted::public_half(path)?;
    Ok(())
}

/// Run the engine, rendering events as they come.
fn execute(
    targets: &[Target],
    iso: &IsoInfo,
    opts: &Options,
    format: OutputFormat,
    printer: &Printer,
) -> Vec<Report> {
    let bars = MultiProgress::with_draw_target(
        if std::io::stderr().is_terminal() && format == OutputFormat::Human {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let style =
        ProgressStyle::with_template("{prefix:>16} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut active: HashMap<String, ProgressBar> = HashMap::new();
    let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(8);
    propagate::run(targets, iso, opts, |event| match format {
        OutputFormat::Json => printer.json(&event_json(&event)),
        OutputFormat::Human => match event {
            Event::Planned { host, plan } if opts.mode == Mode::DryRun => {
                let mut text = format!("{host}: {} ({})", plan.action, plan.reason);
                for step in &plan.steps {
                    text.push_str(&format!("\n    {step}"));
                }
                bars.suspend(|| printer.out(text));
            }
            Event::Bytes { host, sent, total } => {
                let bar = active.entry(host.clone()).or_insert_with(|| {
                    let bar = bars.add(ProgressBar::new(total));
                    bar.set_style(style.clone());
                    bar.set_prefix(host);
                    bar
                });
                bar.set_position(sent);
            }
            Event::Retry {
                host,
                attempt,
                error,
                delay,
            } => bars.suspend(|| {
                printer.warn(format!(
                    "{host}: attempt {attempt} failed ({}); retrying in {}s",
                    crate::printer::printable(&error),
                    delay.as_secs()
                ))
            }),
            Event::Done(report) => {
                if let Some(bar) = active.remove(&report.host) {
                    bar.finish_and_clear();
                    bars.remove(&bar);
                }
                if opts.mode != Mode::DryRun || report.outcome == Outcome::Failed {
                    bars.suspend(|| printer.out(human_line(&report, opts.mode, width)));
                }
            }
            _ => {}
        },
    })
}

fn human_line(r: &Report, mode: Mode, width: usize) -> String {
    let state = match (r.outcome, mode) {
        (Outcome::Failed, Mode::Status) => "unreachable",
        (Outcome::Failed, _) => "FAILED",
        (Outcome::Current, _) => "current",
        (Outcome::Stale, _) => "stale",
        (Outcome::Updated, _) => "updated",
    };
    let detail = crate::printer::printable(r.error.as_ref().unwrap_or(&r.reason));
    format!(
        "{:width$}  {:10} {:11} {detail}",
        r.host, r.hypervisor, state
    )
}

fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Planned { host, plan } => {
            json!({"event": "plan", "host": host, "action": plan.action, "reason": plan.reason, "steps": plan.steps})
        }
        Event::Step { host, step } => json!({"event": "step", "host": host, "step": step}),
        Event::Bytes { host, sent, total } => {
            json!({"event": "bytes", "host": host, "sent": sent, "total": total})
        }
        Event::Retry {
            host,
            attempt,
            error,
            delay,
        } => {
            json!({"event": "retry", "host": host, "attempt": attempt, "error": error, "delay_seconds": delay.as_secs_f64()})
        }
        Event::Done(report) => {
            let mut v = serde_json::to_value(report).unwrap_or_default();
            v["event"] = json!("done");
            v
        }
    }
}

fn summarise(
    reports: &[Report],
    mode: Mode,
    format: OutputFormat,
    printer: &Printer,
) -> ExitStatus {
    let count = |o: Outcome| reports.iter().filter(|r| r.outcome == o).count();
    let (current, stale, updated, failed) = (
        count(Outcome::Current),
        count(Outcome::Stale),
        count(Outcome::Updated),
        count(Outcome::Failed),
    );
    let bad = failed > 0 || (mode == Mode::Status && stale > 0);
    let exit = if bad { 1 } else { 0 };
    match format {
        OutputFormat::Json => printer.json(&json!({"event": "summary", "targets": reports.len(), "current": current, "stale": stale, "updated": updated, "failed": failed, "exit_code": exit})),
        OutputFormat::Human => printer.info(format!(
            "{} targets: {current} current, {stale} {}, {updated} updated, {failed} {}",
            reports.len(),
            if mode == Mode::DryRun { "to update" } else { "stale" },
            if mode == Mode::Status { "unreachable" } else { "failed" },
        )),
    }
    if bad {
        let names = |o: Outcome| -> String {
            let hosts: Vec<&str> = reports
                .iter()
                .filter(|r| r.outcome == o)
                .map(|r| r.host.as_str())
                .collect();
            hosts.join(", ")
        };
        let mut parts = Vec::new();
        if failed > 0 {
            let what = if mode == Mode::Status {
                "unreachable"
            } else {
                "failed"
            };
            parts.push(format!("{what}: {}", names(Outcome::Failed)));
        }
        if mode == Mode::Status && stale > 0 {
            parts.push(format!(
                "stale: {} (run systemvm propagate)",
                names(Outcome::Stale)
            ));
        }
        return ExitStatus::Partial(parts.join("; "));
    }
    ExitStatus::Success
}
