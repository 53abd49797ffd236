//! XenServer propagation against real sshd hosts, each in its own mount namespace with an
//! `xe` fixture (tests/integration/common/hosts.rs): outcomes per host, bytes on the host, tags, exit
//! code, host key handling, --dry-run, --force and quoting.

use crate::common;

use common::bed::{Bed, Entry};
use common::hosts::{start_many, HostOptions, TestHost};
use common::sshd;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};

const ISO_PATH: &str = "/opt/xensource/packages/iso/systemvm.iso";
const CLASS: &str = "com.cloud.hypervisor.xenserver.resource.XenServer650Resource";

fn bed() -> Bed {
    Bed::new()
}

/// What the XenServer tests add to the shared bed.
trait XenBed {
    fn iso(&self, name: &str, seed: &str) -> PathBuf;
    fn hosts_toml(&self, hosts: &[(&str, u16, &str)], extra: &str) -> PathBuf;
}

impl XenBed for Bed {
    /// An ISO of version 4.16.0.0 whose content depends on `seed`.
    fn iso(&self, name: &str, seed: &str) -> PathBuf {
        let payload = small_payload(&self.path().join(format!("p-{name}")));
        fs::write(payload.join("agent/seed.txt"), seed).unwrap();
        let iso = self.path().join(format!("{name}.iso"));
        build_iso(&payload, &iso, &[]);
        iso
    }

    /// An inventory with one XenServer `[[host]]` per (name, port, extra lines).
    fn hosts_toml(&self, hosts: &[(&str, u16, &str)], extra: &str) -> PathBuf {
        let entries: Vec<Entry> = hosts
            .iter()
            .map(|&(name, port, more)| Entry {
                extra: more,
                ..Entry::new(name, port, "xenserver")
            })
            .collect();
        self.inventory(extra, &entries)
    }
}

fn propagate(inv: &Path, known: &Path, iso: &Path, extra: &[&str]) -> Run {
    Test::new()
        .args([
            "propagate",
            "--output-format",
            "json",
            "--connect-timeout",
            "5",
        ])
        .arg("--inventory")
        .arg(inv)
        .arg("--known-hosts")
        .arg(known)
        .arg("--iso")
        .arg(iso)
        // No retries unless a test asks: failures here are meant to be final.
        .args(if extra.contains(&"--retries") {
            &[][..]
        } else {
            &["--retries", "0"][..]
        })
        .args(extra.iter().copied())
        .output()
}

/// The `done` event of each host, by name.
fn done(run: &Run) -> std::collections::HashMap<String, serde_json::Value> {
    run.stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .filter(|e| e["event"] == "done")
        .map(|e| (e["target"].as_str().unwrap().to_string(), e))
        .collect()
}

fn iso_sha(host: &TestHost) -> Option<String> {
    host.read(ISO_PATH).map(|bytes| {
        // A file of its own: tests run at once, and their hosts share names.
        let copy = tempfile::NamedTempFile::new().unwrap();
        fs::write(copy.path(), bytes).unwrap();
        sha256(copy.path())
    })
}

fn no_temp_files(host: &TestHost) {
    let files = host.files("/opt/xensource/packages/iso");
    assert!(
        files.iter().all(|f| !f.ends_with(".tmp")),
        "{}: {files:?}",
        host.name
    );
}

