//! The integration tests: one binary, one module per area, all against the real
//! `systemvm` binary and real tools (`common/` holds the runner and the test beds).
//!
//! Run one area with `cargo test --test integration kvm::`, one test by its name, and the
//! slow acceptance runs with `--ignored` (see the README).

mod common;

mod appliance_boot;
mod appliance_build;
mod appliance_cloudstack_boot;
mod appliance_cosmic;
mod appliance_export;
mod appliance_packages;
mod appliance_template;
mod build;
mod cli_values;
mod cloudstack;
mod colour;
mod dblock;
mod divert;
mod doctor;
mod events;
mod faults;
mod help_examples;
mod hostile;
mod hosts_harness;
mod hyperv;
mod inject;
mod inventory;
mod keys;
mod keystore;
mod kvm;
mod layers;
mod load;
mod man;
mod oracle;
mod outputs;
mod package_deb;
mod package_self;
mod patch_files;
mod patch_script;
mod payload_walk;
mod readme_walkthrough;
mod secrets;
mod sources;
mod ssh_login;
mod startup;
mod terminal;
mod transport;
mod vmware;
mod xenserver;
