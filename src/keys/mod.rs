//! Management server key pairs: generate, save, load, fingerprint.
//!
//! Keys are OpenSSH format through the `ssh-key` crate, so nothing secret passes through a
//! command line. A pair is saved as ssh-keygen saves it (private key 0600, `.pub` 0644),
//! each file written to a temp file beside it and renamed into place, so neither ever
//! exists half written or with a wider mode. [`show`] prints exactly what
//! `ssh-keygen -l -f` prints; the rules it follows were read off OpenSSH 9.2 and checked
//! against it (see `tests/integration/keys.rs`).

use rand_core::OsRng;
use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::{EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey};
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod authorized;
pub mod deliver;
mod show;
pub mod untrusted;

pub use authorized::{authorized_line, looks_private, parse_public_keys, read_public_keys};
use show::printable;
pub use show::{show, Shown, ShownKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}")]
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
    #[error("{path}: cannot read this private key: {reason}")]
    UnreadablePrivate { path: PathBuf, reason: String },
    #[error("{kind} keys cannot have {bits} bits; choose {}", kind.sizes())]
    UnsupportedSize { kind: KeyType, bits: u32 },
    #[error("the key comment must be one line of text")]
    BadComment,
    #[error("cannot generate the {kind} key")]
    Generate {
        kind: KeyType,
        source: ssh_key::Error,
    },
    #[error("cannot encode the private key")]
    Encode { source: ssh_key::Error },
    #[error("{path}: {reason}")]
    BadPassphrase { path: PathBuf, reason: &'static str },
    #[error("{path} already exists; use --force to replace it")]
    Exists { path: PathBuf },
    #[error("{path} is a directory; give the private key's file name")]
    IsDirectory { path: PathBuf },
    #[error("cannot write {path}: directory {dir} does not exist")]
    MissingDirectory { path: PathBuf, dir: PathBuf },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
    /// `256 SHA256:... comment (ED25519)`, the line `ssh-keygen -l` prints for a key line.
    pub fn ssh_keygen_line(&self) -> String {
        // Blanks before the comment only separate it; a `#...` comment reads as none.
        let comment = self.comment.trim_start_matches([' ', '\t']);
        let shown = !comment.is_empty() && !comment.starts_with('#');
        self.line_with(shown.then_some(comment.as_bytes()))
    }

    /// `bits fingerprint comment (ALGORITHM)`, the comment printable, `no comment` for none.
    fn line_with(&self, comment: Option<&[u8]>) -> String {
        let comment = comment.map_or_else(|| "no comment".into(), printable);
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
        KeyData::Rsa(rsa) => ("RSA", mpint_bits(rsa.n.as_bytes())),
        KeyData::Ecdsa(ec) => ("ECDSA", ecdsa_bits(ec.curve())),
        KeyData::SkEd25519(_) => ("ED25519-SK", 256),
        KeyData::SkEcdsaSha2NistP256(_) => ("ECDSA-SK", 256),
        KeyData::Dsa(dsa) => ("DSA", mpint_bits(dsa.p.as_bytes())),
        _ => ("UNKNOWN", 0),
    };
    PublicKeyInfo {
        algorithm: algorithm.into(),
        bits,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        comment: key.comment().to_string(),
    }
}

/// The keys' SHA256 fingerprints, comma-separated; `no key` when there are none.
pub fn fingerprints(keys: &[PublicKey]) -> String {
    if keys.is_empty() {
        return "no key".into();
    }
    let all: Vec<String> = keys.iter().map(|k| info(k).fingerprint).collect();
    all.join(", ")
}

/// Significant bits of a big-endian unsigned integer.
fn mpint_bits(number: &[u8]) -> u32 {
    match number.iter().position(|&b| b != 0) {
        Some(i) => (number.len() - i - 1) as u32 * 8 + (8 - number[i].leading_zeros()),
        None => 0,
    }
}

fn ecdsa_bits(curve: EcdsaCurve) -> u32 {
    match curve {
        EcdsaCurve::NistP256 => 256,
        EcdsaCurve::NistP384 => 384,
        EcdsaCurve::NistP521 => 521,
    }
}

// ---------------------------------------------------------------------------------------------
// Generating and saving

/// The kinds of key `generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    Ed25519,
    Rsa,
    Ecdsa,
}

