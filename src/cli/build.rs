//! `systemvm build`

use super::render;
use crate::build::{self, Options};
use crate::events::ArtifactKind::Built;
use crate::exit::ExitStatus;
use crate::iso::keyarea;
use crate::layout::Layout;
use crate::printer::{OutputFormat, Printer};
use crate::version::Version;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

/// Build systemvm.iso (or the 4.17+ patch files) from a payload
///
/// Writes OUTPUT and OUTPUT.manifest.json. The same payload and SOURCE_DATE_EPOCH give the
/// same bytes; without SOURCE_DATE_EPOCH the newest file time in the payload is used.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Payload: a directory with agent/ and scripts/, or a CloudStack source checkout
    /// [default: ./agent-payload if it exists, else the packaged
    /// /usr/share/systemvm/agent-payload]
    #[arg(long, value_name = "DIR")]
    pub payload: Option<PathBuf>,

    /// With a CloudStack checkout: take the agent's JARs from this agent.zip, systemvm.iso or
    /// patch-file directory (a checkout has none; Maven builds them)
    #[arg(long, value_name = "ARTIFACT")]
    pub agent_jars_from: Option<PathBuf>,

    /// Rebuild from an existing systemvm.iso or patch-file directory instead of a payload
    /// (the hotfix path: same JARs, changed scripts, no Maven)
    #[arg(long, value_name = "ARTIFACT", conflicts_with_all = ["payload", "agent_jars_from"])]
    pub from: Option<PathBuf>,

    /// With --from: copy this directory's files over the scripts (cloud-scripts.tgz, as at /)
    #[arg(long, value_name = "DIR", requires = "from")]
    pub overlay_scripts: Option<PathBuf>,

    /// With --from: copy this directory's files over the agent (the agent zip's root)
    #[arg(long, value_name = "DIR", requires = "from")]
    pub overlay_agent: Option<PathBuf>,

    /// What to build, by CloudStack/Cosmic generation [default: follows --version: up to
    /// 4.10 legacy, 4.11-4.16 cloudstack, 4.17+ patch-files, a date version cosmic]
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,

    /// Version, e.g. 4.16.0.0 or 4.5.0-SNAPSHOT; "date" for a Cosmic YY.M.D [default: date]
    #[arg(long = "version", value_name = "V|date")]
    pub version: Option<String>,

    /// Output ISO, or a directory to write systemvm.iso in [default: systemvm.iso;
    /// patch-files: the directory patch-files]
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Replace an output ISO whose injected keys the new one does not carry
    #[arg(long)]
    pub force: bool,

    /// Public key to put in authorized_keys (repeat for several)
    #[arg(long = "key", value_name = "PUB")]
    pub keys: Vec<PathBuf>,

    /// Size of the reserved authorized_keys in bytes
    #[arg(long, value_name = "BYTES", default_value_t = keyarea::DEFAULT_SIZE)]
    pub key_area: usize,

    /// Print the manifest on stdout in this format
    #[arg(long, value_enum, default_value_t)]
    pub output_format: OutputFormat,
}

/// `--payload`'s default: `./agent-payload` (a checkout of this project), else the one the
/// package installs.
pub fn default_payload() -> Result<PathBuf> {
    let packaged = crate::selfpkg::PAYLOAD_PATH;
    let found = ["agent-payload", packaged].map(PathBuf::from);
    if let Some(dir) = found.into_iter().find(|dir| dir.is_dir()) {
        return Ok(dir);
    }
    anyhow::bail!(
        "no payload: neither ./agent-payload nor {packaged} exists; pass --payload DIR \
         (agent/ and scripts/, or a CloudStack checkout) or --from ARTIFACT"
    )
}

impl BuildArgs {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let started = Instant::now();
        let version = match self.version.as_deref() {
            None | Some("date") => None,
            Some(v) => Some(Version::parse(v)?),
        };
        let mut keys = Vec::new();
        for path in &self.keys {
            keys.extend(crate::keys::read_public_keys(path)?);
        }
        let layout = match self.layout {
            Some(layout) => {
                layout
                    .check_version(version.as_ref())
                    .map_err(anyhow::Error::msg)?;
                layout
            }
            None => Layout::for_version(version.as_ref()),
        };
        let output = match layout {
            Layout::PatchFiles => {
                let dir = self.output.unwrap_or_else(|| PathBuf::from("patch-files"));
                crate::output::dir(&dir)?;
                dir
            }
            _ => {
                let file = crate::output::file(self.output.as_deref(), "systemvm.iso")?;
                crate::output::refuse_losing_keys(&file, &keys, self.force)?;
                file
            }
        };
        let payload = match (&self.from, self.payload) {
            (Some(artifact), _) => artifact.clone(),
            (None, Some(p)) => p,
            (None, None) => default_payload()?,
        };
        let opts = Options {
            payload,
            agent_jars_from: self.agent_jars_from,
            from: self.from.map(|artifact| build::From {
                artifact,
                overlay_scripts: self.overlay_scripts,
                overlay_agent: self.overlay_agent,
            }),
            layout,
            version,
            output,
            keys,
            key_area: self.key_area,
        };
        let built = build::run(&opts, printer)?;
        let m = &built.manifest;
        let size = m
            .iso
            .as_ref()
            .map(|c| c.size)
            .unwrap_or_else(|| m.members.iter().map(|x| x.checksums.size).sum());
        printer.info(format!(
            "built {} ({} {}, {} keys, {}) in {:.1}s\nmanifest {}",
            built.output.display(),
            m.layout,
            m.version,
            m.keys.len(),
            crate::size::mib(size),
            started.elapsed().as_secs_f64(),
            built.manifest_path.display()
        ));
        if self.output_format == OutputFormat::Json {
            render::artifact(printer, &built.output, Built, m, "built");
        }
        Ok(ExitStatus::Success)
    }
}
