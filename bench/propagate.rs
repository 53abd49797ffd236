//! Propagation benchmark (`cargo bench --bench propagate`): push a ~150 MB ISO to 16
//! namespaced loopback XenServer hosts with `systemvm propagate`, against what a script
//! would do in the same run on the same hosts (a sequential `scp` loop, and `parallel-scp`
//! from Debian's pssh), and time `systemvm status` over 64 up-to-date hosts. Prints wall
//! times, ratios and systemvm's peak RSS. Needs root, sshd, pssh and GNU time (`time`).
//!
//! Options (after `--`): `--hosts N` (16), `--mib N` (150), `--status-hosts N` (64),
//! `--runs N` (3, the median is reported).

#[allow(dead_code)] // the bench uses a few of the tests' helpers
#[path = "../tests/integration/common/mod.rs"]
mod common;

use common::hosts::{start_many, HostOptions, TestHost};
use common::{small_payload, ssh_keygen, BIN};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ISO_PATH: &str = "/opt/xensource/packages/iso/systemvm.iso";

struct Settings {
    hosts: usize,
    mib: usize,
    status_hosts: usize,
    runs: usize,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
            .clamp(1, 512)
    };
    Settings {
        hosts: value("--hosts", 16),
        mib: value("--mib", 150),
        status_hosts: value("--status-hosts", 64),
        runs: value("--runs", 3).min(9),
    }
}

