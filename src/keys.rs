//! Management server key pairs: generate, save, load, fingerprint.
//!
//! Keys are OpenSSH format through the `ssh-key` crate, so nothing secret passes through a
//! command line. Fingerprints are printed exactly as `ssh-keygen -l` prints them.

use ssh_key::{HashAlg, PublicKey};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds a private key; pass its public half (the .pub file): private key material never goes into the ISO")]
    PrivateKey { path: PathBuf },
    #[error("{path}, line {line}: not an OpenSSH public key ({reason})")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path} holds no public key")]
    Empty { path: PathBuf },
}

/// What `ssh-keygen -l` shows of a public key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicKeyInfo {
    /// As ssh-keygen names it: `ED25519`, `RSA`, `ECDSA`.
    pub algorithm: String,
    pub bits: u32,
    /// `SHA256:<base64>`
    pub fingerprint: String,
    pub comment: String,
}

impl PublicKeyInfo {
    /// `256 SHA256:... comment (ED25519)`, the line `ssh-keygen -l` prints.
    pub fn ssh_keygen_line(&self) -> String {
        let comment = if self.comment.is_empty() {
            "no comment"
        } else {
            &self.comment
        };
        format!(
            "{} {} {} ({})",
            self.bits, self.fingerprint, comment, self.algorithm
        )
    }
}

/// Fingerprint and size of a public key.
pub fn info(key: &PublicKey) -> PublicKeyInfo {
    use ssh_key::public::KeyData;
    let (algorithm, bits) = match key.key_data() {
        KeyData::Ed25519(_) => ("ED25519", 256),
        KeyData::Rsa(rsa) => ("RSA", rsa_bits(rsa.n.as_bytes())),
        KeyData::Ecdsa(ec) => ("ECDSA", ecdsa_bits(ec.curve())),
        KeyData::SkEd25519(_) => ("ED25519-SK", 256),
        KeyData::SkEcdsaSha2NistP256(_) => ("ECDSA-SK", 256),
        KeyData::Dsa(_) => ("DSA", 1024),
        _ => ("UNKNOWN", 0),
    };
    PublicKeyInfo {
        algorithm: algorithm.into(),
        bits,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        comment: key.comment().to_string(),
    }
}

fn rsa_bits(modulus: &[u8]) -> u32 {
    let trimmed: &[u8] = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => &[],
    };
    match trimmed.first() {
        Some(&top) => (trimmed.len() as u32 - 1) * 8 + (8 - top.leading_zeros()),
        None => 0,
    }
}

fn ecdsa_bits(curve: ssh_key::EcdsaCurve) -> u32 {
    match curve {
        ssh_key::EcdsaCurve::NistP256 => 256,
        ssh_key::EcdsaCurve::NistP384 => 384,
        ssh_key::EcdsaCurve::NistP521 => 521,
    }
}

/// True when `text` looks like private key material of any common format.
pub fn looks_private(text: &str) -> bool {
    text.contains("PRIVATE KEY-----") || text.contains("PuTTY-User-Key-File")
}

/// Public keys from authorized_keys-style text: one key a line; blank and `#` lines skipped.
/// `origin` names the file in errors.
pub fn parse_public_keys(text: &str, origin: &Path) -> Result<Vec<PublicKey>, KeyError> {
    if looks_private(text) {
        return Err(KeyError::PrivateKey {
            path: origin.to_path_buf(),
        });
    }
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = PublicKey::from_openssh(line).map_err(|e| KeyError::Malformed {
            path: origin.to_path_buf(),
            line: index + 1,
            reason: e.to_string(),
        })?;
        keys.push(key);
    }
    Ok(keys)
}

/// Public keys from a `.pub` or authorized_keys file; at least one.
pub fn read_public_keys(path: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let keys = parse_public_keys(&text, path)?;
    if keys.is_empty() {
        return Err(KeyError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(keys)
}

/// The authorized_keys line for a key: `<algorithm> <base64> <comment>`.
pub fn authorized_line(key: &PublicKey) -> String {
    // to_openssh only fails for key types it cannot encode, which parsing already rejected.
    key.to_openssh().unwrap_or_default()
}
