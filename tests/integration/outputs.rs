//! What an operator notices about outputs: `-o DIR` writes the default name inside it, a
//! missing directory is named, what cannot be made again is replaced only with `--force`,
//! Ctrl-C leaves nothing behind, sizes take units, `build` finds its payload, the shipped
//! examples parse with our own parsers, and a bad identity is an inventory error.

use crate::common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

fn key_pair(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    Test::new()
        .args(["keys", "generate", "-o"])
        .arg(&key)
        .success();
    key
}

fn build(payload: &Path, out: &Path) -> Test {
    Test::new()
        .args(["build", "--version", "4.16.0.0", "--payload"])
        .arg(payload)
        .arg("-o")
        .arg(out)
}

/// A temp directory holding a payload, the `s.iso` built from it and a key pair `k`.
fn built_iso_and_key() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let iso = dir.path().join("s.iso");
    build(&payload, &iso).success();
    let key = key_pair(dir.path(), "k");
    (dir, payload, iso, key)
}

fn pub_of(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

fn hidden(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn o_dir_writes_the_default_name_inside() {
    let dir = tempdir();
    let d = dir.path();
    let payload = small_payload(d);
    let out = d.join("out");
    fs::create_dir(&out).unwrap();

    build(&payload, &out).success();
    assert!(out.join("systemvm.iso").is_file(), "{:?}", listing(&out));
    assert!(out.join("systemvm.iso.manifest.json").is_file());

    let keys = d.join("keys");
    fs::create_dir(&keys).unwrap();
    Test::new()
        .args(["keys", "generate", "-o"])
        .arg(format!("{}/", keys.display()))
        .success();
    assert_eq!(listing(&keys), ["id_ed25519", "id_ed25519.pub"]);

    let keyed = d.join("keyed");
    fs::create_dir(&keyed).unwrap();
    Test::new()
        .arg("inject")
        .arg(out.join("systemvm.iso"))
        .arg("--key")
        .arg(keys.join("id_ed25519.pub"))
        .arg("-o")
        .arg(&keyed)
        .success();
    assert_eq!(
        listing(&keyed),
        ["systemvm.iso", "systemvm.iso.manifest.json"]
    );

    let debs = d.join("debs");
    fs::create_dir(&debs).unwrap();
    Test::new()
        .args(["package", "deb"])
        .arg(out.join("systemvm.iso"))
        .arg("-o")
        .arg(&debs)
        .success();
    assert_eq!(listing(&debs), ["systemvm-iso_4.16.0.0_all.deb"]);
}

#[test]
fn a_missing_directory_is_named_and_nothing_is_written() {
    let (dir, payload, iso, key) = built_iso_and_key();
    let d = dir.path();
    let missing = d.join("nope").join("x");
    let runs: Vec<Test> = vec![
        build(&payload, &missing),
        Test::new().args(["keys", "generate", "-o"]).arg(&missing),
        Test::new()
            .arg("inject")
            .arg(&iso)
            .arg("--key")
            .arg(pub_of(&key))
            .arg("-o")
            .arg(&missing),
        Test::new()
            .args(["package", "deb"])
            .arg(&iso)
            .arg("-o")
            .arg(&missing),
        Test::new().args(["package", "self", "-o"]).arg(&missing),
        Test::new()
            .args(["inventory", "from-cloudstack", "-o"])
            .arg(&missing),
        Test::new()
            .args(["appliance", "packer", "-o"])
            .arg(&missing),
        Test::new()
            .args(["appliance", "export", "--version", "4.20.0.0"])
            .arg(&iso)
            .arg("-o")
            .arg(&missing),
    ];
    for run in runs {
        run.fails(2)
            .one_error_line()
            .stderr_contains(&format!("{} does not exist", d.join("nope").display()));
    }
    assert!(!d.join("nope").exists());
    // A trailing slash says "a directory": one that is not there is named too.
    Test::new()
        .args(["keys", "generate", "-o"])
        .arg(format!("{}/", d.join("nope").display()))
        .fails(2)
        .one_error_line()
        .stderr_contains("no such directory");
}

#[test]
fn what_cannot_be_made_again_needs_force() {
    let dir = tempdir();
    let d = dir.path();
    let payload = small_payload(d);
    let iso = d.join("s.iso");
    let key = key_pair(d, "k");
    let other = key_pair(d, "other");

    // An ISO without keys is made again from its payload: replaced silently.
    build(&payload, &iso).success();
    build(&payload, &iso).success();
    // With keys injected, building over it would lose them.
    Test::new()
        .arg("inject")
        .arg(&iso)
        .arg("--key")
        .arg(pub_of(&key))
        .success();
    let before = fs::read(&iso).unwrap();
    build(&payload, &iso)
        .fails(2)
        .one_error_line()
        .stderr_contains("has keys injected")
        .stderr_contains("pass --force");
    assert_eq!(fs::read(&iso).unwrap(), before, "the keyed ISO was touched");
    // The same keys again lose nothing.
    build(&payload, &iso)
        .arg("--key")
        .arg(pub_of(&key))
        .success();
    build(&payload, &iso).arg("--force").success();

    // inject -o over a keyed ISO whose keys are not among those given.
    let keyed = d.join("keyed.iso");
    let inject_to = |k: &Path| {
        Test::new()
            .arg("inject")
            .arg(&iso)
            .arg("--key")
            .arg(pub_of(k))
            .arg("-o")
            .arg(&keyed)
    };
    inject_to(&key).success();
    inject_to(&key).success();
    inject_to(&other)
        .fails(2)
        .one_error_line()
        .stderr_contains("has keys injected");
    inject_to(&other).arg("--force").success();

    // A private key, an inventory and Packer files: never replaced without --force.
    Test::new()
        .args(["keys", "generate", "-o"])
        .arg(&key)
        .fails(2)
        .one_error_line()
        .stderr_contains("--force");
    let inv = d.join("hosts.toml");
    fs::write(&inv, "# edited\n").unwrap();
    Test::new()
        .args(["inventory", "from-cloudstack", "-o"])
        .arg(&inv)
        .fails(2)
        .one_error_line()
        .stderr_contains("--force");
    assert_eq!(fs::read_to_string(&inv).unwrap(), "# edited\n");
    let packer = d.join("packer");
    Test::new()
        .args(["appliance", "packer", "-o"])
        .arg(&packer)
        .success();
    Test::new()
        .args(["appliance", "packer", "-o"])
        .arg(&packer)
        .fails(2)
        .one_error_line()
        .stderr_contains("--force");

    // Packages are made again from the ISO: replaced.
    let deb = d.join("s.deb");
    for _ in 0..2 {
        Test::new()
            .args(["package", "deb"])
            .arg(&iso)
            .arg("-o")
            .arg(&deb)
            .success();
    }
}

#[test]
fn disk_sizes_take_units_everywhere() {
    let dir = tempdir();
    let packer = dir.path().join("packer");
    Test::new()
        .args(["appliance", "packer", "--disk-size", "5G", "-o"])
        .arg(&packer)
        .success();
    let template = fs::read_to_string(packer.join("systemvmtemplate.json")).unwrap();
    assert!(template.contains("\"5120M\""), "{template}");
    for cmd in [["appliance", "packer"], ["appliance", "build"]] {
        Test::new()
            .args(cmd)
            .args(["--disk-size", "5X", "-o"])
            .arg(dir.path().join("x"))
            .fails(2)
            .one_error_line()
            .stderr_contains("--disk-size \"5X\"")
            .stderr_contains("the unit must be M, G or T");
    }
}

#[test]
fn build_finds_its_payload_or_says_what_to_pass() {
    let dir = tempdir();
    let d = dir.path();
    if Path::new("/usr/share/systemvm/agent-payload").exists() {
        eprintln!("systemvm is installed here: its payload is the default; skipped");
        return;
    }
    Test::new()
        .args(["build", "--version", "4.16.0.0"])
        .current_dir(d)
        .fails(2)
        .one_error_line()
        .stderr_contains("pass --payload DIR");
    assert!(listing(d).is_empty(), "{:?}", listing(d));
    tool(
        "cp",
        &[
            "-r",
            bundled_payload().to_str().unwrap(),
            d.join("agent-payload").to_str().unwrap(),
        ],
    );
    Test::new()
        .args(["build", "--version", "4.16.0.0"])
        .current_dir(d)
        .success();
    assert!(d.join("systemvm.iso").is_file());
}

/// A payload whose agent holds `mib` MiB of incompressible bytes: seconds to zip.
fn large_payload(dir: &Path, mib: usize) -> PathBuf {
    let payload = small_payload(dir);
    let mut bytes = vec![0u8; mib << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    fs::write(payload.join("agent/lib/big.jar"), bytes).unwrap();
    payload
}

#[test]
fn ctrl_c_during_build_leaves_nothing_behind() {
    use std::process::{Command, Stdio};
    let dir = tempdir();
    let payload = large_payload(dir.path(), 96);
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    // A temp of a run that is gone (a process id that exited) is removed by the next run.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = out.join(format!(".int.iso.{dead}.AbC123.tmp"));
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join("agent.zip"), b"half").unwrap();

    let mut child = Command::new(BIN)
        .args(["build", "--version", "4.16.0.0", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(out.join("int.iso"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the new run's temp directory exists; bounded by the build itself.
    let mine = format!(".int.iso.{}.", child.id());
    while !hidden(&out).iter().any(|n| n.starts_with(&mine)) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended ({status}) before its temp directory was seen");
        }
        std::thread::yield_now();
    }
    assert!(
        !stale.exists(),
        "the stale temp of a dead run is still there"
    );
    // SAFETY: kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: interrupted"), "{stderr}");
    assert!(listing(&out).is_empty(), "left behind: {:?}", listing(&out));
}

#[test]
fn the_shipped_examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hosts = root.join("packaging/hosts.toml");
    Test::new()
        .args(["inventory", "check"])
        .arg(&hosts)
        .success()
        .stdout_contains("xen-01\txenserver")
        .stdout_contains("nfs-zone1\tvmware");
    // Every key the inventory page describes is in the example, set or commented.
    let page = fs::read_to_string(root.join("man/systemvm-inventory.5")).unwrap();
    let example = fs::read_to_string(&hosts).unwrap();
    let lines: Vec<&str> = page.lines().collect();
    let tags = lines.windows(2).filter(|w| w[0] == ".TP").map(|w| w[1]);
    for line in tags.filter(|l| l.starts_with("\\fB")) {
        for key in line.split("\\fB").skip(1) {
            let key = key.split("\\fR").next().unwrap();
            let is_key = key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if is_key && !["xenserver", "kvm", "hyperv", "vmware", "management"].contains(&key) {
                assert!(
                    example.contains(&format!("{key} =")),
                    "{key} is documented but not in packaging/hosts.toml"
                );
            }
        }
    }
    // The page's own example, as a reader would copy it, parses too.
    let shown = page
        .split_once(".SH EXAMPLES")
        .and_then(|(_, rest)| rest.split_once(".RS\n"))
        .and_then(|(_, rest)| rest.split_once("\n.RE"))
        .expect("the inventory page has an example")
        .0
        .replace("\\-", "-");
    let dir = tempdir();
    let copied = dir.path().join("hosts.toml");
    fs::write(&copied, shown).unwrap();
    Test::new()
        .args(["inventory", "check"])
        .arg(&copied)
        .success()
        .stdout_contains("kvm-01\tkvm");
    let config = root.join("packaging/config.toml");
    let run = Test::new()
        .args(["doctor", "--no-hosts", "--no-appliance", "--config"])
        .arg(&config)
        .args(["--inventory"])
        .arg(&hosts)
        .args(["--output-format", "json"])
        .output();
    let checks = run.json_lines();
    for kind in ["config", "inventory"] {
        let check = checks
            .iter()
            .find(|c| c["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} check: {checks:?}"));
        assert_eq!(check["status"], "ok", "{check}");
    }
}

#[test]
fn doctor_points_to_the_examples() {
    let dir = tempdir();
    let config = dir.path().join("config.toml");
    let inv = dir.path().join("hosts.toml");
    let doctor = || {
        Test::new()
            .args(["doctor", "--no-hosts", "--no-appliance", "--config"])
            .arg(&config)
            .arg("--inventory")
            .arg(&inv)
    };
    let checks = doctor()
        .args(["--output-format", "json"])
        .output()
        .json_lines();
    let fix = |kind: &str| {
        checks
            .iter()
            .find(|c| c["kind"] == kind)
            .and_then(|c| c["fix"].as_str())
            .unwrap_or_else(|| panic!("no {kind} fix: {checks:?}"))
            .to_string()
    };
    let example = "/usr/share/doc/systemvm/examples";
    let d = dir.path().display();
    assert_eq!(fix("config"), format!("cp {example}/config.toml {d}/"));
    assert!(fix("inventory").starts_with(&format!("cp {example}/hosts.toml {d}/ ")));
    // The human lines fit 80 columns, however long the paths.
    let long = dir.path().join("x".repeat(90));
    let run = Test::new()
        .args(["doctor", "--no-hosts", "--no-appliance", "--config"])
        .arg(long.join("config.toml"))
        .output();
    for line in run.stdout().lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line}");
    }
}

#[test]
fn a_bad_identity_is_an_inventory_error() {
    let (dir, _, iso, key) = built_iso_and_key();
    let d = dir.path();
    let inv = d.join("hosts.toml");
    let write = |identity: &Path| {
        fs::write(
            &inv,
            format!(
                "[defaults]\nidentity = \"{}\"\n\n[[host]]\nname = \"kvm-01\"\n\
                 address = \"127.0.0.1\"\nport = {}\nhypervisor = \"kvm\"\n",
                identity.display(),
                common::sshd::free_port()
            ),
        )
        .unwrap();
    };
    let status = || {
        Test::new()
            .args(["status", "--inventory"])
            .arg(&inv)
            .arg("--iso")
            .arg(&iso)
    };
    write(&d.join("missing"));
    status().fails(2).one_error_line().stderr_contains(&format!(
        "{}:2: identity {}: no such file",
        inv.display(),
        d.join("missing").display()
    ));
    write(&pub_of(&key));
    status()
        .fails(2)
        .one_error_line()
        .stderr_contains(":2: identity")
        .stderr_contains("is a public key");
    Test::new()
        .args(["status", "--hypervisor", "vmwre", "--inventory"])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .fails(2)
        .stderr_contains("'vmwre'");
}

/// `status` lists targets in the inventory's order, not in the order they answer: a host
/// that accepts TCP and keeps silent until its connect timeout comes first in the file and
/// in the output, though the directory after it answered at once.
#[test]
fn status_lines_follow_the_inventory_not_the_answers() {
    let dir = tempdir();
    let (key, _) = ssh_keygen(dir.path(), "client");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    fs::create_dir(dir.path().join("vms")).unwrap();
    let inv = dir.path().join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[defaults]\nidentity = \"{}\"\n\
             [[host]]\nname = \"silent-kvm\"\naddress = \"127.0.0.1\"\nport = {port}\nhypervisor = \"kvm\"\n\
             [[secondary]]\nname = \"mgmt\"\nhypervisor = \"management\"\npath = \"{}/vms\"\n",
            key.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    let payload = small_payload(dir.path());
    let iso = dir.path().join("systemvm.iso");
    build_iso(&payload, &iso, &[]);
    let run = Test::new()
        .args([
            "status",
            "--jobs",
            "2",
            "--connect-timeout",
            "1",
            "--retries",
            "0",
        ])
        .args(["--deadline", "30"])
        .arg("--inventory")
        .arg(&inv)
        .arg("--known-hosts")
        .arg(dir.path().join("known_hosts"))
        .arg("--iso")
        .arg(&iso)
        .fails(1);
    let names: Vec<String> = run
        .stdout()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    // The management target goes first by rule; the silent host's line still comes first.
    assert_eq!(names, ["silent-kvm", "mgmt"], "{}", run.stdout());
    // The handshake is bounded by the connect timeout, not the (60 s) transfer timeout
    // that the deadline would have cut.
    let first = run.stdout().lines().next().unwrap_or_default().to_string();
    assert!(
        first.contains("unreachable") && !first.contains("deadline"),
        "{first}"
    );
    drop(silent);
}
