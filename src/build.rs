//! `systemvm build`: payload to ISO (or to the loose 4.17+ patch files) plus the manifest.
//!
//! Everything is checked before anything is written (payload, version, keys, xorriso). The
//! archives and the ISO are assembled in a temp directory beside the output, on the same
//! file system, and renamed into place only when complete; an error or Ctrl-C at any point
//! leaves the old output as it was.

use crate::iso::{keyarea, xorriso};
use crate::layout::{Layout, PATCH_SCRIPT_NAME, SCRIPTS_NAME};
use crate::manifest::{self, Checksums, Manifest, Member};
use crate::payload::{self, Payload};
use crate::printer::Printer;
use crate::source;
use crate::version::Version;
use crate::{atomic, epoch, keys};
use anyhow::{bail, Context, Result};
use ssh_key::PublicKey;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What to build.
#[derive(Debug)]
pub struct Options {
    pub payload: PathBuf,
    /// For a CloudStack checkout: the agent zip, ISO or patch-file directory to take JARs from.
    pub agent_jars_from: Option<PathBuf>,
    /// Instead of `payload`: an existing ISO or patch-file directory, with these overlays.
    pub from: Option<From>,
    pub layout: Layout,
    /// `None`: the Cosmic date version of the build epoch.
    pub version: Option<Version>,
    pub output: PathBuf,
    pub keys: Vec<PublicKey>,
    pub key_area: usize,
}

/// `--from`: an existing build, and directories copied over its scripts and agent.
#[derive(Debug)]
pub struct From {
    pub artifact: PathBuf,
    pub overlay_scripts: Option<PathBuf>,
    pub overlay_agent: Option<PathBuf>,
}

