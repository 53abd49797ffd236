//! CloudStack's own code as the oracle. For each CloudStack tree (`SYSTEMVM_CLOUDSTACK_TREES`,
//! colon-separated, else `../shared/cloudstack/*` beside the project) we build from that tree
//! with `systemvm build --payload <tree>` and run the tree's own system VM consumers,
//! unmodified, in a throwaway root: a mount namespace and a chroot whose `/usr` is the host's
//! behind an overlay. Nothing is copied from CloudStack into the project; its scripts are read
//! from the tree at run time.
//!
//! - ISO releases (up to 4.16): `cloud-early-config`'s `patch()` finds the CD and unpacks
//!   `cloud-scripts.tgz`, then `bootstrap.sh`'s `patch()` unpacks the agent for a secondary
//!   storage VM. The kernel here has no ISO 9660, so the one edge we emulate is `mount`: a
//!   stub on the VM's PATH bind-mounts the ISO's files, extracted by xorriso, read-only.
//! - Patch-file releases (4.17+): the host's copies in `/var/cache/cloud`, then the same two
//!   `patch()` functions and `cleanup()`, then the host's check `patched.sh
//!   "/opt/cloud/bin/keystore*"`.
//!
//! Then an agent-only change: on ISO releases a second boot must unpack the new agent; on
//! 4.17+ a reboot keeps what the VM has (CloudStack's `patch()` first compares the signature
//! with the template's stored tarball), so the change goes through a live patch, the tree's
//! `patch-sysvms.sh` read by the management server's rule. Each time the VM's recorded
//! signature must be the md5 CloudStack computes.
//!
//! - Cosmic (`../shared/cosmic/systemvm-packer`, or `SYSTEMVM_COSMIC_TREE`): its
//!   `files/startup/patch-scripts.sh` against a Cosmic-layout ISO, `/dev/cdrom` being the image
//!   itself (its `blkid` probes it).
//!
//! The live-patch protocol (the management server's rule for `patch-sysvms.sh` output) is
//! checked against the bundled payload's script for an md5 and a sha512 release.

use crate::common;

use common::{bundled_payload, tempdir, tool, Test};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The CloudStack trees to test against; empty (and one line said) when there are none.
fn trees() -> Vec<PathBuf> {
    let listed = match std::env::var_os("SYSTEMVM_CLOUDSTACK_TREES") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => {
            let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cloudstack");
            let mut found: Vec<PathBuf> = fs::read_dir(&shared)
                .map(|dir| dir.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            found.sort();
            found
        }
    };
    let trees: Vec<PathBuf> = listed
        .into_iter()
        .filter(|t| t.join("systemvm/debian").is_dir())
        .collect();
    if trees.is_empty() {
        eprintln!("skipped: no CloudStack trees (set SYSTEMVM_CLOUDSTACK_TREES or put them in ../shared/cloudstack)");
    }
    trees
}

/// The release a tree is, from `systemvm/pom.xml`: its parent's `<version>`.
fn tree_version(tree: &Path) -> String {
    let pom = fs::read_to_string(tree.join("systemvm/pom.xml")).expect("systemvm/pom.xml");
    let parent = &pom[pom.find("<parent>").expect("a <parent> in the pom")..];
    let start = parent.find("<version>").expect("a parent <version>") + "<version>".len();
    let end = parent[start..].find('<').expect("</version>") + start;
    parent[start..end].trim().to_string()
}

/// Whether a release attaches the ISO (up to 4.16) rather than copying patch files.
fn is_iso_release(version: &str) -> bool {
    let mut parts = version
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) <= (4, 16)
}

fn md5(path: &Path) -> String {
    let out = tool("md5sum", &[path.to_str().expect("utf-8 path")]);
    out.split_whitespace()
        .next()
        .expect("md5sum output")
        .to_string()
}

/// An agent zip holding one JAR whose content is `content`: the `--agent-jars-from` source
/// standing in for Maven's artifacts.
fn jar_source(dir: &Path, content: &str) -> PathBuf {
    let work = dir.join(format!("jars-{content}"));
    fs::create_dir_all(&work).unwrap();
    fs::write(work.join("cloud-agent.jar"), content).unwrap();
    let zip = dir.join(format!("agent-{content}.zip"));
    let status = Command::new("zip")
        .arg("-q")
        .arg(&zip)
        .arg("cloud-agent.jar")
        .current_dir(&work)
        .status()
        .expect("run zip");
    assert!(status.success());
    zip
}

