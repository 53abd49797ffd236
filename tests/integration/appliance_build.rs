//! `systemvm appliance build` end to end with the real mmdebstrap, mkfs.ext4, mtools,
//! sfdisk and grub-mkimage; the pieces are read back with tools we did not write (sfdisk,
//! sgdisk, blkid, e2fsck, debugfs, mdir, mtype, sha256sum), and a larger copy of the disk
//! is grown by `growpart` and `resize2fs` as `cloud-early-config` grows a VM's disk.
//! mmdebstrap runs once per test binary (a lean package list with the cloud kernel); every
//! other build reuses its tarball with --rootfs. Disks are 1 GiB to keep mkfs and dd short.

use crate::common;

use common::image::{
    build_refused, debugfs, extract, root_size, ESP_OFFSET, ESP_SIZE, MIB, ROOT_OFFSET,
};
use common::{bundled_payload, listing, tempdir, tool, Test};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const DISK_MIB: u64 = 1024;
const RAW: &str = "systemvmtemplate-4.18.0-amd64.raw";

/// A kernel, init, sshd and what systemvm-patch runs: enough to boot, quick to install.
const PACKAGES: &str = "# lean list for the test\nlinux-image-cloud-amd64 initramfs-tools\nsystemd-sysv udev e2fsprogs\nopenssh-server unzip\n";

struct Fixture {
    dir: PathBuf,
    tarball: PathBuf,
    /// The first build's disk (mmdebstrap, then the disk).
    disk: PathBuf,
    stderr: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();
    let f = FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("appliance_build");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let packages = dir.join("packages.txt");
        fs::write(&packages, PACKAGES).map_err(|e| e.to_string())?;
        let out = dir.join("first");
        let run = Test::new()
            .args([
                "appliance",
                "build",
                "--version",
                "4.18.0",
                "--disk-size",
                "1G",
                "--no-export",
            ])
            .arg("--packages-file")
            .arg(&packages)
            .arg("--payload")
            .arg(bundled_payload())
            .arg("-o")
            .arg(&out)
            .output();
        if run.output.status.code() != Some(0) {
            return Err(format!("first build failed:\n{}", run.stderr()));
        }
        Ok(Fixture {
            tarball: out.join("rootfs-bookworm-amd64.tar"),
            disk: out.join(RAW),
            stderr: run.stderr(),
            dir,
        })
    });
    f.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

/// Another build from the fixture's tarball into `name`, with extra arguments.
fn rebuild(name: &str, extra: &[&str], epoch: &str) -> PathBuf {
    let f = fixture();
    let out = f.dir.join(name);
    let run = Test::new()
        .env("SOURCE_DATE_EPOCH", epoch)
        .args([
            "appliance",
            "build",
            "--disk-size",
            "1G",
            "--no-export",
            "--rootfs",
        ])
        .arg(&f.tarball)
        .arg("--payload")
        .arg(bundled_payload())
        .arg("-o")
        .arg(&out)
        .args(extra)
        .success()
        .stderr_contains("reusing");
    PathBuf::from(run.stdout().trim())
}

fn sha256(path: &Path) -> String {
    tool("sha256sum", &[path.to_str().expect("utf-8 path")])
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

#[test]
fn build_reports_each_stage_and_keeps_the_rootfs() {
    let f = fixture();
    // One line per stage, in order: its name, then the seconds it took.
    let mut seen = Vec::new();
    for line in f.stderr.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name, took, ..] = words[..] {
            if let Some(secs) = took.strip_suffix('s').and_then(|t| t.parse::<f64>().ok()) {
                assert!(secs >= 0.0);
                seen.push(name.to_string());
            }
        }
    }
    assert_eq!(
        seen,
        [
            "rootfs",
            "configure",
            "bootloader",
            "filesystem",
            "partition"
        ],
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("reuse with --rootfs"), "{}", f.stderr);
    assert!(f.tarball.is_file());
    let meta = fs::metadata(&f.disk).unwrap();
    assert_eq!(meta.len(), DISK_MIB * MIB, "virtual size");
    use std::os::unix::fs::MetadataExt;
    assert!(meta.blocks() * 512 < meta.len(), "the disk is not sparse");
    // Only the disk and the tarball are left: no log, no temp directory.
    assert_eq!(
        listing(f.disk.parent().unwrap()),
        ["rootfs-bookworm-amd64.tar", RAW]
    );
}

