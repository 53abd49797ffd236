//! A real OpenSSH `sshd` on loopback, started by a test and stopped (and reaped) when
//! dropped. Each has its own host key, port, config and directory (see TESTBED.md).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// The host's public key line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
}

pub use super::net::free_port;

/// How to start a test sshd, beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Listen on this port instead of a fresh one (to restart a host in place).
    pub port: Option<u16>,
    /// Let users (root included) log in with a password; sshd checks /etc/shadow.
    pub password: bool,
    /// Mount a tmpfs of this size (`5m`) on this existing directory, in a private mount
    /// namespace: only this sshd and its sessions see it.
    pub tmpfs: Option<(PathBuf, String)>,
    /// Also offer an ECDSA host key (`host_ecdsa` in the sshd directory).
    pub ecdsa_host_key: bool,
}

impl Sshd {
    /// Start sshd in `dir`, letting in the keys of `authorized_keys`.
    pub fn start(dir: &Path, authorized_keys: &Path) -> Sshd {
        Sshd::start_with(dir, authorized_keys, &Options::default())
    }

    /// Start sshd in `dir` with `options`. A host key already in `dir` is kept.
    pub fn start_with(dir: &Path, authorized_keys: &Path, options: &Options) -> Sshd {
        fs::create_dir_all(dir).expect("sshd dir");
        // Privilege separation wants this directory to exist.
        let _ = fs::create_dir_all("/run/sshd");
        let host = dir.join("host_ed25519");
        if !host.exists() {
            super::tool(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-f",
                    host.to_str().unwrap(),
                ],
            );
        }
        let mut host_keys = format!("HostKey {}\n", host.display());
        if options.ecdsa_host_key {
            let ecdsa = dir.join("host_ecdsa");
            if !ecdsa.exists() {
                let path = ecdsa.to_str().unwrap();
                super::tool("ssh-keygen", &["-q", "-t", "ecdsa", "-N", "", "-f", path]);
            }
            host_keys += &format!("HostKey {}\n", ecdsa.display());
        }
        let port = options.port.unwrap_or_else(free_port);
        let config = dir.join("sshd_config");
        let (password, root) = if options.password {
            ("yes", "yes")
        } else {
            ("no", "prohibit-password")
        };
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\n{host_keys}PidFile {pid}\n\
                 AuthorizedKeysFile {keys}\nUsePAM no\nStrictModes no\nPasswordAuthentication {password}\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin {root}\n\
                 Subsystem sftp internal-sftp\nLogLevel ERROR\n",
                pid = dir.join("sshd.pid").display(),
                keys = authorized_keys.display(),
            ),
        )
        .expect("sshd_config");
        let mut command = match &options.tmpfs {
            None => Command::new("/usr/sbin/sshd"),
            Some((mount_point, size)) => {
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-c"])
                    .arg("mount -t tmpfs -o size=\"$1\",mode=755 tmpfs \"$2\" && exec /usr/sbin/sshd \"$3\" \"$4\" \"$5\" \"$6\"")
                    .arg("sh")
                    .arg(size)
                    .arg(mount_point);
                c
            }
        };
        // sshd's own complaints go to a log beside its config, for a failing test to show.
        let log = fs::File::create(dir.join("sshd.log")).expect("sshd log");
        let child = command
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let host_key = fs::read_to_string(dir.join("host_ed25519.pub")).expect("host key");
        let mut sshd = Sshd {
            child,
            port,
            dir: dir.to_path_buf(),
            host_key: host_key
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" "),
        };
        sshd.wait_listening();
        sshd
    }

    /// The sshd process (after `exec`, also with a tmpfs): `/proc/<pid>/root` shows its view.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The host key's fingerprint as OpenSSH prints it (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        let pub_key = self.dir.join("host_ed25519.pub");
        let out = super::tool("ssh-keygen", &["-l", "-f", pub_key.to_str().unwrap()]);
        out.split_whitespace()
            .nth(1)
            .expect("fingerprint")
            .to_string()
    }

    /// Forget the host key in `dir`, so the next start makes a new one.
    pub fn forget_host_key(dir: &Path) {
        for name in ["host_ed25519", "host_ed25519.pub"] {
            let _ = fs::remove_file(dir.join(name));
        }
    }

    fn wait_listening(&mut self) {
        let log = self.dir.join("sshd.log");
        let limit = Duration::from_secs(10);
        super::net::wait_listening(&mut self.child, self.port, "sshd", &log, limit);
    }

    /// A known_hosts file that trusts this sshd.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir.join("known_hosts");
        fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.port, self.host_key),
        )
        .expect("known_hosts");
        path
    }

    /// Run `command` over ssh as the current user with `identity`; returns (success, stdout).
    pub fn ssh(&self, identity: &Path, command: &str) -> (bool, String) {
        let user = super::tool("id", &["-un"]).trim().to_string();
        let out = Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .arg("-i")
            .arg(identity)
            .args(["-p", &self.port.to_string()])
            .arg(format!("{user}@127.0.0.1"))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Sessions that are closing get a moment to end, so that sshd reaps them; killed
        // first, they would be orphaned, and PID 1 here does not reap orphans.
        let deadline = Instant::now() + Duration::from_secs(2);
        while has_children(self.child.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_children(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|c| !c.trim().is_empty())
        .unwrap_or(false)
}
