//! GRUB for both firmwares, from the host's Debian GRUB packages, without grub-install
//! (which wants a mounted disk). One `grub.cfg` on the ESP boots the kernel from the root
//! file system, found by its UUID, with the serial console on.
//!
//! - UEFI: `grub-mkimage -O x86_64-efi` (arm64-efi on arm64) with every module it needs
//!   built in, as the removable-media loader `EFI/BOOT/BOOTX64.EFI`, so no NVRAM entry is
//!   needed. An embedded early config finds the ESP by its volume id and loads grub.cfg.
//! - Legacy BIOS: `grub-mkimage -O i386-pc` makes core.img with the same early config; it
//!   goes into the BIOS boot partition, and GRUB's boot.img into the MBR's boot code, both
//!   patched as grub-bios-setup would: boot.img gets core.img's first sector, core.img's
//!   first sector the blocklist of the rest (no Reed-Solomon codes, as `--no-rs-codes`).

use crate::appliance::arch::Arch;
use crate::appliance::disk::{Extent, SECTOR};
use crate::appliance::runner::{CommandFailed, Runner};
use anyhow::{bail, Context, Result};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's grub-*-bin packages keep a platform's modules and images.
pub fn grub_dir(platform: &str) -> PathBuf {
    Path::new("/usr/lib/grub").join(platform)
}

/// Modules every image carries (read the disk, find the file systems, run grub.cfg,
/// boot Linux, talk on the serial line).
const MODULES: &[&str] = &[
    "part_gpt",
    "fat",
    "ext2",
    "search",
    "search_fs_uuid",
    "search_label",
    "normal",
    "configfile",
    "linux",
    "echo",
    "test",
    "serial",
    "terminal",
    "sleep",
];

/// Which kernel command line the template boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmdline {
    /// Classic interface names, the console on the screen and the serial line.
    Minimal,
    /// CloudStack's (`configure_grub.sh`): also Xen's console and early output, no mode
    /// setting, quiet, and a forced, repairing fsck of the root at every boot.
    Cloudstack,
    /// Cosmic's kickstart's: no crash kernel, a fixed video mode, the serial line then the
    /// screen (the last is /dev/console), no console blanking; classic interface names.
    Cosmic,
}

impl Cmdline {
    /// The arguments after `root=`.
    pub fn args(self, arch: Arch) -> String {
        let serial = arch.serial_console();
        match self {
            Cmdline::Minimal => {
                format!("ro net.ifnames=0 biosdevname=0 console=tty0 console={serial},115200n8")
            }
            Cmdline::Cloudstack => format!(
                "ro console=tty0 console={serial},115200n8 console=hvc0 earlyprintk=xen \
                 net.ifnames=0 biosdevname=0 nomodeset quiet fsck.mode=force fsck.repair=yes"
            ),
            Cmdline::Cosmic => format!(
                "ro net.ifnames=0 biosdevname=0 crashkernel=0@0 video=1024x768 \
                 console={serial},115200n8 console=tty0 consoleblank=0"
            ),
        }
    }
}

/// What grub.cfg needs.
#[derive(Debug, Clone)]
pub struct BootConfig {
    pub arch: Arch,
    pub cmdline: Cmdline,
    pub title: String,
    pub root_uuid: String,
    pub root_label: String,
    pub kernel: String,
    pub initrd: String,
}

/// The one grub.cfg, on the ESP.
pub fn grub_cfg(c: &BootConfig) -> String {
    let (uuid, label, kernel, initrd) = (&c.root_uuid, &c.root_label, &c.kernel, &c.initrd);
    let (title, args) = (c.title.replace('\'', ""), c.cmdline.args(c.arch));
    format!(
        "# Written by systemvm appliance build: boot the system VM, console on the serial line.\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set timeout=1\n\
         set default=0\n\
         search --no-floppy --fs-uuid --set=root {uuid}\n\
         menuentry '{title}' {{\n\
         \x20   linux {kernel} root=LABEL={label} {args}\n\
         \x20   initrd {initrd}\n\
         }}\n"
    )
}

