//! The startup unit's sandbox as systemd applies it, read back for `doctor`: which paths
//! `ReadWritePaths=` leaves writable under `ProtectSystem=strict`.
//!
//! The unit is the first of `/etc/systemd/system`, `/run/systemd/system`,
//! `/lib/systemd/system` and `/usr/lib/systemd/system` that holds it (an admin's copy in
//! `/etc` wins); its drop-ins are every `<name>.d/*.conf` in those directories, applied in
//! file name order after the unit. `ReadWritePaths=` accumulates; an empty assignment
//! resets the list. The `-` (missing is fine) and `+` prefixes are dropped. Everything is
//! looked up under a root directory, `/` but for tests.

use std::path::{Component, Path, PathBuf};

/// The unit the management server's start hook runs in.
pub const UNIT: &str = "systemvm-startup.service";

/// The drop-in doctor proposes for VMware secondary storage mounts.
pub const VMWARE_DROP_IN: &str = "/etc/systemd/system/systemvm-startup.service.d/vmware.conf";

/// Unit directories, by precedence.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "run/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
];

/// The unit's `ReadWritePaths=` under `root`, unit then drop-ins; `None` when the unit is
/// not installed there.
pub fn read_write_paths(root: &Path, unit: &str) -> Option<Vec<PathBuf>> {
    let unit_file = UNIT_DIRS
        .iter()
        .map(|d| root.join(d).join(unit))
        .find(|p| p.is_file())?;
    let mut paths = Vec::new();
    for file in std::iter::once(unit_file).chain(drop_ins(root, unit)) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        apply(&text, &mut paths);
    }
    Some(paths)
}

/// Whether `target` lies at or below one of `paths`.
pub fn covers(paths: &[PathBuf], target: &Path) -> bool {
    let target = normal(target);
    paths.iter().any(|p| target.starts_with(normal(p)))
}

/// The unit's drop-in files, in the order systemd applies them (by file name; for one
/// name, the directory of highest precedence wins).
fn drop_ins(root: &Path, unit: &str) -> Vec<PathBuf> {
    let mut by_name = std::collections::BTreeMap::new();
    for dir in UNIT_DIRS.iter().rev() {
        let dir = root.join(dir).join(format!("{unit}.d"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if Path::new(&name).extension().is_some_and(|e| e == "conf") {
                by_name.insert(name, entry.path());
            }
        }
    }
    by_name.into_values().collect()
}

/// Apply one file's `[Service]` `ReadWritePaths=` lines to `paths`.
fn apply(text: &str, paths: &mut Vec<PathBuf>) {
    let mut in_service = false;
    for line in logical_lines(text) {
        let line = line.trim();
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !in_service || key.trim() != "ReadWritePaths" {
            continue;
        }
        if value.trim().is_empty() {
            paths.clear();
        }
        for word in value.split_whitespace() {
            let word = word.trim_matches('"').trim_start_matches(['-', '+']);
            paths.push(PathBuf::from(word));
        }
    }
}

/// Lines with comments dropped and `\` continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim_start();
        if pending.is_empty() && (trimmed.starts_with('#') || trimmed.starts_with(';')) {
            continue;
        }
        match raw.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(raw);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    if !pending.is_empty() {
        out.push(pending);
    }
    out
}

/// A path without `.` components or trailing slashes, for prefix comparison.
fn normal(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_ins_add_and_an_empty_assignment_resets() {
        let mut paths = Vec::new();
        apply(
            "[Service]\nReadWritePaths=-/usr/share/cloudstack-common/vms \\\n  -/etc/systemvm\n\
             [Install]\nReadWritePaths=/nope\n",
            &mut paths,
        );
        assert_eq!(paths.len(), 2);
        apply(
            "[Service]\n# ReadWritePaths=/x\nReadWritePaths=/mnt/secondary/\n",
            &mut paths,
        );
        assert!(covers(&paths, Path::new("/mnt/secondary/zone1")));
        assert!(covers(&paths, Path::new("/etc/systemvm")));
        assert!(!covers(&paths, Path::new("/mnt/secondary2")));
        apply("[Service]\nReadWritePaths=\n", &mut paths);
        assert!(paths.is_empty());
    }
}
