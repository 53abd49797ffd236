//! From the raw GPT disk to what each hypervisor imports, named as CloudStack names its
//! templates (`systemvmtemplate-<version>-<arch>-<hypervisor>.<ext>`):
//!
//! | format | file | how |
//! |---|---|---|
//! | kvm | `-kvm.qcow2.bz2` | `qemu-img convert -c -O qcow2` (`compat=0.10` on request; a backing file with `--base`), bzip2 |
//! | xen | `-xen.vhd.bz2` | `qemu-img convert -O vpc -o subformat=dynamic`, bzip2 |
//! | vmware | `-vmware.ova` | streamOptimized VMDK from qemu-img, our own OVF and OVA ([`super::ova`]) |
//! | hyperv | `-hyperv.vhd.zip` | dynamic VHD (generation 1) or VHDX (generation 2), zip |
//! | ovm | `-ovm.raw.bz2` | the raw disk, bzip2 |
//!
//! Everything streams (bzip2, zip and tar through readers and writers; an image is never held
//! in memory). All work happens in a temp directory inside the output directory; only when
//! every format and `md5sum.txt` / `sha512sum.txt` are done are the files renamed into place,
//! so a failure leaves nothing behind and names the command that failed.
//!
//! Reproducible: with the same raw disk and `SOURCE_DATE_EPOCH`, every export is byte for
//! byte the same: qcow2 and raw as qemu-img writes them, VHD, VMDK and VHDX once
//! [`super::stamp`] has replaced the times and ids qemu-img draws, the OVA and the zip with
//! fixed mtimes.

mod job;

use super::ova::{GuestOs, ManifestHash};
use super::{file_name, tool};
use crate::hashing::{self, Algorithm};
use crate::printer::Printer;
use anyhow::{bail, Context, Result};
use job::Job;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One export format, by the hypervisor that imports it (named as clap names the variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Format {
    Kvm,
    #[value(alias = "xenserver")]
    Xen,
    Vmware,
    Hyperv,
    #[value(alias = "ovm3")]
    Ovm,
}

impl Format {
    /// Parse one name, any case (`xenserver` and `ovm3` are accepted too).
    pub fn parse(name: &str) -> Option<Format> {
        <Format as clap::ValueEnum>::from_str(name.trim(), true).ok()
    }

    /// Parse a comma-separated list; duplicates are dropped, order is kept.
    pub fn parse_list(list: &str) -> Result<Vec<Format>> {
        let mut formats = vec![];
        for word in list.split(',').filter(|w| !w.trim().is_empty()) {
            let Some(f) = Format::parse(word) else {
                bail!(
                    "unknown export format {:?} in --formats (choose from kvm, xen, vmware, hyperv, ovm)",
                    word.trim()
                );
            };
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
        if formats.is_empty() {
            bail!("--formats is empty (choose from kvm, xen, vmware, hyperv, ovm)");
        }
        Ok(formats)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self);
        f.write_str(value.as_ref().map_or("", |v| v.get_name()))
    }
}

/// Hyper-V VM generation: 1 takes a VHD, 2 (UEFI) takes a VHDX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HypervGeneration {
    #[default]
    One,
    Two,
}

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub version: String,
    pub arch: String,
    pub formats: Vec<Format>,
    /// qcow2 `compat=0.10`, for KVM hosts with QEMU older than 1.1.
    pub qcow2_compat_010: bool,
    pub ova_manifest: ManifestHash,
    /// VMware virtual hardware version (`vmx-N`).
    pub vmx_version: u32,
    pub vmware_guest: GuestOs,
    pub hyperv_generation: HypervGeneration,
    /// KVM export as an overlay with this qcow2 as its backing file.
    pub base: Option<PathBuf>,
    /// Timestamps written into the exports; also makes VHD and VMDK ids repeatable.
    pub epoch: Option<i64>,
    /// The VM the OVF describes.
    pub cpus: u32,
    pub memory_mib: u32,
    /// Formats exported at the same time (default: the number of CPUs).
    pub jobs: usize,
}

