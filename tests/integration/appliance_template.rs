//! `systemvm appliance build --payload <CloudStack checkout>`: CloudStack's template, lean.
//! One build per test binary from the newest CloudStack tree found
//! (`SYSTEMVM_CLOUDSTACK_TREES`, else `../shared/cloudstack/*`) with a small `--packages-file`
//! (so mmdebstrap stays short) and one `--extra-deb` made here with `dpkg-deb --build`. The
//! image is read back with tools we did not write: e2fsck and debugfs on the extracted root,
//! mtype on the ESP. Without a tree each test prints one line and passes.

use crate::common;

use common::image::{
    build_refused, debugfs, e2fsck_clean, extract, grub_cfg, root_size, ROOT_OFFSET,
};
use common::{tempdir, tool, Test};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const DISK_MIB: u64 = 1024;
const EPOCH: &str = "1700000000";

/// A kernel, init, sshd: enough for the services to be set up, quick to install.
const PACKAGES: &str =
    "linux-image-cloud-amd64 initramfs-tools\nsystemd-sysv udev e2fsprogs\nopenssh-server\n";

/// The newest CloudStack tree with patch files (4.17+), or None (and one line said so).
fn tree() -> Option<PathBuf> {
    static TREE: OnceLock<Option<PathBuf>> = OnceLock::new();
    TREE.get_or_init(|| {
        let listed: Vec<PathBuf> = match std::env::var_os("SYSTEMVM_CLOUDSTACK_TREES") {
            Some(list) => std::env::split_paths(&list).collect(),
            None => {
                let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cloudstack");
                fs::read_dir(&shared)
                    .map(|dir| dir.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default()
            }
        };
        let mut trees: Vec<PathBuf> = listed
            .into_iter()
            .filter(|t| t.join("systemvm/patch-sysvms.sh").is_file())
            .collect();
        trees.sort();
        let found = trees.pop();
        if found.is_none() {
            eprintln!("skipped: no CloudStack 4.17+ tree (set SYSTEMVM_CLOUDSTACK_TREES or put one in ../shared/cloudstack)");
        }
        found
    })
    .clone()
}

struct Built {
    dir: PathBuf,
    disk: PathBuf,
    /// The extracted root file system.
    root: PathBuf,
    stderr: String,
}

/// A .deb of our own, made with dpkg-deb, holding one file.
fn make_deb(dir: &Path) -> PathBuf {
    let src = dir.join("deb-src");
    fs::create_dir_all(src.join("DEBIAN")).unwrap();
    fs::create_dir_all(src.join("usr/share/systemvm-test-extra")).unwrap();
    fs::write(
        src.join("DEBIAN/control"),
        "Package: systemvm-test-extra\nVersion: 1.0\nArchitecture: all\nMaintainer: test <test@localhost>\nDescription: a local package for the --extra-deb test\n",
    )
    .unwrap();
    fs::write(src.join("usr/share/systemvm-test-extra/hello"), "hello\n").unwrap();
    let deb = dir.join("systemvm-test-extra_1.0_all.deb");
    tool(
        "dpkg-deb",
        &[
            "--root-owner-group",
            "--build",
            src.to_str().unwrap(),
            deb.to_str().unwrap(),
        ],
    );
    deb
}

fn built() -> Option<&'static Built> {
    let tree = tree()?;
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    let b = BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("appliance_template");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let packages = dir.join("packages.txt");
        fs::write(&packages, PACKAGES).map_err(|e| e.to_string())?;
        let deb = make_deb(&dir);
        let out = dir.join("out");
        let run = Test::new()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["appliance", "build", "--disk-size", "1G", "--no-export"])
            .arg("--payload")
            .arg(&tree)
            .arg("--packages-file")
            .arg(&packages)
            .arg("--extra-deb")
            .arg(&deb)
            .arg("-o")
            .arg(&out)
            .output();
        if run.output.status.code() != Some(0) {
            return Err(format!("the template build failed:\n{}", run.stderr()));
        }
        let disk = PathBuf::from(run.stdout().trim());
        let root = dir.join("root.img");
        extract(&disk, ROOT_OFFSET, root_size(DISK_MIB), &root);
        Ok(Built {
            dir,
            disk,
            root,
            stderr: run.stderr(),
        })
    });
    Some(b.as_ref().unwrap_or_else(|e| panic!("{e}")))
}

