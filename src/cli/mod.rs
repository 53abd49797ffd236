//! The command line: clap derive types, one file per command group. Each group's `run` takes
//! its parsed arguments and the [`Printer`]; `main.rs` only dispatches and maps errors to exit
//! codes (0 done, 1 partly failed, 2 usage or fatal error).

pub mod appliance;
pub mod build;
pub mod cloudstack;
pub mod docs;
pub mod doctor;
pub mod examples;
pub mod inject;
pub mod inspect;
pub mod keys;
pub mod package;
pub mod propagate;
pub mod render;
pub mod restart;
pub mod startup;
pub mod targets;
pub mod version;

use clap::{Parser, Subcommand};

/// Build, key and propagate CloudStack's and Cosmic's systemvm.iso.
#[derive(Debug, Parser)]
#[command(name = "systemvm", version, max_term_width = 80)]
#[command(after_help = examples::SYSTEMVM)]
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
    #[command(after_help = examples::BUILD)]
    Build(build::BuildArgs),
    #[command(after_help = examples::INSPECT)]
    Inspect(inspect::InspectArgs),
    #[command(subcommand, after_help = examples::KEYS)]
    Keys(keys::KeysCommand),
    #[command(after_help = examples::INJECT)]
    Inject(inject::InjectArgs),
    #[command(after_help = examples::STATUS)]
    Status(propagate::StatusArgs),
    #[command(after_help = examples::PROPAGATE)]
    Propagate(propagate::PropagateArgs),
    #[command(subcommand, after_help = examples::PACKAGE)]
    Package(package::PackageCommand),
    #[command(subcommand, after_help = examples::INVENTORY)]
    Inventory(cloudstack::InventoryCommand),
    #[command(after_help = examples::RESTART_SYSTEMVMS)]
    RestartSystemvms(restart::RestartSystemvmsArgs),
    #[command(after_help = examples::PATCH_SYSTEMVMS)]
    PatchSystemvms(restart::PatchSystemvmsArgs),
    #[command(subcommand, after_help = examples::VERSION)]
    Version(version::VersionCommand),
    #[command(after_help = examples::STARTUP)]
    Startup(startup::StartupArgs),
    #[command(after_help = examples::DOCTOR)]
    Doctor(doctor::DoctorArgs),
    #[command(subcommand, after_help = examples::APPLIANCE)]
    Appliance(appliance::ApplianceCommand),
}

impl Command {
    /// The command's name in the JSON schema, when JSON output was asked for: `main` then
    /// reports a failure as an `error` record and a summary, as the command would have.
    pub fn json_command(&self) -> Option<crate::events::Command> {
        use crate::events::Command as Name;
        let (format, name) = match self {
            Command::Build(a) => (a.output_format, Name::Build),
            Command::Inspect(a) => (a.output_format, Name::Inspect),
            Command::Inject(a) => (a.output_format, Name::Inject),
            Command::Status(a) => (a.targets.output_format, Name::Status),
            Command::Propagate(a) => (a.targets.output_format, Name::Propagate),
            Command::RestartSystemvms(a) => (a.run.output_format, Name::RestartSystemvms),
            Command::PatchSystemvms(a) => (a.run.output_format, Name::PatchSystemvms),
            Command::Startup(a) => (a.output_format, Name::Startup),
            Command::Doctor(a) => (a.output_format, Name::Doctor),
            _ => return None,
        };
        (format == crate::printer::OutputFormat::Json).then_some(name)
    }
}

/// The clap command tree, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The command tree the man pages are made from: without the `help` subcommand, which has
/// no page of its own.
pub fn man_command() -> clap::Command {
    command().disable_help_subcommand(true)
}

/// `--jobs N`: a count of 1 or more. Takes "-1" as a value (not a flag) to name the range.
pub fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 && n <= usize::MAX as i128 => Ok(n as usize),
        _ => Err("must be a whole number, 1 or more".into()),
    }
}

/// `--deadline SECS`: whole seconds, 1 or more.
pub fn parse_secs(s: &str) -> Result<u64, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 && n <= u64::MAX as i128 => Ok(n as u64),
        _ => Err("must be whole seconds, 1 or more".into()),
    }
}
