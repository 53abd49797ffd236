//! One export run's work: each format's file written from the raw disk into the work
//! directory (qemu-img, the stamps, bzip2, zip, the OVA), one method per format.

use super::{ExportOptions, Format, HypervGeneration};
use crate::appliance::{file_name, ova, stamp, tool};
use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// bzip2 `src` into `dst` (level 9, as the bzip2 tool does; one stream, made on `threads`
/// threads by [`crate::appliance::bz`]), streamed.
pub fn bzip2_file(src: &Path, dst: &Path, threads: usize) -> Result<()> {
    let input = File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
    let output = File::create(dst).with_context(|| format!("cannot write {}", dst.display()))?;
    let reader = BufReader::with_capacity(1 << 20, input);
    crate::appliance::bz::compress(reader, BufWriter::with_capacity(1 << 20, output), threads)
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot compress {} into {}", src.display(), dst.display()))
}

/// Zip `src` as the one member `member` of `dst` (deflate, one fixed timestamp), streamed.
pub fn zip_file(src: &Path, member: &str, dst: &Path, mtime: i64) -> Result<()> {
    let stamp = crate::epoch::zip_datetime(mtime)
        .map_err(|e| anyhow::anyhow!("cannot stamp {}: {e}", dst.display()))?;
    let input = File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
    let size = input
        .metadata()
        .with_context(|| format!("cannot read {}", src.display()))?
        .len();
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(stamp)
        .unix_permissions(0o644)
        .large_file(size >= u32::MAX as u64);
    let output = File::create(dst).with_context(|| format!("cannot write {}", dst.display()))?;
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(1 << 20, output));
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let done = (|| -> zip::result::ZipResult<()> {
        zip.start_file(member, options)?;
        io::copy(&mut reader, &mut zip)?;
        let mut w = zip.finish()?;
        w.flush()?;
        Ok(())
    })();
    done.with_context(|| format!("cannot zip {} into {}", src.display(), dst.display()))
}

/// One export run's shared inputs.
pub(super) struct Job<'a> {
    pub(super) raw: &'a Path,
    pub(super) capacity: u64,
    pub(super) base: Option<&'a Path>,
    pub(super) work: &'a Path,
    pub(super) opts: &'a ExportOptions,
    pub(super) stem: String,
    pub(super) mtime: u64,
}

