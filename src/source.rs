//! Where a payload comes from, told apart by its shape.
//!
//! - **Ours**: `agent/` and `scripts/` (the bundled `agent-payload/`).
//! - **A CloudStack source checkout** (its root: `systemvm/debian/`, `systemvm/agent/`,
//!   `scripts/util/`), assembled as Maven does (`systemvm/pom.xml` for `cloud-scripts.tgz`,
//!   `systemvm/systemvm-agent-descriptor.xml` for the agent zip): the same file lists and
//!   destinations. The agent's JARs are Maven artifacts a checkout lacks; they are taken from
//!   an existing agent zip, ISO or patch-file directory (`--agent-jars-from`).
//!
//! Either way the result is a [`Payload`]: archive names mapped to checked source files.

use crate::artifact;
use crate::layout::PATCH_SCRIPT_NAME;
use crate::payload::{self, Item, Payload, PayloadError};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::Path;

/// The kinds of payload source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `agent/` + `scripts/`
    Ours,
    /// A CloudStack checkout's root
    CloudstackTree,
}

/// A payload ready to archive, with whatever must live as long as it (extracted JARs).
#[derive(Debug)]
pub struct Loaded {
    pub payload: Payload,
    pub shape: Shape,
    /// JARs taken from `--agent-jars-from` (0 when none were asked for).
    pub jars: usize,
    _extracted: Option<tempfile::TempDir>,
}

/// What the three shapes look like, for error messages.
const SHAPES: &str = "a systemvm payload (agent/ and scripts/) or a CloudStack checkout \
                      (systemvm/debian/, systemvm/agent/, scripts/util/)";

/// Tell the shape of `root` by what it holds.
pub fn detect(root: &Path) -> Result<Shape> {
    if !root.is_dir() {
        bail!(
            "payload {} does not exist or is not a directory",
            root.display()
        );
    }
    if root.join("systemvm").is_dir() {
        for needed in ["systemvm/debian", "systemvm/agent", "scripts/util"] {
            if !root.join(needed).is_dir() {
                bail!(
                    "{} looks like a CloudStack checkout but has no {needed}/; expected {SHAPES}",
                    root.display()
                );
            }
        }
        return Ok(Shape::CloudstackTree);
    }
    // One of the two is enough to tell ours; Payload::load names the one missing.
    if root.join(payload::AGENT_DIR).is_dir() || root.join(payload::SCRIPTS_DIR).is_dir() {
        return Ok(Shape::Ours);
    }
    bail!("{} is not a payload: expected {SHAPES}", root.display())
}

/// Load the payload at `root`, whatever its shape; JARs from `jars_from` when given.
pub fn load(root: &Path, jars_from: Option<&Path>) -> Result<Loaded> {
    let shape = detect(root)?;
    match shape {
        Shape::Ours => {
            if let Some(from) = jars_from {
                bail!(
                    "--agent-jars-from {} is for a CloudStack checkout; {} already holds its agent",
                    from.display(),
                    root.display()
                );
            }
            Ok(Loaded {
                payload: Payload::load(root)?,
                shape,
                jars: 0,
                _extracted: None,
            })
        }
        Shape::CloudstackTree => load_tree(root, jars_from),
    }
}

/// An existing build (`--from`) as a payload, with overlays over its scripts and agent.
pub fn load_from(
    artifact: &Path,
    overlay_scripts: Option<&Path>,
    overlay_agent: Option<&Path>,
) -> Result<Loaded> {
    let unpacked = artifact::unpack_as_payload(artifact, overlay_scripts, overlay_agent)?;
    Ok(Loaded {
        payload: Payload::load(unpacked.path())?,
        shape: Shape::Ours,
        jars: 0,
        _extracted: Some(unpacked),
    })
}

/// A file set of the agent descriptor: a directory of the checkout, where it goes in the
/// zip, and which file names it takes (`None`: all, recursively; else top-level files with
/// these extensions or names).
struct FileSet {
    dir: &'static str,
    to: &'static str,
    only: Option<&'static [&'static str]>,
}

const fn set(
    dir: &'static str,
    to: &'static str,
    only: Option<&'static [&'static str]>,
) -> FileSet {
    FileSet { dir, to, only }
}

