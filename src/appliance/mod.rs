//! The system VM template (appliance). After the raw GPT disk exists: exports for every
//! hypervisor with checksums (`export`, parallel single-stream bzip2 in `bz`, our own OVF/OVA writer in `ova`, repeatable VHD and
//! VMDK ids in `stamp`, qemu-img in `tool`), seeding secondary storage as CloudStack's
//! `cloud-install-sys-tmplt` does (`seed`), and the Packer template for the installer way
//! (`packer`).

pub mod bz;
pub mod export;
pub mod ova;
pub mod packer;
pub mod seed;
pub mod stamp;
pub mod tool;
