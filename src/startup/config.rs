//! The start hook's config file, parsed strictly: unknown keys, wrong types and relative
//! paths are errors naming `file:line`.

use super::{CLOUDSTACK_KEY, DEFAULT_DEADLINE, DEFAULT_ISO, DEFAULT_MANAGEMENT_DIR};
use crate::inventory;
use crate::keys::KeyType;
use crate::tomlfile::{self, FileError, TomlFile};
use crate::version::Version;
use clap::ValueEnum;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// An error in the config: its file, line and message.
pub type ConfigError = FileError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    iso: Option<Spanned<PathBuf>>,
    iso_version: Option<Spanned<String>>,
    patch_files: Option<Spanned<PathBuf>>,
    cloudstack_version: Option<Spanned<String>>,
    management_dir: Option<Spanned<PathBuf>>,
    inventory: Option<Spanned<PathBuf>>,
    deadline: Option<Spanned<u64>>,
    jobs: Option<Spanned<usize>>,
    accept_new: Option<bool>,
    #[serde(default)]
    keys: RawKeys,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    path: Option<Spanned<PathBuf>>,
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    import_from: Option<Spanned<PathBuf>>,
    deliver: Option<bool>,
    cloudstack_public_key: Option<Spanned<PathBuf>>,
    #[serde(default)]
    extra: Vec<Spanned<PathBuf>>,
}

/// What startup propagates: an ISO (up to 4.16) or a patch-files build (4.17+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Iso(PathBuf),
    /// The output directory of `systemvm build --layout patch-files`.
    PatchFiles(PathBuf),
}

/// Which key pair the run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Our own pair at this private key path; generated when missing.
    Own { path: PathBuf, kind: KeyType },
    /// CloudStack's pair, used in place.
    Import(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub payload: Payload,
    pub iso_version: Option<String>,
    /// The management server's release, over the inventory's `cloudstack_version`.
    pub cloudstack_version: Option<Version>,
    /// The management server's own copy (`systemvm.iso`, or the patch files), updated first.
    pub management_dir: PathBuf,
    /// CloudStack's public key, which a delivered key must match from 4.16.
    pub cloudstack_public_key: PathBuf,
    pub inventory: PathBuf,
    pub deadline: Duration,
    pub jobs: usize,
    pub accept_new: bool,
    pub keys: KeySource,
    /// Deliver the private key to hosts whose profile has a place for it.
    pub deliver_key: bool,
    /// More public keys to put into the ISO beside the pair's.
    pub extra_keys: Vec<PathBuf>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = tomlfile::read(path, "the config")?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = TomlFile { text, path };
        let raw: RawConfig = file.parse()?;
        let or_default = |p: &Option<Spanned<PathBuf>>, key: &str, default: &str| match p {
            Some(p) => absolute(&file, p, key),
            None => Ok(PathBuf::from(default)),
        };
        let k = &raw.keys;
        Ok(Config {
            path: path.to_path_buf(),
            payload: payload(&file, &raw)?,
            iso_version: raw.iso_version.as_ref().map(|v| v.get_ref().clone()),
            cloudstack_version: raw
                .cloudstack_version
                .as_ref()
                .map(|v| {
                    Version::parse(v.get_ref())
                        .map_err(|e| file.at(Some(v.span()), format!("cloudstack_version: {e}")))
                })
                .transpose()?,
            management_dir: or_default(
                &raw.management_dir,
                "management_dir",
                DEFAULT_MANAGEMENT_DIR,
            )?,
            cloudstack_public_key: or_default(
                &k.cloudstack_public_key,
                "keys.cloudstack_public_key",
                &format!("{CLOUDSTACK_KEY}.pub"),
            )?,
            inventory: or_default(&raw.inventory, "inventory", inventory::DEFAULT_PATH)?,
            deadline: Duration::from_secs(at_least_one(
                &file,
                &raw.deadline,
                "deadline",
                DEFAULT_DEADLINE,
            )?),
            jobs: at_least_one(&file, &raw.jobs, "jobs", 16)?,
            accept_new: raw.accept_new.unwrap_or(false),
            keys: key_source(&file, k)?,
            deliver_key: k.deliver.unwrap_or(false),
            extra_keys: k
                .extra
                .iter()
                .map(|p| absolute(&file, p, "keys.extra"))
                .collect::<Result<Vec<_>, _>>()?,
        })
    }

    /// The ISO, when the payload is one.
    pub fn iso(&self) -> Option<&Path> {
        match &self.payload {
            Payload::Iso(path) => Some(path),
            Payload::PatchFiles(_) => None,
        }
    }

    /// The private key the run uses (it may not exist yet).
    pub fn private_key(&self) -> &Path {
        match &self.keys {
            KeySource::Own { path, .. } => path,
            KeySource::Import(path) => path,
        }
    }
}

fn absolute(file: &TomlFile, p: &Spanned<PathBuf>, key: &str) -> Result<PathBuf, ConfigError> {
    if p.get_ref().is_absolute() {
        return Ok(p.get_ref().clone());
    }
    let message = format!("{key} must be an absolute path, not {:?}", p.get_ref());
    Err(file.at(Some(p.span()), message))
}

