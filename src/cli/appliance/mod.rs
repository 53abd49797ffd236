//! `systemvm appliance ...`: the system VM template.

pub mod build;

use crate::printer::Printer;
use anyhow::Result;
use clap::Subcommand;

/// Build the system VM template from Debian packages
#[derive(Debug, Subcommand)]
pub enum ApplianceCommand {
    Build(build::ApplianceBuildArgs),
}

impl ApplianceCommand {
    pub fn run(self, printer: &Printer) -> Result<()> {
        match self {
            ApplianceCommand::Build(args) => args.run(printer).map(|_| ()),
        }
    }
}
