//! `systemvm package deb`

use crate::deb::{self, ControlFile, DataFile, Package};
use crate::exit::ExitStatus;
use crate::printer::Printer;
use crate::transport::quote::quote;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Package an ISO, or systemvm itself, for hosts managed by apt
#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    #[command(after_help = crate::cli::examples::PACKAGE_DEB)]
    Deb(DebArgs),
    #[command(name = "self", after_help = crate::cli::examples::PACKAGE_SELF)]
    SelfPackage(SelfArgs),
}

/// A reproducible Debian package of systemvm itself
///
/// Holds this binary as /usr/bin/systemvm, the man pages, bash, zsh and fish
/// completions, the systemvm-startup.service unit (not enabled) and an example
/// /etc/systemvm/config.toml under /usr/share/doc/systemvm/examples.
#[derive(Debug, Args)]
pub struct SelfArgs {
    /// Output file or directory [default: ./systemvm_<version>_<arch>.deb]
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// The binary to package [default: the running one]
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,

    /// Debian architecture [default: this build's, e.g. amd64]
    #[arg(long, value_name = "ARCH")]
    pub architecture: Option<String>,

    /// Maintainer field
    #[arg(long, default_value = "systemvm <root@localhost>")]
    pub maintainer: String,
}

impl SelfArgs {
    fn run(self, printer: &Printer) -> Result<ExitStatus> {
        use crate::selfpkg;
        if let Some(a) = &self.architecture {
            let ok = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                bail!("--architecture {a:?} is not a Debian architecture (e.g. amd64)");
            }
        }
        if self.maintainer.contains('\n') {
            bail!("--maintainer must be one line");
        }
        let binary = match self.binary {
            Some(b) => b,
            None => std::env::current_exe().context("cannot find the running binary")?,
        };
        let arch = match self.architecture {
            Some(a) => a,
            None => selfpkg::host_architecture()
                .context("unknown Debian architecture for this build; pass --architecture")?
                .to_string(),
        };
        let version = selfpkg::version();
        let name = format!("systemvm_{version}_{arch}.deb");
        let out = crate::output::file(self.output.as_deref(), &name)?;
        let mtime = crate::epoch::source_date_epoch()?.unwrap_or(0).max(0) as u64;
        let req = selfpkg::Request {
            binary,
            maintainer: self.maintainer,
            architecture: Some(arch),
            mtime,
            man_pages: super::docs::man_pages().context("cannot render the man pages")?,
            completions: super::docs::completions(),
        };
        let spinner = printer.spinner(format!("packing {}", req.binary.display()));
        selfpkg::write(&req, &out)?;
        spinner.finish_and_clear();
        printer.info(format!("wrote {} (systemvm {version})", out.display()));
        Ok(ExitStatus::Success)
    }
}

/// A reproducible Debian package that installs the ISO (for KVM hosts)
///
/// The package diverts the ISO that cloudstack-common ships (dpkg-divert), so both can be
/// installed and removing ours restores theirs.
#[derive(Debug, Args)]
pub struct DebArgs {
    /// The ISO to package
    pub iso: PathBuf,

    /// Output file or directory [default: ./<name>_<version>_all.deb]
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Package name
    #[arg(long, default_value = "systemvm-iso")]
    pub name: String,

    /// Where the package installs the ISO
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/usr/share/cloudstack-common/vms/systemvm.iso"
    )]
    pub install_path: String,

    /// The ISO's version [default: from its manifest or volume id]
    #[arg(long = "iso-version", value_name = "V")]
    pub iso_version: Option<String>,

    /// Maintainer field
    #[arg(long, default_value = "systemvm <root@localhost>")]
    pub maintainer: String,

    /// Do not divert a file already installed at the path by another package
    #[arg(long)]
    pub no_divert: bool,
}

impl PackageCommand {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        match self {
            PackageCommand::Deb(args) => args.run(printer),
            PackageCommand::SelfPackage(args) => args.run(printer),
        }
    }
}

impl DebArgs {
    fn run(self, printer: &Printer) -> Result<ExitStatus> {
        if !crate::appliance::packages::valid_name(&self.name) {
            bail!(
                "--name {:?} is not a Debian package name (lower case, digits, + - .)",
                self.name
            );
        }
        if !self.install_path.starts_with('/') || self.install_path.contains(char::is_control) {
            bail!("--install-path must be an absolute path");
        }
        // A newline would start a field of its own in the control file (`Depends: ...`).
        if self.maintainer.trim().is_empty() || self.maintainer.contains(char::is_control) {
            bail!(
                "--maintainer {:?} must be one line of text, e.g. \"Name <mail@example.org>\"",
                self.maintainer
            );
        }
        // Hashing and packing a 300 MB ISO takes seconds: a spinner on a terminal.
        let spinner = printer.spinner(format!("packing {}", self.iso.display()));
        let iso = crate::hypervisors::IsoInfo::from_path(&self.iso, self.iso_version.as_deref())?;
        let version = deb::debian_version(iso.version.as_str());
        let manifest = crate::manifest::path_for(&self.iso);
        let mtime = match crate::epoch::source_date_epoch()? {
            Some(e) => e,
            None if manifest.exists() => {
                crate::manifest::Manifest::read(&manifest)?.source_date_epoch
            }
            None => 0,
        };
        let description = format!(
            "CloudStack system VM ISO {}\n The ISO installed at {},\n \
             for KVM hosts whose agent reads it from there.\n sha256 {}",
            iso.version, self.install_path, iso.sha256
        );
        let fields = [
            ("Package", self.name.clone()),
            ("Version", version.clone()),
            ("Architecture", "all".into()),
            ("Maintainer", self.maintainer.clone()),
            ("Section", "admin".into()),
            ("Priority", "optional".into()),
            ("Description", description),
        ];
        let scripts = if self.no_divert {
            vec![]
        } else {
            divert_scripts(&self.name, &self.install_path)
        };
        let pkg = Package {
            fields: fields.map(|(k, v)| (k.to_string(), v)).into(),
            files: vec![DataFile {
                target: self.install_path.clone(),
                source: self.iso.clone(),
                mode: 0o644,
            }],
            scripts,
            mtime: mtime.max(0) as u64,
        };
        let default_name = format!("{}_{version}_all.deb", self.name);
        let out = crate::output::file(self.output.as_deref(), &default_name)?;
        let tmp = crate::atomic::temp_beside(&out)?;
        tmp.reopen()
            .and_then(|file| deb::write(&pkg, file))
            .with_context(|| format!("cannot write {}", out.display()))?;
        crate::atomic::persist(tmp, &out, 0o644)?;
        spinner.finish_and_clear();
        printer.info(format!("wrote {} ({} {version})", out.display(), self.name));
        Ok(ExitStatus::Success)
    }
}

fn divert_scripts(package: &str, path: &str) -> Vec<ControlFile> {
    let divert = format!(
        "dpkg-divert --package {} --rename --divert {} ",
        quote(package),
        quote(&format!("{path}.distrib"))
    );
    let script = |when: &str, action: &str| {
        format!(
            "#!/bin/sh\nset -e\ncase \"$1\" in\n{when})\n    {divert}{action} {}\n    ;;\nesac\n",
            quote(path)
        )
    };
    [
        ("preinst", "install|upgrade", "--add"),
        ("postrm", "remove|abort-install|disappear", "--remove"),
    ]
    .map(|(name, when, action)| ControlFile {
        name: name.into(),
        contents: script(when, action),
        mode: 0o755,
    })
    .into()
}
