//! The test bed most host tests share: a temp directory with a client key pair, SSH test
//! hosts that accept it, and the inventory and known_hosts that reach them.

use super::hosts::{HostOptions, TestHost};
use std::fs;
use std::path::{Path, PathBuf};

pub struct Bed {
    pub dir: tempfile::TempDir,
    /// The client's private key, the inventory's `identity`.
    pub identity: PathBuf,
    pub public: PathBuf,
}

/// One `[[host]]` of an inventory on 127.0.0.1: its name, port, hypervisor and any further
/// lines of its own.
pub struct Entry<'a> {
    pub name: &'a str,
    pub port: u16,
    pub kind: &'a str,
    pub extra: &'a str,
}

impl<'a> Entry<'a> {
    pub fn new(name: &'a str, port: u16, kind: &'a str) -> Self {
        Entry {
            name,
            port,
            kind,
            extra: "",
        }
    }
}

impl Bed {
    pub fn new() -> Bed {
        let dir = super::tempdir();
        let (identity, public) = super::ssh_keygen(dir.path(), "client");
        Bed {
            dir,
            identity,
            public,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Options for a host that lets the bed's key in.
    pub fn opts(&self) -> HostOptions {
        HostOptions {
            authorized_keys: Some(self.public.clone()),
            ..Default::default()
        }
    }

    /// `known_hosts` pinning every host in `hosts`.
    pub fn known_hosts(&self, hosts: &[&TestHost]) -> PathBuf {
        let text: String = hosts
            .iter()
            .map(|h| format!("{}\n", h.known_hosts_line()))
            .collect();
        let path = self.path().join("known_hosts");
        fs::write(&path, text).unwrap();
        path
    }

    /// `hosts.toml`: `[defaults]` with the bed's identity and `defaults` lines, then `entries`.
    pub fn inventory(&self, defaults: &str, entries: &[Entry]) -> PathBuf {
        let mut text = format!(
            "[defaults]\nidentity = \"{}\"\n{defaults}\n",
            self.identity.display()
        );
        for e in entries {
            text.push_str(&format!(
                "[[host]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"{}\"\n{}\n",
                e.name, e.port, e.kind, e.extra
            ));
        }
        let path = self.path().join("hosts.toml");
        fs::write(&path, text).unwrap();
        path
    }
}
