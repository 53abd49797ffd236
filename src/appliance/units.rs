//! `systemctl enable` and `systemctl disable` on an unpacked root file system, without
//! systemctl or a chroot: the symlinks they make and remove, read from each unit's
//! `[Install]` section (`WantedBy=`, `RequiredBy=`, `Alias=`). Disabling also turns a SysV
//! script's start links in `/etc/rc[2-5].d` into stop links, as `update-rc.d disable` does.

use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Where unit files live, most local first (relative to the root).
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];
const SUFFIXES: &[&str] = &[
    ".service", ".socket", ".timer", ".target", ".path", ".mount",
];
const LOCAL: &str = "etc/systemd/system";

/// What `disable` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    /// Links were removed (or there were none, but the unit exists).
    Done,
    /// No such unit in the image (its package is not installed).
    Absent,
}

/// What [`apply`] did, for the stage summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub enabled: Vec<String>,
    pub disabled: usize,
    /// Units to disable that the image does not have.
    pub absent: Vec<String>,
}

/// Enable `enable` (each must exist) and disable `disable` (absent ones are counted).
pub fn apply(root: &Path, enable_all: &[String], disable_all: &[String]) -> Result<Applied> {
    for name in enable_all {
        enable(root, name)?;
    }
    let mut disabled = 0;
    let mut absent = Vec::new();
    for name in disable_all {
        match disable(root, name)? {
            Disabled::Done => disabled += 1,
            Disabled::Absent => absent.push(name.clone()),
        }
    }
    Ok(Applied {
        enabled: enable_all.to_vec(),
        disabled,
        absent,
    })
}

/// Whether the image has the unit (`sshd` means `sshd.service`).
pub fn exists(root: &Path, name: &str) -> bool {
    find(root, &unit_name(name)).is_some()
}

/// `sshd` to `sshd.service`; names with a unit suffix stay.
pub fn unit_name(name: &str) -> String {
    if SUFFIXES.iter().any(|s| name.ends_with(s)) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// The `[Install]` section's lists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Install {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    pub alias: Vec<String>,
}

/// Read a unit file's `[Install]` section.
pub fn parse_install(text: &str) -> Install {
    let mut install = Install::default();
    let mut in_install = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|_| in_install) else {
            continue;
        };
        let list = match key.trim() {
            "WantedBy" => &mut install.wanted_by,
            "RequiredBy" => &mut install.required_by,
            "Alias" => &mut install.alias,
            _ => continue,
        };
        list.extend(value.split_whitespace().map(str::to_string));
    }
    install
}

/// The unit's file (an alias link in /etc resolved to the unit it names): its path in
/// the image (absolute, as a symlink target) and on this machine.
fn find(root: &Path, unit: &str) -> Option<(String, PathBuf)> {
    let local = root.join(LOCAL).join(unit);
    if let Ok(target) = fs::read_link(&local) {
        let real = target.file_name()?.to_str()?;
        if real != unit && target != Path::new("/dev/null") {
            return find(root, real);
        }
    }
    UNIT_DIRS.iter().find_map(|dir| {
        let path = root.join(dir).join(unit);
        let is_unit = path.symlink_metadata().is_ok_and(|m| m.is_file());
        is_unit.then(|| (format!("/{dir}/{unit}"), path))
    })
}

/// `systemctl enable NAME`: the unit must exist and say where it is wanted.
pub fn enable(root: &Path, name: &str) -> Result<()> {
    let unit = unit_name(name);
    let Some((target, path)) = find(root, &unit) else {
        bail!("cannot enable {unit}: the image has no such unit");
    };
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let install = parse_install(&text);
    if install.wanted_by.is_empty() && install.required_by.is_empty() {
        bail!("cannot enable {unit}: it has no WantedBy= or RequiredBy=");
    }
    let real = base(&target);
    let dirs = install
        .wanted_by
        .iter()
        .map(|t| format!("{t}.wants"))
        .chain(install.required_by.iter().map(|t| format!("{t}.requires")));
    for dir in dirs {
        link(root, &format!("{LOCAL}/{dir}/{real}"), &target)?;
    }
    for alias in &install.alias {
        link(root, &format!("{LOCAL}/{alias}"), &target)?;
    }
    Ok(())
}

