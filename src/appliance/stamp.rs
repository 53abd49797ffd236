//! Make qemu-img's VHD and VMDK outputs repeatable. qemu-img writes the creation time and a
//! random UUID into every VHD footer, and a random content id (`CID=`) into every VMDK
//! descriptor; nothing else differs between two runs on the same input (measured with
//! `cmp -l`). When `SOURCE_DATE_EPOCH` is set these fields are rewritten in place:
//!
//! - VHD: both footer copies (offset 0 and the last 512 bytes): the timestamp (seconds since
//!   2000-01-01 UTC) becomes the epoch, the UUID is derived from the epoch and the file name
//!   (SHA-256, RFC 4122 version 4 layout), and the footer checksum is recomputed.
//! - VMDK: the 8 hex digits after `CID=` in the embedded descriptor, derived the same way.
//!
//! VHDX is left as qemu-img writes it: its headers (`FileWriteGuid`, `DataWriteGuid`, with
//! CRC-32C), its log entries and the metadata's `Page83Data` disk id are random per run.

use sha2::{Digest, Sha256};
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Seconds from 1970-01-01 to 2000-01-01, the VHD epoch.
const VHD_EPOCH: i64 = 946_684_800;

/// 16 bytes that depend only on what is asked for: the same build gets the same id.
fn derived_id(kind: &str, name: &str, epoch: i64) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(kind.as_bytes())
        .chain_update([0])
        .chain_update(name.as_bytes())
        .chain_update([0])
        .chain_update(epoch.to_string().as_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is not {what}", path.display()),
    )
}

/// The VHD footer checksum: the one's complement of the byte sum, checksum field excluded.
pub fn vhd_checksum(footer: &[u8; 512]) -> u32 {
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |acc, (_, b)| acc.wrapping_add(u32::from(*b)));
    !sum
}

/// Rewrite the timestamp and UUID of both footers of a VHD, recomputing their checksums.
pub fn fix_vhd(path: &Path, epoch: i64) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let uuid = derived_id("vhd", &name, epoch);
    let stamp = (epoch - VHD_EPOCH).clamp(0, i64::from(u32::MAX)) as u32;
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len < 1024 {
        return Err(invalid(path, "a VHD"));
    }
    // A dynamic VHD has a footer copy at 0; a fixed one only at the end.
    let mut offsets = vec![len - 512];
    let mut head = [0u8; 8];
    file.read_exact(&mut head)?;
    if &head == b"conectix" {
        offsets.insert(0, 0);
    }
    for offset in offsets {
        let mut footer = [0u8; 512];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut footer)?;
        if &footer[..8] != b"conectix" {
            return Err(invalid(path, "a VHD (no footer)"));
        }
        footer[24..28].copy_from_slice(&stamp.to_be_bytes());
        footer[68..84].copy_from_slice(&uuid);
        let sum = vhd_checksum(&footer);
        footer[64..68].copy_from_slice(&sum.to_be_bytes());
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&footer)?;
    }
    file.sync_all()
}

/// Rewrite the `CID=` of a VMDK's embedded descriptor (same length, so nothing moves).
pub fn fix_vmdk(path: &Path, epoch: i64) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = derived_id("vmdk", &name, epoch);
    let mut cid = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    if cid == u32::MAX {
        cid = 1; // ffffffff means "no parent" in parentCID; keep clear of it
    }
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut header = [0u8; 512];
    file.read_exact(&mut header)?;
    if &header[..4] != b"KDMV" {
        return Err(invalid(path, "a sparse VMDK"));
    }
    let sectors = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let (desc_offset, desc_size) = (sectors(28) * 512, sectors(36) * 512);
    if desc_offset == 0 || desc_size == 0 || desc_size > 1 << 20 {
        return Err(invalid(path, "a VMDK with an embedded descriptor"));
    }
    let mut desc = vec![0u8; desc_size as usize];
    file.seek(SeekFrom::Start(desc_offset))?;
    file.read_exact(&mut desc)?;
    let at = desc
        .windows(5)
        .position(|w| w == b"\nCID=")
        .map(|p| p + 5)
        .ok_or_else(|| invalid(path, "a VMDK with a CID"))?;
    let digits = format!("{cid:08x}");
    let end = at + 8;
    if end > desc.len() || !desc[at..end].iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid(path, "a VMDK with an 8-digit CID"));
    }
    file.seek(SeekFrom::Start(desc_offset + at as u64))?;
    file.write_all(digits.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_name_and_epoch_only() {
        assert_eq!(derived_id("vhd", "a", 1), derived_id("vhd", "a", 1));
        assert_ne!(derived_id("vhd", "a", 1), derived_id("vhd", "b", 1));
        assert_ne!(derived_id("vhd", "a", 1), derived_id("vhd", "a", 2));
        assert_eq!(derived_id("vhd", "a", 1)[6] >> 4, 4);
    }

    #[test]
    fn checksum_skips_its_own_field() {
        let mut footer = [0u8; 512];
        footer[0] = 1;
        footer[64] = 0xff;
        assert_eq!(vhd_checksum(&footer), !1u32);
    }
}
