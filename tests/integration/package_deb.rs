//! `systemvm package deb`: checked with dpkg-deb and installed with `dpkg --root` into a
//! temp root, where it diverts the ISO another package shipped and restores it on removal.

use crate::common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

fn package(iso: &Path, out: &Path, extra: &[&str]) -> Run {
    Test::new()
        .args(["package", "deb"])
        .arg(iso)
        .arg("-o")
        .arg(out)
        .args(extra.iter().copied())
        .success()
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    let out = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--force-not-root"])
        .args(args)
        .output()
        .expect("run dpkg");
    assert!(
        out.status.success(),
        "dpkg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn package_installs_diverts_and_removes_cleanly() {
    let dir = tempdir();
    let iso = dir.path().join("systemvm.iso");
    build_iso(&small_payload(dir.path()), &iso, &[]);
    let deb = dir.path().join("systemvm-iso.deb");
    package(&iso, &deb, &[]);

    let info = tool("dpkg-deb", &["--info", deb.to_str().unwrap()]);
    for field in [
        "Package: systemvm-iso",
        "Version: 4.16.0.0",
        "Architecture: all",
        "Installed-Size:",
    ] {
        assert!(info.contains(field), "{field} missing:\n{info}");
    }
    assert!(
        info.contains(&sha256(&iso)),
        "the description names the ISO's sha256"
    );
    let contents = tool("dpkg-deb", &["--contents", deb.to_str().unwrap()]);
    let paths: Vec<&str> = contents
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "./",
            "usr/",
            "usr/share/",
            "usr/share/cloudstack-common/",
            "usr/share/cloudstack-common/vms/",
            "usr/share/cloudstack-common/vms/systemvm.iso"
        ]
    );
    assert!(
        contents.lines().all(|l| l.contains("root/root")),
        "{contents}"
    );
    assert!(contents.lines().last().unwrap().starts_with("-rw-r--r--"));

    let x = dir.path().join("x");
    tool(
        "dpkg-deb",
        &["--extract", deb.to_str().unwrap(), x.to_str().unwrap()],
    );
    assert_eq!(
        fs::read(x.join("usr/share/cloudstack-common/vms/systemvm.iso")).unwrap(),
        fs::read(&iso).unwrap()
    );

    // A root where another package's ISO already sits at the path.
    let root = dir.path().join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "usr/share/cloudstack-common/vms",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let installed = root.join("usr/share/cloudstack-common/vms/systemvm.iso");
    fs::write(&installed, "the ISO cloudstack-common shipped").unwrap();
    dpkg(&root, &["-i", deb.to_str().unwrap()]);
    assert_eq!(fs::read(&installed).unwrap(), fs::read(&iso).unwrap());
    assert_eq!(
        fs::read_to_string(root.join("usr/share/cloudstack-common/vms/systemvm.iso.distrib"))
            .unwrap(),
        "the ISO cloudstack-common shipped"
    );
    assert!(dpkg(&root, &["-s", "systemvm-iso"]).contains("Status: install ok installed"));
    dpkg(&root, &["-r", "systemvm-iso"]);
    assert_eq!(
        fs::read_to_string(&installed).unwrap(),
        "the ISO cloudstack-common shipped"
    );
}

#[test]
fn package_is_reproducible_and_maps_versions() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let iso = dir.path().join("systemvm.iso");
    Test::new()
        .args(["build", "--version", "4.5.0-SNAPSHOT", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(&iso)
        .success();
    let (a, b) = (dir.path().join("a.deb"), dir.path().join("b.deb"));
    package(
        &iso,
        &a,
        &[
            "--install-path",
            "/opt/cosmic/agent/vms/systemvm.iso",
            "--no-divert",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    package(
        &iso,
        &b,
        &[
            "--install-path",
            "/opt/cosmic/agent/vms/systemvm.iso",
            "--no-divert",
        ],
    );
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&b).unwrap(),
        "two packages of one ISO differ"
    );
    let info = tool("dpkg-deb", &["--field", a.to_str().unwrap(), "Version"]);
    assert_eq!(info.trim(), "4.5.0~SNAPSHOT");
    // Debian's own comparison agrees that the snapshot comes before the release.
    let lt = Command::new("dpkg")
        .args(["--compare-versions", "4.5.0~SNAPSHOT", "lt", "4.5.0"])
        .status()
        .unwrap();
    assert!(lt.success());
    let contents = tool("dpkg-deb", &["--contents", a.to_str().unwrap()]);
    assert!(
        contents.contains(" opt/cosmic/agent/vms/systemvm.iso"),
        "{contents}"
    );
    let control = tool("dpkg-deb", &["--info", a.to_str().unwrap()]);
    assert!(
        !control.contains("preinst"),
        "--no-divert must not add maintainer scripts"
    );
}

#[test]
fn bad_package_input_is_refused() {
    let dir = tempdir();
    let not_iso = dir.path().join("x.iso");
    fs::write(&not_iso, "text").unwrap();
    Test::new()
        .args(["package", "deb"])
        .arg(&not_iso)
        .current_dir(dir.path())
        .fails(2)
        .one_error_line()
        .stderr_contains("not an ISO 9660 image");
    let iso = dir.path().join("systemvm.iso");
    build_iso(&small_payload(dir.path()), &iso, &[]);
    let before = listing(dir.path());
    Test::new()
        .args(["package", "deb", "--name", "Bad Name"])
        .arg(&iso)
        .current_dir(dir.path())
        .fails(2)
        .one_error_line()
        .stderr_contains("not a Debian package name");
    Test::new()
        .args(["package", "deb", "--install-path", "relative/x.iso"])
        .arg(&iso)
        .current_dir(dir.path())
        .fails(2)
        .one_error_line();
    // A second line would be a control field of its own.
    Test::new()
        .args(["package", "deb", "--maintainer", "me <me@x>\nDepends: evil"])
        .arg(&iso)
        .current_dir(dir.path())
        .fails(2)
        .one_error_line()
        .stderr_contains("--maintainer \"me <me@x>\\nDepends: evil\" must be one line");
    assert_eq!(listing(dir.path()), before);
}