#[test]
fn nine_hosts_each_get_the_outcome_they_deserve() {
    let b = bed();
    let old = b.iso("old", "old content");
    let new = b.iso("new", "new content");
    let new_sha = sha256(&new);
    let roots = b.path().join("hosts");
    let hosts = start_many(&roots, 8, |i| {
        let mut o = b.opts();
        if i == 5 || i == 7 {
            o.root_password = Some("s3cret pass".into());
        }
        o
    });
    let [current, stale_version, same_version, fresh, unknown_key, wrong_password, changed_key, by_password] = [
        &hosts[0], &hosts[1], &hosts[2], &hosts[3], &hosts[4], &hosts[5], &hosts[6], &hosts[7],
    ];
    let wrong = b.path().join("wrong-password");
    fs::write(&wrong, "not it\n").unwrap();
    let right = b.path().join("right-password");
    fs::write(&right, "s3cret pass\n").unwrap();
    let dead_port = sshd::free_port();

    let names = [
        "current",
        "stale-version",
        "same-version",
        "fresh",
        "unknown-key",
        "wrong-password",
        "changed-key",
        "by-password",
    ];
    let mut entries: Vec<(&str, u16, String)> = names
        .iter()
        .zip(&hosts)
        .map(|(n, h)| (*n, h.port, String::new()))
        .collect();
    entries[5].2 = format!("password_file = \"{}\"", wrong.display());
    entries[7].2 = format!("password_file = \"{}\"", right.display());
    entries.push(("unreachable", dead_port, String::new()));
    let entries: Vec<(&str, u16, &str)> = entries
        .iter()
        .map(|(n, p, e)| (*n, *p, e.as_str()))
        .collect();
    let inv = b.hosts_toml(&entries, "");

    // known_hosts: everyone but unknown-key; changed-key is known under another key.
    let mut known: Vec<&TestHost> = hosts
        .iter()
        .filter(|h| h.name != unknown_key.name)
        .collect();
    known.retain(|h| h.name != changed_key.name);
    let known_hosts = b.known_hosts(&known);
    let (_, other_key) = ssh_keygen(b.path(), "other-host-key");
    let other = fs::read_to_string(&other_key).unwrap();
    let other: Vec<&str> = other.split_whitespace().take(2).collect();
    let mut text = fs::read_to_string(&known_hosts).unwrap();
    text.push_str(&format!(
        "[127.0.0.1]:{} {}\n",
        changed_key.port,
        other.join(" ")
    ));
    fs::write(&known_hosts, &text).unwrap();

    // Set the scene: current has the new ISO; same-version has the old one (same version).
    let only = |name: &str| format!("--only={name}");
    propagate(&inv, &known_hosts, &new, &[&only("current")]).code(0);
    propagate(&inv, &known_hosts, &old, &[&only("same-version")]).code(0);
    stale_version.set_xe_tags(&[&format!("vmops-version-{CLASS}-4.15.0.0"), "zone=a"]);
    let known_before = fs::read(&known_hosts).unwrap();
    let premium = "/opt/xensource/packages/iso/systemvm-premium.iso";
    fs::write(fresh.path(premium), "stale premium ISO").unwrap();

    let run = propagate(&inv, &known_hosts, &new, &["--jobs", "4"]).code(1);
    let done = done(&run);
    let outcome = |n: &str| done[n]["outcome"].as_str().unwrap().to_string();
    let error = |n: &str| done[n]["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(outcome("current"), "current");
    for n in ["stale-version", "same-version", "fresh", "by-password"] {
        assert_eq!(outcome(n), "updated", "{n}: {:?}", done[n]);
    }
    for n in [
        "unknown-key",
        "wrong-password",
        "changed-key",
        "unreachable",
    ] {
        assert_eq!(outcome(n), "failed", "{n}");
    }
    assert!(done["same-version"]["reason"]
        .as_str()
        .unwrap()
        .contains("different content"));
    // CloudStack's own tag says nothing to us: a host with only that is simply not ours yet.
    assert!(done["stale-version"]["reason"]
        .as_str()
        .unwrap()
        .contains("no sha256 tag of ours"));
    assert!(
        error("unknown-key").contains("unknown host key"),
        "{}",
        error("unknown-key")
    );
    assert!(
        error("changed-key").contains("HOST KEY CHANGED"),
        "{}",
        error("changed-key")
    );
    assert!(
        error("wrong-password").contains("authentication failed"),
        "{}",
        error("wrong-password")
    );
    assert!(
        error("unreachable").contains("cannot connect"),
        "{}",
        error("unreachable")
    );
    assert!(!run.stdout().contains("s3cret") && !run.stderr().contains("s3cret"));

    // Only our own tag is written; CloudStack's tag on stale-version is kept as it was, so
    // CloudStack still decides itself when to run its host setup.
    let cloudstack_tag = format!("vmops-version-{CLASS}-4.15.0.0");
    let content_tag = format!("systemvm-sha256-{new_sha}");
    for h in [current, stale_version, same_version, fresh, by_password] {
        assert_eq!(iso_sha(h).as_deref(), Some(new_sha.as_str()), "{}", h.name);
        let mut tags = h.xe_tags();
        tags.retain(|t| t != "zone=a");
        tags.sort();
        let mut wanted = vec![content_tag.clone()];
        if h.name == stale_version.name {
            wanted.push(cloudstack_tag.clone());
        }
        assert_eq!(tags, wanted, "{}", h.name);
        no_temp_files(h);
    }
    assert_eq!(
        stale_version
            .xe_tags()
            .iter()
            .filter(|t| *t == "zone=a")
            .count(),
        1,
        "a foreign tag was lost"
    );
    // The Tools SR is rescanned once per push (same-version was pushed twice).
    assert!(
        fresh.read(premium).is_none(),
        "the stale systemvm-premium.iso must go"
    );
    for (h, pushes) in [
        (stale_version, 1),
        (same_version, 2),
        (fresh, 1),
        (by_password, 1),
    ] {
        assert_eq!(
            h.sr_scans(),
            vec![h.sr_uuid(); pushes],
            "{}: the Tools SR must be rescanned",
            h.name
        );
    }
    for h in [unknown_key, wrong_password, changed_key] {
        assert_eq!(iso_sha(h), None, "{} was changed", h.name);
        assert!(h.xe_tags().is_empty(), "{} got tags", h.name);
    }
    assert_eq!(
        fs::read(&known_hosts).unwrap(),
        known_before,
        "known_hosts changed without --accept-new"
    );

    // --accept-new pins the unknown host (never the changed one) and a re-run converges.
    let run = propagate(&inv, &known_hosts, &new, &["--accept-new"]).code(1);
    let done2 = self::done(&run);
    assert_eq!(done2["unknown-key"]["outcome"], "updated");
    assert_eq!(done2["changed-key"]["outcome"], "failed");
    for n in [
        "current",
        "stale-version",
        "same-version",
        "fresh",
        "by-password",
    ] {
        assert_eq!(done2[n]["outcome"], "current", "{n}");
    }
    let pinned = fs::read_to_string(&known_hosts).unwrap();
    assert!(pinned.contains(&unknown_key.known_hosts_line()), "{pinned}");
    assert!(!pinned.contains(&changed_key.host_key_line));
}

#[test]
fn dry_run_changes_nothing_and_prints_the_plan_a_run_follows() {
    let b = bed();
    let iso = b.iso("new", "x");
    let hosts = start_many(&b.path().join("hosts"), 2, |_| b.opts());
    hosts[1].set_xe_tags(&[&format!("vmops-version-{CLASS}-4.15.0.0")]);
    let inv = b.hosts_toml(&[("a", hosts[0].port, ""), ("b", hosts[1].port, "")], "");
    let known = b.known_hosts(&hosts.iter().collect::<Vec<_>>());
    let known_before = fs::read(&known).unwrap();

    let plan = propagate(&inv, &known, &iso, &["--dry-run"]).code(0);
    let plans: Vec<serde_json::Value> = plan
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "plan")
        .collect();
    assert_eq!(plans.len(), 2);
    for h in &hosts {
        assert_eq!(iso_sha(h), None, "--dry-run uploaded to {}", h.name);
        assert!(h.sr_scans().is_empty());
        // Only reading commands ran.
        assert!(h.xe_log().iter().all(|call| !call
            .iter()
            .any(|a| a.contains("param-add") || a.contains("param-remove") || *a == "sr-scan")));
    }
    assert_eq!(
        hosts[1].xe_tags(),
        [format!("vmops-version-{CLASS}-4.15.0.0")]
    );
    assert_eq!(fs::read(&known).unwrap(), known_before);

    let run = propagate(&inv, &known, &iso, &[]).code(0);
    let done = done(&run);
    for p in &plans {
        let host = p["target"].as_str().unwrap();
        assert_eq!(
            done[host]["steps"], p["steps"],
            "{host}: the run did not follow the plan"
        );
    }
    let human = Test::new()
        .args(["propagate", "--dry-run", "--force", "--inventory"])
        .arg(&inv)
        .arg("--known-hosts")
        .arg(&known)
        .arg("--iso")
        .arg(&iso)
        .success();
    assert!(
        human.stdout().contains("a: force (forced)"),
        "{}",
        human.stdout()
    );
    assert!(
        human.stdout().contains("run xe host-param-remove"),
        "{}",
        human.stdout()
    );
}

