//! `systemvm startup`: the management server's start hook, from one config file.
//!
//! The release (the config's `cloudstack_version`, else the inventory's) decides what goes
//! out: the ISO up to 4.16, a `build --layout patch-files` directory (`patch_files`) from
//! 4.17; the wrong one for the release is a config error saying what to set.
//!
//! Three stages, each idempotent, so running it again changes nothing that is current:
//! 1. **Keys**: the configured pair is used as it is, generated when missing (private 0600,
//!    `.pub` 0644), or CloudStack's own pair of the `cloud` user is used in place
//!    (`import_from`, read only, never copied). A missing CloudStack key (cloudstack-management
//!    writes it on its first start, after this hook) is a warning: the ISO is propagated as
//!    it is and keyed on the next start. A key to deliver must be the pair the system VMs
//!    trust, in a format the hosts read ([`crate::keys::deliver`]).
//! 2. **Inject** the public keys into the ISO ([`crate::inject`]: unchanged, patched or
//!    remastered; a new file renamed into place). Patch files carry no key (4.16+ VMs trust
//!    CloudStack's key from their boot arguments).
//! 3. **Propagate** to the inventory in-process ([`crate::propagate`]) with what is left of
//!    the overall deadline, so a dead or silent host can never hang the management server's
//!    start (a watchdog exits 1 shortly after it, should anything no timeout bounds still
//!    run). Hosts that fail are reported and retried on the next start. The management
//!    server's own copy (`management_dir`) is a target too, done first, unless the payload
//!    is that copy itself ([`management`]).
//!
//! The config is parsed strictly (unknown keys, wrong types, relative paths are errors
//! naming `file:line`). Messages are one line per event on stderr, without progress bars or
//! colour unless on a terminal, as journald wants them.

use crate::exit::ExitStatus;
use crate::generation::{Generation, Source as GenerationSource};
use crate::hypervisors::patch::PatchSet;
use crate::hypervisors::IsoInfo;
use crate::inject::{self, Outcome as InjectOutcome};
use crate::inventory::{Inventory, Target};
use crate::keys::deliver::{self, Delivery, Trusted};
use crate::keys::untrusted;
use crate::keys::{self, KeyType};
use crate::printer::Printer;
use crate::propagate::{self, Event, Mode, Options, Outcome};
use crate::version::Version;
use anyhow::{bail, Context, Result};
use ssh_key::PublicKey;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const DEFAULT_CONFIG: &str = "/etc/systemvm/config.toml";
pub const DEFAULT_ISO: &str = "/usr/share/cloudstack-common/vms/systemvm.iso";
/// Seconds the whole run may take by default; the unit's `TimeoutStartSec` is a bit more.
pub const DEFAULT_DEADLINE: u64 = 300;
/// Where CloudStack keeps the `cloud` user's key pair.
pub const CLOUDSTACK_KEY: &str = crate::keys::deliver::CLOUDSTACK_KEY;
/// The management server's own copy: `systemvm.iso` up to 4.16, the patch files from 4.17.
pub const DEFAULT_MANAGEMENT_DIR: &str = "/usr/share/cloudstack-common/vms";

mod config;
mod management;

pub use config::{Config, ConfigError, KeySource, Payload};

/// What a run did; host failures and warnings make exit status 1.
#[derive(Debug, Default)]
pub struct Summary {
    pub targets: usize,
    pub updated: usize,
    pub current: usize,
    pub failed: Vec<String>,
    /// Things left for the next start (a CloudStack key not there yet).
    pub pending: Vec<String>,
}

/// The key pair for this run: public keys to inject and the private key to deliver.
struct Pair {
    public: Vec<PublicKey>,
    private: PathBuf,
    /// An imported pair's checked copy, which `private` names; removed with the pair.
    _snapshot: Option<untrusted::Snapshot>,
}

/// What goes out: the ISO (keyed in place) or a patch-files build.
enum Source {
    Iso(IsoInfo),
    PatchFiles(PatchSet),
}

impl Source {
    fn info(&self) -> IsoInfo {
        match self {
            Source::Iso(info) => info.clone(),
            Source::PatchFiles(set) => set.info(),
        }
    }
}

