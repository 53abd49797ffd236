//! The package list: a text file, package names separated by white space, `#` comments.
//! The default list ships with the program (`appliance/packages.txt`); `--packages-file`
//! replaces it. The architecture's kernel is added unless the list names a `linux-image-*`.

use crate::appliance::arch::Arch;
use std::path::Path;

/// The default list, embedded at build time.
pub const DEFAULT: &str = include_str!("../../appliance/packages.txt");

#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error("cannot read the packages file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin} line {line}: {name:?} is not a Debian package name (lower case letters, digits, + - .)")]
    BadName {
        origin: String,
        line: usize,
        name: String,
    },
    #[error("{origin} names no package")]
    Empty { origin: String },
}

/// Read and check a packages file.
pub fn read(path: &Path) -> Result<Vec<String>, PackagesError> {
    let text = std::fs::read_to_string(path).map_err(|source| PackagesError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parse a list; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<String>, PackagesError> {
    let mut out: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        for name in line.split_whitespace() {
            if !valid_name(name) {
                return Err(PackagesError::BadName {
                    origin: origin.to_string(),
                    line: i + 1,
                    name: name.to_string(),
                });
            }
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(PackagesError::Empty {
            origin: origin.to_string(),
        });
    }
    Ok(out)
}

/// The list with the kernel of `arch` added when it names none.
pub fn with_kernel(mut packages: Vec<String>, arch: Arch) -> Vec<String> {
    if !packages.iter().any(|p| p.starts_with("linux-image-")) {
        packages.insert(0, arch.kernel_package());
    }
    packages
}

/// Debian policy 5.6.1: at least two characters, lower case alphanumerics and `+ - .`,
/// starting with an alphanumeric.
pub fn valid_name(name: &str) -> bool {
    name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_parses_and_gets_a_kernel() {
        let list = parse(DEFAULT, "default").unwrap();
        assert!(list.iter().any(|p| p == "openssh-server"));
        assert!(list.iter().any(|p| p == "unzip"));
        let full = with_kernel(list, Arch::Amd64);
        assert_eq!(full[0], "linux-image-amd64");
        let arm = with_kernel(parse("udev", "x").unwrap(), Arch::Arm64);
        assert_eq!(arm, ["linux-image-arm64", "udev"]);
        let own = with_kernel(
            parse("linux-image-cloud-amd64 udev", "x").unwrap(),
            Arch::Amd64,
        );
        assert_eq!(own, ["linux-image-cloud-amd64", "udev"]);
    }

    #[test]
    fn bad_names_and_empty_lists_are_refused() {
        let err = parse("udev\nopenssh-server Bad_Name\n", "list.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "list.txt line 2: \"Bad_Name\" is not a Debian package name (lower case letters, digits, + - .)"
        );
        assert!(parse("# nothing\n\n", "e").is_err());
    }
}
