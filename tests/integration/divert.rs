//! The management server's own copy survives an upgrade of the package that ships it:
//! propagate diverts `systemvm.iso` from `cloudstack-common` (dpkg-divert) before writing it,
//! and dpkg itself then puts the upgraded package's ISO beside ours. A stand-in
//! `cloudstack-common` is built with dpkg-deb and installed with dpkg into a private dpkg
//! database (`DPKG_ADMINDIR`), so the machine's own is never touched.

use crate::common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `cloudstack-common` of `version` that ships `iso` holding `content`.
fn package(dir: &Path, version: &str, iso: &Path, content: &str) -> PathBuf {
    package_of(dir, version, &[(iso, content)])
}

/// A `cloudstack-common` of `version` that ships each file with its content.
fn package_of(dir: &Path, version: &str, files: &[(&Path, &str)]) -> PathBuf {
    let tree = dir.join(format!("pkg-{version}"));
    for (file, content) in files {
        let shipped = tree.join(file.strip_prefix("/").unwrap());
        fs::create_dir_all(shipped.parent().unwrap()).unwrap();
        fs::write(&shipped, content).unwrap();
    }
    fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    fs::write(
        tree.join("DEBIAN/control"),
        format!("Package: cloudstack-common\nVersion: {version}\nArchitecture: all\nMaintainer: test <test@localhost>\nDescription: stand-in\n"),
    )
    .unwrap();
    let deb = dir.join(format!("cloudstack-common_{version}_all.deb"));
    tool(
        "dpkg-deb",
        &["--build", tree.to_str().unwrap(), deb.to_str().unwrap()],
    );
    deb
}

fn dpkg(admin: &Path, args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("DPKG_ADMINDIR", admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A private, empty dpkg database; `None` (the test is skipped) without dpkg-divert.
fn dpkg_admin(dir: &Path) -> Option<PathBuf> {
    if Command::new("dpkg-divert")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no dpkg-divert on this machine");
        return None;
    }
    let admin = dir.join("dpkg");
    for d in ["info", "updates", "triggers"] {
        fs::create_dir_all(admin.join(d)).unwrap();
    }
    for f in ["status", "available", "diversions"] {
        fs::write(admin.join(f), "").unwrap();
    }
    Some(admin)
}

const FORCE: [&str; 3] = ["--force-not-root", "--force-bad-path", "-i"];

#[test]
fn the_management_servers_copy_is_diverted_and_survives_a_package_upgrade() {
    let dir = tempdir();
    let Some(admin) = dpkg_admin(dir.path()) else {
        return;
    };
    let vms = dir.path().join("vms");
    fs::create_dir(&vms).unwrap();
    let shipped = vms.join("systemvm.iso");
    let v1 = package(
        dir.path(),
        "4.16.0.0",
        &shipped,
        "CloudStack's ISO, 4.16.0.0\n",
    );
    dpkg(
        &admin,
        &[&["dpkg"], &FORCE[..], &[v1.to_str().unwrap()]].concat(),
    );
    assert!(
        dpkg(&admin, &["dpkg-query", "-S", shipped.to_str().unwrap()])
            .starts_with("cloudstack-common: ")
    );

    let payload = small_payload(dir.path());
    let iso = dir.path().join("ours.iso");
    build_iso(&payload, &iso, &[]);
    let inv = dir.path().join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[[secondary]]\nname = \"mgmt\"\nhypervisor = \"management\"\npath = \"{}\"\n",
            vms.display()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Test::new()
            .arg("propagate")
            .args(extra.iter().copied())
            .arg("--inventory")
            .arg(&inv)
            .arg("--iso")
            .arg(&iso)
            .env("DPKG_ADMINDIR", &admin)
            .output()
    };

    let dry = run(&["--dry-run"]).code(0);
    let divert = format!("divert {} from cloudstack-common", shipped.display());
    assert!(dry.stdout().contains(&divert), "{}", dry.stdout());
    assert_eq!(
        dpkg(
            &admin,
            &["dpkg-divert", "--listpackage", shipped.to_str().unwrap()]
        ),
        "",
        "the dry run diverted"
    );

    run(&[]).code(0);
    assert_eq!(fs::read(&shipped).unwrap(), fs::read(&iso).unwrap());
    let by = dpkg(
        &admin,
        &["dpkg-divert", "--listpackage", shipped.to_str().unwrap()],
    );
    assert_eq!(by.trim(), "LOCAL");

    // The upgrade: dpkg writes the package's new ISO beside ours and leaves ours alone.
    let v2 = package(
        dir.path(),
        "4.16.1.0",
        &shipped,
        "CloudStack's ISO, 4.16.1.0\n",
    );
    dpkg(
        &admin,
        &[&["dpkg"], &FORCE[..], &[v2.to_str().unwrap()]].concat(),
    );
    assert_eq!(
        fs::read(&shipped).unwrap(),
        fs::read(&iso).unwrap(),
        "the upgrade overwrote ours"
    );
    let beside = vms.join("systemvm.iso.cloudstack");
    assert_eq!(
        fs::read_to_string(beside).unwrap(),
        "CloudStack's ISO, 4.16.1.0\n"
    );

    // Nothing more to do: no second diversion.
    let again = run(&["--dry-run"]).code(0);
    assert!(!again.stdout().contains("divert"), "{}", again.stdout());
}

