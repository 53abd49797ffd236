//! Test hosts: many fake hypervisor hosts on one machine, each a real OpenSSH `sshd` on
//! 127.0.0.1 (own port, own host key) with its own view of the file system.
//!
//! # Design
//!
//! Each host runs `unshare --mount --pid --uts --fork` (see TESTBED.md, "many hosts on one
//! machine"): a shell sets up the host's mounts, then `exec`s `sshd -D`, which is PID 1 of the
//! host's PID namespace. Every SSH session inherits both namespaces, so:
//!
//! - The absolute paths our code writes are private to the host. Bind-mounted from
//!   `<dir>/disk<path>`: `/opt` (with `xensource/packages/{iso,resources}` and
//!   `cosmic/agent/vms`), `/usr/share/cloudstack-common` (with `vms`), `/usr/share/xcp`
//!   (empty), `/etc/cloudstack` (with `agent`, and `agent/agent.properties` when given) and
//!   `/root` (empty: no `.bashrc` of the real machine, and `/root/.ssh` is the host's own).
//!   These trees are on disk, not tmpfs, so they survive a restart of the host under the same
//!   root and name (a reboot); a fresh name is a fresh host. `/run` is a fresh tmpfs.
//! - `/usr/local/bin` is the host's `<dir>/bin`, holding the `xe` and `systemctl` fixtures
//!   of `tests/fixtures`. sshd's session PATH is
//!   `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, so they win.
//! - The fixtures keep their state in `<dir>/state`, which the host sees as `/run/testhost`
//!   (SSH sessions do not pass environment variables, so the path is fixed). The file
//!   formats are described at the top of `tests/fixtures/xe`.
//! - `hostname` prints the host's name.
//! - With a root password, a copy of `/etc/shadow` with root's hash replaced is bind-mounted
//!   over `/etc/shadow`; the real file is never written.
//! - `small_target` mounts a size-limited tmpfs on one directory, for disk-full tests.
//!
//! The test reads a host's files through `/proc/<sshd pid>/root/...` ([`TestHost::path`]),
//! which shows the host's mount namespace.
//!
//! Stopping SIGKILLs the sshd. As PID 1 of the namespace its death makes the kernel kill
//! every process of the host (sessions, their children), and `unshare` reaps it; we reap
//! `unshare`. PID 1 of this machine never reaps orphans, so nothing may be orphaned: that is
//! why the host has a PID namespace. If the test process dies without dropping its hosts,
//! `unshare` gets SIGKILL (parent-death signal) and takes the host with it. That signal fires
//! when the *thread* that started the host ends: start hosts on the thread that uses them.
//!
//! With [`HostOptions::netns`] the host also lives in a network namespace the test created
//! (`tests/integration/common/netns.rs`): the harness enters it before `unshare`, and sshd listens on
//! the namespace's veth address instead of 127.0.0.1 ([`TestHost::address`]).
//!
//! The mount points `/etc/cloudstack`, `/usr/share/cloudstack-common` and `/usr/share/xcp`
//! are created (empty) on the real file system if missing. Everything needs root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Directories private to each host, bind-mounted from `<dir>/disk<path>`.
const PRIVATE: &[&str] = &[
    "/opt",
    "/usr/share/cloudstack-common",
    "/usr/share/xcp",
    "/etc/cloudstack",
    "/root",
];

/// Directories every host has (created inside the namespace, so also on a small target).
const DIRS: &[&str] = &[
    "/opt/xensource/packages/iso",
    "/opt/xensource/packages/resources",
    "/opt/cosmic/agent/vms",
    "/usr/share/cloudstack-common/vms",
    "/etc/cloudstack/agent",
];

/// How long a host may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts to start a host whose port was taken by someone else in the meantime.
const PORT_ATTEMPTS: usize = 3;

/// What makes one host different from another. The default is a host with fresh keys that
/// nobody can log in to.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// An `authorized_keys` file for root (copied).
    pub authorized_keys: Option<PathBuf>,
    /// Enables password login for root with this password.
    pub root_password: Option<String>,
    /// The content of `/etc/cloudstack/agent/agent.properties`.
    pub agent_properties: Option<String>,
    /// A tmpfs of this many MiB on this directory (inside one of the private trees), e.g.
    /// `("/usr/share/cloudstack-common".into(), 8)`.
    pub small_target: Option<(String, u32)>,
    /// A fixed port (to restart a host on the same port); a free one otherwise.
    pub port: Option<u16>,
    /// A private host key to use (copied): the same key is the same host. A fresh ed25519
    /// key otherwise, as a reinstalled host would have.
    pub host_key: Option<PathBuf>,
    /// Run the host inside this network namespace, listening on its address there.
    pub netns: Option<NetNsRef>,
}

