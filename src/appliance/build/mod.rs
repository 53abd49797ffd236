//! `appliance build` from start to the raw disk: checks everything it can before touching
//! anything (bad input leaves nothing behind), then runs the stages in a temp directory
//! beside the output and renames the finished disk into place. The rootfs tarball is kept
//! in the output directory as soon as mmdebstrap made it, so a later build (or a retry
//! after a failure further on) can reuse it with `--rootfs`. A failed stage keeps the log.

mod contents;
mod preflight;

pub use contents::{CloudstackTree, Contents, CosmicTree};

pub use preflight::{check_label, check_suite, label_ok, preflight};

use crate::appliance::arch::Arch;
use crate::appliance::boot::{self, BootConfig, Cmdline};
use crate::appliance::cloudstack::{self, Scripts};
use crate::appliance::configure::{self, Config, Flavor};
use crate::appliance::cosmic;
use crate::appliance::disk::{self, Layout};
use crate::appliance::filesystem::{self, Ext4, Fat};
use crate::appliance::ids::{self, Ids};
use crate::appliance::rootfs::{self, Rootfs};
use crate::appliance::runner::Runner;
use crate::appliance::sources;
use crate::printer::Printer;
use crate::size::MIB;
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Everything a build needs, already validated by the CLI where it can be.
#[derive(Debug, Clone)]
pub struct Options {
    pub output_dir: PathBuf,
    pub version: String,
    pub flavor: Flavor,
    pub suite: String,
    pub arch: Arch,
    pub mirror: Option<String>,
    /// The package list, kernel included.
    pub packages: Vec<String>,
    /// An mmdebstrap tarball to reuse instead of running mmdebstrap.
    pub rootfs: Option<PathBuf>,
    pub root_label: String,
    pub disk_mib: u64,
    /// What goes in beyond the packages: our patch service, or CloudStack's template.
    pub contents: Contents,
    /// Local `.deb` files installed with the packages (`--extra-deb`).
    pub extra_debs: Vec<PathBuf>,
    pub epoch: i64,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub disk: PathBuf,
    pub rootfs: PathBuf,
    pub layout: Layout,
}

/// `systemvmtemplate-<version>-<arch>.raw`
pub fn raw_name(version: &str, arch: Arch) -> String {
    format!("systemvmtemplate-{version}-{arch}.raw")
}

/// `rootfs-<suite>-<arch>.tar`, the kept mmdebstrap output.
pub fn rootfs_name(suite: &str, arch: Arch) -> String {
    format!("rootfs-{suite}-{arch}.tar")
}

/// Run the build. Call [`preflight`] first.
pub fn run(o: &Options, printer: &Printer) -> Result<Built> {
    let layout = Layout::new(o.disk_mib)?;
    fs::create_dir_all(&o.output_dir)
        .with_context(|| format!("cannot create {}", o.output_dir.display()))?;
    let disk_path = o.output_dir.join(raw_name(&o.version, o.arch));
    let work = crate::atomic::temp_dir_beside(&disk_path)?;
    let log_path = o
        .output_dir
        .join(format!("systemvmtemplate-{}-{}.log", o.version, o.arch));
    let mut runner = Runner::new(printer, &log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    match stages(o, &layout, work.path(), &disk_path, &mut runner) {
        Ok(rootfs) => {
            drop(runner);
            let _ = fs::remove_file(&log_path);
            Ok(Built {
                disk: disk_path,
                rootfs,
                layout,
            })
        }
        Err(err) => {
            drop(runner);
            let log = log_path.display();
            Err(anyhow::anyhow!("{err:#}; the build log is kept in {log}"))
        }
    }
}

/// The values every stage shares: the options, the layout, the work directory and the ids.
struct Ctx<'a> {
    o: &'a Options,
    layout: &'a Layout,
    work: &'a Path,
    ids: Ids,
    esp_id: String,
    esp_uuid: String,
    root_uuid: String,
}