const PATCH_FILES: [&str; 3] = ["agent.zip", "cloud-scripts.tgz", "patch-sysvms.sh"];

/// `systemvm startup` on a 4.20 management server: its config's ISO is refused (set
/// patch_files); with patch_files, the management server's own copy (a stand-in dpkg-owned
/// `cloudstack-common`, with no inventory entry) is ours and diverted first, then the KVM
/// host gets the three files; the second start changes nothing.
#[test]
fn startup_on_4_20_updates_and_diverts_the_management_servers_patch_files_first() {
    let dir = tempdir();
    let Some(admin) = dpkg_admin(dir.path()) else {
        return;
    };
    let vms = dir.path().join("vms");
    fs::create_dir(&vms).unwrap();
    let shipped: Vec<(PathBuf, String)> = PATCH_FILES
        .iter()
        .map(|n| (vms.join(n), format!("CloudStack's {n}, 4.20.0.0\n")))
        .collect();
    let files: Vec<(&Path, &str)> = shipped
        .iter()
        .map(|(p, c)| (p.as_path(), c.as_str()))
        .collect();
    let deb = package_of(dir.path(), "4.20.0.0", &files);
    dpkg(
        &admin,
        &[&["dpkg"], &FORCE[..], &[deb.to_str().unwrap()]].concat(),
    );

    let (_, build) = patch_files_build(dir.path());
    let (identity, public) = ssh_keygen(dir.path(), "client");
    let hosts = common::hosts::start_many(&dir.path().join("hosts"), 1, |_| {
        common::hosts::HostOptions {
            authorized_keys: Some(public.clone()),
            ..Default::default()
        }
    });
    let known = dir.path().join("known_hosts");
    fs::write(&known, format!("{}\n", hosts[0].known_hosts_line())).unwrap();
    let inv = dir.path().join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[defaults]\ncloudstack_version = \"4.20.0.0\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\n\
             [[host]]\nname = \"kvm-1\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"kvm\"\n",
            identity.display(),
            known.display(),
            hosts[0].port
        ),
    )
    .unwrap();
    let keys = dir.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let config = dir.path().join("config.toml");
    let startup = |payload: &str| {
        fs::write(
            &config,
            format!(
                "{payload}\ninventory = \"{}\"\nmanagement_dir = \"{}\"\n[keys]\npath = \"{}\"\n",
                inv.display(),
                vms.display(),
                keys.join("id_ed25519").display()
            ),
        )
        .unwrap();
        Test::new()
            .args(["startup", "--config"])
            .arg(&config)
            .env("DPKG_ADMINDIR", &admin)
            .output()
    };
    let listpackage = |p: &Path| {
        dpkg(
            &admin,
            &["dpkg-divert", "--listpackage", p.to_str().unwrap()],
        )
    };

    // An ISO for a 4.20 management server: refused, saying what to set; nothing changed.
    let iso = dir.path().join("systemvm.iso");
    build_iso(&small_payload(&dir.path().join("p-iso")), &iso, &[]);
    startup(&format!("iso = \"{}\"", iso.display()))
        .code(2)
        .one_error_line()
        .stderr_contains("takes patch files, md5 digests; set patch_files = \"DIR\"");
    for (path, content) in &shipped {
        assert_eq!(&fs::read_to_string(path).unwrap(), content);
        assert_eq!(listpackage(path), "", "diverted by a refused run");
    }
    assert!(hosts[0]
        .files("/usr/share/cloudstack-common/vms")
        .is_empty());
    assert!(listing(&keys).is_empty(), "a key was made by a refused run");

    let first = startup(&format!("patch_files = \"{}\"", build.display())).code(0);
    let err = first.stderr();
    let own = err.find("management-server: updated").expect(&err);
    let host = err.find("kvm-1: updated").expect(&err);
    assert!(
        own < host,
        "the management server's copy was not first:\n{err}"
    );
    assert!(!err.contains("inject"), "patch files are not keyed:\n{err}");
    for (name, (path, _)) in PATCH_FILES.iter().zip(&shipped) {
        let ours = fs::read(build.join(name)).unwrap();
        assert_eq!(fs::read(path).unwrap(), ours, "{name}");
        assert_eq!(listpackage(path).trim(), "LOCAL", "{name} not diverted");
        let on_host = hosts[0].read(&format!("/usr/share/cloudstack-common/vms/{name}"));
        assert_eq!(on_host.unwrap(), ours, "{name} on the host");
    }
    assert!(
        hosts[0].restarts().is_empty(),
        "4.17+ needs no agent restart"
    );

    let before: Vec<_> = shipped
        .iter()
        .map(|(p, _)| fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    let diversions = fs::read(admin.join("diversions")).unwrap();
    let second = startup(&format!("patch_files = \"{}\"", build.display())).code(0);
    let err = second.stderr();
    assert!(err.contains("management-server: current"), "{err}");
    assert!(err.contains("kvm-1: current"), "{err}");
    let after: Vec<_> = shipped
        .iter()
        .map(|(p, _)| fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    assert_eq!(before, after, "the second start rewrote a file");
    assert_eq!(fs::read(admin.join("diversions")).unwrap(), diversions);
}