/// A network namespace (by name, as `ip netns` knows it) and the address a host listens on
/// inside it.
#[derive(Debug, Clone)]
pub struct NetNsRef {
    pub name: String,
    pub address: std::net::Ipv4Addr,
}

/// One running test host. Stopped (and every process of it reaped) on drop.
pub struct TestHost {
    pub name: String,
    pub port: u16,
    /// The address sshd listens on: 127.0.0.1, or the host's address in its namespace.
    pub address: std::net::Ipv4Addr,
    /// The host's directory on the real file system: `disk/`, `bin/`, `state/`, `host_key`,
    /// `sshd_config`, `sshd.log`.
    pub dir: PathBuf,
    /// The host's public key: `ssh-ed25519 AAAA...`.
    pub host_key_line: String,
    fixed_port: bool,
    small_target: Option<(String, u32)>,
    netns: Option<String>,
    /// `unshare`, our child.
    child: Option<Child>,
    /// sshd: PID 1 of the host's PID namespace; 0 until known.
    pid: u32,
}

impl TestHost {
    /// Start a host in `root/name` and wait until it accepts connections.
    pub fn start(root: &Path, name: &str, opts: HostOptions) -> TestHost {
        let mut host = TestHost::prepare(root, name, &opts);
        host.spawn();
        host.ready_or_retry(Instant::now() + START_TIMEOUT);
        host
    }

    /// The host's view of an absolute path, readable and writable by the test.
    pub fn path(&self, abs: &str) -> PathBuf {
        assert!(abs.starts_with('/'), "not an absolute path: {abs}");
        assert!(self.child.is_some(), "host {} is stopped", self.name);
        PathBuf::from(format!("/proc/{}/root{abs}", self.pid))
    }

    /// The content of a file on the host, if it exists.
    pub fn read(&self, abs: &str) -> Option<Vec<u8>> {
        fs::read(self.path(abs)).ok()
    }

