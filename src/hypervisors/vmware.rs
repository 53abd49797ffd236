//! VMware (REFERENCE 5): the ISO goes to `<secondary>/systemvm/systemvm-<version>.iso` on
//! the NFS secondary storage this machine mounts.
//!
//! Several management servers may run at once, so planning and copying happen under a lock
//! file in the folder (`flock`, which Linux maps to NFS byte-range locks). A process that
//! takes the lock checks that the file it locked is still the one at the lock path, so a
//! lock file removed and recreated by another process cannot give two holders. The copy is
//! the transport's temp + verify + rename, so readers only ever see a whole ISO. The lock
//! file is removed on the way out.
//!
//! The share is writable by the SSVM: the folder is opened without following a symlink
//! ([`crate::dirfd`]) and the lock file is made, checked and removed through that handle,
//! as the transport ([`crate::transport::local`]) does with the ISO, its temp file and
//! `--keep`'s removals.

use super::{Action, Guard, IsoInfo, Look, Plan, Reason, Step, Strategy};
use crate::dirfd::{self, Dir};
use crate::profile;
use crate::transport::Transport;
use crate::version::Version;
use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const LOCK_NAME: &str = ".systemvm.lock";

pub struct Vmware {
    profile: profile::Vmware,
    /// The secondary storage's mount point; the folder is created inside it, never it.
    root: PathBuf,
    folder: PathBuf,
    keep: Option<usize>,
    /// `root` must be a mount point.
    require_mount: bool,
    /// The management server's own copy: divert it from its package before writing it.
    pub divert: bool,
}

impl Vmware {
    /// `root` is the mounted secondary storage (or the management server's directory).
    pub fn new(
        profile: profile::Vmware,
        root: PathBuf,
        keep: Option<usize>,
        require_mount: bool,
    ) -> Vmware {
        Vmware {
            require_mount,
            divert: false,
            folder: root.join(&profile.folder),
            root,
            profile,
            keep,
        }
    }

    /// The secondary storage itself: there, and (unless the entry allows a plain directory)
    /// a mount point. Checked by the dry run and `status` too.
    fn mounted_root(&self) -> Result<Dir> {
        // A missing or unmounted mount point means the share is not mounted: writing there
        // would fill the management server's own disk, and CloudStack would never see the file.
        let root = Dir::open(&self.root).map_err(|_| {
            anyhow::anyhow!(
                "secondary storage {} does not exist or is not a directory (is the share mounted?); nothing was written",
                self.root.display()
            )
        })?;
        if self.require_mount && !root.is_mount_point().unwrap_or(false) {
            bail!(
                "secondary storage {} is not a mount point (is the share mounted?); nothing was written (require_mount = false allows a plain directory)",
                self.root.display()
            );
        }
        Ok(root)
    }

    /// The folder on the share, made when missing and opened without following a symlink.
    fn open_folder(&self) -> Result<Dir> {
        let root = self.mounted_root()?;
        let relative = Path::new(&self.profile.folder);
        root.descend(relative, Some(0o755)).map_err(|e| {
            let folder = self.folder.display();
            if dirfd::is_planted(&e) {
                anyhow::anyhow!(
                    "{folder} is a symlink or not a directory (planted on the share?); refusing to write through it, nothing was written"
                )
            } else {
                anyhow::anyhow!("cannot create {folder}: {e}")
            }
        })
    }

    fn path_str(&self, name: &str) -> String {
        self.folder.join(name).to_string_lossy().into_owned()
    }

    /// Older `systemvm-*.iso` files beyond the newest `keep` (the new one counts).
    fn surplus(&self, t: &mut dyn Transport, current: &str) -> Result<Vec<String>> {
        let Some(keep) = self.keep else {
            return Ok(vec![]);
        };
        let mut others: Vec<(Version, String)> = t
            .list(&self.folder.to_string_lossy())?
            .into_iter()
            .filter(|n| n != current && n.starts_with("systemvm-") && n.ends_with(".iso"))
            .filter_map(|n| {
                let v = n.strip_prefix("systemvm-")?.strip_suffix(".iso")?;
                Some((Version::parse(v).ok()?, n))
            })
            .collect();
        others.sort();
        let keep_others = keep.saturating_sub(1);
        let cut = others.len().saturating_sub(keep_others);
        Ok(others.into_iter().take(cut).map(|(_, n)| n).collect())
    }
}

