//! What differs between target architectures: the kernel package, the GRUB platforms and
//! the serial console. Everything else in the build is architecture-neutral.
//!
//! arm64 is planned for but not tested: its ESP loader comes from `grub-efi-arm64-bin`,
//! which Debian ships only for arm64 machines, so an arm64 template is built on an arm64
//! host (mmdebstrap and the disk assembly are the same). arm64 has no legacy BIOS boot.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    /// The Debian architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The kernel meta-package added when the package list names none.
    pub fn kernel_package(self) -> String {
        format!("linux-image-{self}")
    }

    /// GRUB's UEFI platform (`grub-mkimage -O`), its module directory's name.
    pub fn grub_efi_platform(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-efi",
            Arch::Arm64 => "arm64-efi",
        }
    }

    /// The Debian package holding that platform's modules.
    pub fn grub_efi_package(self) -> String {
        format!("grub-efi-{self}-bin")
    }

    /// The removable-media loader name on the ESP (UEFI's fallback path).
    pub fn efi_loader(self) -> &'static str {
        match self {
            Arch::Amd64 => "BOOTX64.EFI",
            Arch::Arm64 => "BOOTAA64.EFI",
        }
    }

    /// GRUB's legacy BIOS platform and package, where the architecture has one.
    pub fn grub_bios(self) -> Option<(&'static str, &'static str)> {
        match self {
            Arch::Amd64 => Some(("i386-pc", "grub-pc-bin")),
            Arch::Arm64 => None,
        }
    }

    /// The kernel's serial console device.
    pub fn serial_console(self) -> &'static str {
        match self {
            Arch::Amd64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        }
    }

    /// The Discoverable Partitions type GUID of this architecture's root partition.
    pub fn root_partition_type(self) -> &'static str {
        match self {
            Arch::Amd64 => "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
            Arch::Arm64 => "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.debian())
    }
}
