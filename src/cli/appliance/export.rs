//! `systemvm appliance export`, and [`ExportFlags`], the export flags `appliance build`
//! shares (`#[command(flatten)]`).

use crate::appliance::export::{self, ExportOptions, Format, HypervGeneration};
use crate::appliance::ova::{GuestOs, ManifestHash};
use crate::exit::ExitStatus;
use crate::printer::Printer;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// How the exports are made; shared by `appliance export` and `appliance build`.
#[derive(Debug, Clone, Args)]
pub struct ExportFlags {
    /// Formats to write, comma-separated: kvm, xen, vmware, hyperv, ovm
    #[arg(long, value_name = "LIST", default_value = "kvm,xen,vmware,hyperv,ovm")]
    pub formats: String,

    /// qcow2 version: 1.1, or 0.10 for KVM hosts with QEMU before 1.1
    #[arg(long, value_name = "V", default_value = "1.1",
          value_parser = ["1.1", "0.10"])]
    pub qcow2_compat: String,

    /// Hash in the OVA manifest (older ESXi accept only sha1)
    #[arg(long, value_enum, value_name = "HASH", default_value_t = ManifestHash::Sha256)]
    pub ova_manifest: ManifestHash,

    /// VMware virtual hardware version of the OVA (vmx-N)
    #[arg(long, value_name = "N", default_value_t = 13,
          value_parser = clap::value_parser!(u32).range(4..=21))]
    pub vmx_version: u32,

    /// Guest OS type the OVA declares
    #[arg(long, value_enum, value_name = "OS", default_value_t = GuestOs::OtherLinux64)]
    pub vmware_guest: GuestOs,

    /// Hyper-V generation: 1 zips a VHD, 2 (UEFI) zips a VHDX
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub hyperv_generation: u8,

    /// Write the kvm qcow2 as an overlay on this base qcow2 (its backing file)
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<PathBuf>,

    /// Formats exported at once [default: the number of CPUs]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub export_jobs: Option<u16>,
}

impl ExportFlags {
    /// The library options for `version` and `arch`; the epoch from SOURCE_DATE_EPOCH.
    pub fn options(&self, version: &str, arch: &str) -> Result<ExportOptions> {
        let mut o = ExportOptions::new(version, arch);
        o.formats = Format::parse_list(&self.formats)?;
        o.qcow2_compat_010 = self.qcow2_compat == "0.10";
        o.ova_manifest = self.ova_manifest;
        o.vmx_version = self.vmx_version;
        o.vmware_guest = self.vmware_guest;
        o.hyperv_generation = match self.hyperv_generation {
            2 => HypervGeneration::Two,
            _ => HypervGeneration::One,
        };
        o.base = self.base.clone();
        o.jobs = self.export_jobs.map_or(o.jobs, usize::from);
        o.epoch = crate::epoch::source_date_epoch()?;
        Ok(o)
    }
}

/// Export a raw disk for every hypervisor, with md5sum.txt and sha512sum.txt
///
/// Writes systemvmtemplate-<version>-<arch>-<hypervisor>.<ext> as CloudStack names its
/// templates: kvm .qcow2.bz2, xen .vhd.bz2, vmware .ova, hyperv .vhd.zip (.vhdx.zip for
/// generation 2), ovm .raw.bz2. Prints each file's {SHA-512} checksum for registerTemplate.
/// With SOURCE_DATE_EPOCH set, the same disk gives the same bytes.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The raw GPT disk image (from appliance build)
    pub raw: PathBuf,

    /// Template version, part of every file name
    #[arg(long = "version", value_name = "V")]
    pub version: String,

    /// Architecture, part of every file name
    #[arg(long, default_value = "amd64")]
    pub arch: String,

    /// Output directory (created if missing; its parent must exist)
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,

    #[command(flatten)]
    pub flags: ExportFlags,
}

impl ExportArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let opts = self.flags.options(&self.version, &self.arch)?;
        crate::output::dir(&self.output)?;
        let artifacts = export::export(&self.raw, &self.output, &opts, printer)?;
        print_checksums(&artifacts, printer);
        Ok(ExitStatus::Success)
    }
}

/// The `{SHA-512}` strings CloudStack's template registration takes, one line per file.
pub fn print_checksums(artifacts: &[export::Artifact], printer: &Printer) {
    for a in artifacts {
        let name = a.path.file_name().unwrap_or_default().to_string_lossy();
        printer.out(format!("{name} {}", a.cloudstack_checksum()));
    }
}
