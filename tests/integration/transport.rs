//! The transports against the real thing: an OpenSSH sshd on loopback (one per test, each
//! with its own host key and port) and a local directory. Each test states what an operator
//! would notice: the bytes that land, what is left behind, and which error says what.

use crate::common;

use common::sshd::{free_port, Options, Sshd};
use common::*;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use systemvm::secret::Secret;
use systemvm::transport::local::{LocalDir, Root};
use systemvm::transport::quote;
use systemvm::transport::ssh::{SshAuth, SshConfig, SshTransport};
use systemvm::transport::{Transport, TransportError};
use tempfile::TempDir;

const MB: usize = 1024 * 1024;

/// A test host: an sshd that lets our key in, and a known_hosts file that trusts it.
struct Host {
    // Field order is drop order: sshd stops before its directory goes.
    sshd: Sshd,
    key: PathBuf,
    known_hosts: PathBuf,
    dir: TempDir,
}

impl Host {
    fn start() -> Host {
        Host::start_with(&Options::default())
    }

    fn start_with(options: &Options) -> Host {
        let dir = tempdir();
        let (key, public) = ssh_keygen(dir.path(), "id_ed25519");
        let sshd = Sshd::start_with(&dir.path().join("sshd"), &public, options);
        let known_hosts = sshd.known_hosts();
        Host {
            sshd,
            key,
            known_hosts,
            dir,
        }
    }

    fn config(&self) -> SshConfig {
        SshConfig {
            name: "xen-test".into(),
            address: "127.0.0.1".into(),
            port: self.sshd.port,
            user: current_user(),
            auth: SshAuth::Key {
                path: self.key.clone(),
                passphrase: None,
            },
            known_hosts: self.known_hosts.clone(),
            accept_new: false,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(60),
        }
    }

    fn connect(&self) -> SshTransport {
        SshTransport::connect(&self.config()).unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// A path under the test's directory, as a remote path (sshd sees the same files).
    fn path(&self, rel: &str) -> String {
        self.dir
            .path()
            .join(rel)
            .to_str()
            .expect("utf-8")
            .to_string()
    }
}

fn current_user() -> String {
    tool("id", &["-un"]).trim().to_string()
}

/// `len` random bytes in a file; returns its sha256.
fn random_file(path: &Path, len: usize) -> String {
    let mut bytes = Vec::with_capacity(len);
    fs::File::open("/dev/urandom")
        .expect("urandom")
        .take(len as u64)
        .read_to_end(&mut bytes)
        .expect("random bytes");
    fs::write(path, bytes).expect("write random file");
    sha256(path)
}

fn mode_of(path: &str) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Nothing but `expected` in the directory: no temp file left behind.
fn assert_only(dir: &Path, expected: &[&str]) {
    assert_eq!(
        listing(dir),
        expected,
        "unexpected files in {}",
        dir.display()
    );
}

fn no_progress(_: u64) {}

// --- commands ---------------------------------------------------------------------------

#[test]
fn run_returns_output_apart_and_arguments_arrive_literally() {
    let host = Host::start();
    let mut t = host.connect();

    let out = t.run("echo out; echo err >&2").unwrap();
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );

    let err = t.run("echo first >&2; echo boom >&2; exit 3").unwrap_err();
    match &err {
        TransportError::Command { status, stderr, .. } => {
            assert_eq!(*status, 3);
            assert_eq!(stderr, "first / boom");
        }
        other => panic!("expected a Command error, got {other:?}"),
    }
    assert!(!err.is_transient());

    let pwned = host.path("pwned");
    let nasty = [
        "two words".to_string(),
        "it's \"quoted\"".to_string(),
        format!("$(touch {pwned})"),
        format!("`touch {pwned}`"),
        format!("; touch {pwned}"),
        "*".to_string(),
        "back\\slash".to_string(),
    ];
    let mut args = vec!["printf".to_string(), "%s\\n".to_string()];
    args.extend(nasty.iter().cloned());
    let out = t.run(&quote::command(&args)).unwrap();
    let got: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(got, nasty);
    assert!(!Path::new(&pwned).exists(), "an argument ran as a command");

