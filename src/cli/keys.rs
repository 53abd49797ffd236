//! `systemvm keys`: the management server key pair.

use crate::printer::Printer;
use clap::Subcommand;

/// Generate the key pair and show fingerprints
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print fingerprints as `ssh-keygen -l` does
    Show {
        /// A public or private key file
        key: std::path::PathBuf,
    },
}

impl KeysCommand {
    pub fn run(self, printer: &Printer) -> anyhow::Result<()> {
        match self {
            KeysCommand::Show { key } => {
                for k in crate::keys::read_public_keys(&key)? {
                    printer.out(crate::keys::info(&k).ssh_keygen_line());
                }
                Ok(())
            }
        }
    }
}
