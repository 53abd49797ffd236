//! The sha256 we record beside a file on a host (`.NAME.sha256`), so that a later run need not
//! read the whole file back.
//!
//! A marker is trusted while the file's size and mtime are unchanged and it is younger than
//! [`MAX_AGE`]; past that, or with `--verify`, the file is hashed again. That bounds how long
//! a file changed with its size and mtime restored (a tampered ISO) passes as current. A
//! marker is written only after hashing the file again, so a file replaced by another run
//! between our upload and our marker is never recorded as ours.

use super::Step;
use crate::transport::{Stat, Transport, TransportError};
use std::fmt;
use std::time::Duration;

/// How long a marker is trusted before the file is hashed again.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A file's sha256 as recorded beside it, valid while its size and mtime are unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub sha256: String,
    pub size: u64,
    pub mtime: i64,
    /// When the hash was taken (seconds since the epoch); `None` in markers of older
    /// releases, which are then hashed again once.
    pub checked: Option<u64>,
}

/// `/dir/.name.SUFFIX` beside `/dir/name` (`/`-separated remote paths).
pub fn beside(file: &str, suffix: &str) -> String {
    match file.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.{suffix}"),
        None => format!(".{file}.{suffix}"),
    }
}

/// The marker of `/dir/name`: `/dir/.name.sha256`.
pub fn path_for(file: &str) -> String {
    beside(file, "sha256")
}

/// The sha256 of `path` (whose stat is `stat`): from a marker still valid, else read back
/// from the host, with the step that records it. `verify` ignores the marker.
pub fn cached_sha256(
    t: &mut dyn Transport,
    path: &str,
    marker: &str,
    stat: &Stat,
    verify: bool,
) -> Result<(Option<String>, Option<Step>), TransportError> {
    if !verify {
        let recorded = t
            .read(marker, 4096)?
            .and_then(|b| Marker::parse(&String::from_utf8_lossy(&b)))
            .filter(|m| m.size == stat.size && m.mtime == stat.mtime && m.is_fresh(now()));
        if let Some(m) = recorded {
            return Ok((Some(m.sha256), None));
        }
    }
    let sha = t.sha256(path)?;
    let mark = sha
        .as_deref()
        .map(|sha256| Step::mark(path, marker, sha256));
    Ok((sha, mark))
}

/// Write the marker of `file` once the file hashes to `sha256` again.
pub fn record(
    t: &mut dyn Transport,
    file: &str,
    marker: &str,
    sha256: &str,
) -> Result<(), TransportError> {
    let io = |t: &dyn Transport, reason: &str| TransportError::io(t.host(), file, reason);
    let Some(stat) = t.stat(file)? else {
        return Err(io(t, "vanished before its checksum could be recorded"));
    };
    let checked = now();
    if t.sha256(file)?.as_deref() != Some(sha256) {
        return Err(io(
            t,
            "changed before its checksum could be recorded (another run replaced it?)",
        ));
    }
    let text = Marker {
        sha256: sha256.to_string(),
        size: stat.size,
        mtime: stat.mtime,
        checked: Some(checked),
    }
    .to_string();
    t.write(marker, text.as_bytes(), 0o644)
}

fn now() -> u64 {
    crate::epoch::now() as u64
}

impl Marker {
    pub fn parse(text: &str) -> Option<Marker> {
        let mut fields = std::collections::HashMap::new();
        for line in text.lines() {
            let (k, v) = line.split_once(' ')?;
            fields.insert(k, v);
        }
        let sha256 = fields.get("sha256")?.to_string();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Marker {
            sha256,
            size: fields.get("size")?.parse().ok()?,
            mtime: fields.get("mtime")?.parse().ok()?,
            checked: fields.get("checked").and_then(|c| c.parse().ok()),
        })
    }

    /// Taken less than [`MAX_AGE`] before `now` (and not in the future).
    pub fn is_fresh(&self, now: u64) -> bool {
        self.checked
            .is_some_and(|c| c <= now && now - c < MAX_AGE.as_secs())
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sha256 {}\nsize {}\nmtime {}\n",
            self.sha256, self.size, self.mtime
        )?;
        match self.checked {
            Some(c) => writeln!(f, "checked {c}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_age() {
        let m = Marker {
            sha256: "ab".repeat(32),
            size: 10,
            mtime: 20,
            checked: Some(1_000_000),
        };
        assert_eq!(Marker::parse(&m.to_string()), Some(m.clone()));
        assert_eq!(Marker::parse("sha256 zz\nsize 1\nmtime 2\n"), None);
        assert!(m.is_fresh(1_000_000 + 3600));
        assert!(!m.is_fresh(1_000_000 + MAX_AGE.as_secs()));
        assert!(!m.is_fresh(999_999), "a check in the future is not trusted");
        let old = Marker::parse(&format!("sha256 {}\nsize 1\nmtime 2\n", "ab".repeat(32)));
        assert!(
            old.is_some_and(|m| !m.is_fresh(1)),
            "older markers are re-hashed once"
        );
    }

    #[test]
    fn paths_beside() {
        assert_eq!(
            path_for("/opt/a/systemvm.iso"),
            "/opt/a/.systemvm.iso.sha256"
        );
        assert_eq!(beside("x.iso", "restart-pending"), ".x.iso.restart-pending");
    }
}
