//! The key area: `authorized_keys` built at a fixed size so keys can be replaced in place.
//!
//! Layout: the key lines, then one marker line, then `#` padding lines up to the fixed size.
//! OpenSSH skips lines that start with `#`, so the file works as it is inside the system VM.
//! The marker tells an area we reserved from an ordinary `authorized_keys` (a stock ISO's),
//! which injection remasters instead of patching. [`locate`] finds the area in an image.

use super::reader::{Image, IsoError};
use crate::keys;
use ssh_key::PublicKey;
use std::path::Path;

/// Default reserved size: room for about twenty RSA-4096 keys or a hundred ed25519 keys.
pub const DEFAULT_SIZE: usize = 16 * 1024;
/// The name of the area in the ISO.
pub const FILE_NAME: &str = "authorized_keys";
/// Starts the marker line.
pub const MARKER: &str = "# systemvm key area";
/// The largest area we will read or write.
pub const MAX_SIZE: usize = 1024 * 1024;

const PAD_LINE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum KeyAreaError {
    #[error("the keys need {needed} bytes but the key area holds {size}; rebuild the ISO with a larger --key-area")]
    TooSmall { needed: usize, size: usize },
    #[error("a key area must be between 256 bytes and 1 MiB, not {0}")]
    BadSize(usize),
}

/// The area's bytes holding `keys`, exactly `size` long.
pub fn render(keys: &[PublicKey], size: usize) -> Result<Vec<u8>, KeyAreaError> {
    if !(256..=MAX_SIZE).contains(&size) {
        return Err(KeyAreaError::BadSize(size));
    }
    let mut out = String::new();
    for key in keys {
        out.push_str(&keys::authorized_line(key));
        out.push('\n');
    }
    out.push_str(&format!(
        "{MARKER}: {size} bytes, rewritten in place by `systemvm inject`; sshd skips # lines\n"
    ));
    if out.len() > size {
        return Err(KeyAreaError::TooSmall {
            needed: out.len(),
            size,
        });
    }
    let mut bytes = out.into_bytes();
    while bytes.len() < size {
        let line = (size - bytes.len()).min(PAD_LINE);
        bytes.extend(std::iter::repeat_n(b'#', line - 1));
        bytes.push(b'\n');
    }
    Ok(bytes)
}

/// The key lines of a key area, or `None` when `bytes` is not one (no marker, or a line that
/// is neither a key nor a comment).
pub fn parse(bytes: &[u8]) -> Option<Vec<PublicKey>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.ends_with('\n') || !text.lines().any(|l| l.starts_with(MARKER)) {
        return None;
    }
    keys::parse_public_keys(text, Path::new(FILE_NAME)).ok()
}

/// A key area found in an image: where it is, its bytes and the keys they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    /// Byte offset of the area in the image.
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub keys: Vec<PublicKey>,
}

/// The key area of `image`, if every record of `authorized_keys` (Rock Ridge and Joliet)
/// agrees on one extent and the bytes there are an area. `None` for an ISO without one.
pub fn locate(image: &Image) -> Result<Option<Area>, IsoError> {
    let records = image.all_records(FILE_NAME);
    let Some(first) = records.first() else {
        return Ok(None);
    };
    if records
        .iter()
        .any(|r| r.extent != first.extent || r.size != first.size)
    {
        // The Joliet tree holds its own copy: patching one would leave readers disagreeing.
        return Ok(None);
    }
    let bytes = image.read_small(first, MAX_SIZE as u32)?;
    Ok(parse(&bytes).map(|keys| Area {
        offset: first.offset(),
        bytes,
        keys,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGb2bBv3XeMCzRR5vt6fwy3y9z9xNW/5CK5uYuyoHTzr mgmt@cloud";

    fn key() -> PublicKey {
        PublicKey::from_openssh(ED).unwrap()
    }

    #[test]
    fn render_is_exact_size_and_round_trips() {
        for size in [256, 1000, 4096, DEFAULT_SIZE] {
            let bytes = render(&[key()], size).unwrap();
            assert_eq!(bytes.len(), size);
            assert!(bytes.starts_with(ED.as_bytes()));
            assert_eq!(parse(&bytes).unwrap(), vec![key()]);
        }
    }

    #[test]
    fn empty_area_has_no_keys() {
        assert_eq!(parse(&render(&[], 512).unwrap()).unwrap(), vec![]);
    }

    #[test]
    fn too_many_keys_is_an_error() {
        let keys = vec![key(); 4];
        assert!(matches!(
            render(&keys, 300),
            Err(KeyAreaError::TooSmall { size: 300, .. })
        ));
    }

    #[test]
    fn plain_authorized_keys_is_not_an_area() {
        assert!(parse(format!("{ED}\n").as_bytes()).is_none());
        assert!(parse(b"garbage\n# systemvm key area\n").is_none());
    }
}
