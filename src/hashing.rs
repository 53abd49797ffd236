//! Streaming: one chunk size, one read loop, and the digests of files and readers in one
//! pass. Every file that is hashed or copied in systemvm goes through [`stream`], so memory
//! stays flat whatever the size of the ISO or the disk image.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::path::Path;

/// Bytes per read while streaming a file (a hash, an upload, a read-back).
pub const CHUNK: usize = 256 * 1024;

/// Why [`stream`] stopped: the source failed to read, or the sink refused a chunk.
#[derive(Debug)]
pub enum StreamError<E> {
    Read(io::Error),
    Sink(E),
}

/// Read `reader` to its end in [`CHUNK`]s, handing each to `sink`; the bytes read.
pub fn stream<E>(
    reader: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, StreamError<E>> {
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(StreamError::Read(e)),
        };
        sink(&buf[..n]).map_err(StreamError::Sink)?;
        done += n as u64;
    }
}

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
    Sha512,
}

/// The digests of one pass, in lower-case hex; `None` for an algorithm not asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sums {
    pub size: u64,
    pub md5: Option<String>,
    pub sha256: Option<String>,
    pub sha512: Option<String>,
}

impl Sums {
    /// The digest for `algorithm`, or an empty string when it was not computed.
    pub fn get(&self, algorithm: Algorithm) -> &str {
        let slot = match algorithm {
            Algorithm::Md5 => &self.md5,
            Algorithm::Sha256 => &self.sha256,
            Algorithm::Sha512 => &self.sha512,
        };
        slot.as_deref().unwrap_or_default()
    }
}

/// Stream `reader` through each of `algorithms`.
pub fn of_reader(reader: &mut dyn Read, algorithms: &[Algorithm]) -> io::Result<Sums> {
    let mut md5 = algorithms.contains(&Algorithm::Md5).then(Md5::new);
    let mut sha256 = algorithms.contains(&Algorithm::Sha256).then(Sha256::new);
    let mut sha512 = algorithms.contains(&Algorithm::Sha512).then(Sha512::new);
    let size = stream(reader, |chunk| {
        md5.iter_mut().for_each(|h| h.update(chunk));
        sha256.iter_mut().for_each(|h| h.update(chunk));
        sha512.iter_mut().for_each(|h| h.update(chunk));
        Ok::<(), io::Error>(())
    })
    .map_err(|e| match e {
        StreamError::Read(e) | StreamError::Sink(e) => e,
    })?;
    Ok(Sums {
        size,
        md5: md5.map(|h| hex(&h.finalize())),
        sha256: sha256.map(|h| hex(&h.finalize())),
        sha512: sha512.map(|h| hex(&h.finalize())),
    })
}

/// The digests of a file.
pub fn of_file(path: &Path, algorithms: &[Algorithm]) -> io::Result<Sums> {
    of_reader(&mut File::open(path)?, algorithms)
}

/// The sha256 of a file, in hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    Ok(of_file(path, &[Algorithm::Sha256])?
        .sha256
        .unwrap_or_default())
}

/// The sha256 of bytes in memory, in hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most 7 bytes a call and is interrupted every other call.
    struct Stingy<'a>(&'a [u8], bool);
    impl Read for Stingy<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::Error::from(ErrorKind::Interrupted));
            }
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn digests_match_the_known_vectors_whatever_the_reads() {
        let sums = of_reader(
            &mut Stingy(b"abc", false),
            &[Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512],
        )
        .unwrap();
        assert_eq!(sums.size, 3);
        assert_eq!(sums.get(Algorithm::Md5), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            sums.get(Algorithm::Sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(sums.get(Algorithm::Sha512).starts_with("ddaf35a193617aba"));
        let only = of_reader(&mut &b"abc"[..], &[Algorithm::Sha256]).unwrap();
        assert_eq!((only.md5, only.sha512), (None, None));
    }

    #[test]
    fn a_refusing_sink_stops_the_stream() {
        let data = vec![1u8; CHUNK * 3];
        let mut calls = 0;
        let err = stream(&mut &data[..], |_| {
            calls += 1;
            if calls == 2 {
                Err("full")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(matches!(err, StreamError::Sink("full")));
        assert_eq!(calls, 2);
    }
}
