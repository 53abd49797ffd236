//! A real OpenSSH `sshd` on loopback, started by a test and stopped (and reaped) when
//! dropped. Each has its own host key, port, config and directory (see TESTBED.md).
#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
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

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("addr").port()
}

impl Sshd {
    /// Start sshd in `dir`, letting in the keys of `authorized_keys`.
    pub fn start(dir: &Path, authorized_keys: &Path) -> Sshd {
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
        let port = free_port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
                 AuthorizedKeysFile {keys}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 Subsystem sftp internal-sftp\nLogLevel ERROR\n",
                host = host.display(),
                pid = dir.join("sshd.pid").display(),
                keys = authorized_keys.display(),
            ),
        )
        .expect("sshd_config");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited at start: {status}");
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd did not listen on port {} within 10 s", self.port);
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
