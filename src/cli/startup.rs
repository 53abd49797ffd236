//! `systemvm startup`

use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::startup::{self, Config};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The management server's start hook: keys, inject, propagate
///
/// Driven by one config file (see the commented example in
/// /usr/share/doc/systemvm/examples/config.toml). Ensures the key pair exists
/// (generates it, or uses CloudStack's id_rsa with keys.import_from), injects
/// it into the ISO, then brings every inventory target up to date within the
/// deadline. Hosts that fail are retried on the next start. Messages go to
/// stderr, one line per event.
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
}

impl StartupArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let mut config = Config::load(&self.config)?;
        if let Some(secs) = self.deadline {
            config.deadline = Duration::from_secs(secs);
        }
        let summary = startup::run(&config, printer)?;
        printer.info(format!(
            "startup: {} target(s): {} updated, {} current, {} failed",
            summary.targets,
            summary.updated,
            summary.current,
            summary.failed.len()
        ));
        Ok(startup::verdict(&summary))
    }
}
