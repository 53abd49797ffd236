//! The GPT disk, laid out in a plain sparse file: no loop device, no mount. Three
//! partitions, 1 MiB aligned, in disk order: a BIOS boot partition (GRUB's core image for
//! legacy boot, number 1), the ESP (number 3), and the root file system filling the rest
//! (number 2). The root is last on the disk and number 2 because CloudStack's
//! `cloud-early-config` grows a template whose disk was enlarged with `growpart <disk> 2`
//! (and `6`, for its own msdos layout) before `resize2fs`. `sfdisk` writes the table from a
//! script with every GUID fixed; the file system images are then copied in at their offsets
//! with `dd conv=notrunc,sparse`, which skips zero blocks so the disk stays sparse.

use crate::appliance::arch::Arch;
use crate::appliance::ids::Ids;
use crate::appliance::runner::{CommandFailed, Runner};
use std::path::Path;
use std::process::Command;

use crate::size::MIB;
pub const SECTOR: u64 = 512;
/// The smallest and largest disks accepted (the root file system needs room; ext4 with 4
/// KiB blocks and this layout is tested well below its own limits).
pub const MIN_DISK_MIB: u64 = 256;
pub const MAX_DISK_MIB: u64 = 16 * 1024 * 1024;
const BIOS_START_MIB: u64 = 1;
const BIOS_MIB: u64 = 1;
const ESP_MIB: u64 = 62;

/// GPT type GUIDs.
pub const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";
pub const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// One partition: first byte and length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub size: u64,
}

impl Extent {
    pub fn first_sector(&self) -> u64 {
        self.offset / SECTOR
    }
    pub fn sectors(&self) -> u64 {
        self.size / SECTOR
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub disk_size: u64,
    pub bios: Extent,
    pub esp: Extent,
    pub root: Extent,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("--disk-size {0} MiB is too small: at least {MIN_DISK_MIB} MiB")]
    TooSmall(u64),
    #[error("--disk-size {0} MiB is too large: at most {MAX_DISK_MIB} MiB (16 TiB)")]
    TooLarge(u64),
}

impl Layout {
    pub fn new(disk_mib: u64) -> Result<Layout, LayoutError> {
        if disk_mib < MIN_DISK_MIB {
            return Err(LayoutError::TooSmall(disk_mib));
        }
        if disk_mib > MAX_DISK_MIB {
            return Err(LayoutError::TooLarge(disk_mib));
        }
        let bios = Extent {
            offset: BIOS_START_MIB * MIB,
            size: BIOS_MIB * MIB,
        };
        let esp = Extent {
            offset: bios.offset + bios.size,
            size: ESP_MIB * MIB,
        };
        let root_start = esp.offset + esp.size;
        // The last MiB holds the backup GPT (33 sectors) and keeps the end aligned.
        let root = Extent {
            offset: root_start,
            size: disk_mib * MIB - MIB - root_start,
        };
        Ok(Layout {
            disk_size: disk_mib * MIB,
            bios,
            esp,
            root,
        })
    }

    /// The sfdisk script for this layout with the build's GUIDs.
    pub fn sfdisk_script(&self, ids: &Ids, arch: Arch, root_name: &str) -> String {
        let part = |e: &Extent, ty: &str, purpose: &str, name: &str| {
            format!(
                "start={}, size={}, type={ty}, uuid={}, name=\"{name}\"\n",
                e.first_sector(),
                e.sectors(),
                ids.uuid(purpose)
            )
        };
        let mut s = format!(
            "label: gpt\nlabel-id: {}\nunit: sectors\nfirst-lba: 2048\nsector-size: 512\n\n",
            ids.uuid("disk")
        );
        // Entry order is partition numbers: 1 BIOS boot, 2 root, 3 ESP.
        s.push_str(&part(&self.bios, BIOS_BOOT_TYPE, "part-bios", "BIOS boot"));
        s.push_str(&part(
            &self.root,
            arch.root_partition_type(),
            "part-root",
            root_name,
        ));
        s.push_str(&part(&self.esp, ESP_TYPE, "part-esp", "EFI System"));
        s
    }
}

/// Create the sparse disk file (nothing allocated yet).
pub fn create(path: &Path, layout: &Layout) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    file.set_len(layout.disk_size)
}

/// Write the partition table.
pub fn partition(runner: &mut Runner, disk: &Path, script: &str) -> Result<(), CommandFailed> {
    runner.run_with_input(
        Command::new("sfdisk")
            .args([
                "--quiet",
                "--no-reread",
                "--no-tell-kernel",
                "--wipe",
                "never",
            ])
            .arg(disk),
        script.as_bytes(),
    )
}

/// Copy a file system image into the disk at `extent` (MiB aligned), skipping zero blocks.
pub fn place(
    runner: &mut Runner,
    image: &Path,
    disk: &Path,
    extent: &Extent,
) -> Result<(), CommandFailed> {
    runner.run(
        Command::new("dd")
            .arg(format!("if={}", image.display()))
            .arg(format!("of={}", disk.display()))
            .arg("bs=1M")
            .arg(format!("seek={}", extent.offset / MIB))
            .arg("conv=notrunc,sparse")
            .arg("status=none"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let l = Layout::new(5000).unwrap();
        assert_eq!(l.disk_size, 5000 * MIB);
        assert_eq!(l.bios.first_sector(), 2048);
        assert_eq!(l.bios.sectors(), 2048);
        assert_eq!(l.esp.first_sector(), 4096);
        assert_eq!(l.root.offset, 64 * MIB);
        assert_eq!(l.root.offset + l.root.size, 4999 * MIB);
        for e in [l.bios, l.esp, l.root] {
            assert_eq!(e.offset % MIB, 0);
            assert_eq!(e.size % MIB, 0);
        }
    }

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(Layout::new(255), Err(LayoutError::TooSmall(255)));
        assert!(Layout::new(MAX_DISK_MIB + 1).is_err());
        assert!(Layout::new(256).is_ok());
    }

    #[test]
    fn script_fixes_every_guid() {
        let l = Layout::new(1024).unwrap();
        let ids = Ids::new("seed");
        let s = l.sfdisk_script(&ids, Arch::Amd64, "ROOT");
        assert!(s.starts_with("label: gpt\nlabel-id: "));
        assert_eq!(s.matches("uuid=").count(), 3);
        assert!(s.contains(&format!("uuid={}", ids.uuid("part-root"))));
        assert!(s.contains("type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"));
        assert!(s.contains("name=\"ROOT\""));
        // The root is partition 2: the second entry, and the last on the disk.
        let entries: Vec<&str> = s.lines().filter(|l| l.starts_with("start=")).collect();
        assert!(entries[1].ends_with("name=\"ROOT\""), "{s}");
        assert_eq!(l.root.offset + l.root.size, l.disk_size - MIB);
        assert_eq!(s, l.sfdisk_script(&ids, Arch::Amd64, "ROOT"));
    }
}
