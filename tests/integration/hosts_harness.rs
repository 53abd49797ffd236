//! Self-tests of the test-host harness (tests/integration/common/hosts.rs) and its fixtures: hosts are
//! private to each other, the `xe` and `systemctl` fixtures answer over real SSH sessions,
//! password login works, a restarted host keeps or changes its key as asked, stopping leaves
//! no process behind, and many hosts start quickly.

use crate::common;

use common::hosts::{ssh_options, start_many, HostOptions, TestHost};
use common::{ssh_keygen, tempdir};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temp dir, a client key and options that let that key in.
fn bed() -> (tempfile::TempDir, PathBuf, HostOptions) {
    let dir = tempdir();
    let (key, public) = ssh_keygen(dir.path(), "id_client");
    let opts = HostOptions {
        authorized_keys: Some(public),
        ..HostOptions::default()
    };
    (dir, key, opts)
}

/// `command` over SSH, which must succeed; returns stdout.
fn ok(host: &TestHost, key: &Path, command: &str) -> String {
    let out = host.ssh(key, command);
    assert!(
        out.status.success(),
        "{command:?} on {} failed ({}):\n{}\n--- sshd log\n{}",
        host.name,
        out.status,
        String::from_utf8_lossy(&out.stderr),
        host.log()
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `command` over SSH, which must exit 1; returns stderr.
fn fails(host: &TestHost, key: &Path, command: &str) -> String {
    let out = host.ssh(key, command);
    assert_eq!(out.status.code(), Some(1), "{command:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn hosts_have_private_file_systems_and_the_fixtures_on_path() {
    let (dir, key, opts) = bed();
    let hosts = start_many(dir.path(), 2, |i| HostOptions {
        agent_properties: (i == 1).then(|| "systemvm.iso.path=/srv/x.iso\n".to_string()),
        ..opts.clone()
    });
    let (a, b) = (&hosts[0], &hosts[1]);
    let iso_dir = "/opt/xensource/packages/iso";

    let out = ok(
        a,
        &key,
        "echo hello > /opt/xensource/packages/iso/marker && hostname && \
         command -v xe systemctl && echo \"$PATH\"",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        ["host00", "/usr/local/bin/xe", "/usr/local/bin/systemctl"]
    );
    let path: Vec<&str> = lines[3].split(':').collect();
    let position = |dir| path.iter().position(|p| *p == dir).expect(dir);
    assert!(
        position("/usr/local/bin") < position("/usr/bin"),
        "{path:?}"
    );

    assert_eq!(
        a.read("/opt/xensource/packages/iso/marker"),
        Some(b"hello\n".to_vec())
    );
    assert_eq!(a.files(iso_dir), ["marker"]);
    assert_eq!(b.read("/opt/xensource/packages/iso/marker"), None);
    assert!(b.files(iso_dir).is_empty());
    assert_eq!(ok(b, &key, "ls -A /opt/xensource/packages/iso"), "");
    assert!(!Path::new("/opt/xensource/packages/iso/marker").exists());

    assert_eq!(a.files("/opt/xensource/packages"), ["iso", "resources"]);
    assert_eq!(a.files("/opt/cosmic/agent"), ["vms"]);
    assert_eq!(a.files("/usr/share/cloudstack-common"), ["vms"]);
    assert!(a.files("/etc/cloudstack/agent").is_empty());
    assert_eq!(
        b.read("/etc/cloudstack/agent/agent.properties").as_deref(),
        Some(&b"systemvm.iso.path=/srv/x.iso\n"[..])
    );
}

#[test]
fn xe_fixture_round_trips_tags_and_logs_arguments_literally() {
    let (dir, key, opts) = bed();
    let host = TestHost::start(dir.path(), "xen", opts);
    let uuid = host.host_uuid();

    assert_eq!(ok(&host, &key, "xe host-list --minimal").trim(), uuid);
    assert_eq!(
        ok(&host, &key, "xe host-list params=uuid --minimal").trim(),
        uuid
    );
    assert_eq!(
        ok(
            &host,
            &key,
            &format!("xe host-param-get uuid={uuid} param-name=tags")
        ),
        "\n"
    );

    let version_tag =
        "vmops-version-com.cloud.hypervisor.xenserver.resource.XenServer650Resource-4.16.0.0";
    let odd = "a b $(touch /tmp/pwned) \"q\" `id` ;|&";
    ok(
        &host,
        &key,
        &format!(
            "xe host-param-add uuid={uuid} param-name=tags param-key={version_tag} && \
             xe host-param-add uuid={uuid} param-name=tags 'param-key={odd}' && \
             xe host-param-add uuid={uuid} param-name=tags param-key=tab$'\\t'nl$'\\n'back\\\\slash"
        ),
    );
    let weird = "tab\tnl\nback\\slash";
    assert_eq!(host.xe_tags(), [version_tag, odd, weird]);
    assert_eq!(
        host.xe_log().last().expect("logged"),
        &[
            "host-param-add".to_string(),
            format!("uuid={uuid}"),
            "param-name=tags".to_string(),
            format!("param-key={weird}"),
        ]
    );
    assert_eq!(host.xe_log()[4][3], format!("param-key={odd}"));
    assert!(host.read("/tmp/pwned").is_none() && !Path::new("/tmp/pwned").exists());
    assert_eq!(
        ok(
            &host,
            &key,
            &format!("xe host-param-get uuid={uuid} param-name=tags")
        ),
        format!("{version_tag}, {odd}, {weird}\n")
    );

    host.set_xe_tags(&["x", "y"]);
    ok(
        &host,
        &key,
        &format!("xe host-param-remove uuid={uuid} param-name=tags param-key=y"),
    );
    assert_eq!(host.xe_tags(), ["x"]);
    ok(
        &host,
        &key,
        &format!("xe host-param-clear uuid={uuid} param-name=tags"),
    );
    assert!(host.xe_tags().is_empty());

    let err = fails(&host, &key, "xe host-param-get uuid=nope param-name=tags");
    assert!(
        err.starts_with("The uuid you supplied was invalid."),
        "{err}"
    );
    assert!(fails(&host, &key, "xe vm-list").contains("Unknown command"));

    let sr = host.sr_uuid();
    for name in ["XenServer Tools", "XCP-ng Tools", "Citrix Hypervisor Tools"] {
        let out = ok(
            &host,
            &key,
            &format!("xe sr-list 'name-label={name}' --minimal"),
        );
        assert_eq!(out.trim(), sr);
    }
    assert_eq!(
        ok(&host, &key, "xe sr-list name-label=Local --minimal"),
        "\n"
    );
    ok(&host, &key, &format!("xe sr-scan uuid={sr}"));
    fails(&host, &key, "xe sr-scan uuid=nope");
    assert_eq!(host.sr_scans(), [sr]);

    host.set_xe_garbage(true);
    assert_eq!(
        ok(&host, &key, "xe host-list --minimal | wc -c").trim(),
        "2097152"
    );
}

#[test]
fn systemctl_fixture_records_calls() {
    let (dir, key, opts) = bed();
    let host = TestHost::start(dir.path(), "kvm", opts);
    let out = ok(
        &host,
        &key,
        "systemctl restart cloudstack-agent && systemctl is-active cloudstack-agent && \
         systemctl is-active --quiet cloudstack-agent",
    );
    assert_eq!(out, "active\n");
    fails(&host, &key, "systemctl reload cloudstack-agent");
    fails(&host, &key, "systemctl restart");
    assert_eq!(
        host.restarts(),
        [
            "restart cloudstack-agent",
            "is-active cloudstack-agent",
            "is-active --quiet cloudstack-agent"
        ]
    );
}

/// `sshpass -e ssh` with password authentication only; the password travels in SSHPASS.
fn password_login(host: &TestHost, password: &str) -> Output {
    Command::new("sshpass")
        .arg("-e")
        .arg("ssh")
        .args(ssh_options(&host.known_hosts()))
        .args(["-o", "PreferredAuthentications=password"])
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .args(["-p", &host.port.to_string(), "root@127.0.0.1", "echo in"])
        .env("SSHPASS", password)
        .stdin(Stdio::null())
        .output()
        .expect("run sshpass (apt-get install sshpass)")
}

#[test]
fn password_login_uses_the_hosts_own_shadow() {
    let (dir, _key, opts) = bed();
    let real_shadow = fs::read("/etc/shadow").expect("read /etc/shadow");
    let host = TestHost::start(
        dir.path(),
        "xen",
        HostOptions {
            root_password: Some("s3cret pass'$".into()),
            ..opts.clone()
        },
    );
    let out = password_login(&host, "s3cret pass'$");
    assert!(out.status.success(), "{out:?}\n{}", host.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in\n");
    assert!(!password_login(&host, "wrong").status.success());

    let keys_only = TestHost::start(dir.path(), "keys-only", opts);
    assert!(!password_login(&keys_only, "s3cret pass'$").status.success());
    assert_eq!(
        fs::read("/etc/shadow").expect("read /etc/shadow"),
        real_shadow
    );
}

/// The ed25519 key a port presents, as a known_hosts line.
fn keyscan(port: u16) -> String {
    let out = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"])
        .stderr(Stdio::null())
        .output()
        .expect("run ssh-keyscan");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| !l.starts_with('#'));
    line.unwrap_or_else(|| panic!("no key from port {port}"))
        .to_string()
}

#[test]
fn restart_on_the_same_port_keeps_the_disk_and_changes_or_keeps_the_key() {
    let (dir, _key, opts) = bed();
    let first = TestHost::start(dir.path(), "xen", opts.clone());
    let port = first.port;
    let first_key = keyscan(port);
    assert_eq!(first_key, first.known_hosts_line());
    fs::write(first.path("/opt/xensource/packages/iso/kept"), b"x").expect("write via /proc");
    let saved_key = dir.path().join("saved_host_key");
    fs::copy(first.dir.join("host_key"), &saved_key).expect("save host key");
    drop(first);

    let same_port = HostOptions {
        port: Some(port),
        ..opts
    };
    let reinstalled = TestHost::start(dir.path(), "xen", same_port.clone());
    let new_key = keyscan(port);
    assert_ne!(new_key, first_key);
    assert_eq!(new_key, reinstalled.known_hosts_line());
    assert_eq!(reinstalled.files("/opt/xensource/packages/iso"), ["kept"]);
    drop(reinstalled);

    let rebooted = TestHost::start(
        dir.path(),
        "xen",
        HostOptions {
            host_key: Some(saved_key),
            ..same_port
        },
    );
    assert_eq!(keyscan(port), first_key);
    assert_eq!(rebooted.known_hosts_line(), first_key);
}

/// Every process whose mount namespace is `ns`.
fn processes_in(ns: &Path) -> Vec<u32> {
    fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/mnt")).ok().as_deref() == Some(ns))
        .collect()
}

/// The start time of a process (field 22 of /proc/PID/stat); empty once it is gone.
fn started(pid: u32) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    fields.split_whitespace().nth(19).unwrap_or("").to_string()
}

fn has_sleeper(pids: &[u32]) -> bool {
    pids.iter().any(|pid| {
        fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\x0030"))
    })
}

#[test]
fn stop_kills_and_reaps_every_process_of_the_host() {
    let (dir, key, opts) = bed();
    let mut host = TestHost::start(dir.path(), "xen", opts);
    let ns = fs::read_link(format!("/proc/{}/ns/mnt", host.pid())).expect("host namespace");
    let mut client = Command::new("ssh")
        .args(ssh_options(&host.known_hosts()))
        .args(["-o", "BatchMode=yes", "-i"])
        .arg(&key)
        .args(["-p", &host.port.to_string(), "root@127.0.0.1", "sleep 30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ssh");

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut pids = processes_in(&ns);
    while !has_sleeper(&pids) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        pids = processes_in(&ns);
    }
    assert!(has_sleeper(&pids), "the session never started: {pids:?}");
    assert!(pids.len() >= 3, "sshd, its session and sleep: {pids:?}");

    let before: Vec<(u32, String)> = pids
        .iter()
        .map(|&pid| (pid, started(pid)))
        .filter(|(_, start)| !start.is_empty())
        .collect();
    host.stop();
    // Compare start times too: a PID may be reused, and so may the namespace's inode number
    // (by a host another test starts), so "nothing in that namespace" would be flaky.
    let left: Vec<u32> = before
        .iter()
        .filter(|(pid, start)| started(*pid) == *start)
        .map(|(pid, _)| *pid)
        .collect();
    assert!(left.is_empty(), "left behind (maybe as zombies): {left:?}");
    let _ = client.kill();
    client.wait().expect("reap ssh client");
}

#[test]
fn a_small_target_fills_up() {
    let (dir, key, opts) = bed();
    let host = TestHost::start(
        dir.path(),
        "kvm",
        HostOptions {
            small_target: Some(("/usr/share/cloudstack-common".into(), 8)),
            ..opts
        },
    );
    let out = host.ssh(
        &key,
        "head -c 9M /dev/zero > /usr/share/cloudstack-common/vms/big",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left on device"));
    ok(
        &host,
        &key,
        "head -c 9M /dev/zero > /opt/cosmic/agent/vms/big",
    );
}

#[test]
#[should_panic(expected = "Address already in use")]
fn a_host_that_cannot_start_fails_with_the_sshd_log() {
    let (dir, _key, opts) = bed();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    TestHost::start(
        dir.path(),
        "xen",
        HostOptions {
            port: Some(port),
            ..opts
        },
    );
}

#[test]
fn start_times_of_one_and_of_32_hosts() {
    let (dir, key, opts) = bed();
    let t = Instant::now();
    let one = TestHost::start(dir.path(), "single", opts.clone());
    eprintln!("started 1 test host in {:?}", t.elapsed());
    drop(one);

    let t = Instant::now();
    let hosts = start_many(dir.path(), 32, |_| opts.clone());
    eprintln!("started 32 test hosts in {:?}", t.elapsed());
    let mut ports: Vec<u16> = hosts.iter().map(|h| h.port).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 32);
    let last = &hosts[31];
    assert_eq!(
        ok(last, &key, "xe host-list --minimal").trim(),
        last.host_uuid()
    );

    let t = Instant::now();
    drop(hosts);
    eprintln!("stopped 32 test hosts in {:?}", t.elapsed());
}

#[test]
fn fixtures_are_shellcheck_clean() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = Command::new("shellcheck")
        .arg(fixtures.join("xe"))
        .arg(fixtures.join("systemctl"))
        .output()
        .expect("run shellcheck (apt-get install shellcheck)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
