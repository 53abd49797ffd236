//! The one upload protocol (architecture decision 8), written once over a transport's
//! primitives: create the directory, clear dead temp files, create a temp name beside the
//! target exclusively (mode 0600), stream and flush it, have the far side hash it, set the
//! mode, rename it over the target. Any failure removes the temp file, unless the link is
//! gone ([`Transport::is_broken`]); then the next upload clears it.
//!
//! A temp name says who wrote it: `.NAME.systemvm-HOST-PID-NANOS.tmp`. Another run's file is
//! removed only when it is dead: written on this machine by a process that is gone (or by
//! this process, outside its uploads in flight), or, when written elsewhere, untouched for
//! [`STALE_AFTER`]. So two management servers sharing a secondary storage never delete
//! each other's uploads in flight.

use super::{Progress, Transport, TransportError};
use crate::hashing;
use std::collections::BTreeSet;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// A temp file from another machine is dead when unwritten for this long (an upload in
/// flight writes every few milliseconds; clocks may be minutes apart).
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// What an upload reads from.
pub struct Source<'a> {
    pub reader: &'a mut (dyn Read + Send),
    /// Where the bytes come from, for messages.
    pub label: String,
    pub size: u64,
    pub progress: Progress<'a>,
}

/// Upload a local file to `remote`, which must then have `sha256` and `mode`.
pub fn file<T: Transport + ?Sized>(
    t: &mut T,
    local: &Path,
    remote: &str,
    mode: u32,
    sha256: &str,
    progress: Progress,
) -> Result<(), TransportError> {
    let local_error =
        |e: std::io::Error| TransportError::io(t.host(), format!("reading {}", local.display()), e);
    let mut file = std::fs::File::open(local).map_err(local_error)?;
    let size = file.metadata().map_err(local_error)?.len();
    let source = Source {
        reader: &mut file,
        label: local.display().to_string(),
        size,
        progress,
    };
    upload(t, source, remote, mode, sha256)
}

/// Write small contents (a marker, a key) by the same protocol.
pub fn bytes<T: Transport + ?Sized>(
    t: &mut T,
    remote: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<(), TransportError> {
    let source = Source {
        reader: &mut Cursor::new(bytes),
        label: "memory".into(),
        size: bytes.len() as u64,
        progress: &|_| {},
    };
    upload(t, source, remote, mode, &hashing::sha256_bytes(bytes))
}

/// The protocol, step by step; every error names `remote`.
fn upload<T: Transport + ?Sized>(
    t: &mut T,
    source: Source,
    remote: &str,
    mode: u32,
    sha256: &str,
) -> Result<(), TransportError> {
    let (dir, name) = split(t, remote)?;
    let prepared = t
        .create_dir_all(dir)
        .and_then(|()| clear_dead(t, dir, name));
    prepared.map_err(|e| naming(e, remote))?;
    let tmp = join(dir, &temp_name(name));
    let _in_flight = InFlight::register(&tmp);
    let result = t
        .create_new(&tmp, source)
        .and_then(|()| verify(t, &tmp, remote, sha256))
        .and_then(|()| t.set_mode(&tmp, mode))
        .and_then(|()| t.rename(&tmp, remote));
    if result.is_err() {
        discard(t, &tmp);
    }
    result.map_err(|e| naming(e, remote))
}

/// An I/O error of a step, as an error of the upload to `remote`.
fn naming(err: TransportError, remote: &str) -> TransportError {
    match err {
        TransportError::Io { host, what, reason } if !what.contains(remote) => TransportError::io(
            host,
            format!("upload to {remote}"),
            format!("{what}: {reason}"),
        ),
        other => other,
    }
}

/// Have the far side hash what landed, and compare.
fn verify<T: Transport + ?Sized>(
    t: &mut T,
    tmp: &str,
    remote: &str,
    expected: &str,
) -> Result<(), TransportError> {
    let expected = expected.trim().to_ascii_lowercase();
    let actual = t.sha256(tmp)?.ok_or_else(|| {
        let reason = format!("{tmp} vanished after writing");
        TransportError::io(t.host(), format!("upload to {remote}"), reason)
    })?;
    if actual != expected {
        return Err(TransportError::Checksum {
            host: t.host().to_string(),
            path: remote.to_string(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// Remove a failed upload's temp file; after a lost link, leave it to the next run.
fn discard<T: Transport + ?Sized>(t: &mut T, tmp: &str) {
    if t.is_broken() {
        tracing::info!("{}: {tmp} stays until the next upload clears it", t.host());
    } else if let Err(e) = t.remove(tmp) {
        tracing::warn!("{}: cannot remove {tmp}: {e}", t.host());
    }
}

/// Remove the dead temp files of earlier uploads of `name` in `dir`.
fn clear_dead<T: Transport + ?Sized>(
    t: &mut T,
    dir: &str,
    name: &str,
) -> Result<(), TransportError> {
    let prefix = format!(".{name}.systemvm-");
    let names: Vec<String> = t
        .list(dir)?
        .into_iter()
        .filter(|n| is_temp_name(n) && n.starts_with(&prefix))
        .collect();
    for path in dead_temps(t, dir, &names)? {
        tracing::info!("{}: removing leftover {path}", t.host());
        t.remove(&path)?;
    }
    Ok(())
}

/// Of the temp files `names` in `dir`, the paths of those whose writer is gone.
pub fn dead_temps<T: Transport + ?Sized>(
    t: &mut T,
    dir: &str,
    names: &[String],
) -> Result<Vec<String>, TransportError> {
    let mut dead = Vec::new();
    for name in names.iter().filter(|n| is_temp_name(n)) {
        let path = join(dir, name);
        let is_dead = match Owner::of(name) {
            Some(owner) if owner.host == this_host() => !owner.is_alive(&path),
            _ => t
                .stat(&path)?
                .is_some_and(|stat| untouched_for(stat.mtime) > STALE_AFTER),
        };
        if is_dead {
            dead.push(path);
        }
    }
    Ok(dead)
}

/// How long ago a (remote) write time was; zero when it is in the future.
fn untouched_for(mtime: i64) -> Duration {
    Duration::from_secs(crate::epoch::now().saturating_sub(mtime).max(0) as u64)
}

/// The temp name for an upload to `final_name` in the same directory.
pub fn temp_name(final_name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    ours(final_name, &format!("{nanos:08x}"))
}

/// This run's name for a file staged beside `final_name` before a later rename (Hyper-V):
/// a temp name, so a dead run's staged file is cleared by the same rule.
pub fn staged_name(final_name: &str) -> String {
    ours(final_name, "staged")
}

/// `.NAME.systemvm-HOST-PID-TAIL.tmp`, written by this process.
fn ours(final_name: &str, tail: &str) -> String {
    let (host, pid) = (this_host(), std::process::id());
    format!(".{final_name}.systemvm-{host}-{pid}-{tail}.tmp")
}

/// Whether a file name is one of our upload temp names.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".systemvm-") && name.ends_with(".tmp")
}

/// Who wrote a temp file, from its name; `None` for names without a host (older releases).
struct Owner<'a> {
    host: &'a str,
    pid: u32,
}

impl<'a> Owner<'a> {
    fn of(name: &'a str) -> Option<Owner<'a>> {
        let (_, tail) = name.rsplit_once(".systemvm-")?;
        let tail = tail.strip_suffix(".tmp")?;
        let mut parts = tail.rsplitn(3, '-');
        let _nanos = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next().filter(|h| !h.is_empty())?;
        Some(Owner { host, pid })
    }

    /// Whether the process that wrote `path` may still be writing it.
    fn is_alive(&self, path: &str) -> bool {
        if self.pid == std::process::id() {
            return InFlight::contains(path);
        }
        process_exists(self.pid)
    }
}

/// Whether a process of this machine exists: `kill(pid, 0)`, which answers even where
/// `/proc` hides other processes (the startup unit's `ProtectProc=invisible`); `EPERM`
/// means it exists.
fn process_exists(pid: u32) -> bool {
    use rustix::process::{test_kill_process, Pid};
    let pid = i32::try_from(pid).ok().and_then(Pid::from_raw);
    pid.is_some_and(|pid| match test_kill_process(pid) {
        Ok(()) | Err(rustix::io::Errno::PERM) => true,
        Err(_) => false,
    })
}

/// This machine's name as it goes into temp names: letters, digits, `.` and `_` only.
fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let clean: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' => c,
                _ => '_',
            })
            .take(64)
            .collect();
        if clean.is_empty() {
            "localhost".into()
        } else {
            clean
        }
    })
}