fn stages(
    o: &Options,
    layout: &Layout,
    work: &Path,
    disk_path: &Path,
    runner: &mut Runner,
) -> Result<PathBuf> {
    let ids = Ids::new(format!(
        "{}\0{}\0{:?}\0{}\0{}\0{}\0{}",
        o.epoch, o.version, o.flavor, o.arch, o.root_label, o.disk_mib, o.suite
    ));
    let esp_id = ids.fat_volume_id("esp");
    let c = Ctx {
        o,
        layout,
        work,
        esp_uuid: ids::fat_uuid(&esp_id),
        root_uuid: ids.uuid("root-fs").to_lowercase(),
        esp_id,
        ids,
    };
    let scripts = match &o.contents {
        Contents::Cloudstack(tree) => Some(scripts_stage(&c, tree, runner)?),
        Contents::Minimal { .. } | Contents::Cosmic(_) => None,
    };
    let rootfs = rootfs_stage(&c, runner)?;
    let tree = work.join("root");
    let boot_files = configure_stage(&c, &rootfs, &tree, scripts.as_ref(), runner)?;
    let core_img = bootloader_stage(&c, &boot_files, runner)?;
    filesystem_stage(&c, &tree, runner)?;
    partition_stage(&c, &core_img, disk_path, runner)?;
    Ok(rootfs)
}

/// Stage 0, scripts (CloudStack's template): the tree's cloud-scripts.tgz and its signature,
/// before anything slow, so a bad tree or `--agent-jars-from` fails at once.
fn scripts_stage(c: &Ctx, tree: &CloudstackTree, runner: &mut Runner) -> Result<Scripts> {
    runner.stage("scripts", "cloud-scripts.tgz from the tree", |_| {
        let version = crate::version::Version::parse(&c.o.version)?;
        let dir = c.work.join("scripts");
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let s = cloudstack::scripts(
            &tree.tree,
            tree.agent_jars_from.as_deref(),
            &version,
            c.o.epoch,
            &dir,
        )?;
        let summary = format!(
            "{} from {}, {} signature {}, {} agent JARs",
            crate::layout::SCRIPTS_NAME,
            tree.tree.display(),
            s.digest.name(),
            s.signature,
            s.jars
        );
        Ok((s, summary))
    })
}

/// Stage 1, rootfs: mmdebstrap, or the tarball given.
fn rootfs_stage(c: &Ctx, runner: &mut Runner) -> Result<PathBuf> {
    let o = c.o;
    runner.stage("rootfs", "root file system", |r| match &o.rootfs {
        Some(tar) => Ok((tar.clone(), format!("reusing {}", tar.display()))),
        None => {
            let mirror = match &o.mirror {
                Some(m) => m.clone(),
                None => {
                    let text = sources::host_sources_for(Path::new("/"), &o.suite)?;
                    let path = c.work.join("apt.sources");
                    fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    path.display().to_string()
                }
            };
            let tmp = c.work.join("rootfs.tar");
            let (_staged, debs) = rootfs::stage_debs(&o.extra_debs)?;
            let spec = Rootfs {
                suite: &o.suite,
                arch: o.arch,
                packages: &o.packages,
                debs: &debs,
                mirror: &mirror,
                epoch: o.epoch,
            };
            rootfs::mmdebstrap(r, &spec, &tmp)?;
            let kept = o.output_dir.join(rootfs_name(&o.suite, o.arch));
            crate::atomic::rename_into_place(&tmp, &kept)?;
            let size = fs::metadata(&kept).map(|m| m.len()).unwrap_or(0);
            Ok((
                kept.clone(),
                format!(
                    "{} packages and {} local .deb from {} ({} MiB), kept as {} (reuse with --rootfs)",
                    o.packages.len(),
                    o.extra_debs.len(),
                    o.suite,
                    size / MIB,
                    kept.display()
                ),
            ))
        }
    })
}