#[test]
fn force_clears_our_tags_first_and_pushes_again() {
    let b = bed();
    let iso = b.iso("new", "x");
    let hosts = start_many(&b.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let inv = b.hosts_toml(&[("a", h.port, "")], "");
    let known = b.known_hosts(&[h]);
    propagate(&inv, &known, &iso, &[]).code(0);
    let calls_before = h.xe_log().len();
    // CloudStack's own pair, as 4.16 writes it (RSA, PEM): the one its system VMs trust.
    let key = rsa_pem(b.path(), "id_rsa.cloud");
    let key_arg = key.to_str().unwrap();
    let public = format!("{key_arg}.pub");
    let run = propagate(
        &inv,
        &known,
        &iso,
        &[
            "--force",
            "--deliver-key",
            key_arg,
            "--cloudstack-public-key",
            &public,
        ],
    )
    .code(0);
    assert_eq!(
        h.read("/root/.ssh/id_rsa.cloud").unwrap(),
        fs::read(&key).unwrap()
    );
    let key_meta = fs::metadata(h.path("/root/.ssh/id_rsa.cloud")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_meta.permissions()) & 0o777,
        0o600
    );
    assert_eq!(done(&run)["a"]["outcome"], "updated");
    let calls: Vec<Vec<String>> = h.xe_log()[calls_before..].to_vec();
    let first_remove = calls
        .iter()
        .position(|c| c.first().map(String::as_str) == Some("host-param-remove"))
        .expect("tags removed");
    let first_add = calls
        .iter()
        .position(|c| c.first().map(String::as_str) == Some("host-param-add"))
        .expect("tags added");
    assert!(first_remove < first_add, "{calls:?}");
    assert_eq!(h.xe_tags().len(), 1, "{:?}", h.xe_tags());
    assert_eq!(iso_sha(h).unwrap(), sha256(&iso));
}

