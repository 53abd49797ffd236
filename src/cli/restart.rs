//! `restart-systemvms` and `patch-systemvms`: the system VMs and routers restarted, or
//! live-patched (4.17+), through the API, and `propagate`'s `--restart-systemvms`.

use super::cloudstack::ApiArgs;
use crate::cloudstack::restart::{self, Event, Method, Outcome, Report, Vm};
use crate::cloudstack::Client;
use crate::events::{self, Record, Summary};
use crate::exit::ExitStatus;
use crate::printer::{OutputFormat, Printer};
use anyhow::{bail, Context, Result};
use clap::{Args, FromArgMatches};
use std::time::{Duration, Instant};

/// How long and how wide a restart runs
#[derive(Debug, Clone, Args)]
pub struct RestartOptions {
    /// Only the system VMs and routers of this zone (its id)
    #[arg(long, value_name = "ID")]
    pub zone: Option<String>,

    /// Leave the virtual routers alone
    #[arg(long)]
    pub no_routers: bool,

    /// VMs restarted at once
    #[arg(long, short = 'j', value_name = "N", default_value_t = 4,
          allow_negative_numbers = true, value_parser = crate::cli::parse_jobs)]
    pub jobs: usize,

    /// Seconds the whole restart may take; jobs still running are reported
    #[arg(long, value_name = "SECS", default_value_t = 1800,
          allow_negative_numbers = true, value_parser = crate::cli::parse_secs)]
    pub deadline: u64,

    /// Seconds between two queryAsyncJobResult polls of a job
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub poll_interval: f64,
}

/// `propagate --restart-systemvms`: restart only after a run that updated a target and in
/// which nothing failed (a half-propagated zone would boot some VMs on the old ISO).
pub fn after_propagate(
    targets: &super::targets::TargetArgs,
    method: Method,
    propagated: ExitStatus,
    updated: bool,
    mode: crate::propagate::Mode,
    printer: &Printer,
) -> Result<ExitStatus> {
    if propagated != ExitStatus::Success {
        printer.warn("not restarting the system VMs: some targets failed; fix them and rerun");
        return Ok(propagated);
    }
    if mode == crate::propagate::Mode::DryRun {
        printer.info("dry run: the system VMs would be restarted if a target were updated");
        return Ok(ExitStatus::Success);
    }
    if !updated {
        printer.info("no target was updated; the system VMs are not restarted");
        return Ok(ExitStatus::Success);
    }
    // The options' defaults, as `restart-systemvms` with none of them given has them.
    let cmd = RestartOptions::augment_args(clap::Command::new("restart-systemvms"));
    let opts = RestartOptions::from_arg_matches(&cmd.try_get_matches_from(["restart-systemvms"])?)?;
    restart_systemvms(&targets.api, &opts, method, targets.output_format, printer)
}

/// How a restart or live patch is run: for real or as a list, asking or not, for whom
#[derive(Debug, Args)]
pub struct RunArgs {
    /// List what would be done to each VM, and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Act on every zone's VMs without asking (needed without --zone when stdin is not a
    /// terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

impl RunArgs {
    /// The real run (once every zone is confirmed), or the dry run: the list calls only, each
    /// VM with what a real run would do to it.
    fn go(
        &self,
        api: &ApiArgs,
        opts: &RestartOptions,
        method: Method,
        printer: &Printer,
    ) -> Result<ExitStatus> {
        let format = self.output_format;
        if !self.dry_run {
            if opts.zone.is_none() && !self.yes {
                confirm_every_zone(method, printer)?;
            }
            return restart_systemvms(api, opts, method, format, printer);
        }
        let (_, vms) = discover(api, opts, method)?;
        let width = vms.iter().map(|v| v.name.len()).max().unwrap_or(8);
        for vm in &vms {
            let action = planned(vm, method);
            match format {
                OutputFormat::Json => printer.record(&Record::vm_plan(vm, &action)),
                OutputFormat::Human => printer.out(format!(
                    "{:width$}  {:18} {:9}  would {action}",
                    vm.name, vm.kind, vm.state
                )),
            }
        }
        printer.info(format!(
            "dry run: {} system VMs and routers listed; nothing was changed",
            vms.len()
        ));
        if format == OutputFormat::Json {
            let counts = [("planned", vms.len())];
            let summary = Summary::new(command_of(method), vms.len(), &counts, 0);
            printer.record(&Record::Summary(summary));
        }
        Ok(ExitStatus::Success)
    }
}

/// Restart the system VMs and routers so they boot the new ISO
///
/// Secondary storage VMs and console proxies are stopped and started (or rebooted with
/// --reboot); routers are rebooted. Each is a CloudStack async job, waited for until the
/// deadline. Exit status: 0 all restarted, 1 some failed or timed out, 2 fatal error.
#[derive(Debug, Args)]
pub struct RestartSystemvmsArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub restart: RestartOptions,