    // Both streams near the cap at once come back whole and apart.
    let out = t
        .run("head -c 900000 /dev/zero | tr '\\0' e >&2; head -c 900000 /dev/zero | tr '\\0' o")
        .unwrap();
    assert_eq!(out.stdout.len(), 900_000);
    assert_eq!(out.stderr.len(), 900_000);
    assert!(out.stdout.bytes().all(|b| b == b'o') && out.stderr.bytes().all(|b| b == b'e'));
}

#[test]
fn endless_output_is_cut_off_and_the_connection_survives() {
    let host = Host::start();
    let mut t = host.connect();
    for command in ["yes", "yes >&2", "head -c 5242880 /dev/zero"] {
        let started = Instant::now();
        let err = t.run(command).unwrap_err();
        assert!(
            matches!(&err, TransportError::Io { reason, .. } if reason.contains("output too large")),
            "{command}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{command} took too long"
        );
    }
    assert_eq!(t.run("echo still-here").unwrap().stdout, "still-here\n");
}

// --- uploads ----------------------------------------------------------------------------

#[test]
fn upload_lands_whole_with_its_mode_and_replaces_the_old_file() {
    let host = Host::start();
    let mut t = host.connect();
    let local = host.dir.path().join("systemvm.iso");
    let sum = random_file(&local, 20 * MB);
    let remote_dir = host.dir.path().join("remote/iso");
    let remote = host.path("remote/iso/systemvm.iso");

    let seen = AtomicU64::new(0);
    let progress = |n: u64| seen.store(n, Ordering::Relaxed);
    t.upload(&local, &remote, 0o644, &sum, &progress).unwrap();
    assert_eq!(sha256(Path::new(&remote)), sum);
    assert_eq!(mode_of(&remote), 0o644);
    assert_eq!(seen.load(Ordering::Relaxed), 20 * MB as u64);
    assert_only(&remote_dir, &["systemvm.iso"]);
    let stat = t.stat(&remote).unwrap().expect("uploaded file");
    assert_eq!((stat.size, stat.mode), (20 * MB as u64, 0o644));

    // A second upload replaces the first (the target exists now).
    let sum2 = random_file(&local, 3 * MB);
    t.upload(&local, &remote, 0o640, &sum2, &no_progress)
        .unwrap();
    assert_eq!(sha256(Path::new(&remote)), sum2);
    assert_eq!(mode_of(&remote), 0o640);
    assert_only(&remote_dir, &["systemvm.iso"]);
}

#[test]
fn upload_into_a_directory_with_spaces_and_a_quote() {
    let host = Host::start();
    let mut t = host.connect();
    let local = host.dir.path().join("payload");
    let sum = random_file(&local, 100_000);
    let remote = host.path("it's a dir/with spaces $(x)/systemvm.iso");
    t.upload(&local, &remote, 0o644, &sum, &no_progress)
        .unwrap();
    assert_eq!(sha256(Path::new(&remote)), sum);
    assert_only(
        &host.dir.path().join("it's a dir/with spaces $(x)"),
        &["systemvm.iso"],
    );
}

