//! Which ISO or patch files, which targets, and how to reach them: the arguments `status`
//! and `propagate` share, resolved against the inventory and the CloudStack generation.

use crate::cli::cloudstack::ApiArgs;
use crate::cloudstack::capabilities;
use crate::dblock::DbConfig;
use crate::generation::{Generation, Source};
use crate::hypervisors::patch::PatchSet;
use crate::hypervisors::IsoInfo;
use crate::inventory::{self, Inventory, Target};
use crate::kind::Hypervisor;
use crate::printer::{OutputFormat, Printer};
use crate::propagate::{Mode, Options};
use crate::version::Version;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Which ISO, which hosts, and how to reach them
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Inventory of hosts and secondary storages
    #[arg(long, value_name = "FILE", env = "SYSTEMVM_INVENTORY", default_value = inventory::DEFAULT_PATH)]
    pub inventory: PathBuf,

    /// The ISO to propagate
    #[arg(
        long,
        value_name = "ISO",
        env = "SYSTEMVM_ISO",
        default_value = "/usr/share/cloudstack-common/vms/systemvm.iso"
    )]
    pub iso: PathBuf,

    /// CloudStack 4.17+: push this `build --layout patch-files` output instead
    #[arg(long, value_name = "DIR", conflicts_with = "iso_version")]
    pub patch_files: Option<PathBuf>,

    /// The ISO's version [default: from its manifest or volume id]
    #[arg(long = "iso-version", value_name = "V")]
    pub iso_version: Option<String>,

    /// Only these targets (repeat, or separate with commas)
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub only: Vec<String>,

    /// Only targets of this hypervisor (any case, as CloudStack spells it too)
    #[arg(long, value_name = "KIND", value_enum, ignore_case = true)]
    pub hypervisor: Option<Hypervisor>,

    /// Targets worked on at once
    #[arg(long, short = 'j', value_name = "N", default_value_t = 16,
          allow_negative_numbers = true, value_parser = crate::cli::parse_jobs)]
    pub jobs: usize,

    /// known_hosts file [default: the inventory's, else /etc/systemvm/known_hosts]
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,

    /// Trust and pin host keys not yet in known_hosts (never a changed key)
    #[arg(long)]
    pub accept_new: bool,

    /// Hash each target's ISO on the host, whatever its marker or tag says (markers are
    /// otherwise trusted for 7 days while size and mtime are unchanged)
    #[arg(long)]
    pub verify: bool,

    /// Seconds to wait for a connection (0 means 1) [default: inventory, else 10]
    #[arg(long, value_name = "SECS")]
    pub connect_timeout: Option<u64>,

    /// Seconds a transfer or command may stall (0 means 1) [default: inventory,
    /// else 120]
    #[arg(long, value_name = "SECS")]
    pub transfer_timeout: Option<u64>,

    /// Retries for connection resets and time-outs, 0 to 20 [default: inventory, else 2]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(..=crate::timeout::MAX_RETRIES as i64))]
    pub retries: Option<u32>,

    /// Bound on the whole run: then targets not done fail "deadline reached"
    #[arg(long, value_name = "SECS", allow_negative_numbers = true,
          value_parser = crate::cli::parse_secs)]
    pub deadline: Option<u64>,

    /// The management server's CloudStack release, e.g. 4.20.0.0: ISO or patch files, and
    /// the VMware and Hyper-V file name [default: the inventory's cloudstack_version, else
    /// listCapabilities when --api-url is given]
    #[arg(long, value_name = "VERSION")]
    pub cloudstack_version: Option<String>,

    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,

    #[command(flatten)]
    pub api: ApiArgs,
}

