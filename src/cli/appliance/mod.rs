//! `systemvm appliance ...`: the system VM template. `export` turns a raw disk into every
//! hypervisor's format, `seed` installs one into secondary storage, `packer` writes a Packer
//! template and preseed for the installer way.

pub mod export;
pub mod packer;
pub mod seed;

use crate::printer::Printer;
use anyhow::Result;
use clap::Subcommand;

/// Build, export and install the system VM template
#[derive(Debug, Subcommand)]
pub enum ApplianceCommand {
    Export(export::ExportArgs),
    Seed(seed::SeedArgs),
    Packer(packer::PackerArgs),
}

impl ApplianceCommand {
    pub fn run(self, printer: &Printer) -> Result<()> {
        match self {
            ApplianceCommand::Export(args) => args.run(printer),
            ApplianceCommand::Seed(args) => args.run(printer),
            ApplianceCommand::Packer(args) => args.run(printer),
        }
    }
}
