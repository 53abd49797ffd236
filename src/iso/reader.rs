//! A minimal ISO 9660 reader for the flat images CloudStack uses: the volume descriptors, the
//! root directory of the primary tree (with Rock Ridge names and modes) and of the Joliet
//! tree, and streaming reads of a member's extent. Every offset read from the image is
//! checked against the file's length before it is used, so a truncated or hostile image is
//! an error, never a panic or a read past the end.

use super::BLOCK;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum IsoError {
    #[error("cannot read {path}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not an ISO 9660 image (no CD001 volume descriptor at sector 16)")]
    NotIso { path: PathBuf },
    #[error("{path} is a damaged ISO image: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} is not a regular file (a {kind}); give an ISO image file")]
    NotAFile { path: PathBuf, kind: &'static str },
}

/// A file or directory in the root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Rock Ridge name when present, else the ISO 9660 name without `;1`.
    pub name: String,
    /// First block of the data.
    pub extent: u32,
    pub size: u32,
    pub is_dir: bool,
    /// Rock Ridge POSIX mode (permission bits only), when present.
    pub mode: Option<u32>,
    /// Byte offset of this directory record in the image.
    pub record: u64,
}

impl Entry {
    /// Byte offset of the data in the image.
    pub fn offset(&self) -> u64 {
        u64::from(self.extent) * BLOCK
    }
}

/// What the primary volume descriptor says.
#[derive(Debug, Clone, Default)]
pub struct Volume {
    pub volume_id: String,
    pub application_id: String,
    pub blocks: u32,
}

/// An opened image: its volume and root directories, read once.
#[derive(Debug)]
pub struct Image {
    path: PathBuf,
    file: File,
    len: u64,
    pub volume: Volume,
    /// Root directory of the primary (ISO 9660 / Rock Ridge) tree.
    pub root: Vec<Entry>,
    /// Root directory of the Joliet tree, when there is one.
    pub joliet_root: Option<Vec<Entry>>,
}

const MAX_DESCRIPTORS: u64 = 64;
const MAX_DIR_BYTES: u32 = 16 * 1024 * 1024;

impl Image {
    pub fn open(path: &Path) -> Result<Image, IsoError> {
        // Refuse what is not a regular file before opening it: opening a FIFO would block.
        // (Following symlinks, as `open` does; a missing file is reported by the open.)
        if let Ok(meta) = std::fs::metadata(path) {
            regular(path, &meta)?;
        }
        let file = File::open(path).map_err(io_error(path))?;
        Image::from_file(path, file)
    }

