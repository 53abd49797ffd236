//! Reading a built disk with tools we did not write: a partition copied out with dd
//! (sparse), its ext4 read with debugfs and checked with e2fsck.

use super::tool;
use std::path::Path;
use std::process::Command;

const MIB: u64 = 1024 * 1024;

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
