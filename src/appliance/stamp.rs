//! Make qemu-img's VHD and VMDK outputs repeatable. qemu-img writes the creation time and a
//! random UUID into every VHD footer, and a random content id (`CID=`) into every VMDK
//! descriptor; nothing else differs between two runs on the same input (measured with
//! `cmp -l`). When `SOURCE_DATE_EPOCH` is set these fields are rewritten in place:
//!
//! - VHD: both footer copies (offset 0 and the last 512 bytes): the timestamp (seconds since
//!   2000-01-01 UTC) becomes the epoch, the UUID is derived from the epoch and the file name
//!   (SHA-256, RFC 4122 version 4 layout), and the footer checksum is recomputed.
//! - VMDK: the `CID=` of the embedded descriptor (qemu-img prints it without leading zeros,
//!   so even its length varies), derived the same way and written as 8 hex digits.
//!
//! - VHDX: both headers' `SequenceNumber` (rebased, order kept), `FileWriteGuid` and
//!   `DataWriteGuid` (derived; equal ones stay equal), their CRC-32C recomputed; the log
//!   region, which holds only stale creation entries when the headers' `LogGuid` is zero (it
//!   is, after qemu-img closes the file), is zeroed; the metadata's `Page83Data` disk id is
//!   derived like the other ids.

use super::file_name;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
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
pub fn vhd_checksum(footer: &[u8]) -> u32 {
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |acc, (_, b)| acc.wrapping_add(u32::from(*b)));
    !sum
}

/// Rewrite the timestamp and UUID of both footers of a VHD, recomputing their checksums.
pub fn fix_vhd(path: &Path, epoch: i64) -> io::Result<()> {
    let uuid = derived_id("vhd", &file_name(path), epoch);
    let stamp = (epoch - VHD_EPOCH).clamp(0, i64::from(u32::MAX)) as u32;
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len < 1024 {
        return Err(invalid(path, "a VHD"));
    }
    // A dynamic VHD has a footer copy at 0; a fixed one only at the end.
    let mut offsets = vec![len - 512];
    if read_at(&mut file, 0, 8)? == b"conectix" {
        offsets.insert(0, 0);
    }
    for offset in offsets {
        let mut footer = read_at(&mut file, offset, 512)?;
        if &footer[..8] != b"conectix" {
            return Err(invalid(path, "a VHD (no footer)"));
        }
        footer[24..28].copy_from_slice(&stamp.to_be_bytes());
        footer[68..84].copy_from_slice(&uuid);
        let sum = vhd_checksum(&footer);
        footer[64..68].copy_from_slice(&sum.to_be_bytes());
        write_at(&mut file, offset, &footer)?;
    }
    file.sync_all()
}

/// Rewrite the `CID=` of a VMDK's embedded descriptor (same length, so nothing moves).
pub fn fix_vmdk(path: &Path, epoch: i64) -> io::Result<()> {
    let id = derived_id("vmdk", &file_name(path), epoch);
    let mut cid = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    if cid == u32::MAX {
        cid = 1; // ffffffff means "no parent" in parentCID; keep clear of it
    }
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let header = read_at(&mut file, 0, 512)?;
    if &header[..4] != b"KDMV" {
        return Err(invalid(path, "a sparse VMDK"));
    }
    let (desc_offset, desc_size) = (le64(&header, 28) * 512, le64(&header, 36) * 512);
    if desc_offset == 0 || desc_size == 0 || desc_size > 1 << 20 {
        return Err(invalid(path, "a VMDK with an embedded descriptor"));
    }
    let desc = read_at(&mut file, desc_offset, desc_size as usize)?;
    // qemu-img prints the CID without leading zeros, so its length varies between runs:
    // rewrite the descriptor text with an 8-digit CID, padded with NULs as before.
    let text_len = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    let at = desc[..text_len]
        .windows(5)
        .position(|w| w == b"\nCID=")
        .map(|p| p + 5)
        .ok_or_else(|| invalid(path, "a VMDK with a CID"))?;
    let end = at
        + desc[at..text_len]
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| invalid(path, "a VMDK with a CID line"))?;
    if end == at || end - at > 8 || !desc[at..end].iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid(path, "a VMDK with a hexadecimal CID"));
    }
    let mut text = desc[..at].to_vec();
    text.extend_from_slice(format!("{cid:08x}").as_bytes());
    text.extend_from_slice(&desc[end..text_len]);
    if text.len() > desc.len() {
        return Err(invalid(path, "a VMDK with room in its descriptor"));
    }
    text.resize(desc.len(), 0);
    write_at(&mut file, desc_offset, &text)?;
    file.sync_all()
}

