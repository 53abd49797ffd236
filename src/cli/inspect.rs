//! `systemvm inspect`

use super::render;
use crate::events::ArtifactKind::Inspected;
use crate::exit::ExitStatus;
use crate::printer::{OutputFormat, Printer};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Show an ISO's members, checksums, version and key fingerprints
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ISO (ours or a stock CloudStack one)
    pub iso: PathBuf,

    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

impl InspectArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let report = crate::inspect::inspect(&self.iso)?;
        match self.output_format {
            OutputFormat::Human => printer.out(report.human().trim_end()),
            OutputFormat::Json => {
                render::artifact(printer, &self.iso, Inspected, &report, "inspected")
            }
        }
        Ok(ExitStatus::Success)
    }
}
