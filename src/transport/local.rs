//! Local directory transport (stub until it lands).
use super::{Output, Progress, Stat, Transport, TransportError};
use std::path::Path;

pub struct LocalDir {
    name: String,
}
impl LocalDir {
    pub fn new(name: &str) -> LocalDir {
        LocalDir { name: name.into() }
    }
}
impl Transport for LocalDir {
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
