//! An existing build used as a source: an agent zip, a systemvm ISO or a patch-file
//! directory. `--agent-jars-from` takes the agent's JARs from one; `--from` unpacks one
//! whole as a payload of our shape (`agent/`, `scripts/`), with overlays copied over it: the
//! hotfix path, a changed router script rebuilt with the same JARs and no Maven.
//!
//! Archive members are unpacked only at names inside the target (no `..`, no absolute
//! path, no links); an overlay is walked as a payload is, so a symlink leaving it is refused.

use crate::iso::reader::Image;
use crate::layout::{PATCH_SCRIPT_NAME, SCRIPTS_NAME};
use crate::payload::{self, AGENT_DIGEST_NAME, SIGNATURE_DIGEST_NAME};
use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::io;
use std::path::Path;

/// The JARs at the root of the agent zip in `artifact`, extracted into a temp directory.
pub fn extract_jars(artifact: &Path) -> Result<tempfile::TempDir> {
    let mut zip = agent_zip(artifact, "--agent-jars-from")?;
    let dir = temp_dir("jars")?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let name = entry
            .name()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_string();
        if name.contains('/') || !name.ends_with(".jar") {
            continue;
        }
        copy_out(&mut entry, &dir.path().join(&name), artifact)?;
    }
    Ok(dir)
}

/// `artifact` unpacked as a payload of our shape (with a patch-file directory's
/// `patch-sysvms.sh`), then `overlay_scripts` over `scripts/` and
/// `overlay_agent` over `agent/`. The digests we add to every build are dropped: the new
/// build records its own.
pub fn unpack_as_payload(
    artifact: &Path,
    overlay_scripts: Option<&Path>,
    overlay_agent: Option<&Path>,
) -> Result<tempfile::TempDir> {
    let dir = temp_dir("from")?;
    let (agent_dir, scripts_dir) = (dir.path().join("agent"), dir.path().join("scripts"));
    fs::create_dir_all(&agent_dir)?;
    fs::create_dir_all(&scripts_dir)?;
    unzip(&mut agent_zip(artifact, "--from")?, &agent_dir, artifact)?;
    untar(
        open_member(artifact, SCRIPTS_NAME, "--from")?,
        &scripts_dir,
        artifact,
    )?;
    let patch_script = artifact.join(PATCH_SCRIPT_NAME);
    if artifact.is_dir() && patch_script.is_file() {
        fs::copy(&patch_script, dir.path().join(PATCH_SCRIPT_NAME))
            .with_context(|| format!("cannot read {}", patch_script.display()))?;
    }
    for ours in [AGENT_DIGEST_NAME, SIGNATURE_DIGEST_NAME] {
        let _ = fs::remove_file(scripts_dir.join(ours));
    }
    if let Some(overlay) = overlay_scripts {
        copy_overlay(overlay, &scripts_dir, "--overlay-scripts")?;
    }
    if let Some(overlay) = overlay_agent {
        copy_overlay(overlay, &agent_dir, "--overlay-agent")?;
    }
    Ok(dir)
}

fn temp_dir(what: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!(".systemvm-{what}."))
        .tempdir()
        .context("cannot create a temp directory")
}

/// The agent zip of an artifact, opened as a zip.
fn agent_zip(artifact: &Path, flag: &str) -> Result<zip::ZipArchive<File>> {
    let file = match open_member(artifact, "agent.zip", flag) {
        Err(_) if !artifact.is_dir() => open_member(artifact, "systemvm.zip", flag)?,
        other => other?,
    };
    zip::ZipArchive::new(file).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: not a zip ({e}); give an agent.zip, a systemvm ISO or a patch-file directory",
            artifact.display()
        )
    })
}

/// A member of an artifact as a seekable file: `dir/name`, the ISO's member (copied to a
/// temp file), or the file itself when it is neither a directory nor an ISO.
fn open_member(artifact: &Path, name: &str, flag: &str) -> Result<File> {
    let unreadable = || format!("cannot read {flag} {}", artifact.display());
    if artifact.is_dir() {
        let path = artifact.join(name);
        return File::open(&path).with_context(|| {
            format!("{flag} {}: no {name} in that directory", artifact.display())
        });
    }
    let file = File::open(artifact).with_context(unreadable)?;
    let mut magic = [0u8; 5];
    let is_iso = std::os::unix::fs::FileExt::read_exact_at(&file, &mut magic, 32769).is_ok()
        && &magic == b"CD001";
    if !is_iso {
        if name == SCRIPTS_NAME {
            bail!(
                "{flag} {}: give a systemvm ISO or a patch-file directory",
                artifact.display()
            );
        }
        return Ok(file);
    }
    let image = Image::open(artifact)?;
    let entry = image
        .find(name)
        .with_context(|| format!("{flag} {}: the ISO has no {name}", artifact.display()))?;
    let mut copy = tempfile::tempfile().context("cannot create a temp file")?;
    io::copy(&mut image.reader(entry)?, &mut copy).with_context(unreadable)?;
    io::Seek::rewind(&mut copy)?;
    Ok(copy)
}

/// Unpack every file and directory of `zip` under `dir`, refusing names outside it.
fn unzip(zip: &mut zip::ZipArchive<File>, dir: &Path, artifact: &Path) -> Result<()> {
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let Some(name) = entry.enclosed_name() else {
            bail!(
                "{}: the agent zip has a member outside its root",
                artifact.display()
            );
        };
        let target = dir.join(name);
        if entry.is_dir() {
            fs::create_dir_all(&target)?;
        } else if entry.is_file() {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            copy_out(&mut entry, &target, artifact)?;
        }
    }
    Ok(())
}

/// Unpack the regular files and directories of a gzipped tar under `dir`.
fn untar(file: File, dir: &Path, artifact: &Path) -> Result<()> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let bad = || format!("{}: cannot read its {SCRIPTS_NAME}", artifact.display());
    for entry in tar.entries().with_context(bad)? {
        let mut entry = entry.with_context(bad)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        if !entry.unpack_in(dir).with_context(bad)? {
            bail!(
                "{}: {SCRIPTS_NAME} has a member outside its root",
                artifact.display()
            );
        }
    }
    Ok(())
}

fn copy_out(entry: &mut impl io::Read, target: &Path, artifact: &Path) -> Result<()> {
    let mut out =
        File::create(target).with_context(|| format!("cannot write {}", target.display()))?;
    io::copy(entry, &mut out).with_context(|| {
        format!(
            "cannot extract {} from {}",
            target.display(),
            artifact.display()
        )
    })?;
    Ok(())
}

/// Copy the files of `overlay` over `into`, checked as a payload is (a symlink that leaves
/// the overlay, a special file: refused).
fn copy_overlay(overlay: &Path, into: &Path, flag: &str) -> Result<()> {
    let root = fs::canonicalize(overlay)
        .with_context(|| format!("{flag} {} does not exist", overlay.display()))?;
    if !root.is_dir() {
        bail!("{flag} {} is not a directory", overlay.display());
    }
    let mut items = Vec::new();
    payload::walk(&root, overlay, "", &mut items)
        .with_context(|| format!("{flag} {}", overlay.display()))?;
    for item in items {
        let target = into.join(item.name.trim_end_matches('/'));
        if item.is_dir {
            fs::create_dir_all(&target)?;
            continue;
        }
        if target.is_dir() {
            bail!(
                "{flag}: {} would replace the directory {}",
                item.source.display(),
                item.name
            );
        }
        let _ = fs::remove_file(&target);
        fs::copy(&item.source, &target)
            .with_context(|| format!("cannot copy {}", item.source.display()))?;
    }
    Ok(())
}
