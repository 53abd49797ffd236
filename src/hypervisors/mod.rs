//! One strategy per hypervisor (DESIGN decision 5). A strategy looks at a host through a
//! [`Transport`] and returns a [`Plan`]: up to date, or the exact [`Step`]s that bring it up
//! to date. The engine executes the steps, so `--dry-run` prints precisely what a real run
//! does, and a strategy never needs to know about concurrency, retries or output.

pub mod hyperv;
pub mod kvm;
pub mod marker;
pub mod patch;
mod reason;
pub mod vmware;
pub mod xenserver;

use crate::inventory::{Access, SshProfile, Target};
use crate::transport::{quote, Progress, Transport, TransportError};
use crate::version::Version;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

pub use crate::iso::identity::IsoInfo;
pub use marker::Marker;
pub use reason::Reason;

/// What a run may deliver besides the ISO.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The management server's private key, for hosts whose profile has a place for it.
    pub private_key: Option<PathBuf>,
    /// XenServer: remove CloudStack's `vmops-version-` tags, so that its next connect
    /// re-runs its host setup.
    pub reset_cloudstack_setup: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    UpToDate,
    Push,
    Force,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::UpToDate => "up to date",
            Action::Push => "push",
            Action::Force => "force",
        })
    }
}

/// One change on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Upload a local file: temp name, verify sha256, mode, rename.
    Upload {
        local: PathBuf,
        remote: String,
        mode: u32,
        sha256: String,
    },
    /// Run a command; each argument is quoted.
    Run { argv: Vec<String> },
    /// Remove a file.
    Remove { path: String },
    /// Rename a file, replacing the target.
    Rename { from: String, to: String },
    /// Divert a file of the management server's own package (dpkg-divert, [`crate::divert`]),
    /// so an upgrade of `package` writes beside ours instead of over it. Local only.
    Divert { path: String, package: String },
    /// Record `sha256` with the file's current size and mtime in a marker beside it, so
    /// later runs need not hash the file on the host again.
    Mark {
        file: String,
        marker: String,
        sha256: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Upload {
                local,
                remote,
                mode,
                ..
            } => {
                let name = local.file_name().unwrap_or_default().to_string_lossy();
                write!(f, "upload {name} to {remote} (mode {mode:04o})")
            }
            Step::Run { argv } => write!(f, "run {}", quote::command(argv)),
            Step::Remove { path } => write!(f, "remove {path}"),
            Step::Rename { from, to } => write!(f, "rename {from} to {to}"),
            Step::Mark { file, .. } => write!(f, "record the sha256 of {file}"),
            Step::Divert { path, package } => write!(
                f,
                "divert {path} from {package} (dpkg-divert --local: upgrades write {path}{})",
                crate::divert::SUFFIX
            ),
        }
    }
}

impl Step {
    /// The upload of the ISO to `remote` with `mode`.
    pub fn upload_iso(iso: &IsoInfo, remote: String, mode: u32) -> Step {
        Step::Upload {
            local: iso.path.clone(),
            remote,
            mode,
            sha256: iso.sha256.clone(),
        }
    }

    /// Recording `sha256` for `file` in `marker`.
    pub fn mark(file: &str, marker: &str, sha256: &str) -> Step {
        Step::Mark {
            file: file.to_string(),
            marker: marker.to_string(),
            sha256: sha256.to_string(),
        }
    }
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub action: Action,
    pub reason: Reason,
    pub steps: Vec<Step>,
    /// Bookkeeping a real run does even when the host is up to date (refreshing a marker).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub housekeeping: Vec<Step>,
}

impl Plan {
    /// Nothing to change, besides the `housekeeping` a real run does.
    pub fn up_to_date(reason: Reason, housekeeping: impl IntoIterator<Item = Step>) -> Plan {
        Plan {
            action: Action::UpToDate,
            reason,
            steps: vec![],
            housekeeping: housekeeping.into_iter().collect(),
        }
    }

    /// `steps` to bring the host up to date: a push, or with `force` a forced one.
    pub fn push(force: bool, reason: Reason, steps: Vec<Step>) -> Plan {
        Plan {
            action: if force { Action::Force } else { Action::Push },
            reason,
            steps,
            housekeeping: vec![],
        }
    }
}

