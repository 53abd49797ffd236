//! The command line: clap derive types, one file per command group. Each group's `run` takes
//! its parsed arguments and the [`Printer`]; `main.rs` only dispatches and maps errors to exit
//! codes (0 done, 1 partly failed, 2 usage or fatal error).

pub mod appliance;
pub mod build;
pub mod inject;
pub mod inspect;
pub mod keys;
pub mod package;
pub mod propagate;

use clap::{Parser, Subcommand};

/// Build, key and propagate CloudStack's and Cosmic's systemvm.iso.
#[derive(Debug, Parser)]
#[command(name = "systemvm", version, max_term_width = 80)]
#[command(after_help = "Exit status: 0 done, 1 some hosts failed, 2 usage or fatal error.")]
pub struct Cli {
    /// Print only warnings and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log more (repeat for debug detail); also set by RUST_LOG
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Build(build::BuildArgs),
    Inspect(inspect::InspectArgs),
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    Inject(inject::InjectArgs),
    Status(propagate::StatusArgs),
    Propagate(propagate::PropagateArgs),
    #[command(subcommand)]
    Package(package::PackageCommand),
    #[command(subcommand)]
    Appliance(appliance::ApplianceCommand),
}

/// The clap command tree, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
