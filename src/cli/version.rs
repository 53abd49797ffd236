//! `systemvm version check`: would the management server accept a system VM template of
//! this version, under `minreq.sysvmtemplate.version` (CloudStack and Cosmic orderings as
//! [`crate::version`] defines them)?

use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::version::Version;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// Versions of system VM templates
#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    #[command(after_help = crate::cli::examples::VERSION)]
    Check(CheckArgs),
}

impl VersionCommand {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        match self {
            VersionCommand::Check(args) => args.run(printer),
        }
    }
}

/// Check a template version against minreq.sysvmtemplate.version
///
/// Exit status: 0 accepted, 1 the management server would show "Requires Upgrade",
/// 2 a malformed version.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The minreq.sysvmtemplate.version setting, e.g. 4.16.0.0 or 16.4.1
    #[arg(long, value_name = "VERSION")]
    pub min: String,

    /// The template's version (/etc/cloudstack-release, or the router's version)
    #[arg(value_name = "VERSION")]
    pub version: String,
}

impl CheckArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let min = Version::parse(&self.min).context("--min")?;
        let version = Version::parse(&self.version).context("VERSION")?;
        if version.satisfies_minimum(&min) {
            printer.out(format!(
                "{version} is accepted: not older than minreq.sysvmtemplate.version {min}"
            ));
            Ok(ExitStatus::Success)
        } else {
            Ok(ExitStatus::Partial(format!(
                "{version} is older than minreq.sysvmtemplate.version {min}: \
                 the management server would show \"Requires Upgrade\""
            )))
        }
    }
}
