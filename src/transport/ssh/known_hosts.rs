//! Host key verification against an OpenSSH `known_hosts` file, done after the key exchange
//! and before any credential is sent.
//!
//! libssh2 decides whether a line names the host (plain names, comma lists, IPv6 forms and the
//! `|1|salt|hash` entries that `ssh-keyscan -H` writes); the rest follows OpenSSH:
//!
//! - the lookup name is `host` on port 22 and `[host]:port` otherwise, exactly as OpenSSH
//!   files it, and only that name is looked up;
//! - the session prefers the host key types already recorded for the host, so a host pinned
//!   by its ECDSA key is not reported as changed because libssh2 would rather use its
//!   ed25519 key; host certificates are not negotiated;
//! - a recorded host presenting a key that is not recorded is a changed host key, refused
//!   even when new hosts may be pinned;
//! - pinning appends one line (read, append, temp file, rename) under a process-wide lock so
//!   hosts connecting at the same time do not lose each other's entries.
//!
//! A presented key on a `@revoked` line naming the host is refused, even when new hosts may
//! be pinned. A line we cannot evaluate (wildcard or negated patterns, `@cert-authority`,
//! key types libssh2 cannot negotiate) that may name the host makes an otherwise unknown host
//! "known, mismatched": refused, never pinned over.

use crate::transport::TransportError;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use ssh2::{CheckResult, KnownHostFileKind, MethodType, Session};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// Serialises appends to known_hosts files within this process.
static PIN_LOCK: Mutex<()> = Mutex::new(());

/// A key recorded for the host being connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KnownKey {
    key_type: String,
    blob: Vec<u8>,
}

/// The name OpenSSH records a host under: `host` on port 22, `[host]:port` otherwise.
pub(super) fn lookup_name(address: &str, port: u16) -> String {
    let bare = address.trim_start_matches('[').trim_end_matches(']');
    if port == 22 {
        bare.to_string()
    } else {
        format!("[{bare}]:{port}")
    }
}

/// The keys recorded for `name` in `file` whose types this libssh2 can negotiate. A missing
/// file records nothing.
pub(super) fn load(session: &Session, file: &Path, name: &str) -> Result<Vec<KnownKey>, String> {
    let bytes = match fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let usable = negotiable_key_types(session);
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .filter_map(parse_line)
        .filter(|(hosts, key)| {
            usable.contains(&key.key_type) && names_host(session, hosts, key, name)
        })
        .map(|(_, key)| key)
        .collect())
}

/// Whether `file` has a `@revoked` line naming `name` with the key `blob`. An unreadable
/// file revokes nothing here: `load` has already refused it.
fn is_revoked(session: &Session, file: &Path, name: &str, blob: &[u8]) -> bool {
    let Ok(bytes) = fs::read(file) else {
        return false;
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("@revoked"))
        .filter(|rest| rest.starts_with([' ', '\t']))
        .filter_map(parse_line)
        .any(|(hosts, key)| key.blob == blob && names_host(session, hosts, &key, name))
}

/// The number of the first line we cannot evaluate that may name `name`: host patterns with
/// `*`, `?` or `!`, `@cert-authority` lines, and keys of types libssh2 cannot use (their host
/// field is matched as libssh2 matches it, with a stand-in key).
fn uncheckable_line(session: &Session, file: &Path, name: &str) -> Option<usize> {
    let bytes = fs::read(file).ok()?;
    let usable = negotiable_key_types(session);
    let text = String::from_utf8_lossy(&bytes);
    let stand_in = KnownKey {
        key_type: "ssh-ed25519".into(),
        blob: [&[0, 0, 0, 11][..], b"ssh-ed25519", &[0, 0, 0, 32], &[0; 32]].concat(),
    };
    let may_name = |line: &str| -> bool {
        let line = line.trim();
        let (line, authority) = match line.strip_prefix("@cert-authority") {
            Some(rest) => (rest.trim_start(), true),
            None if line.starts_with(['@', '#']) => return false,
            None => (line, false),
        };
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(key_type)) = (fields.next(), fields.next()) else {
            return false;
        };
        if hosts.contains(['*', '?', '!']) {
            return hosts
                .split(',')
                .any(|p| p.starts_with('!') || glob(p, name));
        }
        let evaluated =
            !authority && usable.iter().any(|u| u == key_type) && parse_line(line).is_some();
        !evaluated && names_host(session, hosts, &stand_in, name)
    };
    text.lines()
        .enumerate()
        .find(|(_, l)| may_name(l))
        .map(|(i, _)| i + 1)
}