/// Run the three stages. Errors are fatal (config, keys, ISO, inventory): exit 2.
/// `on_event` sees the propagation's events, as `propagate` renders them.
pub fn run(config: &Config, printer: &Printer, on_event: impl FnMut(Event)) -> Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary::default();
    // Check the cheap things first, so bad input changes nothing.
    let inv = Inventory::load(&config.inventory)?;
    let generation = generation(config, &inv);
    let mut source = load_source(config, generation.as_ref(), printer)?;
    if let Some(g) = &generation {
        printer.info(g.to_string());
    }
    let mut extra = Vec::new();
    for path in &config.extra_keys {
        extra.extend(keys::read_public_keys(path)?);
    }
    // What the system VMs are: the management server's release, else the payload's.
    let release = generation
        .as_ref()
        .map_or_else(|| source.info().version, |g| g.version.clone());
    check_delivery(config, &release)?;
    let targets = select_targets(config, &inv, &source, printer)?;

    let pair = ensure_keys(config, printer, &mut summary)?;
    let delivery = prepare_delivery(config, pair.as_ref(), &extra, &release, printer)?;
    if let (Some(pair), Source::Iso(iso)) = (&pair, &mut source) {
        if key_iso(&iso.path, pair, extra, printer)? {
            *iso = IsoInfo::from_path(&iso.path, config.iso_version.as_deref())?;
        }
    }

    // After the keys (a generated pair may be the identity), before any host is contacted.
    crate::inventory::identity::check(&inv, &targets)?;
    summary.targets = targets.len();
    if targets.is_empty() {
        printer.info(format!(
            "propagate: no targets in {}",
            config.inventory.display()
        ));
        return Ok(summary);
    }
    let mut opts = propagate_options(config, &inv, delivery.as_ref(), started);
    opts.cloudstack = generation.map(|g| g.version);
    let info = source.info();
    if let Source::PatchFiles(set) = source {
        opts.patch = Some(set);
    }
    printer.info(format!(
        "propagate: {} {} (sha256 {}) to {} target(s), {} s left",
        info.path.display(),
        info.version,
        &info.sha256[..12.min(info.sha256.len())],
        targets.len(),
        opts.deadline.unwrap_or_default().as_secs()
    ));
    watchdog(opts.deadline.unwrap_or_default() + WATCHDOG_GRACE, printer);
    let reports = propagate::run(&targets, &info, &opts, on_event);
    for r in &reports {
        match r.outcome {
            Outcome::Updated => summary.updated += 1,
            Outcome::Current => summary.current += 1,
            Outcome::Failed | Outcome::Stale => summary.failed.push(r.host.clone()),
        }
    }
    Ok(summary)
}

/// The management server's release: the config's `cloudstack_version`, else the
/// inventory's.
fn generation(config: &Config, inv: &Inventory) -> Option<Generation> {
    let (version, source) = match (&config.cloudstack_version, &inv.cloudstack_version) {
        (Some(v), _) => (v.clone(), GenerationSource::Config),
        (None, Some(v)) => (v.clone(), GenerationSource::Inventory),
        (None, None) => return None,
    };
    Some(Generation { version, source })
}

/// The ISO or the patch files, checked; the wrong one for the release is refused, saying
/// what to set.
fn load_source(config: &Config, g: Option<&Generation>, printer: &Printer) -> Result<Source> {
    let file = config.path.display();
    let source = match (&config.payload, g) {
        (Payload::Iso(_), Some(g)) if g.takes_patch_files() => bail!(
            "{file}: {g}; set patch_files = \"DIR\" (systemvm build --version {} --layout patch-files -o DIR writes them)",
            g.version
        ),
        (Payload::PatchFiles(_), Some(g)) if !g.takes_patch_files() => {
            bail!("{file}: {g}; set iso, not patch_files")
        }
        (Payload::Iso(iso), _) => {
            if !iso.is_file() {
                bail!("{file}: the ISO {} does not exist", iso.display());
            }
            // Its version must be known before it is keyed; hashed again if keying changes it.
            Source::Iso(IsoInfo::from_path(iso, config.iso_version.as_deref())?)
        }
        (Payload::PatchFiles(dir), _) => {
            Source::PatchFiles(PatchSet::load(dir).with_context(|| format!("{file}: patch_files"))?)
        }
    };
    let patch_files = matches!(source, Source::PatchFiles(_));
    if let Some(line) = g.and_then(|g| g.mismatch(&source.info().version, patch_files)) {
        printer.warn(line);
    }
    Ok(source)
}