impl KeyType {
    /// The sizes this kind can have, for messages.
    fn sizes(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "256 (the only size), or leave out --bits",
            KeyType::Rsa => "2048, 3072 (the default) or 4096",
            KeyType::Ecdsa => "256 (the default) or 384",
        }
    }
}

/// The name `--type` and `[keys] type` take: `ed25519`, `rsa`, `ecdsa`.
impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self);
        f.write_str(value.as_ref().map_or("", |v| v.get_name()))
    }
}

/// `systemvm@<hostname>`: the comment `keys generate` and `startup` give a new key.
pub fn default_comment() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("systemvm@{host}")
}

/// A new key pair from the operating system's random source. Sizes: ed25519 256; rsa 3072
/// (default), 2048 or 4096; ecdsa 256 (P-256, default) or 384 (P-384).
pub fn generate(kind: KeyType, bits: Option<u32>, comment: &str) -> Result<PrivateKey, KeyError> {
    if comment.contains(['\n', '\r', '\0']) {
        return Err(KeyError::BadComment);
    }
    let failed = |source| KeyError::Generate { kind, source };
    let data = match (kind, bits) {
        (KeyType::Ed25519, None | Some(256)) => Ed25519Keypair::random(&mut OsRng).into(),
        (KeyType::Rsa, None) => rsa_keypair(3072).map_err(failed)?,
        (KeyType::Rsa, Some(n @ (2048 | 3072 | 4096))) => rsa_keypair(n).map_err(failed)?,
        (KeyType::Ecdsa, None | Some(256)) => {
            ecdsa_keypair(EcdsaCurve::NistP256).map_err(failed)?
        }
        (KeyType::Ecdsa, Some(384)) => ecdsa_keypair(EcdsaCurve::NistP384).map_err(failed)?,
        (kind, Some(bits)) => return Err(KeyError::UnsupportedSize { kind, bits }),
    };
    PrivateKey::new(data, comment).map_err(failed)
}

fn rsa_keypair(bits: u32) -> ssh_key::Result<KeypairData> {
    Ok(RsaKeypair::random(&mut OsRng, bits as usize)?.into())
}

fn ecdsa_keypair(curve: EcdsaCurve) -> ssh_key::Result<KeypairData> {
    Ok(EcdsaKeypair::random(&mut OsRng, curve)?.into())
}

/// A passphrase, wiped from memory when dropped and never shown by `Debug`.
pub struct Passphrase(Vec<u8>);

impl Passphrase {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// The passphrase in `path`: its first line without the line ending. Empty is refused.
pub fn read_passphrase_file(path: &Path) -> Result<Passphrase, KeyError> {
    let bytes = Passphrase(authorized::read(path)?);
    let first = bytes.0.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let bad = |reason| KeyError::BadPassphrase {
        path: path.to_path_buf(),
        reason,
    };
    if first.is_empty() {
        return Err(bad("the passphrase (its first line) is empty"));
    }
    if first.contains(&0) {
        return Err(bad("the passphrase contains a NUL byte"));
    }
    Ok(Passphrase(first.to_vec()))
}

/// `path` with `.pub` appended: where the public half of a private key lives.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".pub");
    PathBuf::from(name)
}

/// Write `key` to `path` (0600, OpenSSH format, encrypted with aes256-ctr and bcrypt when a
/// passphrase is given) and its public key to `path.pub` (0644). Existing files are replaced
/// only with `force`; on failure nothing new is left behind.
pub fn save_pair(
    key: &PrivateKey,
    path: &Path,
    passphrase: Option<&[u8]>,
    force: bool,
) -> Result<(), KeyError> {
    let public_path = pub_path(path);
    check_target(path, force)?;
    let had_private = path.symlink_metadata().is_ok();
    let encode = |source| KeyError::Encode { source };
    let encrypted;
    let stored = match passphrase {
        Some(pass) => {
            encrypted = key.encrypt(&mut OsRng, pass).map_err(encode)?;
            &encrypted
        }
        None => key,
    };
    let private_text = stored.to_openssh(LineEnding::LF).map_err(encode)?;
    let public_text = format!("{}\n", authorized_line(key.public_key()));
    let private_file = staged(path, private_text.as_bytes())?;
    let public_file = staged(&public_path, public_text.as_bytes())?;
    place(private_file, path, 0o600)?;
    if let Err(err) = place(public_file, &public_path, 0o644) {
        if !had_private {
            // No key was there before: do not leave half a pair behind.
            let _ = std::fs::remove_file(path);
        }
        return Err(err);
    }
    Ok(())
}

