//! `systemvm appliance packer`

use crate::appliance::packer::{self, PackerOptions, DEFAULT_PACKAGES};
use crate::exit::ExitStatus;
use crate::printer::Printer;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Write a Packer template and Debian preseed for the installer way
///
/// The same appliance as appliance build (disk size, GPT with an ESP and a root partition
/// named --root-label, serial console, packages), built by Packer's qemu builder from a
/// Debian netinst ISO. Writes DIR/systemvmtemplate.json and DIR/http/preseed.cfg; run
/// `packer build -var iso_url=... -var iso_checksum=... systemvmtemplate.json` in DIR.
#[derive(Debug, Args)]
pub struct PackerArgs {
    /// Output directory
    #[arg(short, long, value_name = "DIR", default_value = "packer")]
    pub output: PathBuf,

    /// Template version [default: the date version YY.M.D]
    #[arg(long = "version", value_name = "V")]
    pub version: Option<String>,

    /// Architecture
    #[arg(long, default_value = "amd64")]
    pub arch: String,

    /// Debian suite
    #[arg(long, default_value = "bookworm")]
    pub suite: String,

    /// Virtual disk size: MiB, or with a unit (5000M, 5G, 4.5GiB)
    #[arg(long, value_name = "SIZE", default_value = "5000M")]
    pub disk_size: String,

    /// GPT name and file system label of the root partition
    #[arg(long, value_name = "LABEL", default_value = "ROOT")]
    pub root_label: String,

    /// Debian mirror URL [default: from this machine's apt sources]
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,

    /// Packages to install, one a line (# comments) [default: the built-in list]
    #[arg(long, value_name = "FILE")]
    pub packages_file: Option<PathBuf>,

    /// Installer ISO URL [default: a Packer variable to pass with -var]
    #[arg(long, value_name = "URL")]
    pub iso_url: Option<String>,

    /// Installer ISO checksum (sha256:HEX) [default: a Packer variable]
    #[arg(long, value_name = "SUM")]
    pub iso_checksum: Option<String>,

    /// Write /etc/cosmic-release instead of /etc/cloudstack-release
    #[arg(long)]
    pub cosmic: bool,

    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
}

impl PackerArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let packages = match &self.packages_file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            None => DEFAULT_PACKAGES.iter().map(|s| s.to_string()).collect(),
        };
        let version = match self.version {
            Some(v) => v,
            None => {
                let epoch = crate::epoch::source_date_epoch()?.unwrap_or_else(crate::epoch::now);
                crate::version::Version::date(epoch).as_str().to_string()
            }
        };
        crate::output::dir(&self.output)?;
        let opts = PackerOptions {
            out_dir: self.output,
            version,
            arch: self.arch,
            suite: self.suite,
            disk_size_mib: super::build::disk_size_mib(&self.disk_size)?,
            root_label: self.root_label,
            mirror: self.mirror,
            packages,
            iso_url: self.iso_url,
            iso_checksum: self.iso_checksum,
            cosmic: self.cosmic,
            force: self.force,
        };
        for path in packer::write(&opts)? {
            printer.out(path.display().to_string());
        }
        printer.info("next: packer validate / packer build in that directory");
        Ok(ExitStatus::Success)
    }
}
