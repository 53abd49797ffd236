//! `systemvm build`: ISOs checked with readers we did not write (isoinfo, bsdtar, pycdlib,
//! unzip, tar), reproducibility, layouts, and bad input that must change nothing.

use crate::common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn isoinfo(args: &[&str], iso: &Path) -> String {
    let mut all = args.to_vec();
    all.extend(["-i", iso.to_str().unwrap()]);
    tool("isoinfo", &all)
}

#[test]
fn iso_matches_payload_in_third_party_readers() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let (_, public) = ssh_keygen(dir.path(), "mgmt");
    let iso = dir.path().join("systemvm.iso");
    build_iso(&payload, &iso, &["--key", public.to_str().unwrap()]);

    let info = isoinfo(&["-d"], &iso);
    assert!(info.contains("Volume id: systemvm"), "{info}");
    assert!(info.contains("Joliet"), "no Joliet: {info}");
    assert!(info.contains("Rock Ridge"), "no Rock Ridge: {info}");
    assert!(
        info.contains("Application id: SYSTEMVM CLOUDSTACK 4.16.0.0"),
        "{info}"
    );

    // Rock Ridge listing: exactly the three members, read-only for all, owned by root.
    let listing = isoinfo(&["-R", "-l"], &iso);
    for name in ["agent.zip", "cloud-scripts.tgz", "authorized_keys"] {
        let line = listing
            .lines()
            .find(|l| l.trim_end().ends_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{listing}"));
        assert!(line.starts_with("-r--r--r--   1    0    0"), "{line}");
    }
    // Joliet names are the same (pycdlib reads the Joliet tree).
    let joliet = Command::new("/usr/bin/python3")
        .args(["-c", "import pycdlib,sys\ni=pycdlib.PyCdlib();i.open(sys.argv[1])\nprint(sorted(c.file_identifier().decode('utf-16-be').split(';')[0] for c in i.list_children(joliet_path='/') if not c.is_dot() and not c.is_dotdot()))"])
        .arg(&iso)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&joliet.stdout).trim(),
        "['agent.zip', 'authorized_keys', 'cloud-scripts.tgz']",
        "{}",
        String::from_utf8_lossy(&joliet.stderr)
    );

    // agent.zip: every payload file, mode 0555, same bytes.
    let x = dir.path().join("x");
    fs::create_dir(&x).unwrap();
    fs::write(x.join("agent.zip"), bsdtar_member(&iso, "agent.zip")).unwrap();
    let zipinfo = tool("zipinfo", &[x.join("agent.zip").to_str().unwrap()]);
    for name in ["_run.sh", "conf/agent.properties", "lib/cloud-agent.jar"] {
        let line = zipinfo
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name}:\n{zipinfo}"));
        assert!(line.starts_with("-r-xr-xr-x"), "{line}");
    }
    tool(
        "unzip",
        &[
            "-q",
            x.join("agent.zip").to_str().unwrap(),
            "-d",
            x.join("agent").to_str().unwrap(),
        ],
    );
    tool(
        "diff",
        &[
            "-r",
            payload.join("agent").to_str().unwrap(),
            x.join("agent").to_str().unwrap(),
        ],
    );

    // cloud-scripts.tgz: same files; 0755 under opt/cloud/bin, 0644 elsewhere, root-owned.
    fs::write(x.join("s.tgz"), bsdtar_member(&iso, "cloud-scripts.tgz")).unwrap();
    let tar = tool("tar", &["-tvzf", x.join("s.tgz").to_str().unwrap()]);
    let mode_of = |name: &str| {
        tar.lines()
            .find(|l| l.ends_with(name))
            .map(|l| l[..10].to_string())
    };
    assert_eq!(
        mode_of("opt/cloud/bin/patch.sh").as_deref(),
        Some("-rwxr-xr-x"),
        "{tar}"
    );
    assert_eq!(
        mode_of("etc/logrotate.d/cloud").as_deref(),
        Some("-rw-r--r--"),
        "{tar}"
    );
    assert!(tar.lines().all(|l| l.contains("root/root")), "{tar}");
    fs::create_dir(x.join("scripts")).unwrap();
    tool(
        "tar",
        &[
            "-xzf",
            x.join("s.tgz").to_str().unwrap(),
            "-C",
            x.join("scripts").to_str().unwrap(),
        ],
    );
    // Beside the payload's files, the tarball records the agent zip's sha256 (so an agent-only
    // change still changes the signature CloudStack compares) and the release's digest.
    let recorded = fs::read_to_string(x.join("scripts/usr/share/systemvm/agent.sha256")).unwrap();
    let agent = x.join("agent.zip");
    fs::write(&agent, bsdtar_member(&iso, "agent.zip")).unwrap();
    assert_eq!(recorded, format!("{}  agent.zip\n", sha256(&agent)));
    let digest = x.join("scripts/usr/share/systemvm/signature-digest");
    assert_eq!(fs::read_to_string(digest).unwrap(), "md5\n");
    fs::remove_dir_all(x.join("scripts/usr")).unwrap();
    tool(
        "diff",
        &[
            "-r",
            payload.join("scripts").to_str().unwrap(),
            x.join("scripts").to_str().unwrap(),
        ],
    );

    // authorized_keys reads exactly the key: CloudStack's injectkeys.sh `diff -q`s them.
    let keys = String::from_utf8(bsdtar_member(&iso, "authorized_keys")).unwrap();
    let wanted = fs::read_to_string(&public).unwrap();
    assert_eq!(keys, wanted);
}

