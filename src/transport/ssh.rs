//! SSH transport (stub until the ssh2 implementation lands).
use super::{Output, Progress, Stat, Transport, TransportError};
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub enum SshAuth {
    Key {
        path: PathBuf,
        passphrase: Option<Secret>,
    },
    Password(Secret),
}

pub struct SshConfig {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub auth: SshAuth,
    pub known_hosts: PathBuf,
    pub accept_new: bool,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

pub struct SshTransport {
    name: String,
}

impl SshTransport {
    pub fn connect(config: &SshConfig) -> Result<SshTransport, TransportError> {
        Err(TransportError::Connect {
            host: config.name.clone(),
            reason: "stub".into(),
        })
    }
}

impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.name
    }
    fn run(&mut self, _: &str) -> Result<Output, TransportError> {
        unimplemented!()
    }
    fn stat(&mut self, _: &str) -> Result<Option<Stat>, TransportError> {
        unimplemented!()
    }
    fn read(&mut self, _: &str, _: u64) -> Result<Option<Vec<u8>>, TransportError> {
        unimplemented!()
    }
    fn upload(
        &mut self,
        _: &Path,
        _: &str,
        _: u32,
        _: &str,
        _: Progress,
    ) -> Result<(), TransportError> {
        unimplemented!()
    }
    fn write(&mut self, _: &str, _: &[u8], _: u32) -> Result<(), TransportError> {
        unimplemented!()
    }
    fn remove(&mut self, _: &str) -> Result<(), TransportError> {
        unimplemented!()
    }
    fn list(&mut self, _: &str) -> Result<Vec<String>, TransportError> {
        unimplemented!()
    }
}
