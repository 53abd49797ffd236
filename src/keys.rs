//! Management server key pairs: generate, save, load, fingerprint.
//!
//! Keys are OpenSSH format through the `ssh-key` crate, so nothing secret passes through a
//! command line. A pair is saved as ssh-keygen saves it (private key 0600, `.pub` 0644), each
//! file written to a temp file beside it and renamed into place, so neither ever exists half
//! written or with a wider mode. [`show`] prints exactly what `ssh-keygen -l -f` prints; the
//! rules it follows were read off OpenSSH 9.2 and checked against it (see `tests/keys.rs`).

use rand_core::OsRng;
use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData, RsaKeypair};
use ssh_key::{EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey};
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
        let comment = if comment.is_empty() || comment.starts_with('#') {
            "no comment".to_string()
        } else {
            printable(comment.as_bytes())
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

/// Significant bits of a big-endian unsigned integer.
fn mpint_bits(number: &[u8]) -> u32 {
    let trimmed: &[u8] = match number.iter().position(|&b| b != 0) {
        Some(i) => &number[i..],
        None => &[],
    };
    match trimmed.first() {
        Some(&top) => (trimmed.len() as u32 - 1) * 8 + (8 - top.leading_zeros()),
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

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa => "rsa",
            KeyType::Ecdsa => "ecdsa",
        })
    }
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
    let bytes = Passphrase(std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?);
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

// ---------------------------------------------------------------------------------------------
// Reading public keys (for the ISO)

/// True when `text` looks like private key material of any common format.
pub fn looks_private(text: &str) -> bool {
    text.contains("PRIVATE KEY-----") || text.contains("PuTTY-User-Key-File")
}

/// Public keys from authorized_keys-style text: one key a line; blank and `#` lines skipped.
/// Fields may be separated by spaces or tabs, as OpenSSH allows. Lines with options are
/// refused, since options would not survive into the ISO. `origin` names the file in errors.
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
        let malformed = |reason: String| KeyError::Malformed {
            path: origin.to_path_buf(),
            line: index + 1,
            reason,
        };
        match read_key(line.as_bytes()) {
            Ok((mut key, rest)) => {
                key.set_comment(String::from_utf8_lossy(rest).trim_end());
                keys.push(key);
            }
            Err(_) if key_after_options(line.as_bytes()) => {
                return Err(malformed(
                    "it starts with options or a host name; give the bare key".into(),
                ));
            }
            Err(reason) => return Err(malformed(reason)),
        }
    }
    Ok(keys)
}

/// True when `line` holds a key once its options or host list are skipped.
fn key_after_options(line: &[u8]) -> bool {
    after_options(line).is_some_and(|(_, rest)| read_key(rest).is_ok())
}

/// Public keys from a `.pub` or authorized_keys file; at least one.
pub fn read_public_keys(path: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let bytes = read(path)?;
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

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_blanks(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_blank(b)).unwrap_or(s.len());
    &s[start..]
}

/// The text up to the first blank, and what follows it.
fn split_field(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s.iter().position(|&b| is_blank(b)).unwrap_or(s.len());
    s.split_at(end)
}

/// A key at the very start of `s` as OpenSSH's `sshkey_read` takes it: type, blanks, base64
/// (whitespace inside it ignored). Returns the key (no comment) and the rest after the blanks
/// that follow it.
fn read_key(s: &[u8]) -> Result<(PublicKey, &[u8]), String> {
    let (kind, rest) = split_field(s);
    let (blob, rest) = split_field(skip_blanks(rest));
    let kind = std::str::from_utf8(kind).map_err(|_| "the key type is not text".to_string())?;
    let blob: String = blob
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|&b| char::from(b))
        .collect();
    if kind.is_empty() || blob.is_empty() {
        return Err("expected `<type> <base64 key> [comment]`".into());
    }
    let key = PublicKey::from_openssh(&format!("{kind} {blob}")).map_err(|e| e.to_string())?;
    Ok((key, skip_blanks(rest)))
}