impl ExportOptions {
    /// Defaults for everything but version and arch.
    pub fn new(version: impl Into<String>, arch: impl Into<String>) -> Self {
        ExportOptions {
            version: version.into(),
            arch: arch.into(),
            formats: clap::ValueEnum::value_variants().to_vec(),
            qcow2_compat_010: false,
            ova_manifest: ManifestHash::Sha256,
            vmx_version: 13,
            vmware_guest: GuestOs::OtherLinux64,
            hyperv_generation: HypervGeneration::One,
            base: None,
            epoch: None,
            cpus: 1,
            memory_mib: 512,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// `systemvmtemplate-<version>-<arch>`
    pub fn stem(&self) -> String {
        format!("systemvmtemplate-{}-{}", self.version, self.arch)
    }
}

/// One finished export.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub format: Format,
    pub path: PathBuf,
    pub size: u64,
    pub md5: String,
    pub sha512: String,
}

impl Artifact {
    /// The finished file at `path`: its size, md5 and sha512, read in one pass.
    pub fn of(format: Format, path: PathBuf) -> Result<Artifact> {
        let sums = hashing::of_file(&path, &[Algorithm::Md5, Algorithm::Sha512])
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Artifact {
            format,
            size: sums.size,
            md5: sums.get(Algorithm::Md5).to_string(),
            sha512: sums.get(Algorithm::Sha512).to_string(),
            path,
        })
    }

    /// The checksum form CloudStack's registerTemplate takes.
    pub fn cloudstack_checksum(&self) -> String {
        format!("{{SHA-512}}{}", self.sha512)
    }
}

fn file_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-~".contains(&b))
        && !s.starts_with('.')
}

