//! The checks of each target: the startup unit may write every VMware mount, and every
//! host answers (a real connection with short timeouts, never pinning a key), concurrently.

use super::{Check, Status, TARGETS};
use crate::inventory::{Access, Directory, Inventory, Target};
use crate::kind::Hypervisor;
use crate::propagate;
use crate::sandbox;
use crate::transport::TransportError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every VMware secondary storage path must be writable in the startup unit's sandbox.
pub(super) fn unit_checks(systemd_root: &Path, inv: &Inventory, checks: &mut Vec<Check>) {
    let mounts: Vec<&Path> = inv
        .targets
        .iter()
        .filter(|t| t.hypervisor == Hypervisor::Vmware)
        .filter_map(|t| t.access.directory().map(|d| d.path.as_path()))
        .collect();
    if mounts.is_empty() {
        return;
    }
    // Not installed: the start hook is not used here, nothing to check.
    let Some(writable) = sandbox::read_write_paths(systemd_root, sandbox::UNIT) else {
        return;
    };
    for mount in mounts {
        checks.push(unit_check(&writable, mount));
    }
}

fn unit_check(writable: &[PathBuf], mount: &Path) -> Check {
    let unit = sandbox::UNIT;
    let name = format!("{unit} {}", mount.display());
    let detail = format!("{}: in the unit's ReadWritePaths", mount.display());
    let mut check = Check::of("unit", name, "startup").with(Status::Ok, detail, None);
    if !sandbox::covers(writable, mount) {
        check.status = Status::Failed;
        check.detail = format!(
            "{}: not in {unit}'s ReadWritePaths; ProtectSystem=strict makes it read-only for the start hook",
            mount.display()
        );
        let drop_in = Path::new(sandbox::VMWARE_DROP_IN);
        let dir = drop_in.parent().unwrap_or(Path::new("/")).display();
        check.fix = Some(format!(
            "mkdir -p {dir} && printf '[Service]\\nReadWritePaths=-{}\\n' >> {} && systemctl daemon-reload",
            mount.display(),
            drop_in.display()
        ));
    }
    check
}

pub(super) fn is_ssh(t: &Target) -> bool {
    matches!(t.access, Access::Ssh(..))
}

/// Every target, concurrently (at most 16 at once).
pub(super) fn host_checks(inv: &Inventory, timeout: Duration) -> Vec<Check> {
    let mut out = Vec::with_capacity(inv.targets.len());
    for chunk in inv.targets.chunks(16) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|t| s.spawn(move || host_check(t, inv, timeout)))
                .collect();
            for (t, h) in chunk.iter().zip(handles) {
                out.push(h.join().unwrap_or_else(|_| {
                    Check::of("host", &t.name, TARGETS).with(
                        Status::Failed,
                        "the check panicked",
                        None,
                    )
                }));
            }
        });
    }
    out
}

fn host_check(t: &Target, inv: &Inventory, timeout: Duration) -> Check {
    let mut check = Check::of("host", &t.name, TARGETS);
    if let Some(Directory { path, .. }) = t.access.directory() {
        let writable = path.is_dir()
            && tempfile::Builder::new()
                .prefix(".systemvm-doctor-")
                .tempfile_in(path)
                .is_ok();
        if writable {
            check.detail = format!("{}: a writable directory", path.display());
        } else {
            check.status = Status::Failed;
            check.detail = format!("{}: not a writable directory", path.display());
            check.fix = Some("mount the secondary storage there".into());
        }
        return check;
    }
    // The engine's own connection code, looking only: host keys are checked, never pinned.
    let mut opts = propagate::Options::from_inventory(inv, propagate::Mode::Status);
    opts.connect_timeout = timeout;
    opts.transfer_timeout = timeout;
    match propagate::connect(t, &opts) {
        Ok(_) => check.detail = "answers; logged in".to_string(),
        Err(e) => {
            check.status = Status::Failed;
            check.fix = Some(match e.downcast_ref::<TransportError>() {
                Some(TransportError::UnknownHostKey { .. }) => format!(
                    "check its key, then pin it: systemvm propagate --accept-new --only {}",
                    t.name
                ),
                Some(TransportError::Auth { .. }) | None => {
                    "check the inventory's credentials for this host".to_string()
                }
                Some(_) => "check the address, the port and the firewall".to_string(),
            });
            check.detail = format!("{e:#}");
        }
    }
    check
}
