//! systemvm: build, key and propagate the CloudStack/Cosmic `systemvm.iso`.
//!
//! The library holds everything; `src/main.rs` only parses, dispatches and maps errors to exit
//! codes. Each module has one job and says how it does it in its own header.

pub mod appliance;
pub mod artifact;
pub mod atomic;
pub mod build;
pub mod cli;
pub mod cloudstack;
pub mod dblock;
pub mod deb;
pub mod dirfd;
pub mod divert;
pub mod doctor;
pub mod elf;
pub mod epoch;
pub mod events;
pub mod exit;
pub mod generation;
pub mod hashing;
pub mod hypervisors;
pub mod inject;
pub mod inspect;
pub mod interrupt;
pub mod inventory;
pub mod iso;
pub mod keys;
pub mod kind;
pub mod layout;
pub mod manifest;
pub mod output;
pub mod payload;
pub mod pool;
pub mod printer;
pub mod profile;
pub mod propagate;
pub mod properties;
pub mod rlimit;
pub mod sandbox;
pub mod secret;
pub mod selfpkg;
pub mod size;
pub mod source;
pub mod startup;
pub mod timeout;
pub mod tomlfile;
pub mod transport;
pub mod version;