/// The inventory's targets (for patch files, those that take them), after the management
/// server's own copy when the payload is not that copy itself.
fn select_targets(
    config: &Config,
    inv: &Inventory,
    source: &Source,
    printer: &Printer,
) -> Result<Vec<Target>> {
    let mut targets = inv.targets.clone();
    if let Source::PatchFiles(_) = source {
        for line in crate::hypervisors::patch::retain_takers(&mut targets) {
            printer.info(line);
        }
    }
    if let Some(own) = management::target(config, inv, source)? {
        targets.insert(0, own);
    }
    Ok(targets)
}

/// Inject the pair's public keys and `extra` into the ISO; whether the ISO changed.
fn key_iso(iso: &Path, pair: &Pair, extra: Vec<PublicKey>, printer: &Printer) -> Result<bool> {
    let mut all = pair.public.clone();
    all.extend(extra);
    let done = inject::inject(iso, &all, &inject::Target::Replace)?;
    let what = match done.outcome {
        InjectOutcome::Unchanged => "unchanged (the keys are already there)",
        InjectOutcome::Patched => "keyed (key area rewritten)",
        InjectOutcome::Remastered => "keyed (remastered with a key area)",
    };
    printer.info(format!(
        "inject: {} {what}, {} key(s)",
        iso.display(),
        all.len()
    ));
    Ok(done.outcome != InjectOutcome::Unchanged)
}

/// The key to deliver, when the config delivers one and the pair is there: the pair the
/// system VMs trust (CloudStack's key from 4.16; up to 4.15 the ISO's, which is about to be
/// keyed with the pair and `extra`), in a format the hosts read.
fn prepare_delivery(
    config: &Config,
    pair: Option<&Pair>,
    extra: &[PublicKey],
    release: &Version,
    printer: &Printer,
) -> Result<Option<Delivery>> {
    let Some(pair) = pair.filter(|_| config.deliver_key) else {
        return Ok(None);
    };
    let iso = config.iso().unwrap_or(&config.management_dir);
    let trusted = Trusted::for_version(release, &config.cloudstack_public_key, iso, || {
        Ok(pair.public.iter().chain(extra).cloned().collect())
    })?;
    let delivery = deliver::prepare(&pair.private, config.private_key(), release, &trusted)
        .with_context(|| format!("{}: [keys] deliver", config.path.display()))?;
    if let Some(note) = &delivery.note {
        printer.info(note);
    }
    Ok(Some(delivery))
}

/// The engine's options: the inventory's, the config's jobs and host-key rule, what is
/// left of the deadline, and the private key when the config delivers it.
fn propagate_options(
    config: &Config,
    inv: &Inventory,
    delivery: Option<&Delivery>,
    started: Instant,
) -> Options {
    let mut opts = Options::from_inventory(inv, Mode::Apply);
    opts.jobs = config.jobs;
    opts.accept_new = config.accept_new;
    opts.deadline = Some(config.deadline.saturating_sub(started.elapsed()));
    opts.extras.private_key = delivery.map(|d| d.path().to_path_buf());
    opts
}

/// How long past the deadline the watchdog waits for targets still in flight.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(15);

/// The backstop behind the engine's deadline: a call that no timeout bounds (a name lookup
/// stuck in the resolver, a hung local file system) must not hold the management server
/// either. Armed only for propagation, when every write left is remote and goes to a temp
/// name first (a leftover temp file is cleared by the next upload): exit 1 after `after`.
fn watchdog(after: Duration, printer: &Printer) {
    let printer = printer.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        printer.warn(format!(
            "startup: still waiting {} s after the deadline; giving up (targets in flight are retried on the next start)",
            WATCHDOG_GRACE.as_secs()
        ));
        std::process::exit(1);
    });
}

