//! Propagation over links that fail: real sshd test hosts (tests/integration/common/hosts.rs) behind a
//! network namespace with nftables drop and reset rules and a `tbf` rate limit
//! (tests/integration/common/netns.rs), or behind a userspace TCP proxy that delays, cuts, stalls or
//! never answers (tests/integration/common/proxy.rs).
//!
//! Every case checks what an operator relies on: the run ends by itself within its
//! configured time-outs and retries (the test kills it and fails if it does not: a hang
//! check, not a speed assertion); the host's ISO afterwards is the old one or the new one,
//! whole (sha256sum of the host's file); nothing but an upload temp file (which the next
//! run clears) is left beside it; the JSON `done` event names the cause; and a second run
//! with the fault gone converges.

use crate::common;

use common::hosts::{HostOptions, TestHost};
use common::netns::NetNs;
use common::proxy::{Fault, Proxy};
use common::*;
use rand_core::RngCore;
use serde_json::Value;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ISO: &str = "/usr/share/cloudstack-common/vms/systemvm.iso";
const ISO_DIR: &str = "/usr/share/cloudstack-common/vms";
const MARKER: &str = ".systemvm.iso.sha256";

/// The random payload of the new ISO: large enough that a cut after a few MiB is mid-upload.
const NEW_MIB: usize = 8;

/// The hang check: far above every case's time-outs times its attempts (and the lossy
/// link's slow but steady progress, which no time-out cuts).
const HANG: Duration = Duration::from_secs(120);

struct Bed {
    dir: tempfile::TempDir,
    identity: PathBuf,
    public: PathBuf,
    /// A small ISO already on the host.
    old: PathBuf,
    /// The ISO to propagate: `NEW_MIB` MiB of random bytes inside.
    new: PathBuf,
}

fn bed() -> Bed {
    bed_of(NEW_MIB << 20)
}

/// A bed whose new ISO carries `random` bytes of random payload.
fn bed_of(random: usize) -> Bed {
    let dir = tempdir();
    let (identity, public) = ssh_keygen(dir.path(), "client");
    let old = iso(dir.path(), "old", 0);
    let new = iso(dir.path(), "new", random);
    Bed {
        dir,
        identity,
        public,
        old,
        new,
    }
}

/// A real ISO built by `systemvm build` with `len` bytes of random payload.
fn iso(dir: &Path, name: &str, len: usize) -> PathBuf {
    let payload = small_payload(&dir.join(format!("p-{name}")));
    let mut random = vec![0u8; len];
    rand_core::OsRng.fill_bytes(&mut random);
    fs::write(payload.join("agent/lib/random.bin"), random).unwrap();
    fs::write(payload.join("agent/name.txt"), name).unwrap();
    let iso = dir.join(format!("{name}.iso"));
    build_iso(&payload, &iso, &[]);
    iso
}

impl Bed {
    /// A KVM host, in `netns` or on loopback, that already has the old ISO.
    fn host(&self, netns: Option<&NetNs>) -> TestHost {
        let host = TestHost::start(
            &self.dir.path().join("hosts"),
            "kvm1",
            HostOptions {
                authorized_keys: Some(self.public.clone()),
                netns: netns.map(NetNs::host),
                ..Default::default()
            },
        );
        fs::copy(&self.old, host.path(ISO)).unwrap();
        host
    }

    /// Inventory and known_hosts for `host` reached at `address:port` (itself or a proxy).
    fn setup(&self, host: &TestHost, address: Ipv4Addr, port: u16) -> (PathBuf, PathBuf) {
        let inv = self.dir.path().join("hosts.toml");
        fs::write(
            &inv,
            format!(
                "[defaults]\nidentity = \"{}\"\n[[host]]\nname = \"kvm1\"\naddress = \"{address}\"\n\
                 port = {port}\nhypervisor = \"kvm\"\n",
                self.identity.display()
            ),
        )
        .unwrap();
        let known = self.dir.path().join("known_hosts");
        fs::write(
            &known,
            format!("[{address}]:{port} {}\n", host.host_key_line),
        )
        .unwrap();
        (inv, known)
    }
}

