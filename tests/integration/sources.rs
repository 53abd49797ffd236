//! `systemvm build` from the other payload sources: a CloudStack checkout (a small one made
//! here, in CloudStack's shape; `tests/oracle.rs` uses the real trees), `--agent-jars-from`,
//! and `--from` with overlays (the hotfix path). Bad input: one line, exit 2, nothing written.

use crate::common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A checkout in CloudStack's shape: `systemvm/debian`, `systemvm/agent`, `scripts/util`.
fn checkout(dir: &Path) -> PathBuf {
    let tree = dir.join("cloudstack");
    for (path, text) in [
        (
            "systemvm/debian/opt/cloud/bin/update_config.py",
            "#!/usr/bin/python3\n",
        ),
        (
            "systemvm/debian/etc/logrotate.d/cloud",
            "/var/log/cloud.log {}\n",
        ),
        ("systemvm/agent/scripts/_run.sh", "#!/bin/sh\n"),
        ("systemvm/agent/conf/agent.properties", "type=secstorage\n"),
        ("systemvm/agent/conf/unused.txt", "not in the descriptor\n"),
        ("systemvm/patch-sysvms.sh", "#!/bin/sh\necho version:x\n"),
        ("scripts/util/keystore-setup", "#!/bin/sh\n"),
        ("scripts/util/qemu-ifup", "#!/bin/sh\n"),
        ("scripts/storage/secondary/createtmplt.sh", "#!/bin/sh\n"),
    ] {
        let file = tree.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }
    tree
}

fn jar_zip(dir: &Path) -> PathBuf {
    fs::write(dir.join("cloud-agent.jar"), "jar bytes").unwrap();
    let zip = dir.join("jars.zip");
    let status = Command::new("zip")
        .arg("-q")
        .arg(&zip)
        .arg("cloud-agent.jar")
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
    zip
}

fn members(zip: &Path) -> Vec<String> {
    let listing = tool("zipinfo", &["-1", zip.to_str().unwrap()]);
    listing.lines().map(str::to_string).collect()
}

#[test]
fn a_checkout_is_assembled_as_maven_does() {
    let dir = tempdir();
    let tree = checkout(dir.path());
    let out = dir.path().join("patch-files");
    Test::new()
        .arg("build")
        .arg("--payload")
        .arg(&tree)
        .args(["--version", "4.20.0.0", "--agent-jars-from"])
        .arg(jar_zip(dir.path()))
        .arg("-o")
        .arg(&out)
        .success();
    let agent = members(&out.join("agent.zip"));
    for wanted in [
        "_run.sh",
        "cloud-agent.jar",
        "conf/agent.properties",
        "scripts/util/keystore-setup",
        "scripts/storage/secondary/createtmplt.sh",
    ] {
        assert!(
            agent.iter().any(|m| m == wanted),
            "{wanted} not in {agent:?}"
        );
    }
    assert!(!agent
        .iter()
        .any(|m| m.contains("unused") || m.contains("qemu-ifup")));
    let tar = tool(
        "tar",
        &["-tvzf", out.join("cloud-scripts.tgz").to_str().unwrap()],
    );
    let mode = |name: &str| {
        let line = tar.lines().find(|l| l.ends_with(name));
        line.unwrap_or_else(|| panic!("{name} not in {tar}"))[..10].to_string()
    };
    assert_eq!(mode("opt/cloud/bin/update_config.py"), "-rwxr-xr-x");
    assert_eq!(mode("opt/cloud/bin/keystore-setup"), "-rwxr-xr-x");
    assert_eq!(mode("etc/logrotate.d/cloud"), "-rw-r--r--");
    let script = fs::read_to_string(out.join("patch-sysvms.sh")).unwrap();
    assert_eq!(script, "#!/bin/sh\necho version:x\n");
}

#[test]
fn a_checkout_without_jars_says_so_loudly() {
    let dir = tempdir();
    let tree = checkout(dir.path());
    Test::new()
        .arg("build")
        .arg("--payload")
        .arg(&tree)
        .args(["--version", "4.16.0.0", "-o"])
        .arg(dir.path().join("s.iso"))
        .success()
        .stderr_contains("has no agent JARs")
        .stderr_contains("--agent-jars-from");
}