#[test]
fn manifest_agrees_with_the_files() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let iso = dir.path().join("systemvm.iso");
    build_iso(&payload, &iso, &[]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("systemvm.iso.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["version"], "4.16.0.0");
    assert_eq!(manifest["layout"], "cloudstack");
    assert_eq!(manifest["iso"]["sha256"], sha256(&iso));
    assert_eq!(manifest["iso"]["size"], fs::metadata(&iso).unwrap().len());
    for member in manifest["members"].as_array().unwrap() {
        let name = member["name"].as_str().unwrap();
        let bytes = bsdtar_member(&iso, name);
        let extracted = dir.path().join(format!("m-{name}"));
        fs::write(&extracted, &bytes).unwrap();
        assert_eq!(member["sha256"], sha256(&extracted), "{name}");
        assert_eq!(member["size"], bytes.len());
        assert_eq!(member["mode"], "0444");
    }
    let sha512 = tool("sha512sum", &[iso.to_str().unwrap()]);
    assert_eq!(
        manifest["iso"]["sha512"],
        sha512.split_whitespace().next().unwrap()
    );
    // The ISO is world-readable, like the packaged one.
    assert_eq!(
        fs::metadata(&iso).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

/// Copy a tree creating entries in reverse order with other mtimes and modes' group bits.
fn scrambled_copy(from: &Path, to: &Path) {
    let mut entries: Vec<_> = fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries.reverse();
    fs::create_dir_all(to).unwrap();
    for path in entries {
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            scrambled_copy(&path, &dest);
        } else {
            fs::copy(&path, &dest).unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode | 0o020)).unwrap();
            tool(
                "touch",
                &["-d", "2001-02-03 04:05:06", dest.to_str().unwrap()],
            );
        }
    }
}

#[test]
fn same_inputs_give_the_same_bytes() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let copy = dir.path().join("copy");
    scrambled_copy(&payload, &copy);
    let (a, b, c) = (
        dir.path().join("a.iso"),
        dir.path().join("b.iso"),
        dir.path().join("c.iso"),
    );
    build_iso(&payload, &a, &[]);
    build_iso(&copy, &b, &[]);
    assert_eq!(
        fs::read(&a).unwrap(),
        fs::read(&b).unwrap(),
        "mtimes, modes or order leaked into the ISO"
    );
    assert_eq!(
        fs::read(dir.path().join("a.iso.manifest.json")).unwrap(),
        fs::read(dir.path().join("b.iso.manifest.json")).unwrap()
    );
    Test::new()
        .env("SOURCE_DATE_EPOCH", "1700000001")
        .args(["build", "--version", "4.16.0.0", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(&c)
        .success();
    assert_ne!(
        fs::read(&a).unwrap(),
        fs::read(&c).unwrap(),
        "the epoch must matter"
    );
}

#[test]
fn without_source_date_epoch_the_newest_payload_time_is_used() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let files = [
        "-type",
        "f",
        "-exec",
        "touch",
        "-d",
        "2019-06-07 08:09:10 UTC",
        "{}",
        "+",
    ];
    tool("find", &[&[payload.to_str().unwrap()][..], &files].concat());
    let iso = dir.path().join("s.iso");
    Test::new()
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(&iso)
        .success();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("s.iso.manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source_date_epoch"], 1_559_894_950);
    // The volume creation date (ECMA-119 8.4.26) and bsdtar's file dates say the same.
    let pvd = fs::read(&iso).unwrap()[16 * 2048..17 * 2048].to_vec();
    assert_eq!(&pvd[813..829], b"2019060708091000");
    let listing = tool("bsdtar", &["-tvf", iso.to_str().unwrap()]);
    assert!(
        listing.lines().all(|l| l.contains("Jun  7  2019")),
        "{listing}"
    );
}

