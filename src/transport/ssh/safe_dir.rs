//! Whether a host's target directory is safe to upload into by path: the upload names the
//! temp file, and `mv` renames it, by path, so anyone who may write the directory could
//! swap them in between. Only a directory owned by root and writable by nobody else is
//! used; anything else is refused before a byte is sent.

use ssh2::FileStat;

/// Why `stat` (of the directory, symlinks followed) makes it unsafe; `None` when it is safe.
pub(super) fn problem(stat: &FileStat) -> Option<String> {
    let mode = stat.perm.unwrap_or(0) & 0o7777;
    match stat.uid {
        Some(0) => {}
        Some(uid) => return Some(format!("owned by uid {uid}, not root")),
        None => return Some("the SFTP server does not report its owner".into()),
    }
    (mode & 0o022 != 0).then(|| format!("writable by group or others (mode {mode:04o})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(uid: u32, perm: u32) -> FileStat {
        FileStat {
            size: None,
            uid: Some(uid),
            gid: Some(0),
            perm: Some(0o040000 | perm),
            atime: None,
            mtime: None,
        }
    }

    #[test]
    fn root_owned_and_not_group_or_world_writable_only() {
        assert_eq!(problem(&stat(0, 0o755)), None);
        assert_eq!(problem(&stat(0, 0o700)), None);
        assert!(problem(&stat(0, 0o775)).unwrap().contains("mode 0775"));
        assert!(problem(&stat(0, 0o1777)).unwrap().contains("mode 1777"));
        assert!(problem(&stat(1000, 0o755)).unwrap().contains("uid 1000"));
    }
}