/// `systemvm build --payload <tree>` for the tree's release, JARs from `jars`.
fn build_from_tree(tree: &Path, version: &str, jars: &Path, out: &Path) {
    Test::new()
        .arg("build")
        .arg("--payload")
        .arg(tree)
        .args(["--version", version, "--agent-jars-from"])
        .arg(jars)
        .arg("-o")
        .arg(out)
        .success();
}

/// A throwaway system VM root: the tree's `systemvm/debian` installed at `/` as CloudStack's
/// template build does, `/usr/share/cloud` (where the template keeps its scripts tarball),
/// `/sbin/ifup` (ifupdown, which `cloud-early-config` requires), the
/// boot arguments of a secondary storage VM, and the devices the scripts look for.
fn vm_root(dir: &Path, tree: Option<&Path>) -> PathBuf {
    let root = dir.join("vm");
    for d in [
        "usr",
        "sbin",
        "dev",
        "etc/alternatives",
        "media",
        "tmp",
        "root/.ssh",
        "var/log",
        "var/cache/cloud",
        "cdrom",
        "overlay/upper/share/cloud",
        "overlay/work",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (link, to) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(to, root.join(link)).unwrap();
    }
    let awk = fs::read_link("/etc/alternatives/awk").unwrap_or_else(|_| "/usr/bin/mawk".into());
    std::os::unix::fs::symlink(awk, root.join("etc/alternatives/awk")).unwrap();
    for f in ["passwd", "group"] {
        fs::copy(Path::new("/etc").join(f), root.join("etc").join(f)).unwrap();
    }
    if let Some(tree) = tree {
        let debian = format!("{}/.", tree.join("systemvm/debian").display());
        tool("cp", &["-a", &debian, root.to_str().unwrap()]);
    }
    executable(&root.join("sbin/ifup"), "#!/bin/sh\nexit 0\n");
    fs::write(root.join("dev/cdrom"), "").unwrap();
    fs::write(
        root.join("var/cache/cloud/cmdline"),
        "template=domP type=secstorage host=169.254.0.1 name=s-1-VM\n",
    )
    .unwrap();
    root
}

/// Where a VM path is on the host: what the VM wrote under `/usr` is in the overlay's upper.
fn vm_path(root: &Path, path: &str) -> PathBuf {
    match path.strip_prefix("usr/") {
        Some(rest) => root.join("overlay/upper").join(rest),
        None => root.join(path),
    }
}

fn executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Run `driver` (bash) inside the VM root, in a private mount namespace: `/usr` is the host's
/// under a writable overlay, `/usr/local/sbin` holds the stubs (`mount` of the CD binds the
/// ISO's extracted files read-only; `systemctl` does nothing), `/dev/null` is the host's.
fn run_in_vm(root: &Path, driver: &str) -> String {
    let setup = r#"set -e
R=$1
mount -t overlay overlay -o lowerdir=/usr,upperdir=$R/overlay/upper,workdir=$R/overlay/work $R/usr
mkdir -p $R/usr/local/sbin
printf '#!/bin/sh\nfor a; do last=$a; done\nexec /usr/bin/mount --bind -o ro /cdrom "$last"\n' >$R/usr/local/sbin/mount
printf '#!/bin/sh\nexit 0\n' >$R/usr/local/sbin/systemctl
chmod 755 $R/usr/local/sbin/mount $R/usr/local/sbin/systemctl
touch $R/dev/null && mount --bind /dev/null $R/dev/null
exec chroot $R /usr/bin/bash -c "$2"
"#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", setup, "sh"])
        .arg(root)
        .arg(driver)
        .output()
        .expect("run unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the VM's scripts failed:\n{text}");
    text
}

/// CloudStack's boot: `cloud-early-config`'s functions without its final `start` call, then
/// `patch`; `bootstrap.sh`'s without its final `bootstrap` call, then `config_guest` (no
/// hypervisor detected: it only reads the type from the boot arguments) and `patch`; for
/// patch-file releases also `cleanup`. The outcome is checked by the caller. Each script is checked to end with that call.
fn boot(root: &Path, iso_release: bool) -> String {
    for (script, last) in [
        ("cloud-early-config", "start"),
        ("bootstrap.sh", "bootstrap"),
    ] {
        let text = fs::read_to_string(root.join("opt/cloud/bin/setup").join(script)).unwrap();
        assert_eq!(
            text.trim_end().lines().last(),
            Some(last),
            "{script} changed shape"
        );
    }
    let cleanup = if iso_release { "" } else { "cleanup" };
    let driver = format!(
        r#"sed '$d' /opt/cloud/bin/setup/cloud-early-config >/tmp/early
sed '$d' /opt/cloud/bin/setup/bootstrap.sh >/tmp/bootstrap
. /tmp/early
patch
echo "early patch: $?"
. /tmp/bootstrap
config_guest
patch
echo "bootstrap patch: $?"
. /tmp/early
{cleanup}
"#
    );
    run_in_vm(root, &driver)
}