/// What was built.
#[derive(Debug)]
pub struct Built {
    pub output: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

pub fn run(opts: &Options, printer: &Printer) -> Result<Built> {
    let loaded = load_source(opts, printer)?;
    let payload = &loaded.payload;
    let (epoch, version) = epoch_and_version(opts, payload)?;
    if opts.layout == Layout::PatchFiles {
        return build_patch_files(opts, payload, epoch, version, printer);
    }
    let key_area = key_area_for(opts)?;
    xorriso::program()?;

    let work = atomic::temp_dir_beside(&opts.output)?;
    let spinner = printer.spinner(format!("archiving {}", opts.payload.display()));
    let mut members = write_archives(payload, opts.layout, &version, work.path(), epoch)?;
    if let Some(area) = &key_area {
        let path = work.path().join(keyarea::FILE_NAME);
        std::fs::write(&path, area).with_context(|| format!("cannot write {}", path.display()))?;
        members.push((keyarea::FILE_NAME.to_string(), path));
    }
    spinner.set_message("writing ISO");
    let iso_tmp = work.path().join("systemvm.iso");
    write_iso(opts.layout, &version, epoch, &members, &iso_tmp)?;
    spinner.set_message("checksums");
    let (iso_sums, member_sums) = checksum_iso_and_members(&iso_tmp, &members);
    let iso = iso_sums?;
    let members = visible_members(member_sums?, &key_area)?;
    let manifest = Manifest {
        iso: Some(iso),
        key_area: key_area.as_ref().map(|a| a.len() as u64),
        keys: opts.keys.iter().map(keys::info).collect(),
        ..Manifest::new(opts.layout, &version, epoch, members)
    };
    spinner.finish_and_clear();
    install(&iso_tmp, 0o644, &opts.output)?;
    let manifest_path = manifest::path_for(&opts.output);
    manifest.write(&manifest_path)?;
    Ok(Built {
        output: opts.output.clone(),
        manifest_path,
        manifest,
    })
}

/// The payload, from whichever source the options name.
fn load_source(opts: &Options, printer: &Printer) -> Result<source::Loaded> {
    let loaded = match &opts.from {
        None => source::load(&opts.payload, opts.agent_jars_from.as_deref())?,
        Some(from) => source::load_from(
            &from.artifact,
            from.overlay_scripts.as_deref(),
            from.overlay_agent.as_deref(),
        )?,
    };
    warn_without_jars(&loaded, opts, printer);
    Ok(loaded)
}

/// The build epoch (`SOURCE_DATE_EPOCH`, else the payload's newest file) and the version
/// (given, else the Cosmic date version of `SOURCE_DATE_EPOCH` or today).
fn epoch_and_version(opts: &Options, payload: &Payload) -> Result<(i64, Version)> {
    let epoch = epoch::source_date_epoch()?.unwrap_or_else(|| payload.newest_mtime());
    let version = match &opts.version {
        Some(v) => v.clone(),
        None => Version::date(epoch::source_date_epoch()?.unwrap_or_else(epoch::now)),
    };
    Ok((epoch, version))
}

/// The key area's bytes for layouts that carry one; keys for one that does not: an error.
fn key_area_for(opts: &Options) -> Result<Option<Vec<u8>>> {
    if opts.layout.has_key_area() {
        return Ok(Some(keyarea::render(&opts.keys, opts.key_area)?));
    }
    if !opts.keys.is_empty() {
        bail!(
            "the {} layout has no authorized_keys; drop --key, or choose --layout cloudstack or legacy",
            opts.layout
        );
    }
    Ok(None)
}

/// xorriso writes the ISO; a key area is then made to show only its keys.
fn write_iso(
    layout: Layout,
    version: &Version,
    epoch: i64,
    members: &[(String, PathBuf)],
    iso: &Path,
) -> Result<()> {
    let spec = xorriso::Spec {
        application_id: format!("systemvm {layout} {version}"),
        epoch,
        members: members
            .iter()
            .map(|(name, source)| xorriso::Member {
                name: name.clone(),
                source: source.clone(),
            })
            .collect(),
    };
    xorriso::build(&spec, iso)?;
    if layout.has_key_area() {
        keyarea::show_keys_only(iso)?;
    }
    Ok(())
}

/// The ISO and its members hashed at once: two large reads on two cores.
fn checksum_iso_and_members(
    iso: &Path,
    members: &[(String, PathBuf)],
) -> (Result<Checksums>, Result<Vec<Member>>) {
    std::thread::scope(|s| {
        let iso = s.spawn(|| Checksums::of_file(iso));
        let members = checksum_members(members, |_| 0o444);
        let iso = iso
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the ISO checksum thread panicked")));
        (iso, members)
    })
}

/// A CloudStack checkout has no JARs: say loudly that the agent will not run without them.
fn warn_without_jars(loaded: &source::Loaded, opts: &Options, printer: &Printer) {
    if loaded.shape != source::Shape::CloudstackTree || loaded.jars > 0 {
        return;
    }
    match &opts.agent_jars_from {
        None => printer.warn(format!(
            "{} is a CloudStack checkout, which has no agent JARs (Maven builds them): the \
             agent zip has none and the SSVM and console proxy cannot start; pass \
             --agent-jars-from with an existing agent.zip, systemvm.iso or patch-file directory",
            opts.payload.display()
        )),
        Some(from) => printer.warn(format!(
            "--agent-jars-from {} holds no JARs at its root: the agent zip has none",
            from.display()
        )),
    }
}

/// Write the agent zip and cloud-scripts.tgz into `dir`, both at once; return (name, path).
/// The tarball ends with the agent's sha256 and the name of the release's `digest`.
pub(crate) fn write_archives(
    payload: &Payload,
    layout: Layout,
    version: &Version,
    dir: &Path,
    epoch: i64,
) -> Result<Vec<(String, PathBuf)>> {
    let agent_path = dir.join(layout.agent_name());
    let scripts_path = dir.join(SCRIPTS_NAME);
    let create =
        |p: &Path| File::create(p).with_context(|| format!("cannot write {}", p.display()));
    let (agent_file, scripts_file) = (create(&agent_path)?, create(&scripts_path)?);
    let agent_name = layout.agent_name();
    let digest = version.signature_digest();
    std::thread::scope(|s| {
        let agent = s.spawn(|| payload::write_agent_zip(&payload.agent, agent_file, epoch));
        // The agent's digest goes last into the tarball, once the zip is complete.
        let digest = || {
            let zip = agent
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the zip writer panicked")));
            zip.map_err(|e| std::io::Error::other(format!("cannot write {agent_name}: {e}")))?;
            let sha256 = crate::hashing::sha256_file(&agent_path)?;
            let line = format!("{sha256}  {agent_name}\n");
            let digest = format!("{}\n", digest.name());
            Ok(vec![
                (payload::AGENT_DIGEST_NAME.to_string(), line.into_bytes()),
                (
                    payload::SIGNATURE_DIGEST_NAME.to_string(),
                    digest.into_bytes(),
                ),
            ])
        };
        payload::write_scripts_tgz(&payload.scripts, scripts_file, epoch, digest)
            .with_context(|| format!("cannot write {SCRIPTS_NAME}"))
    })?;
    Ok(vec![
        (layout.agent_name().to_string(), agent_path),
        (SCRIPTS_NAME.to_string(), scripts_path),
    ])
}

/// Readers see only the key lines of the key area: its member checksums are of those.
fn visible_members(mut members: Vec<Member>, area: &Option<Vec<u8>>) -> Result<Vec<Member>> {
    if let Some(area) = area {
        let keys = &area[..keyarea::visible_len(area)];
        for m in members.iter_mut().filter(|m| m.name == keyarea::FILE_NAME) {
            m.checksums = Checksums::of(keys)?;
        }
    }
    Ok(members)
}

fn checksum_members(
    members: &[(String, PathBuf)],
    mode: impl Fn(&str) -> u32,
) -> Result<Vec<Member>> {
    members
        .iter()
        .map(|(name, path)| {
            Ok(Member {
                name: name.clone(),
                mode: format!("{:04o}", mode(name)),
                checksums: Checksums::of_file(path)?,
            })
        })
        .collect()
}

/// A finished file of the temp directory: fsynced, given `mode` and renamed over `target`.
fn install(path: &Path, mode: u32, target: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    atomic::rename_into_place(path, target)
}

/// CloudStack 4.17+: a directory holding the loose files, `sha512sums` and the manifest.
fn build_patch_files(
    opts: &Options,
    payload: &Payload,
    epoch: i64,
    version: Version,
    printer: &Printer,
) -> Result<Built> {
    let patch_script = payload.patch_script.as_ref().with_context(|| {
        format!(
            "{} has no {PATCH_SCRIPT_NAME}, which --layout patch-files ships",
            opts.payload.display()
        )
    })?;
    if !opts.keys.is_empty() {
        bail!("the patch-files layout carries no keys (4.16+ passes the key on the boot command line); drop --key");
    }
    let out = &opts.output;
    if out.exists() && !out.is_dir() {
        bail!("{} exists and is not a directory", out.display());
    }
    let work = atomic::temp_dir_beside(out)?;
    let spinner = printer.spinner(format!("archiving {}", opts.payload.display()));
    let mut members = write_archives(payload, opts.layout, &version, work.path(), epoch)?;
    let script = work.path().join(PATCH_SCRIPT_NAME);
    std::fs::copy(patch_script, &script)
        .with_context(|| format!("cannot read {}", patch_script.display()))?;
    members.push((PATCH_SCRIPT_NAME.to_string(), script));
    let mode = |name: &str| {
        if name == PATCH_SCRIPT_NAME {
            0o755
        } else {
            0o644
        }
    };
    let checked = checksum_members(&members, mode)?;
    spinner.finish_and_clear();
    let sums: String = checked
        .iter()
        .map(|m| format!("{}  {}\n", m.checksums.sha512, m.name))
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, path) in &members {
        install(path, mode(name), &out.join(name))?;
    }
    atomic::write(&out.join("sha512sums"), sums.as_bytes(), 0o644)?;
    let manifest = Manifest::new(opts.layout, &version, epoch, checked);
    let manifest_path = out.join("manifest.json");
    manifest.write(&manifest_path)?;
    Ok(Built {
        output: out.clone(),
        manifest_path,
        manifest,
    })
}
