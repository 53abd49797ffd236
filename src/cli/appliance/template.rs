//! Which template `appliance build` makes, from the payload's shape: ours gives the minimal
//! template (the default package list, our patch service); a CloudStack checkout gives
//! CloudStack's template for the checkout's release (that release's package set and
//! services, the version from its `systemvm/pom.xml`); a checkout of Cosmic's
//! systemvm-packer gives Cosmic's template (Cosmic's set, a YY.M.D version). The flavor
//! follows the payload unless `--flavor` says otherwise, where that makes sense.

use crate::appliance::build::{CloudstackTree, Contents, CosmicTree};
use crate::appliance::configure::Flavor;
use crate::appliance::package_set::{self, PackageSet};
use crate::appliance::{cloudstack, cosmic};
use crate::appliance::{packages, rootfs};
use crate::printer::Printer;
use crate::source::{self, Shape};
use crate::version::Version;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// What the payload decided.
#[derive(Debug)]
pub struct Choice {
    pub flavor: Flavor,
    pub version: Version,
    pub packages: Vec<String>,
    pub contents: Contents,
    /// The CloudStack release's package set, when one ships.
    pub set: Option<PackageSet>,
}

/// What the command line asks for: `flavor` is `--flavor`, `version` `--version` (a date
/// one from `epoch` when absent and not the checkout's), `own` the `--packages-file` list.
pub struct Request<'a> {
    pub payload: &'a Path,
    pub agent_jars_from: Option<&'a Path>,
    pub flavor: Option<Flavor>,
    pub version: Option<Version>,
    pub own: Option<Vec<String>>,
    pub epoch: i64,
}

/// Decide from the payload.
pub fn choose(req: Request) -> Result<Choice> {
    if cosmic::is_checkout(req.payload) {
        return cosmic_choice(req);
    }
    match source::detect(req.payload)? {
        Shape::Ours => {
            refuse_agent_jars(req.agent_jars_from, req.payload, "our payload")?;
            let default = || packages::parse(packages::DEFAULT, "the default package list");
            Ok(Choice {
                flavor: req.flavor.unwrap_or(Flavor::Cloudstack),
                version: req.version.unwrap_or_else(|| Version::date(req.epoch)),
                packages: req.own.map_or_else(default, Ok)?,
                contents: Contents::Minimal {
                    payload: req.payload.to_path_buf(),
                },
                set: None,
            })
        }
        Shape::CloudstackTree => cloudstack_choice(req),
    }
}

fn cloudstack_choice(req: Request) -> Result<Choice> {
    let tree = req.payload;
    if req.flavor == Some(Flavor::Cosmic) {
        bail!(
            "{} is a CloudStack checkout: --flavor cosmic takes a checkout of Cosmic's systemvm-packer, or our payload",
            tree.display()
        );
    }
    let version = match req.version {
        Some(v) => v,
        None => cloudstack::tree_version(tree)?,
    };
    let exact = package_set::for_version(&version)?;
    let (packages, services) = match (req.own, &exact) {
        (Some(list), _) => (list, services_for(&version)?.services),
        (None, Some(set)) => (set.packages(), set.services.clone()),
        (None, None) => bail!(
            "CloudStack {version} ({}) has no package list here (there are {}): pass one with --packages-file FILE",
            tree.display(),
            package_set::releases()
        ),
    };
    Ok(Choice {
        flavor: Flavor::Cloudstack,
        version,
        packages,
        contents: Contents::Cloudstack(Box::new(CloudstackTree {
            tree: tree.to_path_buf(),
            agent_jars_from: req.agent_jars_from.map(Path::to_path_buf),
            services,
        })),
        set: exact,
    })
}

fn cosmic_choice(req: Request) -> Result<Choice> {
    let tree = req.payload;
    if req.flavor == Some(Flavor::Cloudstack) {
        bail!(
            "{} is Cosmic's systemvm-packer: it makes --flavor cosmic (drop --flavor cloudstack)",
            tree.display()
        );
    }
    let what = "Cosmic's systemvm-packer (its template ships no agent)";
    refuse_agent_jars(req.agent_jars_from, tree, what)?;
    let set = package_set::cosmic()?;
    Ok(Choice {
        flavor: Flavor::Cosmic,
        version: req.version.unwrap_or_else(|| Version::date(req.epoch)),
        packages: req.own.unwrap_or_else(|| set.packages()),
        contents: Contents::Cosmic(Box::new(CosmicTree {
            tree: tree.to_path_buf(),
            services: set.services.clone(),
        })),
        set: Some(set),
    })
}

/// `--agent-jars-from` with a payload that is not a CloudStack checkout (`what` it is).
fn refuse_agent_jars(agent_jars_from: Option<&Path>, payload: &Path, what: &str) -> Result<()> {
    match agent_jars_from {
        Some(from) => bail!(
            "--agent-jars-from {} is for a CloudStack checkout; {} is {what}",
            from.display(),
            payload.display()
        ),
        None => Ok(()),
    }
}

/// The services of the newest set not newer than `version`, else the oldest set: with
/// `--packages-file` a release without its own set still enables and disables like the
/// nearest one.
fn services_for(version: &Version) -> Result<PackageSet> {
    let mut sets = package_set::all()?;
    sets.sort_by_key(|s| Version::parse(&s.release).map(|v| v.major_minor()).ok());
    let at_most = sets
        .iter()
        .rposition(|s| Version::parse(&s.release).is_ok_and(|v| v <= *version));
    let index = at_most.unwrap_or(0);
    sets.into_iter()
        .nth(index)
        .ok_or_else(|| anyhow::anyhow!("no package set ships with this program"))
}

/// Warn about the set's packages that Debian lacks and no `--extra-deb` brought.
pub fn report_missing_extras(set: &PackageSet, debs: &[PathBuf], printer: &Printer) -> Result<()> {
    let given: Vec<String> = debs
        .iter()
        .map(|d| rootfs::deb_package(d))
        .collect::<Result<_>>()?;
    let missing: Vec<String> = set
        .extras
        .iter()
        .filter(|e| !given.contains(&e.name))
        .map(|e| format!("{} ({})", e.name, e.why))
        .collect();
    if !missing.is_empty() {
        printer.warn(format!(
            "CloudStack {}'s template also has what Debian lacks, missing here (give each with --extra-deb FILE): {}",
            set.release,
            missing.join("; ")
        ));
    }
    Ok(())
}
