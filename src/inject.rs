//! `systemvm inject`: put public keys into an ISO's key area.
//!
//! An ISO we built has a fixed-size `authorized_keys` (see [`crate::iso::keyarea`]); its
//! extent is found once and only those bytes are rewritten, after checking that every
//! directory record (Rock Ridge and Joliet) points at the same extent and that the bytes
//! there still are a key area; the records' lengths are then set to the new key lines, so
//! readers see exactly the keys. The default writes a copy beside the ISO (the kernel copies
//! the data, we patch the area, fsync, rename); `--in-place` writes the area only. Keys
//! already present: nothing is touched. An ISO without a key area is remastered by xorriso
//! into one that has it, still without root and still renamed into place.

use crate::iso::keyarea::{self, Area};
use crate::iso::reader::Image;
use crate::iso::xorriso;
use crate::keys;
use crate::manifest::{self, Checksums, Manifest};
use crate::{atomic, epoch};
use anyhow::{bail, Context, Result};
use ssh_key::PublicKey;
use std::fs::File;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the keyed ISO goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new file renamed over the ISO.
    Replace,
    /// Rewrite the key area of the ISO itself.
    InPlace,
    /// A new file at this path; the ISO is left as it is.
    Output(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The keys were already there; nothing was written.
    Unchanged,
    /// The key area was rewritten.
    Patched,
    /// The ISO had no key area and was rebuilt with one.
    Remastered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Patched => "patched",
            Outcome::Remastered => "remastered",
        }
    }
}

#[derive(Debug)]
pub struct Injected {
    pub outcome: Outcome,
    pub path: PathBuf,
}

pub fn inject(iso: &Path, keys: &[PublicKey], target: &Target) -> Result<Injected> {
    let image = Image::open(iso)?;
    let area = keyarea::locate(&image)?;
    let out = match target {
        Target::Output(p) => p.clone(),
        _ => iso.to_path_buf(),
    };
    let Some(area) = area else {
        drop(image);
        remaster(iso, keys, &out)?;
        update_manifest(iso, &out)?;
        return Ok(Injected {
            outcome: Outcome::Remastered,
            path: out,
        });
    };
    let new = keyarea::render(keys, area.bytes.len())?;
    let unchanged = same_keys(&area.keys, keys);
    match (target, unchanged) {
        (Target::Output(_), _) => write_copy(&image, &area, &new, &out)?,
        (_, true) => {}
        (Target::InPlace, false) => write_in_place(&image, &area, &new)?,
        (Target::Replace, false) => write_copy(&image, &area, &new, &out)?,
    }
    if !unchanged {
        update_manifest(iso, &out)?;
    } else if out != iso {
        copy_manifest(iso, &out)?;
    }
    Ok(Injected {
        outcome: if unchanged {
            Outcome::Unchanged
        } else {
            Outcome::Patched
        },
        path: out,
    })
}

fn same_keys(a: &[PublicKey], b: &[PublicKey]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| keys::authorized_line(x) == keys::authorized_line(y))
}

fn write_in_place(image: &Image, area: &Area, new: &[u8]) -> Result<()> {
    let path = image.path();
    let file = File::options()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {} for writing", path.display()))?;
    // The bytes must still be the area we parsed: nobody rewrote the ISO meanwhile.
    let now = image.read_at(area.offset, area.bytes.len(), keyarea::FILE_NAME)?;
    if now != area.bytes {
        bail!("{} changed while injecting; run again", path.display());
    }
    write_area(&file, area, new)
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot write the key area of {}", path.display()))
}

/// The new area's bytes, then its records' lengths: the visible part is the new key lines.
fn write_area(file: &File, area: &Area, new: &[u8]) -> std::io::Result<()> {
    file.write_all_at(new, area.offset)?;
    keyarea::set_recorded_len(file, &area.records, keyarea::visible_len(new) as u32)
}

fn write_copy(image: &Image, area: &Area, new: &[u8], out: &Path) -> Result<()> {
    let source = image.path();
    let mode = mode_of(source)?;
    let mut tmp = atomic::temp_beside(out)?;
    let mut reader = image.file();
    std::io::Seek::rewind(&mut reader)
        .and_then(|()| std::io::copy(&mut reader, tmp.as_file_mut()))
        .with_context(|| format!("cannot copy {} to {}", source.display(), out.display()))?;
    write_area(tmp.as_file(), area, new)
        .with_context(|| format!("cannot write {}", out.display()))?;
    atomic::persist(tmp, out, mode)
}

/// Rebuild an ISO that has no key area with one holding `keys`.
fn remaster(iso: &Path, keys: &[PublicKey], out: &Path) -> Result<()> {
    let area = keyarea::render(keys, keyarea::DEFAULT_SIZE)?;
    let mode = mode_of(iso)?;
    let work = atomic::temp_dir_beside(out)?;
    let area_path = work.path().join(keyarea::FILE_NAME);
    std::fs::write(&area_path, &area)
        .with_context(|| format!("cannot write {}", area_path.display()))?;
    let new_iso = work.path().join("remastered.iso");
    let stamp = epoch::source_date_epoch()?.unwrap_or_else(epoch::now);
    let member = xorriso::Member {
        source: area_path,
        name: keyarea::FILE_NAME.into(),
    };
    xorriso::remaster(iso, &new_iso, &[member], stamp)?;
    keyarea::show_keys_only(&new_iso)?;
    let check = Image::open(&new_iso)?;
    if keyarea::locate(&check)?.is_none() {
        bail!(
            "xorriso remastered {} without a usable key area",
            iso.display()
        );
    }
    drop(check);
    File::open(&new_iso)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::set_permissions(&new_iso, std::fs::Permissions::from_mode(mode)))
        .with_context(|| format!("cannot flush {}", new_iso.display()))?;
    atomic::rename_into_place(&new_iso, out)
}

fn mode_of(path: &Path) -> Result<u32> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(meta.permissions().mode() & 0o7777)
}

/// Rewrite the manifest beside `out` (from the one beside `iso`, if any) for the new keys.
fn update_manifest(iso: &Path, out: &Path) -> Result<()> {
    let source = manifest::path_for(iso);
    if !source.exists() {
        return Ok(());
    }
    let mut manifest = Manifest::read(&source)?;
    let image = Image::open(out)?;
    let (Some(entry), Some(area)) = (image.find(keyarea::FILE_NAME), keyarea::locate(&image)?)
    else {
        return Ok(());
    };
    let checksums = Checksums::of(image.reader(entry)?)?;
    let keys = area.keys;
    manifest.members.retain(|m| m.name != keyarea::FILE_NAME);
    manifest.members.push(manifest::Member {
        name: keyarea::FILE_NAME.into(),
        mode: format!("{:04o}", entry.mode.unwrap_or(0o444)),
        checksums,
    });
    manifest.key_area = Some(area.bytes.len() as u64);
    manifest.keys = keys.iter().map(keys::info).collect();
    manifest.iso = None;
    manifest.write(&manifest::path_for(out))
}

fn copy_manifest(iso: &Path, out: &Path) -> Result<()> {
    let source = manifest::path_for(iso);
    if source.exists() {
        Manifest::read(&source)?.write(&manifest::path_for(out))?;
    }
    Ok(())
}
