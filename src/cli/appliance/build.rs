//! `systemvm appliance build`

use crate::appliance::arch::Arch;
use crate::appliance::build::{self, Built, Options};
use crate::appliance::configure::Flavor;
use crate::appliance::package_set::PackageSet;
use crate::appliance::{export, packages};
use crate::cli::appliance::export::{print_checksums, ExportFlags};
use crate::cli::appliance::template;
use crate::printer::Printer;
use crate::size::MIB;
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
/// partition, ESP and an ext4 root (last, so cloud-early-config's growpart grows it), GRUB
/// for UEFI and legacy BIOS, serial console on. With our payload (the default) the template
/// is minimal: our patch service. With a CloudStack checkout as --payload it is CloudStack's
/// template for the checkout's release: that release's package set, its scripts at /,
/// cloud-scripts.tgz and its signature, its services enabled and disabled. With a checkout
/// of Cosmic's systemvm-packer it is Cosmic's template: Cosmic's packages on Debian, its
/// units and /opt/cosmic/startup scripts, qemu-ga for the command line. Writes
/// systemvmtemplate-<version>-<arch>.raw in the output directory and keeps the rootfs
/// tarball there for --rootfs. Needs root. The same inputs and SOURCE_DATE_EPOCH
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

    /// Cloudstack or Cosmic: the release file (/etc/cloudstack-release or
    /// /etc/cosmic-release) and, with a checkout as --payload, whose template [default: the
    /// payload's: cosmic for Cosmic's systemvm-packer, else cloudstack]
    #[arg(long, value_enum)]
    pub flavor: Option<Flavor>,

    /// Debian suite [default: the CloudStack release's, else bookworm]
    #[arg(long, value_name = "SUITE")]
    pub suite: Option<String>,

    /// Target architecture
    #[arg(long, value_enum, default_value = "amd64")]
    pub arch: Arch,

    /// Debian mirror URI instead of this machine's apt sources
    #[arg(long, value_name = "URI")]
    pub mirror: Option<String>,

    /// Package list replacing the default or the CloudStack release's (names, "#" comments)
    #[arg(long, value_name = "FILE")]
    pub packages_file: Option<PathBuf>,

    /// A local .deb to install with the packages, such as those Debian lacks (vhd-util,
    /// xe-guest-utilities); repeat for several
    #[arg(long = "extra-deb", value_name = "FILE")]
    pub extra_debs: Vec<PathBuf>,

    /// Reuse this mmdebstrap tarball instead of running mmdebstrap
    #[arg(long, value_name = "TARBALL")]
    pub rootfs: Option<PathBuf>,

    /// File system and partition label of the root (e.g. SLX_SYS)
    #[arg(long, value_name = "LABEL", default_value = "ROOT")]
    pub root_label: String,

    /// Virtual disk size: MiB, or with a unit (5000M, 5G, 4.5GiB)
    #[arg(long, value_name = "SIZE", default_value = "5000M")]
    pub disk_size: String,

    /// Payload: ours (the patch script and its unit: the minimal template) or a CloudStack
    /// checkout (CloudStack's template for its release)
    #[arg(long, value_name = "DIR", default_value = "agent-payload")]
    pub payload: PathBuf,

    /// With a CloudStack checkout: the agent.zip, systemvm.iso or patch-file directory whose
    /// JARs cloud-scripts.tgz records (its signature then matches `systemvm build`'s)
    #[arg(long, value_name = "ARTIFACT")]
    pub agent_jars_from: Option<PathBuf>,

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
        let (opts, set) = self.plan()?;
        // Checked now, so a bad --formats fails before minutes of building, not after.
        let export_opts = (!self.no_export)
            .then(|| self.export.options(&opts.version, &opts.arch.to_string()))
            .transpose()?;
        build::preflight(&opts)?;
        if let Some(set) = set.as_ref().filter(|_| self.packages_file.is_none()) {
            template::report_missing_extras(set, &opts.extra_debs, printer)?;
        }
        if opts.rootfs.is_some() {
            for (given, flag) in [
                (self.packages_file.is_some(), "--packages-file"),
                (self.mirror.is_some(), "--mirror"),
                (!self.extra_debs.is_empty(), "--extra-deb"),
            ] {
                if given {
                    printer.warn(format!(
                        "{flag} is ignored with --rootfs: the tarball's packages are used"
                    ));
                }
            }
        }
        let raw = opts
            .output_dir
            .join(build::raw_name(&opts.version, opts.arch));
        printer.info(format!(
            "building {}, {} ({} {} for {}, {} MiB disk)",
            raw.display(),
            opts.contents.describe(),
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

    /// The validated options and, for a CloudStack checkout, its release's package set.
    fn plan(&self) -> Result<(Options, Option<PackageSet>)> {
        let epoch = crate::epoch::source_date_epoch()?.unwrap_or_else(crate::epoch::now);
        let given = match self.version.as_deref() {
            None => None,
            Some("date") => Some(Version::date(epoch)),
            Some(v) => Some(Version::parse(v)?),
        };
        let own = match &self.packages_file {
            Some(path) => Some(packages::read(path)?),
            None => None,
        };
        let choice = template::choose(template::Request {
            payload: &self.payload,
            agent_jars_from: self.agent_jars_from.as_deref(),
            flavor: self.flavor,
            version: given,
            own,
            epoch,
        })?;
        if let Some(m) = &self.mirror {
            if !m.contains("://") || m.chars().any(char::is_whitespace) {
                bail!("--mirror {m:?} is not a URI (http://host/debian)");
            }
        }
        let suite = match (&self.suite, &choice.set) {
            (Some(s), _) => s.clone(),
            (None, Some(set)) => set.suite.clone(),
            (None, None) => "bookworm".to_string(),
        };
        crate::output::dir(&self.output)?;
        let opts = Options {
            output_dir: self.output.clone(),
            version: choice.version.to_string(),
            flavor: choice.flavor,
            suite,
            arch: self.arch,
            mirror: self.mirror.clone(),
            packages: packages::with_kernel(choice.packages, self.arch),
            rootfs: self.rootfs.clone(),
            root_label: self.root_label.clone(),
            disk_mib: disk_size_mib(&self.disk_size)?,
            contents: choice.contents,
            extra_debs: absolute(&self.extra_debs)?,
            epoch,
        };
        Ok((opts, choice.set))
    }
}

/// The files as absolute paths (mmdebstrap takes a path to a .deb only so).
fn absolute(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| {
            std::path::absolute(p).map_err(|e| anyhow::anyhow!("--extra-deb {}: {e}", p.display()))
        })
        .collect()
}

/// `--disk-size`: a size ([`crate::size`]) the disk layout can hold; the error is one line
/// naming the flag.
pub fn disk_size_mib(text: &str) -> Result<u64> {
    parse_disk_size(text).map_err(|e| anyhow::anyhow!("--disk-size {e}"))
}

fn parse_disk_size(text: &str) -> Result<u64, String> {
    let mib = crate::size::parse_mib(text)?;
    crate::appliance::disk::Layout::new(mib)
        .map_err(|e| e.to_string().trim_start_matches("--disk-size ").to_string())?;
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_sizes() {
        assert_eq!(parse_disk_size("5G"), Ok(5120));
        assert!(parse_disk_size("100M").is_err());
    }
}
