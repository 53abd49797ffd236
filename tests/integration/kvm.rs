//! KVM propagation against real sshd hosts with a `systemctl` fixture: the path from
//! agent.properties, the checksum marker, restarts exactly when the ISO changed, a full disk,
//! key delivery, --dry-run and --force.

use crate::common;

use common::bed::{Bed, Entry};
use common::hosts::{start_many, HostOptions, TestHost};
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const DEFAULT_ISO: &str = "/usr/share/cloudstack-common/vms/systemvm.iso";
const MARKER: &str = "/usr/share/cloudstack-common/vms/.systemvm.iso.sha256";

fn bed() -> Bed {
    Bed::new()
}

/// What the KVM tests add to the shared bed.
trait KvmBed {
    fn iso(&self, name: &str, filler_mib: usize) -> PathBuf;
    fn setup(&self, hosts: &[&TestHost]) -> (PathBuf, PathBuf);
}

impl KvmBed for Bed {
    fn iso(&self, name: &str, filler_mib: usize) -> PathBuf {
        filler_iso(self.path(), name, filler_mib << 20)
    }

    /// An inventory of KVM hosts and a known_hosts for them.
    fn setup(&self, hosts: &[&TestHost]) -> (PathBuf, PathBuf) {
        let entries: Vec<Entry> = hosts
            .iter()
            .map(|h| Entry::new(&h.name, h.port, "kvm"))
            .collect();
        (self.inventory("", &entries), self.known_hosts(hosts))
    }
}

fn run(cmd: &str, inv: &Path, known: &Path, iso: &Path, extra: &[&str]) -> Run {
    Test::new()
        .args([cmd, "--retries", "0", "--inventory"])
        .arg(inv)
        .arg("--known-hosts")
        .arg(known)
        .arg("--iso")
        .arg(iso)
        .args(extra.iter().copied())
        .output()
}

/// A pair from ssh-keygen's default (OpenSSH format) of `kind`.
fn openssh_pair(dir: &Path, name: &str, kind: &str) -> PathBuf {
    ssh_keygen_as(dir, name, &["-t", kind])
}

/// A 4.15 ISO (whose system VMs trust the keys in it) keyed with the public halves of `keys`.
fn iso_415_keyed(dir: &Path, keys: &[&Path]) -> PathBuf {
    let iso = dir.join("k415.iso");
    build_iso(
        &small_payload(&dir.join("p415")),
        &iso,
        &["--version", "4.15.0.0"],
    );
    let mut inject = Test::new().arg("inject").arg(&iso);
    for key in keys {
        inject = inject.arg("--key").arg(pub_of(key));
    }
    inject.success();
    iso
}

