//! `ssh-keygen -l -f FILE`, line for line: the same listing for public, authorized_keys and
//! private key files, and the same warnings.

use super::authorized::{after_options, is_blank, read, read_key, skip_blanks};
use super::*;

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
        info(&self.key).line_with(self.comment.as_deref())
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
pub(super) fn key_on_line(line: &[u8]) -> Option<ShownKey> {
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
pub(super) fn starts_with_number(line: &[u8]) -> bool {
    let sign = usize::from(matches!(line.first(), Some(b'+' | b'-')));
    let number = &line[sign..];
    let digits = number.iter().take_while(|b| b.is_ascii_digit()).count();
    let nonzero = number[..digits].iter().any(|&b| b != b'0');
    nonzero && number.get(digits).copied().is_some_and(is_blank)
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
pub(super) fn printable(bytes: &[u8]) -> String {
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
