//! Network namespaces for fault tests: a test host behind a real (virtual) link whose
//! packets the test can drop, reset and slow down.
//!
//! # Design
//!
//! [`NetNs::create`] makes a namespace (`ip netns add`) and a veth pair: one end in the root
//! namespace, the other (`eth0`) inside, with the two addresses of a private /30 from
//! 10.231.0.0/16 that exists only on this machine, between the root namespace and that
//! namespace. Nothing is routed further. A test host started with
//! `HostOptions { netns: Some(ns.host()), .. }` listens on the inner address; the test's
//! `systemvm` reaches it through the veth like any remote host.
//!
//! Faults are the kernel's own: nftables rules inside the namespace (`numgen random` drops,
//! `reject with tcp reset`, plain drops) and a `tbf` rate limit on the outer end. There is
//! no `tc netem` in this kernel (TESTBED.md).
//!
//! Concurrent tests (and concurrent test processes) each take a /30 of their own: slot `i`
//! is held by an exclusive `flock` on a lock file in the temp dir, which the kernel releases
//! when the process dies, so a crashed run never blocks a slot. Dropping the guard deletes
//! the veth (which takes its peer along) and the namespace, also when the test panics.
//! Drop the hosts inside first (declare the namespace before them). Everything needs root.

use super::hosts::NetNsRef;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// /30 slots in 10.231.0.0/16.
const SLOTS: usize = 1 << 14;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with a veth link to the root namespace; removed on drop.
pub struct NetNs {
    pub name: String,
    /// The address inside the namespace (hosts listen here).
    pub inner: Ipv4Addr,
    /// The veth end in the root namespace.
    veth: String,
    /// Holds the slot (flock) while the namespace exists.
    _lock: File,
}

impl NetNs {
    /// A fresh namespace and link, up and addressed.
    pub fn create() -> NetNs {
        let (slot, lock) = take_slot();
        let base = 10u32 << 24 | 231 << 16 | (slot as u32) << 2;
        let outer = Ipv4Addr::from(base + 1);
        let inner = Ipv4Addr::from(base + 2);
        let name = format!("svm-{}-{slot}", std::process::id());
        let veth = format!("svmt{slot}");
        // A slot we hold is ours: a link of that name is a leftover of a killed run.
        let _ = Command::new("ip").args(["link", "del", &veth]).output();
        ip(&["netns", "add", &name]);
        let ns = NetNs {
            name,
            inner,
            veth,
            _lock: lock,
        };
        let (n, v) = (ns.name.as_str(), ns.veth.as_str());
        ip(&[
            "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", n,
        ]);
        ip(&["addr", "add", &format!("{outer}/30"), "dev", v]);
        ip(&["link", "set", v, "up"]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{inner}/30"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", n, "link", "set", "eth0", "up"]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ns
    }

    /// What `HostOptions::netns` takes to start a host in here.
    pub fn host(&self) -> NetNsRef {
        NetNsRef {
            name: self.name.clone(),
            address: self.inner,
        }
    }

    /// Run a program inside the namespace; panics when it fails.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ip netns exec");
        assert!(
            out.status.success(),
            "{program} {args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Load an nftables ruleset inside the namespace (`nft -f -`).
    pub fn nft(&self, ruleset: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ruleset.as_bytes())
            .expect("write ruleset");
        let out = child.wait_with_output().expect("wait for nft");
        assert!(
            out.status.success(),
            "nft in {}: {}\n{ruleset}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Remove every nftables rule inside the namespace and the rate limit: the fault is
    /// gone.
    pub fn heal(&self) {
        self.exec("nft", &["flush", "ruleset"]);
        let _ = Command::new("tc")
            .args(["qdisc", "del", "dev", &self.veth, "root"])
            .output();
    }

    /// Limit what goes into the namespace (the upload direction) to `rate` (tc syntax,
    /// `16mbit`): a `tbf` on the root namespace's end of the link, which is ours.
    pub fn rate_limit(&self, rate: &str) {
        let args = [
            "qdisc", "add", "dev", &self.veth, "root", "tbf", "rate", rate, "burst", "32kb",
            "latency", "400ms",
        ];
        let out = Command::new("tc").args(args).output().expect("run tc");
        assert!(
            out.status.success(),
            "tc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The counters of the namespace's nftables rules (`nft list ruleset`).
    pub fn ruleset(&self) -> String {
        String::from_utf8_lossy(&self.exec("nft", &["list", "ruleset"]).stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting one end of a veth deletes both; the namespace goes with its last process.
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A free /30 slot and the lock that holds it.
fn take_slot() -> (usize, File) {
    let start =
        (std::process::id() as usize * 131 + NEXT.fetch_add(1, Ordering::Relaxed) * 7) % SLOTS;
    for k in 0..SLOTS {
        let slot = (start + k) % SLOTS;
        let path = lock_dir().join(format!("{slot}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("open netns lock");
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return (slot, file);
        }
    }
    panic!("no free network namespace slot");
}

/// Where the slot locks live (empty files, kept: removing one could let two holders in).
fn lock_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("systemvm-test-netns");
    std::fs::create_dir_all(&dir).expect("netns lock dir");
    dir
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
