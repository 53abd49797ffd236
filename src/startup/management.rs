//! The management server's own copy as startup's first target: `systemvm.iso` (up to 4.16)
//! or the patch files (4.17+) in `management_dir`, which CloudStack hands to hosts and
//! copies to VMware and Hyper-V storage itself. When the payload is not that copy, startup
//! updates it first (temp, verify, rename; diverted from its dpkg package first, as the
//! `management` target kind does), with no inventory entry; when the payload is that copy
//! (the default ISO), there is nothing to add. An inventory `management` target for the
//! same directory is used as it is.

use super::{Config, Source};
use crate::inventory::{Access, Directory, Inventory, Place, Target};
use crate::kind::Hypervisor;
use anyhow::{bail, Result};
use std::path::Path;

/// The name the added target is reported under.
pub const NAME: &str = "management-server";

/// The management server's copy as a target, or `None` when the payload (the ISO file or
/// the patch-files directory) is that copy or the inventory already has a management target
/// for it. Its directory must exist.
pub(super) fn target(config: &Config, inv: &Inventory, payload: &Source) -> Result<Option<Target>> {
    let dir = &config.management_dir;
    let (source, copy) = match payload {
        Source::Iso(iso) => (iso.path.as_path(), dir.join(profile()?.file_name)),
        Source::PatchFiles(set) => (set.dir.as_path(), dir.clone()),
    };
    if same(source, &copy) || in_inventory(inv, dir) {
        return Ok(None);
    }
    if !dir.is_dir() {
        bail!(
            "{}: management_dir {} is not a directory (is cloudstack-common installed?); nothing was changed",
            config.path.display(),
            dir.display()
        );
    }
    if let Some(t) = inv.targets.iter().find(|t| t.name == NAME) {
        bail!(
            "{}: a target is named {NAME:?}, the name startup gives the management server's own copy; rename it",
            t.name
        );
    }
    Ok(Some(Target {
        name: NAME.into(),
        hypervisor: Hypervisor::Management,
        place: Place::Secondary,
        zone: None,
        cluster: None,
        access: Access::Directory(
            Directory {
                path: dir.clone(),
                keep: None,
                require_mount: false,
            },
            profile()?,
        ),
    }))
}

/// The built-in management profile (VMware's folder settings for this server's own copy).
fn profile() -> Result<crate::profile::Vmware> {
    match crate::profile::load(Hypervisor::Management.as_str(), None)? {
        crate::profile::Profile::Management(p) => Ok(p),
        _ => bail!("the built-in management profile is not one"),
    }
}

/// The same file or directory: the same path, or the same one once links are resolved.
fn same(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn in_inventory(inv: &Inventory, dir: &Path) -> bool {
    inv.targets.iter().any(|t| {
        t.hypervisor == Hypervisor::Management
            && t.access.directory().is_some_and(|d| same(&d.path, dir))
    })
}
