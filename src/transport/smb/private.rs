//! smbclient's private files: a config and an authentication file (mode 0600) in a temp
//! dir (mode 0700) named with our PID, so the password never goes on a command line or into
//! the child's environment, and a later run removes what a killed one left.

use super::SmbConfig;
use crate::transport::TransportError;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Our private temp dirs are `<temp>/systemvm-smb-<pid>-<random>`.
const PRIVATE_PREFIX: &str = "systemvm-smb-";

/// Remove private dirs (and the authentication files in them) that killed runs left behind:
/// ours by owner, and their process gone. Best effort; `ours` is the one just made.
fn remove_stale_private_dirs(ours: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (Some(parent), Ok(me)) = (ours.parent(), std::fs::metadata(ours)) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PRIVATE_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let owned = entry
            .metadata()
            .is_ok_and(|m| m.is_dir() && m.uid() == me.uid());
        if owned && !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!("removing {}, left by a killed run", entry.path().display());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Make the private dir with `smb.conf` and `auth` for one transport.
pub(super) fn prepare(config: &SmbConfig) -> Result<tempfile::TempDir, TransportError> {
    let io = |what: &str, e: std::io::Error| TransportError::io(&config.name, what, e);
    // tempfile creates the directory 0700. Our PID in its name lets a later run remove
    // it when we were killed before we could.
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PRIVATE_PREFIX}{}-", std::process::id()))
        .tempdir()
        .map_err(|e| io("creating a private temp dir", e))?;
    remove_stale_private_dirs(dir.path());
    write_config(dir.path(), config).map_err(|e| io("writing the smbclient config", e))?;
    write_auth(dir.path(), config).map_err(|e| io("writing the authentication file", e))?;
    Ok(dir)
}

/// `smb.conf`: every state and cache path inside the private dir; signing required;
/// encryption as the inventory says.
fn write_config(dir: &Path, config: &SmbConfig) -> std::io::Result<()> {
    let conf = format!(
        "[global]\n  client min protocol = SMB2_02\n  lock directory = {0}\n  \
         state directory = {0}\n  cache directory = {0}\n  private dir = {0}\n  \
         ncalrpc dir = {0}\n  log file = {0}/log\n  max log size = 64\n  \
         load printers = no\n  client signing = required\n  client smb encrypt = {1}\n",
        dir.display(),
        config.encrypt.smb_conf_value()
    );
    std::fs::write(dir.join("smb.conf"), conf)
}

/// `auth` (mode 0600): the credentials, in smbclient's `-A` format.
fn write_auth(dir: &Path, config: &SmbConfig) -> std::io::Result<()> {
    let mut auth = format!(
        "username = {}\npassword = {}\n",
        config.user,
        config.password.expose()
    );
    if let Some(domain) = &config.domain {
        auth.push_str(&format!("domain = {domain}\n"));
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join("auth"))?;
    let written = file.write_all(auth.as_bytes());
    // Best effort: overwrite the copy we formatted.
    // SAFETY: zero bytes are valid UTF-8.
    unsafe { auth.as_bytes_mut().fill(0) };
    written
}
