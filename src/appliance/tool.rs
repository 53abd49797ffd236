//! External tools for the exports (qemu-img): run one with an explicit argument list (never a
//! shell string), capture its stderr, and on failure name the whole command line and the
//! tool's last words. `qemu-img info --output=json` is parsed into [`ImageInfo`].

use crate::transport::quote;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// A tool that could not be started or that exited non-zero.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {program}: {source} (install {package})")]
    Missing {
        program: String,
        package: &'static str,
        source: std::io::Error,
    },
    #[error("command failed ({status}): {command}: {detail}")]
    Failed {
        command: String,
        status: String,
        detail: String,
    },
}

/// The Debian package that ships a program, for the "install it" hint.
fn package_of(program: &str) -> &'static str {
    match program {
        "qemu-img" => "qemu-utils",
        _ => "it",
    }
}

/// Run `program args...`; stdout on success.
pub fn run<I, S>(program: &str, args: I) -> Result<Vec<u8>, ToolError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let output = Command::new(program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| ToolError::Missing {
            program: program.to_string(),
            package: package_of(program),
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let mut words = vec![program.to_string()];
    words.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let detail = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string();
    Err(ToolError::Failed {
        command: quote::command(&words),
        status: output
            .status
            .code()
            .map(|c| format!("exit {c}"))
            .unwrap_or_else(|| "killed".into()),
        detail,
    })
}

/// What `qemu-img info` says about an image.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ImageInfo {
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    #[serde(rename = "actual-size", default)]
    pub actual_size: u64,
    #[serde(rename = "backing-filename", default)]
    pub backing_filename: Option<String>,
}

/// `qemu-img info --output=json [-f FORMAT] PATH`.
pub fn image_info(path: &Path, format: Option<&str>) -> anyhow::Result<ImageInfo> {
    let mut args: Vec<OsString> = vec!["info".into(), "--output=json".into()];
    if let Some(f) = format {
        args.push("-f".into());
        args.push(f.into());
    }
    args.push(path.into());
    let out = run("qemu-img", args)?;
    serde_json::from_slice(&out)
        .map_err(|e| anyhow::anyhow!("cannot read qemu-img info for {}: {e}", path.display()))
}

/// Bytes of guest data a VMDK (or any image) really holds: the sum of the extents that
/// `qemu-img map` reports as data. OVF calls this a disk's populatedSize.
pub fn populated_size(path: &Path, format: &str) -> anyhow::Result<u64> {
    #[derive(serde::Deserialize)]
    struct Extent {
        length: u64,
        data: bool,
    }
    let out = run(
        "qemu-img",
        [
            OsString::from("map"),
            "--output=json".into(),
            "-f".into(),
            format.into(),
            path.into(),
        ],
    )?;
    let extents: Vec<Extent> = serde_json::from_slice(&out)
        .map_err(|e| anyhow::anyhow!("cannot read qemu-img map for {}: {e}", path.display()))?;
    Ok(extents.iter().filter(|e| e.data).map(|e| e.length).sum())
}