/// The config built into both GRUB images: find the ESP, run its grub.cfg.
pub fn early_cfg(esp_uuid: &str) -> String {
    format!(
        "search --no-floppy --fs-uuid --set=root {esp_uuid}\nset prefix=($root)/EFI/BOOT\nconfigfile ($root)/EFI/BOOT/grub.cfg\n"
    )
}

/// Build the UEFI loader.
pub fn efi_image(
    runner: &mut Runner,
    arch: Arch,
    early: &Path,
    out: &Path,
) -> Result<(), CommandFailed> {
    mkimage(runner, arch.grub_efi_platform(), early, out, "efi_gop")
}

/// Build the legacy BIOS core image.
pub fn bios_core(
    runner: &mut Runner,
    platform: &str,
    early: &Path,
    out: &Path,
) -> Result<(), CommandFailed> {
    mkimage(runner, platform, early, out, "biosdisk")
}

/// `grub-mkimage` for `platform` with [`MODULES`] and `firmware`'s disk or video module.
fn mkimage(
    runner: &mut Runner,
    platform: &str,
    early: &Path,
    out: &Path,
    firmware: &str,
) -> Result<(), CommandFailed> {
    runner.run(
        Command::new("grub-mkimage")
            .args(["-O", platform])
            .arg("-d")
            .arg(grub_dir(platform))
            .arg("-o")
            .arg(out)
            .arg("-c")
            .arg(early)
            .args(["-p", "/EFI/BOOT"])
            .args(MODULES)
            .arg(firmware),
    )
}

// Offsets in boot.img and diskboot.img (grub-core/boot/i386/pc/{boot,diskboot}.S).
const BPB_START: usize = 0x03;
const BPB_END: usize = 0x5a;
const KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE: usize = 0x64;
const DRIVE_CHECK: usize = 0x66;
const NT_MAGIC: usize = 0x1b8;
const PART_END: usize = 0x1fe;
/// The blocklist at the end of core.img's first sector: start (u64), len (u16), segment.
const BLOCKLIST: usize = 512 - 12;
const FIRST_SEGMENT: u16 = 0x820;

/// boot.img made the MBR: its code, the existing BPB area and partition table kept, the
/// sector of core.img filled in, the boot drive taken from the BIOS, and the drive check
/// disabled (as grub-bios-setup does for hard disks).
pub fn mbr(boot_img: &[u8], existing: &[u8; 512], core_sector: u64) -> Result<[u8; 512]> {
    if boot_img.len() != 512 {
        bail!("boot.img is {} bytes, not 512", boot_img.len());
    }
    let mut out = [0u8; 512];
    out.copy_from_slice(boot_img);
    out[BPB_START..BPB_END].copy_from_slice(&existing[BPB_START..BPB_END]);
    out[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&core_sector.to_le_bytes());
    out[BOOT_DRIVE] = 0xff;
    out[DRIVE_CHECK] = 0x90;
    out[DRIVE_CHECK + 1] = 0x90;
    out[NT_MAGIC..PART_END].copy_from_slice(&existing[NT_MAGIC..PART_END]);
    out[510] = 0x55;
    out[511] = 0xaa;
    Ok(out)
}

/// core.img padded to whole sectors, its first sector's blocklist naming the rest, which
/// follows it on the disk from `first_sector + 1`.
pub fn patch_core(core: &[u8], first_sector: u64) -> Result<Vec<u8>> {
    if core.len() < 1024 {
        bail!("core.img is only {} bytes", core.len());
    }
    let sectors = core.len().div_ceil(512);
    let rest = u16::try_from(sectors - 1).context("core.img is too large")?;
    let mut out = core.to_vec();
    out.resize(sectors * 512, 0);
    out[BLOCKLIST..BLOCKLIST + 8].copy_from_slice(&(first_sector + 1).to_le_bytes());
    out[BLOCKLIST + 8..BLOCKLIST + 10].copy_from_slice(&rest.to_le_bytes());
    out[BLOCKLIST + 10..BLOCKLIST + 12].copy_from_slice(&FIRST_SEGMENT.to_le_bytes());
    Ok(out)
}