/// `propagate` with JSON output and the given limits, bounded by the hang check.
fn propagate(inv: &Path, known: &Path, iso: &Path, limits: &[&str]) -> Measured {
    Test::new()
        .args(["propagate", "--output-format", "json", "--inventory"])
        .arg(inv)
        .arg("--known-hosts")
        .arg(known)
        .arg("--iso")
        .arg(iso)
        .args(limits.iter().copied())
        .output_within(HANG)
}

/// The `done` event of the run's only host.
fn done(run: &Run) -> Value {
    let events = run.json_lines();
    let done: Vec<&Value> = events.iter().filter(|e| e["event"] == "done").collect();
    assert_eq!(done.len(), 1, "one done event:\n{}", run.stdout());
    done[0].clone()
}

/// The host's ISO is exactly the old or exactly the new one; returns which ("old"/"new").
fn iso_is_whole(b: &Bed, host: &TestHost) -> &'static str {
    let sha = sha256(&host.path(ISO));
    if sha == sha256(&b.new) {
        "new"
    } else {
        assert_eq!(sha, sha256(&b.old), "the host's ISO is neither old nor new");
        "old"
    }
}

/// Beside the ISO: the ISO, the marker, and at most upload temp files; returns those.
fn leftovers(host: &TestHost) -> Vec<String> {
    let temps: Vec<String> = host
        .files(ISO_DIR)
        .into_iter()
        .filter(|n| n != "systemvm.iso" && n != MARKER)
        .inspect(|n| {
            assert!(
                n.starts_with(".systemvm.iso.systemvm-") && n.ends_with(".tmp"),
                "unexpected file {n} beside the ISO"
            )
        })
        .collect();
    temps
}

/// After a fault: failed, the cause named, the old ISO whole, only temp files beside it.
fn assert_failed_cleanly(b: &Bed, host: &TestHost, m: &Measured, causes: &[&str]) -> Value {
    let d = done(&m.run);
    assert_eq!(m.run.output.status.code(), Some(1), "{}", m.run.stderr());
    assert_eq!(d["outcome"], "failed", "{d}");
    let error = d["error"].as_str().unwrap_or_default().to_string();
    assert!(
        causes.iter().any(|c| error.contains(c)),
        "the error names none of {causes:?}: {error}"
    );
    assert!(d["cause"].is_string(), "no cause field: {d}");
    assert_eq!(iso_is_whole(b, host), "old");
    let temps = leftovers(host);
    let retries: Vec<String> = m
        .run
        .json_lines()
        .iter()
        .filter(|e| e["event"] == "retry")
        .map(|e| e["error"].to_string())
        .collect();
    eprintln!(
        "fault run: {:.1} s, {} attempt(s), cause {}: {error}; retried after {retries:?}; \
         temp files left: {}",
        m.wall.as_secs_f64(),
        d["attempts"],
        d["cause"],
        temps.len()
    );
    d
}

/// The broken uploads left their temp files (the dead link could not remove them): the
/// run that converges must clear them.
fn assert_temps_left(host: &TestHost) {
    assert!(
        !leftovers(host).is_empty(),
        "expected the broken upload's temp file: {:?}",
        host.files(ISO_DIR)
    );
}

/// With the fault gone: updated, the new ISO whole, no temp file left.
fn assert_converges(b: &Bed, host: &TestHost, inv: &Path, known: &Path) {
    let m = propagate(inv, known, &b.new, &["--retries", "0"]);
    let d = done(&m.run);
    assert_eq!(m.run.output.status.code(), Some(0), "{}", m.run.stderr());
    assert!(
        d["outcome"] == "updated" || d["outcome"] == "current",
        "{d}"
    );
    assert_eq!(iso_is_whole(b, host), "new");
    assert_eq!(leftovers(host), Vec::<String>::new(), "temp files left");
    // And it stays converged.
    let m = propagate(inv, known, &b.new, &["--retries", "0"]);
    assert_eq!(done(&m.run)["outcome"], "current");
}