/// `systemctl disable NAME`: every link to the unit and its aliases goes.
pub fn disable(root: &Path, name: &str) -> Result<Disabled> {
    let unit = unit_name(name);
    let sysv = sysv_links(root, unit.trim_end_matches(".service"));
    let Some((target, path)) = find(root, &unit) else {
        stop_sysv(&sysv)?;
        return Ok(if sysv.is_empty() {
            Disabled::Absent
        } else {
            Disabled::Done
        });
    };
    let text = fs::read_to_string(&path).unwrap_or_default();
    let install = parse_install(&text);
    let mut names = vec![unit.clone(), base(&target).to_string()];
    names.extend(install.alias.iter().cloned());
    remove_wants_links(root, &names)?;
    for alias in &install.alias {
        remove_symlink(&root.join(LOCAL).join(alias))?;
    }
    stop_sysv(&sysv)?;
    Ok(Disabled::Done)
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A symlink at `root/rel` to `target`, replacing what is there.
pub(crate) fn link(root: &Path, rel: &str, target: &str) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if path.symlink_metadata().is_ok() {
        fs::remove_file(&path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    symlink(target, &path).with_context(|| format!("cannot create {}", path.display()))
}

/// Remove `*.wants/NAME` and `*.requires/NAME` links under /etc/systemd/system.
fn remove_wants_links(root: &Path, names: &[String]) -> Result<()> {
    let Ok(dirs) = fs::read_dir(root.join(LOCAL)) else {
        return Ok(());
    };
    for dir in dirs.flatten() {
        let dir_name = dir.file_name();
        let dir_name = dir_name.to_string_lossy();
        if !(dir_name.ends_with(".wants") || dir_name.ends_with(".requires")) {
            continue;
        }
        for name in names {
            remove_symlink(&dir.path().join(name))?;
        }
    }
    Ok(())
}

/// Remove `link` if it is a symlink.
fn remove_symlink(link: &Path) -> Result<()> {
    if link
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        fs::remove_file(link).with_context(|| format!("cannot remove {}", link.display()))?;
    }
    Ok(())
}

/// `/etc/rc[2-5].d/S<NN><script>` links.
fn sysv_links(root: &Path, script: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for level in 2..=5 {
        let Ok(entries) = fs::read_dir(root.join(format!("etc/rc{level}.d"))) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let is_start = name.len() == script.len() + 3
                && name.starts_with('S')
                && name[1..3].bytes().all(|b| b.is_ascii_digit())
                && name.ends_with(script);
            if is_start {
                found.push(e.path());
            }
        }
    }
    found
}

/// `S01foo` to `K01foo`, as `update-rc.d foo disable`.
fn stop_sysv(links: &[PathBuf]) -> Result<()> {
    for link in links {
        let name = link.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let stopped = link.with_file_name(format!("K{}", &name[1..]));
        fs::rename(link, &stopped).with_context(|| format!("cannot rename {}", link.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("usr/lib/systemd/system")).unwrap();
        fs::create_dir_all(r.join("etc/systemd/system/multi-user.target.wants")).unwrap();
        fs::create_dir_all(r.join("etc/rc2.d")).unwrap();
        fs::write(
            r.join("usr/lib/systemd/system/ssh.service"),
            "[Unit]\nDescription=x\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n",
        )
        .unwrap();
        fs::write(
            r.join("etc/systemd/system/cloud-early-config.service"),
            "[Service]\nExecStart=/x\n\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        symlink(
            "/usr/lib/systemd/system/ssh.service",
            r.join("etc/systemd/system/multi-user.target.wants/ssh.service"),
        )
        .unwrap();
        symlink(
            "/usr/lib/systemd/system/ssh.service",
            r.join("etc/systemd/system/sshd.service"),
        )
        .unwrap();
        symlink("../init.d/x11-common", r.join("etc/rc2.d/S01x11-common")).unwrap();
        dir
    }

    #[test]
    fn enable_links_where_the_unit_is_wanted() {
        let dir = image();
        enable(dir.path(), "cloud-early-config").unwrap();
        let link = dir
            .path()
            .join("etc/systemd/system/multi-user.target.wants/cloud-early-config.service");
        assert_eq!(
            fs::read_link(link).unwrap(),
            Path::new("/etc/systemd/system/cloud-early-config.service")
        );
        let err = enable(dir.path(), "cloud-preinit").unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot enable cloud-preinit.service: the image has no such unit"
        );
    }

    #[test]
    fn disable_by_alias_removes_the_links_and_stops_sysv() {
        let dir = image();
        let r = dir.path();
        assert_eq!(disable(r, "sshd").unwrap(), Disabled::Done);
        assert!(!r
            .join("etc/systemd/system/multi-user.target.wants/ssh.service")
            .exists());
        assert!(r
            .join("etc/systemd/system/sshd.service")
            .symlink_metadata()
            .is_err());
        assert_eq!(disable(r, "x11-common").unwrap(), Disabled::Done);
        assert!(r.join("etc/rc2.d/K01x11-common").symlink_metadata().is_ok());
        assert_eq!(disable(r, "vgauth").unwrap(), Disabled::Absent);
        for name in ["apt-daily.timer", "hyperv-daemons.hv-kvp-daemon.service"] {
            assert_eq!(unit_name(name), name);
        }
    }
}