#[test]
fn from_with_an_overlay_keeps_the_jars_and_changes_the_script() {
    let dir = tempdir();
    let tree = checkout(dir.path());
    let first = dir.path().join("first.iso");
    Test::new()
        .arg("build")
        .arg("--payload")
        .arg(&tree)
        .args(["--version", "4.16.0.0", "--agent-jars-from"])
        .arg(jar_zip(dir.path()))
        .arg("-o")
        .arg(&first)
        .success();
    let overlay = dir.path().join("hotfix");
    fs::create_dir_all(overlay.join("opt/cloud/bin")).unwrap();
    fs::write(overlay.join("opt/cloud/bin/update_config.py"), "# fixed\n").unwrap();
    let second = dir.path().join("second.iso");
    Test::new()
        .arg("build")
        .arg("--from")
        .arg(&first)
        .arg("--overlay-scripts")
        .arg(&overlay)
        .args(["--version", "4.16.0.0", "-o"])
        .arg(&second)
        .success();
    let x = dir.path().join("x");
    fs::create_dir(&x).unwrap();
    for (iso, name) in [(&first, "a"), (&second, "b")] {
        fs::write(
            x.join(format!("{name}.zip")),
            bsdtar_member(iso, "agent.zip"),
        )
        .unwrap();
        fs::write(
            x.join(format!("{name}.tgz")),
            bsdtar_member(iso, "cloud-scripts.tgz"),
        )
        .unwrap();
    }
    let jar = |name: &str| {
        tool(
            "unzip",
            &["-p", x.join(name).to_str().unwrap(), "cloud-agent.jar"],
        )
    };
    assert_eq!(jar("a.zip"), jar("b.zip"));
    let script = |name: &str| {
        let tgz = x.join(name);
        tool(
            "tar",
            &[
                "-xzOf",
                tgz.to_str().unwrap(),
                "opt/cloud/bin/update_config.py",
            ],
        )
    };
    assert_eq!(script("b.tgz"), "# fixed\n");
    assert_eq!(script("a.tgz"), "#!/usr/bin/python3\n");
    // One copy of each of our own records, not the old build's and the new one's.
    let list = tool("tar", &["-tzf", x.join("b.tgz").to_str().unwrap()]);
    assert_eq!(
        list.lines().filter(|l| l.ends_with("agent.sha256")).count(),
        1
    );
}

/// A build that must fail with one line naming `needle`, leaving `dir` as it was.
fn refused(dir: &Path, args: &[&std::ffi::OsStr], needle: &str) {
    let before = listing(dir);
    Test::new()
        .arg("build")
        .args(args.iter().copied())
        .fails(2)
        .one_error_line()
        .stderr_contains(needle);
    assert_eq!(listing(dir), before, "something was written");
}

#[test]
fn bad_sources_change_nothing() {
    let dir = tempdir();
    let tree = checkout(dir.path());
    let out = dir.path().join("out.iso");
    let not_zip = dir.path().join("agent.zip");
    fs::write(&not_zip, "not a zip").unwrap();
    let os = std::ffi::OsStr::new;
    let base = [os("--version"), os("4.16.0.0"), os("-o"), out.as_os_str()];
    let with = |extra: &[&'static std::ffi::OsStr]| -> Vec<&std::ffi::OsStr> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };
    let tree_arg: &'static std::ffi::OsStr =
        Box::leak(tree.clone().into_os_string().into_boxed_os_str());
    let not_zip_arg: &'static std::ffi::OsStr =
        Box::leak(not_zip.into_os_string().into_boxed_os_str());
    refused(
        dir.path(),
        &with(&[
            os("--payload"),
            tree_arg,
            os("--agent-jars-from"),
            not_zip_arg,
        ]),
        "not a zip",
    );
    // An overlay whose file is a symlink out of it.
    let overlay = dir.path().join("overlay");
    fs::create_dir(&overlay).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", overlay.join("passwd")).unwrap();
    let first = dir.path().join("first.iso");
    build_iso(&small_payload(&dir.path().join("p")), &first, &[]);
    let first_arg: &'static std::ffi::OsStr = Box::leak(first.into_os_string().into_boxed_os_str());
    let overlay_arg: &'static std::ffi::OsStr =
        Box::leak(overlay.into_os_string().into_boxed_os_str());
    refused(
        dir.path(),
        &with(&[
            os("--from"),
            first_arg,
            os("--overlay-scripts"),
            overlay_arg,
        ]),
        "outside the payload",
    );
    // A version that contradicts an explicit layout.
    refused(
        dir.path(),
        &with(&[os("--payload"), tree_arg, os("--layout"), os("patch-files")]),
        "does not fit version 4.16.0.0",
    );
}