#[test]
fn checksum_mismatch_keeps_the_old_file_and_leaves_no_temp() {
    let host = Host::start();
    let mut t = host.connect();
    let dir = host.dir.path().join("iso");
    let remote = host.path("iso/systemvm.iso");
    t.write(&remote, b"old contents\n", 0o644).unwrap();

    let local = host.dir.path().join("new.iso");
    random_file(&local, 500_000);
    let wrong = "0".repeat(64);
    let err = t
        .upload(&local, &remote, 0o644, &wrong, &no_progress)
        .unwrap_err();
    assert!(matches!(err, TransportError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains(&remote), "{err}");
    assert_eq!(fs::read(&remote).unwrap(), b"old contents\n");
    assert_only(&dir, &["systemvm.iso"]);
}

/// A pid that was ours and is gone: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Set a file's write time to `secs` ago.
fn age(path: &Path, secs: u64) {
    let when = std::time::SystemTime::now() - Duration::from_secs(secs);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

#[test]
fn only_dead_temp_files_are_cleared() {
    let host = Host::start();
    let mut t = host.connect();
    let dir = host.dir.path().join("iso");
    fs::create_dir_all(&dir).unwrap();
    let this = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let this: String = this
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Ours, by a process that is gone: dead at once.
    let killed = format!(".systemvm.iso.systemvm-{this}-{}-0000abcd.tmp", dead_pid());
    // Another management server's, written a second ago: in flight, kept.
    let in_flight = ".systemvm.iso.systemvm-ms2-77-0000abcd.tmp";
    // Another's (or an older release's, without a host), untouched for two hours: dead.
    let abandoned = ".systemvm.iso.systemvm-ms3-78-0000abcd.tmp";
    let old_release = ".systemvm.iso.systemvm-999-0000abcd.tmp";
    for name in [killed.as_str(), in_flight, abandoned, old_release] {
        fs::write(dir.join(name), b"half").unwrap();
    }
    age(&dir.join(abandoned), 7200);
    age(&dir.join(old_release), 7200);
    fs::write(
        dir.join(".other.iso.systemvm-999-0000abcd.tmp"),
        b"not ours to touch",
    )
    .unwrap();
    age(&dir.join(".other.iso.systemvm-999-0000abcd.tmp"), 7200);
    t.write(&host.path("iso/systemvm.iso"), b"new\n", 0o644)
        .unwrap();
    assert_only(
        &dir,
        &[
            ".other.iso.systemvm-999-0000abcd.tmp",
            in_flight,
            "systemvm.iso",
        ],
    );
}

#[test]
fn small_files_write_read_stat_list_and_remove() {
    let host = Host::start();
    let mut t = host.connect();
    let dir = host.path("markers");
    let marker = format!("{dir}/systemvm.sha256");
    assert_eq!(t.read(&marker, 1024).unwrap(), None);
    assert_eq!(t.stat(&marker).unwrap(), None);
    assert_eq!(t.list(&dir).unwrap(), Vec::<String>::new());

    t.write(&marker, b"abc123\n", 0o600).unwrap();
    assert_eq!(
        t.read(&marker, 1024).unwrap().as_deref(),
        Some(&b"abc123\n"[..])
    );
    assert!(
        t.read(&marker, 3).is_err(),
        "a file over the limit must not be read"
    );
    assert_eq!(
        t.stat(&marker).unwrap().map(|s| (s.size, s.mode)),
        Some((7, 0o600))
    );
    assert_eq!(t.list(&dir).unwrap(), ["systemvm.sha256"]);

    t.remove(&marker).unwrap();
    t.remove(&marker).unwrap();
    assert_eq!(t.list(&dir).unwrap(), Vec::<String>::new());
}

#[test]
fn a_full_disk_fails_clearly_and_keeps_the_old_file() {
    let dir = tempdir();
    let small = dir.path().join("small");
    fs::create_dir(&small).unwrap();
    let (key, public) = ssh_keygen(dir.path(), "id_ed25519");
    let options = Options {
        tmpfs: Some((small.clone(), "5m".into())),
        ..Options::default()
    };
    let sshd = Sshd::start_with(&dir.path().join("sshd"), &public, &options);
    let config = SshConfig {
        name: "kvm-full".into(),
        address: "127.0.0.1".into(),
        port: sshd.port,
        user: current_user(),
        auth: SshAuth::Key {
            path: key,
            passphrase: None,
        },
        known_hosts: sshd.known_hosts(),
        accept_new: false,
        connect_timeout: Duration::from_secs(30),
        io_timeout: Duration::from_secs(60),
    };
    let mut t = SshTransport::connect(&config).unwrap();
    let remote = format!("{}/systemvm.iso", small.display());

    let old = dir.path().join("old.iso");
    let old_sum = random_file(&old, MB);
    t.upload(&old, &remote, 0o644, &old_sum, &no_progress)
        .unwrap();

    let big = dir.path().join("big.iso");
    let big_sum = random_file(&big, 20 * MB);
    let err = t
        .upload(&big, &remote, 0o644, &big_sum, &no_progress)
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, TransportError::Io { .. }), "{message}");
    assert!(message.starts_with("kvm-full: "), "{message}");
    assert!(message.contains(&remote), "{message}");
    assert!(message.contains("no space left"), "{message}");

    // Seen over the same session, and from outside through the sshd's own mount namespace.
    assert_eq!(
        t.list(&small.display().to_string()).unwrap(),
        ["systemvm.iso"]
    );
    let out = t
        .run(&quote::command(&["sha256sum", "--", &remote]))
        .unwrap();
    assert!(
        out.stdout.starts_with(&old_sum),
        "old file changed: {}",
        out.stdout
    );
    let seen_by_host = PathBuf::from(format!("/proc/{}/root{}", sshd.pid(), small.display()));
    assert_only(&seen_by_host, &["systemvm.iso"]);
    assert!(
        listing(&small).is_empty(),
        "the tmpfs leaked out of its namespace"
    );
}