#[test]
fn date_versions_follow_cosmic_rules() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let iso = dir.path().join("cosmic.iso");
    Test::new()
        .env("SOURCE_DATE_EPOCH", "1459713078") // 2016-04-03
        .args([
            "build",
            "--layout",
            "cosmic",
            "--version",
            "date",
            "--payload",
        ])
        .arg(&payload)
        .arg("-o")
        .arg(&iso)
        .success();
    let report = Test::new()
        .args(["inspect", "--output-format", "json"])
        .arg(&iso)
        .success()
        .json();
    assert_eq!(report["version"], "16.4.3");
    assert_eq!(report["layout"], "cosmic");
    let names: Vec<&str> = report["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cloud-scripts.tgz", "systemvm.zip"]);
}

#[test]
fn legacy_layout_has_systemvm_zip_and_keys() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let iso = dir.path().join("legacy.iso");
    build_iso(&payload, &iso, &["--version", "4.10.0.0"]);
    let listing = tool("bsdtar", &["-tf", iso.to_str().unwrap()]);
    let mut names: Vec<&str> = listing.lines().filter(|l| *l != ".").collect();
    names.sort();
    assert_eq!(
        names,
        ["authorized_keys", "cloud-scripts.tgz", "systemvm.zip"]
    );
}

#[test]
fn patch_files_layout_is_verifiable_with_sha512sum() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    fs::write(payload.join("patch-sysvms.sh"), "#!/bin/sh\necho patch\n").unwrap();
    let out = dir.path().join("patch");
    build_iso(&payload, &out, &["--version", "4.20.0.0"]);
    assert_eq!(
        listing(&out),
        [
            "agent.zip",
            "cloud-scripts.tgz",
            "manifest.json",
            "patch-sysvms.sh",
            "sha512sums"
        ]
    );
    let check = Command::new("sha512sum")
        .args(["-c", "sha512sums"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout)
            .matches(": OK")
            .count(),
        3
    );
    let mode = fs::metadata(out.join("patch-sysvms.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // Nothing but the output directory appeared beside it.
    assert_eq!(listing(dir.path()), ["patch", "payload"]);
}

#[test]
fn cosmic_layout_refuses_keys() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let (_, public) = ssh_keygen(dir.path(), "k");
    Test::new()
        .args(["build", "--layout", "cosmic", "--payload"])
        .arg(&payload)
        .arg("--key")
        .arg(&public)
        .arg("-o")
        .arg(dir.path().join("x.iso"))
        .fails(2)
        .one_error_line()
        .stderr_contains("cosmic layout has no authorized_keys");
}

/// Run a failing build and check nothing appeared in `out_dir`.
fn build_fails(args: &[&std::ffi::OsStr], out_dir: &Path, message: &str) {
    let before = listing(out_dir);
    Test::new()
        .arg("build")
        .args(args.iter().copied())
        .fails(2)
        .one_error_line()
        .stderr_contains(message);
    assert_eq!(listing(out_dir), before, "something was left behind");
}

#[test]
fn bad_payloads_are_refused_before_anything_is_written() {
    let dir = tempdir();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let iso = out.join("s.iso");
    let os = |s: &str| std::ffi::OsString::from(s);
    let run = |payload: &Path, message: &str| {
        build_fails(
            &[
                &os("--payload"),
                payload.as_os_str(),
                &os("-o"),
                iso.as_os_str(),
            ],
            &out,
            message,
        )
    };

    run(&dir.path().join("nope"), "does not exist");

    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    run(&empty, "is not a payload: expected a systemvm payload (agent/ and scripts/) or a CloudStack checkout");
    fs::create_dir(empty.join("scripts")).unwrap();
    run(&empty, "has no agent/ directory");
    fs::remove_dir(empty.join("scripts")).unwrap();
    // A CloudStack checkout missing systemvm/debian names it.
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("systemvm/agent")).unwrap();
    fs::create_dir_all(tree.join("scripts/util")).unwrap();
    run(
        &tree,
        "looks like a CloudStack checkout but has no systemvm/debian/",
    );

    let outside = small_payload(&dir.path().join("p1"));
    std::os::unix::fs::symlink("/etc/passwd", outside.join("agent/passwd")).unwrap();
    run(&outside, "outside the payload");

    let dotdot = small_payload(&dir.path().join("p2"));
    let up = format!("{}etc/hostname", "../".repeat(32));
    std::os::unix::fs::symlink(up, dotdot.join("scripts/etc/hostname")).unwrap();
    run(&dotdot, "outside the payload");

    let looping = small_payload(&dir.path().join("p3"));
    std::os::unix::fs::symlink("b", looping.join("agent/a")).unwrap();
    std::os::unix::fs::symlink("a", looping.join("agent/b")).unwrap();
    run(&looping, "broken or looping symlink");

    let fifo = small_payload(&dir.path().join("p4"));
    tool("mkfifo", &[fifo.join("agent/pipe").to_str().unwrap()]);
    run(&fifo, "named pipe");

    let huge = small_payload(&dir.path().join("p5"));
    let big = fs::File::create(huge.join("agent/huge.bin")).unwrap();
    big.set_len(4 * 1024 * 1024 * 1024 + 1).unwrap(); // sparse
    run(&huge, "below 4 GiB");
}

