//! Seed secondary storage with a system VM template, as CloudStack's `cloud-install-sys-tmplt`
//! (and the `createtmplt.sh` it calls) does, without the database: decompress the image
//! (bzip2, gzip or zip, recognised by their magic bytes as `file` does), place it at
//! `template/tmpl/1/<id>/<uuid>.<ext>`, unpack an OVA beside itself, and write
//! `template.properties` with the same keys in the same order as those scripts.
//!
//! One difference on purpose: the scripts write the file size as `virtualsize`; we write the
//! disk's virtual size, read from the image (`qemu-img info`; for an OVA, the capacity in its
//! OVF), which is what the secondary storage VM reports to the management server.
//!
//! Atomic: everything is built in a temp directory beside the target and renamed into place;
//! an existing template directory is replaced only with `force`. A failure leaves no trace
//! (not even the `template/tmpl/1` directories it had to create).

use super::{ova, tool};
use crate::printer::Printer;
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The hypervisor a template is for, as cloud-install-sys-tmplt's `-h` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Hypervisor {
    Kvm,
    #[value(alias = "xen")]
    Xenserver,
    Vmware,
    Hyperv,
    #[value(alias = "ovm")]
    Ovm3,
    Lxc,
}

impl Hypervisor {
    /// (the default template id, the extension and `<ext>=true` key cloud-install-sys-tmplt
    /// uses, what `--hypervisor` takes, for messages)
    fn facts(self) -> (u64, &'static str, &'static str) {
        match self {
            Hypervisor::Xenserver => (1, "vhd", "a VHD"),
            Hypervisor::Kvm => (3, "qcow2", "a qcow2 image"),
            Hypervisor::Vmware => (8, "ova", "an OVA"),
            Hypervisor::Hyperv => (9, "vhd", "a VHD or VHDX"),
            Hypervisor::Lxc => (10, "qcow2", "a qcow2 image"),
            Hypervisor::Ovm3 => (12, "raw", "a raw disk"),
        }
    }

    /// The template id CloudStack's schema seeds for this hypervisor's system VM template.
    pub fn default_template_id(self) -> u64 {
        self.facts().0
    }

    /// The name `--hypervisor` takes.
    fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub secondary: PathBuf,
    pub hypervisor: Hypervisor,
    pub image: PathBuf,
    pub template_id: Option<u64>,
    pub uuid: Option<String>,
    pub force: bool,
}

/// How an image file is compressed, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    Plain,
    Bzip2,
    Gzip,
    Zip,
}

fn packing(path: &Path) -> Result<Packing> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let n = f
        .read(&mut magic)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(match &magic[..n] {
        [b'B', b'Z', b'h', _] => Packing::Bzip2,
        [0x1f, 0x8b, ..] => Packing::Gzip,
        [b'P', b'K', 3, 4] => Packing::Zip,
        _ => Packing::Plain,
    })
}

/// Copy or decompress `src` into `dst`, streamed.
fn unpack(src: &Path, dst: &Path) -> Result<()> {
    let kind = packing(src)?;
    let input = File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
    let mut out = BufWriter::with_capacity(
        1 << 20,
        File::create(dst).with_context(|| format!("cannot write {}", dst.display()))?,
    );
    let reader = BufReader::with_capacity(1 << 20, input);
    let copied = match kind {
        Packing::Plain => io::copy(&mut BufReader::new(reader), &mut out),
        Packing::Bzip2 => io::copy(&mut bzip2::read::MultiBzDecoder::new(reader), &mut out),
        Packing::Gzip => io::copy(&mut flate2::read::MultiGzDecoder::new(reader), &mut out),
        Packing::Zip => {
            let mut archive = zip::ZipArchive::new(reader)
                .map_err(|e| anyhow::anyhow!("{} is not a readable zip: {e}", src.display()))?;
            let index = (0..archive.len())
                .find(|&i| archive.by_index(i).is_ok_and(|f| f.is_file()))
                .ok_or_else(|| anyhow::anyhow!("{} holds no file", src.display()))?;
            let mut member = archive
                .by_index(index)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", src.display()))?;
            io::copy(&mut member, &mut out)
        }
    };
    copied
        .and_then(|_| out.flush())
        .and_then(|_| out.get_ref().sync_all())
        .with_context(|| format!("cannot decompress {}", src.display()))
}