    fn from_file(path: &Path, file: File) -> Result<Image, IsoError> {
        let meta = file.metadata().map_err(io_error(path))?;
        regular(path, &meta)?;
        let mut image = Image {
            path: path.to_path_buf(),
            file,
            len: meta.len(),
            volume: Volume::default(),
            root: vec![],
            joliet_root: None,
        };
        image.read_descriptors()?;
        Ok(image)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    fn corrupt(&self, reason: impl Into<String>) -> IsoError {
        IsoError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Read exactly `len` bytes at `offset`, refusing ranges past the end of the file.
    pub fn read_at(&self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>, IsoError> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(self.corrupt(format!(
                "{what} points past the end of the image ({} bytes)",
                self.len
            )));
        }
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(io_error(&self.path))?;
        Ok(buf)
    }

    fn read_descriptors(&mut self) -> Result<(), IsoError> {
        let not_iso = || IsoError::NotIso {
            path: self.path.clone(),
        };
        if self.len < 17 * BLOCK {
            return Err(not_iso());
        }
        let mut primary_root = None;
        let mut joliet_root = None;
        for sector in 16..16 + MAX_DESCRIPTORS {
            let desc = match self.read_at(sector * BLOCK, BLOCK as usize, "a volume descriptor") {
                Ok(d) => d,
                Err(_) if sector > 16 => break,
                Err(_) => return Err(not_iso()),
            };
            if &desc[1..6] != b"CD001" {
                if sector == 16 {
                    return Err(not_iso());
                }
                break;
            }
            match desc[0] {
                1 if primary_root.is_none() => {
                    self.volume = Volume {
                        volume_id: a_string(&desc[40..72]),
                        application_id: a_string(&desc[574..702]),
                        blocks: le_u32(&desc[80..84]),
                    };
                    primary_root = Some(desc[156..190].to_vec());
                }
                2 if is_joliet_escape(&desc[88..120]) => {
                    joliet_root = Some(desc[156..190].to_vec())
                }
                255 => break,
                _ => {}
            }
        }
        let primary = primary_root.ok_or_else(not_iso)?;
        let declared = u64::from(self.volume.blocks) * BLOCK;
        if declared > self.len {
            return Err(self.corrupt(format!(
                "truncated: the volume is {declared} bytes but the file has {}",
                self.len
            )));
        }
        self.root = self.read_directory(&primary, false)?;
        self.joliet_root = joliet_root
            .map(|rec| self.read_directory(&rec, true))
            .transpose()?;
        Ok(())
    }

    /// The entries of the directory whose own record is `record`.
    fn read_directory(&self, record: &[u8], joliet: bool) -> Result<Vec<Entry>, IsoError> {
        let extent = le_u32(&record[2..6]);
        let size = le_u32(&record[10..14]);
        if size > MAX_DIR_BYTES {
            return Err(self.corrupt(format!("root directory of {size} bytes")));
        }
        let data = self.read_at(
            u64::from(extent) * BLOCK,
            size as usize,
            "the root directory",
        )?;
        let mut entries = Vec::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let len = data[pos] as usize;
            if len == 0 {
                // Records never cross a block boundary: the rest of this block is padding.
                pos = (pos / BLOCK as usize + 1) * BLOCK as usize;
                continue;
            }
            let block_end = (pos / BLOCK as usize + 1) * BLOCK as usize;
            if len < 34 || pos + len > data.len().min(block_end) {
                return Err(self.corrupt(format!("bad directory record at byte {pos}")));
            }
            let rec = &data[pos..pos + len];
            let record = u64::from(extent) * BLOCK + pos as u64;
            pos += len;
            let name_len = rec[32] as usize;
            if 33 + name_len > len {
                return Err(self.corrupt("a directory record's name runs past the record"));
            }
            let raw_name = &rec[33..33 + name_len];
            if name_len == 1 && (raw_name[0] == 0 || raw_name[0] == 1) {
                continue; // "." and ".."
            }
            let system_use = &rec[(33 + name_len + (1 - name_len % 2)).min(len)..];
            let rock = if joliet {
                Rock::default()
            } else {
                parse_rock_ridge(system_use)
            };
            let name = match rock.name {
                Some(n) => n,
                None if joliet => ucs2_name(raw_name),
                None => iso_name(raw_name),
            };
            let entry = Entry {
                name,
                extent: le_u32(&rec[2..6]),
                size: le_u32(&rec[10..14]),
                is_dir: rec[25] & 0x02 != 0,
                mode: rock.mode,
                record,
            };
            let end = entry.offset().checked_add(u64::from(entry.size));
            if end.is_none_or(|end| end > self.len) {
                return Err(self.corrupt(format!(
                    "the directory record of {} points past the end of the image",
                    entry.name
                )));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// A root file of the primary tree by name.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.root.iter().find(|e| !e.is_dir && e.name == name)
    }

    /// Every record (primary and Joliet) that names `name`.
    pub fn all_records(&self, name: &str) -> Vec<&Entry> {
        let joliet = self.joliet_root.iter().flatten();
        self.root
            .iter()
            .chain(joliet)
            .filter(|e| !e.is_dir && e.name == name)
            .collect()
    }

    /// A reader over one member's bytes.
    pub fn reader(&self, entry: &Entry) -> Result<impl Read + '_, IsoError> {
        let mut file = &self.file;
        file.seek(SeekFrom::Start(entry.offset()))
            .map_err(io_error(&self.path))?;
        Ok(file.take(u64::from(entry.size)))
    }

    /// A whole small member, read into memory (refused above `limit` bytes).
    pub fn read_small(&self, entry: &Entry, limit: u32) -> Result<Vec<u8>, IsoError> {
        if entry.size > limit {
            return Err(self.corrupt(format!("{} is {} bytes", entry.name, entry.size)));
        }
        self.read_at(entry.offset(), entry.size as usize, &entry.name)
    }
}

/// A read of the image at `path` that failed.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> IsoError {
    let path = path.to_path_buf();
    move |source| IsoError::Io { path, source }
}