/// Stage 2, configure: unpack, make it a system VM (ours or CloudStack's), clamp times.
fn configure_stage(
    c: &Ctx,
    rootfs: &Path,
    tree: &Path,
    scripts: Option<&Scripts>,
    runner: &mut Runner,
) -> Result<configure::BootFiles> {
    let o = c.o;
    runner.stage("configure", "system VM configuration", |r| {
        fs::create_dir(tree).with_context(|| format!("cannot create {}", tree.display()))?;
        rootfs::unpack(r, rootfs, tree)?;
        let mut summary = format!("{} {}", o.flavor.release_file(), o.version);
        let payload = match (&o.contents, scripts) {
            (Contents::Cloudstack(t), Some(s)) => {
                let done = cloudstack::install(r, tree, s, &t.services)?;
                summary.push_str(&format!(
                    ", {} unpacked, {} enabled, {} disabled ({} not in the image)",
                    crate::layout::SCRIPTS_NAME,
                    done.enabled.join(" "),
                    done.disabled,
                    done.absent.len()
                ));
                None
            }
            (Contents::Cosmic(t), _) => {
                let done = cosmic::install(tree, &t.tree, &t.services)?;
                summary.push_str(&format!(
                    ", {} enabled, {} disabled, not in the image: {}; conntrack modules: {}",
                    done.services.enabled.join(" "),
                    done.services.disabled,
                    list_or_none(&done.not_enabled),
                    list_or_none(&done.modules)
                ));
                None
            }
            (Contents::Minimal { payload }, _) => {
                summary.push_str(", systemvm-patch.service enabled");
                Some(payload.clone())
            }
            (Contents::Cloudstack(_), None) => bail!("the scripts stage did not run"),
        };
        let cfg = Config {
            flavor: o.flavor,
            version: o.version.clone(),
            epoch: o.epoch,
            root_label: o.root_label.clone(),
            esp_uuid: c.esp_uuid.clone(),
            payload,
        };
        let files = configure::configure(tree, &cfg)?;
        filesystem::clamp_times(r, tree, o.epoch)?;
        summary.push_str(&format!(", kernel {}", files.kernel));
        Ok((files, summary))
    })
}

/// Stage 3, bootloader: grub.cfg and the GRUB images; returns where BIOS core.img is.
fn bootloader_stage(
    c: &Ctx,
    boot_files: &configure::BootFiles,
    runner: &mut Runner,
) -> Result<PathBuf> {
    let o = c.o;
    let staging = c.work.join("esp");
    let efi_dir = staging.join("EFI/BOOT");
    let core_img = c.work.join("core.img");
    runner.stage("bootloader", "GRUB for UEFI and BIOS", |r| {
        fs::create_dir_all(&efi_dir)
            .with_context(|| format!("cannot create {}", efi_dir.display()))?;
        let product = match o.flavor {
            Flavor::Cloudstack => "CloudStack",
            Flavor::Cosmic => "Cosmic",
        };
        let cmdline = match &o.contents {
            Contents::Minimal { .. } => Cmdline::Minimal,
            Contents::Cloudstack(_) => Cmdline::Cloudstack,
            Contents::Cosmic(_) => Cmdline::Cosmic,
        };
        let cfg = boot::grub_cfg(&BootConfig {
            arch: o.arch,
            cmdline,
            title: format!("{product} system VM {}", o.version),
            root_uuid: c.root_uuid.clone(),
            root_label: o.root_label.clone(),
            kernel: boot_files.kernel.clone(),
            initrd: boot_files.initrd.clone(),
        });
        fs::write(efi_dir.join("grub.cfg"), cfg).context("cannot write grub.cfg")?;
        let early = c.work.join("early.cfg");
        fs::write(&early, boot::early_cfg(&c.esp_uuid)).context("cannot write early.cfg")?;
        boot::efi_image(r, o.arch, &early, &efi_dir.join(o.arch.efi_loader()))?;
        let mut summary = format!("EFI/BOOT/{}", o.arch.efi_loader());
        if let Some((platform, _)) = o.arch.grub_bios() {
            boot::bios_core(r, platform, &early, &core_img)?;
            summary.push_str(&format!(" and {platform} core.img"));
        }
        filesystem::clamp_times(r, &staging, o.epoch)?;
        Ok((core_img.clone(), summary))
    })
}

