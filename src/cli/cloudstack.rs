//! `systemvm inventory from-cloudstack` and `systemvm restart-systemvms`, and the API
//! options they share with `propagate --restart-systemvms`. The keys come from files or
//! environment variables, never from the command line.

use crate::cli::propagate::SomeFailed;
use crate::cloudstack::restart::{self, Event, Method, Outcome, Report};
use crate::cloudstack::{hosts, Client, ClientConfig};
use crate::printer::{OutputFormat, Printer};
use crate::secret::Secret;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const API_KEY_ENV: &str = "CLOUDSTACK_API_KEY";
pub const SECRET_KEY_ENV: &str = "CLOUDSTACK_SECRET_KEY";

/// How to reach and sign for the CloudStack API
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// CloudStack API endpoint, e.g. https://HOST:8080/client/api
    #[arg(long, value_name = "URL", env = "CLOUDSTACK_API_URL")]
    pub api_url: Option<String>,

    /// File whose first line is the API key [else $CLOUDSTACK_API_KEY]
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,

    /// File whose first line is the secret key [else $CLOUDSTACK_SECRET_KEY]
    #[arg(long, value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,

    /// PEM CA certificates to trust for https [default: the system's]
    #[arg(long, value_name = "FILE")]
    pub api_ca_file: Option<PathBuf>,

    /// Seconds one API call may take (connecting: at most 10)
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub api_timeout: u64,

    /// Items asked for per page of a list call
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub page_size: usize,
}

impl ApiArgs {
    /// A client, once the URL and both keys are known.
    pub fn client(&self) -> Result<Client> {
        let Some(url) = self.api_url.clone() else {
            bail!("no CloudStack API: give --api-url URL or set CLOUDSTACK_API_URL");
        };
        if self.api_timeout == 0 {
            bail!("--api-timeout must be at least 1 second");
        }
        if self.page_size == 0 {
            bail!("--page-size must be at least 1");
        }
        let api_key = key("API key", self.api_key_file.as_deref(), API_KEY_ENV)?;
        let secret_key = key(
            "secret key",
            self.secret_key_file.as_deref(),
            SECRET_KEY_ENV,
        )?;
        if let Some(path) = &self.secret_key_file {
            warn_if_shared(path);
        }
        let call = Duration::from_secs(self.api_timeout);
        let client = Client::new(ClientConfig {
            url: url.clone(),
            api_key,
            secret_key,
            connect_timeout: call.min(Duration::from_secs(10)),
            call_timeout: call,
            ca_file: self.api_ca_file.clone(),
        })?;
        warn_if_plain_http(&url);
        Ok(client)
    }
}

/// One line when the API is reached without TLS: the API key and every signed request
/// (the signature replayable until it expires) cross the network in the clear.
fn warn_if_plain_http(url: &str) {
    if url.to_ascii_lowercase().starts_with("http://") {
        tracing::warn!(
            "--api-url {url} is plain http: the API key and signed requests are sent \
             unencrypted (use https://)"
        );
    }
}

fn key(what: &str, file: Option<&Path>, env: &str) -> Result<Secret> {
    match file {
        Some(path) => Secret::from_file(path),
        None => match std::env::var_os(env) {
            Some(_) => Secret::from_env(env),
            None => bail!(
                "no CloudStack {what}: give --{}-file FILE or set {env}",
                what.replace(' ', "-").to_ascii_lowercase()
            ),
        },
    }
}

fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "{} is readable by others; chmod 600 it (it holds the secret key)",
                path.display()
            );
        }
    }
}

/// Inventories of hosts
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    #[command(after_help = crate::cli::examples::INVENTORY)]
    FromCloudstack(FromCloudstackArgs),
}

impl InventoryCommand {
    pub fn run(self, printer: &Printer) -> Result<()> {
        match self {
            InventoryCommand::FromCloudstack(args) => args.run(printer),
        }
    }
}

/// Write an inventory from CloudStack's hosts (listHosts type=Routing)
///
/// XenServer and KVM hosts become [[host]] entries with their address, zone and cluster;
/// VMware and Hyper-V zones get commented [[secondary]] hints. CloudStack does not know the
/// SSH credentials: fill them in, then check with `systemvm status --inventory FILE`.
#[derive(Debug, Args)]
pub struct FromCloudstackArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    /// Where to write the inventory ("-" for stdout)
    #[arg(short, long, value_name = "FILE", default_value = "hosts.toml")]
    pub output: PathBuf,

    /// Only the hosts of this zone (its id)
    #[arg(long, value_name = "ID")]
    pub zone: Option<String>,

    /// Replace an existing output file
    #[arg(long)]
    pub force: bool,
}

