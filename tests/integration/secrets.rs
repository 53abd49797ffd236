//! Secrets never leak. Every command runs with `-vv`, `RUST_LOG=trace` and JSON output where it
//! has it: keys generate (with a passphrase file) and show, build, inspect, inject, status and
//! propagate (a password_file host and a password_env host, `--deliver-key`), package deb,
//! startup (its own key, injected and propagated) and doctor (which logs in), and some
//! failing runs. No private key bytes (the PEM body, its base64 lines, the raw key),
//! passphrase or password may appear in any stdout or stderr, in any file the tool wrote
//! (here or on the hosts) except the key files themselves, which must be 0600, or in the argv
//! of any process that ran meanwhile: xorriso through a logging wrapper, `xe` through its
//! fixture's log, and every process on the machine through /proc/*/cmdline, sampled.

use crate::common;

use common::hosts::{start_many, HostOptions};
use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const PASSPHRASE: &str = "passphrase-7c1e0b9a-do-not-print";
const PASSWORD_FILE: &str = "password-file-4d2f9e13-secret";
const PASSWORD_ENV: &str = "password-env-93ab55c2-secret";
const WRONG_PASSWORD: &str = "wrong-password-0e7d41aa-secret";

/// One secret and the name to report it by.
struct Needle {
    what: String,
    bytes: Vec<u8>,
}

fn needle(what: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Needle {
    Needle {
        what: what.into(),
        bytes: bytes.into(),
    }
}

/// What of a private key file must never show: the PEM body and each of its lines, and the
/// raw private key (here ed25519: the 32-byte seed) as bytes and as hex.
fn key_needles(path: &Path, passphrase: Option<&str>) -> Vec<Needle> {
    let pem = fs::read_to_string(path).unwrap();
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut needles = vec![needle(format!("{name}: PEM body"), body.concat())];
    // Line 0 is the format's header (`openssh-key-v1`, cipher and KDF names), the same in
    // every unencrypted key, so it proves nothing; every other line holds key material.
    for (i, line) in body
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| l.len() >= 16)
    {
        needles.push(needle(format!("{name}: PEM line {i}"), *line));
    }
    let mut key = ssh_key::PrivateKey::from_openssh(&pem).unwrap();
    if let Some(pass) = passphrase {
        assert!(key.is_encrypted(), "{name} is not encrypted");
        key = key.decrypt(pass).unwrap();
    }
    let seed = match key.key_data().ed25519() {
        Some(pair) => pair.private.to_bytes().to_vec(),
        // RSA: the private exponent.
        None => key
            .key_data()
            .rsa()
            .expect("ed25519 or rsa")
            .private
            .d
            .as_bytes()
            .to_vec(),
    };
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    needles.push(needle(format!("{name}: raw private key"), seed.to_vec()));
    needles.push(needle(format!("{name}: private key hex"), hex));
    needles
}