/// This process's uploads in flight, by temp path: never another attempt's to remove.
struct InFlight(String);

static IN_FLIGHT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

impl InFlight {
    fn register(path: &str) -> InFlight {
        if let Ok(mut set) = IN_FLIGHT.lock() {
            set.insert(path.to_string());
        }
        InFlight(path.to_string())
    }

    fn contains(path: &str) -> bool {
        IN_FLIGHT.lock().is_ok_and(|set| set.contains(path))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = IN_FLIGHT.lock() {
            set.remove(&self.0);
        }
    }
}

/// A remote file path split into its directory (`""` for the root of a share) and name.
fn split<'a, T: Transport + ?Sized>(
    t: &T,
    remote: &'a str,
) -> Result<(&'a str, &'a str), TransportError> {
    let (dir, name) = match remote.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("", remote),
    };
    if name.is_empty() || name == "." || name == ".." {
        let what = format!("upload to {remote}");
        return Err(TransportError::io(t.host(), what, "not a file path"));
    }
    Ok((dir, name))
}

/// `dir/name`, or `name` alone in a share's root.
pub fn join(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_string(),
        "/" => format!("/{name}"),
        _ => format!("{}/{name}", dir.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_carry_their_writer() {
        let name = temp_name("systemvm-4.16.0.0.iso");
        assert!(is_temp_name(&name), "{name}");
        let owner = Owner::of(&name).unwrap();
        assert_eq!(owner.host, this_host());
        assert_eq!(owner.pid, std::process::id());
        let other = Owner::of(".a.iso.systemvm-ms-2.example-77-0000abcd.tmp").unwrap();
        assert_eq!((other.host, other.pid), ("ms-2.example", 77));
        assert!(Owner::of(".a.iso.systemvm-999-0000abcd.tmp").is_none());
    }

    #[test]
    fn own_temp_files_are_alive_only_while_in_flight() {
        let path = format!("/d/{}", temp_name("x.iso"));
        let owner_name = path.rsplit('/').next().unwrap().to_string();
        let owner = Owner::of(&owner_name).unwrap();
        {
            let _flight = InFlight::register(&path);
            assert!(owner.is_alive(&path));
        }
        assert!(!owner.is_alive(&path));
        let gone = Owner {
            host: this_host(),
            pid: u32::MAX - 1,
        };
        assert!(!gone.is_alive(&path));
    }
}
