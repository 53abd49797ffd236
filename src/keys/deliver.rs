//! Which private key may go to the hosts as `id_rsa.cloud` (REFERENCE 3), and in which
//! format. Only the pair the system VMs trust may go: from CloudStack 4.16 they trust
//! CloudStack's own key from their boot arguments, up to 4.15 the key injected into the ISO;
//! a host holding any other key loses SSH to its system VMs. Hosts and agents up to 4.19
//! read PEM: an OpenSSH-format RSA key is converted on a root-only temp copy (what is
//! delivered), any other OpenSSH-format key is refused.

use crate::version::Version;
use anyhow::{bail, Context, Result};
use ssh_key::{Algorithm, PublicKey};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where CloudStack keeps the `cloud` user's key pair.
pub const CLOUDSTACK_KEY: &str = "/var/lib/cloudstack/management/.ssh/id_rsa";

/// How an OpenSSH-format private key file starts.
const OPENSSH_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

/// The public keys the system VMs of a release trust.
#[derive(Debug, Clone)]
pub enum Trusted {
    /// 4.16+: CloudStack's public key, this file.
    CloudStack(PathBuf),
    /// Up to 4.15: the keys the ISO at `iso` carries (or is about to be keyed with).
    Iso { keys: Vec<PublicKey>, iso: PathBuf },
}

impl Trusted {
    /// What `version`'s system VMs trust: CloudStack's key at `cloudstack` from 4.16, else
    /// the ISO's keys, read by `iso_keys` only then.
    pub fn for_version(
        version: &Version,
        cloudstack: &Path,
        iso: &Path,
        iso_keys: impl FnOnce() -> Result<Vec<PublicKey>>,
    ) -> Result<Trusted> {
        if trusts_cloudstack(version) {
            return Ok(Trusted::CloudStack(cloudstack.to_path_buf()));
        }
        Ok(Trusted::Iso {
            keys: iso_keys()?,
            iso: iso.to_path_buf(),
        })
    }
}

/// From 4.16 the system VMs trust CloudStack's key (Cosmic's date versions: the ISO's).
pub fn trusts_cloudstack(version: &Version) -> bool {
    !version.is_date() && version.major_minor() >= (4, 16)
}

/// Up to 4.19 (and Cosmic) the hosts and agents read PEM private keys only.
pub fn reads_pem_only(version: &Version) -> bool {
    version.is_date() || version.major_minor() <= (4, 19)
}

/// The key to deliver: the file itself, or its PEM copy (removed when this is dropped).
#[derive(Debug)]
pub struct Delivery {
    path: PathBuf,
    /// One line saying what was done to the key, when something was.
    pub note: Option<String>,
    _copy: Option<crate::keys::untrusted::KeyDir>,
}

impl Delivery {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Check that the private key at `private` (named `shown` in messages) is one the system VMs
/// of `version` trust, and give it in a format its hosts read.
pub fn prepare(
    private: &Path,
    shown: &Path,
    version: &Version,
    trusted: &Trusted,
) -> Result<Delivery> {
    let public = crate::keys::untrusted::public_half(private)
        .with_context(|| format!("{} cannot be delivered", shown.display()))?;
    check_trusted(shown, &public, version, trusted)?;
    let openssh = first_line(private)? == OPENSSH_BEGIN;
    if !openssh || !reads_pem_only(version) {
        return Ok(Delivery {
            path: private.to_path_buf(),
            note: None,
            _copy: None,
        });
    }
    if !matches!(public.algorithm(), Algorithm::Rsa { .. }) {
        bail!(
            "{} is an {} key in OpenSSH format, which CloudStack {version} hosts cannot read \
             (they read PEM RSA): deliver CloudStack's own id_rsa ({CLOUDSTACK_KEY})",
            shown.display(),
            super::info(&public).algorithm
        );
    }
    to_pem(private, shown, &public, version)
}

/// The public half must be one of the trusted keys; the error names both fingerprints.
fn check_trusted(
    shown: &Path,
    public: &PublicKey,
    version: &Version,
    trusted: &Trusted,
) -> Result<()> {
    let ours = super::info(public).fingerprint;
    match trusted {
        Trusted::CloudStack(file) => {
            let theirs = super::read_public_keys(file).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read CloudStack's public key ({e}): CloudStack {version} system VMs \
                     trust only it, so {} is not delivered",
                    shown.display()
                )
            })?;
            if !theirs.iter().any(|k| k.key_data() == public.key_data()) {
                bail!(
                    "{} ({ours}) is not CloudStack's key pair ({}: {}), the one CloudStack \
                     {version} system VMs trust: delivering it would cut the hosts off from \
                     them; deliver CloudStack's own {CLOUDSTACK_KEY}",
                    shown.display(),
                    file.display(),
                    super::fingerprints(&theirs)
                );
            }
        }
        Trusted::Iso { keys, iso } => {
            if !keys.iter().any(|k| k.key_data() == public.key_data()) {
                bail!(
                    "{} ({ours}) is not the key in the ISO {} ({}), the one CloudStack \
                     {version} system VMs trust: inject its public half first (systemvm \
                     inject {} --key KEY.pub), or deliver the ISO's own pair",
                    shown.display(),
                    iso.display(),
                    super::fingerprints(keys),
                    iso.display()
                );
            }
        }
    }
    Ok(())
}

/// The first line of a (small, already checked) private key file.
fn first_line(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// Convert an OpenSSH RSA key to PEM on a copy in a root-only temp directory.
fn to_pem(private: &Path, shown: &Path, public: &PublicKey, version: &Version) -> Result<Delivery> {
    let dir = crate::keys::untrusted::KeyDir::new()?;
    let copy = dir.path().join("id_rsa");
    let bytes =
        std::fs::read(private).with_context(|| format!("cannot read {}", shown.display()))?;
    crate::keys::untrusted::write_new(&copy, &bytes, 0o600)?;
    // KVM delivers the `.pub` beside the key too.
    let public_line = match std::fs::read(super::pub_path(private)) {
        Ok(line) => line,
        Err(_) => format!("{}\n", public.to_openssh()?).into_bytes(),
    };
    crate::keys::untrusted::write_new(&super::pub_path(&copy), &public_line, 0o644)?;
    // Both passphrases are empty (the key is unencrypted): nothing secret on the line.
    let out = Command::new("ssh-keygen")
        .args(["-q", "-p", "-m", "PEM", "-N", "", "-P", "", "-f"])
        .arg(&copy)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .context("cannot run ssh-keygen to convert the key to PEM (install openssh-client)")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen cannot convert {} to PEM: {}",
            shown.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let converted = crate::keys::untrusted::public_half(&copy)?;
    if converted.key_data() != public.key_data() || first_line(&copy)? == OPENSSH_BEGIN {
        bail!("ssh-keygen did not convert {} to PEM", shown.display());
    }
    Ok(Delivery {
        path: copy,
        note: Some(format!(
            "keys: {} is an RSA key in OpenSSH format and CloudStack {version} hosts read PEM: \
             delivering a PEM copy of it",
            shown.display()
        )),
        _copy: Some(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn releases_decide_which_key_is_trusted_and_whether_pem_is_needed() {
        assert!(!trusts_cloudstack(&v("4.15.2.0")));
        assert!(trusts_cloudstack(&v("4.16.0.0")));
        assert!(reads_pem_only(&v("4.19.1.0")));
        assert!(!reads_pem_only(&v("4.20.0.0")));
    }
}