/// The body lines of a PEM private key file.
fn pem_needles(path: &Path) -> Vec<Needle> {
    let pem = fs::read_to_string(path).unwrap();
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .enumerate()
        .map(|(i, l)| needle(format!("delivered PEM line {i}"), l))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `root` (symlinks not followed).
fn files_under(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// Collects the command line of every process on the machine while it runs.
struct Sampler {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeSet<Vec<u8>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let me = std::process::id().to_string();
            while !s.load(Ordering::Relaxed) {
                let Ok(procs) = fs::read_dir("/proc") else {
                    continue;
                };
                for p in procs.flatten() {
                    let name = p.file_name();
                    let name = name.to_string_lossy();
                    if name == me || !name.bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    if let Ok(cmdline) = fs::read(p.path().join("cmdline")) {
                        if !cmdline.is_empty() {
                            v.lock().unwrap().insert(cmdline);
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        Sampler {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> BTreeSet<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

#[test]
fn no_secret_reaches_output_logs_files_or_argv() {
    let dir = tempdir();
    let root = dir.path();
    let tmp = root.join("tmp");
    let mgmt = root.join("mgmt");
    let out = root.join("out");
    let bin = root.join("bin");
    for d in [&tmp, &mgmt, &out, &bin] {
        fs::create_dir(d).unwrap();
    }
    let inputs = root.join("inputs");
    fs::create_dir(&inputs).unwrap();
    let pass_file = inputs.join("passphrase");
    let pw_file = inputs.join("xen.password");
    let wrong_file = inputs.join("wrong.password");
    for (path, secret) in [
        (&pass_file, PASSPHRASE),
        (&pw_file, PASSWORD_FILE),
        (&wrong_file, WRONG_PASSWORD),
    ] {
        fs::write(path, format!("{secret}\n")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // xorriso behind a wrapper that records its argv, one NUL-separated line a call.
    let xorriso_log = root.join("xorriso.argv");
    let wrapper = bin.join("xorriso");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\0' \"$@\" >> '{}'\nprintf '\\n' >> '{}'\nexec xorriso \"$@\"\n",
            xorriso_log.display(),
            xorriso_log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();

    // Hosts: XenServer with a password file, KVM with a password in the environment.
    let (identity, client_pub) = ssh_keygen(root, "client");
    let hosts_dir = root.join("hosts");
    let hosts = start_many(&hosts_dir, 2, |i| HostOptions {
        root_password: Some([PASSWORD_FILE, PASSWORD_ENV][i].to_string()),
        authorized_keys: Some(client_pub.clone()),
        ..Default::default()
    });
    let (xen, kvm) = (&hosts[0], &hosts[1]);
    let inventory = |xen_pw: &Path| {
        format!(
            "[defaults]\nidentity = \"{}\"\n\n\
             [[host]]\nname = \"xen\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"xenserver\"\npassword_file = \"{}\"\n\n\
             [[host]]\nname = \"kvm\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"kvm\"\npassword_env = \"KVM_PASSWORD\"\n",
            identity.display(),
            xen.port,
            xen_pw.display(),
            kvm.port,
        )
    };
    let inv = root.join("hosts.toml");
    fs::write(&inv, inventory(&pw_file)).unwrap();
    let wrong_inv = root.join("wrong.toml");
    fs::write(&wrong_inv, inventory(&wrong_file)).unwrap();
    let known = root.join("known_hosts");
    fs::write(
        &known,
        format!("{}\n{}\n", xen.known_hosts_line(), kvm.known_hosts_line()),
    )
    .unwrap();

    let sampler = Sampler::start();
    let mut runs: Vec<(String, Run)> = Vec::new();
    let loud = || {
        Test::new()
            .arg("-vv")
            .env("RUST_LOG", "trace")
            .env("TMPDIR", &tmp)
            .env("SYSTEMVM_XORRISO", &wrapper)
            .env("KVM_PASSWORD", PASSWORD_ENV)
            .current_dir(&out)
    };
    let mut record = |what: &str, run: Run, code: i32| {
        let run = run.code(code);
        runs.push((what.to_string(), run));
    };
    let (key, deliver) = (mgmt.join("id_ed25519"), mgmt.join("id_rsa.cloud"));
    let iso = out.join("systemvm.iso");
    let targets = |t: Test, cmd: &str, inv: &Path| {
        t.args([
            cmd,
            "--output-format",
            "json",
            "--retries",
            "0",
            "--inventory",
        ])
        .arg(inv)
        .arg("--known-hosts")
        .arg(&known)
        .arg("--iso")
        .arg(&iso)
    };

    record(
        "keys generate --passphrase-file",
        loud()
            .args(["keys", "generate", "-o"])
            .arg(&key)
            .arg("--passphrase-file")
            .arg(&pass_file)
            .output(),
        0,
    );
    record(
        "keys generate (to deliver)",
        loud()
            .args(["keys", "generate", "--type", "rsa", "-o"])
            .arg(&deliver)
            .output(),
        0,
    );
    record(
        "keys generate over an existing key",
        loud()
            .args(["keys", "generate", "-o"])
            .arg(&key)
            .arg("--passphrase-file")
            .arg(&pass_file)
            .output(),
        2,
    );
    for path in [&key, &deliver, &keys_pub(&key)] {
        record(
            "keys show",
            loud().args(["keys", "show"]).arg(path).output(),
            0,
        );
    }
    record(
        "build",
        loud()
            .args(["build", "--version", "4.16.0.0", "--output-format", "json"])
            .arg("--payload")
            .arg(small_payload(root))
            .arg("--key")
            .arg(keys_pub(&key))
            .arg("-o")
            .arg(&iso)
            .output(),
        0,
    );
    record(
        "build --key PRIVATE",
        loud()
            .args(["build", "--version", "4.16.0.0", "--payload"])
            .arg(small_payload(&root.join("p2")))
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(out.join("refused.iso"))
            .output(),
        2,
    );
    record(
        "inspect",
        loud()
            .args(["inspect", "--output-format", "json"])
            .arg(&iso)
            .output(),
        0,
    );
    record(
        "inject",
        loud()
            .args(["inject", "--output-format", "json"])
            .arg(&iso)
            .arg("--key")
            .arg(keys_pub(&key))
            .arg("--key")
            .arg(keys_pub(&deliver))
            .output(),
        0,
    );
    record(
        "inject --key PRIVATE",
        loud()
            .arg("inject")
            .arg(&iso)
            .arg("--key")
            .arg(&deliver)
            .output(),
        2,
    );
    record("status", targets(loud(), "status", &inv).output(), 1);
    record(
        "propagate --deliver-key",
        targets(loud(), "propagate", &inv)
            .arg("--deliver-key")
            .arg(&deliver)
            .arg("--cloudstack-public-key")
            .arg(keys_pub(&deliver))
            .output(),
        0,
    );
    record(
        "propagate --dry-run --force",
        targets(loud(), "propagate", &inv)
            .args(["--dry-run", "--force", "--deliver-key"])
            .arg(&deliver)
            .arg("--cloudstack-public-key")
            .arg(keys_pub(&deliver))
            .output(),
        0,
    );
    record("status again", targets(loud(), "status", &inv).output(), 0);
    record(
        "status with wrong passwords",
        targets(loud(), "status", &wrong_inv)
            .env("KVM_PASSWORD", WRONG_PASSWORD)
            .output(),
        1,
    );
    record(
        "status, human output",
        Test::new()
            .arg("-vv")
            .env("RUST_LOG", "trace")
            .env("KVM_PASSWORD", PASSWORD_ENV)
            .args(["status", "--inventory"])
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&known)
            .arg("--iso")
            .arg(&iso)
            .output(),
        0,
    );
    record(
        "package deb",
        loud()
            .args(["package", "deb"])
            .arg(&iso)
            .arg("-o")
            .arg(out.join("systemvm-iso.deb"))
            .output(),
        0,
    );
    // The management server's start hook (a key of its own, injected, then propagated over
    // the same password logins) and the doctor, which logs in to every host.
    let startup_key = mgmt.join("startup_ed25519");
    let startup_inv = root.join("startup-hosts.toml");
    fs::write(
        &startup_inv,
        inventory(&pw_file).replacen(
            "[defaults]\n",
            &format!("[defaults]\nknown_hosts = \"{}\"\n", known.display()),
            1,
        ),
    )
    .unwrap();
    let config = root.join("config.toml");
    fs::write(
        &config,
        format!(
            "iso = \"{}\"\nmanagement_dir = \"{}\"\ninventory = \"{}\"\ndeadline = 120\n\n[keys]\npath = \"{}\"\ndeliver = false\n",
            iso.display(),
            out.display(),
            startup_inv.display(),
            startup_key.display()
        ),
    )
    .unwrap();
    record(
        "startup",
        loud().args(["startup", "--config"]).arg(&config).output(),
        0,
    );
    record(
        "doctor",
        loud()
            .args([
                "doctor",
                "--output-format",
                "json",
                "--no-appliance",
                "--config",
            ])
            .arg(&config)
            .output(),
        0,
    );
    let cmdlines = sampler.finish();

    // What must never show.
    let mut needles = key_needles(&key, Some(PASSPHRASE));
    needles.extend(key_needles(&deliver, None));
    // The PEM copy the hosts got (4.16 reads PEM) must show nowhere else either.
    needles.extend(pem_needles(
        &hosts[0].dir.join("disk/root/.ssh/id_rsa.cloud"),
    ));
    needles.extend(key_needles(&startup_key, None));
    for (what, secret) in [
        ("passphrase", PASSPHRASE),
        ("password (file)", PASSWORD_FILE),
        ("password (env)", PASSWORD_ENV),
        ("wrong password", WRONG_PASSWORD),
    ] {
        needles.push(needle(what, secret));
    }
    let mut leaks = Vec::new();
    let mut check = |place: &str, bytes: &[u8]| {
        for n in &needles {
            if contains(bytes, &n.bytes) {
                leaks.push(format!("{} in {place}", n.what));
            }
        }
    };

    // 1. Output of every run: stdout and stderr; the logging was on, and JSON was written.
    assert!(runs.iter().any(|(_, r)| r.stderr().contains("DEBUG")));
    for (what, run) in &runs {
        check(&format!("stdout of {what}"), &run.output.stdout);
        check(&format!("stderr of {what}"), &run.output.stderr);
    }

    // 2. Every file here, but the key files (and the inputs that hold the secrets), and every
    //    file of the hosts (their disks, fixture state and sshd logs) but the delivered key.
    let delivered: Vec<PathBuf> = hosts
        .iter()
        .map(|h| h.dir.join("disk/root/.ssh/id_rsa.cloud"))
        .collect();
    let exempt: Vec<&Path> = [key.as_path(), deliver.as_path(), startup_key.as_path()]
        .into_iter()
        .chain(delivered.iter().map(PathBuf::as_path))
        .collect();
    let mut files = Vec::new();
    files_under(root, &mut files);
    assert!(files.iter().any(|f| f.starts_with(&hosts_dir)));
    let mut scanned = 0;
    for f in &files {
        if exempt.contains(&f.as_path()) || f.starts_with(&inputs) {
            continue;
        }
        check(&f.display().to_string(), &fs::read(f).unwrap());
        scanned += 1;
    }

    // 3. Argv of children: xorriso (every call logged), xe (every call logged by the fixture),
    //    and whatever /proc showed.
    let xorriso = fs::read(&xorriso_log).unwrap_or_default();
    assert!(contains(&xorriso, b"-outdev"), "xorriso never ran");
    check("xorriso's argv", &xorriso);
    for h in &hosts {
        for call in h.xe_log() {
            check(&format!("xe argv on {}", h.name), call.join(" ").as_bytes());
        }
    }
    assert!(!xen.xe_log().is_empty());
    assert!(
        cmdlines.iter().any(|c| contains(c, b"xorriso")),
        "the sampler saw no xorriso: it sees nothing"
    );
    for c in &cmdlines {
        check(&format!("argv {:?}", String::from_utf8_lossy(c)), c);
    }

    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));

    // The key files exist where they belong, 0600, and nowhere else (here: the temp dir).
    for path in exempt {
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let public = fs::read_to_string(keys_pub(&deliver)).unwrap();
    let body = |t: &str| t.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    for d in &delivered {
        let pem = fs::read_to_string(d).unwrap();
        assert!(
            pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
            "{pem:.40}"
        );
        let derived = tool("ssh-keygen", &["-y", "-f", d.to_str().unwrap()]);
        assert_eq!(body(&derived), body(&public));
    }
    assert!(listing(&tmp).is_empty(), "{:?}", listing(&tmp));
    eprintln!(
        "secrets: {} runs, {} files scanned, {} distinct command lines seen, {} needles",
        runs.len(),
        scanned,
        cmdlines.len(),
        needles.len()
    );
}

fn keys_pub(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Lines of stderr that warn about `file`'s mode.
fn mode_warnings(run: &Run, file: &Path) -> Vec<String> {
    let name = file.display().to_string();
    run.stderr()
        .lines()
        .filter(|l| l.contains("readable by others") && l.contains(&name))
        .map(str::to_string)
        .collect()
}

/// A password file (shared by two SMB entries) or an API secret file that group or others
/// may read gives one warning naming it; at 0600 none. The runs then fail to connect (closed
/// loopback ports), within their deadline.
#[test]
fn a_secret_file_others_may_read_warns_once_naming_it() {
    let dir = tempdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let password = dir.path().join("hv.password");
    fs::write(&password, format!("{PASSWORD_FILE}\n")).unwrap();
    let entry = |name: &str| {
        format!(
            "[[secondary]]\nname = \"{name}\"\nhypervisor = \"hyperv\"\n\
             share = \"//127.0.0.1/secondary\"\nport = {port}\nuser = \"u\"\n\
             password_file = \"{}\"\n",
            password.display()
        )
    };
    let inv = dir.path().join("hosts.toml");
    fs::write(&inv, entry("hv-1") + &entry("hv-2")).unwrap();
    let iso = filler_iso(dir.path(), "s", 1 << 10);
    let status = || {
        Test::new()
            .args([
                "status",
                "--retries",
                "0",
                "--deadline",
                "20",
                "--inventory",
            ])
            .arg(&inv)
            .arg("--iso")
            .arg(&iso)
            .output_within(std::time::Duration::from_secs(40))
            .run
            .code(1)
    };
    let (key, secret) = (dir.path().join("api.key"), dir.path().join("api.secret"));
    for path in [&key, &secret] {
        fs::write(path, "k\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let api = || {
        Test::new()
            .args([
                "restart-systemvms",
                "--zone",
                "z",
                "--api-timeout",
                "5",
                "--api-url",
            ])
            .arg(format!("http://127.0.0.1:{port}/client/api"))
            .arg("--api-key-file")
            .arg(&key)
            .arg("--secret-key-file")
            .arg(&secret)
            .output_within(std::time::Duration::from_secs(40))
            .run
    };

    for mode in [0o644, 0o640] {
        fs::set_permissions(&password, fs::Permissions::from_mode(mode)).unwrap();
        let warned = mode_warnings(&status(), &password);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains(&format!("mode {mode:04o}")),
            "{warned:?}"
        );
    }
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(mode_warnings(&status(), &password), Vec::<String>::new());

    let run = api();
    assert_eq!(mode_warnings(&run, &secret).len(), 1, "{}", run.stderr());
    assert_eq!(mode_warnings(&run, &key), Vec::<String>::new());
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(mode_warnings(&api(), &secret), Vec::<String>::new());
}