/// Put core.img into the BIOS boot partition and boot.img into the MBR of `disk`.
pub fn install_bios(disk: &Path, bios: &Extent, core: &[u8], boot_img: &[u8]) -> Result<()> {
    let core = patch_core(core, bios.first_sector())?;
    if core.len() as u64 > bios.size {
        bail!(
            "GRUB's core.img ({} bytes) does not fit the {} byte BIOS boot partition",
            core.len(),
            bios.size
        );
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .with_context(|| format!("cannot open {}", disk.display()))?;
    let mut existing = [0u8; 512];
    file.read_exact(&mut existing)
        .with_context(|| format!("cannot read the MBR of {}", disk.display()))?;
    let mbr = mbr(boot_img, &existing, bios.first_sector())?;
    file.seek(SeekFrom::Start(bios.first_sector() * SECTOR))
        .and_then(|_| file.write_all(&core))
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(&mbr))
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write GRUB into {}", disk.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_keeps_the_partition_table() {
        let boot: Vec<u8> = (0..512).map(|i| (i % 251) as u8).collect();
        let mut existing = [0u8; 512];
        existing[0x1be..0x1ce].copy_from_slice(&[
            0x00, 0, 2, 0, 0xee, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
        ]);
        existing[510] = 0x55;
        existing[511] = 0xaa;
        let m = mbr(&boot, &existing, 2048).unwrap();
        assert_eq!(&m[..BPB_START], &boot[..BPB_START]);
        assert_eq!(&m[BPB_START..BPB_END], &[0u8; BPB_END - BPB_START][..]);
        assert_eq!(u64::from_le_bytes(m[0x5c..0x64].try_into().unwrap()), 2048);
        assert_eq!(m[0x64], 0xff);
        assert_eq!(&m[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(&m[0x68..NT_MAGIC], &boot[0x68..NT_MAGIC]);
        assert_eq!(&m[0x1be..0x1ce], &existing[0x1be..0x1ce]);
        assert_eq!(&m[510..], &[0x55, 0xaa]);
        assert!(mbr(&boot[..100], &existing, 1).is_err());
    }

    #[test]
    fn core_blocklist_names_the_rest() {
        let core = vec![1u8; 512 * 3 + 10];
        let p = patch_core(&core, 2048).unwrap();
        assert_eq!(p.len(), 512 * 4);
        assert_eq!(u64::from_le_bytes(p[500..508].try_into().unwrap()), 2049);
        assert_eq!(u16::from_le_bytes(p[508..510].try_into().unwrap()), 3);
        assert_eq!(u16::from_le_bytes(p[510..512].try_into().unwrap()), 0x820);
        assert_eq!(&p[512..1024], &core[512..1024]);
    }

    #[test]
    fn grub_cfg_boots_by_uuid_on_the_serial_console() {
        let cfg = grub_cfg(&BootConfig {
            arch: Arch::Amd64,
            cmdline: Cmdline::Minimal,
            title: "CloudStack system VM 4.18.0".into(),
            root_uuid: "0f0e0d0c-0b0a-4908-8706-050403020100".into(),
            root_label: "ROOT".into(),
            kernel: "/vmlinuz".into(),
            initrd: "/initrd.img".into(),
        });
        assert!(cfg.contains(
            "search --no-floppy --fs-uuid --set=root 0f0e0d0c-0b0a-4908-8706-050403020100\n"
        ));
        assert!(cfg.contains("    linux /vmlinuz root=LABEL=ROOT ro"));
        assert!(cfg.contains("console=ttyS0,115200n8\n"));
        assert!(cfg.contains("    initrd /initrd.img\n"));
        assert!(cfg.contains("terminal_output serial console\n"));
    }

    #[test]
    fn cloudstack_command_line() {
        let args = Cmdline::Cloudstack.args(Arch::Amd64);
        for word in [
            "net.ifnames=0",
            "biosdevname=0",
            "console=ttyS0,115200n8",
            "console=hvc0",
            "fsck.repair=yes",
        ] {
            assert!(args.split(' ').any(|w| w == word), "{args}");
        }
        assert!(!args.contains("  "), "{args}");
    }
}