    /// Every name in a directory of the host (dotfiles too), sorted; empty if it is missing.
    pub fn files(&self, abs_dir: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.path(abs_dir)) else {
            return vec![];
        };
        let mut names: Vec<String> = entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// The line a known_hosts file needs to trust this host.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.address, self.port, self.host_key_line)
    }

    /// A known_hosts file (in the host's directory) that trusts this host only.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// Run `command` as root over a real `ssh` session with `identity`.
    pub fn ssh(&self, identity: &Path, command: &str) -> Output {
        Command::new("ssh")
            .args(ssh_options(&self.known_hosts()))
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
            .arg(identity)
            .args(["-p", &self.port.to_string()])
            .arg(format!("root@{}", self.address))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh")
    }

    /// The uuid `xe host-list` prints.
    pub fn host_uuid(&self) -> String {
        self.state_text("host-uuid").trim().to_string()
    }

    /// The uuid of the tools SR.
    pub fn sr_uuid(&self) -> String {
        self.state_text("sr-uuid").trim().to_string()
    }

    /// The host's tags, in the order xe lists them.
    pub fn xe_tags(&self) -> Vec<String> {
        split_nul(&fs::read(self.state("tags")).unwrap_or_default())
    }

    /// Replace the host's tags.
    pub fn set_xe_tags(&self, tags: &[&str]) {
        let mut bytes = vec![];
        for tag in tags {
            assert!(!tag.contains(','), "a tag may not contain a comma: {tag:?}");
            bytes.extend_from_slice(tag.as_bytes());
            bytes.push(0);
        }
        write_atomic(&self.state("tags"), &bytes);
    }

    /// Every `xe` call's arguments (without `xe`), oldest first.
    pub fn xe_log(&self) -> Vec<Vec<String>> {
        self.state_text("xe.log")
            .lines()
            .map(|line| line.split('\t').skip(1).map(unescape).collect())
            .collect()
    }

    /// Every SR uuid `xe sr-scan` scanned.
    pub fn sr_scans(&self) -> Vec<String> {
        self.state_lines("sr-scans")
    }

    /// Every systemctl call, as `restart cloudstack-agent`.
    pub fn restarts(&self) -> Vec<String> {
        self.state_lines("systemctl.log")
    }

    /// Make `systemctl restart` fail (or work again).
    pub fn set_restart_fails(&self, fails: bool) {
        let flag = self.state("systemctl-fail");
        if fails {
            fs::write(flag, "").unwrap();
        } else {
            let _ = fs::remove_file(flag);
        }
    }

    /// Make every `xe` call print `bytes` of random junk on stdout (or stderr) and exit with
    /// `status`, instead of working.
    pub fn set_xe_garbage_of(&self, bytes: u64, to_stderr: bool, status: u8) {
        let stream = if to_stderr { "stderr" } else { "stdout" };
        fs::write(
            self.state("xe-garbage"),
            format!("{bytes} {stream} {status}\n"),
        )
        .expect("xe-garbage");
    }

    /// Make every `xe` call print 2 MiB of junk and succeed.
    pub fn set_xe_garbage(&self, on: bool) {
        let flag = self.state("xe-garbage");
        if on {
            fs::write(flag, b"").expect("xe-garbage");
        } else {
            let _ = fs::remove_file(flag);
        }
    }

    /// The sshd's log (stderr, LogLevel VERBOSE).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// The global PID of the host's sshd (PID 1 of its namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kill the host and every process in it, and reap them. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.pid != 0 {
            // SAFETY: kill(2) on a PID we own: the sshd is our grandchild and still
            // unreaped (unshare waits for it), so the PID cannot have been reused.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        } else {
            // No sshd yet: --kill-child takes the namespace down with unshare.
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    fn prepare(root: &Path, name: &str, opts: &HostOptions) -> TestHost {
        assert!(is_root(), "test hosts need root (mount namespaces)");
        let dir = root.join(name);
        for sub in ["bin", "state"] {
            fs::create_dir_all(dir.join(sub)).expect("host dir");
        }
        prepare_disk(&dir, opts);
        install_fixtures(&dir);
        init_state(&dir.join("state"));
        let host_key_line = install_host_key(&dir, opts.host_key.as_deref());
        install_logins(&dir, opts);
        TestHost {
            name: name.to_string(),
            port: opts.port.unwrap_or_else(free_port),
            dir,
            host_key_line,
            address: opts
                .netns
                .as_ref()
                .map_or(std::net::Ipv4Addr::LOCALHOST, |n| n.address),
            fixed_port: opts.port.is_some(),
            small_target: opts.small_target.clone(),
            netns: opts.netns.as_ref().map(|n| n.name.clone()),
            child: None,
            pid: 0,
        }
    }

    fn spawn(&mut self) {
        write_sshd_config(&self.dir, self.address, self.port, self.password_login());
        let known = format!("{}\n", self.known_hosts_line());
        fs::write(self.known_hosts(), known).expect("known_hosts");
        let log = fs::File::create(self.dir.join("sshd.log")).expect("sshd.log");
        let (small_dir, small_mib) = match &self.small_target {
            Some((dir, mib)) => (dir.clone(), mib.to_string()),
            None => (String::new(), String::new()),
        };
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--pid", "--uts", "--fork", "--kill-child"])
            .args(["--propagation", "private", "/bin/sh", "-c", &setup_script()])
            .arg("sh")
            .arg(&self.dir)
            .args([&self.name, &small_dir, &small_mib])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // The namespace's handle, open (close-on-exec) until the child has entered it.
        let netns = self.netns.as_ref().map(|name| {
            fs::File::open(format!("/run/netns/{name}"))
                .unwrap_or_else(|e| panic!("network namespace {name}: {e}"))
        });
        let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        // SAFETY: prctl and setns are async-signal-safe; they only change this child: its
        // parent-death signal and its network namespace (the fd is open in the parent).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(fd) = netns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        self.child = Some(cmd.spawn().expect("spawn unshare"));
        drop(netns);
        self.pid = 0;
    }

    fn password_login(&self) -> bool {
        self.dir.join("shadow").exists()
    }

    /// Wait until sshd listens; on a port taken by someone else, try another port.
    fn ready_or_retry(&mut self, deadline: Instant) {
        for attempt in 1..=PORT_ATTEMPTS {
            match self.wait_ready(deadline) {
                Ok(()) => return,
                Err(log) if !self.fixed_port && attempt < PORT_ATTEMPTS && port_taken(&log) => {
                    self.stop();
                    self.port = free_port();
                    self.spawn();
                }
                Err(log) => {
                    self.stop();
                    panic!("test host {} did not start:\n{log}", self.name);
                }
            }
        }
    }

    /// Poll until sshd listens on the port, it died (Err with its log), or the deadline.
    fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Err(format!("unshare/sshd exited ({status}):\n{}", self.log()));
            }
            if self.pid == 0 {
                self.pid = first_child(child.id()).unwrap_or(0);
            }
            if self.pid != 0 && listens(self.pid, self.address, self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not listening on {} in time:\n{}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn state(&self, name: &str) -> PathBuf {
        self.dir.join("state").join(name)
    }

    fn state_text(&self, name: &str) -> String {
        fs::read_to_string(self.state(name)).unwrap_or_default()
    }

    fn state_lines(&self, name: &str) -> Vec<String> {
        self.state_text(name).lines().map(String::from).collect()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start `n` hosts named `host00`, `host01`, ... under `root`; `opts(i)` configures host `i`.
/// All are spawned first and then awaited, so they start up concurrently.
pub fn start_many(root: &Path, n: usize, opts: impl Fn(usize) -> HostOptions) -> Vec<TestHost> {
    let mut hosts: Vec<TestHost> = (0..n)
        .map(|i| TestHost::prepare(root, &format!("host{i:02}"), &opts(i)))
        .collect();
    for host in &mut hosts {
        host.spawn();
    }
    // Startup competes for the CPU: allow a little more per host.
    let deadline = Instant::now() + START_TIMEOUT + Duration::from_millis(100) * n as u32;
    for host in &mut hosts {
        host.ready_or_retry(deadline);
    }
    hosts
}

/// Client options for talking to test hosts: no user config, strict host key checking
/// against `known_hosts`, bounded connect time. The default post-quantum key exchange costs
/// ~0.1 s per connection here, so plain curve25519 is asked for.
pub fn ssh_options(known_hosts: &Path) -> Vec<String> {
    let options = [
        "KexAlgorithms=curve25519-sha256".to_string(),
        "StrictHostKeyChecking=yes".to_string(),
        "ConnectTimeout=10".to_string(),
        "LogLevel=ERROR".to_string(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
    ];
    let mut args = vec!["-F".to_string(), "/dev/null".to_string()];
    for option in options {
        args.push("-o".to_string());
        args.push(option);
    }
    args
}

/// The shell that runs inside the new namespaces: `$1` host dir, `$2` name, `$3` small
/// target directory (or empty), `$4` its size in MiB.
fn setup_script() -> String {
    let binds: String = PRIVATE
        .iter()
        .map(|p| format!("mount --bind \"$1/disk{p}\" {p}\n"))
        .collect();
    format!(
        "set -e\n\
         {binds}\
         if [ -n \"$3\" ]; then mount -t tmpfs -o \"size=$4m,mode=755\" tmpfs \"$3\"; fi\n\
         mkdir -p {dirs}\n\
         mount -t tmpfs -o mode=755 tmpfs /run\n\
         mkdir -m 755 /run/sshd /run/testhost\n\
         mount --bind \"$1/state\" /run/testhost\n\
         mount --bind \"$1/bin\" /usr/local/bin\n\
         if [ -f \"$1/shadow\" ]; then mount --bind \"$1/shadow\" /etc/shadow; fi\n\
         hostname \"$2\"\n\
         exec /usr/sbin/sshd -D -e -f \"$1/sshd_config\"\n",
        dirs = DIRS.join(" "),
    )
}

/// The private trees on disk, their mount points, agent.properties, the small target check.
fn prepare_disk(dir: &Path, opts: &HostOptions) {
    for p in PRIVATE {
        fs::create_dir_all(dir.join(format!("disk{p}"))).expect("disk dir");
        fs::create_dir_all(p).expect("mount point");
    }
    fs::set_permissions(dir.join("disk/root"), fs::Permissions::from_mode(0o700)).expect("chmod");
    if let Some(props) = &opts.agent_properties {
        let agent = dir.join("disk/etc/cloudstack/agent");
        fs::create_dir_all(&agent).expect("agent dir");
        fs::write(agent.join("agent.properties"), props).expect("agent.properties");
    }
    if let Some((target, _)) = &opts.small_target {
        assert!(
            PRIVATE.iter().any(|p| target.starts_with(p)),
            "small_target {target} is not inside a private tree {PRIVATE:?}"
        );
        fs::create_dir_all(dir.join(format!("disk{target}"))).expect("small target");
    }
}

fn install_fixtures(dir: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in ["xe", "systemctl"] {
        fs::copy(fixtures.join(name), dir.join("bin").join(name)).expect("copy fixture");
    }
}

/// Uuids for a new host; a restarted host keeps its state.
fn init_state(state: &Path) {
    for name in ["host-uuid", "sr-uuid"] {
        let path = state.join(name);
        if !path.exists() {
            let uuid = fs::read_to_string("/proc/sys/kernel/random/uuid").expect("uuid");
            fs::write(path, uuid).expect("state uuid");
        }
    }
}

/// Install the given or a fresh host key as `<dir>/host_key`; returns its public line.
fn install_host_key(dir: &Path, given: Option<&Path>) -> String {
    use ssh_key::{Algorithm, LineEnding, PrivateKey};
    let path = dir.join("host_key");
    let key = match given {
        Some(src) => PrivateKey::read_openssh_file(src).expect("read host key"),
        None => PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519).expect("keygen"),
    };
    let pem = key.to_openssh(LineEnding::LF).expect("encode host key");
    let _ = fs::remove_file(&path);
    write_private(&path, pem.as_bytes());
    let public = key.public_key().to_openssh().expect("public key");
    // Without the comment: `type base64`.
    public.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

/// authorized_keys and the shadow copy with root's password.
fn install_logins(dir: &Path, opts: &HostOptions) {
    let keys = dir.join("authorized_keys");
    match &opts.authorized_keys {
        Some(src) => {
            fs::copy(src, &keys).expect("copy authorized_keys");
        }
        None => fs::write(&keys, b"").expect("authorized_keys"),
    }
    let shadow = dir.join("shadow");
    let _ = fs::remove_file(&shadow);
    if let Some(password) = &opts.root_password {
        let real = fs::read_to_string("/etc/shadow").expect("read /etc/shadow");
        write_private(
            &shadow,
            with_root_hash(&real, &hash_password(password)).as_bytes(),
        );
    }
}

/// `/etc/shadow` text with root's password hash replaced.
fn with_root_hash(shadow: &str, hash: &str) -> String {
    shadow
        .lines()
        .map(|line| match line.split_once(':') {
            Some(("root", rest)) => {
                let after = rest.split_once(':').map_or("", |(_, after)| after);
                format!("root:{hash}:{after}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

/// A SHA-512 crypt hash made by openssl; the password goes through stdin, never argv.
fn hash_password(password: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl passwd");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    drop(stdin);
    let out = child.wait_with_output().expect("openssl passwd");
    assert!(out.status.success(), "openssl passwd failed");
    String::from_utf8(out.stdout)
        .expect("hash")
        .trim()
        .to_string()
}

fn write_sshd_config(dir: &Path, address: std::net::Ipv4Addr, port: u16, password: bool) {
    let (password_auth, root_login) = if password {
        ("yes", "yes")
    } else {
        ("no", "prohibit-password")
    };
    let config = format!(
        "Port {port}\n\
         ListenAddress {address}\n\
         HostKey {dir}/host_key\n\
         PidFile none\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         UsePAM no\n\
         StrictModes no\n\
         PasswordAuthentication {password_auth}\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin {root_login}\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         MaxStartups 100\n\
         MaxSessions 100\n\
         Subsystem sftp internal-sftp\n\
         LogLevel VERBOSE\n",
        dir = dir.display(),
    );
    fs::write(dir.join("sshd_config"), config).expect("sshd_config");
}

use super::net::free_port;

fn port_taken(log: &str) -> bool {
    log.contains("Address already in use")
}

/// The first child of `pid` (unshare's only child is the namespace's PID 1).
fn first_child(pid: u32) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Whether `pid` holds a socket listening on `address`:`port` (in its network namespace).
fn listens(pid: u32, address: std::net::Ipv4Addr, port: u16) -> bool {
    let Ok(tcp) = fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    // /proc/net/tcp prints the address as the u32 in host (little-endian) byte order.
    let local = format!("{:08X}:{port:04X}", u32::from_le_bytes(address.octets()));
    let inodes: Vec<&str> = tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| f[9])
        })
        .collect();
    !inodes.is_empty() && owns_socket(pid, &inodes)
}

fn owns_socket(pid: u32, inodes: &[&str]) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .any(|link| {
            let link = link.to_string_lossy();
            inodes.iter().any(|i| link == format!("socket:[{i}]"))
        })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn write_private(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create private file");
    file.write_all(bytes).expect("write private file");
}

fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp.harness");
    fs::write(&tmp, bytes).expect("write temp");
    fs::rename(&tmp, path).expect("rename");
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Undo xe.log's escapes: `\\`, `\t`, `\n`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