#[test]
fn bad_versions_keys_and_outputs_are_refused() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let iso = out.join("s.iso");
    let os = |s: &str| std::ffi::OsString::from(s);
    let base = |extra: &[&std::ffi::OsStr], message: &str| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            os("--payload").leak(),
            payload.as_os_str(),
            os("-o").leak(),
            iso.as_os_str(),
        ];
        let flag = std::ffi::OsStr::new("--version");
        if !extra.contains(&flag) {
            args.extend([flag, std::ffi::OsStr::new("4.16.0.0")]);
        }
        args.extend_from_slice(extra);
        build_fails(&args, &out, message)
    };
    base(&[&os("--version"), &os("4.16 beta")], "is not a version");

    let (private, _) = ssh_keygen(dir.path(), "k");
    base(&[&os("--key"), private.as_os_str()], "holds a private key");

    let garbage = dir.path().join("garbage.pub");
    fs::write(&garbage, "ssh-ed25519 not-base64!! x\n").unwrap();
    base(
        &[&os("--key"), garbage.as_os_str()],
        "not an OpenSSH public key",
    );

    let (_, a) = ssh_keygen(dir.path(), "a");
    let (_, b) = ssh_keygen(dir.path(), "b");
    base(
        &[
            &os("--key"),
            a.as_os_str(),
            &os("--key"),
            b.as_os_str(),
            &os("--key-area"),
            &os("256"),
        ],
        "the key area holds 256",
    );

    // No such output directory.
    build_fails(
        &[
            &os("--payload"),
            payload.as_os_str(),
            &os("-o"),
            out.join("missing/s.iso").as_os_str(),
        ],
        &out,
        "does not exist",
    );
}

#[test]
fn missing_xorriso_says_how_to_install_it() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let before = listing(dir.path());
    Test::new()
        .env("PATH", &bin)
        .env_remove("SYSTEMVM_XORRISO")
        .args(["build", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(dir.path().join("s.iso"))
        .fails(2)
        .one_error_line()
        .stderr_contains("apt-get install xorriso");
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn unwritable_output_directory_is_one_clear_error() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    let iso = ro.join("s.iso");
    // Root ignores mode bits, so make the directory read-only for real with a bind mount in a
    // private mount namespace; as another user, mode 0555 is enough.
    let is_root = tool("id", &["-u"]).trim() == "0";
    let out = if is_root {
        let script =
            r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@""#;
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&ro)
            .arg(BIN)
            .args(["build", "--version", "4.16.0.0", "--payload"])
            .arg(&payload)
            .arg("-o")
            .arg(&iso)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap()
    } else {
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        Command::new(BIN)
            .args(["build", "--payload"])
            .arg(&payload)
            .arg("-o")
            .arg(&iso)
            .output()
            .unwrap()
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot write in {}", ro.display())),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(listing(&ro).is_empty());
}

#[test]
fn xorriso_does_not_inherit_secret_environment_variables() {
    let dir = tempdir();
    let dump = dir.path().join("env.dump");
    let fake = dir.path().join("xorriso");
    let real = tool("sh", &["-c", "command -v xorriso"]);
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\nenv > '{}'\nexec '{}' \"$@\"\n",
            dump.display(),
            real.trim()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    Test::new()
        .env("SYSTEMVM_XORRISO", &fake)
        .env("CLOUDSTACK_API_KEY", "apikey-in-env-1234")
        .env("CLOUDSTACK_SECRET_KEY", "secret-in-env-5678")
        .args(["build", "--version", "4.16.0.0", "--payload"])
        .arg(small_payload(&dir.path().join("p")))
        .arg("-o")
        .arg(dir.path().join("out.iso"))
        .success();
    let env = fs::read_to_string(&dump).expect("the fake xorriso ran");
    assert!(env.contains("PATH="), "{env}");
    assert!(!env.contains("apikey-in-env-1234"), "{env}");
    assert!(!env.contains("secret-in-env-5678"), "{env}");
}