/// A host reached through a proxy on 127.0.0.1.
fn behind_proxy(b: &Bed, fault: Fault) -> (TestHost, Proxy, PathBuf, PathBuf) {
    let host = b.host(None);
    let proxy = Proxy::start(SocketAddr::from((host.address, host.port)), fault);
    let (inv, known) = b.setup(&host, Ipv4Addr::LOCALHOST, proxy.port);
    (host, proxy, inv, known)
}

/// For faults that strike at once (a cut, a reset): limits no loaded machine reaches
/// before the fault does, so the fault is what the report names.
const LIMITS: &[&str] = &[
    "--connect-timeout",
    "10",
    "--transfer-timeout",
    "10",
    "--retries",
    "1",
];

/// For a stall, where the transfer time-out is what ends each attempt.
const STALL_LIMITS: &[&str] = &[
    "--connect-timeout",
    "10",
    "--transfer-timeout",
    "4",
    "--retries",
    "1",
];

#[test]
fn thirty_percent_packet_loss_ends_whole_and_converges() {
    // TCP moves some 30-40 KB/s through 30% loss each way here: a small ISO.
    let b = bed_of(256 << 10);
    let ns = NetNs::create();
    let host = b.host(Some(&ns));
    let (inv, known) = b.setup(&host, host.address, host.port);
    // Both directions of the SSH connection lose 30% of their packets, at random.
    ns.nft(&format!(
        "table inet loss {{\n\
           chain input {{ type filter hook input priority 0; policy accept;\n\
             tcp dport {port} numgen random mod 100 < 30 counter drop\n\
           }}\n\
           chain output {{ type filter hook output priority 0; policy accept;\n\
             tcp sport {port} numgen random mod 100 < 30 counter drop\n\
           }}\n\
         }}\n",
        port = host.port
    ));
    let m = propagate(
        &inv,
        &known,
        &b.new,
        &[
            "--connect-timeout",
            "5",
            "--transfer-timeout",
            "5",
            "--retries",
            "0",
        ],
    );
    let rules = ns.ruleset();
    assert!(
        !rules.contains("packets 0 "),
        "the rules dropped nothing:\n{rules}"
    );
    let d = done(&m.run);
    // TCP may carry the upload through the loss or give up; either way the ISO is whole.
    // "updated" means the new one is in place. "failed" may leave either: the rename can
    // land while its reply is lost, or the marker write after it time out; the next run
    // (below) then finds the new ISO current.
    let state = iso_is_whole(&b, &host);
    match d["outcome"].as_str() {
        Some("updated") => assert_eq!(state, "new", "{d}"),
        Some("failed") => assert!(d["cause"].is_string(), "{d}"),
        other => panic!("unexpected outcome {other:?}: {d}"),
    }
    leftovers(&host);
    eprintln!(
        "30% loss: {} (ISO {state}) after {:.1} s, {} attempt(s) {}",
        d["outcome"],
        m.wall.as_secs_f64(),
        d["attempts"],
        d["error"]
    );
    ns.heal();
    assert_converges(&b, &host, &inv, &known);
}

#[test]
fn a_link_cut_mid_upload_keeps_the_old_iso() {
    let b = bed();
    let (host, proxy, inv, known) = behind_proxy(&b, Fault::CutAfter(3 << 20));
    let m = propagate(&inv, &known, &b.new, LIMITS);
    // The proxy closes both sides; with our upload still unread in its socket the kernel
    // may answer with a reset instead of a FIN, so either reason is a lost link.
    let d = assert_failed_cleanly(
        &b,
        &host,
        &m,
        &["closed by the far end", "connection reset"],
    );
    assert_eq!(d["cause"], "connection-lost");
    // Retried once (a lost link is transient), and each attempt was cut.
    assert_eq!(d["attempts"], 2, "{d}");
    assert_eq!(proxy.accepted(), 2);
    assert_temps_left(&host);
    proxy.set(Fault::Pass);
    assert_converges(&b, &host, &inv, &known);
}

