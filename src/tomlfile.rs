//! Our TOML files (the inventory, the start hook's config) read strictly: every error is one
//! line naming the file, the line and the key.

use serde::de::DeserializeOwned;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A problem in a file, at a line (0 when it is the whole file).
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct FileError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

/// A file's text and name, to parse it and to place errors in it.
#[derive(Debug, Clone, Copy)]
pub struct TomlFile<'a> {
    pub text: &'a str,
    pub path: &'a Path,
}

/// Read `path`; `what` names the file in the error ("the inventory").
pub fn read(path: &Path, what: &str) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|e| FileError {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read {what}: {e}"),
    })
}

impl TomlFile<'_> {
    /// An error at `span` (a byte range of the text), or at the whole file.
    pub fn at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> FileError {
        FileError {
            path: self.path.to_path_buf(),
            line: span.map(|s| line_of(self.text, s.start)).unwrap_or(0),
            message: message.into(),
        }
    }

    /// The text as `T`, strictly (types say `deny_unknown_fields`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, FileError> {
        toml::from_str(self.text).map_err(|e| self.at(e.span(), e.message().trim()))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let file = TomlFile {
            text: "a = 1\nb = 2\n",
            path: Path::new("x.toml"),
        };
        let err = file.parse::<T>().unwrap_err().to_string();
        assert!(err.starts_with("x.toml:2: unknown field `b`"), "{err}");
    }
}