/// Stage 4, filesystem: ext4 from the tree, FAT from the ESP staging.
fn filesystem_stage(c: &Ctx, tree: &Path, runner: &mut Runner) -> Result<()> {
    let (o, layout) = (c.o, c.layout);
    let root_img = c.work.join("root.img");
    let esp_img = c.work.join("esp.img");
    runner.stage("filesystem", "ext4 root and FAT ESP", |r| {
        let used = tree_bytes(tree);
        // Room for inode tables, the journal and the 5% reserve.
        if used > layout.root.size / 100 * 85 {
            bail!(
                "the root file system ({} MiB of files) does not fit the {} MiB root partition: raise --disk-size",
                used / MIB,
                layout.root.size / MIB
            );
        }
        filesystem::ext4(
            r,
            tree,
            &root_img,
            &Ext4 {
                label: o.root_label.clone(),
                uuid: c.root_uuid.clone(),
                hash_seed: c.ids.uuid("root-hash-seed").to_lowercase(),
                size: layout.root.size,
                epoch: o.epoch,
            },
        )?;
        let _ = fs::remove_dir_all(tree);
        filesystem::vfat(
            r,
            &c.work.join("esp"),
            &esp_img,
            &Fat {
                label: "EFI".into(),
                volume_id: c.esp_id.clone(),
                size: layout.esp.size,
                epoch: o.epoch,
            },
        )?;
        Ok((
            (),
            format!(
                "ext4 {} ({} MiB of files in {} MiB), FAT32 ESP {}",
                o.root_label,
                used / MIB,
                layout.root.size / MIB,
                c.esp_uuid
            ),
        ))
    })
}

/// Stage 5, partition: the GPT in a sparse file, the images at their offsets, the MBR code; the
/// finished disk renamed into place.
fn partition_stage(c: &Ctx, core_img: &Path, disk_path: &Path, runner: &mut Runner) -> Result<()> {
    let (o, layout) = (c.o, c.layout);
    let tmp_disk = c.work.join("disk.raw");
    runner.stage("partition", "GPT disk", |r| {
        disk::create(&tmp_disk, layout)
            .with_context(|| format!("cannot create {}", tmp_disk.display()))?;
        disk::partition(
            r,
            &tmp_disk,
            &layout.sfdisk_script(&c.ids, o.arch, &o.root_label),
        )?;
        disk::place(r, &c.work.join("esp.img"), &tmp_disk, &layout.esp)?;
        disk::place(r, &c.work.join("root.img"), &tmp_disk, &layout.root)?;
        let mut summary = format!(
            "{} MiB GPT: BIOS boot, ESP {} MiB, {} {} MiB",
            layout.disk_size / MIB,
            layout.esp.size / MIB,
            o.root_label,
            layout.root.size / MIB
        );
        if let Some((platform, _)) = o.arch.grub_bios() {
            let core = fs::read(core_img).context("cannot read core.img")?;
            let boot_img = fs::read(boot::grub_dir(platform).join("boot.img"))
                .context("cannot read GRUB's boot.img")?;
            boot::install_bios(&tmp_disk, &layout.bios, &core, &boot_img)?;
            summary.push_str(", GRUB in the MBR");
        }
        fs::File::open(&tmp_disk)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot flush {}", tmp_disk.display()))?;
        crate::atomic::rename_into_place(&tmp_disk, disk_path)?;
        Ok(((), summary))
    })
}

/// `a b c`, or `none`.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(" ")
    }
}

/// Bytes the tree occupies (allocated blocks), not following symlinks.
fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(m) = e.path().symlink_metadata() {
                total += m.blocks() * 512;
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        assert_eq!(
            raw_name("4.18.0", Arch::Amd64),
            "systemvmtemplate-4.18.0-amd64.raw"
        );
        assert_eq!(
            rootfs_name("bookworm", Arch::Arm64),
            "rootfs-bookworm-arm64.tar"
        );
        assert!(check_label("SLX_SYS").is_ok());
        assert!(check_label("ROOT").is_ok());
        assert!(check_label("").is_err());
        assert!(check_label("has space").is_err());
        assert!(check_label("seventeen_chars_x").is_err());
        assert!(check_suite("bookworm").is_ok());
        assert!(check_suite("Bookworm;rm").is_err());
    }
}
