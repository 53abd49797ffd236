//! The Debian package of systemvm itself (`systemvm package self`), written with our own
//! reproducible writer ([`crate::deb`]) by the binary that goes into it.
//!
//! The binary packs itself (or `--binary`), so what is installed is exactly what ran. Man
//! pages and shell completions come rendered in the request (`cli::docs` renders them from
//! the binary's own clap tree, as `tests/integration/man.rs` checks `man/`), the systemd
//! unit and the example config are the repository's `packaging/` files, embedded at build
//! time, as are the inventory(5) page (`man/systemvm-inventory.5`) and the bundled payload
//! (`agent-payload/`, listed by the build script), installed as [`PAYLOAD_PATH`] for
//! `build`'s default `--payload`. Generated files go to a temp directory; page gzips carry
//! no name or time. Same binary and `SOURCE_DATE_EPOCH`: same bytes.

use crate::deb::{self, ControlFile, DataFile, Package};
use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const UNIT: &str = include_str!("../packaging/systemvm-startup.service");
pub const EXAMPLE_CONFIG: &str = include_str!("../packaging/config.toml");

pub const EXAMPLE_HOSTS: &str = include_str!("../packaging/hosts.toml");
pub const INVENTORY_PAGE: &str = include_str!("../man/systemvm-inventory.5");

pub const UNIT_PATH: &str = "/lib/systemd/system/systemvm-startup.service";
pub const EXAMPLE_PATH: &str = "/usr/share/doc/systemvm/examples/config.toml";
pub const EXAMPLE_HOSTS_PATH: &str = "/usr/share/doc/systemvm/examples/hosts.toml";
/// Where the package installs the bundled payload.
pub const PAYLOAD_PATH: &str = "/usr/share/systemvm/agent-payload";

/// The bundled payload: path below `agent-payload/`, contents, mode.
pub const BUNDLED_PAYLOAD: &[(&str, &[u8], u32)] =
    include!(concat!(env!("OUT_DIR"), "/bundled_payload.rs"));

/// Runtime libraries the binary links (glibc, libgcc, OpenSSL 3 and zlib for libssh2) and
/// the one tool every ISO command runs.
const DEPENDS: &str = "libc6 (>= 2.34), libgcc-s1, libssl3, zlib1g, xorriso";
/// What `appliance build` and the tests of hosts use; not needed to key and propagate.
const SUGGESTS: &str =
    "mmdebstrap, qemu-utils, fdisk, e2fsprogs, dosfstools, mtools, grub-common, openssh-client";

/// Reload systemd's units after install and removal, on a running systemd only, and never
/// for an install into another root (`dpkg --root`). The unit is not enabled: the admin
/// writes /etc/systemvm/config.toml first, then `systemctl enable systemvm-startup`.
const RELOAD: &str = "#!/bin/sh\nset -e\n\
if [ -z \"${DPKG_ROOT:-}\" ] && [ -d /run/systemd/system ]; then\n    \
systemctl daemon-reload >/dev/null || true\nfi\n";

#[derive(Debug, Clone)]
pub struct Request {
    pub binary: PathBuf,
    pub maintainer: String,
    /// Debian architecture; from the build target when `None`.
    pub architecture: Option<String>,
    pub mtime: u64,
    /// Man pages as roff, by page name (`systemvm-keys-generate`).
    pub man_pages: BTreeMap<String, Vec<u8>>,
    pub completions: Completions,
}

/// Shell completion scripts.
#[derive(Debug, Clone)]
pub struct Completions {
    pub bash: Vec<u8>,
    pub zsh: Vec<u8>,
    pub fish: Vec<u8>,
}

