//! `systemvm keys`: the management server key pair. `generate` writes a new pair the way
//! ssh-keygen does; `show` prints what `ssh-keygen -l -f` prints. A passphrase only ever comes
//! from a file, never from the command line, and is never printed.

use crate::exit::ExitStatus;
use crate::keys::{self, KeyType};
use crate::printer::Printer;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// Generate the key pair and show fingerprints
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    #[command(after_help = crate::cli::examples::KEYS_GENERATE)]
    Generate(GenerateArgs),
    /// Print fingerprints as `ssh-keygen -l -f` does
    #[command(after_help = crate::cli::examples::KEYS_SHOW)]
    Show {
        /// A public key, authorized_keys or private key file
        #[arg(value_name = "KEY_PATH")]
        key: PathBuf,
    },
}

/// Generate a key pair: PATH (0600) and PATH.pub (0644)
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// ed25519 (default), rsa or ecdsa
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = KeyType::Ed25519)]
    #[arg(hide_possible_values = true, hide_default_value = true)]
    pub kind: KeyType,

    /// Key size: rsa 2048, 3072, 4096; ecdsa 256, 384
    ///
    /// Defaults: rsa 3072, ecdsa 256 (P-256). ed25519 has one size.
    #[arg(long, value_name = "N")]
    pub bits: Option<u32>,

    /// Private key file, or a directory for id_<type> [default: ./id_<type>]
    ///
    /// The public key goes beside it as PATH.pub. Default: id_ed25519 (or
    /// id_rsa, id_ecdsa) in the current directory, or in PATH when it is a
    /// directory.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Key comment [default: systemvm@<hostname>]
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,

    /// Encrypt with the passphrase on FILE's first line
    ///
    /// The line ending is not part of it; an empty passphrase is refused.
    /// Keep FILE mode 0600. A passphrase is never taken from the command line.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Replace existing key files
    #[arg(long)]
    pub force: bool,
}

impl KeysCommand {
    pub fn run(self, printer: &Printer) -> Result<ExitStatus> {
        match self {
            KeysCommand::Generate(args) => args.run(printer),
            KeysCommand::Show { key } => show(&key, printer),
        }
    }
}

impl GenerateArgs {
    fn run(self, printer: &Printer) -> Result<ExitStatus> {
        let output = crate::output::file(self.output.as_deref(), &format!("id_{}", self.kind))?;
        // Check everything cheap first: RSA generation takes seconds.
        keys::check_target(&output, self.force)?;
        let mut passphrase = None;
        if let Some(file) = &self.passphrase_file {
            passphrase = Some(keys::read_passphrase_file(file)?);
            // Warned about when others can read it too.
            if let Some(problem) = crate::secret::mode_problem(file) {
                printer.warn(problem);
            }
        }
        let comment = self.comment.unwrap_or_else(keys::default_comment);
        let key = keys::generate(self.kind, self.bits, &comment)?;
        let pass = passphrase.as_ref().map(keys::Passphrase::as_bytes);
        keys::save_pair(&key, &output, pass, self.force)?;
        printer.out(keys::info(key.public_key()).ssh_keygen_line());
        let encrypted = if pass.is_some() { ", encrypted" } else { "" };
        printer.info(format!(
            "wrote {} (0600{encrypted}) and {} (0644)",
            output.display(),
            keys::pub_path(&output).display()
        ));
        Ok(ExitStatus::Success)
    }
}

/// The fingerprints of every key in `path`, as `ssh-keygen -l -f` prints them.
fn show(path: &Path, printer: &Printer) -> Result<ExitStatus> {
    let shown = keys::show(path)?;
    for warning in &shown.warnings {
        printer.warn(warning);
    }
    for key in &shown.keys {
        printer.out(key.line());
    }
    Ok(ExitStatus::Success)
}