impl TargetArgs {
    /// The selected targets, what goes out and the engine's options, all checked before
    /// any host is contacted.
    pub fn prepare(
        &self,
        mode: Mode,
        printer: &Printer,
    ) -> Result<(Vec<Target>, IsoInfo, Options)> {
        if self.accept_new && mode != Mode::Apply {
            let what = if mode == Mode::Status {
                "status"
            } else {
                "a dry run"
            };
            printer.warn(format!(
                "--accept-new pins nothing in {what} (dry runs and status never pin); \
                 run systemvm propagate --accept-new without --dry-run to pin"
            ));
        }
        let inv = Inventory::load(&self.inventory)?;
        let mut targets = self.select(&inv)?;
        let mut opts = Options::from_inventory(&inv, mode);
        let generation = self.generation(&inv, printer)?;
        if let Some(g) = &generation {
            self.check_generation(g)?;
            match self.output_format {
                OutputFormat::Json => printer.record(&crate::events::Record::cloudstack(g)),
                OutputFormat::Human => printer.info(g.to_string()),
            }
        }
        let iso = match &self.patch_files {
            Some(dir) => {
                let set = PatchSet::load(dir)?;
                for line in crate::hypervisors::patch::retain_takers(&mut targets) {
                    printer.info(line);
                }
                if targets.is_empty() {
                    bail!("no selected target takes patch files (XenServer, KVM or management)");
                }
                let info = set.info();
                opts.patch = Some(set);
                info
            }
            None => IsoInfo::from_path(&self.iso, self.iso_version.as_deref())?,
        };
        // The ISO (or patch files) built for another release than the management server's.
        if let Some(line) = generation
            .as_ref()
            .and_then(|g| g.mismatch(&iso.version, self.patch_files.is_some()))
        {
            printer.warn(line);
        }
        opts.cloudstack = generation.map(|g| g.version);
        if let Some(db) = &inv.cloudstack_db {
            let config =
                DbConfig::load(&db.properties, db.password_file.as_deref(), db.lock_timeout);
            opts.db =
                Some(config.with_context(|| format!("{}: [cloudstack_db]", inv.path.display()))?);
        }
        self.apply_flags(&mut opts);
        // After the ISO: a damaged ISO is named first. Before any host is contacted.
        crate::inventory::identity::check(&inv, &targets)?;
        Ok((targets, iso, opts))
    }

    /// The inventory's targets that `--only` and `--hypervisor` select; naming a target or
    /// kind that is not there is an error.
    fn select(&self, inv: &Inventory) -> Result<Vec<Target>> {
        let mut targets: Vec<Target> = inv.targets.clone();
        let file = self.inventory.display();
        for name in &self.only {
            if !targets.iter().any(|t| &t.name == name) {
                bail!("--only {name}: no such target in {file}");
            }
        }
        if !self.only.is_empty() {
            targets.retain(|t| self.only.contains(&t.name));
        }
        if let Some(kind) = self.hypervisor {
            targets.retain(|t| t.hypervisor == kind);
            if targets.is_empty() {
                bail!("--hypervisor {}: no such targets in {file}", kind.as_str());
            }
        }
        if targets.is_empty() {
            bail!("no targets selected in {file}");
        }
        Ok(targets)
    }

    /// The command line's settings over the inventory's.
    fn apply_flags(&self, opts: &mut Options) {
        opts.jobs = self.jobs;
        opts.accept_new = self.accept_new;
        opts.verify = self.verify;
        if let Some(k) = &self.known_hosts {
            opts.known_hosts = k.clone();
        }
        let secs = crate::timeout::secs;
        opts.connect_timeout = self.connect_timeout.map_or(opts.connect_timeout, secs);
        opts.transfer_timeout = self.transfer_timeout.map_or(opts.transfer_timeout, secs);
        opts.retries = self.retries.unwrap_or(opts.retries);
        opts.deadline = self.deadline.map(Duration::from_secs);
    }

    /// The release from the flag, the inventory, or the API (only when --api-url is given).
    fn generation(&self, inv: &Inventory, printer: &Printer) -> Result<Option<Generation>> {
        let (text, source) = match (&self.cloudstack_version, &inv.cloudstack_version) {
            (Some(v), _) => (v.clone(), Source::Flag),
            (None, Some(v)) => (v.to_string(), Source::Inventory),
            (None, None) if self.api.api_url.is_some() => {
                let client = self.api.client()?;
                match capabilities::cloudstack_version(&client) {
                    Ok(version) => (version.to_string(), Source::Api),
                    Err(e) => {
                        printer.warn(format!(
                            "cannot learn the management server's release ({e}); \
                             pass --cloudstack-version"
                        ));
                        return Ok(None);
                    }
                }
            }
            (None, None) => return Ok(None),
        };
        let version = Version::parse(&text).with_context(|| format!("{source}"))?;
        Ok(Some(Generation { version, source }))
    }

    /// An ISO for a 4.17+ management server, or patch files for an older one, do nothing.
    fn check_generation(&self, g: &Generation) -> Result<()> {
        let v = &g.version;
        match (g.takes_patch_files(), self.patch_files.is_some()) {
            (true, false) => bail!(
                "{g}; pass --patch-files DIR (systemvm build --version {v} -o DIR writes them)"
            ),
            (false, true) => bail!("{g}; pass --iso, not --patch-files"),
            _ => Ok(()),
        }
    }
}