#[test]
fn hostile_paths_and_tags_reach_the_host_literally() {
    let b = bed();
    let iso = b.iso("new", "x");
    let hosts = start_many(&b.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let dir = "/opt/xensource/packages/iso/it's a $(touch /tmp/pwned-xs) `id` dir; x";
    let prefix = "systemvm x'y $(touch /tmp/pwned-xs2) \"z\"-";
    let extra = format!(
        "[profile.xenserver]\niso_path = {:?}\ncontent_tag_prefix = {:?}\n",
        format!("{dir}/systemvm.iso"),
        prefix
    );
    // The profile table must come after [[host]] tables or it would swallow them: append.
    let inv = b.hosts_toml(&[("a", h.port, "")], "");
    let mut text = fs::read_to_string(&inv).unwrap();
    text.push_str(&extra);
    fs::write(&inv, text).unwrap();
    let known = b.known_hosts(&[h]);
    propagate(&inv, &known, &iso, &[]).code(0);
    let landed = h
        .read(&format!("{dir}/systemvm.iso"))
        .expect("ISO at the literal path");
    assert_eq!(landed, fs::read(&iso).unwrap());
    let tag = format!("{prefix}{}", sha256(&iso));
    assert!(h.xe_tags().contains(&tag), "{:?}", h.xe_tags());
    let add = h
        .xe_log()
        .into_iter()
        .find(|c| c.iter().any(|a| a.contains("x'y")))
        .expect("tag call");
    assert_eq!(
        add.last().unwrap(),
        &format!("param-key={tag}"),
        "the tag arrived split: {add:?}"
    );
    assert!(!h.path("/tmp/pwned-xs").exists() && !Path::new("/tmp/pwned-xs").exists());
    assert!(!h.path("/tmp/pwned-xs2").exists() && !Path::new("/tmp/pwned-xs2").exists());
}

#[test]
fn a_host_whose_xe_prints_garbage_fails_alone() {
    let b = bed();
    let iso = b.iso("new", "x");
    let hosts = start_many(&b.path().join("hosts"), 2, |_| b.opts());
    hosts[0].set_xe_garbage(true);
    let inv = b.hosts_toml(
        &[("garbage", hosts[0].port, ""), ("fine", hosts[1].port, "")],
        "",
    );
    let known = b.known_hosts(&hosts.iter().collect::<Vec<_>>());
    let run = propagate(&inv, &known, &iso, &[]).code(1);
    let done = done(&run);
    assert_eq!(done["garbage"]["outcome"], "failed");
    assert_eq!(done["fine"]["outcome"], "updated");
    assert!(
        done["garbage"]["error"].as_str().unwrap().len() < 600,
        "the error line must stay short"
    );
    assert_eq!(iso_sha(&hosts[0]), None);
}

#[test]
fn killed_pushes_leave_the_old_or_the_new_iso_and_a_rerun_converges() {
    let b = bed();
    let (old, new) = (
        filler_iso(b.path(), "k-old", 24 << 20),
        filler_iso(b.path(), "k-newer", 24 << 20),
    );
    let (old_sum, new_sum) = (sha256(&old), sha256(&new));
    let hosts = start_many(&b.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let inv = b.hosts_toml(&[("a", h.port, "")], "");
    let known = b.known_hosts(&[h]);
    let args = |iso: &Path| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["propagate", "-q", "--retries", "0", "--inventory"])
            .arg(&inv);
        cmd.arg("--known-hosts").arg(&known).arg("--iso").arg(iso);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    assert!(args(&old).status().unwrap().success());
    let started = std::time::Instant::now();
    assert!(args(&new).status().unwrap().success());
    let whole = started.elapsed();
    assert!(args(&old).status().unwrap().success());

    let mut mid_upload = 0;
    for trial in 0..10u32 {
        let mut child = args(&new).spawn().unwrap();
        std::thread::sleep(whole * (trial + 1) / 10);
        let _ = child.kill();
        let _ = child.wait();
        // Give the host's sftp-server a moment to notice the dropped connection.
        std::thread::sleep(std::time::Duration::from_millis(100));
        if h.files("/opt/xensource/packages/iso")
            .iter()
            .any(|f| f.ends_with(".tmp"))
        {
            mid_upload += 1;
        }
        let sum = iso_sha(h).expect("the ISO vanished");
        assert!(
            sum == old_sum || sum == new_sum,
            "trial {trial}: a torn ISO under the final name"
        );
        if sum == new_sum {
            assert!(args(&old).status().unwrap().success());
        }
    }
    assert!(
        mid_upload > 0,
        "no run was killed during the upload: the trials test nothing"
    );
    assert!(args(&new).status().unwrap().success());
    assert_eq!(iso_sha(h).as_deref(), Some(new_sum.as_str()));
    no_temp_files(h);
    assert_eq!(h.xe_tags(), [format!("systemvm-sha256-{new_sum}")]);
}

#[test]
fn only_transient_failures_are_retried() {
    let b = bed();
    let iso = b.iso("new", "x");
    let hosts = start_many(&b.path().join("hosts"), 1, |_| HostOptions {
        root_password: Some("right".into()),
        ..b.opts()
    });
    let wrong = b.path().join("wrong");
    fs::write(&wrong, "wrong\n").unwrap();
    let dead = sshd::free_port();
    let inv = b.hosts_toml(
        &[
            ("closed", dead, ""),
            (
                "badpass",
                hosts[0].port,
                &format!("password_file = \"{}\"", wrong.display()),
            ),
        ],
        "",
    );
    let known = b.known_hosts(&[&hosts[0]]);
    let run = propagate(&inv, &known, &iso, &["--retries", "2"]).code(1);
    let events: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let retries = |host: &str| {
        events
            .iter()
            .filter(|e| e["event"] == "retry" && e["target"] == host)
            .count()
    };
    assert_eq!(
        retries("closed"),
        2,
        "a refused connection is worth retrying"
    );
    assert_eq!(retries("badpass"), 0, "a wrong password is not");
    let done = done(&run);
    assert_eq!(done["closed"]["attempts"], 3);
    assert_eq!(done["badpass"]["attempts"], 1);
}

/// CloudStack's `vmops-version-` tag means "CloudStack has set this host up" to CloudStack:
/// we never write it, `--force` leaves it, and only `--reset-cloudstack-setup` removes it
/// (so that the next connect re-runs CloudStack's host setup).
#[test]
fn cloudstacks_setup_tag_is_cloudstacks_to_write() {
    let b = bed();
    let iso = b.iso("new", "x");
    let hosts = start_many(&b.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let cloudstack_tag = format!("vmops-version-{CLASS}-4.16.0.0");
    h.set_xe_tags(&[&cloudstack_tag, "zone=a"]);
    let inv = b.hosts_toml(&[("a", h.port, "")], "");
    let known = b.known_hosts(&[h]);
    let content_tag = format!("systemvm-sha256-{}", sha256(&iso));
    let sorted = || {
        let mut tags = h.xe_tags();
        tags.sort();
        tags
    };
    let with_ours = vec![
        content_tag.clone(),
        cloudstack_tag.clone(),
        "zone=a".to_string(),
    ];

    propagate(&inv, &known, &iso, &[]).code(0);
    assert_eq!(sorted(), with_ours);
    propagate(&inv, &known, &iso, &["--force"]).code(0);
    assert_eq!(sorted(), with_ours, "--force touched CloudStack's tag");
    let wrote_vmops = h.xe_log().iter().any(|call| {
        call.first().map(String::as_str) == Some("host-param-add")
            && call.iter().any(|a| a.contains("vmops-version-"))
    });
    assert!(
        !wrote_vmops,
        "we wrote a vmops-version- tag: {:?}",
        h.xe_log()
    );

    // The dry run says so and changes nothing; the run removes CloudStack's tag only.
    let plan = propagate(
        &inv,
        &known,
        &iso,
        &["--reset-cloudstack-setup", "--dry-run"],
    )
    .code(0);
    assert!(
        plan.stdout().contains("resetting CloudStack's host setup"),
        "{}",
        plan.stdout()
    );
    assert_eq!(sorted(), with_ours);
    propagate(&inv, &known, &iso, &["--reset-cloudstack-setup"]).code(0);
    assert_eq!(sorted(), [content_tag.clone(), "zone=a".to_string()]);
    // Then nothing is left to do.
    let again = propagate(&inv, &known, &iso, &["--reset-cloudstack-setup"]).code(0);
    assert_eq!(done(&again)["a"]["outcome"], "current");
}

/// `--deliver-key` writes over each host's private key: a public key there is refused with
/// one line, before any host is touched.
#[test]
fn a_public_key_given_to_deliver_key_changes_nothing() {
    let b = bed();
    let iso = b.iso("new", "x");
    let hosts = start_many(&b.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let inv = b.hosts_toml(&[("a", h.port, "")], "");
    let known = b.known_hosts(&[h]);
    let key = b.path().join("id_ed25519");
    Test::new()
        .args(["keys", "generate", "-o"])
        .arg(&key)
        .success();
    let public = b.path().join("id_ed25519.pub");
    let calls_before = h.xe_log().len();
    propagate(
        &inv,
        &known,
        &iso,
        &["--deliver-key", public.to_str().unwrap()],
    )
    .code(2)
    .one_error_line()
    .stderr_contains("is not a private key");
    assert!(
        h.read("/root/.ssh/id_rsa.cloud").is_none(),
        "a key was delivered"
    );
    assert_eq!(iso_sha(h), None, "the host was touched");
    assert_eq!(h.xe_log().len(), calls_before, "xe ran");
}

#[test]
fn verify_finds_a_tagged_iso_whose_bytes_changed() {
    let b = bed();
    let iso = b.iso("verify", "v");
    let hosts = start_many(&b.path().join("hosts"), 1, |_| b.opts());
    let h = &hosts[0];
    let inv = b.hosts_toml(&[("a", h.port, "")], "");
    let known = b.known_hosts(&[h]);
    propagate(&inv, &known, &iso, &[]).code(0);

    // Same size, same tag: only reading the bytes tells.
    let on_host = h.path(ISO_PATH);
    let mut bytes = fs::read(&on_host).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&on_host, &bytes).unwrap();
    let run = propagate(&inv, &known, &iso, &["--dry-run"]).code(0);
    assert_eq!(done(&run)["a"]["outcome"], "current", "the tag is trusted");
    let run = propagate(&inv, &known, &iso, &["--dry-run", "--verify"]).code(0);
    assert_eq!(done(&run)["a"]["outcome"], "stale");
    assert!(
        done(&run)["a"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("has other content")),
        "{}",
        run.stdout()
    );
    let run = propagate(&inv, &known, &iso, &["--verify"]).code(0);
    assert_eq!(done(&run)["a"]["outcome"], "updated");
    assert_eq!(iso_sha(h).unwrap(), sha256(&iso));
    assert_eq!(h.xe_tags().len(), 1, "{:?}", h.xe_tags());
}