/// Check that `raw` is a raw disk image with a partition table; its size in bytes.
pub fn check_raw(raw: &Path) -> Result<u64> {
    let meta = fs::metadata(raw).with_context(|| format!("cannot read {}", raw.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", raw.display());
    }
    let info = tool::image_info(raw, None)?;
    if info.format != "raw" {
        bail!(
            "{} is a {} image; export takes the raw disk (qemu-img convert -O raw makes one)",
            raw.display(),
            info.format
        );
    }
    let size = meta.len();
    let mut sector = [0u8; 512];
    let readable = size >= 1024
        && size % 512 == 0
        && File::open(raw)
            .and_then(|mut f| f.read_exact(&mut sector))
            .is_ok();
    if !readable || sector[510..512] != [0x55, 0xaa] {
        bail!(
            "{} is not a disk image: no partition table (MBR or GPT) in its first sector",
            raw.display()
        );
    }
    Ok(size)
}

fn check_base(base: &Path) -> Result<PathBuf> {
    let abs = fs::canonicalize(base)
        .with_context(|| format!("cannot read base image {}", base.display()))?;
    let info = tool::image_info(&abs, None)?;
    if info.format != "qcow2" {
        bail!(
            "base image {} is {}, not qcow2 (convert it with qemu-img convert -O qcow2)",
            base.display(),
            info.format
        );
    }
    Ok(abs)
}

/// The checksum files and what each lists.
type Sum = fn(&Artifact) -> &str;
const SUMS: [(&str, Sum); 2] = [
    ("md5sum.txt", |a| a.md5.as_str()),
    ("sha512sum.txt", |a| a.sha512.as_str()),
];

/// Export `raw` into `out_dir` in every format `opts` asks for; `md5sum.txt` and
/// `sha512sum.txt` list what was written.
pub fn export(
    raw: &Path,
    out_dir: &Path,
    opts: &ExportOptions,
    printer: &Printer,
) -> Result<Vec<Artifact>> {
    if !file_name_ok(&opts.version) {
        bail!(
            "version {:?} cannot be part of a file name (letters, digits, . _ + - ~)",
            opts.version
        );
    }
    if !file_name_ok(&opts.arch) {
        bail!("architecture {:?} is not a valid name", opts.arch);
    }
    if opts.formats.is_empty() {
        bail!("no export format chosen");
    }
    if !(4..=21).contains(&opts.vmx_version) {
        bail!(
            "virtual hardware version vmx-{} does not exist (4 to 21)",
            opts.vmx_version
        );
    }
    let capacity = check_raw(raw)?;
    let base = match &opts.base {
        Some(b) if opts.formats.contains(&Format::Kvm) => Some(check_base(b)?),
        Some(_) => bail!("--base applies to the kvm export, which --formats leaves out"),
        None => None,
    };

    let created = if out_dir.exists() {
        if !out_dir.is_dir() {
            bail!("output directory {} is not a directory", out_dir.display());
        }
        false
    } else {
        fs::create_dir(out_dir)
            .map_err(|e| io::Error::from(e.kind()))
            .with_context(|| format!("cannot create output directory {}", out_dir.display()))?;
        true
    };
    let result = export_into(raw, capacity, base.as_deref(), out_dir, opts, printer);
    if result.is_err() && created {
        let _ = fs::remove_dir_all(out_dir);
    }
    result
}

fn export_into(
    raw: &Path,
    capacity: u64,
    base: Option<&Path>,
    out_dir: &Path,
    opts: &ExportOptions,
    printer: &Printer,
) -> Result<Vec<Artifact>> {
    let work = tempfile::Builder::new()
        .prefix(".systemvm-export.")
        .suffix(".tmp")
        .tempdir_in(out_dir)
        .map_err(|e| io::Error::from(e.kind()))
        .with_context(|| format!("cannot write in {}", out_dir.display()))?;
    let job = Job {
        raw,
        capacity,
        base,
        work: work.path(),
        opts,
        stem: opts.stem(),
        mtime: opts.epoch.unwrap_or_else(crate::epoch::now).max(0) as u64,
    };
    let mut artifacts = run_parallel(&job, opts, printer)?;

    let mut sorted: Vec<&Artifact> = artifacts.iter().collect();
    sorted.sort_by_key(|a| file_name(&a.path));
    let mut names: Vec<String> = artifacts.iter().map(|a| file_name(&a.path)).collect();
    for (name, hash) in SUMS {
        let text: String = sorted
            .iter()
            .map(|a| format!("{}  {}\n", hash(a), file_name(&a.path)))
            .collect();
        fs::write(work.path().join(name), text)
            .with_context(|| format!("cannot write {name} in {}", out_dir.display()))?;
        names.push(name.into());
    }

    for name in &names {
        let from = work.path().join(name);
        File::open(&from)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot flush {}", from.display()))?;
        crate::atomic::rename_into_place(&from, &out_dir.join(name))?;
    }
    for a in &mut artifacts {
        a.path = out_dir.join(file_name(&a.path));
    }
    Ok(artifacts)
}

/// Run the formats on `opts.jobs` threads (each mostly waits on qemu-img or compresses on
/// its own core); results in the order asked for. After a failure no new format starts, and
/// the first failure in that order is the error.
fn run_parallel(job: &Job, opts: &ExportOptions, printer: &Printer) -> Result<Vec<Artifact>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let formats = &opts.formats;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<Artifact>>>> =
        Mutex::new(formats.iter().map(|_| None).collect());
    let bar = printer.spinner("exporting");
    let workers = opts.jobs.clamp(1, formats.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= formats.len() || failed.load(Ordering::SeqCst) {
                    return;
                }
                let format = formats[index];
                let started = Instant::now();
                let result = job
                    .run(format, &bar)
                    .with_context(|| format!("{format} export failed"))
                    .and_then(|path| Artifact::of(format, path));
                match &result {
                    Ok(a) => bar.suspend(|| {
                        printer.info(format!(
                            "{format}: {} ({}) in {:.1} s",
                            file_name(&a.path),
                            human_size(a.size),
                            started.elapsed().as_secs_f64()
                        ))
                    }),
                    Err(_) => failed.store(true, Ordering::SeqCst),
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
            });
        }
    });
    bar.finish_and_clear();
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.into_iter().flatten().collect()
}

/// Sizes for people: KiB, MiB, GiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_lists_parse() {
        assert_eq!(
            Format::parse_list("kvm,xenserver, vmware,kvm").unwrap(),
            vec![Format::Kvm, Format::Xen, Format::Vmware]
        );
        assert_eq!(Format::parse(" OVM3"), Some(Format::Ovm));
        let all: Vec<String> = ExportOptions::new("v", "a")
            .formats
            .iter()
            .map(Format::to_string)
            .collect();
        assert_eq!(all, ["kvm", "xen", "vmware", "hyperv", "ovm"]);
        assert!(Format::parse_list("kvm,bogus").is_err());
        assert!(Format::parse_list(",").is_err());
    }

    #[test]
    fn names_follow_cloudstack() {
        let o = ExportOptions::new("4.20.0", "amd64");
        assert_eq!(o.stem(), "systemvmtemplate-4.20.0-amd64");
        assert!(!file_name_ok("../x"));
        assert!(file_name_ok("24.12.1"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
