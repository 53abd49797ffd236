//! From an entry as written to a target: its kind decides how it is reached (SSH, a mounted
//! directory, SMB), its profile is loaded and checked against the kind, and every key that
//! does not belong to that way is refused, naming it.

use super::raw::{RawDefaults, RawHost, RawInventory, RawSecondary};
use super::{checks, smb, Access, Directory, Place, SshHost, SshProfile, Target};
use crate::kind::{Hypervisor, Reach};
use crate::profile::{self, Profile};
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

/// An error at a span of the file (or the whole file).
pub(super) type Located = (Option<Range<usize>>, String);

/// A `[[host]]`: reached over SSH (xenserver, kvm) or SMB (hyperv).
pub(super) fn host(h: &RawHost, raw: &RawInventory) -> Result<Target, Located> {
    let whole = || Some(h.name.span());
    checks::check_name(&h.name).map_err(|m| (whole(), m))?;
    checks::check_address(&h.address).map_err(|m| (Some(h.address.span()), m))?;
    let kind = *h.hypervisor.get_ref();
    let profile = load_profile(h.profile.as_ref(), kind, &raw.profile).map_err(|m| (whole(), m))?;
    let access = match (kind.reach(), profile) {
        (Reach::Smb, Profile::Hyperv(p)) => {
            Access::Smb(smb::host(h, &p).map_err(|m| (whole(), m))?, p)
        }
        (Reach::Directory, _) => {
            let hint = format!("{kind} takes a [[secondary]] storage, not a [[host]]");
            return Err((Some(h.hypervisor.span()), hint));
        }
        (Reach::Ssh, profile) => {
            let ssh = ssh_host(h, &raw.defaults).map_err(|m| (whole(), m))?;
            Access::Ssh(ssh, ssh_profile(profile, kind).map_err(|m| (whole(), m))?)
        }
        (Reach::Smb, _) => return Err((whole(), format!("a {kind} host needs a {kind} profile"))),
    };
    Ok(Target {
        name: h.name.get_ref().clone(),
        hypervisor: kind,
        place: Place::Host,
        zone: h.zone.clone(),
        cluster: h.cluster.clone(),
        access,
    })
}

/// An SSH host's profile: XenServer's or KVM's.
fn ssh_profile(profile: Profile, kind: Hypervisor) -> Result<SshProfile, String> {
    match profile {
        Profile::Xenserver(p) => Ok(SshProfile::Xenserver(p)),
        Profile::Kvm(p) => Ok(SshProfile::Kvm(p)),
        other => Err(format!(
            "a {kind} host cannot take a {} profile",
            other.kind()
        )),
    }
}

fn ssh_host(h: &RawHost, d: &RawDefaults) -> Result<SshHost, String> {
    for (key, set) in [
        ("domain", h.domain.is_some()),
        ("encrypt", h.encrypt.is_some()),
    ] {
        if set {
            return Err(format!("`{key}` is for hyperv (SMB) hosts only"));
        }
    }
    if let Some(user) = &h.user {
        checks::check_user(user)?;
    }
    let user = h
        .user
        .clone()
        .or(d.user.as_ref().map(|u| u.get_ref().clone()));
    Ok(SshHost {
        address: h.address.get_ref().clone(),
        port: h.port.or(d.port).unwrap_or(22),
        user: user.unwrap_or_else(|| "root".into()),
        credentials: checks::credentials(h, d)?,
    })
}

/// A `[[secondary]]`: a mounted directory (vmware, management) or an SMB share (hyperv).
pub(super) fn secondary(s: &RawSecondary, raw: &RawInventory) -> Result<Target, Located> {
    let whole = || Some(s.name.span());
    checks::check_name(&s.name).map_err(|m| (whole(), m))?;
    let kind = *s.hypervisor.get_ref();
    if kind.reach() == Reach::Ssh {
        let message = format!(
            "a [[secondary]] storage is for {}, {}, not {:?}",
            Hypervisor::list(Reach::Directory),
            Hypervisor::list(Reach::Smb),
            kind.as_str(),
        );
        return Err((Some(s.hypervisor.span()), message));
    }
    let profile = load_profile(s.profile.as_ref(), kind, &raw.profile).map_err(|m| (whole(), m))?;
    let access = match profile {
        Profile::Hyperv(p) => Access::Smb(smb::secondary(s, &p)?, p),
        Profile::Vmware(p) | Profile::Management(p) => Access::Directory(directory(s, kind)?, p),
        other => {
            let message = format!("a {kind} storage cannot take a {} profile", other.kind());
            return Err((whole(), message));
        }
    };
    Ok(Target {
        name: s.name.get_ref().clone(),
        hypervisor: kind,
        place: Place::Secondary,
        zone: s.zone.clone(),
        cluster: None,
        access,
    })
}

fn directory(s: &RawSecondary, kind: Hypervisor) -> Result<Directory, Located> {
    let whole = Some(s.name.span());
    let smb_only = [
        ("share", s.share.is_some()),
        ("port", s.port.is_some()),
        ("folder", s.folder.is_some()),
        ("user", s.user.is_some()),
        ("domain", s.domain.is_some()),
        ("password_file", s.password_file.is_some()),
        ("password_env", s.password_env.is_some()),
        ("encrypt", s.encrypt.is_some()),
    ];
    if let Some((key, _)) = smb_only.iter().find(|(_, set)| *set) {
        let message = format!("`{key}` is for hyperv (SMB) storage, not {kind}");
        return Err((whole, message));
    }
    let Some(path) = &s.path else {
        let message = format!("a {kind} storage needs `path` (the mounted directory)");
        return Err((whole, message));
    };
    if !path.get_ref().is_absolute() {
        return Err((Some(path.span()), "path must be absolute".into()));
    }
    Ok(Directory {
        path: path.get_ref().clone(),
        keep: s.keep,
        require_mount: s.require_mount.unwrap_or(kind == Hypervisor::Vmware),
    })
}

/// The entry's profile (its kind's by default), which must be for that kind.
fn load_profile(
    chosen: Option<&Spanned<String>>,
    kind: Hypervisor,
    overrides: &BTreeMap<String, toml::Table>,
) -> Result<Profile, String> {
    let name = chosen
        .map(|s| s.get_ref().as_str())
        .unwrap_or(kind.as_str());
    let profile = profile::load(name, overrides.get(name)).map_err(|e| e.to_string())?;
    if profile.kind() != kind {
        return Err(format!(
            "profile {name:?} is for {}, not {kind}",
            profile.kind()
        ));
    }
    Ok(profile)
}