fn uuid_ok(u: &str) -> bool {
    let groups: Vec<&str> = u.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A random (version 4) UUID, as `uuidgen` gives.
fn new_uuid() -> String {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    super::ids::uuid_v4(b)
}

/// Install the template (see the module header); returns the installed image's path.
pub fn seed(opts: &SeedOptions, printer: &Printer) -> Result<PathBuf> {
    if !opts.secondary.is_dir() {
        bail!(
            "secondary storage {} is not a directory (is it mounted?)",
            opts.secondary.display()
        );
    }
    if !opts.image.is_file() {
        bail!("template image {} is not a file", opts.image.display());
    }
    let id = opts
        .template_id
        .unwrap_or_else(|| opts.hypervisor.default_template_id());
    if id == 0 {
        bail!("--template-id must be a positive number");
    }
    let uuid = match &opts.uuid {
        Some(u) if uuid_ok(u) => u.to_ascii_lowercase(),
        Some(u) => bail!("--uuid {u:?} is not a UUID (like 3f2a...-....-....-....-............)"),
        None => new_uuid(),
    };
    let parent = opts.secondary.join("template/tmpl/1");
    let target = parent.join(id.to_string());
    if target.exists() && !opts.force {
        bail!(
            "{} already exists; use --force to replace it, or --template-id for another id",
            target.display()
        );
    }
    let created = super::missing_dirs(&parent);
    fs::create_dir_all(&parent)
        .map_err(|e| io::Error::from(e.kind()))
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let result = seed_into(opts, id, &uuid, &parent, &target, printer);
    if result.is_err() {
        for dir in &created {
            let _ = fs::remove_dir(dir);
        }
    }
    result
}

fn seed_into(
    opts: &SeedOptions,
    id: u64,
    uuid: &str,
    parent: &Path,
    target: &Path,
    printer: &Printer,
) -> Result<PathBuf> {
    let work = tempfile::Builder::new()
        .prefix(&format!(".{id}."))
        .suffix(".tmp")
        .tempdir_in(parent)
        .map_err(|e| io::Error::from(e.kind()))
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let staged = work.path().join(format!("{uuid}.part"));
    let bar = printer.spinner(format!("decompressing {}", opts.image.display()));
    let unpacked = unpack(&opts.image, &staged);
    bar.finish_and_clear();
    unpacked?;
    let (ext, virtual_size) = identify(opts, &staged)?;

    let file_name = format!("{uuid}.{ext}");
    let file = work.path().join(&file_name);
    fs::rename(&staged, &file).with_context(|| format!("cannot write {}", file.display()))?;
    let size = fs::metadata(&file)?.len();
    if ext == "ova" {
        extract_ova(&file, work.path())?;
    }
    let properties = template_properties(&file_name, ext, id, size, virtual_size);
    write_properties(work.path(), &properties)?;
    into_place(work.keep(), parent, target, id)?;
    printer.info(format!(
        "seeded {} template {id} at {} ({} disk)",
        opts.hypervisor.name(),
        target.join(&file_name).display(),
        super::export::human_size(virtual_size)
    ));
    Ok(target.join(file_name))
}

/// What the image really is for the hypervisor (its file extension), and the size of the
/// disk inside.
fn identify(opts: &SeedOptions, staged: &Path) -> Result<(&'static str, u64)> {
    let hv = opts.hypervisor;
    if hv == Hypervisor::Vmware {
        let text = ova::read_ovf(staged).map_err(|_| {
            anyhow::anyhow!(
                "{} is not an OVA (a tar with an .ovf), which --hypervisor vmware takes",
                opts.image.display()
            )
        })?;
        let capacity = ova::disk_capacity(&text).ok_or_else(|| {
            anyhow::anyhow!("the OVF in {} has no disk capacity", opts.image.display())
        })?;
        return Ok(("ova", capacity));
    }
    let info = tool::image_info(staged, None)?;
    let (ext, info) = match (hv, info.format.as_str()) {
        (Hypervisor::Kvm | Hypervisor::Lxc, "qcow2") => ("qcow2", info),
        (Hypervisor::Xenserver | Hypervisor::Hyperv, "vpc") => ("vhd", info),
        (Hypervisor::Hyperv, "vhdx") => ("vhdx", info),
        // A fixed VHD reads as raw unless asked for as vpc.
        (Hypervisor::Xenserver | Hypervisor::Hyperv, "raw") => {
            match tool::image_info(staged, Some("vpc")) {
                Ok(vpc) => ("vhd", vpc),
                Err(_) => bail!(wrong_kind(opts, "raw")),
            }
        }
        (Hypervisor::Ovm3, "raw") => ("raw", info),
        (_, found) => bail!(wrong_kind(opts, found)),
    };
    debug_assert!(ext == hv.facts().1 || ext == "vhdx");
    Ok((ext, info.virtual_size))
}

/// The keys and order of createtmplt.sh, then cloud-install-sys-tmplt's additions.
fn template_properties(
    file_name: &str,
    ext: &str,
    id: u64,
    size: u64,
    virtual_size: u64,
) -> Vec<(String, String)> {
    let n = |v: u64| v.to_string();
    vec![
        ("filename".into(), file_name.into()),
        ("description".into(), "SystemVM Template".into()),
        ("hvm".into(), "false".into()),
        ("size".into(), n(size)),
        (ext.into(), "true".into()),
        ("id".into(), n(id)),
        ("public".into(), "true".into()),
        (format!("{ext}.filename"), file_name.into()),
        ("uniquename".into(), format!("routing-{id}")),
        (format!("{ext}.virtualsize"), n(virtual_size)),
        ("virtualsize".into(), n(virtual_size)),
        (format!("{ext}.size"), n(size)),
    ]
}

/// `template.properties`, flushed, in the work directory (made 0755, as CloudStack's are).
fn write_properties(work: &Path, properties: &[(String, String)]) -> Result<()> {
    let text: String = properties
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let props = work.join("template.properties");
    fs::write(&props, text).with_context(|| format!("cannot write {}", props.display()))?;
    File::open(&props)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", props.display()))?;
    fs::set_permissions(work, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Rename `work` to `target`; an old template (only with --force) goes only once the new
/// one is there, and comes back if the rename fails.
fn into_place(work: PathBuf, parent: &Path, target: &Path, id: u64) -> Result<()> {
    let old = if target.exists() {
        let trash = parent.join(format!(".{id}.old.{}", std::process::id()));
        fs::rename(target, &trash)
            .with_context(|| format!("cannot move the old {} aside", target.display()))?;
        Some(trash)
    } else {
        None
    };
    if let Err(e) = fs::rename(&work, target) {
        if let Some(trash) = &old {
            let _ = fs::rename(trash, target);
        }
        let _ = fs::remove_dir_all(&work);
        return Err(e).with_context(|| format!("cannot rename into {}", target.display()));
    }
    if let Some(trash) = old {
        let _ = fs::remove_dir_all(trash);
    }
    Ok(())
}

fn wrong_kind(opts: &SeedOptions, found: &str) -> String {
    format!(
        "{} holds a {found} image, but --hypervisor {} takes {}",
        opts.image.display(),
        opts.hypervisor.name(),
        opts.hypervisor.facts().2
    )
}

/// Unpack an OVA's members beside it (as cloud-install-sys-tmplt's `tar xvf` does), refusing
/// any member name that is not a plain file name.
fn extract_ova(ova: &Path, dir: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(BufReader::new(
        File::open(ova).with_context(|| format!("cannot read {}", ova.display()))?,
    ));
    let entries = archive
        .entries()
        .with_context(|| format!("cannot read {}", ova.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("cannot read {}", ova.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().into_owned();
        let plain = !name.is_empty() && !name.contains('/') && !name.starts_with('.');
        if !plain || name == "template.properties" {
            bail!("{} has a member named {name:?}; refusing it", ova.display());
        }
        let out = dir.join(&name);
        let mut file =
            File::create(&out).with_context(|| format!("cannot write {}", out.display()))?;
        io::copy(&mut entry, &mut file)
            .and_then(|_| file.sync_all())
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_checked_and_made() {
        assert!(uuid_ok("3f2a9c4e-1b2c-4d5e-8f90-0123456789ab"));
        assert!(!uuid_ok("3f2a9c4e-1b2c-4d5e-8f90"));
        assert!(!uuid_ok("../../etc/passwd-aaaa-bbbb-cccc-dddddddddddd"));
        let u = new_uuid();
        assert!(uuid_ok(&u), "{u}");
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn template_ids_match_cloudstack_schema() {
        assert_eq!(Hypervisor::Xenserver.default_template_id(), 1);
        assert_eq!(Hypervisor::Kvm.default_template_id(), 3);
        assert_eq!(Hypervisor::Vmware.default_template_id(), 8);
    }
}