/// Extract an ISO's files where the `mount` stub binds them.
fn insert_cd(root: &Path, iso: &Path) {
    let cdrom = root.join("cdrom");
    let _ = fs::remove_dir_all(&cdrom);
    fs::create_dir_all(&cdrom).unwrap();
    tool(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso.to_str().unwrap(),
            "-extract",
            "/",
            cdrom.to_str().unwrap(),
        ],
    );
}

/// What the host copies into `/var/cache/cloud` before a 4.17+ VM boots (mode 0755).
fn copy_patch_files(root: &Path, files: &Path) {
    for name in ["agent.zip", "cloud-scripts.tgz", "patch-sysvms.sh"] {
        let to = root.join("var/cache/cloud").join(name);
        fs::copy(files.join(name), &to).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Build for `tree`, boot a VM root with it, then apply an agent-only change: by a second
/// boot (ISO releases) or by a live patch (patch-file releases).
fn boot_twice(tree: &Path) {
    let version = tree_version(tree);
    let iso_release = is_iso_release(&version);
    let dir = tempdir();
    let root = vm_root(dir.path(), Some(tree));
    let mut scripts_md5 = Vec::new();
    for jar in ["v1", "v2"] {
        let jars = jar_source(dir.path(), jar);
        let out = dir.path().join(format!("out-{jar}"));
        let (tgz, log): (PathBuf, String) = if iso_release {
            let iso = out.with_extension("iso");
            build_from_tree(tree, &version, &jars, &iso);
            insert_cd(&root, &iso);
            (root.join("cdrom/cloud-scripts.tgz"), boot(&root, true))
        } else {
            build_from_tree(tree, &version, &jars, &out);
            copy_patch_files(&root, &out);
            let log = if jar == "v1" {
                boot(&root, false)
            } else {
                // A reboot keeps what the template recorded (cloud-early-config compares the
                // signature with its stored tarball first): 4.17+ updates running VMs by
                // live patching, the management server running the tree's patch-sysvms.sh.
                // The services a secondary storage VM's setup enabled, as its role script
                // records them.
                fs::write(root.join("var/cache/cloud/enabled_svcs"), "cloud\n").unwrap();
                let log = run_in_vm(&root, "/var/cache/cloud/patch-sysvms.sh");
                assert_eq!(
                    ms_reads_version(&log).as_deref(),
                    Some(md5(&out.join("cloud-scripts.tgz")).as_str()),
                    "{version}: the management server cannot read {log:?}"
                );
                log
            };
            (out.join("cloud-scripts.tgz"), log)
        };
        let sum = md5(&tgz);
        // The VM recorded the md5 CloudStack computes, and unpacked this build's agent.
        let signature = fs::read_to_string(root.join("var/cache/cloud/cloud-scripts-signature"))
            .unwrap_or_else(|e| panic!("{version}: no signature ({e}):\n{log}"));
        assert_eq!(signature.trim(), sum, "{version}:\n{log}");
        let agent_jar = vm_path(&root, "usr/local/cloud/systemvm/cloud-agent.jar");
        let unpacked = fs::read_to_string(&agent_jar)
            .unwrap_or_else(|e| panic!("{version}: agent not unpacked ({e}):\n{log}"));
        assert_eq!(unpacked, jar, "{version}: the VM runs an old agent:\n{log}");
        // Scripts landed with CloudStack's modes: the health checks run as ./script.
        let health = root.join("root/health_checks/utility/sharedFunctions.py");
        if health.exists() {
            let mode = fs::metadata(&health).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{version}: {}", health.display());
        }
        assert!(
            root.join("opt/cloud/bin/keystore-setup").is_file(),
            "{version}"
        );
        scripts_md5.push(sum);
        if !iso_release {
            // The host's check before it declares an SSVM or console proxy patched.
            run_in_vm(
                &root,
                "/opt/cloud/bin/patched.sh \"/opt/cloud/bin/keystore*\"",
            );
            let kept = vm_path(&root, "usr/share/cloud/cloud-scripts.tgz");
            assert!(kept.is_file(), "{version}: cleanup kept no tarball:\n{log}");
        }
    }
    assert_ne!(
        scripts_md5[0], scripts_md5[1],
        "{version}: an agent-only change left cloud-scripts.tgz unchanged"
    );
}

#[test]
fn cloudstacks_own_boot_scripts_apply_what_we_build_from_its_tree() {
    for tree in trees() {
        boot_twice(&tree);
    }
}

/// The management server's reading of `patch-sysvms.sh` output: stdout and stderr joined,
/// `split(":")` into exactly two parts, the second the digest of its own cloud-scripts.tgz.
fn ms_reads_version(output: &str) -> Option<String> {
    let parts: Vec<&str> = output.split(':').collect();
    match parts.as_slice() {
        [_, digest] => Some(digest.trim().to_string()),
        _ => None,
    }
}

#[test]
fn bundled_live_patch_follows_the_management_servers_protocol() {
    for (version, digest_tool) in [("4.20.0.0", "md5sum"), ("4.22.0.0", "sha512sum")] {
        let dir = tempdir();
        let out = dir.path().join("patch-files");
        Test::new()
            .arg("build")
            .arg("--payload")
            .arg(bundled_payload())
            .args(["--version", version, "-o"])
            .arg(&out)
            .success();
        let root = dir.path().join("vm");
        fs::create_dir_all(root.join("var/cache/cloud")).unwrap();
        copy_patch_files(&root, &out);
        let run = Command::new("sh")
            .arg(root.join("var/cache/cloud/patch-sysvms.sh"))
            .env("SYSTEMVM_ROOT", &root)
            .output()
            .expect("run patch-sysvms.sh");
        let joined = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(run.status.success(), "{version}: {joined}");
        let tgz = root.join("usr/share/cloud/cloud-scripts.tgz");
        let expected = tool(digest_tool, &[tgz.to_str().unwrap()]);
        let expected = expected.split_whitespace().next().unwrap();
        assert_eq!(
            ms_reads_version(&joined).as_deref(),
            Some(expected),
            "{version}: the management server cannot read {joined:?}"
        );
        let signature = fs::read_to_string(root.join("var/cache/cloud/cloud-scripts-signature"));
        assert_eq!(signature.unwrap().trim(), expected, "{version}");
        assert!(root.join("var/log/livepatchsystemvm.log").is_file());
        // What a 4.17+ host checks before it calls an SSVM or console proxy patched, with
        // each such tree's own patched.sh.
        for tree in trees().iter().filter(|t| !is_iso_release(&tree_version(t))) {
            let patched = tree.join("systemvm/debian/opt/cloud/bin/patched.sh");
            let check = format!(
                "bash {} {}/opt/cloud/bin/keystore*",
                patched.display(),
                root.display()
            );
            let run = Command::new("bash").args(["-c", &check]).output().unwrap();
            assert!(run.status.success(), "{version}: {check} failed");
        }
    }
}

#[test]
fn cosmics_own_patch_script_applies_a_cosmic_iso() {
    let Some(tree) = common::cosmic_tree() else {
        return;
    };
    let dir = tempdir();
    let iso = dir.path().join("systemvm.iso");
    Test::new()
        .arg("build")
        .arg("--payload")
        .arg(bundled_payload())
        .args(["--version", "date", "-o"])
        .arg(&iso)
        .success();
    let root = vm_root(dir.path(), None);
    insert_cd(&root, &iso);
    fs::copy(&iso, root.join("dev/cdrom")).unwrap();
    let script = root.join("tmp/patch-scripts.sh");
    fs::copy(tree.join("files/startup/patch-scripts.sh"), &script).unwrap();
    let log = run_in_vm(&root, "sh /tmp/patch-scripts.sh");
    let recorded = fs::read_to_string(root.join("opt/cosmic/patch/cloud-scripts.tgz.sha512"))
        .unwrap_or_else(|e| panic!("no signature ({e}):\n{log}"));
    let tgz = root.join("cdrom/cloud-scripts.tgz");
    let sha512 = tool("sha512sum", &[tgz.to_str().unwrap()]);
    assert_eq!(recorded.trim(), sha512.split_whitespace().next().unwrap());
    assert!(
        root.join("opt/cosmic/agent/_run.sh").is_file(),
        "agent not unpacked:\n{log}"
    );
    assert!(
        root.join("opt/cloud/bin/systemvm-patch").is_file(),
        "scripts not unpacked:\n{log}"
    );
    let digest = root.join("usr/share/systemvm/signature-digest");
    let digest = fs::read_to_string(vm_path(&root, "usr/share/systemvm/signature-digest"))
        .unwrap_or_else(|e| panic!("{} ({e})", digest.display()));
    assert_eq!(digest, "sha512\n");
}
