//! Reading key files from a directory a less trusted user owns: CloudStack's own pair in
//! `/var/lib/cloudstack/management/.ssh/`, which belongs to the `cloud` user.
//!
//! We run as root, so whatever such a user plants there must not make us read another file:
//! each file is opened with `O_NOFOLLOW | O_NONBLOCK` (a symlink is refused, a FIFO cannot
//! hang us), checked on the open handle (a regular file, owned by root or by the directory's
//! owner, not readable by others, of a sane size) and read once. The private half is then
//! checked to be a private key whose public half is the `.pub` file's, by `ssh-keygen -y`, and
//! copied into a root-only temp file: what is delivered is exactly what was checked.

use anyhow::{bail, Context, Result};
use ssh_key::PublicKey;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::Command;

/// No key file of ours is larger.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// A key pair read once from an untrusted directory.
pub struct Snapshot {
    pub public: Vec<PublicKey>,
    /// The checked bytes, as `key` (0600) and `key.pub` in a root-only temp directory that
    /// lives as long as this.
    dir: KeyDir,
}

/// A root-only temp directory for copies of private keys: removed when dropped, and on
/// SIGINT or SIGTERM too ([`crate::interrupt`]), so no key copy outlives the run.
#[derive(Debug)]
pub struct KeyDir(tempfile::TempDir);

impl KeyDir {
    pub fn new() -> Result<KeyDir> {
        let dir = tempfile::Builder::new()
            .prefix(".systemvm-key.")
            .tempdir()
            .context("cannot create a temp directory for a key")?;
        crate::interrupt::register(dir.path());
        Ok(KeyDir(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        crate::interrupt::forget(self.0.path());
    }
}

impl Snapshot {
    /// The private key's copy (its `.pub` is beside it).
    pub fn private(&self) -> std::path::PathBuf {
        self.dir.path().join("key")
    }
}

/// Read `private` and its `.pub` once, safely, and check that they are a pair.
pub fn snapshot_pair(private: &Path) -> Result<Snapshot> {
    let dir = private.parent().unwrap_or(Path::new("/"));
    let dir_meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if !dir_meta.is_dir() {
        bail!("{} is not a directory (a symlink?); refused", dir.display());
    }
    let owners = [0, dir_meta.uid()];
    let public_path = super::pub_path(private);
    let private_bytes = read_regular(private, &owners, true)?;
    let public_bytes = read_regular(&public_path, &owners, false)?;
    let text = String::from_utf8(public_bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a public key file", public_path.display()))?;
    let public = super::parse_public_keys(&text, &public_path)?;
    let dir = KeyDir::new()?;
    let snapshot = Snapshot { public, dir };
    let copy = snapshot.private();
    write_new(&copy, &private_bytes, 0o600)?;
    write_new(&super::pub_path(&copy), text.as_bytes(), 0o644)?;
    check_pair(&copy, private, &snapshot.public)?;
    Ok(snapshot)
}

/// Create `path` (which must not exist) with `mode` and `bytes`.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The bytes of `path`, which must be a regular file owned by one of `owners`; a `secret`
/// file must not be readable by group or others.
pub fn read_regular(path: &Path, owners: &[u32], secret: bool) -> Result<Vec<u8>> {
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => anyhow::anyhow!("{} is a symlink; refused", path.display()),
            _ => anyhow::Error::new(e).context(format!("cannot open {}", path.display())),
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file; refused", path.display());
    }
    if !owners.contains(&meta.uid()) {
        bail!(
            "{} is owned by uid {}, not by root or the directory's owner; refused",
            path.display(),
            meta.uid()
        );
    }
    let mode = meta.mode() & 0o7777;
    if secret && mode & 0o077 != 0 {
        bail!(
            "{} has mode {mode:04o}: others can read it; chmod 600 it",
            path.display()
        );
    }
    if meta.len() > MAX_KEY_FILE {
        bail!(
            "{} is {} bytes, too large for a key; refused",
            path.display(),
            meta.len()
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut file)
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

/// The public half of the private key at `path`, by `ssh-keygen -y`: an error unless it is
/// an unencrypted private key (OpenSSH, or the PEM CloudStack writes).
pub fn public_half(path: &Path) -> Result<PublicKey> {
    public_half_shown(path, path)
}

fn public_half_shown(path: &Path, shown: &Path) -> Result<PublicKey> {
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", "", "-f"])
        .arg(path)
        .env_clear()
        .output()
        .context("cannot run ssh-keygen to check the private key (install openssh-client)")?;
    let derived = String::from_utf8_lossy(&out.stdout);
    PublicKey::from_openssh(derived.trim()).map_err(|_| {
        anyhow::anyhow!(
            "{} is not an unencrypted private key (ssh-keygen -y cannot read it)",
            shown.display()
        )
    })
}

/// The copy's public half must be one of `public`: the pair's other half.
fn check_pair(copy: &Path, shown: &Path, public: &[PublicKey]) -> Result<()> {
    let derived = public_half_shown(copy, shown)?;
    if !public.iter().any(|p| p.key_data() == derived.key_data()) {
        bail!(
            "{} and {} are not a pair: the private key's public half is not in the .pub file",
            shown.display(),
            super::pub_path(shown).display()
        );
    }
    Ok(())
}