/// What a plan is told besides what it finds on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Look {
    /// Push even what is current.
    pub force: bool,
    /// Hash what is on the host, whatever its marker or tag says.
    pub verify: bool,
    /// The management server's release, when known: VMware and Hyper-V files carry it.
    pub cloudstack: Option<Version>,
}

impl Look {
    /// The version a secondary-storage file is named after: the management server's, else
    /// the ISO's own.
    pub fn name_version<'a>(&'a self, iso: &'a IsoInfo) -> &'a Version {
        self.cloudstack.as_ref().unwrap_or(&iso.version)
    }
}

pub use crate::transport::Guard;

pub trait Strategy: Send + Sync {
    /// Take whatever lock planning and applying need; `None` when there is none. Not called
    /// by `status` or `--dry-run`, which change nothing.
    fn lock(&self, _transport: &mut dyn Transport) -> Result<Option<Guard>> {
        Ok(None)
    }

    /// Look at the host and decide.
    fn plan(&self, transport: &mut dyn Transport, iso: &IsoInfo, look: &Look) -> Result<Plan>;
}

/// The strategy for a target, from its access: the inventory pairs each endpoint with the
/// profile that fits it, so every pair makes a strategy.
pub fn strategy_for(target: &Target, extras: &Extras) -> Box<dyn Strategy> {
    match &target.access {
        Access::Ssh(_, SshProfile::Xenserver(p)) => Box::new(xenserver::XenServer {
            profile: p.clone(),
            extras: extras.clone(),
        }),
        Access::Ssh(_, SshProfile::Kvm(p)) => Box::new(kvm::Kvm {
            profile: p.clone(),
            extras: extras.clone(),
        }),
        Access::Directory(dir, p) => {
            let mut strategy = vmware::Vmware::new(p.clone(), dir.path.clone(), dir.keep);
            strategy.divert = target.hypervisor == crate::kind::Hypervisor::Management;
            Box::new(strategy)
        }
        Access::Smb(share, p) => Box::new(hyperv::Hyperv::new(p.clone(), share)),
    }
}

/// Carry out one step.
pub fn execute(
    transport: &mut dyn Transport,
    step: &Step,
    progress: Progress,
) -> Result<(), TransportError> {
    match step {
        Step::Upload {
            local,
            remote,
            mode,
            sha256,
        } => transport.upload(local, remote, *mode, sha256, progress),
        Step::Run { argv } => transport.run(&quote::command(argv)).map(drop),
        Step::Remove { path } => transport.remove(path),
        Step::Rename { from, to } => transport.rename(from, to),
        Step::Mark {
            file,
            marker,
            sha256,
        } => marker::record(transport, file, marker, sha256),
        Step::Divert { path, .. } => {
            crate::divert::add(std::path::Path::new(path)).map_err(|stderr| {
                TransportError::Command {
                    host: transport.host().to_string(),
                    command: format!("dpkg-divert --local --no-rename --add {path}"),
                    status: 1,
                    stderr,
                }
            })
        }
    }
}

/// Where the management server's own copy needs a diversion before it is written: the
/// package that owns `path`, as a step; `None` when dpkg does not own it or it is diverted.
pub fn divert_step(path: &str) -> Option<Step> {
    match crate::divert::status(std::path::Path::new(path)) {
        crate::divert::Status::Owned(package) => Some(Step::Divert {
            path: path.to_string(),
            package,
        }),
        crate::divert::Status::Unpackaged | crate::divert::Status::Diverted => None,
    }
}

/// An upload of a small local file (a key) when the host's copy differs.
pub fn deliver(
    t: &mut dyn Transport,
    local: &std::path::Path,
    remote: &str,
    mode: u32,
) -> Result<Option<Step>> {
    let sha256 = crate::hashing::sha256_file(local)
        .with_context(|| format!("cannot read {}", local.display()))?;
    let present = t.sha256(remote)?;
    Ok(
        (present.as_deref() != Some(sha256.as_str())).then(|| Step::Upload {
            local: local.to_path_buf(),
            remote: remote.to_string(),
            mode,
            sha256,
        }),
    )
}
