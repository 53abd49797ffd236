//! Public keys read from authorized_keys-style files, for the ISO: strict, one key a line,
//! no options.

use super::*;

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
pub(super) fn key_after_options(line: &[u8]) -> bool {
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

pub(super) fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(super) fn skip_blanks(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_blank(b)).unwrap_or(s.len());
    &s[start..]
}

/// The text up to the first blank, and what follows it.
pub(super) fn split_field(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s.iter().position(|&b| is_blank(b)).unwrap_or(s.len());
    s.split_at(end)
}

/// A key at the very start of `s` as OpenSSH's `sshkey_read` takes it: type, blanks, base64
/// (whitespace inside it ignored). Returns the key (no comment) and the rest after the blanks
/// that follow it.
pub(super) fn read_key(s: &[u8]) -> Result<(PublicKey, &[u8]), String> {
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
pub(super) fn after_options(s: &[u8]) -> Option<(&[u8], &[u8])> {
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