/// OpenSSH's host pattern match: `*` any run, `?` any one character.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// One known_hosts line: its host field and key. Comments, markers and broken lines: `None`.
fn parse_line(line: &str) -> Option<(&str, KnownKey)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let hosts = fields.next()?;
    let key_type = fields.next()?;
    let blob = base64_decode(fields.next()?)?;
    if blob_key_type(&blob)? != key_type {
        return None;
    }
    Some((
        hosts,
        KnownKey {
            key_type: key_type.to_string(),
            blob,
        },
    ))
}

/// Whether the host field of a line matches `name`, as libssh2 matches it (hashed or plain).
fn names_host(session: &Session, hosts: &str, key: &KnownKey, name: &str) -> bool {
    let Ok(mut one) = session.known_hosts() else {
        return false;
    };
    let line = format!(
        "{hosts} {} {}",
        key.key_type,
        base64_encode(&key.blob, true)
    );
    if one.read_str(&line, KnownHostFileKind::OpenSSH).is_err() {
        return false;
    }
    // A probe that is no real key: a line naming the host reports a mismatch.
    matches!(
        one.check(name, b"probe"),
        CheckResult::Mismatch | CheckResult::Match
    )
}

/// Host key algorithms to offer: those matching the recorded keys first, in libssh2's order,
/// then the rest; never certificates, which known_hosts lines without `@cert-authority`
/// cannot vouch for.
pub(super) fn prefer_recorded(session: &Session, known: &[KnownKey]) {
    let Ok(supported) = session.supported_algs(MethodType::HostKey) else {
        return;
    };
    let (first, rest): (Vec<&str>, Vec<&str>) = supported
        .into_iter()
        .filter(|alg| !alg.ends_with("-cert-v01@openssh.com"))
        .partition(|alg| known.iter().any(|k| k.key_type == key_type_of(alg)));
    let prefs = first.into_iter().chain(rest).collect::<Vec<_>>().join(",");
    if let Err(e) = session.method_pref(MethodType::HostKey, &prefs) {
        tracing::debug!("cannot set host key preferences: {e}");
    }
}

/// Key types (as known_hosts writes them) that this libssh2 can negotiate.
fn negotiable_key_types(session: &Session) -> Vec<String> {
    session
        .supported_algs(MethodType::HostKey)
        .map(|algs| {
            algs.into_iter()
                .map(|a| key_type_of(a).to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The key type an algorithm signs with: RSA keys are recorded as `ssh-rsa` whatever hash.
fn key_type_of(alg: &str) -> &str {
    match alg {
        "rsa-sha2-256" | "rsa-sha2-512" => "ssh-rsa",
        other => other,
    }
}

/// What the caller needs to check the host with after the handshake.
pub(super) struct Check<'a> {
    pub host: &'a str,
    pub file: &'a Path,
    pub name: &'a str,
    pub accept_new: bool,
}

/// Verify the key the host presented; pin it when the host is new and pinning is allowed.
pub(super) fn verify(
    session: &Session,
    check: &Check,
    known: &[KnownKey],
) -> Result<(), TransportError> {
    let Some((blob, _)) = session.host_key() else {
        return Err(TransportError::Connect {
            host: check.host.to_string(),
            reason: "the host presented no host key".into(),
        });
    };
    if is_revoked(session, check.file, check.name, blob) {
        return Err(TransportError::RevokedHostKey {
            host: check.host.to_string(),
            fingerprint: fingerprint(blob),
            file: check.file.display().to_string(),
        });
    }
    if known.iter().any(|k| k.blob == blob) {
        return Ok(());
    }
    let actual = fingerprint(blob);
    let key_type = blob_key_type(blob).unwrap_or("unknown");
    let recorded = known
        .iter()
        .find(|k| k.key_type == key_type)
        .or(known.first());
    if let Some(old) = recorded {
        return Err(TransportError::ChangedHostKey {
            host: check.host.to_string(),
            expected: fingerprint(&old.blob),
            actual,
        });
    }
    if let Some(line) = uncheckable_line(session, check.file, check.name) {
        return Err(TransportError::UncheckableHostKey {
            host: check.host.to_string(),
            file: check.file.display().to_string(),
            line,
        });
    }
    if !check.accept_new {
        return Err(TransportError::UnknownHostKey {
            host: check.host.to_string(),
            fingerprint: actual,
        });
    }
    let line = format!("{} {key_type} {}", check.name, base64_encode(blob, true));
    let what = format!("pinning the host key in {}", check.file.display());
    pin(check.file, &line).map_err(|reason| TransportError::io(check.host, what, reason))?;
    tracing::info!(
        "{}: pinned new host key {actual} in {}",
        check.host,
        check.file.display()
    );
    Ok(())
}

/// Append `line` to `file` (created 0600) atomically; a line already there is not repeated.
fn pin(file: &Path, line: &str) -> Result<(), String> {
    let _guard = PIN_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let (mut text, mode) = match fs::read(file) {
        Ok(text) => {
            let mode = fs::metadata(file)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o600);
            (text, mode)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => (Vec::new(), 0o600),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if String::from_utf8_lossy(&text)
        .lines()
        .any(|l| l.trim() == line)
    {
        return Ok(());
    }
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    text.extend_from_slice(line.as_bytes());
    text.push(b'\n');
    let dir = crate::atomic::parent_dir(file);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    crate::atomic::write(file, &text, mode).map_err(|e| format!("{e:#}"))
}

/// `SHA256:<base64 without padding>`, as OpenSSH prints fingerprints.
pub(super) fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", base64_encode(&Sha256::digest(blob), false))
}

/// The key type a public key blob starts with (an SSH string).
fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + len)?).ok()
}

