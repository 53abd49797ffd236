//! External tools for the exports (qemu-img): run one with an explicit argument list (never a
//! shell string), capture its stderr, and on failure name the whole command line and the
//! tool's last words. `qemu-img info --output=json` is parsed into [`ImageInfo`].

use crate::transport::quote;
use std::path::Path;
use std::process::{Command, Stdio};

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

/// A `qemu-img` command, to be given its arguments and [`run`].
pub fn qemu_img() -> Command {
    Command::new("qemu-img")
}

/// The program and its arguments, each quoted as a shell word.
pub fn command_line(cmd: &Command) -> String {
    let words: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    quote::command(&words)
}

/// Run `cmd` (stdin empty); stdout on success.
pub fn run(cmd: &mut Command) -> Result<Vec<u8>, ToolError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ToolError::Missing {
            package: package_of(&program),
            program,
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let detail = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string();
    Err(ToolError::Failed {
        command: command_line(cmd),
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
}

/// `qemu-img info --output=json [-f FORMAT] PATH`.
pub fn image_info(path: &Path, format: Option<&str>) -> anyhow::Result<ImageInfo> {
    let mut cmd = qemu_img();
    cmd.args(["info", "--output=json"]);
    if let Some(f) = format {
        cmd.args(["-f", f]);
    }
    let out = run(cmd.arg(path))?;
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
    let out = run(qemu_img()
        .args(["map", "--output=json", "-f", format])
        .arg(path))?;
    let extents: Vec<Extent> = serde_json::from_slice(&out)
        .map_err(|e| anyhow::anyhow!("cannot read qemu-img map for {}: {e}", path.display()))?;
    Ok(extents.iter().filter(|e| e.data).map(|e| e.length).sum())
}