    /// Reboot system VMs instead of stopping and starting them
    #[arg(long)]
    pub reboot: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

impl RestartSystemvmsArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let method = if self.reboot {
            Method::Reboot
        } else {
            Method::StopStart
        };
        self.run.go(&self.api, &self.restart, method, printer)
    }
}

/// Live-patch the system VMs and routers with the management server's patch files (4.17+)
///
/// Secondary storage VMs and console proxies get `patchSystemVm`; routers get
/// `restartNetwork` (or `restartVPC`) with livepatch=true, once per network or VPC. The
/// management server skips VMs whose scripts already match its own unless --forced. Exit
/// status: 0 all patched, 1 some failed or timed out, 2 fatal error.
#[derive(Debug, Args)]
pub struct PatchSystemvmsArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub restart: RestartOptions,

    /// Patch even VMs whose scripts' signature equals the management server's digest
    #[arg(long)]
    pub forced: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

impl PatchSystemvmsArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let method = Method::LivePatch {
            forced: self.forced,
        };
        self.run.go(&self.api, &self.restart, method, printer)
    }
}

/// The API's client and the VMs a run would work on: for live patching, routers folded per
/// network or VPC.
fn discover(api: &ApiArgs, opts: &RestartOptions, method: Method) -> Result<(Client, Vec<Vm>)> {
    let client = api.client()?;
    let vms = restart::discover(
        &client,
        opts.zone.as_deref(),
        !opts.no_routers,
        api.page_size,
    )
    .context("CloudStack API")?;
    let vms = match method {
        Method::LivePatch { .. } => restart::per_network(vms),
        Method::StopStart | Method::Reboot => vms,
    };
    Ok((client, vms))
}

/// What a run would do to a VM.
fn planned(vm: &Vm, method: Method) -> String {
    if !vm.state.eq_ignore_ascii_case("running") {
        return "skip (not running)".into();
    }
    match (method, vm.kind.as_str()) {
        (Method::LivePatch { .. }, "network") => {
            "live-patch (restartNetwork livepatch=true)".into()
        }
        (Method::LivePatch { .. }, "vpc") => "live-patch (restartVPC livepatch=true)".into(),
        (Method::LivePatch { forced }, _) => format!("live-patch (patchSystemVm forced={forced})"),
        (_, "router") | (Method::Reboot, _) => "reboot".into(),
        (Method::StopStart, _) => "stop, then start".into(),
    }
}

/// No --zone and no --yes: ask on a terminal; refuse (exit 2) when nobody can answer.
fn confirm_every_zone(method: Method, printer: &Printer) -> Result<()> {
    use std::io::{BufRead, Write};
    let (command, does) = match method {
        Method::LivePatch { .. } => ("patch-systemvms", "live-patches"),
        Method::StopStart | Method::Reboot => ("restart-systemvms", "restarts"),
    };
    if !printer.can_ask() {
        bail!(
            "{command} without --zone {does} every zone's system VMs and routers; \
             pass --yes, or narrow it with --zone ID (see --dry-run)"
        );
    }
    eprint!("{command}: every zone's system VMs and routers? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        bail!("not confirmed; nothing was restarted");
    }
    Ok(())
}

