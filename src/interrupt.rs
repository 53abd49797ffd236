//! Ctrl-C and SIGTERM: our temp files go, one line is printed, the exit status is 130.
//!
//! [`install`] blocks SIGINT and SIGTERM in the calling thread (so in every thread spawned
//! after it; children get a clean mask from `std::process`) and waits for them in a thread
//! of its own, which may do anything a thread does: remove the temp files and directories
//! registered with [`register`], and every name of ours in the directories registered with
//! [`register_prefix`] (before their temps are made, so one being made is not missed), print,
//! exit. Temp names carry their owner's process id
//! ([`temp_prefix`]), so a run killed with SIGKILL leaves names that the next run in that
//! directory recognises as ours and dead, and removes ([`clean_stale`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Exit status after SIGINT or SIGTERM (128 + SIGINT, as shells report Ctrl-C).
pub const INTERRUPTED: u8 = 130;

static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Directories where every entry named with a prefix of ours is a temp of this process.
static PREFIXES: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
/// Attempts at removing a temp directory that a working thread may still be writing into.
const REMOVE_ATTEMPTS: usize = 20;
/// Set once a signal arrived: the work's own errors (its temp files pulled away) are noise.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a signal is being handled; the process is about to exit 130.
pub fn stopping() -> bool {
    STOPPING.load(std::sync::atomic::Ordering::SeqCst)
}

/// Wait for the exit a signal brings, when one is being handled: the command's own error
/// (its temp files removed under it) must not add a second line to the one printed.
pub fn quiet_if_stopping() {
    while stopping() {
        std::thread::park();
    }
}
/// Children writing into those temps (xorriso), stopped first.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Handle SIGINT and SIGTERM from now on. Call before any thread is spawned.
pub fn install() -> std::io::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use; the mask is
    // changed for this thread only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut signal = 0;
                if libc::sigwait(&set, &mut signal) == 0 {
                    interrupted(signal);
                }
            })?;
    }
    Ok(())
}

fn interrupted(signal: i32) -> ! {
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    let removed = remove_registered();
    let name = if signal == libc::SIGTERM {
        "terminated"
    } else {
        "interrupted"
    };
    let what = match removed {
        0 => String::new(),
        n => format!("; removed {n} temp file{}", if n == 1 { "" } else { "s" }),
    };
    // A spinner may be on the line: start it afresh on a terminal.
    let clear = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        "\r\x1b[K"
    } else {
        ""
    };
    eprintln!("{clear}error: {name}{what}");
    std::process::exit(INTERRUPTED.into())
}

fn remove_registered() -> usize {
    // Held to the end: no child is registered or forgotten while the temps go.
    let children = locked(&CHILDREN);
    for pid in children.iter() {
        if let Ok(pid) = i32::try_from(*pid) {
            // SAFETY: plain kill(2) of a child we spawned and have not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    let mut temps = locked(&TEMPS).clone();
    for (dir, prefix) in locked(&PREFIXES).iter() {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let ours = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix.as_str()))
            .map(|e| e.path());
        temps.extend(ours);
    }
    temps.sort();
    temps.dedup();
    temps.iter().filter(|path| remove(path).is_ok()).count()
}

/// Remove a temp file or directory. The work goes on in other threads meanwhile and may
/// still add a file to a directory being removed: retried a few times, then left.
fn remove(path: &Path) -> std::io::Result<()> {
    let mut result = Ok(());
    for _ in 0..REMOVE_ATTEMPTS {
        result = match path.symlink_metadata() {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
            Err(e) => return Err(e),
        };
        if result.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    result
}

/// A registry, whatever a thread that panicked holding it left in it.
fn locked<T>(registry: &Mutex<T>) -> MutexGuard<'_, T> {
    registry.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remove `path` (a temp file or directory of ours) on SIGINT or SIGTERM.
pub fn register(path: &Path) {
    locked(&TEMPS).push(path.to_path_buf());
}

/// On SIGINT or SIGTERM, remove every entry of `dir` whose name starts with `prefix` (one
/// of [`temp_prefix`]'s, so ours): registered before the temps are made.
pub fn register_prefix(dir: &Path, prefix: &str) {
    locked(&PREFIXES).push((dir.to_path_buf(), prefix.to_string()));
}

/// Stop child `pid` on SIGINT or SIGTERM, before its temps are removed.
pub fn register_child(pid: u32) {
    locked(&CHILDREN).push(pid);
}

/// Child `pid` has been waited for.
pub fn forget_child(pid: u32) {
    locked(&CHILDREN).retain(|p| *p != pid);
}

/// `path` is no temp any more (renamed into place or removed).
pub fn forget(path: &Path) {
    locked(&TEMPS).retain(|p| p != path);
}

/// The temp name prefix for `name` owned by this process: `.<name>.<pid>.`
pub fn temp_prefix(name: &str) -> String {
    format!(".{name}.{}.", std::process::id())
}

/// Remove temps for `name` in `dir` left by processes of ours that are gone. Best effort:
/// what cannot be read or removed stays.
pub fn clean_stale(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let head = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(pid) = owner(file, &head) else {
            continue;
        };
        if !alive(pid) {
            tracing::debug!("removing {}, left by process {pid}", file);
            let _ = remove(&entry.path());
        }
    }
}

/// The owner's pid in `.<name>.<pid>.<random>.tmp`.
fn owner(file: &str, head: &str) -> Option<i32> {
    let rest = file.strip_prefix(head)?.strip_suffix(".tmp")?;
    let (pid, random) = rest.split_once('.')?;
    if random.is_empty() || random.contains('.') {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert_eq!(owner(".a.iso.123.xYz9.tmp", ".a.iso."), Some(123));
        assert_eq!(owner(".a.iso.xYz9.tmp", ".a.iso."), None);
        assert_eq!(owner(".a.iso.123.xYz9", ".a.iso."), None);
        assert_eq!(owner(".b.iso.123.xYz9.tmp", ".a.iso."), None);
    }

    #[test]
    fn stale_temps_of_dead_owners_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.path().join(format!(".x.iso.{dead}.abc.tmp"));
        let live = dir.path().join(format!("{}abc.tmp", temp_prefix("x.iso")));
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join("f"), b"x").unwrap();
        std::fs::write(&live, b"x").unwrap();
        clean_stale(dir.path(), "x.iso");
        assert!(!stale.exists());
        assert!(live.exists());
    }
}
