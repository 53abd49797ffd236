//! Hostile and bad input: each case ends in one clear error line naming the file, host or
//! value, the documented exit code, and nothing changed (no output, no temp file, the ISO's
//! bytes as they were, no file or tag on a host). Cases already covered where they belong
//! (tests/build.rs, inject.rs, inventory.rs, xenserver.rs, transport.rs) are not repeated.

use crate::common;

use common::hosts::{start_many, HostOptions, TestHost};
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ISO_DIR: &str = "/opt/xensource/packages/iso";

/// Run a command to its end under GNU time and return its output and peak resident memory
/// in KiB. (Not `wait4` on our own child: a child forked from this big, multi-threaded test
/// process inherits its high-water mark; GNU time is small, so its child's is its own.)
fn run_measured(cmd: Command) -> (Output, u64) {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", "%M", "-o"]).arg(report.path());
    timed.arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => timed.env(key, v),
            None => timed.env_remove(key),
        };
    }
    let output = timed
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/bin/time");
    let text = fs::read_to_string(report.path()).expect("time's report");
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time printed {text:?}"));
    (output, kib)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// No control character but newlines in what a user sees.
fn assert_printable(what: &str, bytes: &[u8]) {
    let s = text(bytes);
    let bad: Vec<char> = s.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(
        bad.is_empty(),
        "{what} holds control characters {bad:?}:\n{s}"
    );
}

// --- payloads ---------------------------------------------------------------------------

/// A failing build of `payload`: exit 2, one line containing `message`, nothing new in
/// `out` (no ISO, no manifest, no temp directory).
fn build_refused(payload: &Path, out: &Path, message: &str) {
    let before = listing(out);
    Test::new()
        .args(["build", "--version", "4.16.0.0", "--payload"])
        .arg(payload)
        .arg("-o")
        .arg(out.join("s.iso"))
        .fails(2)
        .one_error_line()
        .stderr_contains(message);
    assert_eq!(listing(out), before, "something was left behind");
}

#[test]
fn hard_links_from_outside_and_device_files_are_refused() {
    let dir = tempdir();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();

    // A hard link to a file outside (a stand-in for /etc/shadow on the same file system).
    let secret = dir.path().join("shadow-like");
    fs::write(&secret, "root:$6$secret-hash:19000:0:99999:7:::\n").unwrap();
    let linked = small_payload(&dir.path().join("p1"));
    fs::hard_link(&secret, linked.join("agent/conf/shadow")).unwrap();
    build_refused(
        &linked,
        &out,
        "agent/conf/shadow has 2 hard links but only 1 in the payload",
    );

    // Hard links that stay inside the payload are ordinary files.
    let inside = small_payload(&dir.path().join("p2"));
    fs::hard_link(
        inside.join("agent/conf/agent.properties"),
        inside.join("scripts/etc/agent.properties"),
    )
    .unwrap();
    build_iso(&inside, &out.join("ok.iso"), &[]);
    fs::remove_file(out.join("ok.iso")).unwrap();
    fs::remove_file(out.join("ok.iso.manifest.json")).unwrap();

    // A character device (what /dev/null is), made by mknod.
    let device = small_payload(&dir.path().join("p3"));
    let node = device.join("scripts/etc/null");
    tool("mknod", &[node.to_str().unwrap(), "c", "1", "3"]);
    build_refused(&device, &out, "etc/null is a device file");

    // A listening Unix socket.
    let socket = small_payload(&dir.path().join("p4"));
    let _listener = std::os::unix::net::UnixListener::bind(socket.join("agent/s.sock")).unwrap();
    build_refused(&socket, &out, "agent/s.sock is a socket");

    // A symlink to a device outside the payload is refused for where it points.
    let to_dev = small_payload(&dir.path().join("p5"));
    std::os::unix::fs::symlink("/dev/zero", to_dev.join("agent/zero")).unwrap();
    build_refused(&to_dev, &out, "outside the payload");
}