fn md5(path: &Path) -> String {
    tool("md5sum", &[path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn template_carries_the_scripts_the_signature_and_the_release() {
    let Some(b) = built() else { return };
    let tree = tree().unwrap();
    e2fsck_clean(&b.root);
    assert!(b.stderr.contains("scripts "), "{}", b.stderr);

    // The tree's files at /, with Ant's modes.
    let early = "/opt/cloud/bin/setup/cloud-early-config";
    assert_eq!(
        debugfs(&b.root, &format!("cat {early}")),
        fs::read_to_string(tree.join("systemvm/debian").join(&early[1..])).unwrap()
    );
    assert!(debugfs(&b.root, &format!("stat {early}")).contains("Mode:  0755"));
    let unit = debugfs(
        &b.root,
        "stat /etc/systemd/system/cloud-early-config.service",
    );
    assert!(unit.contains("Mode:  0644"), "{unit}");

    // The stored tarball, its signature in the release's digest (md5 up to 4.21), and the
    // same tar stream `systemvm build` makes from the tree at the same epoch, in a gzip
    // file whose digest differs: cloud-early-config patches (and bootstrap.sh unzips the
    // agent of an SSVM or console proxy) only when the signature and the digest differ.
    let stored = b.dir.join("stored.tgz");
    debugfs(
        &b.root,
        &format!(
            "dump /usr/share/cloud/cloud-scripts.tgz {}",
            stored.display()
        ),
    );
    let signature = debugfs(&b.root, "cat /var/cache/cloud/cloud-scripts-signature");
    assert_eq!(signature, format!("{}\n", md5(&stored)));
    let patch_files = b.dir.join("patch-files");
    Test::new()
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--layout", "patch-files", "--version"])
        .arg(tree.file_name().unwrap())
        .arg("--payload")
        .arg(&tree)
        .arg("-o")
        .arg(&patch_files)
        .success();
    let shipped = patch_files.join("cloud-scripts.tgz");
    assert_ne!(md5(&shipped), md5(&stored));
    let tar_of = |tgz: &Path| {
        let out = Command::new("gzip").arg("-dc").arg(tgz).output().unwrap();
        assert!(out.status.success(), "gzip -dc {}", tgz.display());
        out.stdout
    };
    assert!(
        tar_of(&shipped) == tar_of(&stored),
        "the tar streams differ"
    );

    let release = debugfs(&b.root, "cat /etc/cloudstack-release");
    let version = tree.file_name().unwrap().to_str().unwrap();
    assert!(
        release.starts_with(&format!(
            "Cloudstack Release {version} 2023-11-14T22:13:20Z"
        )),
        "{release:?}"
    );
}

#[test]
fn template_enables_cloudstacks_services_and_disables_sshd() {
    let Some(b) = built() else { return };
    let wants = "/etc/systemd/system/multi-user.target.wants";
    for unit in ["cloud-preinit", "cloud-early-config", "cloud-postinit"] {
        let link = debugfs(&b.root, &format!("stat {wants}/{unit}.service"));
        assert!(
            link.contains(&format!(
                "Fast link dest: \"/etc/systemd/system/{unit}.service\""
            )),
            "{unit}: {link}"
        );
    }
    // CloudStack starts sshd itself, on the control NIC, per role.
    let listed = debugfs(&b.root, &format!("ls {wants}"));
    assert!(!listed.contains("ssh.service"), "{listed}");
    assert!(debugfs(&b.root, "stat /usr/lib/systemd/system/ssh.service").contains("regular"));
    for dir in ["/var/cache/cloud", "/opt/tftpboot", "/var/lib/haproxy"] {
        assert!(
            debugfs(&b.root, &format!("stat {dir}")).contains("Type: directory"),
            "{dir}"
        );
    }
}

#[test]
fn template_boots_with_cloudstacks_command_line() {
    let Some(b) = built() else { return };
    let (_, linux) = grub_cfg(&b.disk, &b.dir);
    for word in [
        "net.ifnames=0",
        "biosdevname=0",
        "console=ttyS0,115200n8",
        "console=hvc0",
    ] {
        assert!(linux.split_whitespace().any(|w| w == word), "{linux}");
    }
}

#[test]
fn extra_deb_is_installed() {
    let Some(b) = built() else { return };
    let file = debugfs(&b.root, "cat /usr/share/systemvm-test-extra/hello");
    assert_eq!(file, "hello\n");
    let status = debugfs(&b.root, "cat /var/lib/dpkg/status");
    assert!(status.contains("Package: systemvm-test-extra\n"));
    // The file was handed to dpkg in the chroot under /tmp, which the image ships empty;
    // no directory of this machine's is left behind.
    let top = b
        .dir
        .components()
        .nth(1)
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    let root = debugfs(&b.root, "ls /");
    if !["usr", "var", "tmp", "root", "home", "srv", "opt", "mnt"].contains(&top) {
        assert!(
            !root.contains(&format!(") {top} ")),
            "/{top} in the image: {root}"
        );
    }
    let tmp = debugfs(&b.root, "ls /tmp");
    assert!(!tmp.contains("systemvm-debs-"), "{tmp}");
}

// Bad input: one error line, exit 2, nothing written; none reaches mmdebstrap.

#[test]
fn an_extra_deb_that_is_not_a_package_is_named() {
    let Some(tree) = tree() else { return };
    let tmp = tempdir();
    let junk = tmp.path().join("vhd-util.deb");
    fs::write(&junk, "not an archive\n").unwrap();
    build_refused(
        &tree,
        &["--extra-deb", junk.to_str().unwrap()],
        &format!("--extra-deb {} is not a Debian package", junk.display()),
    );
}

#[test]
fn a_release_without_a_package_list_says_how_to_pass_one() {
    let tmp = tempdir();
    let tree = tmp.path().join("cloudstack");
    for dir in ["systemvm/debian", "systemvm/agent", "scripts/util"] {
        fs::create_dir_all(tree.join(dir)).unwrap();
    }
    fs::write(
        tree.join("systemvm/pom.xml"),
        "<project><parent><version>4.18.1.0</version></parent></project>",
    )
    .unwrap();
    build_refused(&tree, &[], "CloudStack 4.18.1.0 (");
    build_refused(&tree, &[], "pass one with --packages-file FILE");
}