impl FromCloudstackArgs {
    pub fn run(self, printer: &Printer) -> Result<()> {
        let to_stdout = self.output.as_os_str() == "-";
        if !to_stdout && !self.force && self.output.exists() {
            bail!(
                "{} exists; pass --force to replace it or -o another file",
                self.output.display()
            );
        }
        let client = self.api.client()?;
        let mut params = vec![("type", "Routing".to_string())];
        if let Some(z) = &self.zone {
            params.push(("zoneid", z.clone()));
        }
        let found = client
            .list("listHosts", "host", &params, self.api.page_size)
            .context("CloudStack API")?;
        let mut source = self.api.api_url.clone().unwrap_or_default();
        if let Some(z) = &self.zone {
            source.push_str(&format!(" (zone {z})"));
        }
        let rendered = hosts::render(&found, &source);
        for why in &rendered.skipped {
            printer.warn(format!("skipped {why}"));
        }
        if to_stdout {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(rendered.text.as_bytes());
        } else {
            if !self.force && self.output.exists() {
                bail!(
                    "{} appeared meanwhile; not replacing it",
                    self.output.display()
                );
            }
            crate::atomic::write(&self.output, rendered.text.as_bytes(), 0o644)?;
        }
        let (dest, file) = if to_stdout {
            ("stdout".to_string(), "FILE".to_string())
        } else {
            let shown = self.output.display().to_string();
            (shown.clone(), shown)
        };
        printer.info(format!(
            "wrote {dest}: {} hosts from {} CloudStack hosts, {} secondary storage hints; \
             fill in the credentials in [defaults], then run systemvm status --inventory {file}",
            rendered.hosts,
            found.len(),
            rendered.secondary_hints
        ));
        Ok(())
    }
}

/// How long and how wide a restart runs
#[derive(Debug, Clone, Args)]
pub struct RestartOptions {
    /// Only the system VMs and routers of this zone (its id)
    #[arg(long, value_name = "ID")]
    pub zone: Option<String>,

    /// Leave the virtual routers alone
    #[arg(long)]
    pub no_routers: bool,

    /// Reboot system VMs instead of stopping and starting them
    #[arg(long)]
    pub reboot: bool,

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

impl Default for RestartOptions {
    fn default() -> Self {
        RestartOptions {
            zone: None,
            no_routers: false,
            reboot: false,
            jobs: 4,
            deadline: 1800,
            poll_interval: 2.0,
        }
    }
}

/// `propagate --restart-systemvms`: restart only after a run that updated a target and in
/// which nothing failed (a half-propagated zone would boot some VMs on the old ISO).
pub fn after_propagate(
    api: &ApiArgs,
    propagated: Result<()>,
    updated: bool,
    mode: crate::propagate::Mode,
    format: OutputFormat,
    printer: &Printer,
) -> Result<()> {
    if let Err(e) = propagated {
        printer.warn("not restarting the system VMs: some targets failed; fix them and rerun");
        return Err(e);
    }
    if mode == crate::propagate::Mode::DryRun {
        printer.info("dry run: the system VMs would be restarted if a target were updated");
        return Ok(());
    }
    if !updated {
        printer.info("no target was updated; the system VMs are not restarted");
        return Ok(());
    }
    restart_systemvms(api, &RestartOptions::default(), format, printer)
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

    /// List what would be stopped, started or rebooted, and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Restart every zone's VMs without asking (needed without --zone when stdin is not
    /// a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

impl RestartSystemvmsArgs {
    pub fn run(self, printer: &Printer) -> Result<()> {
        if self.dry_run {
            return self.dry_run(printer);
        }
        if self.restart.zone.is_none() && !self.yes {
            confirm_every_zone()?;
        }
        restart_systemvms(&self.api, &self.restart, self.output_format, printer)
    }

    /// The list calls only: each VM with what a real run would do to it.
    fn dry_run(&self, printer: &Printer) -> Result<()> {
        let opts = &self.restart;
        let client = self.api.client()?;
        let vms = restart::discover(
            &client,
            opts.zone.as_deref(),
            !opts.no_routers,
            self.api.page_size,
        )
        .context("CloudStack API")?;
        let width = vms.iter().map(|v| v.name.len()).max().unwrap_or(8);
        for vm in &vms {
            let action = if !vm.state.eq_ignore_ascii_case("running") {
                "skip (not running)"
            } else if vm.kind == "router" || opts.reboot {
                "reboot"
            } else {
                "stop, then start"
            };
            match self.output_format {
                OutputFormat::Json => printer.json(&json!({"event": "plan", "vm": vm.name, "id": vm.id, "kind": vm.kind, "zone": vm.zone, "state": vm.state, "action": action})),
                OutputFormat::Human => printer.out(format!(
                    "{:width$}  {:18} {:9}  would {action}",
                    vm.name, vm.kind, vm.state
                )),
            }
        }
        printer.info(format!(
            "dry run: {} system VMs and routers listed; nothing was stopped, started or rebooted",
            vms.len()
        ));
        Ok(())
    }
}

/// No --zone and no --yes: ask on a terminal; refuse (exit 2) when nobody can answer.
fn confirm_every_zone() -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "restart-systemvms without --zone restarts every zone's system VMs and routers; \
             pass --yes, or narrow it with --zone ID (see --dry-run)"
        );
    }
    eprint!("Restart the system VMs and routers of every zone? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        bail!("not confirmed; nothing was restarted");
    }
    Ok(())
}

