//! The in-VM consumer of the ISO: `agent-payload/scripts/opt/cloud/bin/systemvm-patch`, run
//! against an ISO that `systemvm build` just made, the way a system VM runs it at boot, but
//! under a scratch root (`SYSTEMVM_ROOT`). Most tests hand it the ISO's files extracted with
//! bsdtar (`SYSTEMVM_ISO_DIR`) and the image itself for the version (`SYSTEMVM_ISO_DEVICE`);
//! one drives the device search and mount path with test doubles for mount and umount.

use crate::common;

use common::{bundled_payload, tempdir, tool, Test};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = "4.16.0.0";

fn patch_script() -> PathBuf {
    bundled_payload().join("scripts/opt/cloud/bin/systemvm-patch")
}

/// A freshly built and keyed ISO, and its files extracted beside it.
struct Fixture {
    dir: tempfile::TempDir,
    iso: PathBuf,
    files: PathBuf,
    public_key: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempdir();
        let key = dir.path().join("id_ed25519");
        tool(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "patch-test",
                "-f",
                key.to_str().expect("utf-8 path"),
            ],
        );
        let public = dir.path().join("id_ed25519.pub");
        let iso = dir.path().join("systemvm.iso");
        Test::new()
            .arg("build")
            .arg("--payload")
            .arg(bundled_payload())
            .args(["--version", VERSION])
            .arg("--key")
            .arg(&public)
            .arg("-o")
            .arg(&iso)
            .success();
        let files = dir.path().join("iso");
        extract(&iso, &files);
        let public_key = fs::read_to_string(&public)
            .expect("read public key")
            .trim()
            .to_string();
        Fixture {
            dir,
            iso,
            files,
            public_key,
        }
    }

    /// A new, empty root for the script to patch.
    fn root(&self, name: &str) -> PathBuf {
        let root = self.dir.path().join(name);
        fs::create_dir(&root).expect("create root");
        root
    }

    /// The agent archive of whichever layout the build chose.
    fn agent_zip(&self) -> PathBuf {
        let agent = self.files.join("agent.zip");
        if agent.exists() {
            agent
        } else {
            self.files.join("systemvm.zip")
        }
    }
}

/// Extract an ISO with bsdtar into a new directory, left writable so it can be cleaned up.
fn extract(iso: &Path, into: &Path) {
    fs::create_dir(into).expect("create extraction dir");
    tool(
        "bsdtar",
        &[
            "-xf",
            iso.to_str().expect("utf-8 path"),
            "-C",
            into.to_str().expect("utf-8 path"),
        ],
    );
    fs::set_permissions(into, fs::Permissions::from_mode(0o755)).expect("chmod extraction dir");
}

/// Copy an extracted ISO's files into a new directory as ordinary, writable files.
fn copy_files(from: &Path, to: &Path) {
    fs::create_dir(to).expect("create copy dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("file type").is_file() {
            let bytes = fs::read(entry.path()).expect("read ISO member");
            fs::write(to.join(entry.file_name()), bytes).expect("write copy");
        }
    }
}

