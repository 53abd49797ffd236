//! `systemvm appliance seed`

use crate::appliance::seed::{self, Hypervisor, SeedOptions};
use crate::exit::ExitStatus;
use crate::printer::Printer;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Install a system VM template into secondary storage (cloud-install-sys-tmplt)
///
/// Decompresses IMAGE (.bz2, .gz, .zip), places it at
/// template/tmpl/1/<id>/<uuid>.<ext> under DIR and writes template.properties, with the
/// virtual size read from the image. Needs no database: give --template-id when the
/// management server's system template id is not CloudStack's default for the hypervisor
/// (xenserver 1, kvm 3, vmware 8, hyperv 9, lxc 10, ovm3 12).
#[derive(Debug, Args)]
#[command(
    override_usage = "systemvm appliance seed [OPTIONS] --secondary DIR --hypervisor KIND IMAGE"
)]
pub struct SeedArgs {
    /// The template image (as exported; compressed or not)
    pub image: PathBuf,

    /// The mounted secondary storage
    #[arg(long, value_name = "DIR")]
    pub secondary: PathBuf,

    /// The hypervisor the template is for
    #[arg(long, value_enum, value_name = "KIND")]
    pub hypervisor: Hypervisor,

    /// Template id (the vm_template row) [default: CloudStack's for KIND]
    #[arg(long, value_name = "N")]
    pub template_id: Option<u64>,

    /// UUID for the file name [default: a new random one]
    #[arg(long, value_name = "U")]
    pub uuid: Option<String>,

    /// Replace an existing template directory
    #[arg(long)]
    pub force: bool,
}

impl SeedArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let opts = SeedOptions {
            secondary: self.secondary,
            hypervisor: self.hypervisor,
            image: self.image,
            template_id: self.template_id,
            uuid: self.uuid,
            force: self.force,
        };
        let file = seed::seed(&opts, printer)?;
        printer.out(file.display().to_string());
        Ok(ExitStatus::Success)
    }
}
