//! `systemvm startup`

use super::render::{Renderer, Style};
use crate::events::{Command, Record, Summary};
use crate::exit::ExitStatus;
use crate::printer::{OutputFormat, Printer};
use crate::propagate::Mode;
use crate::startup::{self, Config};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The management server's start hook: keys, inject, propagate
///
/// Driven by one config file (see the commented example in
/// /usr/share/doc/systemvm/examples/config.toml). The release (the config's
/// cloudstack_version, else the inventory's) decides the payload: the ISO up
/// to 4.16, patch_files (a build --layout patch-files directory) from 4.17.
/// Ensures the key pair exists (generates it, or uses CloudStack's id_rsa with
/// keys.import_from), injects it into the ISO (patch files carry no key), then
/// brings the management server's own copy (management_dir, diverted from its
/// package) and every inventory target up to date within the deadline. Hosts
/// that fail are retried on the next start. Messages go to stderr, one line
/// per event.
///
/// Exit status: 0 all done, 1 some hosts failed or a CloudStack key is not
/// there yet (the management server may still start), 2 bad config or fatal.
#[derive(Debug, Args)]
pub struct StartupArgs {
    /// The config file
    #[arg(long, value_name = "FILE", env = "SYSTEMVM_CONFIG", default_value = startup::DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// Bound on the whole run [default: the config's, else 300]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true,
          value_parser = crate::cli::parse_secs)]
    pub deadline: Option<u64>,

    /// Messages stay on stderr; json writes the propagation's records to stdout
    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

impl StartupArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let mut config = Config::load(&self.config)?;
        config.deadline = self.deadline.map_or(config.deadline, Duration::from_secs);
        let format = self.output_format;
        let mut renderer = Renderer::new(&[], Mode::Apply, format, Style::Log, printer);
        let summary = startup::run(&config, printer, |event| renderer.event(event))?;
        printer.info(format!(
            "startup: {} target(s): {} updated, {} current, {} failed",
            summary.targets,
            summary.updated,
            summary.current,
            summary.failed.len()
        ));
        let verdict = startup::verdict(&summary);
        if format == OutputFormat::Json {
            let counts = [
                ("updated", summary.updated),
                ("current", summary.current),
                ("failed", summary.failed.len()),
                ("keys-pending", summary.pending.len()),
            ];
            let summary = Summary::new(Command::Startup, summary.targets, &counts, verdict.code());
            printer.record(&Record::Summary(summary));
        }
        Ok(verdict)
    }
}