/// An authorized_keys options field or known_hosts host list at the start of `s`, and the
/// text after the blank that ends it, as ssh-keygen splits them (quotes may hold blanks).
fn after_options(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut quoted = false;
    let mut i = 0;
    while i < s.len() && (quoted || !is_blank(s[i])) {
        if s[i] == b'\\' && s.get(i + 1) == Some(&b'"') {
            i += 1;
        } else if s[i] == b'"' {
            quoted = !quoted;
        }
        i += 1;
    }
    (i < s.len()).then(|| (&s[..i], &s[i + 1..]))
}

// ---------------------------------------------------------------------------------------------
// `ssh-keygen -l -f FILE`

/// A key as `ssh-keygen -l` lists it.
#[derive(Debug, Clone)]
pub struct ShownKey {
    pub key: PublicKey,
    /// The comment bytes as ssh-keygen found them; `None` prints as `no comment`.
    pub comment: Option<Vec<u8>>,
}

impl ShownKey {
    /// The line `ssh-keygen -l` prints for this key.
    pub fn line(&self) -> String {
        let info = info(&self.key);
        let comment = match &self.comment {
            Some(bytes) => printable(bytes),
            None => "no comment".into(),
        };
        format!(
            "{} {} {} ({})",
            info.bits, info.fingerprint, comment, info.algorithm
        )
    }
}

/// What `show` found: the keys in file order, and notes for stderr.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    pub keys: Vec<ShownKey>,
    pub warnings: Vec<String>,
}

