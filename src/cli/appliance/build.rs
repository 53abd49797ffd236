//! `systemvm appliance build`

use crate::appliance::arch::Arch;
use crate::appliance::build::{self, Built, Options};
use crate::appliance::configure::Flavor;
use crate::appliance::disk::MIB;
use crate::appliance::{export, packages};
use crate::cli::appliance::export::{print_checksums, ExportFlags};
use crate::printer::Printer;
use crate::version::Version;
use anyhow::{bail, Result};
use clap::Args;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

/// Build the system VM template as a raw GPT disk, without an installer or a VM
///
/// mmdebstrap makes the root file system from Debian packages (the machine's own apt
/// sources unless --mirror is given); the disk is assembled in a sparse file: BIOS boot
/// partition, ESP and an ext4 root, GRUB for UEFI and legacy BIOS, serial console on.
/// Writes systemvmtemplate-<version>-<arch>.raw in the output directory and keeps the
/// rootfs tarball there for --rootfs. Needs root. The same inputs and SOURCE_DATE_EPOCH
/// give the same disk bytes. Then exports it for every hypervisor (--formats) as
/// appliance export does, with md5sum.txt and sha512sum.txt, and prints the {SHA-512}
/// checksums CloudStack's template registration takes.
#[derive(Debug, Args)]
pub struct ApplianceBuildArgs {
    /// Output directory
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,

    /// Template version, e.g. 4.18.0; "date" for a Cosmic YY.M.D [default: date]
    #[arg(long = "version", value_name = "V|date")]
    pub version: Option<String>,

    /// Release file: /etc/cloudstack-release or /etc/cosmic-release
    #[arg(long, value_enum, default_value = "cloudstack")]
    pub flavor: Flavor,

    /// Debian suite
    #[arg(long, value_name = "SUITE", default_value = "bookworm")]
    pub suite: String,

    /// Target architecture
    #[arg(long, value_enum, default_value = "amd64")]
    pub arch: Arch,

    /// Debian mirror URI instead of this machine's apt sources
    #[arg(long, value_name = "URI")]
    pub mirror: Option<String>,

    /// Package list replacing the default (names, "#" comments)
    #[arg(long, value_name = "FILE")]
    pub packages_file: Option<PathBuf>,

    /// Reuse this mmdebstrap tarball instead of running mmdebstrap
    #[arg(long, value_name = "TARBALL")]
    pub rootfs: Option<PathBuf>,

    /// File system and partition label of the root (e.g. SLX_SYS)
    #[arg(long, value_name = "LABEL", default_value = "ROOT")]
    pub root_label: String,

    /// Virtual disk size: MiB, or with a unit (5000M, 5G, 4.5GiB)
    #[arg(long, value_name = "SIZE", default_value = "5000M")]
    pub disk_size: String,

    /// Payload holding the patch script and its systemd unit
    #[arg(long, value_name = "DIR", default_value = "agent-payload")]
    pub payload: PathBuf,

    /// Write only the raw disk (export it later with appliance export)
    #[arg(long)]
    pub no_export: bool,

    #[command(flatten)]
    pub export: ExportFlags,
}

impl ApplianceBuildArgs {
    /// Check the arguments, build, export, report. Returns what was built.
    pub fn run(self, printer: &Printer) -> Result<Built> {
        let started = Instant::now();
        let opts = self.options()?;
        // Checked now, so a bad --formats fails before minutes of building, not after.
        let export_opts = (!self.no_export)
            .then(|| self.export.options(&opts.version, &opts.arch.to_string()))
            .transpose()?;
        build::preflight(&opts)?;
        if opts.rootfs.is_some() {
            for (given, flag) in [
                (self.packages_file.is_some(), "--packages-file"),
                (self.mirror.is_some(), "--mirror"),
            ] {
                if given {
                    printer.warn(format!(
                        "{flag} is ignored with --rootfs: the tarball's packages are used"
                    ));
                }
            }
        }
        printer.info(format!(
            "building {} ({} {} for {}, {} MiB disk)",
            opts.output_dir
                .join(build::raw_name(&opts.version, opts.arch))
                .display(),
            opts.suite,
            opts.version,
            opts.arch,
            opts.disk_mib
        ));
        let built = build::run(&opts, printer)?;
        let allocated = std::fs::metadata(&built.disk)
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
        printer.info(format!(
            "built {} ({} MiB virtual, {} MiB allocated) in {:.1}s; rootfs tarball {}",
            built.disk.display(),
            built.layout.disk_size / MIB,
            allocated / MIB,
            started.elapsed().as_secs_f64(),
            built.rootfs.display()
        ));
        printer.out(built.disk.display().to_string());
        if let Some(export_opts) = export_opts {
            let artifacts = export::export(&built.disk, &opts.output_dir, &export_opts, printer)?;
            print_checksums(&artifacts, printer);
        }
        Ok(built)
    }

    /// The validated options; nothing is touched yet.
    pub fn options(&self) -> Result<Options> {
        let epoch = crate::epoch::source_date_epoch()?.unwrap_or_else(crate::epoch::now);
        let version = match self.version.as_deref() {
            None | Some("date") => Version::date(epoch),
            Some(v) => Version::parse(v)?,
        };
        let packages = match &self.packages_file {
            Some(path) => packages::read(path)?,
            None => packages::parse(packages::DEFAULT, "the default package list")?,
        };
        if let Some(m) = &self.mirror {
            if !m.contains("://") || m.chars().any(char::is_whitespace) {
                bail!("--mirror {m:?} is not a URI (http://host/debian)");
            }
        }
        Ok(Options {
            output_dir: self.output.clone(),
            version: version.to_string(),
            flavor: self.flavor,
            suite: self.suite.clone(),
            arch: self.arch,
            mirror: self.mirror.clone(),
            packages: packages::with_kernel(packages, self.arch),
            rootfs: self.rootfs.clone(),
            root_label: self.root_label.clone(),
            disk_mib: parse_size_mib(&self.disk_size)?,
            payload: self.payload.clone(),
            epoch,
        })
    }
}

/// `5000`, `5000M`, `5000MiB`, `5G`, `4.5GiB`, `1T` to MiB (whole MiB only).
pub fn parse_size_mib(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        bail!("--disk-size {text:?} is not a size (5000M, 5G)");
    }
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1.0,
        "g" | "gb" | "gib" => 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0,
        _ => bail!("--disk-size {text:?}: the unit must be M, G or T (MiB, GiB, TiB)"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--disk-size {text:?} is not a size (5000M, 5G)"))?;
    let mib = value * factor;
    if !mib.is_finite() || mib.fract() != 0.0 || mib < 1.0 {
        bail!("--disk-size {text:?} is not a whole number of MiB");
    }
    let mib = mib as u64;
    crate::appliance::disk::Layout::new(mib)?;
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mib("5000").unwrap(), 5000);
        assert_eq!(parse_size_mib("5000M").unwrap(), 5000);
        assert_eq!(parse_size_mib("5G").unwrap(), 5120);
        assert_eq!(parse_size_mib("4.5GiB").unwrap(), 4608);
        assert!(parse_size_mib("5X").is_err());
        assert!(parse_size_mib("abc").is_err());
        assert!(parse_size_mib("0.3M").is_err());
        assert!(parse_size_mib("100M").is_err());
    }
}