/// The Debian architecture of this build.
pub fn host_architecture() -> Option<&'static str> {
    Some(match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

/// The package's version: this build's, mapped to Debian order.
pub fn version() -> String {
    deb::debian_version(env!("CARGO_PKG_VERSION"))
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(bytes)?;
    gz.finish()
}

/// Write the package to `out` (a temp file renamed into place).
pub fn write(req: &Request, out: &Path) -> Result<()> {
    let arch = match &req.architecture {
        Some(a) => a.clone(),
        None => host_architecture()
            .context("unknown Debian architecture for this build; pass --architecture")?
            .to_string(),
    };
    crate::elf::check_executable(&req.binary, &arch).map_err(anyhow::Error::msg)?;
    let work = tempfile::tempdir().context("cannot create a temp directory")?;
    let files = data_files(req, work.path())?;
    let fields = vec![
        ("Package".to_string(), "systemvm".to_string()),
        ("Version".to_string(), version()),
        ("Architecture".to_string(), arch),
        ("Maintainer".to_string(), req.maintainer.clone()),
        ("Depends".to_string(), DEPENDS.to_string()),
        ("Suggests".to_string(), SUGGESTS.to_string()),
        ("Section".to_string(), "admin".to_string()),
        ("Priority".to_string(), "optional".to_string()),
        ("Description".to_string(), DESCRIPTION.to_string()),
    ];
    let scripts = ["postinst", "postrm"]
        .into_iter()
        .map(|name| ControlFile {
            name: name.into(),
            contents: RELOAD.into(),
            mode: 0o755,
        })
        .collect();
    let pkg = Package {
        fields,
        files,
        scripts,
        mtime: req.mtime,
    };
    let tmp = crate::atomic::temp_beside(out)?;
    let file = tmp
        .reopen()
        .with_context(|| format!("cannot write {}", out.display()))?;
    deb::write(&pkg, file).with_context(|| format!("cannot write {}", out.display()))?;
    crate::atomic::persist(tmp, out, 0o644)
}

/// The package's files: the binary, then the man pages, completions, unit, examples, the
/// bundled payload and the copyright, each staged in `work`.
fn data_files(req: &Request, work: &Path) -> Result<Vec<DataFile>> {
    let mut files = vec![DataFile {
        target: "/usr/bin/systemvm".into(),
        source: req.binary.clone(),
        mode: 0o755,
    }];
    let mut add = |target: &str, bytes: &[u8], mode: u32| -> Result<()> {
        let name = target.trim_start_matches('/').replace('/', "_");
        let path = work.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        files.push(DataFile {
            target: target.to_string(),
            source: path,
            mode,
        });
        Ok(())
    };

    for (name, roff) in &req.man_pages {
        let page = gzip(roff)?;
        add(&format!("/usr/share/man/man1/{name}.1.gz"), &page, 0o644)?;
    }
    let c = &req.completions;
    let inventory_page = gzip(INVENTORY_PAGE.as_bytes())?;
    for (target, bytes) in [
        (
            "/usr/share/bash-completion/completions/systemvm",
            &c.bash[..],
        ),
        ("/usr/share/zsh/vendor-completions/_systemvm", &c.zsh),
        (
            "/usr/share/fish/vendor_completions.d/systemvm.fish",
            &c.fish,
        ),
        (UNIT_PATH, UNIT.as_bytes()),
        (EXAMPLE_PATH, EXAMPLE_CONFIG.as_bytes()),
        (EXAMPLE_HOSTS_PATH, EXAMPLE_HOSTS.as_bytes()),
        (
            "/usr/share/man/man5/systemvm-inventory.5.gz",
            &inventory_page,
        ),
        ("/usr/share/doc/systemvm/copyright", COPYRIGHT.as_bytes()),
    ] {
        add(target, bytes, 0o644)?;
    }
    for (rel, bytes, mode) in BUNDLED_PAYLOAD {
        add(&format!("{PAYLOAD_PATH}/{rel}"), bytes, *mode)?;
    }

    Ok(files)
}

/// The package's Description: a summary line, then the body, each line within 80 columns.
const DESCRIPTION: &str = "build, key and propagate the CloudStack system VM ISO\n \
systemvm builds CloudStack's and Cosmic's systemvm.iso reproducibly, manages\n \
and injects the management server's SSH keys, and propagates the ISO to\n \
XenServer, VMware, KVM and Hyper-V hosts. The systemvm-startup unit runs it\n \
before cloudstack-management.service (configure /etc/systemvm/config.toml\n \
first; examples are in /usr/share/doc/systemvm/examples). The bundled payload\n \
is in /usr/share/systemvm/agent-payload.";

const COPYRIGHT: &str =
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: systemvm\n\n\
Files: *\n\
License: Apache-2.0\n \
On Debian systems the full text of the Apache License 2.0 is in\n \
/usr/share/common-licenses/Apache-2.0.\n";
