//! File system images, byte-reproducible. ext4: `mkfs.ext4 -d` copies the tree into an
//! image file with a fixed UUID and hash seed under `E2FSPROGS_FAKE_TIME` (mke2fs ignores
//! SOURCE_DATE_EPOCH); it also copies each file's atime and ctime, which unpacking set to
//! "now", so `debugfs` then sets both to the epoch on every used inode (the inode bitmap
//! comes from `dumpe2fs`). FAT: `mkfs.vfat --invariant` with a fixed volume id, filled by
//! `mcopy -s -m` from a staging tree whose times are the epoch, in UTC.

use crate::appliance::runner::Runner;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

/// The ext4 image's parameters.
#[derive(Debug, Clone)]
pub struct Ext4 {
    pub label: String,
    pub uuid: String,
    pub hash_seed: String,
    pub size: u64,
    pub epoch: i64,
}

/// Make `image` an ext4 file system holding `tree`.
pub fn ext4(runner: &mut Runner, tree: &Path, image: &Path, p: &Ext4) -> Result<()> {
    let file = std::fs::File::create(image)
        .with_context(|| format!("cannot create {}", image.display()))?;
    file.set_len(p.size)
        .with_context(|| format!("cannot size {}", image.display()))?;
    drop(file);
    let fake = p.epoch.to_string();
    runner.run(
        Command::new("mkfs.ext4")
            .env("E2FSPROGS_FAKE_TIME", &fake)
            .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-L"])
            .arg(&p.label)
            .arg("-U")
            .arg(&p.uuid)
            .arg("-E")
            .arg(format!(
                "hash_seed={},lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
                p.hash_seed
            ))
            .arg("-d")
            .arg(tree)
            .arg(image),
    )?;
    let dump = runner.output(
        Command::new("dumpe2fs")
            .env("E2FSPROGS_FAKE_TIME", &fake)
            .arg(image),
    )?;
    let used = used_inodes(&String::from_utf8_lossy(&dump))
        .context("cannot read the inode table summary from dumpe2fs")?;
    let mut commands = String::new();
    for ino in used {
        for field in ["atime", "ctime"] {
            commands.push_str(&format!("sif <{ino}> {field} @{}\n", p.epoch));
        }
    }
    let cmd_file = image.with_extension("debugfs");
    std::fs::write(&cmd_file, commands)
        .with_context(|| format!("cannot write {}", cmd_file.display()))?;
    runner.note(&format!(
        "(setting atime and ctime to {} on the used inodes via {})",
        p.epoch,
        cmd_file.display()
    ));
    runner.run(
        Command::new("debugfs")
            .env("E2FSPROGS_FAKE_TIME", &fake)
            .args(["-w", "-f"])
            .arg(&cmd_file)
            .arg(image)
            .stdout(std::process::Stdio::null()),
    )?;
    let _ = std::fs::remove_file(&cmd_file);
    Ok(())
}

/// The used inodes that carry file times: the root directory (2) and every used inode from
/// the first non-reserved one (11) on, from dumpe2fs' per-group "Free inodes:" ranges.
pub fn used_inodes(dumpe2fs: &str) -> Option<Vec<u64>> {
    let count: u64 = dumpe2fs
        .lines()
        .find_map(|l| l.strip_prefix("Inode count:"))?
        .trim()
        .parse()
        .ok()?;
    let mut free = vec![false; count as usize + 1];
    let mut groups = 0;
    // Only the indented per-group lines; the header's "Free inodes:" is a count.
    for line in dumpe2fs.lines().filter(|l| l.starts_with(' ')) {
        let Some(ranges) = line.trim_start().strip_prefix("Free inodes: ") else {
            if line.trim() == "Free inodes:" {
                groups += 1;
            }
            continue;
        };
        groups += 1;
        for range in ranges.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            for i in a..=b.min(count) {
                free[i as usize] = true;
            }
        }
    }
    if groups == 0 {
        return None;
    }
    Some(
        (1..=count)
            .filter(|&i| (i == 2 || i >= 11) && !free[i as usize])
            .collect(),
    )
}

/// The FAT image's parameters.
#[derive(Debug, Clone)]
pub struct Fat {
    pub label: String,
    /// 8 hex digits.
    pub volume_id: String,
    pub size: u64,
    pub epoch: i64,
}

/// Make `image` a FAT32 file system holding the top-level entries of `staging`.
pub fn vfat(runner: &mut Runner, staging: &Path, image: &Path, p: &Fat) -> Result<()> {
    let file = std::fs::File::create(image)
        .with_context(|| format!("cannot create {}", image.display()))?;
    file.set_len(p.size)
        .with_context(|| format!("cannot size {}", image.display()))?;
    drop(file);
    runner.run(
        Command::new("mkfs.vfat")
            .args(["--invariant", "-F", "32", "-s", "1", "-S", "512", "-i"])
            .arg(&p.volume_id)
            .arg("-n")
            .arg(&p.label)
            .arg(image),
    )?;
    let mut entries: Vec<_> = std::fs::read_dir(staging)
        .with_context(|| format!("cannot read {}", staging.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    let epoch = p.epoch.to_string();
    for entry in entries {
        runner.run(
            Command::new("mcopy")
                .env("TZ", "UTC")
                .env("MTOOLS_SKIP_CHECK", "1")
                .env("SOURCE_DATE_EPOCH", &epoch)
                .args(["-s", "-m", "-Q", "-i"])
                .arg(image)
                .arg(&entry)
                .arg("::/"),
        )?;
    }
    Ok(())
}

/// Set the times of everything in `tree` newer than the epoch to the epoch (symlinks
/// themselves, not their targets), so the files this build wrote carry no build time.
pub fn clamp_times(runner: &mut Runner, tree: &Path, epoch: i64) -> Result<()> {
    let stamp = format!("@{epoch}");
    runner.run(Command::new("find").arg(tree).args([
        "-newermt", &stamp, "-exec", "touch", "-h", "-d", &stamp, "{}", "+",
    ]))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_inodes_from_free_ranges() {
        let dump = "Inode count:              40\nFree inodes:              22\nGroup 0: (Blocks 0-32767)\n  Free inodes: \nGroup 1: (Blocks 32768-65535)\n  Free inodes: 25-30, 33-40\n";
        let used = used_inodes(dump).unwrap();
        let expect: Vec<u64> = std::iter::once(2).chain(11..=24).chain(31..=32).collect();
        assert_eq!(used, expect);
        assert!(used_inodes("nothing").is_none());
    }
}
