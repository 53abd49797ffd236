//! A real Samba `smbd` on loopback, started by a test and stopped (and reaped) when dropped.
//!
//! Each has its own config with every path (private, lock, state, cache, pid, log) inside
//! the test's directory, a high port on 127.0.0.1 only (`interfaces = lo`, `bind interfaces
//! only`), no on-demand RPC helpers (they would detach and outlive smbd, TESTBED.md), and a
//! private passdb holding one user the harness creates: `Administrator`, mapped to the Unix
//! account smbd runs as. Shares: `secondary` and the admin share `C$`.
//!
//! smbd forks helpers (notifyd, cleanupd) that outlive a killed parent, and PID 1 here does
//! not reap orphans, so smbd runs as PID 1 of its own PID namespace (`unshare --pid --fork`):
//! when it is killed, the kernel kills and reaps everything in the namespace, and we reap
//! `unshare`.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "Administrator";
pub const DOMAIN: &str = "WORKGROUP";

pub struct Smbd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub password: String,
    /// Where the `secondary` share lives on this machine.
    pub secondary: PathBuf,
    /// Where the `C$` share lives on this machine.
    pub admin: PathBuf,
}

impl Smbd {
    /// Start smbd in `dir` with a user whose password is `password`.
    pub fn start(dir: &Path, password: &str) -> Smbd {
        Smbd::start_with(dir, password, "")
    }

    /// As `start`, with `global` (whole `key = value` lines) added to `[global]`.
    pub fn start_with(dir: &Path, password: &str, global: &str) -> Smbd {
        for sub in [
            "private",
            "lock",
            "state",
            "cache",
            "pid",
            "log",
            "secondary",
            "c",
        ] {
            fs::create_dir_all(dir.join(sub)).expect("smbd dir");
        }
        let port = super::net::free_port();
        let d = dir.display();
        fs::write(dir.join("users.map"), format!("root = {USER}\n")).expect("users.map");
        let config = dir.join("smb.conf");
        fs::write(
            &config,
            format!(
                "[global]\n\
                 workgroup = {DOMAIN}\n\
                 netbios name = SMBTEST\n\
                 server role = standalone server\n\
                 security = user\n\
                 map to guest = never\n\
                 smb ports = {port}\n\
                 interfaces = lo\n\
                 bind interfaces only = yes\n\
                 disable netbios = yes\n\
                 rpc start on demand helpers = no\n\
                 private dir = {d}/private\n\
                 lock directory = {d}/lock\n\
                 state directory = {d}/state\n\
                 cache directory = {d}/cache\n\
                 pid directory = {d}/pid\n\
                 ncalrpc dir = {d}/lock/ncalrpc\n\
                 log file = {d}/log/log.%m\n\
                 passdb backend = tdbsam:{d}/private/passdb.tdb\n\
                 username map = {d}/users.map\n\
                 load printers = no\n\
                 printing = bsd\n\
                 printcap name = /dev/null\n\
                 disable spoolss = yes\n\
                 server min protocol = SMB2_10\n\
                 {global}\
                 [secondary]\n\
                 path = {d}/secondary\n\
                 read only = no\n\
                 valid users = root\n\
                 [C$]\n\
                 path = {d}/c\n\
                 read only = no\n\
                 valid users = root\n"
            ),
        )
        .expect("smb.conf");
        // The password goes in on stdin, never on a command line.
        let mut add = Command::new("smbpasswd")
            .arg("-c")
            .arg(&config)
            .args(["-a", "-s", "root"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run smbpasswd");
        {
            use std::io::Write;
            let mut stdin = add.stdin.take().expect("stdin");
            write!(stdin, "{password}\n{password}\n").expect("password to smbpasswd");
        }
        let out = add.wait_with_output().expect("smbpasswd");
        assert!(
            out.status.success(),
            "smbpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = fs::File::create(dir.join("smbd.log")).expect("smbd log");
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "smbd"])
            .args(["--foreground", "--no-process-group", "--debug-stdout", "-s"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start smbd");
        let mut smbd = Smbd {
            child,
            port,
            dir: dir.to_path_buf(),
            password: password.to_string(),
            secondary: dir.join("secondary"),
            admin: dir.join("c"),
        };
        smbd.wait_listening();
        smbd
    }

    fn wait_listening(&mut self) {
        let log = self.dir.join("smbd.log");
        let limit = Duration::from_secs(15);
        super::net::wait_listening(&mut self.child, self.port, "smbd", &log, limit);
    }

    /// A file holding `password` (0600), for an inventory's `password_file`.
    pub fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let path = self.dir.join(name);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .expect("password file");
        use std::io::Write;
        writeln!(f, "{password}").expect("write password");
        path
    }

    /// Run Samba's own `smbclient` against `share` (credentials from a 0600 file).
    pub fn smbclient(&self, share: &str, command: &str) -> Output {
        let auth = self.dir.join("client.auth");
        if !auth.exists() {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&auth)
                .expect("auth file");
            use std::io::Write;
            write!(
                f,
                "username = {USER}\npassword = {}\ndomain = {DOMAIN}\n",
                self.password
            )
            .expect("auth");
        }
        // A client config of its own too, so that it keeps its caches in this directory.
        let conf = self.dir.join("client.conf");
        if !conf.exists() {
            let d = self.dir.join("client");
            fs::create_dir_all(&d).expect("client dir");
            let d = d.display();
            fs::write(
                &conf,
                format!(
                    "[global]\nlock directory = {d}\nstate directory = {d}\n\
                     cache directory = {d}\nprivate dir = {d}\nncalrpc dir = {d}\n"
                ),
            )
            .expect("client.conf");
        }
        Command::new("smbclient")
            .arg("-s")
            .arg(&conf)
            .arg("-A")
            .arg(&auth)
            .args(["-p", &self.port.to_string()])
            .arg(format!("//127.0.0.1/{share}"))
            .args(["-c", command])
            .stdin(Stdio::null())
            .output()
            .expect("run smbclient")
    }

    /// smbd's own PID (PID 1 of its namespace, as this machine numbers it).
    pub fn pid(&self) -> Option<u32> {
        let unshare = self.child.id();
        fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// `smbstatus --json` against this smbd's own config, run inside its PID and mount
    /// namespaces (the session records hold the PIDs smbd sees); `None` if it fails.
    pub fn status_json(&self) -> Option<serde_json::Value> {
        let pid = self.pid()?.to_string();
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-p", "-m", "--", "smbstatus", "--json", "-s"])
            .arg(self.dir.join("smb.conf"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// A file's bytes as `smbclient get` fetches them into a local file.
    pub fn fetch(&self, share: &str, remote: &str, local: &Path) -> Vec<u8> {
        let out = self.smbclient(share, &format!("get \"{remote}\" \"{}\"", local.display()));
        assert!(
            out.status.success(),
            "smbclient get {remote}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        fs::read(local).expect("fetched file")
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        // smbd is PID 1 of its namespace: killing it takes (and reaps) all its helpers.
        let unshare = self.child.id();
        let children = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) on a PID we started (unshare's only child).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