/// The restart as `restart-systemvms` and `propagate --restart-systemvms` run it.
fn restart_systemvms(
    api: &ApiArgs,
    opts: &RestartOptions,
    method: Method,
    format: OutputFormat,
    printer: &Printer,
) -> Result<ExitStatus> {
    if !(opts.poll_interval.is_finite() && (0.05..=600.0).contains(&opts.poll_interval)) {
        bail!("--poll-interval must be between 0.05 and 600 seconds");
    }
    let started = Instant::now();
    let (client, vms) = discover(api, opts, method)?;
    if vms.is_empty() {
        printer.info("no system VMs or routers found; nothing to restart");
        return Ok(summarise(&[], method, format, printer));
    }
    let options = restart::Options {
        jobs: opts.jobs,
        deadline: started + Duration::from_secs(opts.deadline),
        poll_interval: Duration::from_secs_f64(opts.poll_interval),
        method,
    };
    let doing = match method {
        Method::LivePatch { .. } => "live-patching",
        Method::StopStart | Method::Reboot => "restarting",
    };
    printer.info(format!(
        "{doing} {} system VMs and routers, {} at once",
        vms.len(),
        options.jobs.min(vms.len())
    ));
    let width = vms.iter().map(|v| v.name.len()).max().unwrap_or(8);
    let reports = restart::run(&client, &vms, &options, |event| match (format, event) {
        (OutputFormat::Json, Event::Step { vm, kind, step }) => printer.record(&Record::Step {
            target: &vm,
            kind: &kind,
            step: &step,
        }),
        (OutputFormat::Json, Event::Done(r)) => printer.record(&Record::vm_done(&r)),
        (OutputFormat::Human, Event::Step { vm, step, .. }) => {
            tracing::info!("{vm}: {step}");
        }
        (OutputFormat::Human, Event::Done(r)) => printer.out(human_line(&r, width)),
    });
    Ok(summarise(&reports, method, format, printer))
}

fn human_line(r: &Report, width: usize) -> String {
    let state = match r.outcome {
        Outcome::Failed | Outcome::TimedOut => r.outcome.as_str().to_uppercase(),
        outcome => outcome.as_str().to_string(),
    };
    format!(
        "{:width$}  {:18} {:9}  {} ({:.1}s)",
        r.vm, r.kind, state, r.detail, r.seconds
    )
}

/// The command a summary names: live patching is `patch-systemvms`.
fn command_of(method: Method) -> events::Command {
    match method {
        Method::LivePatch { .. } => events::Command::PatchSystemvms,
        Method::StopStart | Method::Reboot => events::Command::RestartSystemvms,
    }
}

fn summarise(
    reports: &[Report],
    method: Method,
    format: OutputFormat,
    printer: &Printer,
) -> ExitStatus {
    use Outcome::{Failed, Restarted, Skipped, TimedOut};
    let count = |o: Outcome| reports.iter().filter(|r| r.outcome == o).count();
    let counts = [Restarted, Failed, TimedOut, Skipped].map(|o| (o.as_str(), count(o)));
    let [done, failed, timed_out, skipped] = counts.map(|(_, n)| n);
    let bad = failed + timed_out > 0;
    match format {
        OutputFormat::Json => {
            let summary = Summary::new(command_of(method), reports.len(), &counts, u8::from(bad));
            printer.record(&Record::Summary(summary));
        }
        OutputFormat::Human => printer.info(format!(
            "{} VMs: {done} restarted, {failed} failed, {timed_out} timed out, {skipped} skipped",
            reports.len()
        )),
    }
    if bad {
        let names: Vec<&str> = reports
            .iter()
            .filter(|r| matches!(r.outcome, Failed | TimedOut))
            .map(|r| r.vm.as_str())
            .collect();
        return ExitStatus::Partial(format!(
            "not done: {}; see the lines above, then run the command again",
            names.join(", ")
        ));
    }
    ExitStatus::Success
}
