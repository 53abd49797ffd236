//! `systemvm appliance ...`: the system VM template. `build` makes it from Debian packages
//! (and exports it), `export` turns a raw disk into every hypervisor's format, `seed`
//! installs one into secondary storage, `packer` writes a Packer template and preseed for
//! the installer way.

pub mod build;
pub mod export;
pub mod packer;
pub mod seed;
pub mod template;

use crate::exit::ExitStatus;
use crate::printer::Printer;
use anyhow::Result;
use clap::Subcommand;

/// Build, export and install the system VM template
#[derive(Debug, Subcommand)]
pub enum ApplianceCommand {
    #[command(after_help = crate::cli::examples::APPLIANCE_BUILD)]
    Build(build::ApplianceBuildArgs),
    #[command(after_help = crate::cli::examples::APPLIANCE_EXPORT)]
    Export(export::ExportArgs),
    #[command(after_help = crate::cli::examples::APPLIANCE_SEED)]
    Seed(seed::SeedArgs),
    #[command(after_help = crate::cli::examples::APPLIANCE_PACKER)]
    Packer(packer::PackerArgs),
}

impl ApplianceCommand {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        match self {
            ApplianceCommand::Build(args) => args.run(printer).map(|_| ExitStatus::Success),
            ApplianceCommand::Export(args) => args.run(printer),
            ApplianceCommand::Seed(args) => args.run(printer),
            ApplianceCommand::Packer(args) => args.run(printer),
        }
    }
}