const AGENT_SETS: &[FileSet] = &[
    set(
        "scripts/storage/secondary",
        "scripts/storage/secondary/",
        None,
    ),
    set("systemvm/agent/scripts", "", None),
    set(
        "systemvm/agent/conf",
        "conf/",
        Some(&[
            "log4j-cloud.xml",
            "consoleproxy.properties",
            "agent.properties",
        ]),
    ),
    set(
        "systemvm/agent/images",
        "images/",
        Some(&[".jpg", ".gif", ".png", ".cur"]),
    ),
    set("systemvm/agent/js", "js/", Some(&[".js"])),
    set("systemvm/agent/ui", "ui/", Some(&[".ftl"])),
    set("systemvm/agent/css", "css/", Some(&[".css"])),
    set(
        "systemvm/agent/certs",
        "certs/",
        Some(&[".keystore", ".crt", ".key"]),
    ),
    set("systemvm/agent/noVNC", "noVNC/", None),
    set("systemvm/agent/packages", "packages/", None),
];

fn load_tree(root: &Path, jars_from: Option<&Path>) -> Result<Loaded> {
    let canonical =
        fs::canonicalize(root).with_context(|| format!("cannot read {}", root.display()))?;
    let extracted = jars_from.map(artifact::extract_jars).transpose()?;
    let mut agent = Vec::new();
    if let Some(dir) = &extracted {
        agent.extend(tree_files(dir.path(), dir.path(), "", None)?);
    }
    let keystore = |name: &str| name.starts_with("keystore");
    let util = root.join("scripts/util");
    let util = tree_files(&canonical, &util, "scripts/util/", None)?;
    agent.extend(util.iter().filter(|i| keystore(base(&i.name))).cloned());
    for set in AGENT_SETS {
        let dir = root.join(set.dir);
        if dir.is_dir() {
            agent.extend(tree_files(&canonical, &dir, set.to, set.only)?);
        }
    }
    let mut scripts = tree_files(&canonical, &root.join("systemvm/debian"), "", None)?;
    let keystore_scripts = util
        .iter()
        .filter(|i| base(&i.name).starts_with("keystore-"));
    scripts.extend(keystore_scripts.map(|i| Item {
        name: format!("opt/cloud/bin/{}", base(&i.name)),
        ..i.clone()
    }));
    let jars = extracted.as_ref().map_or(0, |_| {
        agent.iter().filter(|i| !i.name.contains('/')).count()
    });
    let patch = root.join("systemvm").join(PATCH_SCRIPT_NAME);
    let payload = Payload::from_items(
        root,
        with_directories(agent)?,
        sorted_unique(scripts)?,
        patch.is_file().then_some(patch),
    )?;
    Ok(Loaded {
        payload,
        shape: Shape::CloudstackTree,
        jars,
        _extracted: extracted,
    })
}

/// The last part of an archive name.
fn base(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The files under `dir` (checked as a payload's are), named `prefix` + their relative path;
/// with `only`, just the top-level files whose names end with one of its entries.
fn tree_files(
    root: &Path,
    dir: &Path,
    prefix: &str,
    only: Option<&[&str]>,
) -> Result<Vec<Item>, PayloadError> {
    let mut items = Vec::new();
    payload::walk(root, dir, prefix, &mut items)?;
    items.retain(|i| !i.is_dir);
    if let Some(only) = only {
        let top = |i: &Item| !i.name[prefix.len()..].contains('/');
        items.retain(|i| top(i) && only.iter().any(|end| i.name.ends_with(end)));
    }
    Ok(items)
}

/// Files sorted by name; a name given twice (two sources for one archive path) is an error.
fn sorted_unique(mut items: Vec<Item>) -> Result<Vec<Item>> {
    items.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = items.windows(2).find(|w| w[0].name == w[1].name) {
        bail!(
            "{} and {} both become {} in the archive",
            pair[0].source.display(),
            pair[1].source.display(),
            pair[0].name
        );
    }
    Ok(items)
}

/// The zip's files with a directory entry before the first file in each directory.
fn with_directories(files: Vec<Item>) -> Result<Vec<Item>> {
    let files = sorted_unique(files)?;
    let mut dirs = std::collections::BTreeSet::new();
    for file in &files {
        let mut end = 0;
        while let Some(slash) = file.name[end..].find('/') {
            end += slash + 1;
            dirs.insert(file.name[..end].to_string());
        }
    }
    let mut all: Vec<Item> = dirs
        .into_iter()
        .map(|name| Item {
            name,
            is_dir: true,
            size: 0,
            links: 0,
            ..files[0].clone()
        })
        .collect();
    all.extend(files);
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}