/// Make sure the pair exists; `None` when CloudStack's key is not there yet.
fn ensure_keys(config: &Config, printer: &Printer, summary: &mut Summary) -> Result<Option<Pair>> {
    match &config.keys {
        KeySource::Import(private) => {
            let public = keys::pub_path(private);
            // Not following links: a planted symlink is refused below, not "not there yet".
            let present = |p: &Path| std::fs::symlink_metadata(p).is_ok();
            if !present(private) || !present(&public) {
                let note = format!(
                    "CloudStack's key {} is not there yet (cloudstack-management writes it on its first start); the ISO goes out unkeyed now and is keyed on the next start",
                    private.display()
                );
                printer.warn(format!("keys: {note}"));
                summary.pending.push(note);
                return Ok(None);
            }
            // The cloud user owns that directory: read the pair once, safely, and deliver
            // the checked copy.
            let snapshot = untrusted::snapshot_pair(private)
                .map_err(|e| anyhow::anyhow!("keys.import_from: {e:#}"))?;
            log_keys("using CloudStack's", private, &snapshot.public, printer);
            Ok(Some(Pair {
                public: snapshot.public.clone(),
                private: snapshot.private(),
                _snapshot: Some(snapshot),
            }))
        }
        KeySource::Own { path, kind } => {
            let (what, public) = if path.exists() {
                ("using", own_public_keys(path)?)
            } else {
                keys::check_target(path, false)?;
                let key = keys::generate(*kind, None, &keys::default_comment())?;
                keys::save_pair(&key, path, None, false)?;
                ("generated", vec![key.public_key().clone()])
            };
            log_keys(what, path, &public, printer);
            Ok(Some(Pair {
                public,
                private: path.clone(),
                _snapshot: None,
            }))
        }
    }
}

/// The public keys of our existing pair, whose private key must be ours alone.
fn own_public_keys(path: &Path) -> Result<Vec<PublicKey>> {
    if let Some(problem) = crate::secret::mode_problem(path) {
        bail!("keys.path: {problem}");
    }
    let public = keys::pub_path(path);
    if !public.exists() {
        let (private, public) = (path.display(), public.display());
        bail!("{private} exists but {public} does not; recreate it with `ssh-keygen -y -f {private} > {public}`");
    }
    Ok(keys::read_public_keys(&public)?)
}

fn log_keys(what: &str, path: &Path, public: &[PublicKey], printer: &Printer) {
    for key in public {
        let info = keys::info(key);
        printer.info(format!(
            "keys: {what} {} ({} {} {})",
            path.display(),
            info.algorithm,
            info.bits,
            info.fingerprint
        ));
    }
}

/// Our own pair on the hosts as `id_rsa.cloud` is right only while the system VMs trust the
/// ISO's key (up to 4.15). From 4.16 they trust CloudStack's key from their boot arguments,
/// so any other key on the hosts cuts them off: only CloudStack's own pair may go.
/// Checked before a key is generated, so a refused config makes none. Hosts up to 4.19 read
/// only PEM RSA: a pair still to be generated must be RSA.
fn check_delivery(config: &Config, release: &Version) -> Result<()> {
    let (KeySource::Own { path, kind }, true) = (&config.keys, config.deliver_key) else {
        return Ok(());
    };
    if deliver::trusts_cloudstack(release) {
        bail!(
            "{}: [keys] deliver = true would put systemvm's own key on every host, but \
             CloudStack {release} system VMs trust only CloudStack's key: set \
             import_from = \"{CLOUDSTACK_KEY}\", or deliver = false",
            config.path.display()
        );
    }
    if deliver::reads_pem_only(release) && *kind != KeyType::Rsa && !path.exists() {
        bail!(
            "{}: [keys] deliver = true with type = \"{kind}\": CloudStack {release} hosts read \
             only PEM RSA keys; set type = \"rsa\" (or use CloudStack's own id_rsa with \
             import_from)",
            config.path.display()
        );
    }
    Ok(())
}

/// A run's summary as its exit status.
pub fn verdict(summary: &Summary) -> ExitStatus {
    let mut parts = Vec::new();
    if !summary.failed.is_empty() {
        parts.push(format!(
            "failed: {} (retried on the next start, or run `systemctl start systemvm-startup`)",
            summary.failed.join(", ")
        ));
    }
    if !summary.pending.is_empty() {
        parts.push("keys pending".to_string());
    }
    if parts.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Partial(format!("startup incomplete: {}", parts.join("; ")))
    }
}