#[test]
fn a_reset_mid_upload_keeps_the_old_iso() {
    let b = bed();
    let ns = NetNs::create();
    let host = b.host(Some(&ns));
    let (inv, known) = b.setup(&host, host.address, host.port);
    // Slow the host's side so the upload is still running when the resets start.
    ns.rate_limit("16mbit");
    let port = host.port;
    let run = std::thread::scope(|s| {
        let run = s.spawn(|| propagate(&inv, &known, &b.new, LIMITS));
        // Once 2 MiB of the temp file are on the host, every packet to sshd gets a reset.
        let until = Instant::now() + HANG;
        let mut armed = false;
        while !run.is_finished() && Instant::now() < until {
            let size: u64 = host
                .files(ISO_DIR)
                .iter()
                .filter(|n| n.ends_with(".tmp"))
                .filter_map(|n| fs::metadata(host.path(&format!("{ISO_DIR}/{n}"))).ok())
                .map(|m| m.len())
                .sum();
            if size >= 2 << 20 {
                ns.nft(&format!(
                    "table inet cut {{\n\
                       chain input {{ type filter hook input priority 0; policy accept;\n\
                         tcp dport {port} counter reject with tcp reset\n\
                       }}\n\
                     }}\n"
                ));
                armed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(armed, "the upload never reached 2 MiB");
        run.join().unwrap()
    });
    let d = assert_failed_cleanly(&b, &host, &run, &["connection lost", "reset", "refused"]);
    // The upload was reset; the retry met the rule at connect time: refused.
    assert_eq!(d["attempts"], 2, "{d}");
    let retry = run
        .run
        .json_lines()
        .into_iter()
        .find(|e| e["event"] == "retry")
        .expect("a retry event");
    let first = retry["error"].as_str().unwrap();
    assert!(
        first.contains("connection lost") && first.contains("connection reset"),
        "{first}"
    );
    assert_temps_left(&host);
    ns.heal();
    assert_converges(&b, &host, &inv, &known);
}

#[test]
fn a_host_that_accepts_tcp_but_never_speaks_times_out() {
    let b = bed();
    let (host, proxy, inv, known) = behind_proxy(&b, Fault::Silent);
    let m = propagate(
        &inv,
        &known,
        &b.new,
        &[
            "--connect-timeout",
            "2",
            "--transfer-timeout",
            "2",
            "--retries",
            "1",
        ],
    );
    let d = assert_failed_cleanly(&b, &host, &m, &["timed out"]);
    assert_eq!(d["cause"], "timeout");
    assert!(d["error"].as_str().unwrap().contains("handshake"), "{d}");
    assert_eq!(d["attempts"], 2, "{d}");
    assert_eq!(proxy.accepted(), 2);
    // `status` is bounded the same way, and says "unreachable".
    let status = Test::new()
        .args([
            "status",
            "--transfer-timeout",
            "1",
            "--retries",
            "0",
            "--inventory",
        ])
        .arg(&inv)
        .arg("--known-hosts")
        .arg(&known)
        .arg("--iso")
        .arg(&b.new)
        .output_within(HANG);
    let status = status.run.code(1);
    assert!(
        status.stdout().contains("unreachable"),
        "{}",
        status.stdout()
    );
    assert!(status.stdout().contains("timed out"), "{}", status.stdout());
    proxy.set(Fault::Pass);
    assert_converges(&b, &host, &inv, &known);
}

#[test]
fn a_host_that_stalls_mid_transfer_times_out() {
    let b = bed();
    let (host, proxy, inv, known) = behind_proxy(&b, Fault::StallAfter(3 << 20));
    let m = propagate(&inv, &known, &b.new, STALL_LIMITS);
    let d = assert_failed_cleanly(&b, &host, &m, &["timed out"]);
    assert_eq!(d["cause"], "timeout");
    assert_eq!(d["attempts"], 2, "{d}");
    // The stalled connections still hold their temp files open on the host; a later run
    // clears them.
    assert_temps_left(&host);
    proxy.set(Fault::Pass);
    assert_converges(&b, &host, &inv, &known);
}

#[test]
fn a_slow_link_completes_because_time_outs_bound_silence_not_duration() {
    let b = bed();
    // 8 MiB in 64 KiB chunks, 15 ms before each: several seconds, more than the 2 s limit.
    let (host, _proxy, inv, known) = behind_proxy(&b, Fault::Delay(Duration::from_millis(15)));
    let m = propagate(
        &inv,
        &known,
        &b.new,
        &["--transfer-timeout", "2", "--retries", "0"],
    );
    let d = done(&m.run);
    assert_eq!(d["outcome"], "updated", "{d}");
    assert_eq!(iso_is_whole(&b, &host), "new");
    assert_eq!(leftovers(&host), Vec::<String>::new());
    eprintln!("slow link: updated in {:.1} s", m.wall.as_secs_f64());
}

#[test]
fn zero_time_outs_still_time_out() {
    let b = bed();
    // Zero is clamped to one second, never "wait forever": against a host that never
    // speaks (transfer time-out) ...
    let (host, proxy, inv, known) = behind_proxy(&b, Fault::Silent);
    let zero = [
        "--connect-timeout",
        "0",
        "--transfer-timeout",
        "0",
        "--retries",
        "0",
    ];
    let m = propagate(&inv, &known, &b.new, &zero);
    let d = assert_failed_cleanly(&b, &host, &m, &["timed out"]);
    assert_eq!(d["cause"], "timeout");
    drop(proxy);
    drop(host);

    // ... and against one whose packets all vanish (connect time-out), in a namespace.
    let ns = NetNs::create();
    let host = b.host(Some(&ns));
    let (inv, known) = b.setup(&host, host.address, host.port);
    ns.nft(&format!(
        "table inet hole {{\n\
           chain input {{ type filter hook input priority 0; policy accept;\n\
             tcp dport {} counter drop\n\
           }}\n\
         }}\n",
        host.port
    ));
    let m = propagate(&inv, &known, &b.new, &zero);
    let d = assert_failed_cleanly(&b, &host, &m, &["timed out connecting"]);
    assert_eq!(d["cause"], "timeout");
    // The same through the inventory: zero there is one second too.
    let text = fs::read_to_string(&inv).unwrap().replace(
        "[defaults]\n",
        "[defaults]\nconnect_timeout = 0\ntransfer_timeout = 0\nretries = 0\n",
    );
    fs::write(&inv, text).unwrap();
    let m = propagate(&inv, &known, &b.new, &[]);
    let d = assert_failed_cleanly(&b, &host, &m, &["timed out connecting"]);
    assert_eq!(d["attempts"], 1);
    ns.heal();
    assert_converges(&b, &host, &inv, &known);
}

#[test]
fn a_namespaced_host_is_reached_over_its_link_only_and_removed_even_on_panic() {
    let b = bed_of(0);
    let (name, veth, pid) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = NetNs::create();
        let host = b.host(Some(&ns));
        assert_ne!(host.address, Ipv4Addr::LOCALHOST);
        // Real OpenSSH over the veth reaches the host, which sees its own files.
        let out = host.ssh(
            &b.identity,
            "hostname; sha256sum /usr/share/cloudstack-common/vms/systemvm.iso",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.starts_with("kvm1\n") && text.contains(&sha256(&b.old)),
            "{text}"
        );
        // Nothing listens on loopback for it: the only way in is the link.
        assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, host.port)).is_err());
        let names = tool("ip", &["netns", "list"]);
        assert!(names.contains(&ns.name), "{names}");
        let link = format!("svmt{}", ns.name.rsplit('-').next().unwrap());
        tool("ip", &["link", "show", &link]);
        std::panic::panic_any((ns.name.clone(), link, host.pid()));
    }))
    .expect_err("the closure panics")
    .downcast::<(String, String, u32)>()
    .map(|b| *b)
    .expect("the panic payload");
    // The guards ran during the unwind: no namespace, no link, no sshd.
    assert!(!tool("ip", &["netns", "list"]).contains(&name));
    let link = std::process::Command::new("ip")
        .args(["link", "show", &veth])
        .output()
        .unwrap();
    assert!(!link.status.success(), "{veth} is still there");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "sshd {pid} survived"
    );
}