/// `iso` (the default) or `patch_files`, never both; `iso_version` is for an ISO only.
fn payload(file: &TomlFile, raw: &RawConfig) -> Result<Payload, ConfigError> {
    let Some(dir) = &raw.patch_files else {
        let iso = match &raw.iso {
            Some(p) => absolute(file, p, "iso")?,
            None => PathBuf::from(DEFAULT_ISO),
        };
        return Ok(Payload::Iso(iso));
    };
    if let Some(iso) = &raw.iso {
        // The one written second is the mistake.
        let span = std::cmp::max_by_key(iso.span(), dir.span(), |s| s.start);
        return Err(file.at(Some(span), "give either iso or patch_files, not both"));
    }
    if let Some(v) = &raw.iso_version {
        let message = "iso_version is for an ISO; patch_files carry their version";
        return Err(file.at(Some(v.span()), message));
    }
    Ok(Payload::PatchFiles(absolute(file, dir, "patch_files")?))
}

/// A count or a number of seconds: 1 or more, `default` when absent.
fn at_least_one<T: Copy + PartialEq + From<u8> + std::fmt::Display>(
    file: &TomlFile,
    value: &Option<Spanned<T>>,
    key: &str,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        Some(v) if *v.get_ref() == T::from(0) => {
            let unit = if key == "deadline" { " second" } else { "" };
            Err(file.at(Some(v.span()), format!("{key} must be at least 1{unit}")))
        }
        Some(v) => Ok(*v.get_ref()),
        None => Ok(default),
    }
}

/// `[keys]`: our own pair (generated when missing) or CloudStack's, never both.
fn key_source(file: &TomlFile, k: &RawKeys) -> Result<KeySource, ConfigError> {
    let kind = match &k.kind {
        None => KeyType::Ed25519,
        Some(t) => KeyType::from_str(t.get_ref(), false).map_err(|_| {
            let message = format!("unknown key type {:?} (ed25519, rsa or ecdsa)", t.get_ref());
            file.at(Some(t.span()), message)
        })?,
    };
    match (&k.import_from, &k.path) {
        (Some(from), Some(own)) => {
            // The one written second is the mistake.
            let later = std::cmp::max_by_key(from.span(), own.span(), |s| s.start);
            let message = "give either keys.path or keys.import_from, not both";
            Err(file.at(Some(later), message))
        }
        (Some(from), None) => Ok(KeySource::Import(absolute(file, from, "keys.import_from")?)),
        (None, Some(own)) => Ok(KeySource::Own {
            path: absolute(file, own, "keys.path")?,
            kind,
        }),
        (None, None) => Ok(KeySource::Own {
            path: PathBuf::from(format!("/etc/systemvm/id_{kind}")),
            kind,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::startup::{CLOUDSTACK_KEY, DEFAULT_CONFIG, WATCHDOG_GRACE};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.toml"))
    }

    #[test]
    fn defaults_fill_an_empty_config() {
        let c = parse("").unwrap();
        assert_eq!(c.payload, Payload::Iso(DEFAULT_ISO.into()));
        assert_eq!(c.management_dir, Path::new(DEFAULT_MANAGEMENT_DIR));
        assert_eq!(c.deadline, Duration::from_secs(DEFAULT_DEADLINE));
        assert_eq!(
            c.keys,
            KeySource::Own {
                path: "/etc/systemvm/id_ed25519".into(),
                kind: KeyType::Ed25519
            }
        );
        assert!(!c.deliver_key, "no key goes to the hosts unless asked");
    }

    #[test]
    fn the_shipped_example_parses_to_the_defaults() {
        let example = parse(crate::selfpkg::EXAMPLE_CONFIG).unwrap();
        let defaults = parse("").unwrap();
        assert_eq!(example.payload, defaults.payload);
        assert_eq!(example.management_dir, defaults.management_dir);
        assert_eq!(
            example.cloudstack_public_key,
            defaults.cloudstack_public_key
        );
        assert_eq!(example.inventory, defaults.inventory);
        assert_eq!(example.deadline, defaults.deadline);
        assert_eq!(example.jobs, defaults.jobs);
        assert_eq!(example.keys, defaults.keys);
        assert_eq!(example.deliver_key, defaults.deliver_key);
        assert!(crate::selfpkg::EXAMPLE_CONFIG.contains(CLOUDSTACK_KEY));
    }

    #[test]
    fn the_unit_outlasts_the_deadline_and_the_watchdog() {
        let unit = crate::selfpkg::UNIT;
        let timeout: u64 = unit
            .lines()
            .find_map(|l| l.strip_prefix("TimeoutStartSec="))
            .and_then(|v| v.trim().parse().ok())
            .expect("TimeoutStartSec in seconds");
        assert!(timeout > DEFAULT_DEADLINE + WATCHDOG_GRACE.as_secs());
        assert!(unit.contains(&format!("--config {DEFAULT_CONFIG}")));
        assert!(unit.contains("SuccessExitStatus=1"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("deadline = 10\n\n[keys]\ntype = \"dsa\"\n").unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.to_string().starts_with("config.toml:4: unknown key type"));
        let e = parse("iso = \"systemvm.iso\"\n").unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = parse("\ndeadlin = 3\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse("deadline = 0\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        let e = parse("iso = \"/a.iso\"\npatch_files = \"/p\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().contains("not both"), "{e}");
        let e = parse("cloudstack_version = \"four\"\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }
}