#[test]
fn partition_table_read_by_sfdisk_and_sgdisk() {
    let f = fixture();
    let disk = f.disk.to_str().unwrap();
    let json: serde_json::Value = serde_json::from_str(&tool("sfdisk", &["--json", disk])).unwrap();
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "gpt");
    let parts = table["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    let row = |i: usize| {
        (
            parts[i]["start"].as_u64().unwrap() * 512,
            parts[i]["size"].as_u64().unwrap() * 512,
            parts[i]["type"].as_str().unwrap().to_string(),
            parts[i]["name"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        row(0),
        (
            MIB,
            MIB,
            "21686148-6449-6E6F-744E-656564454649".into(),
            "BIOS boot".into()
        )
    );
    // Partition 2 is the root, last on the disk (cloud-early-config grows partition 2).
    assert_eq!(
        row(1),
        (
            ROOT_OFFSET,
            root_size(DISK_MIB),
            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709".into(),
            "ROOT".into()
        )
    );
    assert_eq!(
        row(2),
        (
            ESP_OFFSET,
            ESP_SIZE,
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".into(),
            "EFI System".into()
        )
    );
    let sgdisk = tool("sgdisk", &["-v", "-p", disk]);
    assert!(sgdisk.contains("No problems found"), "{sgdisk}");
    for code in ["EF02", "EF00", "8304"] {
        assert!(sgdisk.contains(code), "sgdisk lacks {code}:\n{sgdisk}");
    }
}

#[test]
fn blkid_finds_fat_and_ext4_at_their_offsets() {
    let f = fixture();
    let disk = f.disk.to_str().unwrap();
    let probe = |offset: u64| {
        tool(
            "blkid",
            &["-p", "-O", &offset.to_string(), "-o", "export", disk],
        )
    };
    let esp = probe(ESP_OFFSET);
    assert!(esp.contains("TYPE=vfat"), "{esp}");
    assert!(esp.contains("LABEL=EFI"), "{esp}");
    let root = probe(ROOT_OFFSET);
    assert!(root.contains("TYPE=ext4"), "{root}");
    assert!(root.contains("LABEL=ROOT"), "{root}");
}

#[test]
fn root_file_system_is_clean_and_configured() {
    let f = fixture();
    let tmp = tempdir();
    let img = tmp.path().join("root.img");
    extract(&f.disk, ROOT_OFFSET, root_size(DISK_MIB), &img);
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );

    let release = debugfs(&img, "cat /etc/cloudstack-release");
    assert!(
        release.starts_with("Cloudstack Release 4.18.0 2023-11-14T22:13:20Z"),
        "{release:?}"
    );
    let link = debugfs(
        &img,
        "stat /etc/systemd/system/multi-user.target.wants/systemvm-patch.service",
    );
    assert!(
        link.contains("Fast link dest: \"/etc/systemd/system/systemvm-patch.service\""),
        "{link}"
    );
    let script = debugfs(&img, "cat /opt/cloud/bin/systemvm-patch");
    let payload =
        fs::read_to_string(bundled_payload().join("scripts/opt/cloud/bin/systemvm-patch")).unwrap();
    assert_eq!(script, payload);
    let script_stat = debugfs(&img, "stat /opt/cloud/bin/systemvm-patch");
    assert!(script_stat.contains("Mode:  0755"), "{script_stat}");
    let unit = debugfs(&img, "cat /etc/systemd/system/systemvm-patch.service");
    assert!(unit.contains("ExecStart=/opt/cloud/bin/systemvm-patch"));

    let machine_id = debugfs(&img, "stat /etc/machine-id");
    assert!(machine_id.contains("Size: 0"), "{machine_id}");
    let lists = debugfs(&img, "ls -p /var/lib/apt/lists");
    let names: Vec<&str> = lists
        .lines()
        .filter_map(|l| l.split('/').nth(5))
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .collect();
    assert!(
        names.iter().all(|n| *n == "lock" || *n == "partial"),
        "apt lists left: {names:?}"
    );
    let ssh = debugfs(&img, "ls -p /etc/ssh");
    assert!(!ssh.contains("ssh_host_"), "host keys shipped: {ssh}");
    let fstab = debugfs(&img, "cat /etc/fstab");
    assert!(fstab.contains("LABEL=ROOT / ext4"), "{fstab}");
    // No log file is shipped (the directories stay for the services that write there).
    let logs = debugfs(&img, "ls -p /var/log");
    for entry in logs.lines().filter(|l| l.starts_with('/')) {
        let mode = entry.split('/').nth(2).unwrap_or("");
        assert!(mode.starts_with("04"), "a file in /var/log: {entry}");
    }
    // The packages came from this machine's own apt sources: every URI the image's apt
    // knows is one of the host's, and backports (if the host has them) are left out.
    let sources = debugfs(&img, "cat /etc/apt/sources.list.d/0000apt.sources");
    let mut host = String::new();
    for dir in ["/etc/apt/sources.list", "/etc/apt/sources.list.d"] {
        let path = Path::new(dir);
        if path.is_file() {
            host.push_str(&fs::read_to_string(path).unwrap());
        } else if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                host.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    let uris: Vec<&str> = sources
        .lines()
        .filter_map(|l| l.strip_prefix("URIs: "))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(!uris.is_empty(), "{sources}");
    for uri in uris {
        assert!(host.contains(uri), "{uri} is not in the host's apt sources");
    }
    assert!(sources.contains("Suites: bookworm"), "{sources}");
    assert!(!sources.contains("backports"), "{sources}");
    let kernel = debugfs(&img, "ls -p /boot");
    assert!(kernel.contains("vmlinuz-"), "{kernel}");
}

#[test]
fn growpart_and_resize2fs_grow_the_root_of_an_enlarged_copy() {
    let f = fixture();
    let tmp = tempdir();
    let copy = tmp.path().join("grown.raw");
    tool(
        "cp",
        &[
            "--sparse=always",
            f.disk.to_str().unwrap(),
            copy.to_str().unwrap(),
        ],
    );
    let grown_mib = DISK_MIB + 512;
    tool(
        "truncate",
        &["-s", &format!("{grown_mib}M"), copy.to_str().unwrap()],
    );
    // What cloud-early-config runs: growpart <disk> 2, growpart <disk> 6, resize2fs.
    let grow = tool("growpart", &[copy.to_str().unwrap(), "2"]);
    assert!(grow.starts_with("CHANGED: partition=2"), "{grow}");
    let six = Command::new("growpart")
        .arg(&copy)
        .arg("6")
        .output()
        .unwrap();
    assert!(!six.status.success(), "there is no partition 6");
    let table = tool("sgdisk", &["-v", "-p", copy.to_str().unwrap()]);
    assert!(table.contains("No problems found"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&tool("sfdisk", &["--json", copy.to_str().unwrap()])).unwrap();
    let root = &json["partitiontable"]["partitions"][1];
    let (start, size) = (
        root["start"].as_u64().unwrap() * 512,
        root["size"].as_u64().unwrap() * 512,
    );
    assert_eq!(start, ROOT_OFFSET);
    // Up to the backup GPT at the end of the enlarged disk.
    assert!(start + size > (grown_mib - 1) * MIB, "{table}");

    let img = tmp.path().join("root.img");
    extract(&copy, ROOT_OFFSET, size / MIB * MIB, &img);
    let blocks = |img: &Path| -> u64 {
        let dump = tool("dumpe2fs", &["-h", img.to_str().unwrap()]);
        dump.lines()
            .find_map(|l| l.strip_prefix("Block count:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = blocks(&img);
    let resize = Command::new("resize2fs").arg(&img).output().unwrap();
    assert!(
        resize.status.success(),
        "{}",
        String::from_utf8_lossy(&resize.stderr)
    );
    let after = blocks(&img);
    assert!(after >= before + 500 * MIB / 4096, "{before} -> {after}");
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck after resize2fs: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

#[test]
fn esp_holds_grub_and_its_config() {
    let f = fixture();
    let tmp = tempdir();
    let esp = tmp.path().join("esp.img");
    extract(&f.disk, ESP_OFFSET, ESP_SIZE, &esp);
    let esp_arg = esp.to_str().unwrap();
    let listing = tool("mdir", &["-b", "-i", esp_arg, "::/EFI/BOOT"]);
    assert!(listing.contains("::/EFI/BOOT/BOOTX64.EFI"), "{listing}");
    assert!(listing.contains("::/EFI/BOOT/grub.cfg"), "{listing}");
    let cfg = tool("mtype", &["-i", esp_arg, "::/EFI/BOOT/grub.cfg"]);
    // GRUB finds the root by the UUID blkid reads from the ext4 at the root offset.
    let probe = tool(
        "blkid",
        &[
            "-p",
            "-O",
            &ROOT_OFFSET.to_string(),
            "-s",
            "UUID",
            "-o",
            "value",
            f.disk.to_str().unwrap(),
        ],
    );
    assert!(
        cfg.contains(&format!("--fs-uuid --set=root {}", probe.trim())),
        "{cfg}"
    );
    assert!(cfg.contains("root=LABEL=ROOT"), "{cfg}");
    assert!(cfg.contains("console=ttyS0,115200"), "{cfg}");
    assert!(cfg.contains("terminal_output serial"), "{cfg}");
    // The loader is a PE image (MZ).
    let loader = tmp.path().join("BOOTX64.EFI");
    tool(
        "mcopy",
        &[
            "-n",
            "-i",
            esp_arg,
            "::/EFI/BOOT/BOOTX64.EFI",
            loader.to_str().unwrap(),
        ],
    );
    assert_eq!(&fs::read(&loader).unwrap()[..2], b"MZ");
    // Legacy boot: GRUB's boot code in the MBR (the table and signature kept).
    let mbr = &fs::read(&f.disk).map(|d| d[..512].to_vec()).unwrap();
    let boot_img = fs::read("/usr/lib/grub/i386-pc/boot.img").unwrap();
    assert_eq!(&mbr[0x68..0x1b8], &boot_img[0x68..0x1b8]);
    assert_eq!(
        u64::from_le_bytes(mbr[0x5c..0x64].try_into().unwrap()),
        2048
    );
    assert_eq!(&mbr[510..], &[0x55, 0xaa]);
}

#[test]
fn same_inputs_same_bytes_other_epoch_differs() {
    let f = fixture();
    let again = rebuild("again", &["--version", "4.18.0"], "1700000000");
    assert_eq!(sha256(&again), sha256(&f.disk), "rebuild is not identical");
    let later = rebuild("later", &["--version", "4.18.0"], "1700086400");
    assert_ne!(sha256(&later), sha256(&f.disk));
}

#[test]
fn cosmic_flavor_date_version_and_label() {
    let disk = rebuild(
        "cosmic",
        &["--flavor", "cosmic", "--root-label", "SLX_SYS"],
        "1700086400",
    );
    // 2023-11-15: the Cosmic date version.
    assert_eq!(
        disk.file_name().unwrap().to_str().unwrap(),
        "systemvmtemplate-23.11.15-amd64.raw"
    );
    let root = tool(
        "blkid",
        &[
            "-p",
            "-O",
            &ROOT_OFFSET.to_string(),
            "-o",
            "export",
            disk.to_str().unwrap(),
        ],
    );
    assert!(root.contains("LABEL=SLX_SYS"), "{root}");
    // The root is partition 2.
    let sgdisk = tool("sgdisk", &["-i", "2", disk.to_str().unwrap()]);
    assert!(sgdisk.contains("Partition name: 'SLX_SYS'"), "{sgdisk}");
    let tmp = tempdir();
    let img = tmp.path().join("root.img");
    extract(&disk, ROOT_OFFSET, root_size(DISK_MIB), &img);
    let release = debugfs(&img, "cat /etc/cosmic-release");
    assert!(
        release.starts_with("Cosmic Release 23.11.15 "),
        "{release:?}"
    );
    let fstab = debugfs(&img, "cat /etc/fstab");
    assert!(fstab.contains("LABEL=SLX_SYS / ext4"), "{fstab}");
}

#[test]
fn build_exports_the_formats_asked_for_with_checksums() {
    let f = fixture();
    let out = f.dir.join("exported");
    let run = Test::new()
        .args([
            "appliance",
            "build",
            "--disk-size",
            "1G",
            "--formats",
            "kvm",
        ])
        .args(["--version", "4.18.0", "--rootfs"])
        .arg(&f.tarball)
        .arg("--payload")
        .arg(bundled_payload())
        .arg("-o")
        .arg(&out)
        .success();
    let raw = out.join(RAW);
    let bz = out.join("systemvmtemplate-4.18.0-amd64-kvm.qcow2.bz2");
    assert!(bz.is_file(), "{:?}", listing(&out));
    // The export holds the disk the build made: bunzip2 and qemu-img, not our code, say so.
    let qcow2 = out.join("check.qcow2");
    let plain = Command::new("bunzip2")
        .arg("-c")
        .arg(&bz)
        .output()
        .expect("bunzip2");
    assert!(plain.status.success());
    fs::write(&qcow2, plain.stdout).unwrap();
    let info = tool(
        "qemu-img",
        &["info", "--output=json", qcow2.to_str().unwrap()],
    );
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");
    tool(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "qcow2",
            raw.to_str().unwrap(),
            qcow2.to_str().unwrap(),
        ],
    );
    fs::remove_file(&qcow2).unwrap();
    for sums in ["md5sum", "sha512sum"] {
        let ok = Command::new(sums)
            .arg("-c")
            .arg(format!("{sums}.txt"))
            .current_dir(&out)
            .output()
            .expect(sums);
        assert!(ok.status.success(), "{sums} -c failed");
    }
    // The {SHA-512} line CloudStack's registerTemplate takes, for the file sha512sum hashes.
    let sha512 = tool("sha512sum", &[bz.to_str().unwrap()]);
    let hex = sha512.split_whitespace().next().unwrap();
    assert!(
        run.stdout().contains(&format!("{{SHA-512}}{hex}")),
        "{}",
        run.stdout()
    );
}

// Bad input: one error line, exit 2, nothing written. None of these reaches mmdebstrap.

fn bad(args: &[&str], expect: &str) {
    build_refused(&bundled_payload(), args, expect);
}

#[test]
fn unknown_export_format_fails_before_building() {
    bad(&["--formats", "kvm,floppy"], "floppy");
}

#[test]
fn missing_packages_file() {
    bad(
        &["--packages-file", "no-such-list.txt"],
        "cannot read the packages file no-such-list.txt",
    );
}

#[test]
fn bad_package_name() {
    let tmp = tempdir();
    let list = tmp.path().join("list.txt");
    fs::write(&list, "udev\nNot_A_Package\n").unwrap();
    bad(
        &["--packages-file", list.to_str().unwrap()],
        "line 2: \"Not_A_Package\" is not a Debian package name",
    );
}

#[test]
fn bad_disk_sizes() {
    bad(
        &["--disk-size", "lots"],
        "--disk-size \"lots\" is not a size",
    );
    bad(&["--disk-size", "100M"], "too small: at least 256 MiB");
    bad(&["--disk-size", "5P"], "the unit must be M, G or T");
}

#[test]
fn bad_label_and_missing_rootfs() {
    bad(&["--root-label", "no spaces"], "is not a file system label");
    bad(
        &["--rootfs", "missing.tar"],
        "cannot read the rootfs tarball missing.tar",
    );
}

#[test]
fn unwritable_output() {
    let tmp = tempdir();
    let file = tmp.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let tar = tmp.path().join("rootfs.tar");
    fs::write(&tar, "not read before the output is checked").unwrap();
    Test::new()
        .args(["appliance", "build", "--payload"])
        .arg(bundled_payload())
        .arg("--rootfs")
        .arg(&tar)
        .arg("-o")
        .arg(file.join("sub"))
        .fails(2)
        .one_error_line()
        .stderr_contains("is not a directory");
    assert_eq!(listing(tmp.path()), ["a-file", "rootfs.tar"]);
}

#[test]
fn failed_stage_names_the_command_and_keeps_its_log() {
    let tmp = tempdir();
    let tar = tmp.path().join("broken.tar");
    fs::write(&tar, "this is not a tarball\n".repeat(100)).unwrap();
    let out = tmp.path().join("out");
    let run = Test::new()
        .args(["appliance", "build", "--version", "4.18.0", "--payload"])
        .arg(bundled_payload())
        .arg("--rootfs")
        .arg(&tar)
        .arg("-o")
        .arg(&out)
        .fails(2)
        .stderr_contains("stage configure failed")
        .stderr_contains("tar failed");
    let log = out.join("systemvmtemplate-4.18.0-amd64.log");
    run.stderr_contains(&format!("; the build log is kept in {}", log.display()));
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("$ tar --extract"), "{text}");
    // The log stays; no disk and no temp directory.
    assert_eq!(listing(&out), ["systemvmtemplate-4.18.0-amd64.log"]);
}

#[test]
fn needs_root() {
    // Everything else is valid: only the privilege check stops this build (setpriv from
    // util-linux drops to nobody).
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let run = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::BIN)
        .args(["appliance", "build", "--payload"])
        .arg(bundled_payload())
        .arg("-o")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: appliance build needs root"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn unknown_package_fails_the_rootfs_stage_with_apts_reason() {
    // A valid name that no suite has: only mmdebstrap (apt) can tell.
    let tmp = tempdir();
    let list = tmp.path().join("list.txt");
    fs::write(&list, "udev no-such-package-systemvm-test\n").unwrap();
    let out = tmp.path().join("out");
    let run = Test::new()
        .args(["appliance", "build", "--version", "4.18.0", "--payload"])
        .arg(bundled_payload())
        .arg("--packages-file")
        .arg(&list)
        .arg("-o")
        .arg(&out)
        .fails(2)
        .stderr_contains("stage rootfs failed: mmdebstrap failed")
        .stderr_contains("E: Unable to locate package no-such-package-systemvm-test");
    let log = out.join("systemvmtemplate-4.18.0-amd64.log");
    run.stderr_contains(&format!("the build log is kept in {}", log.display()));
    assert!(fs::read_to_string(&log)
        .unwrap()
        .contains("$ SOURCE_DATE_EPOCH=1700000000 mmdebstrap"));
    assert_eq!(listing(&out), ["systemvmtemplate-4.18.0-amd64.log"]);
}