/// The keys in a public key, authorized_keys, known_hosts or private key file, with the
/// comments `ssh-keygen -l -f path` shows. A private key never needs its passphrase.
pub fn show(path: &Path) -> Result<Shown, KeyError> {
    let bytes = read(path)?;
    // ssh-keygen treats the file as a private key when its first line says so.
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = skip_blanks(c_string(first));
    let private = !first.starts_with(b"#") && contains(first, b"PRIVATE KEY");
    let shown = if private {
        show_private(path, &bytes)?
    } else {
        show_lines(path, &bytes)
    };
    if shown.keys.is_empty() {
        return Err(KeyError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(shown)
}

/// A line as C code sees it: up to the first NUL byte.
fn c_string(line: &[u8]) -> &[u8] {
    line.split(|&b| b == 0).next().unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One key a line, as in authorized_keys or known_hosts; lines that hold none are skipped.
/// Deliberate difference: a key line without a comment shows `no comment`, where ssh-keygen
/// 9.2 may show leftovers of an earlier, longer line (it keeps a pointer into its reused line
/// buffer); the first such line in a file prints the same in both.
fn show_lines(path: &Path, bytes: &[u8]) -> Shown {
    let mut shown = Shown::default();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = skip_blanks(c_string(raw));
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        match key_on_line(line) {
            Some(key) => shown.keys.push(key),
            None => shown.warnings.push(format!(
                "{}, line {}: no public key; skipped",
                path.display(),
                index + 1
            )),
        }
    }
    shown
}

/// The key on one line: bare, or after options or a host list. Without a trailing comment
/// ssh-keygen shows the options (or hosts) in its place.
fn key_on_line(line: &[u8]) -> Option<ShownKey> {
    if let Ok((key, rest)) = read_key(line) {
        return Some(ShownKey {
            key,
            comment: trailing_comment(rest),
        });
    }
    if starts_with_number(line) {
        return None; // an SSH1 key: `bits exponent modulus`
    }
    let (options, rest) = after_options(line)?;
    let (key, rest) = read_key(rest).ok()?;
    let comment = trailing_comment(rest).or_else(|| Some(options.to_vec()));
    Some(ShownKey { key, comment })
}

fn trailing_comment(rest: &[u8]) -> Option<Vec<u8>> {
    (!rest.is_empty() && rest[0] != b'#').then(|| rest.to_vec())
}

/// A non-zero decimal number followed by a blank, as C's `strtol` reads it.
fn starts_with_number(line: &[u8]) -> bool {
    let digits_from = usize::from(matches!(line.first(), Some(b'+' | b'-')));
    let digits = line[digits_from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let after = line.get(digits_from + digits).copied();
    let nonzero = line[digits_from..digits_from + digits]
        .iter()
        .any(|&b| b != b'0');
    nonzero && after.is_some_and(is_blank)
}

/// A private key file: ssh-keygen shows the key in `path.pub` when there is one (its comment,
/// or the name `path.pub` when it has none); otherwise the public half stored in the private
/// key, with the private key's comment when it is unencrypted and mode 0600.
fn show_private(path: &Path, bytes: &[u8]) -> Result<Shown, KeyError> {
    let mut shown = Shown::default();
    let public_path = pub_path(path);
    if let Some((key, comment)) = first_key_in_pub(&public_path) {
        let comment = comment.unwrap_or_else(|| public_path.as_os_str().as_encoded_bytes().into());
        shown.keys.push(ShownKey {
            key,
            comment: Some(comment),
        });
        return Ok(shown);
    }
    let unreadable = |reason: String| KeyError::UnreadablePrivate {
        path: path.to_path_buf(),
        reason,
    };
    if !bytes.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----") {
        return Err(unreadable(format!(
            "it is not in OpenSSH format; put its public key beside it as {}, \
             or convert it with `ssh-keygen -p -f {}`",
            public_path.display(),
            path.display()
        )));
    }
    let private = PrivateKey::from_openssh(bytes).map_err(|e| unreadable(e.to_string()))?;
    let comment = if private.is_encrypted() {
        None
    } else if let Some(mode) = too_open(path) {
        shown.warnings.push(format!(
            "{}: mode {mode:04o} is too open for a private key; ssh refuses to use it",
            path.display()
        ));
        None
    } else {
        Some(private.comment().as_bytes().to_vec())
    };
    let mut key = private.public_key().clone();
    key.set_comment("");
    shown.keys.push(ShownKey { key, comment });
    Ok(shown)
}

/// The first key in a `.pub` file and its comment (up to any CR or LF; `None` when empty).
fn first_key_in_pub(path: &Path) -> Option<(PublicKey, Option<Vec<u8>>)> {
    let bytes = std::fs::read(path).ok()?;
    for raw in bytes.split(|&b| b == b'\n').map(c_string) {
        if raw.is_empty() || raw[0] == b'#' {
            continue;
        }
        if raw.starts_with(b"-----BEGIN") {
            return None;
        }
        if let Ok((key, rest)) = read_key(skip_blanks(raw)) {
            let end = rest.iter().position(|&b| b == b'\r').unwrap_or(rest.len());
            let comment = (end > 0).then(|| rest[..end].to_vec());
            return Some((key, comment));
        }
    }
    None
}

/// The mode of a private key file that OpenSSH refuses: ours and open to group or others.
fn too_open(path: &Path) -> Option<u32> {
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.permissions().mode() & 0o7777;
    // The process's own uid, without libc: the owner of /proc/self.
    let ours = std::fs::metadata("/proc/self").map_or(true, |me| me.uid() == meta.uid());
    (ours && mode & 0o077 != 0).then_some(mode)
}

/// Text as OpenSSH prints untrusted strings: tab and CR as they are, other control
/// characters (and, outside a UTF-8 locale, every non-ASCII byte) as `\ooo`.
fn printable(bytes: &[u8]) -> String {
    let utf8 = utf8_locale();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            let shown = match ch {
                '\t' | '\r' => true,
                c if c.is_ascii() => !c.is_ascii_control(),
                c => utf8 && !c.is_control(),
            };
            if shown {
                out.push(ch);
            } else {
                let mut buf = [0; 4];
                octal(&mut out, ch.encode_utf8(&mut buf).as_bytes());
            }
        }
        octal(&mut out, chunk.invalid());
    }
    out
}

fn octal(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push_str(&format!("\\{b:03o}"));
    }
}

/// Whether OpenSSH would print in UTF-8: the locale variables it consults, in libc's order.
fn utf8_locale() -> bool {
    for var in ["LC_ALL", "LC_CTYPE", "LANG"] {
        if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let value = value.to_string_lossy().to_ascii_lowercase();
            return value.contains("utf-8") || value.contains("utf8");
        }
    }
    false
}

#[cfg(test)]
mod tests {
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