/// Standard base64 read without its `=` padding, ignoring unused low bits.
const UNPADDED: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64, with or without `=` padding.
fn base64_encode(bytes: &[u8], pad: bool) -> String {
    if pad {
        STANDARD.encode(bytes)
    } else {
        STANDARD_NO_PAD.encode(bytes)
    }
}

/// Standard base64 (padding optional); `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.trim_end_matches('=');
    if text.len() - digits.len() > 2 {
        return None;
    }
    UNPADDED.decode(digits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_names_follow_openssh() {
        assert_eq!(lookup_name("10.1.0.11", 22), "10.1.0.11");
        assert_eq!(lookup_name("10.1.0.11", 2222), "[10.1.0.11]:2222");
        assert_eq!(lookup_name("::1", 2222), "[::1]:2222");
        assert_eq!(lookup_name("[::1]", 22), "::1");
    }

    #[test]
    fn base64_round_trips_and_matches_known_vectors() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64_encode(plain, true), *encoded);
            assert_eq!(base64_encode(plain, false), encoded.trim_end_matches('='));
            assert_eq!(base64_decode(encoded).as_deref(), Some(*plain));
        }
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(base64_decode("Z"), None);
    }

    #[test]
    fn lines_are_parsed_and_markers_skipped() {
        let key = "AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
        let line = format!("[h]:2222,h2 ssh-ed25519 {key} c");
        let (hosts, parsed) = parse_line(&line).unwrap();
        assert_eq!(hosts, "[h]:2222,h2");
        assert_eq!(parsed.key_type, "ssh-ed25519");
        assert!(parse_line(&format!("@revoked h ssh-ed25519 {key}")).is_none());
        assert!(parse_line("# h ssh-ed25519 AAAA").is_none());
        // The type field must agree with the key blob.
        assert!(parse_line(&format!("h ssh-rsa {key}")).is_none());
    }

    #[test]
    fn host_patterns_match_as_openssh_does() {
        assert!(glob("[127.0.0.*]:22222", "[127.0.0.1]:22222"));
        assert!(glob("*.example.org", "xen-1.example.org"));
        assert!(glob("xen-?", "xen-1") && !glob("xen-?", "xen-10"));
        assert!(!glob("[127.0.0.*]:22", "[127.0.0.1]:22222"));
    }

    #[test]
    fn fingerprint_matches_openssh_format() {
        // SHA256 of the empty string, base64 without padding.
        assert_eq!(
            fingerprint(b""),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