fn md5(path: &Path) -> String {
    tool("md5sum", &[path.to_str().expect("utf-8 path")])
        .split_whitespace()
        .next()
        .expect("md5sum output")
        .to_string()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The script with only the test's environment: no override leaks in from the caller.
fn script(root: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg(patch_script())
        .env("SYSTEMVM_ROOT", root)
        .env_remove("SYSTEMVM_DEVICES")
        .env_remove("SYSTEMVM_ISO_DIR")
        .env_remove("SYSTEMVM_ISO_DEVICE");
    cmd
}

/// Run the script on extracted ISO files.
fn patch(root: &Path, files: &Path, device: &Path) -> Output {
    script(root)
        .env("SYSTEMVM_ISO_DIR", files)
        .env("SYSTEMVM_ISO_DEVICE", device)
        .output()
        .expect("run systemvm-patch")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "systemvm-patch exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

#[test]
fn applies_the_iso_then_a_second_run_changes_nothing() {
    let fx = Fixture::new();
    let root = fx.root("vm");
    let out = patch(&root, &fx.files, &fx.iso);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("systemvm-patch: "),
        "no prefixed log lines:\n{}",
        stderr(&out)
    );

    // 1. The key, owner-only.
    let keys = root.join("root/.ssh/authorized_keys");
    let installed = fs::read_to_string(&keys).expect("authorized_keys installed");
    assert!(
        installed.lines().any(|l| l.trim() == fx.public_key),
        "{} lacks the key {:?}:\n{installed}",
        keys.display(),
        fx.public_key
    );
    assert_eq!(mode(&keys), 0o600, "authorized_keys mode");
    assert_eq!(mode(&root.join("root/.ssh")), 0o700, ".ssh mode");

    // 2. cloud-scripts.tgz unpacked at the root, its md5 recorded.
    let unpacked = root.join("opt/cloud/bin/systemvm-patch");
    assert_eq!(mode(&unpacked), 0o755, "{}", unpacked.display());
    let cache = root.join("var/cache/cloud");
    let signature = cache.join("cloud-scripts-signature");
    assert_eq!(
        read_trimmed(&signature),
        md5(&fx.files.join("cloud-scripts.tgz"))
    );

    // 3. The agent, executable, its md5 recorded.
    let run = root.join("usr/local/cloud/systemvm/_run.sh");
    assert!(run.is_file(), "{} missing", run.display());
    assert_ne!(mode(&run) & 0o111, 0, "_run.sh not executable");
    assert_eq!(
        read_trimmed(&cache.join("agent-signature")),
        md5(&fx.agent_zip())
    );

    // 4. The version from the volume's application id.
    assert_eq!(read_trimmed(&cache.join("systemvm-iso.version")), VERSION);

    // Second run with the same ISO: nothing is extracted again.
    let removed = root.join("var/www/html/index.html");
    fs::remove_file(&removed).expect("index.html was unpacked");
    let out = patch(&root, &fx.files, &fx.iso);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("cloud-scripts.tgz is up to date"),
        "second run does not say it is up to date:\n{err}"
    );
    assert!(
        err.contains("nothing to do"),
        "second run claims changes:\n{err}"
    );
    assert!(!removed.exists(), "the second run extracted the tgz again");
    assert_eq!(
        read_trimmed(&signature),
        md5(&fx.files.join("cloud-scripts.tgz"))
    );
}

#[test]
fn a_key_written_by_the_host_wins_over_the_isos() {
    let fx = Fixture::new();
    let root = fx.root("vm");
    let cache = root.join("var/cache/cloud");
    fs::create_dir_all(&cache).expect("create cache");
    let host_key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostWrittenKeyHostWrittenKeyHostWrittenK host";
    fs::write(cache.join("authorized_keys"), format!("{host_key}\n")).expect("write host key");

    let out = patch(&root, &fx.files, &fx.iso);
    assert_code(&out, 0);
    let keys = root.join("root/.ssh/authorized_keys");
    let installed = fs::read_to_string(&keys).expect("authorized_keys installed");
    assert_eq!(
        installed.trim(),
        host_key,
        "the ISO's key was installed instead"
    );
    assert!(!installed.contains(&fx.public_key));
    assert_eq!(mode(&keys), 0o600, "authorized_keys mode");
}

#[test]
fn a_corrupt_scripts_archive_fails_and_keeps_the_old_signature() {
    let fx = Fixture::new();
    let root = fx.root("vm");
    assert_code(&patch(&root, &fx.files, &fx.iso), 0);
    let signature = root.join("var/cache/cloud/cloud-scripts-signature");
    let before = read_trimmed(&signature);

    let bad = fx.dir.path().join("bad");
    copy_files(&fx.files, &bad);
    let tgz = fs::read(bad.join("cloud-scripts.tgz")).expect("read tgz");
    fs::write(bad.join("cloud-scripts.tgz"), &tgz[..tgz.len() / 2]).expect("truncate tgz");

    let out = patch(&root, &bad, &fx.iso);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("systemvm-patch: error:") && l.contains("cloud-scripts.tgz")),
        "no error naming cloud-scripts.tgz:\n{err}"
    );
    assert_eq!(read_trimmed(&signature), before, "signature changed");
}

#[test]
fn without_a_cd_the_vm_boots_anyway() {
    let dir = tempdir();
    let root = dir.path().join("vm");
    fs::create_dir(&root).expect("create root");
    let devices = format!(
        "{} {}",
        dir.path().join("no-xvdd").display(),
        dir.path().join("no-cdrom").display()
    );
    let out = script(&root)
        .env("SYSTEMVM_DEVICES", &devices)
        .output()
        .expect("run systemvm-patch");
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("systemvm-patch: no systemvm ISO found"),
        "does not say no CD was found:\n{err}"
    );
    assert!(
        !root.join("root/.ssh").exists(),
        "keys written without an ISO"
    );
    assert!(
        !root.join("usr/local/cloud").exists(),
        "agent written without an ISO"
    );
}

