//! The system VM template, built from Debian packages without an installer or a VM.
//!
//! A build is a chain of stages, each a small module with one job: [`rootfs`] runs
//! mmdebstrap into a tarball; [`configure`] unpacks it and makes it a system VM (the patch
//! service, the release file, fstab, cleanup), with [`cloudstack`] or [`cosmic`] for their
//! templates; [`filesystem`] turns the tree into an ext4
//! image and the ESP into a FAT image, both byte-reproducible; [`disk`] lays out the GPT in
//! a plain sparse file and places the images at their offsets; [`boot`] writes GRUB for
//! UEFI and legacy BIOS. [`build`] runs the stages in order through [`runner`], which times
//! them and keeps the log of a failed command. No loop device, no mount, no VM.
//!
//! After the raw disk: [`export`] writes every hypervisor's format with checksums (parallel
//! single-stream bzip2 in [`bz`], our own OVF/OVA writer in [`ova`], repeatable VHD, VMDK
//! and VHDX ids in [`stamp`], qemu-img in [`tool`]); [`seed`] installs an export into
//! secondary storage as CloudStack's `cloud-install-sys-tmplt` does; [`packer`] writes the
//! Packer template and preseed for the installer way.

pub mod arch;
pub mod boot;
pub mod build;
pub mod bz;
pub mod cloudstack;
pub mod configure;
pub mod cosmic;
pub mod disk;
pub mod export;
pub mod filesystem;
pub mod ids;
pub mod ova;
pub mod package_set;
pub mod packages;
pub mod packer;
pub mod rootfs;
pub mod runner;
pub mod seed;
pub mod sources;
pub mod stamp;
pub mod tool;
pub mod units;

/// The last component of `path` as text (lossy), or empty.
pub(crate) fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The directories of `path` that do not exist yet, innermost first (the order to remove
/// them in when the work that created them fails).
pub(crate) fn missing_dirs(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    path.ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(std::path::Path::to_path_buf)
        .collect()
}
