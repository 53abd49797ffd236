//! `systemvm inject`

use super::render;
use crate::events::ArtifactKind::Injected;
use crate::exit::ExitStatus;
use crate::inject::{self, Outcome, Target};
use crate::printer::{OutputFormat, Printer};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

/// Put public keys into an ISO's authorized_keys, atomically and without root
///
/// The keys given replace those in the ISO (give old and new to rotate). Only the key area
/// is rewritten; an ISO without one (a stock CloudStack ISO) is remastered once by xorriso.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// The ISO to key
    pub iso: PathBuf,

    /// Public key file (.pub or authorized_keys); repeat for several
    #[arg(long = "key", value_name = "PUB", required = true)]
    pub keys: Vec<PathBuf>,

    /// Rewrite the key area in the ISO itself instead of renaming a copy into place
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,

    /// Write the keyed ISO here (a directory: under ISO's file name) and leave ISO as it is
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// With -o: replace an ISO there whose injected keys are not among those given
    #[arg(long, requires = "output")]
    pub force: bool,

    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

impl InjectArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let started = Instant::now();
        let mut keys = Vec::new();
        for path in &self.keys {
            keys.extend(crate::keys::read_public_keys(path)?);
        }
        if keys.is_empty() {
            bail!("no keys given");
        }
        let target = match (self.in_place, self.output) {
            (true, _) => Target::InPlace,
            (false, Some(p)) => {
                let name = self.iso.file_name().unwrap_or("systemvm.iso".as_ref());
                let out = crate::output::file(Some(&p), &name.to_string_lossy())?;
                crate::output::refuse_losing_keys(&out, &keys, self.force)?;
                Target::Output(out)
            }
            (false, None) => Target::Replace,
        };
        // In place it takes milliseconds; a copy or a remaster of a large ISO, seconds.
        let spinner = printer.spinner(format!("keying {}", self.iso.display()));
        let done = inject::inject(&self.iso, &keys, &target)?;
        spinner.finish_and_clear();
        let what = match done.outcome {
            Outcome::Unchanged => "unchanged: the keys are already there",
            Outcome::Patched => "key area rewritten",
            Outcome::Remastered => {
                "no key area: remastered with one (later injections are in place)"
            }
        };
        printer.info(format!(
            "{}: {what} ({} keys, {:.0} ms)",
            done.path.display(),
            keys.len(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
        if self.output_format == OutputFormat::Json {
            let fingerprints: Vec<_> = keys.iter().map(crate::keys::info).collect();
            let details = serde_json::json!({"outcome": done.outcome, "keys": fingerprints});
            let outcome = done.outcome.as_str();
            render::artifact(printer, &done.path, Injected, &details, outcome);
        }
        Ok(ExitStatus::Success)
    }
}