/// The restart as `restart-systemvms` and `propagate --restart-systemvms` run it.
pub fn restart_systemvms(
    api: &ApiArgs,
    opts: &RestartOptions,
    format: OutputFormat,
    printer: &Printer,
) -> Result<()> {
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if opts.deadline == 0 {
        bail!("--deadline must be at least 1 second");
    }
    if !(opts.poll_interval.is_finite() && (0.05..=600.0).contains(&opts.poll_interval)) {
        bail!("--poll-interval must be between 0.05 and 600 seconds");
    }
    let started = Instant::now();
    let client = api.client()?;
    let vms = restart::discover(
        &client,
        opts.zone.as_deref(),
        !opts.no_routers,
        api.page_size,
    )
    .context("CloudStack API")?;
    if vms.is_empty() {
        if format == OutputFormat::Json {
            printer.json(&json!({"event": "summary", "vms": 0, "restarted": 0, "failed": 0, "timed_out": 0, "skipped": 0, "exit_code": 0}));
        }
        printer.info("no system VMs or routers found; nothing to restart");
        return Ok(());
    }
    let options = restart::Options {
        jobs: opts.jobs,
        deadline: started + Duration::from_secs(opts.deadline),
        poll_interval: Duration::from_secs_f64(opts.poll_interval),
        method: if opts.reboot {
            Method::Reboot
        } else {
            Method::StopStart
        },
    };
    printer.info(format!(
        "restarting {} system VMs and routers, {} at once",
        vms.len(),
        options.jobs.min(vms.len())
    ));
    let width = vms.iter().map(|v| v.name.len()).max().unwrap_or(8);
    let reports = restart::run(&client, &vms, &options, |event| match (format, event) {
        (OutputFormat::Json, Event::Step { vm, step }) => {
            printer.json(&json!({"event": "step", "vm": vm, "step": step}))
        }
        (OutputFormat::Json, Event::Done(r)) => {
            let mut v = serde_json::to_value(&r).unwrap_or_default();
            v["event"] = json!("done");
            printer.json(&v);
        }
        (OutputFormat::Human, Event::Step { vm, step }) => {
            tracing::info!("{vm}: {step}");
        }
        (OutputFormat::Human, Event::Done(r)) => printer.out(human_line(&r, width)),
    });
    summarise(&reports, format, printer)
}

fn human_line(r: &Report, width: usize) -> String {
    let state = match r.outcome {
        Outcome::Restarted => "restarted",
        Outcome::Failed => "FAILED",
        Outcome::TimedOut => "TIMED-OUT",
        Outcome::Skipped => "skipped",
    };
    format!(
        "{:width$}  {:18} {:9}  {} ({:.1}s)",
        r.vm, r.kind, state, r.detail, r.seconds
    )
}

fn summarise(reports: &[Report], format: OutputFormat, printer: &Printer) -> Result<()> {
    let count = |o: Outcome| reports.iter().filter(|r| r.outcome == o).count();
    let (done, failed, timed_out, skipped) = (
        count(Outcome::Restarted),
        count(Outcome::Failed),
        count(Outcome::TimedOut),
        count(Outcome::Skipped),
    );
    let bad = failed + timed_out > 0;
    match format {
        OutputFormat::Json => printer.json(&json!({"event": "summary", "vms": reports.len(), "restarted": done, "failed": failed, "timed_out": timed_out, "skipped": skipped, "exit_code": i32::from(bad)})),
        OutputFormat::Human => printer.info(format!(
            "{} VMs: {done} restarted, {failed} failed, {timed_out} timed out, {skipped} skipped",
            reports.len()
        )),
    }
    if bad {
        let names: Vec<&str> = reports
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::TimedOut))
            .map(|r| r.vm.as_str())
            .collect();
        return Err(SomeFailed(format!(
            "not restarted: {}; see the lines above, then rerun restart-systemvms",
            names.join(", ")
        ))
        .into());
    }
    Ok(())
}
