//! Reading a built disk with tools we did not write: a partition copied out with dd
//! (sparse), its ext4 read with debugfs and checked with e2fsck; and the steps every
//! appliance test repeats: a refused build, a build with a kept rootfs, bunzip2.

use super::tool;
use std::path::Path;
use std::process::Command;

pub const MIB: u64 = 1024 * 1024;
/// Where `appliance build` puts the ESP (partition 3) and the root (2, to the disk's last
/// MiB but one), as docs/architecture.md and the README describe the layout.
pub const ESP_OFFSET: u64 = 2 * MIB;
pub const ESP_SIZE: u64 = 62 * MIB;
pub const ROOT_OFFSET: u64 = 64 * MIB;

/// The root partition's size on a disk of `disk_mib`.
pub fn root_size(disk_mib: u64) -> u64 {
    (disk_mib - 1) * MIB - ROOT_OFFSET
}

/// Copy `size` bytes at `offset` (both whole MiB) out of a disk, sparse.
pub fn extract(disk: &Path, offset: u64, size: u64, to: &Path) {
    tool(
        "dd",
        &[
            &format!("if={}", disk.display()),
            &format!("of={}", to.display()),
            "bs=1M",
            &format!("skip={}", offset / MIB),
            &format!("count={}", size / MIB),
            "conv=sparse",
            "status=none",
        ],
    );
}

/// One debugfs request on an ext4 image; its output.
pub fn debugfs(image: &Path, request: &str) -> String {
    tool(
        "debugfs",
        &["-R", request, image.to_str().expect("utf-8 path")],
    )
}

/// `e2fsck -fn` finds nothing to fix.
#[track_caller]
pub fn e2fsck_clean(image: &Path) {
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .expect("run e2fsck");
    assert!(
        fsck.status.success(),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
}

/// `appliance build --payload PAYLOAD -o OUT ARGS` is refused: exit 2, one error line
/// containing `expect`, nothing written in OUT.
#[track_caller]
pub fn build_refused(payload: &Path, args: &[&str], expect: &str) {
    let tmp = super::tempdir();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).expect("create out");
    super::Test::new()
        .current_dir(tmp.path())
        .args(["appliance", "build", "--payload"])
        .arg(payload)
        .arg("-o")
        .arg(&out)
        .args(args)
        .fails(2)
        .one_error_line()
        .stderr_contains(expect);
    let left = super::listing(&out);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Run an `appliance build`, with `--rootfs` from the environment variable `kept_rootfs`
/// when it is set, and print its time and stage lines.
pub fn timed_build(mut build: super::Test, kept_rootfs: &str) {
    if let Some(tar) = std::env::var_os(kept_rootfs) {
        build = build.arg("--rootfs").arg(tar);
    }
    let started = std::time::Instant::now();
    let run = build.success();
    eprintln!(
        "appliance build: {:.1}s\n{}",
        started.elapsed().as_secs_f64(),
        run.stderr()
    );
}

/// `bunzip2 -c BZ > TO`: an export unpacked as seeding would.
#[track_caller]
pub fn bunzip2(bz: &Path, to: &Path) {
    let unpacked = Command::new("bunzip2")
        .arg("-c")
        .arg(bz)
        .stdout(std::fs::File::create(to).expect("create the unpacked file"))
        .status()
        .expect("run bunzip2");
    assert!(unpacked.success(), "bunzip2 {}", bz.display());
}

/// The ESP's grub.cfg (read with mtype from a copy of the ESP in `scratch`) and its
/// `linux` line.
#[track_caller]
pub fn grub_cfg(disk: &Path, scratch: &Path) -> (String, String) {
    let esp = scratch.join("esp.img");
    extract(disk, ESP_OFFSET, ESP_SIZE, &esp);
    let cfg = tool(
        "mtype",
        &[
            "-i",
            esp.to_str().expect("utf-8 path"),
            "::/EFI/BOOT/grub.cfg",
        ],
    );
    let linux = cfg
        .lines()
        .find(|l| l.trim_start().starts_with("linux "))
        .unwrap_or_else(|| panic!("no linux line in grub.cfg:\n{cfg}"))
        .to_string();
    (cfg, linux)
}