fn pub_of(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

/// `SHA256:...` of a public key file, as ssh-keygen -l prints it.
fn fingerprint(public: &Path) -> String {
    let line = tool("ssh-keygen", &["-l", "-f", public.to_str().unwrap()]);
    line.split_whitespace().nth(1).unwrap().to_string()
}

fn bytes_at(host: &TestHost, path: &str) -> Option<Vec<u8>> {
    host.read(path)
}

/// The agent reads the ISO's path when it starts: it is restarted when the ISO was absent,
/// not when its content changes; a failed restart is retried on the next run.
#[test]
fn the_agent_restarts_only_when_it_would_not_see_the_iso() {
    let b = bed();
    let (one, two) = (b.iso("one", 1), b.iso("two", 1));
    let hosts = start_many(&b.dir.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let (inv, known) = b.setup(&[h]);

    run("propagate", &inv, &known, &one, &[])
        .code(0)
        .stdout_contains("updated");
    assert_eq!(bytes_at(h, DEFAULT_ISO).unwrap(), fs::read(&one).unwrap());
    assert_eq!(h.restarts(), ["restart cloudstack-agent"]);
    let marker = String::from_utf8(bytes_at(h, MARKER).unwrap()).unwrap();
    assert!(
        marker.starts_with(&format!("sha256 {}\n", sha256(&one))),
        "{marker}"
    );
    let mode = fs::metadata(h.path(DEFAULT_ISO))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);

    run("propagate", &inv, &known, &one, &[])
        .code(0)
        .stdout_contains("current");
    run("status", &inv, &known, &one, &[])
        .code(0)
        .stdout_contains("current");
    assert_eq!(h.restarts().len(), 1, "restarted although nothing changed");

    run("status", &inv, &known, &two, &[])
        .code(1)
        .stdout_contains("stale");
    run("propagate", &inv, &known, &two, &[])
        .code(0)
        .stdout_contains("updated");
    assert_eq!(
        h.restarts().len(),
        1,
        "restarted for a file the agent already reads"
    );
    assert_eq!(bytes_at(h, DEFAULT_ISO).unwrap(), fs::read(&two).unwrap());

    // Replaced behind our back (another size): the marker no longer vouches for it.
    fs::write(
        h.path(DEFAULT_ISO),
        b"package upgrade put something else here",
    )
    .unwrap();
    run("status", &inv, &known, &two, &[])
        .code(1)
        .stdout_contains("other content");
    run("propagate", &inv, &known, &two, &[]).code(0);
    assert_eq!(bytes_at(h, DEFAULT_ISO).unwrap(), fs::read(&two).unwrap());
    assert_eq!(h.restarts().len(), 1);

    // Gone (the path was missing when the agent started): the restart fails once, and the
    // next run retries it although the ISO is in place by then.
    fs::remove_file(h.path(DEFAULT_ISO)).unwrap();
    h.set_restart_fails(true);
    run("propagate", &inv, &known, &two, &[]).code(1);
    assert_eq!(h.restarts().len(), 2);
    assert_eq!(bytes_at(h, DEFAULT_ISO).unwrap(), fs::read(&two).unwrap());
    h.set_restart_fails(false);
    run("status", &inv, &known, &two, &[])
        .code(1)
        .stdout_contains("restart after the last push did not succeed");
    run("propagate", &inv, &known, &two, &[]).code(0);
    assert_eq!(h.restarts().len(), 3);
    run("propagate", &inv, &known, &two, &[])
        .code(0)
        .stdout_contains("current");
    assert_eq!(h.restarts().len(), 3);
}

#[test]
fn the_path_in_agent_properties_is_honoured() {
    let b = bed();
    let iso = b.iso("one", 0);
    let target = "/usr/share/cloudstack-common/my isos/it's here/systemvm.iso";
    let hosts = start_many(&b.dir.path().join("hosts"), 1, |_| HostOptions {
        agent_properties: Some(format!(
            "# agent settings\nworkers=5\nsystemvm.iso.path = {target}\n"
        )),
        ..b.opts()
    });
    let h = &hosts[0];
    let (inv, known) = b.setup(&[h]);
    run("propagate", &inv, &known, &iso, &[]).code(0);
    assert_eq!(bytes_at(h, target).unwrap(), fs::read(&iso).unwrap());
    assert!(
        bytes_at(h, DEFAULT_ISO).is_none(),
        "the default path must stay untouched"
    );
    run("status", &inv, &known, &iso, &[])
        .code(0)
        .stdout_contains("current");
}

#[test]
fn a_full_disk_keeps_the_old_iso_and_says_why() {
    let b = bed();
    let (small, big) = (b.iso("small", 0), b.iso("big", 20));
    let hosts = start_many(&b.dir.path().join("hosts"), 1, |_| HostOptions {
        small_target: Some(("/usr/share/cloudstack-common".into(), 8)),
        ..b.opts()
    });
    let h = &hosts[0];
    let (inv, known) = b.setup(&[h]);
    run("propagate", &inv, &known, &small, &[]).code(0);
    let out = run("propagate", &inv, &known, &big, &[]).code(1);
    let all = format!("{}{}", out.stdout(), out.stderr());
    assert!(all.contains("no space left"), "{all}");
    assert_eq!(
        bytes_at(h, DEFAULT_ISO).unwrap(),
        fs::read(&small).unwrap(),
        "the old ISO is gone"
    );
    let files = h.files("/usr/share/cloudstack-common/vms");
    assert!(files.iter().all(|f| !f.ends_with(".tmp")), "{files:?}");
    assert_eq!(h.restarts().len(), 1, "restarted after a failed upload");
}

#[test]
fn dry_run_force_json_and_key_delivery() {
    let b = bed();
    let iso = b.iso("one", 0);
    let hosts = start_many(&b.dir.path().join("hosts"), 2, |_| b.opts());
    let (inv, known) = b.setup(&[&hosts[0], &hosts[1]]);

    let plan = run("propagate", &inv, &known, &iso, &["--dry-run"]).code(0);
    for line in [
        "push (",
        "upload one.iso to /usr/share/cloudstack-common/vms/systemvm.iso (mode 0644)",
        "record the sha256 of",
        "run systemctl restart cloudstack-agent",
    ] {
        assert!(
            plan.stdout().contains(line),
            "{line} not in:\n{}",
            plan.stdout()
        );
    }
    for h in &hosts {
        assert!(
            bytes_at(h, DEFAULT_ISO).is_none() && h.restarts().is_empty(),
            "--dry-run changed {}",
            h.name
        );
    }

    // CloudStack's own pair, as 4.16 writes it (RSA, PEM): the one its system VMs trust.
    let key = rsa_pem(b.dir.path(), "id_rsa.cloud");
    let json = run(
        "propagate",
        &inv,
        &known,
        &iso,
        &[
            "--output-format",
            "json",
            "--deliver-key",
            key.to_str().unwrap(),
            "--cloudstack-public-key",
            &format!("{}.pub", key.display()),
        ],
    )
    .code(0);
    let events: Vec<serde_json::Value> = json
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.iter().filter(|e| e["event"] == "done").count(), 2);
    let summary = events.last().unwrap();
    assert_eq!(
        (
            summary["event"].as_str(),
            summary["counts"]["updated"].as_u64(),
            summary["exit_code"].as_u64()
        ),
        (Some("summary"), Some(2), Some(0))
    );
    for h in &hosts {
        assert_eq!(
            bytes_at(h, "/root/.ssh/id_rsa.cloud").unwrap(),
            fs::read(&key).unwrap()
        );
        let mode = fs::metadata(h.path("/root/.ssh/id_rsa.cloud"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let public = format!("{}.pub", key.display());
        assert_eq!(
            bytes_at(h, "/root/.ssh/id_rsa.pub.cloud").unwrap(),
            fs::read(public).unwrap()
        );
    }
    assert!(!json.stdout().contains("PRIVATE KEY") && !json.stderr().contains("PRIVATE KEY"));

    let forced = run(
        "propagate",
        &inv,
        &known,
        &iso,
        &["--force", "--only", &hosts[0].name],
    )
    .code(0);
    assert!(forced.stdout().contains("updated"), "{}", forced.stdout());
    assert_eq!(
        hosts[0].restarts().len(),
        1,
        "the agent already reads the path"
    );
    assert_eq!(
        hosts[1].restarts().len(),
        1,
        "--only must leave the other host alone"
    );
}

/// The upload names its temp file and renames it by path, so a target directory anyone but
/// root may write is refused before a byte is sent: one line naming host and directory,
/// nothing uploaded, within the deadline. A root-owned 0755 one then takes the ISO, its
/// mode set through the SFTP handle.
#[test]
fn a_target_directory_others_may_write_is_refused_before_any_upload() {
    let b = bed();
    let iso = b.iso("guarded", 1);
    let hosts = start_many(&b.dir.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let (inv, known) = b.setup(&[h]);
    let vms = h.path("/usr/share/cloudstack-common/vms");
    let propagate = || {
        Test::new()
            .args([
                "propagate",
                "--retries",
                "0",
                "--deadline",
                "30",
                "--inventory",
            ])
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&known)
            .arg("--iso")
            .arg(&iso)
            .output_within(std::time::Duration::from_secs(60))
            .run
    };
    let refused = |problem: &str| {
        let run = propagate().code(1);
        let all = format!("{}{}", run.stdout(), run.stderr());
        let lines: Vec<&str> = all.lines().filter(|l| l.contains(problem)).collect();
        assert_eq!(lines.len(), 1, "{all}");
        assert!(lines[0].contains(&h.name), "{all}");
        assert!(
            lines[0].contains("target directory /usr/share/cloudstack-common/vms"),
            "{all}"
        );
        assert_eq!(
            h.files("/usr/share/cloudstack-common/vms"),
            Vec::<String>::new()
        );
        assert!(h.restarts().is_empty());
    };

    fs::set_permissions(&vms, fs::Permissions::from_mode(0o775)).unwrap();
    refused("writable by group or others (mode 0775)");
    fs::set_permissions(&vms, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&vms, Some(1000), None).unwrap();
    refused("owned by uid 1000, not root");

    std::os::unix::fs::chown(&vms, Some(0), None).unwrap();
    propagate().code(0).stdout_contains("updated");
    let mode = fs::metadata(h.path(DEFAULT_ISO))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o644);
}

const HOST_KEY: &str = "/root/.ssh/id_rsa.cloud";

/// `--deliver-key` sends only the pair the system VMs trust. 4.16: CloudStack's public key;
/// any other private key exits 2 naming both fingerprints, and no host is touched.
#[test]
fn deliver_key_on_4_16_must_be_cloudstacks_pair() {
    let b = bed();
    let iso = b.iso("k416", 0);
    let hosts = start_many(&b.dir.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let (inv, known) = b.setup(&[h]);
    let cloudstack = rsa_pem(b.dir.path(), "cloudstack_id_rsa");
    let other = rsa_pem(b.dir.path(), "other_id_rsa");
    let deliver = |key: &Path| {
        let cloudstack_pub = pub_of(&cloudstack);
        run(
            "propagate",
            &inv,
            &known,
            &iso,
            &[
                "--deliver-key",
                key.to_str().unwrap(),
                "--cloudstack-public-key",
                cloudstack_pub.to_str().unwrap(),
            ],
        )
    };
    deliver(&other)
        .code(2)
        .one_error_line()
        .stderr_contains("is not CloudStack's key pair")
        .stderr_contains(&fingerprint(&pub_of(&other)))
        .stderr_contains(&fingerprint(&pub_of(&cloudstack)));
    assert!(bytes_at(h, HOST_KEY).is_none(), "a key was delivered");
    assert!(bytes_at(h, DEFAULT_ISO).is_none(), "the host was touched");

    deliver(&cloudstack).code(0);
    assert_eq!(
        bytes_at(h, HOST_KEY).unwrap(),
        fs::read(&cloudstack).unwrap()
    );
}

/// Up to 4.15 the system VMs trust the ISO's key: a key not in the ISO is refused (both
/// fingerprints named); the ISO's own RSA key in OpenSSH format reaches the host as PEM
/// (which old agents read), and an ed25519 one is refused, naming the file.
#[test]
fn deliver_key_on_4_15_must_be_the_isos_and_goes_as_pem() {
    let b = bed();
    let dir = b.dir.path();
    let rsa = openssh_pair(dir, "rsa_openssh", "rsa");
    let ed = openssh_pair(dir, "ed_openssh", "ed25519");
    let other = rsa_pem(dir, "other_id_rsa");
    let iso = iso_415_keyed(dir, &[&rsa, &ed]);
    let hosts = start_many(&dir.join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let (inv, known) = b.setup(&[h]);
    let deliver = |key: &Path| {
        run(
            "propagate",
            &inv,
            &known,
            &iso,
            &["--deliver-key", key.to_str().unwrap()],
        )
    };

    deliver(&other)
        .code(2)
        .one_error_line()
        .stderr_contains("is not the key in the ISO")
        .stderr_contains(&fingerprint(&pub_of(&other)))
        .stderr_contains(&fingerprint(&pub_of(&rsa)));
    deliver(&ed)
        .code(2)
        .one_error_line()
        .stderr_contains(&format!(
            "{} is an ED25519 key in OpenSSH format",
            ed.display()
        ))
        .stderr_contains("deliver CloudStack's own id_rsa");
    assert!(bytes_at(h, HOST_KEY).is_none(), "a key was delivered");
    assert!(bytes_at(h, DEFAULT_ISO).is_none(), "the host was touched");

    let done = deliver(&rsa).code(0);
    done.stderr_contains("is an RSA key in OpenSSH format")
        .stderr_contains("delivering a PEM copy");
    let on_host = h.path(HOST_KEY);
    let text = fs::read_to_string(&on_host).unwrap();
    assert_eq!(text.lines().next(), Some("-----BEGIN RSA PRIVATE KEY-----"));
    let derived = tool("ssh-keygen", &["-y", "-f", on_host.to_str().unwrap()]);
    let public = fs::read_to_string(pub_of(&rsa)).unwrap();
    let body = |t: &str| t.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(body(&derived), body(&public));
    assert!(fs::read_to_string(&rsa)
        .unwrap()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    // The same key again: the PEM copy is the same bytes, nothing to do.
    let again = deliver(&rsa).code(0);
    assert!(again.stdout().contains("current"), "{}", again.stdout());
}

/// The PEM copy of a key to deliver lives in a root-only temp directory; Ctrl-C while the
/// run waits on a host removes it with the other temps: no private key copy outlives a run.
#[test]
fn an_interrupted_delivery_leaves_no_key_copy_behind() {
    let b = bed();
    let dir = b.dir.path();
    let rsa = openssh_pair(dir, "rsa_openssh", "rsa");
    let iso = iso_415_keyed(dir, &[&rsa]);
    // A host that accepts and never says a word: the run waits in the SSH handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let known = dir.join("known_hosts");
    fs::write(&known, "").unwrap();
    let defaults = format!(
        "known_hosts = \"{}\"\nconnect_timeout = 60",
        known.display()
    );
    let inv = b.inventory(&defaults, &[Entry::new("silent", port, "kvm")]);
    let tmp = dir.join("tmp");
    fs::create_dir(&tmp).unwrap();
    let child = std::process::Command::new(BIN)
        .args(["propagate", "--inventory"])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .arg("--deliver-key")
        .arg(&rsa)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while listing(&tmp).is_empty() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(listing(&tmp).len(), 1, "the PEM copy was never made");
    // SAFETY: kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(listing(&tmp).is_empty(), "left behind: {:?}", listing(&tmp));
    drop(silent);
}
