//! Identifiers that would be random in an installer (disk and partition GUIDs, the ext4
//! UUID and hash seed, the FAT volume id) are derived from the build's inputs instead, so
//! the same inputs give the same disk bytes and different inputs different identifiers.

use sha2::{Digest, Sha256};

/// Derives every identifier of one build from a seed string.
#[derive(Debug, Clone)]
pub struct Ids {
    seed: String,
}

impl Ids {
    /// `seed` names the inputs (epoch, version, architecture, label, size...).
    pub fn new(seed: impl Into<String>) -> Self {
        Ids { seed: seed.into() }
    }

    fn bytes(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"systemvm-appliance\0");
        h.update(self.seed.as_bytes());
        h.update(b"\0");
        h.update(purpose.as_bytes());
        h.finalize().into()
    }

    /// A version-4-shaped UUID, upper case (the form sfdisk and sgdisk print).
    pub fn uuid(&self, purpose: &str) -> String {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.bytes(purpose)[..16]);
        uuid_v4(b).to_uppercase()
    }

    /// A 32-bit FAT volume id, as the 8 hex digits `mkfs.vfat -i` takes.
    pub fn fat_volume_id(&self, purpose: &str) -> String {
        let b = self.bytes(purpose);
        format!("{:02X}{:02X}{:02X}{:02X}", b[0], b[1], b[2], b[3])
    }
}

/// `b` as a version 4 UUID (its version and variant bits set), lower case.
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::hashing::hex(&b);
    [&h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]].join("-")
}

/// `ABCD1234` as blkid and fstab spell a FAT volume id: `ABCD-1234`.
pub fn fat_uuid(volume_id: &str) -> String {
    format!("{}-{}", &volume_id[..4], &volume_id[4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = Ids::new("1700000000 4.18.0 amd64");
        let b = Ids::new("1700000001 4.18.0 amd64");
        assert_eq!(a.uuid("disk"), a.uuid("disk"));
        assert_ne!(a.uuid("disk"), a.uuid("root"));
        assert_ne!(a.uuid("disk"), b.uuid("disk"));
        let u = a.uuid("disk");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "A" | "B"));
        assert_eq!(a.fat_volume_id("esp").len(), 8);
        assert_eq!(fat_uuid("ABCD1234"), "ABCD-1234");
    }
}