fn main() {
    let s = settings();
    for tool in [
        "/usr/sbin/sshd",
        "/usr/bin/parallel-scp",
        "/usr/bin/time",
        "/usr/bin/scp",
    ] {
        if !Path::new(tool).exists() {
            eprintln!("missing {tool}: apt-get install openssh-server openssh-client pssh time");
            std::process::exit(1);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (identity, public) = ssh_keygen(dir.path(), "client");
    let opts = || HostOptions {
        authorized_keys: Some(public.clone()),
        ..Default::default()
    };
    let big = iso(dir.path(), "big", s.mib);
    let big_size = fs::metadata(&big).map(|m| m.len()).unwrap_or(0);
    println!(
        "propagate: {:.0} MB ISO to {} hosts, median of {} runs",
        big_size as f64 / 1e6,
        s.hosts,
        s.runs
    );

    let hosts = start_many(&dir.path().join("push"), s.hosts, |_| opts());
    let known = known_hosts(dir.path(), &hosts);
    let inv = inventory(dir.path(), "push.toml", &identity, &hosts);
    let ssh_opts = common::hosts::ssh_options(&known);

    let scp = median(s.runs, || {
        reset(&hosts);
        let started = Instant::now();
        for h in &hosts {
            let mut cmd = Command::new("scp");
            cmd.args(&ssh_opts)
                .args(["-q", "-i"])
                .arg(&identity)
                .args(["-P", &h.port.to_string()]);
            cmd.arg(&big).arg(format!("root@127.0.0.1:{ISO_PATH}"));
            check(cmd.status(), "scp");
        }
        started.elapsed()
    });
    check_all(&hosts, &big);

    let pscp = median(s.runs, || {
        reset(&hosts);
        let mut cmd = Command::new("parallel-scp");
        cmd.args(["-p", &s.hosts.to_string(), "-l", "root", "-t", "0"]);
        for h in &hosts {
            cmd.args(["-H", &format!("127.0.0.1:{}", h.port)]);
        }
        for pair in ssh_opts.chunks(2).filter(|p| p[0] == "-o") {
            cmd.args(["-O", &pair[1]]);
        }
        cmd.args([
            "-O",
            &format!("IdentityFile={}", identity.display()),
            "-O",
            "IdentitiesOnly=yes",
        ]);
        cmd.arg(&big)
            .arg(ISO_PATH)
            .stdout(std::process::Stdio::null());
        let started = Instant::now();
        check(cmd.status(), "parallel-scp");
        started.elapsed()
    });
    check_all(&hosts, &big);

    let mut peak_kib = 0;
    let ours = median(s.runs, || {
        reset(&hosts);
        let (elapsed, kib) = timed_systemvm(
            &["propagate", "-q", "--jobs", &s.hosts.to_string()],
            &inv,
            &known,
            &big,
        );
        peak_kib = peak_kib.max(kib);
        elapsed
    });
    check_all(&hosts, &big);
    drop(hosts);

    println!("  sequential scp loop   {:>7.2} s", scp.as_secs_f64());
    println!(
        "  parallel-scp -p {:<4}  {:>7.2} s",
        s.hosts,
        pscp.as_secs_f64()
    );
    println!(
        "  systemvm propagate    {:>7.2} s   (upload, verify, rename, tags on each host)",
        ours.as_secs_f64()
    );
    println!(
        "  ratio vs scp loop     {:>7.2}x  (target < 1)",
        ours.as_secs_f64() / scp.as_secs_f64()
    );
    println!(
        "  ratio vs parallel-scp {:>7.2}x  (target < 1)",
        ours.as_secs_f64() / pscp.as_secs_f64()
    );
    println!(
        "  systemvm peak RSS     {:>7.1} MB  (target < 100)",
        peak_kib as f64 / 1024.0
    );

    // status over many up-to-date hosts: a small ISO, since status moves no data.
    let small = iso(dir.path(), "small", 1);
    let hosts = start_many(&dir.path().join("status"), s.status_hosts, |_| opts());
    let known = known_hosts(dir.path(), &hosts);
    let inv = inventory(dir.path(), "status.toml", &identity, &hosts);
    timed_systemvm(&["propagate", "-q", "--jobs", "16"], &inv, &known, &small);
    let mut status_kib = 0;
    let status = median(s.runs, || {
        let (elapsed, kib) =
            timed_systemvm(&["status", "-q", "--jobs", "16"], &inv, &known, &small);
        status_kib = status_kib.max(kib);
        elapsed
    });
    println!("status: {} up-to-date hosts, --jobs 16", s.status_hosts);
    println!(
        "  systemvm status       {:>7.2} s   (target < 3)",
        status.as_secs_f64()
    );
    println!(
        "  systemvm peak RSS     {:>7.1} MB",
        status_kib as f64 / 1024.0
    );
}

/// An ISO with `mib` MiB of incompressible agent content.
fn iso(dir: &Path, name: &str, mib: usize) -> PathBuf {
    let payload = small_payload(&dir.join(format!("payload-{name}")));
    let mut blob = fs::File::create(payload.join("agent/lib/blob.jar")).expect("blob");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        blob.write_all(&block).expect("write blob");
    }
    let iso = dir.join(format!("{name}.iso"));
    let status = Command::new(BIN)
        .args(["build", "-q", "--version", "4.16.0.0", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(&iso)
        .status();
    check(status, "systemvm build");
    iso
}

fn known_hosts(dir: &Path, hosts: &[TestHost]) -> PathBuf {
    let path = dir.join("known_hosts");
    let text: String = hosts
        .iter()
        .map(|h| format!("{}\n", h.known_hosts_line()))
        .collect();
    fs::write(&path, text).expect("known_hosts");
    path
}

fn inventory(dir: &Path, name: &str, identity: &Path, hosts: &[TestHost]) -> PathBuf {
    let mut text = format!("[defaults]\nidentity = \"{}\"\n", identity.display());
    for h in hosts {
        text.push_str(&format!(
            "[[host]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"xenserver\"\n",
            h.name, h.port
        ));
    }
    let path = dir.join(name);
    fs::write(&path, text).expect("inventory");
    path
}

/// Run systemvm under GNU time: (wall time, peak RSS in KiB).
fn timed_systemvm(args: &[&str], inv: &Path, known: &Path, iso: &Path) -> (Duration, u64) {
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(BIN)
        .args(args)
        .arg("--inventory")
        .arg(inv)
        .arg("--known-hosts")
        .arg(known)
        .arg("--iso")
        .arg(iso)
        .stdout(std::process::Stdio::null())
        .status();
    let elapsed = started.elapsed();
    check(status, "systemvm");
    let kib = fs::read_to_string(report.path())
        .ok()
        .and_then(|t| t.trim().lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (elapsed, kib)
}

/// Remove the ISO and the tags, so the next run pushes to every host.
fn reset(hosts: &[TestHost]) {
    for h in hosts {
        let _ = fs::remove_file(h.path(ISO_PATH));
        h.set_xe_tags(&[]);
    }
    // Start each run with no dirty pages of the previous one.
    let _ = Command::new("sync").status();
}

fn check_all(hosts: &[TestHost], iso: &Path) {
    let want = fs::metadata(iso).map(|m| m.len()).ok();
    for h in hosts {
        let got = fs::metadata(h.path(ISO_PATH)).map(|m| m.len()).ok();
        assert_eq!(got, want, "{} did not get the whole ISO", h.name);
    }
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    times[times.len() / 2]
}

fn check(status: std::io::Result<std::process::ExitStatus>, what: &str) {
    match status {
        Ok(s) if s.success() => {}
        other => panic!("{what} failed: {other:?}"),
    }
}
