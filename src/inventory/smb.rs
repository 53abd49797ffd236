//! Hyper-V entries: a host's admin share, or a secondary storage's SMB share, resolved to an
//! SMB endpoint with its folder and password source.

use super::raw::{RawHost, RawSecondary};
use super::{Credentials, SmbShare, SMB_PORT};
use crate::profile::Hyperv;
use std::ops::Range;
use std::path::PathBuf;

/// A Hyper-V host's local copy, through its admin share (the profile's `host_share`).
pub(super) fn host(h: &RawHost, p: &Hyperv) -> Result<SmbShare, String> {
    if h.identity.is_some() {
        return Err(
            "hyperv hosts log in over SMB with a password (password_file or \
                    password_env), not an SSH identity"
                .into(),
        );
    }
    let user = h
        .user
        .clone()
        .ok_or("a hyperv host needs `user` (an administrator of the host)")?;
    one_line(&user)?;
    let credentials = password(h.password_file.as_ref(), h.password_env.as_ref())?;
    let folder = normalise_folder(&p.host_folder)?;
    crate::transport::smb::check_path(&p.host_share)?;
    Ok(SmbShare {
        address: h.address.get_ref().clone(),
        port: h.port.unwrap_or(SMB_PORT),
        share: p.host_share.clone(),
        folder,
        user,
        domain: h.domain.clone(),
        credentials,
        encrypt: h.encrypt.unwrap_or_default(),
    })
}

/// Hyper-V secondary storage: `share = "//server/share"`, the ISO in `folder/<profile folder>`.
pub(super) fn secondary(
    s: &RawSecondary,
    p: &Hyperv,
) -> Result<SmbShare, (Option<Range<usize>>, String)> {
    let whole = Some(s.name.span());
    if let Some(path) = &s.path {
        return Err((
            Some(path.span()),
            "a hyperv storage is an SMB share: give `share = \"//server/share\"`, not `path`"
                .into(),
        ));
    }
    if s.keep.is_some() {
        return Err((
            whole,
            "`keep` is for vmware: Hyper-V's agent needs exactly one systemvm*.iso".into(),
        ));
    }
    let Some(share) = &s.share else {
        return Err((
            whole,
            "a hyperv storage needs `share = \"//server/share\"`".into(),
        ));
    };
    let (address, share_name) =
        parse_share(share.get_ref()).map_err(|m| (Some(share.span()), m))?;
    let Some(user) = &s.user else {
        return Err((whole, "a hyperv storage needs `user`".into()));
    };
    one_line(user.get_ref()).map_err(|m| (Some(user.span()), m))?;
    let credentials = password(s.password_file.as_ref(), s.password_env.as_ref())
        .map_err(|m| (whole.clone(), m))?;
    let below = match &s.folder {
        Some(f) => normalise_folder(f.get_ref()).map_err(|m| (Some(f.span()), m))?,
        None => String::new(),
    };
    let own = normalise_folder(&p.folder).map_err(|m| (whole.clone(), m))?;
    let folder = [below, own]
        .into_iter()
        .filter(|f| !f.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    Ok(SmbShare {
        address,
        port: s.port.unwrap_or(SMB_PORT),
        share: share_name,
        folder,
        user: user.get_ref().clone(),
        domain: s.domain.clone(),
        credentials,
        encrypt: s.encrypt.unwrap_or_default(),
    })
}

/// A `user` sent to the server as it is: one non-empty line.
fn one_line(user: &str) -> Result<(), String> {
    let ok = !user.is_empty() && !user.contains(['\n', '\r']);
    ok.then_some(())
        .ok_or_else(|| "`user` must be one non-empty line".into())
}

/// `//server/share` (or `\\server\share`) to its server and share name.
fn parse_share(text: &str) -> Result<(String, String), String> {
    let t = text.replace('\\', "/");
    let (server, share) = t
        .strip_prefix("//")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| format!("share {text:?} must look like //server/share"))?;
    let share = share.trim_end_matches('/');
    if share.is_empty() || share.contains('/') {
        return Err(format!(
            "share {text:?} must look like //server/share (put sub-folders in `folder`)"
        ));
    }
    if !super::checks::address_chars(server) {
        return Err(format!("{server:?} is not a host name or IP address"));
    }
    crate::transport::smb::check_path(share)?;
    Ok((server.to_string(), share.to_string()))
}

/// A folder below a share: `\` or `/` separated, relative, no `..`.
fn normalise_folder(text: &str) -> Result<String, String> {
    crate::transport::smb::check_path(text)?;
    let parts: Vec<&str> = text
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!("folder {text:?} must not contain `..`"));
    }
    Ok(parts.join("/"))
}

/// SMB passwords: exactly one of a file or an environment variable, on the entry itself.
fn password(file: Option<&PathBuf>, env: Option<&String>) -> Result<Credentials, String> {
    match (file, env) {
        (Some(f), None) => Ok(Credentials::PasswordFile(f.clone())),
        (None, Some(e)) => Ok(Credentials::PasswordEnv(e.clone())),
        (Some(_), Some(_)) => Err("give only one of password_file, password_env".into()),
        (None, None) => Err(
            "no credentials: set password_file or password_env (SMB entries do not use \
             [defaults])"
                .into(),
        ),
    }
}
