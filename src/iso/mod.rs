//! The ISO: writing goes through xorriso ([`xorriso`]); reading the root directory and
//! locating the key area is done here by a small, bounds-checked ISO 9660 reader
//! ([`reader`]), which needs no mount, no root and no temp files; [`keyarea`] is the format
//! of the fixed-size `authorized_keys` that injection rewrites in place.

pub mod identity;
pub mod keyarea;
pub mod reader;
pub mod xorriso;

/// The volume id of every ISO we build.
pub const VOLUME_ID: &str = "systemvm";
/// ISO 9660 logical block size.
pub const BLOCK: u64 = 2048;
