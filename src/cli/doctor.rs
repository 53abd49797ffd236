//! `systemvm doctor`

use crate::doctor::{self, Check, Request, Status};
use crate::events::{Command, Record, Summary};
use crate::exit::ExitStatus;
use crate::printer::{wrap, OutputFormat, Printer};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Check what the commands need: tools, config, inventory, keys, hosts
///
/// Prints one line per check (ok, warning, missing, failed), what it matters
/// for, and the command that fixes it. Changes nothing: hosts are connected to
/// and logged in to, but no host key is pinned.
///
/// Exit status: 0 nothing missing or failed (warnings allowed), 1 something
/// missing or failed, 2 usage error.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The startup config [default: /etc/systemvm/config.toml, if there]
    #[arg(long, value_name = "FILE", env = "SYSTEMVM_CONFIG")]
    pub config: Option<PathBuf>,

    /// Inventory to check [default: the config's, else /etc/systemvm/hosts.toml]
    #[arg(long, value_name = "FILE", env = "SYSTEMVM_INVENTORY")]
    pub inventory: Option<PathBuf>,

    /// Do not check the appliance build tools (mmdebstrap, qemu-img, ...)
    #[arg(long)]
    pub no_appliance: bool,

    /// Do not connect to the inventory's hosts
    #[arg(long)]
    pub no_hosts: bool,

    /// Seconds to wait for each host
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,

    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,

    /// Where systemd's unit directories are looked up (tests)
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub systemd_root: PathBuf,
}

impl DoctorArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let req = Request {
            config_given: self.config.is_some(),
            config: self
                .config
                .unwrap_or_else(|| crate::startup::DEFAULT_CONFIG.into()),
            inventory: self.inventory,
            appliance: !self.no_appliance,
            hosts: !self.no_hosts,
            connect_timeout: Duration::from_secs(self.connect_timeout),
            systemd_root: self.systemd_root,
        };
        let checks = doctor::run(&req);
        let problems: Vec<&Check> = checks.iter().filter(|c| c.status.is_problem()).collect();
        match self.output_format {
            OutputFormat::Json => {
                for c in &checks {
                    printer.record(&Record::check(c));
                }
                let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
                let all = [Status::Ok, Status::Warning, Status::Missing, Status::Failed];
                let counts = all.map(|s| (s.label(), count(s)));
                let exit = u8::from(!problems.is_empty());
                let summary = Summary::new(Command::Doctor, checks.len(), &counts, exit);
                printer.record(&Record::Summary(summary));
            }
            OutputFormat::Human => {
                for c in &checks {
                    printer.out(human_lines(c).join("\n"));
                }
            }
        }
        if problems.is_empty() {
            printer.info(format!("{} checks: all fine", checks.len()));
            return Ok(ExitStatus::Success);
        }
        let names: Vec<String> = problems
            .iter()
            .map(|c| format!("{} {}", c.name, c.status.label()))
            .collect();
        Ok(ExitStatus::Partial(format!(
            "{} of {} checks: {}",
            problems.len(),
            checks.len(),
            names.join(", ")
        )))
    }
}

/// One check as lines within 80 columns: status, kind, name and what it matters for, then
/// the detail and the fix indented below.
fn human_lines(c: &Check) -> Vec<String> {
    const INDENT: usize = 9;
    let head = format!(
        "{:8} {:9} {} [{}]",
        c.status.label(),
        c.kind,
        c.name,
        c.matters_for
    );
    let mut lines = wrap(&head, INDENT, 80);
    lines.extend(wrap(&format!("{:INDENT$}{}", "", c.detail), INDENT, 80));
    if let Some(fix) = &c.fix {
        lines.extend(wrap(&format!("{:INDENT$}fix: {fix}", ""), INDENT + 5, 80));
    }
    lines
}
