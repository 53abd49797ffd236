//! The key area: `authorized_keys` built at a fixed size so keys can be replaced in place.
//!
//! Layout: the key lines, then one marker line, then `#` padding lines up to the fixed size.
//! The directory records (ISO 9660 and Joliet) give the file the length of the key lines
//! only, so every reader sees exactly the keys (empty when there are none), byte-equal to
//! the `.pub` file: CloudStack 4.11-4.15's `injectkeys.sh` compares them with `diff -q` and
//! remasters the ISO when they differ. The marker and padding stay in the reserved sectors
//! past that length; the marker says the reserved size and tells an area we reserved from
//! an ordinary `authorized_keys` (a stock ISO's), which injection remasters instead of
//! patching. [`locate`] finds the area in an image; [`show_keys_only`] sets the lengths.

use super::reader::{self, Image, IsoError};
use crate::keys;
use ssh_key::PublicKey;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
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

/// The length of the key lines of an area's bytes: everything before the marker line.
pub fn visible_len(area: &[u8]) -> usize {
    if area.starts_with(MARKER.as_bytes()) {
        return 0;
    }
    let marker = format!("\n{MARKER}");
    area.windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .map_or(area.len(), |at| at + 1)
}

/// The reserved size a marker line at the start of `bytes` states (`# systemvm key area: N
/// bytes, ...`).
fn stated_size(bytes: &[u8]) -> Option<usize> {
    let rest = bytes.strip_prefix(MARKER.as_bytes())?.strip_prefix(b": ")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Give every directory record at `records` (byte offsets in `file`) the data length `len`,
/// as ISO 9660 stores it: little-endian, then big-endian, at byte 10 of the record.
pub fn set_recorded_len(file: &File, records: &[u64], len: u32) -> io::Result<()> {
    let mut both = [0u8; 8];
    both[..4].copy_from_slice(&len.to_le_bytes());
    both[4..].copy_from_slice(&len.to_be_bytes());
    for record in records {
        file.write_all_at(&both, record + 10)?;
    }
    Ok(())
}

/// Make the key area of the image at `path` (just written by xorriso, the whole area
/// visible) show only its keys.
pub fn show_keys_only(path: &Path) -> Result<(), IsoError> {
    let image = Image::open(path)?;
    let Some(area) = locate(&image)? else {
        return Err(IsoError::Corrupt {
            path: path.to_path_buf(),
            reason: "no key area after writing one".into(),
        });
    };
    let file = File::options().write(true).open(path);
    let file = file.map_err(reader::io_error(path))?;
    let len = visible_len(&area.bytes) as u32;
    set_recorded_len(&file, &area.records, len).map_err(reader::io_error(path))
}

/// The keys an image carries: its key area's (with the area's size), else the keys of a
/// plain `authorized_keys` that parse (a stock ISO's), else none.
pub fn read_keys(image: &Image) -> Result<(Option<u32>, Vec<PublicKey>), IsoError> {
    let Some(entry) = image.find(FILE_NAME) else {
        return Ok((None, vec![]));
    };
    if let Some(area) = locate(image)? {
        return Ok((Some(area.bytes.len() as u32), area.keys));
    }
    let bytes = image.read_small(entry, MAX_SIZE as u32)?;
    let text = String::from_utf8_lossy(&bytes);
    let keys = text
        .lines()
        .filter_map(|l| PublicKey::from_openssh(l.trim()).ok())
        .collect();
    Ok((None, keys))
}

/// The keys of the ISO at `path`, as [`read_keys`] finds them.
pub fn keys_of(path: &Path) -> Result<Vec<PublicKey>, IsoError> {
    Ok(read_keys(&Image::open(path)?)?.1)
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
    /// The whole reserved area: keys, marker, padding.
    pub bytes: Vec<u8>,
    pub keys: Vec<PublicKey>,
    /// Offsets of the directory records naming it (primary and Joliet).
    pub records: Vec<u64>,
    /// The length those records give the file.
    pub recorded_len: u32,
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
    // The marker follows the keys, past the recorded length (or inside it, in ISOs built
    // before the length was set to the keys alone).
    let visible = u64::from(first.size);
    let peek =
        (MARKER.len() as u64 + 32).min(image.file_len().saturating_sub(first.offset() + visible));
    let after = image.read_at(first.offset() + visible, peek as usize, FILE_NAME)?;
    let size = match stated_size(&after) {
        Some(size) if (visible as usize..=MAX_SIZE).contains(&size) => size,
        Some(_) => return Ok(None),
        None => first.size as usize,
    };
    let bytes = image.read_at(first.offset(), size, FILE_NAME)?;
    Ok(parse(&bytes).map(|keys| Area {
        offset: first.offset(),
        bytes,
        keys,
        records: records.iter().map(|r| r.record).collect(),
        recorded_len: first.size,
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
    fn only_the_keys_are_visible() {
        let bytes = render(&[key()], 1024).unwrap();
        assert_eq!(&bytes[..visible_len(&bytes)], format!("{ED}\n").as_bytes());
        assert_eq!(visible_len(&render(&[], 512).unwrap()), 0);
        let marker = &bytes[visible_len(&bytes)..];
        assert_eq!(stated_size(marker), Some(1024));
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
