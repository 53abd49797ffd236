//! A target's transport, opened from its endpoint: a local directory, SMB or SSH. Secrets
//! are read here, per host, and only here.

use super::{Mode, Options};
use crate::inventory::{Access, Credentials, Target};
use crate::kind::Hypervisor;
use crate::secret::Secret;
use crate::transport::local::{LocalDir, Root};
use crate::transport::smb::{SmbConfig, SmbTransport};
use crate::transport::ssh::{SshAuth, SshConfig, SshTransport};
use crate::transport::Transport;

/// Open the transport for a target. Secrets are read here, per host, and only here.
pub fn connect(target: &Target, opts: &Options) -> anyhow::Result<Box<dyn Transport>> {
    match &target.access {
        Access::Directory(dir, _) => {
            let kind = match target.hypervisor {
                Hypervisor::Management => Root::Local,
                _ => Root::Share {
                    require_mount: dir.require_mount,
                },
            };
            Ok(Box::new(LocalDir::new(&target.name, &dir.path, kind)))
        }
        Access::Smb(smb, _) => {
            let password = match &smb.credentials {
                Credentials::PasswordFile(path) => Secret::from_file(path)?,
                Credentials::PasswordEnv(name) => Secret::from_env(name)?,
                Credentials::Identity(_) => anyhow::bail!(
                    "{}: SMB logs in with a password, not an SSH identity",
                    target.name
                ),
            };
            let config = SmbConfig {
                name: target.name.clone(),
                address: smb.address.clone(),
                port: smb.port,
                share: smb.share.clone(),
                user: smb.user.clone(),
                domain: smb.domain.clone(),
                password,
                connect_timeout: opts.connect_timeout,
                io_timeout: opts.transfer_timeout,
                encrypt: smb.encrypt,
            };
            Ok(Box::new(SmbTransport::connect(&config)?))
        }
        Access::Ssh(ssh, _) => {
            let auth = match &ssh.credentials {
                Credentials::Identity(path) => SshAuth::Key {
                    path: path.clone(),
                    passphrase: None,
                },
                Credentials::PasswordFile(path) => SshAuth::Password(Secret::from_file(path)?),
                Credentials::PasswordEnv(name) => SshAuth::Password(Secret::from_env(name)?),
            };
            let config = SshConfig {
                name: target.name.clone(),
                address: ssh.address.clone(),
                port: ssh.port,
                user: ssh.user.clone(),
                auth,
                known_hosts: opts.known_hosts.clone(),
                // Looking changes nothing, not even known_hosts.
                accept_new: opts.accept_new && opts.mode == Mode::Apply,
                connect_timeout: opts.connect_timeout,
                io_timeout: opts.transfer_timeout,
            };
            Ok(Box::new(SshTransport::connect(&config)?))
        }
    }
}