/// An error unless `meta` is a regular file's, naming what it is instead.
fn regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), IsoError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(IsoError::NotAFile {
        path: path.to_path_buf(),
        kind: kind_of(&meta.file_type()),
    })
}

fn kind_of(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "named pipe"
    } else if kind.is_char_device() || kind.is_block_device() {
        "device file"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[derive(Default)]
struct Rock {
    name: Option<String>,
    mode: Option<u32>,
}

/// The Rock Ridge NM (name) and PX (mode) entries of a system use area.
fn parse_rock_ridge(mut area: &[u8]) -> Rock {
    let mut rock = Rock::default();
    let mut name = Vec::new();
    while area.len() >= 4 {
        let len = area[2] as usize;
        if len < 4 || len > area.len() {
            break;
        }
        let body = &area[4..len];
        match &area[..2] {
            // Flag bits 1 and 2 mean "." and ".."; only plain names matter here.
            b"NM" if !body.is_empty() && body[0] & 0x06 == 0 => {
                name.extend_from_slice(&body[1..]);
            }
            b"PX" if body.len() >= 4 => rock.mode = Some(le_u32(&body[..4]) & 0o7777),
            b"ST" => break,
            _ => {}
        }
        area = &area[len..];
    }
    if !name.is_empty() {
        rock.name = Some(String::from_utf8_lossy(&name).into_owned());
    }
    rock
}

fn is_joliet_escape(escape: &[u8]) -> bool {
    escape.starts_with(b"%/@") || escape.starts_with(b"%/C") || escape.starts_with(b"%/E")
}

/// `AGENT.ZIP;1` to `AGENT.ZIP`; a name without extension loses its trailing dot.
fn iso_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let base = s.split(';').next().unwrap_or_default();
    base.strip_suffix('.').unwrap_or(base).to_string()
}

fn ucs2_name(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let s = String::from_utf16_lossy(&units);
    s.split(';').next().unwrap_or_default().to_string()
}

/// A space-padded a-characters field.
fn a_string(field: &[u8]) -> String {
    String::from_utf8_lossy(field).trim_end().to_string()
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_names_lose_version_and_dot() {
        assert_eq!(iso_name(b"AGENT.ZIP;1"), "AGENT.ZIP");
        assert_eq!(iso_name(b"README.;1"), "README");
    }

    #[test]
    fn rock_ridge_name_and_mode() {
        let mut area = Vec::new();
        area.extend_from_slice(b"PX\x24\x01");
        area.extend_from_slice(&0o100444u32.to_le_bytes());
        area.extend_from_slice(&0o100444u32.to_be_bytes());
        area.extend_from_slice(&[0u8; 24]); // links, uid, gid
        area.extend_from_slice(b"NM\x0a\x01\x00agent");
        let rock = parse_rock_ridge(&area);
        assert_eq!(rock.name.as_deref(), Some("agent"));
        assert_eq!(rock.mode, Some(0o444));
    }

    #[test]
    fn truncated_rock_ridge_is_ignored() {
        let rock = parse_rock_ridge(b"NM\xff\x01abc");
        assert!(rock.name.is_none());
    }
}
