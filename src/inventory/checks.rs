//! Values that become names, addresses, logins and credentials, checked one by one.

use super::raw::{RawDefaults, RawHost};
use super::Credentials;
use toml::Spanned;

pub(super) fn credentials(h: &RawHost, d: &RawDefaults) -> Result<Credentials, String> {
    let own = [
        h.identity.clone().map(Credentials::Identity),
        h.password_file.clone().map(Credentials::PasswordFile),
        h.password_env.clone().map(Credentials::PasswordEnv),
    ];
    let own: Vec<Credentials> = own.into_iter().flatten().collect();
    if own.len() > 1 {
        return Err("give only one of identity, password_file, password_env".into());
    }
    if let Some(c) = own.into_iter().next() {
        return Ok(c);
    }
    let defaults = [
        d.identity.clone().map(Credentials::Identity),
        d.password_file.clone().map(Credentials::PasswordFile),
        d.password_env.clone().map(Credentials::PasswordEnv),
    ];
    defaults.into_iter().flatten().next().ok_or_else(|| {
        "no credentials: set identity, password_file or password_env here or in [defaults]".into()
    })
}

/// Names become file names and log keys: letters, digits, `.`, `_`, `-`.
pub(super) fn check_name(name: &Spanned<String>) -> Result<(), String> {
    let n = name.get_ref();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !n.starts_with(['.', '-']);
    ok.then_some(()).ok_or_else(|| {
        format!("name {n:?} is not allowed: use letters, digits, '.', '_' and '-' (at most 64)")
    })
}

/// A host name or IP address literal: no blanks, quotes or shell metacharacters, and no
/// leading `-` that a tool could take for an option.
pub(super) fn check_address(address: &Spanned<String>) -> Result<(), String> {
    let a = address.get_ref();
    address_chars(a)
        .then_some(())
        .ok_or_else(|| format!("address {a:?} is not a host name or IP address"))
}

/// A host name or IP address: non-empty, at most 253 bytes, each a letter, a digit or one
/// of `.-:[]%`, and not starting with `-` (which would read as an option).
pub fn address_chars(a: &str) -> bool {
    !a.is_empty()
        && !a.starts_with('-')
        && a.len() <= 253
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]%".contains(&b))
}

/// A login name as POSIX tools accept it (plus `@` for directory accounts).
pub(super) fn check_user(u: &str) -> Result<(), String> {
    let ok = !u.is_empty()
        && u.len() <= 64
        && !u.starts_with('-')
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    ok.then_some(()).ok_or_else(|| {
        format!("user {u:?} is not a login name: use letters, digits, '.', '_', '-' and '@'")
    })
}