impl Strategy for Vmware {
    fn lock(&self, _t: &mut dyn Transport) -> Result<Option<Guard>> {
        let folder = self.open_folder()?;
        let timeout = Duration::from_secs(self.profile.lock_timeout_secs);
        Ok(Some(Box::new(FolderLock::acquire(folder, timeout)?)))
    }

    fn plan(&self, t: &mut dyn Transport, iso: &IsoInfo, look: &Look) -> Result<Plan> {
        self.mounted_root()?;
        let force = look.force;
        let name = look.name_version(iso).file_name(&self.profile.file_name);
        let target = self.path_str(&name);
        let reason = match t.stat(&target)? {
            None => Some(Reason::Absent(name.clone())),
            Some(s) if s.size != iso.size => Some(Reason::OtherSize(name.clone())),
            Some(_) => {
                let sha = t.sha256(&target)?;
                if sha.as_deref() != Some(iso.sha256.as_str()) {
                    Some(Reason::OtherContent(name.clone()))
                } else {
                    force.then_some(Reason::Forced)
                }
            }
        };
        let mut steps = Vec::new();
        let divert = self.divert.then(|| super::divert_step(&target)).flatten();
        if reason.is_some() {
            steps.extend(divert.clone());
            steps.push(Step::Upload {
                local: iso.path.clone(),
                remote: target,
                mode: self.profile.iso_mode,
                sha256: iso.sha256.clone(),
            });
        }
        let surplus = self.surplus(t, &name)?;
        steps.extend(surplus.iter().map(|n| Step::Remove {
            path: self.path_str(n),
        }));
        if steps.is_empty() {
            let mut plan = Plan::up_to_date(Reason::Matches(name));
            // Ours already (keyed in place by `startup`, say): divert it all the same.
            plan.housekeeping.extend(divert);
            return Ok(plan);
        }
        let reason = reason.unwrap_or(Reason::Surplus(surplus.len()));
        Ok(Plan {
            action: if force { Action::Force } else { Action::Push },
            reason,
            steps,
            housekeeping: vec![],
        })
    }
}

/// An exclusive lock on the lock file in the folder, removed when dropped.
pub struct FolderLock {
    folder: Dir,
    file: File,
}

impl FolderLock {
    /// Lock `folder`'s [`LOCK_NAME`], waiting at most `timeout` for another holder.
    pub fn acquire(folder: Dir, timeout: Duration) -> Result<FolderLock> {
        let deadline = Instant::now() + timeout;
        let path = folder.path().join(LOCK_NAME);
        loop {
            let file = open_lock(&folder, &path)?;
            match file.try_lock() {
                Ok(()) if still_there(&folder, &file) => return Ok(FolderLock { folder, file }),
                Ok(()) | Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()))
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} is held by another copy for over {}s",
                    path.display(),
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether the locked file is still the one at the lock's name: a previous holder may
/// have removed it (and a waiter then holds a lock on nothing).
fn still_there(folder: &Dir, file: &File) -> bool {
    let there = folder.entry(OsStr::new(LOCK_NAME)).ok().flatten();
    let ours = dirfd::identity(file).ok();
    there.zip(ours).is_some_and(|(e, id)| (e.dev, e.ino) == id)
}

/// The lock file, as the share's other writers may have planted it: a symlink is never
/// followed (nor its target created) and a FIFO or device is never waited on.
fn open_lock(folder: &Dir, path: &Path) -> Result<File> {
    folder
        .open_or_create(OsStr::new(LOCK_NAME), 0o644)
        .with_context(|| {
            format!(
                "cannot open lock {} (a symlink or FIFO planted on the share?)",
                path.display()
            )
        })
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Remove while still holding the lock, so a waiter that wakes up sees a stale inode.
        let _ = self.folder.remove(OsStr::new(LOCK_NAME));
        let _ = self.file.unlock();
    }
}