// --- host keys --------------------------------------------------------------------------

#[test]
fn an_unknown_host_is_refused_until_pinned() {
    let host = Host::start();
    let known_hosts = host.dir.path().join("pins/known_hosts");
    let mut config = host.config();
    config.known_hosts = known_hosts.clone();

    let err = SshTransport::connect(&config)
        .err()
        .expect("unknown host let in");
    match &err {
        TransportError::UnknownHostKey { fingerprint, .. } => {
            assert_eq!(fingerprint, &host.sshd.fingerprint());
        }
        other => panic!("expected UnknownHostKey, got {other}"),
    }
    assert!(!err.is_transient());
    assert!(!known_hosts.exists(), "refusing must not write known_hosts");

    config.accept_new = true;
    let mut t = SshTransport::connect(&config).unwrap();
    assert_eq!(t.run("echo in").unwrap().stdout, "in\n");
    let name = format!("[127.0.0.1]:{}", host.sshd.port);
    let text = fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(text, format!("{name} {}\n", host.sshd.host_key));
    assert_eq!(mode_of(known_hosts.to_str().unwrap()), 0o600);
    let found = tool(
        "ssh-keygen",
        &["-F", &name, "-f", known_hosts.to_str().unwrap()],
    );
    assert!(found.contains(&host.sshd.host_key), "{found}");

    // Pinned now: a strict connection gets in, and nothing is appended twice.
    config.accept_new = false;
    SshTransport::connect(&config).unwrap();
    config.accept_new = true;
    SshTransport::connect(&config).unwrap();
    assert_eq!(fs::read_to_string(&known_hosts).unwrap(), text);
}

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new() {
    let host = Host::start();
    let sshd_dir = host.dir.path().join("sshd");
    let port = host.sshd.port;
    let old_fingerprint = host.sshd.fingerprint();
    let mut config = host.config();
    // Pinned with the old key (by Host), then the host comes back with a new key.
    let Host { sshd, dir, .. } = host;
    drop(sshd);
    Sshd::forget_host_key(&sshd_dir);
    let options = Options {
        port: Some(port),
        ..Options::default()
    };
    let public = dir.path().join("id_ed25519.pub");
    let sshd = Sshd::start_with(&sshd_dir, &public, &options);
    let before = fs::read(&config.known_hosts).unwrap();

    config.accept_new = true;
    let err = SshTransport::connect(&config)
        .err()
        .expect("changed key let in");
    match &err {
        TransportError::ChangedHostKey {
            expected, actual, ..
        } => {
            assert_eq!(expected, &old_fingerprint);
            assert_eq!(actual, &sshd.fingerprint());
        }
        other => panic!("expected ChangedHostKey, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(&old_fingerprint) && message.contains(&sshd.fingerprint()));
    assert!(!err.is_transient());
    assert_eq!(
        fs::read(&config.known_hosts).unwrap(),
        before,
        "known_hosts changed"
    );
}

#[test]
fn hashed_entries_from_ssh_keyscan_match() {
    let host = Host::start();
    let port = host.sshd.port.to_string();
    let scanned = tool(
        "ssh-keyscan",
        &["-H", "-t", "ed25519,rsa,ecdsa", "-p", &port, "127.0.0.1"],
    );
    assert!(scanned.lines().all(|l| l.starts_with("|1|")), "{scanned}");
    let mut config = host.config();
    config.known_hosts = host.dir.path().join("hashed_known_hosts");
    fs::write(&config.known_hosts, &scanned).unwrap();
    let mut t = SshTransport::connect(&config).unwrap();
    assert_eq!(t.run("echo hashed").unwrap().stdout, "hashed\n");

    // OpenSSH files a host on another port than 22 as `[host]:port` only: a (hashed) entry
    // for the bare address does not vouch for it.
    let portless = host.dir.path().join("portless_known_hosts");
    fs::write(&portless, format!("127.0.0.1 {}\n", host.sshd.host_key)).unwrap();
    tool(
        "ssh-keygen",
        &["-q", "-H", "-f", portless.to_str().unwrap()],
    );
    assert!(fs::read_to_string(&portless).unwrap().starts_with("|1|"));
    config.known_hosts = portless;
    let err = SshTransport::connect(&config)
        .err()
        .expect("a port-less entry vouched");
    assert!(
        matches!(err, TransportError::UnknownHostKey { .. }),
        "{err}"
    );
}

#[test]
fn a_host_pinned_by_one_of_its_key_types_is_recognised() {
    let host = Host::start_with(&Options {
        ecdsa_host_key: true,
        ..Options::default()
    });
    let ecdsa = fs::read_to_string(host.dir.path().join("sshd/host_ecdsa.pub")).unwrap();
    let ecdsa: Vec<&str> = ecdsa.split_whitespace().take(2).collect();
    let mut config = host.config();
    // libssh2 would rather use ed25519; the host is known by its ECDSA key only.
    config.known_hosts = host.dir.path().join("ecdsa_known_hosts");
    let line = format!("[127.0.0.1]:{} {}\n", host.sshd.port, ecdsa.join(" "));
    fs::write(&config.known_hosts, &line).unwrap();
    let mut t = SshTransport::connect(&config).unwrap();
    assert_eq!(t.run("echo ecdsa-pinned").unwrap().stdout, "ecdsa-pinned\n");
    // And by its ed25519 key only (Host's own known_hosts).
    let mut t = host.connect();
    assert_eq!(
        t.run("echo ed25519-pinned").unwrap().stdout,
        "ed25519-pinned\n"
    );
}

// --- connecting and logging in ------------------------------------------------------------

#[test]
fn a_host_that_never_speaks_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, wait) = mpsc::channel::<()>();
    // Accept and hold the connection without a word, until the test is done (at most 20 s).
    let server = std::thread::spawn(move || {
        let held = listener.accept();
        let _ = wait.recv_timeout(Duration::from_secs(20));
        drop(held);
    });
    let dir = tempdir();
    let config = SshConfig {
        name: "silent".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        auth: SshAuth::Password(Secret::new("unused".into())),
        known_hosts: dir.path().join("known_hosts"),
        accept_new: false,
        connect_timeout: Duration::from_secs(1),
        io_timeout: Duration::from_secs(1),
    };
    let started = Instant::now();
    let err = SshTransport::connect(&config)
        .err()
        .expect("a mute host let us in");
    let took = started.elapsed();
    let _ = done.send(());
    server.join().unwrap();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    assert!(err.is_transient());
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn a_refused_port_is_a_transient_connect_error() {
    let dir = tempdir();
    let config = SshConfig {
        name: "down".into(),
        address: "127.0.0.1".into(),
        port: free_port(),
        user: "root".into(),
        auth: SshAuth::Password(Secret::new("unused".into())),
        known_hosts: dir.path().join("known_hosts"),
        accept_new: false,
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(2),
    };
    let err = SshTransport::connect(&config)
        .err()
        .expect("connected to nothing");
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().starts_with("down: "), "{err}");
}