#[test]
fn a_tree_of_4_gib_is_refused_before_a_byte_is_read() {
    // Decision: no member (and no archive) reaches 4 GiB, the ISO 9660 level 2 and zip32
    // limit; such payloads are refused from their metadata before anything is written.
    // Single files of 4 GiB are covered by tests/build.rs; here two sparse files of 2.5 GiB
    // each, which only together make the agent zip too large.
    let dir = tempdir();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let payload = small_payload(dir.path());
    for name in ["a.bin", "b.bin"] {
        let path = payload.join("agent").join(name);
        tool("truncate", &["-s", "2560M", path.to_str().unwrap()]);
    }
    let mut cmd = Command::new(BIN);
    cmd.args(["build", "--version", "4.16.0.0", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(out.join("s.iso"))
        .env("SOURCE_DATE_EPOCH", "1700000000");
    let (output, rss_kib) = run_measured(cmd);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let agent = payload.join("agent");
    assert!(
        stderr.contains(&format!("{} is 53687", agent.display()))
            && stderr.contains(" bytes; payload files and archives must stay below 4 GiB"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(listing(&out).is_empty(), "{:?}", listing(&out));
    // 5 GiB were never read into memory.
    assert!(rss_kib < 64 * 1024, "peak RSS {rss_kib} KiB");
}

// --- damaged ISOs ------------------------------------------------------------------------

/// Offset of the root directory record in the volume descriptor at `sector`.
fn root_record(sector: usize) -> usize {
    sector * 2048 + 156
}

/// Set a both-endian 32-bit field (ISO 9660 7.3.3) at `at`.
fn set_both_endian(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    bytes[at + 4..at + 8].copy_from_slice(&value.to_be_bytes());
}

/// `inspect`, `inject` (three ways) and `package deb` on `iso` each fail with exit 2 and one line
/// naming it and containing `message`; the ISO's bytes and its directory stay as they were.
fn damaged(iso: &Path, public: &Path, message: &str) {
    let before = fs::read(iso).unwrap();
    let dir = iso.parent().unwrap();
    let files = listing(dir);
    let runs = [
        Test::new().arg("inspect").arg(iso),
        Test::new()
            .args(["inspect", "--output-format", "json"])
            .arg(iso),
        Test::new().arg("inject").arg(iso).arg("--key").arg(public),
        Test::new()
            .arg("inject")
            .arg(iso)
            .arg("--key")
            .arg(public)
            .arg("--in-place"),
        Test::new()
            .arg("inject")
            .arg(iso)
            .arg("--key")
            .arg(public)
            .arg("-o")
            .arg(dir.join("keyed.iso")),
        Test::new()
            .args(["package", "deb"])
            .arg(iso)
            .arg("-o")
            .arg(dir.join("systemvm-iso.deb")),
    ];
    for run in runs {
        let run = run.fails(2).one_error_line();
        let err = run.stderr();
        assert!(err.contains(&iso.display().to_string()), "{err}");
        assert!(err.contains(message), "lacks {message:?}: {err}");
        if !run.stdout().is_empty() {
            // JSON output reports the failure as the schema's error record and summary.
            let lines = run.json_lines();
            assert_eq!(lines.len(), 2, "{}", run.stdout());
            assert_eq!(lines[0]["event"], "error");
            assert!(lines[0]["error"].as_str().unwrap().contains(message));
            assert_eq!(lines[1]["event"], "summary");
            assert_eq!(lines[1]["exit_code"], 2);
        }
    }
    assert_eq!(fs::read(iso).unwrap(), before, "the ISO changed");
    assert_eq!(listing(dir), files, "something was written");
}

#[test]
fn damaged_isos_are_named_and_never_written() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let good = dir.path().join("good.iso");
    build_iso(&payload, &good, &[]);
    let (_, public) = ssh_keygen(dir.path(), "k");
    let bytes = fs::read(&good).unwrap();
    let bad_dir = dir.path().join("bad");
    fs::create_dir(&bad_dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = bad_dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    };
    // Our reader finds the root directory where a third-party reader does.
    let isoinfo = tool("isoinfo", &["-d", "-i", good.to_str().unwrap()]);
    assert!(isoinfo.contains("Joliet"), "{isoinfo}");

    // Truncated inside the volume (xorriso's padding after it does not count): the volume
    // descriptor says it is longer than the file.
    let at = 16 * 2048 + 80;
    let volume = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize * 2048;
    assert!(volume <= bytes.len());
    let cut = write("cut.iso", &bytes[..volume * 3 / 4]);
    damaged(&cut, &public, "is a damaged ISO image: truncated");

    // The primary root directory's extent points far past the end.
    let mut far = bytes.clone();
    set_both_endian(&mut far, root_record(16) + 2, 0x00ff_ffff);
    let far = write("far.iso", &far);
    damaged(
        &far,
        &public,
        "the root directory points past the end of the image",
    );

    // Its size runs past the end (from a real extent).
    let mut long = bytes.clone();
    set_both_endian(&mut long, root_record(16) + 10, bytes.len() as u32);
    let long = write("long.iso", &long);
    damaged(
        &long,
        &public,
        "the root directory points past the end of the image",
    );

    // A size no root directory has (2 GiB): refused before any allocation.
    let mut huge = bytes.clone();
    set_both_endian(&mut huge, root_record(16) + 10, 0x7fff_ffff);
    let huge = write("huge.iso", &huge);
    damaged(&huge, &public, "root directory of 2147483647 bytes");

    // The Joliet tree's root (the supplementary descriptor at sector 17) points away.
    assert_eq!(&bytes[17 * 2048 + 1..17 * 2048 + 6], b"CD001");
    assert_eq!(
        bytes[17 * 2048],
        2,
        "sector 17 is not the Joliet descriptor"
    );
    let mut joliet = bytes.clone();
    set_both_endian(&mut joliet, root_record(17) + 2, 0x0fff_ffff);
    let joliet = write("joliet.iso", &joliet);
    damaged(
        &joliet,
        &public,
        "the root directory points past the end of the image",
    );

    // Only the header survives: not an ISO at all.
    let stub = write("stub.iso", &bytes[..16 * 2048 + 100]);
    damaged(&stub, &public, "is not an ISO 9660 image");

    // status and propagate refuse it before contacting any host (the port is closed).
    let inv = dir.path().join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[defaults]\nidentity = \"/nonexistent\"\n[[host]]\nname = \"x\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"xenserver\"\n",
            common::sshd::free_port()
        ),
    )
    .unwrap();
    for cmd in ["status", "propagate"] {
        Test::new()
            .args([cmd, "--inventory"])
            .arg(&inv)
            .arg("--iso")
            .arg(&far)
            .fails(2)
            .one_error_line()
            .stderr_contains("far.iso is a damaged ISO image");
    }
}

/// Wait for `child` at most `limit`; kill it and fail if it is still running then.
fn wait_bounded(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn a_named_pipe_or_device_given_as_the_iso_is_refused_without_blocking() {
    let dir = tempdir();
    let (_, public) = ssh_keygen(dir.path(), "k");
    let fifo = dir.path().join("systemvm.iso");
    tool("mkfifo", &[fifo.to_str().unwrap()]);
    let cases: [(&[&str], &Path, &str); 4] = [
        (&["inspect"], &fifo, "is not a regular file (a named pipe)"),
        (&["inject"], &fifo, "is not a regular file (a named pipe)"),
        (&["inspect"], Path::new("/dev/zero"), "(a device file)"),
        (&["inspect"], dir.path(), "(a directory)"),
    ];
    for (args, path, message) in cases {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg(path);
        if args[0] == "inject" {
            cmd.arg("--key").arg(&public);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = wait_bounded(
            cmd.spawn().unwrap(),
            Duration::from_secs(30),
            &format!("{args:?} {}", path.display()),
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(message), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(listing(dir.path()), ["k", "k.pub", "systemvm.iso"]);
}

// --- private keys where a public key belongs ---------------------------------------------

/// The base64 lines of a PEM file's body.
fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(String::from)
        .collect()
}

#[test]
fn private_key_material_never_reaches_an_iso() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let (private, public) = ssh_keygen(dir.path(), "mgmt");
    let pem = fs::read_to_string(&private).unwrap();
    let body = pem_body_lines(&pem);
    assert!(body.len() >= 3, "{pem}");
    // An authorized_keys file with a good key and, below it, a private key pasted in.
    let mixed = dir.path().join("authorized_keys");
    fs::write(
        &mixed,
        format!("{}\n{pem}", fs::read_to_string(&public).unwrap().trim()),
    )
    .unwrap();
    // The body alone, without the armour lines, is no public key either.
    let bare = dir.path().join("bare.pub");
    fs::write(&bare, body.join("\n") + "\n").unwrap();

    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let iso = out.join("systemvm.iso");
    for (key, message) in [
        (&private, "holds a private key"),
        (&mixed, "holds a private key"),
        (&bare, "not an OpenSSH public key"),
    ] {
        let run = Test::new()
            .args(["build", "--version", "4.16.0.0", "--payload"])
            .arg(&payload)
            .arg("--key")
            .arg(key)
            .arg("-o")
            .arg(&iso)
            .fails(2)
            .one_error_line()
            .stderr_contains(&key.display().to_string())
            .stderr_contains(message);
        assert!(listing(&out).is_empty(), "{:?}", listing(&out));
        for line in &body {
            assert!(!run.stderr().contains(line.as_str()), "{}", run.stderr());
        }
    }

    build_iso(&payload, &iso, &["--key", public.to_str().unwrap()]);
    let before = fs::read(&iso).unwrap();
    let files = listing(&out);
    for key in [&private, &mixed] {
        for extra in [&[][..], &["--in-place"][..]] {
            Test::new()
                .arg("inject")
                .arg(&iso)
                .arg("--key")
                .arg(key)
                .args(extra.iter().copied())
                .fails(2)
                .one_error_line()
                .stderr_contains("holds a private key; pass its public half");
        }
    }
    let after = fs::read(&iso).unwrap();
    assert_eq!(after, before, "the ISO changed");
    assert_eq!(listing(&out), files);
    for line in &body {
        let found = after.windows(line.len()).any(|w| w == line.as_bytes());
        assert!(!found, "private key material in the ISO: {line}");
    }
    // What is in the ISO is the public key, as a third-party reader sees it.
    let keys = text(&bsdtar_member(&iso, "authorized_keys"));
    assert!(keys.starts_with(fs::read_to_string(&public).unwrap().trim()));
}

// --- hostile hosts -----------------------------------------------------------------------

struct Bed {
    dir: tempfile::TempDir,
    identity: PathBuf,
    public: PathBuf,
    iso: PathBuf,
}

fn bed() -> Bed {
    let dir = tempdir();
    let (identity, public) = ssh_keygen(dir.path(), "client");
    let iso = dir.path().join("systemvm.iso");
    build_iso(&small_payload(dir.path()), &iso, &[]);
    Bed {
        dir,
        identity,
        public,
        iso,
    }
}

impl Bed {
    fn opts(&self) -> HostOptions {
        HostOptions {
            authorized_keys: Some(self.public.clone()),
            ..Default::default()
        }
    }

    /// Inventory and known_hosts for XenServer hosts.
    fn files(&self, hosts: &[&TestHost]) -> (PathBuf, PathBuf) {
        let mut inv = format!("[defaults]\nidentity = \"{}\"\n", self.identity.display());
        let mut known = String::new();
        for h in hosts {
            inv.push_str(&format!(
                "[[host]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"xenserver\"\n",
                h.name, h.port
            ));
            known.push_str(&format!("{}\n", h.known_hosts_line()));
        }
        let (inv_path, known_path) = (
            self.dir.path().join("hosts.toml"),
            self.dir.path().join("known_hosts"),
        );
        fs::write(&inv_path, inv).unwrap();
        fs::write(&known_path, known).unwrap();
        (inv_path, known_path)
    }

    fn command(&self, cmd: &str, inv: &Path, known: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args([
            cmd,
            "--retries",
            "0",
            "--connect-timeout",
            "5",
            "--inventory",
        ])
        .arg(inv)
        .arg("--known-hosts")
        .arg(known)
        .arg("--iso")
        .arg(&self.iso)
        .args(extra)
        .env_remove("RUST_LOG");
        c
    }
}

/// Nothing of ours on the host: no ISO or temp file, no tags, no tag ever added.
fn untouched(h: &TestHost) {
    assert!(h.files(ISO_DIR).is_empty(), "{:?}", h.files(ISO_DIR));
    assert!(h.xe_tags().is_empty(), "{:?}", h.xe_tags());
    let changes: Vec<Vec<String>> = h
        .xe_log()
        .into_iter()
        .filter(|c| {
            c.first().is_some_and(|a| a.starts_with("host-param-")) && c[0] != "host-param-get"
        })
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    assert!(
        h.files("/root/.ssh").is_empty(),
        "{:?}",
        h.files("/root/.ssh")
    );
}

#[test]
fn xe_garbage_is_reported_in_one_printable_line_and_changes_nothing() {
    let b = bed();
    let hosts = start_many(&b.dir.path().join("hosts"), 3, |_| b.opts());
    // Small junk on stdout; junk with terminal escapes on stderr and a failure; and one
    // host that works, which must be updated all the same.
    hosts[0].set_xe_garbage_of(4096, false, 0);
    hosts[1].set_xe_garbage_of(4096, true, 1);
    let (inv, known) = b.files(&hosts.iter().collect::<Vec<_>>());
    let (out, _) = run_measured(b.command("propagate", &inv, &known, &[]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_printable("stdout", &out.stdout);
    assert_printable("stderr", &out.stderr);
    let stdout = text(&out.stdout);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"))
            .to_string()
    };
    let junk_out = line("host00");
    assert!(junk_out.contains("FAILED"), "{junk_out}");
    assert!(
        junk_out.contains("host00: xe did not print a host uuid"),
        "{junk_out}"
    );
    let junk_err = line("host01");
    assert!(
        junk_err.contains("FAILED") && junk_err.contains("exited with 1"),
        "{junk_err}"
    );
    assert!(junk_err.len() < 4000, "{} bytes", junk_err.len());
    assert!(line("host02").contains("updated"));
    assert!(text(&out.stderr).contains("failed: host00, host01"));
    untouched(&hosts[0]);
    untouched(&hosts[1]);
}

#[test]
fn xe_printing_64_mib_is_cut_off_with_memory_bounded() {
    let b = bed();
    let hosts = start_many(&b.dir.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    h.set_xe_garbage_of(64 << 20, false, 0);
    let (inv, known) = b.files(&[h]);
    for cmd in ["status", "propagate"] {
        let (out, rss_kib) =
            run_measured(b.command(cmd, &inv, &known, &["--output-format", "json"]));
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let done: serde_json::Value = stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["event"] == "done")
            .expect("done event");
        assert_eq!(done["outcome"], "failed");
        let error = done["error"].as_str().unwrap();
        assert!(
            error.starts_with("host00: ")
                && error.contains("output too large: more than 1 MiB on stdout"),
            "{error}"
        );
        // The 64 MiB were never held: our peak stays far below them.
        assert!(rss_kib < 32 * 1024, "{cmd}: peak RSS {rss_kib} KiB");
    }
    untouched(h);
}

/// `ssh-keygen -l` of a known_hosts line: the fingerprint OpenSSH shows for it.
fn fingerprint_of(line: &str, dir: &Path) -> String {
    let file = dir.join("one-key");
    fs::write(&file, format!("{line}\n")).unwrap();
    let out = tool("ssh-keygen", &["-l", "-f", file.to_str().unwrap()]);
    out.split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

#[test]
fn a_host_key_changed_between_status_and_propagate_is_refused() {
    let b = bed();
    let root = b.dir.path().join("hosts");
    let first = TestHost::start(&root, "xen", b.opts());
    let port = first.port;
    let (inv, known) = b.files(&[&first]);
    let old_fp = fingerprint_of(&first.known_hosts_line(), b.dir.path());

    let (out, _) = run_measured(b.command("status", &inv, &known, &[]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("stale"), "{}", text(&out.stdout));

    // The host comes back on the same address with another key (reinstalled, or someone
    // in the middle).
    drop(first);
    let h = TestHost::start(
        &root,
        "xen",
        HostOptions {
            port: Some(port),
            ..b.opts()
        },
    );
    let new_fp = fingerprint_of(&h.known_hosts_line(), b.dir.path());
    assert_ne!(old_fp, new_fp);
    let known_before = fs::read(&known).unwrap();
    let calls_before = h.xe_log().len();

    for extra in [&[][..], &["--accept-new"][..], &["--force"][..]] {
        let (out, _) = run_measured(b.command("propagate", &inv, &known, extra));
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let line = stdout.lines().find(|l| l.starts_with("xen")).expect("xen");
        assert!(
            line.contains("FAILED") && line.contains("HOST KEY CHANGED"),
            "{line}"
        );
        assert!(
            line.contains(&format!(
                "known_hosts has {old_fp}, the host presents {new_fp}"
            )),
            "{line}"
        );
    }
    assert_eq!(
        fs::read(&known).unwrap(),
        known_before,
        "known_hosts changed"
    );
    // Not one command reached the host: no xe call, no file.
    assert_eq!(h.xe_log().len(), calls_before);
    untouched(&h);
    assert!(
        !h.log().contains("Accepted publickey"),
        "the client authenticated to a host it should not trust:\n{}",
        h.log()
    );
}

/// Issue #14: a key on a `@revoked` line naming the host is refused, with one line naming
/// the host and file, even with `--accept-new`; known_hosts is not changed.
#[test]
fn a_revoked_host_key_is_refused_even_with_accept_new() {
    let b = bed();
    let root = b.dir.path().join("hosts");
    let h = TestHost::start(&root, "xen", b.opts());
    let (inv, known) = b.files(&[&h]);
    fs::write(&known, format!("@revoked {}\n", h.known_hosts_line())).unwrap();
    let known_before = fs::read(&known).unwrap();

    for extra in [&[][..], &["--accept-new"][..]] {
        let started = std::time::Instant::now();
        let (out, _) = run_measured(b.command("propagate", &inv, &known, extra));
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
        assert_eq!(failed.len(), 1, "{stdout}");
        assert!(
            failed[0].starts_with("xen") && failed[0].contains("@revoked"),
            "{stdout}"
        );
        assert!(failed[0].contains(&known.display().to_string()), "{stdout}");
    }
    assert_eq!(
        fs::read(&known).unwrap(),
        known_before,
        "known_hosts changed"
    );
    untouched(&h);
    assert!(
        !h.log().contains("Accepted publickey"),
        "the client authenticated to a revoked host:\n{}",
        h.log()
    );
}

/// Issue #14: a known_hosts line we cannot evaluate (a wildcard pattern, `@cert-authority`)
/// that may name the host makes it "known, mismatched": refused, never pinned over.
#[test]
fn a_line_we_cannot_check_is_never_pinned_over() {
    let b = bed();
    let root = b.dir.path().join("hosts");
    let h = TestHost::start(&root, "xen", b.opts());
    let (inv, known) = b.files(&[&h]);
    let plain = h.known_hosts_line();
    for line in [
        plain.replacen("127.0.0.1", "127.0.0.*", 1),
        format!("@cert-authority {plain}"),
    ] {
        fs::write(&known, format!("# other hosts\n{line}\n")).unwrap();
        let (out, _) = run_measured(b.command("propagate", &inv, &known, &["--accept-new"]));
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let failed: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
        assert_eq!(failed.len(), 1, "{stdout}");
        assert!(
            failed[0].contains("line 2 may name this host but systemvm cannot check it"),
            "{stdout}"
        );
        assert_eq!(
            fs::read_to_string(&known).unwrap(),
            format!("# other hosts\n{line}\n"),
            "pinned over a line it could not check"
        );
    }
    untouched(&h);
}
