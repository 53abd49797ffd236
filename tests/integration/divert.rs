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
    let tree = dir.join(format!("pkg-{version}"));
    let shipped = tree.join(iso.strip_prefix("/").unwrap());
    fs::create_dir_all(shipped.parent().unwrap()).unwrap();
    fs::write(&shipped, content).unwrap();
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

#[test]
fn the_management_servers_copy_is_diverted_and_survives_a_package_upgrade() {
    if Command::new("dpkg-divert")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no dpkg-divert on this machine");
        return;
    }
    let dir = tempdir();
    let admin = dir.path().join("dpkg");
    for d in ["info", "updates", "triggers"] {
        fs::create_dir_all(admin.join(d)).unwrap();
    }
    for f in ["status", "available", "diversions"] {
        fs::write(admin.join(f), "").unwrap();
    }
    let vms = dir.path().join("vms");
    fs::create_dir(&vms).unwrap();
    let shipped = vms.join("systemvm.iso");
    let v1 = package(
        dir.path(),
        "4.16.0.0",
        &shipped,
        "CloudStack's ISO, 4.16.0.0\n",
    );
    let force = ["--force-not-root", "--force-bad-path", "-i"];
    dpkg(
        &admin,
        &[&["dpkg"], &force[..], &[v1.to_str().unwrap()]].concat(),
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
        &[&["dpkg"], &force[..], &[v2.to_str().unwrap()]].concat(),
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