/// Test doubles for `mount -t iso9660 -o ro DEV DIR` (unpacks the image with bsdtar and
/// records DIR as mounted) and `umount [-l] DIR` (empties DIR and clears the record).
fn fake_mount_tools(bin: &Path, state: &Path) {
    fs::create_dir(bin).expect("create shim dir");
    let mount = format!(
        r#"#!/bin/sh
[ "$1 $2 $3 $4" = "-t iso9660 -o ro" ] || {{ echo "mount: unexpected options: $*" >&2; exit 2; }}
bsdtar -xf "$5" -C "$6" 2>/dev/null || {{ echo "mount: $6: wrong fs type on $5" >&2; exit 32; }}
echo "$6" >'{state}'
"#,
        state = state.display()
    );
    let umount = format!(
        r#"#!/bin/sh
for dir; do :; done
chmod -R u+w "$dir" && find "$dir" -mindepth 1 -delete && rm -f '{state}'
"#,
        state = state.display()
    );
    for (name, text) in [("mount", mount), ("umount", umount)] {
        let path = bin.join(name);
        fs::write(&path, text).expect("write shim");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod shim");
    }
}

#[test]
fn finds_the_cd_mounts_it_read_only_and_always_unmounts_it() {
    let fx = Fixture::new();
    let bin = fx.dir.path().join("bin");
    let state = fx.dir.path().join("mounted");
    fake_mount_tools(&bin, &state);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let root = fx.root("vm");
    let run = |device: &Path| {
        script(&root)
            .env("PATH", &path)
            .env(
                "SYSTEMVM_DEVICES",
                format!(
                    "{} {}",
                    fx.dir.path().join("no-xvdd").display(),
                    device.display()
                ),
            )
            .output()
            .expect("run systemvm-patch")
    };

    let out = run(&fx.iso);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("read-only at"),
        "no mount logged:\n{}",
        stderr(&out)
    );
    assert!(!state.exists(), "the CD was left mounted");
    assert!(root.join("usr/local/cloud/systemvm/_run.sh").is_file());
    assert_eq!(
        read_trimmed(&root.join("var/cache/cloud/systemvm-iso.version")),
        VERSION
    );

    // An ISO whose scripts archive is corrupt: the run fails and still unmounts.
    let bad = fx.dir.path().join("bad");
    copy_files(&fx.files, &bad);
    fs::write(bad.join("cloud-scripts.tgz"), b"not a tarball\n").expect("corrupt tgz");
    let bad_iso = fx.dir.path().join("bad.iso");
    tool(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-r",
            "-o",
            bad_iso.to_str().expect("utf-8 path"),
            bad.to_str().expect("utf-8 path"),
        ],
    );
    let out = run(&bad_iso);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("cloud-scripts.tgz"),
        "{}",
        stderr(&out)
    );
    assert!(!state.exists(), "the CD was left mounted after a failure");
}

#[test]
fn live_patch_files_apply_through_patch_sysvms() {
    let dir = tempdir();
    let out = dir.path().join("patch-files");
    Test::new()
        .arg("build")
        .arg("--payload")
        .arg(bundled_payload())
        .args(["--layout", "patch-files", "--version", "4.20.0.0"])
        .arg("-o")
        .arg(&out)
        .success();
    let tgz_md5 = md5(&out.join("cloud-scripts.tgz"));

    // The management server copies the three files into /var/cache/cloud and runs the script.
    let root = dir.path().join("vm");
    let cache = root.join("var/cache/cloud");
    fs::create_dir_all(&cache).expect("create cache");
    for name in ["agent.zip", "cloud-scripts.tgz", "patch-sysvms.sh"] {
        fs::copy(out.join(name), cache.join(name)).expect("copy patch file");
    }
    let run = Command::new("sh")
        .arg(cache.join("patch-sysvms.sh"))
        .env("SYSTEMVM_ROOT", &root)
        .env_remove("SYSTEMVM_DEVICES")
        .env_remove("SYSTEMVM_ISO_DIR")
        .env_remove("SYSTEMVM_ISO_DEVICE")
        .output()
        .expect("run patch-sysvms.sh");
    assert_code(&run, 0);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        format!("version:{tgz_md5}\n"),
        "stderr:\n{}",
        stderr(&run)
    );
    assert_eq!(
        read_trimmed(&cache.join("cloud-scripts-signature")),
        tgz_md5
    );
    assert_eq!(mode(&root.join("opt/cloud/bin/systemvm-patch")), 0o755);
    assert!(root.join("usr/local/cloud/systemvm/_run.sh").is_file());
    // Cleaned up as CloudStack's script does.
    assert!(root.join("usr/share/cloud/cloud-scripts.tgz").is_file());
    assert!(!cache.join("agent.zip").exists());
    assert!(!cache.join("patch-sysvms.sh").exists());
}