/// Whether `save_pair` could write a pair at `path`: the directory must exist, and without
/// `force` neither file may. Cheap, so callers check before a slow key generation.
pub fn check_target(path: &Path, force: bool) -> Result<(), KeyError> {
    if path.is_dir() || path.file_name().is_none() {
        return Err(KeyError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let dir = crate::atomic::parent_dir(path);
    if !dir.is_dir() {
        return Err(KeyError::MissingDirectory {
            path: path.to_path_buf(),
            dir,
        });
    }
    if force {
        return Ok(());
    }
    for target in [path, &pub_path(path)] {
        // symlink_metadata: a dangling symlink is still in the way.
        if target.symlink_metadata().is_ok() {
            return Err(KeyError::Exists {
                path: target.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// A temp file beside `target` (created 0600) holding `bytes`.
fn staged(target: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, KeyError> {
    let write_error = |source: Box<dyn std::error::Error + Send + Sync>| KeyError::Write {
        path: target.to_path_buf(),
        source,
    };
    let mut file = crate::atomic::temp_beside(target).map_err(|e| write_error(e.into()))?;
    file.write_all(bytes).map_err(|e| write_error(e.into()))?;
    Ok(file)
}

/// Set the mode, fsync and rename over `target`.
fn place(file: tempfile::NamedTempFile, target: &Path, mode: u32) -> Result<(), KeyError> {
    crate::atomic::persist(file, target, mode).map_err(|e| KeyError::Write {
        path: target.to_path_buf(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::show::{key_on_line, starts_with_number};
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJqbFmrSCKIrqN2eb8QvFcrYbkeXZSlWT8JGm/WAA3+/";

    fn comment_of(line: &str) -> Option<String> {
        key_on_line(line.as_bytes())
            .and_then(|k| k.comment)
            .map(|c| String::from_utf8_lossy(&c).into_owned())
    }

    #[test]
    fn comments_as_ssh_keygen_reads_them() {
        assert_eq!(comment_of(&format!("{KEY} a b ")), Some("a b ".into()));
        assert_eq!(comment_of(&format!("{KEY}\t\tx")), Some("x".into()));
        assert_eq!(comment_of(&format!("{KEY} #x")), None);
        assert_eq!(comment_of(&format!("{KEY}\r")), None);
        let opts = format!(r#"from="a b",no-pty {KEY}"#);
        assert_eq!(comment_of(&opts), Some(r#"from="a b",no-pty"#.into()));
        assert!(key_on_line(format!("opt  {KEY}").as_bytes()).is_none());
        assert!(key_on_line(format!("2048 {KEY}").as_bytes()).is_none());
    }

    #[test]
    fn strict_parse_accepts_tabs_and_refuses_options() {
        let keys = parse_public_keys(&format!("{KEY}\tme@here \n"), Path::new("f")).unwrap();
        assert_eq!(keys[0].comment(), "me@here");
        let err = parse_public_keys(&format!("no-pty {KEY}\n"), Path::new("f")).unwrap_err();
        assert!(err.to_string().contains("options"), "{err}");
        let err = parse_public_keys("ssh-ed25519 AAAA@ me\n", Path::new("f")).unwrap_err();
        assert!(!err.to_string().contains("options"), "{err}");
    }

    #[test]
    fn numbers_as_strtol_reads_them() {
        assert!(starts_with_number(b"2048 35 1"));
        assert!(starts_with_number(b"-1\tx"));
        assert!(!starts_with_number(b"0 x"));
        assert!(!starts_with_number(b"12x y"));
        assert!(!starts_with_number(b"12"));
    }

    #[test]
    fn sizes_are_checked_before_generating() {
        for (kind, bits) in [
            (KeyType::Rsa, 1024),
            (KeyType::Rsa, 2047),
            (KeyType::Rsa, 8192),
            (KeyType::Ecdsa, 521),
            (KeyType::Ed25519, 512),
        ] {
            let err = generate(kind, Some(bits), "c").unwrap_err();
            assert!(matches!(err, KeyError::UnsupportedSize { .. }), "{err}");
        }
        assert!(matches!(
            generate(KeyType::Ed25519, None, "a\nb"),
            Err(KeyError::BadComment)
        ));
    }
}