/// CRC-32C (Castagnoli), as VHDX checksums its headers and region tables.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `Page83Data` metadata item id, BECA12AB-B2E6-4523-93EF-C309E000C746, as stored.
const PAGE83_ID: [u8; 16] = [
    0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45, 0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46,
];
/// Metadata region id, 8B7CA206-4790-4B9A-B8FE-575F050F886E, as stored.
const METADATA_REGION: [u8; 16] = [
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e,
];

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn read_at(file: &mut File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_at(file: &mut File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Rewrite a VHDX's per-run ids (see the module header).
pub fn fix_vhdx(path: &Path, epoch: i64) -> io::Result<()> {
    let mut ids = VhdxIds {
        name: file_name(path),
        epoch,
        seen: vec![],
    };
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    if read_at(&mut file, 0, 8)? != b"vhdxfile" {
        return Err(invalid(path, "a VHDX"));
    }
    let log = vhdx_headers(&mut file, path, &mut ids)?;
    vhdx_zero_log(&mut file, log)?;
    vhdx_page83(&mut file, path, &mut ids)?;
    file.sync_all()
}

/// The ids qemu-img drew: each distinct one gets the next derived id, in file order.
struct VhdxIds {
    name: String,
    epoch: i64,
    seen: Vec<([u8; 16], [u8; 16])>,
}

impl VhdxIds {
    fn derive(&mut self, old: &[u8]) -> [u8; 16] {
        if old.iter().all(|&b| b == 0) {
            return [0; 16];
        }
        if let Some((_, new)) = self.seen.iter().find(|(o, _)| o == old) {
            return *new;
        }
        let new = derived_id(&format!("vhdx-{}", self.seen.len()), &self.name, self.epoch);
        let mut o = [0u8; 16];
        o.copy_from_slice(old);
        self.seen.push((o, new));
        new
    }
}

/// Both headers: derived sequence numbers (in the same order) and GUIDs, new checksums.
/// Returns the log's length and offset.
fn vhdx_headers(file: &mut File, path: &Path, ids: &mut VhdxIds) -> io::Result<(u32, u64)> {
    const HEADERS: [u64; 2] = [64 << 10, 128 << 10];
    let mut headers = vec![];
    for at in HEADERS {
        let h = read_at(file, at, 4096)?;
        if &h[..4] != b"head" {
            return Err(invalid(path, "a VHDX (no header)"));
        }
        headers.push(h);
    }
    if headers.iter().any(|h| h[48..64].iter().any(|&b| b != 0)) {
        return Err(invalid(path, "a VHDX with an empty log"));
    }
    let min_seq = headers.iter().map(|h| le64(h, 8)).min().unwrap_or(0);
    let base_seq = u64::from_le_bytes(
        derived_id("vhdx-seq", &ids.name, ids.epoch)[..8]
            .try_into()
            .unwrap_or([0; 8]),
    ) >> 16;
    for (at, h) in HEADERS.iter().zip(headers.iter_mut()) {
        let seq = base_seq + (le64(h, 8) - min_seq);
        h[8..16].copy_from_slice(&seq.to_le_bytes());
        let file_guid = ids.derive(&h[16..32]);
        h[16..32].copy_from_slice(&file_guid);
        let data_guid = ids.derive(&h[32..48]);
        h[32..48].copy_from_slice(&data_guid);
        h[4..8].copy_from_slice(&[0; 4]);
        let sum = crc32c(h);
        h[4..8].copy_from_slice(&sum.to_le_bytes());
        write_at(file, *at, h)?;
    }
    Ok((le32(&headers[0], 68), le64(&headers[0], 72)))
}

/// The log holds stale entries only (LogGuid is zero): zero it.
fn vhdx_zero_log(file: &mut File, (log_len, log_offset): (u32, u64)) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 16];
    for done in (0..u64::from(log_len)).step_by(zeros.len()) {
        let n = (u64::from(log_len) - done).min(zeros.len() as u64) as usize;
        write_at(file, log_offset + done, &zeros[..n])?;
    }
    Ok(())
}

/// The metadata region's Page83Data item (the disk's SCSI id).
fn vhdx_page83(file: &mut File, path: &Path, ids: &mut VhdxIds) -> io::Result<()> {
    let regions = read_at(file, 192 << 10, 64 << 10)?;
    if &regions[..4] != b"regi" {
        return Err(invalid(path, "a VHDX (no region table)"));
    }
    let count = le32(&regions, 8).min(2047) as usize;
    let metadata = (0..count)
        .map(|i| 16 + i * 32)
        .find(|&e| regions[e..e + 16] == METADATA_REGION)
        .map(|e| le64(&regions, e + 16))
        .ok_or_else(|| invalid(path, "a VHDX with metadata"))?;
    let table = read_at(file, metadata, 64 << 10)?;
    if &table[..8] != b"metadata" {
        return Err(invalid(path, "a VHDX (no metadata table)"));
    }
    let entries = usize::from(u16::from_le_bytes([table[10], table[11]])).min(2047);
    for e in (0..entries).map(|i| 32 + i * 32) {
        if table[e..e + 16] == PAGE83_ID && le32(&table, e + 20) == 16 {
            let at = metadata + u64::from(le32(&table, e + 16));
            let old = read_at(file, at, 16)?;
            write_at(file, at, &ids.derive(&old))?;
        }
    }
    Ok(())
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
    fn short_vmdk_cids_become_eight_digits() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, cid: &str| {
            let mut img = vec![0u8; 1536];
            img[..4].copy_from_slice(b"KDMV");
            img[28..36].copy_from_slice(&1u64.to_le_bytes());
            img[36..44].copy_from_slice(&2u64.to_le_bytes());
            let text = format!("# Disk DescriptorFile\nversion=1\nCID={cid}\nparentCID=ffffffff\n");
            img[512..512 + text.len()].copy_from_slice(text.as_bytes());
            let path = dir.path().join(name);
            std::fs::write(&path, img).unwrap();
            fix_vmdk(&path, 1).unwrap();
            std::fs::read(&path).unwrap()
        };
        // Same name, different CIDs drawn (of different lengths): same bytes after.
        let a = write("x.vmdk", "abc");
        let b = write("x.vmdk", "1234abcd");
        assert_eq!(a, b);
        let text = String::from_utf8_lossy(&a[512..]);
        let cid = text
            .split("CID=")
            .nth(1)
            .unwrap()
            .split('\n')
            .next()
            .unwrap();
        assert_eq!(cid.len(), 8);
        assert!(text.contains("\nparentCID=ffffffff\n"));
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn checksum_skips_its_own_field() {
        let mut footer = [0u8; 512];
        footer[0] = 1;
        footer[64] = 0xff;
        assert_eq!(vhd_checksum(&footer), !1u32);
    }
}