impl Job<'_> {
    fn path(&self, suffix: &str) -> PathBuf {
        self.work.join(format!("{}-{suffix}", self.stem))
    }

    fn convert(&self, format: &str, options: &[&str], out: &Path) -> Result<()> {
        tool::run(
            tool::qemu_img()
                .args(["convert", "-q", "-f", "raw", "-O", format])
                .args(options)
                .arg(self.raw)
                .arg(out),
        )?;
        Ok(())
    }

    /// `qemu-img convert -O format` into `suffix`, then `fix` when the build has an epoch.
    fn image(
        &self,
        suffix: &str,
        format: &str,
        options: &[&str],
        fix: fn(&Path, i64) -> io::Result<()>,
        step: &dyn Fn(&str),
    ) -> Result<PathBuf> {
        let out = self.path(suffix);
        step(&format!("qemu-img convert -O {format}"));
        self.convert(format, options, &out)?;
        if let Some(epoch) = self.opts.epoch {
            fix(&out, epoch).with_context(|| format!("cannot stamp {}", out.display()))?;
        }
        Ok(out)
    }

    /// The layer: only the clusters where the raw disk differs from `base`, as a compressed
    /// qcow2 whose backing file is `base`. qemu-img has no direct "diff", so: an empty
    /// overlay on the raw disk, rebased (safe mode) onto the base, which copies in exactly
    /// the clusters that differ; then `convert -B`, which copies only that top layer.
    fn layer(&self, base: &Path, options: &[&str], out: &Path, step: &dyn Fn(&str)) -> Result<()> {
        let diff = self.work.join("layer.qcow2");
        let raw = fs::canonicalize(self.raw)
            .with_context(|| format!("cannot read {}", self.raw.display()))?;
        step("qemu-img create (overlay)");
        tool::run(
            tool::qemu_img()
                .args(["create", "-q", "-f", "qcow2", "-b"])
                .arg(raw)
                .args(["-F", "raw"])
                .arg(&diff),
        )?;
        step("qemu-img rebase onto the base");
        tool::run(
            tool::qemu_img()
                .args(["rebase", "-q", "-f", "qcow2", "-b"])
                .arg(base)
                .args(["-F", "qcow2"])
                .arg(&diff),
        )?;
        step("qemu-img convert -c -B base");
        tool::run(
            tool::qemu_img()
                .args(["convert", "-q", "-f", "qcow2", "-O", "qcow2"])
                .args(options)
                .arg("-B")
                .arg(base)
                .args(["-F", "qcow2"])
                .arg(&diff)
                .arg(out),
        )?;
        fs::remove_file(&diff)?;
        Ok(())
    }

    /// Write `format`'s file in the work directory; returns its path.
    pub(super) fn run(&self, format: Format, bar: &indicatif::ProgressBar) -> Result<PathBuf> {
        let step = |what: &str| bar.set_message(format!("{format}: {what}"));
        match format {
            Format::Kvm => self.kvm(&step),
            Format::Xen => {
                let vhd = self.vhd("xen.vhd", &step)?;
                self.bzip2(&vhd, "xen.vhd.bz2", &step)
            }
            Format::Vmware => self.vmware(&step),
            Format::Hyperv => self.hyperv(&step),
            Format::Ovm => {
                step("bzip2");
                let out = self.path("ovm.raw.bz2");
                bzip2_file(self.raw, &out, self.opts.jobs)?;
                Ok(out)
            }
        }
    }

    /// `src` bzip2ed into `suffix`, and `src` removed.
    fn bzip2(&self, src: &Path, suffix: &str, step: &dyn Fn(&str)) -> Result<PathBuf> {
        step("bzip2");
        let out = self.path(suffix);
        bzip2_file(src, &out, self.opts.jobs)?;
        fs::remove_file(src)?;
        Ok(out)
    }

    fn kvm(&self, step: &dyn Fn(&str)) -> Result<PathBuf> {
        let qcow = self.path("kvm.qcow2");
        let mut options = vec!["-c"];
        if self.opts.qcow2_compat_010 {
            options.extend(["-o", "compat=0.10"]);
        }
        match self.base {
            Some(base) => self.layer(base, &options, &qcow, &step)?,
            None => {
                step("qemu-img convert -c -O qcow2");
                self.convert("qcow2", &options, &qcow)?;
            }
        }
        self.bzip2(&qcow, "kvm.qcow2.bz2", step)
    }

    /// A dynamic VHD (XenServer, Hyper-V generation 1), stamped.
    fn vhd(&self, suffix: &str, step: &dyn Fn(&str)) -> Result<PathBuf> {
        let options = ["-o", "subformat=dynamic,force_size=on"];
        self.image(suffix, "vpc", &options, stamp::fix_vhd, step)
    }

    fn vmware(&self, step: &dyn Fn(&str)) -> Result<PathBuf> {
        let options = ["-o", "subformat=streamOptimized,adapter_type=lsilogic"];
        let vmdk = self.image("vmware-disk1.vmdk", "vmdk", &options, stamp::fix_vmdk, step)?;
        step("OVF and OVA");
        let base = format!("{}-vmware", self.stem);
        let spec = ova::OvfSpec {
            name: base.clone(),
            vmdk_name: file_name(&vmdk),
            vmdk_size: fs::metadata(&vmdk)?.len(),
            capacity: self.capacity,
            populated: tool::populated_size(&vmdk, "vmdk")?,
            vmx_version: self.opts.vmx_version,
            cpus: self.opts.cpus,
            memory_mib: self.opts.memory_mib,
            guest: self.opts.vmware_guest,
        };
        let out = self.path("vmware.ova");
        let file = File::create(&out).with_context(|| format!("cannot write {}", out.display()))?;
        let (ovf, manifest) = (ova::ovf(&spec), self.opts.ova_manifest);
        ova::write_ova(file, &base, &ovf, &vmdk, manifest, self.mtime)
            .with_context(|| format!("cannot write {}", out.display()))?;
        fs::remove_file(&vmdk)?;
        Ok(out)
    }

    fn hyperv(&self, step: &dyn Fn(&str)) -> Result<PathBuf> {
        let disk = match self.opts.hyperv_generation {
            HypervGeneration::One => self.vhd("hyperv.vhd", step)?,
            HypervGeneration::Two => {
                let options = ["-o", "subformat=dynamic"];
                self.image("hyperv.vhdx", "vhdx", &options, stamp::fix_vhdx, step)?
            }
        };
        step("zip");
        let name = file_name(&disk);
        let out = self.work.join(format!("{name}.zip"));
        zip_file(&disk, &name, &out, self.mtime as i64)?;
        fs::remove_file(&disk)?;
        Ok(out)
    }
}