#[test]
fn a_wrong_password_is_a_clean_auth_failure() {
    let host = Host::start_with(&Options {
        password: true,
        ..Options::default()
    });
    let password = "Wr0ng-but-secret-pa$$word";
    let mut config = host.config();
    config.auth = SshAuth::Password(Secret::new(password.into()));
    let started = Instant::now();
    let err = SshTransport::connect(&config)
        .err()
        .expect("wrong password let in");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(!err.is_transient());
    for shown in [err.to_string(), format!("{err:?}"), format!("{config:?}")] {
        assert!(!shown.contains(password), "the password leaked: {shown}");
    }
}

#[test]
fn passphrase_protected_and_rsa_keys_log_in() {
    let host = Host::start();
    let dir = host.dir.path();
    let ecdsa = dir.join("id_ecdsa");
    let rsa = dir.join("id_rsa");
    let ecdsa_s = ecdsa.to_str().unwrap();
    let rsa_s = rsa.to_str().unwrap();
    tool(
        "ssh-keygen",
        &["-q", "-t", "ecdsa", "-N", "open sesame", "-f", ecdsa_s],
    );
    tool(
        "ssh-keygen",
        &["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa_s],
    );
    let authorized = dir.join("id_ed25519.pub");
    let mut keys = fs::read_to_string(&authorized).unwrap();
    keys += &fs::read_to_string(dir.join("id_ecdsa.pub")).unwrap();
    keys += &fs::read_to_string(dir.join("id_rsa.pub")).unwrap();
    fs::write(&authorized, keys).unwrap();

    let mut config = host.config();
    config.auth = SshAuth::Key {
        path: ecdsa.clone(),
        passphrase: Some(Secret::new("open sesame".into())),
    };
    let mut t = SshTransport::connect(&config).unwrap();
    assert_eq!(t.run("echo ecdsa").unwrap().stdout, "ecdsa\n");

    config.auth = SshAuth::Key {
        path: rsa,
        passphrase: None,
    };
    let mut t = SshTransport::connect(&config).unwrap();
    assert_eq!(t.run("echo rsa").unwrap().stdout, "rsa\n");

    config.auth = SshAuth::Key {
        path: ecdsa,
        passphrase: Some(Secret::new("wrong".into())),
    };
    let err = SshTransport::connect(&config)
        .err()
        .expect("wrong passphrase let in");
    assert!(matches!(err, TransportError::Auth { .. }), "{err}");
    assert!(!err.is_transient());
}

// --- a local directory --------------------------------------------------------------------

#[test]
fn local_dir_uploads_replace_and_leave_nothing_behind() {
    let dir = tempdir();
    // The root is the admin's mount point: it must be there (a missing one is never made).
    fs::create_dir(dir.path().join("secondary")).unwrap();
    let mut t = LocalDir::new("nfs-zone1", dir.path().join("secondary"), Root::Local);
    let target_dir = dir.path().join("secondary/systemvm");
    let remote = target_dir
        .join("systemvm.iso")
        .to_str()
        .unwrap()
        .to_string();
    let local = dir.path().join("systemvm.iso");

    let sum = random_file(&local, 5 * MB);
    let seen = AtomicU64::new(0);
    let progress = |n: u64| seen.store(n, Ordering::Relaxed);
    t.upload(&local, &remote, 0o644, &sum, &progress).unwrap();
    assert_eq!(sha256(Path::new(&remote)), sum);
    assert_eq!(seen.load(Ordering::Relaxed), 5 * MB as u64);
    let stat = t.stat(&remote).unwrap().expect("uploaded");
    assert_eq!((stat.size, stat.mode), (5 * MB as u64, 0o644));

    let sum2 = random_file(&local, MB);
    t.upload(&local, &remote, 0o640, &sum2, &no_progress)
        .unwrap();
    assert_eq!(sha256(Path::new(&remote)), sum2);
    assert_eq!(mode_of(&remote), 0o640);

    let err = t
        .upload(&local, &remote, 0o644, &"f".repeat(64), &no_progress)
        .unwrap_err();
    assert!(matches!(err, TransportError::Checksum { .. }), "{err}");
    assert_eq!(sha256(Path::new(&remote)), sum2);

    let marker = format!("{}/systemvm.version", target_dir.display());
    t.write(&marker, b"4.16.0.0\n", 0o644).unwrap();
    assert_eq!(
        t.read(&marker, 100).unwrap().as_deref(),
        Some(&b"4.16.0.0\n"[..])
    );
    let dir_s = target_dir.to_str().unwrap();
    assert_eq!(t.list(dir_s).unwrap(), ["systemvm.iso", "systemvm.version"]);
    t.remove(&marker).unwrap();
    t.remove(&marker).unwrap();
    assert_eq!(t.list(dir_s).unwrap(), ["systemvm.iso"]);
    assert_eq!(t.stat(&marker).unwrap(), None);
    assert_eq!(
        t.list(&format!("{dir_s}/absent")).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn local_dir_refuses_commands_and_unwritable_targets_cleanly() {
    let dir = tempdir();
    let mut t = LocalDir::new("nfs-zone1", "/", Root::Local);
    let err = t.run("true").unwrap_err();
    assert!(
        err.to_string()
            .contains("no commands on a directory target"),
        "{err}"
    );

    let local = dir.path().join("systemvm.iso");
    let sum = random_file(&local, 1000);
    // Root ignores modes; /proc refuses new files whoever asks.
    let err = t
        .upload(
            &local,
            "/proc/systemvm-test/systemvm.iso",
            0o644,
            &sum,
            &no_progress,
        )
        .unwrap_err();
    assert!(matches!(err, TransportError::Io { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("nfs-zone1: upload to /proc/systemvm-test"),
        "{err}"
    );
    // A parent that is a file, not a directory.
    fs::write(dir.path().join("plain"), b"x").unwrap();
    let under_file = dir.path().join("plain/systemvm.iso");
    let err = t
        .upload(
            &local,
            under_file.to_str().unwrap(),
            0o644,
            &sum,
            &no_progress,
        )
        .unwrap_err();
    assert!(matches!(err, TransportError::Io { .. }), "{err}");
    assert_only(dir.path(), &["plain", "systemvm.iso"]);
}

#[test]
fn a_marker_is_written_only_for_the_content_it_names() {
    // Over SSH, as on a KVM host: another run replaced the ISO after our upload.
    let host = Host::start();
    let mut t = host.connect();
    let dir = host.path("vms");
    fs::create_dir_all(&dir).unwrap();
    let iso = format!("{dir}/systemvm.iso");
    let marker = systemvm::hypervisors::marker::path_for(&iso);
    fs::write(&iso, b"the other run's ISO").unwrap();
    let ours = systemvm::hashing::sha256_bytes(b"our ISO");
    let err = systemvm::hypervisors::marker::record(&mut t, &iso, &marker, &ours)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("changed before its checksum could be recorded"),
        "{err}"
    );
    assert!(err.contains(&iso), "{err}");
    assert_eq!(t.stat(&marker).unwrap(), None, "a wrong marker was written");

    fs::write(&iso, b"our ISO").unwrap();
    systemvm::hypervisors::marker::record(&mut t, &iso, &marker, &ours).unwrap();
    let text = fs::read_to_string(&marker).unwrap();
    assert!(
        text.starts_with(&format!("sha256 {ours}\nsize 7\n")),
        "{text}"
    );
}
