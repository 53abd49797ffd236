//! The SSH identity files an inventory names, checked before any host is contacted: each
//! must be readable and hold a private key. A missing file or a `.pub` given as `identity`
//! is a mistake in the inventory (exit 2, naming the file and the line), not a host that
//! cannot be reached.

use super::{Credentials, Inventory, Target};
use crate::tomlfile::FileError;
use std::path::Path;

/// Check the identity of every SSH target among `targets`; each file once.
pub fn check(inv: &Inventory, targets: &[Target]) -> Result<(), FileError> {
    let mut seen = std::collections::BTreeSet::new();
    for t in targets {
        // Only an SSH host takes an identity (an SMB share logs in with a password).
        let Some(Credentials::Identity(path)) = t.access.credentials() else {
            continue;
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        if let Err(message) = check_file(path) {
            return Err(FileError {
                path: inv.path.clone(),
                line: line_naming(&inv.path, path).unwrap_or(0),
                message: format!("identity {}: {message}", path.display()),
            });
        }
    }
    Ok(())
}

fn check_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        kind => format!("cannot read it: {}", std::io::Error::from(kind)),
    })?;
    let head = String::from_utf8_lossy(&text[..text.len().min(4096)]);
    let first = head.trim_start();
    if first.starts_with("-----BEGIN") && first.contains("PRIVATE KEY") {
        return Ok(());
    }
    let public = ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| first.starts_with(p));
    if public {
        return Err("is a public key; give the private key (the file without .pub)".into());
    }
    Err("is not a private key (OpenSSH or PEM)".into())
}

/// The line of the inventory that names `identity` (its first `identity = "..."`).
fn line_naming(inventory: &Path, identity: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(inventory).ok()?;
    let wanted = identity.to_str()?;
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with("identity") && l.contains(wanted)
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n").unwrap();
        assert_eq!(check_file(&key), Ok(()));
        let public = dir.path().join("k.pub");
        std::fs::write(&public, "ssh-ed25519 AAAA c\n").unwrap();
        assert!(check_file(&public).unwrap_err().contains("public key"));
        assert!(check_file(&dir.path().join("none"))
            .unwrap_err()
            .contains("no such file"));
    }
}
