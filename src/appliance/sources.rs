//! The machine's own apt sources, rewritten for the suite being built: no mirror is named
//! in this program. Entries for the host's release (`bookworm`, `bookworm-updates`,
//! `bookworm-security`) become entries for the target suite (`trixie`, `trixie-updates`,
//! `trixie-security` when building trixie on bookworm); backports and third-party suites are
//! left out, so the template holds the stable release only. The result is a deb822 file
//! that mmdebstrap pastes into the chroot's sources.

use std::fs;
use std::path::{Path, PathBuf};

/// One source entry, reduced to what the template needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    #[error("the machine's apt sources (under {root}etc/apt) have no entry for {host} to build {target} from; name a mirror with --mirror URI")]
    NoEntry {
        root: String,
        host: String,
        target: String,
    },
}

/// Read the apt sources under `root` (normally `/`) and rewrite them for `target`.
pub fn host_sources_for(root: &Path, target: &str) -> Result<String, SourcesError> {
    let os_release = fs::read_to_string(root.join("etc/os-release")).unwrap_or_default();
    let host = os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| target.to_string());
    let mut entries = Vec::new();
    for path in apt_files(&root.join("etc/apt")) {
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("list") => entries.extend(parse_one_line(&text)),
            Some("sources") => entries.extend(parse_deb822(&text)),
            _ => {}
        }
    }
    let rewritten = rewrite(&entries, &host, target);
    if rewritten.is_empty() {
        return Err(SourcesError::NoEntry {
            root: root.display().to_string().trim_end_matches('/').to_string() + "/",
            host,
            target: target.to_string(),
        });
    }
    Ok(render(&rewritten))
}

/// Under `apt` (`/etc/apt`): `sources.list`, then the `.list` and `.sources` files of
/// `sources.list.d`, sorted.
pub fn apt_files(apt: &Path) -> Vec<PathBuf> {
    let mut more: Vec<PathBuf> = fs::read_dir(apt.join("sources.list.d"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    more.retain(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"));
    more.sort();
    std::iter::once(apt.join("sources.list"))
        .chain(more)
        .collect()
}

/// Keep the host release's suites, renamed for `target`; drop every other suite.
pub fn rewrite(entries: &[Entry], host: &str, target: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for e in entries {
        let suites: Vec<String> = e
            .suites
            .iter()
            .filter_map(|s| {
                let suffix = s.strip_prefix(host)?;
                matches!(suffix, "" | "-updates" | "-security").then(|| format!("{target}{suffix}"))
            })
            .collect();
        if suites.is_empty() {
            continue;
        }
        let entry = Entry {
            suites,
            ..e.clone()
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// deb822 text for the entries.
pub fn render(entries: &[Entry]) -> String {
    let mut text = String::new();
    for e in entries {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str("Types: deb\n");
        text.push_str(&format!("URIs: {}\n", e.uris.join(" ")));
        text.push_str(&format!("Suites: {}\n", e.suites.join(" ")));
        text.push_str(&format!("Components: {}\n", e.components.join(" ")));
        if let Some(key) = &e.signed_by {
            text.push_str(&format!("Signed-By: {key}\n"));
        }
    }
    text
}

/// `deb [signed-by=K arch=A] URI SUITE COMPONENT...` lines.
pub fn parse_one_line(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            for opt in opts.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() < 3 {
            continue;
        }
        out.push(Entry {
            uris: vec![words[0].to_string()],
            suites: vec![words[1].to_string()],
            components: words[2..].iter().map(|s| s.to_string()).collect(),
            signed_by,
        });
    }
    out
}

/// deb822 stanzas (`Types: deb`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`).
pub fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    for stanza in lines.split(|l| l.trim().is_empty()) {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza {
            if line.starts_with([' ', '\t']) {
                // A continuation line (a multi-line Signed-By key block).
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line);
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            fields
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        let words = |k: &str| -> Vec<String> {
            get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if !words("types").iter().any(|t| t == "deb") {
            continue;
        }
        if get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        let entry = Entry {
            uris: words("uris"),
            suites: words("suites"),
            components: words("components"),
            signed_by: get("signed-by"),
        };
        if !entry.uris.is_empty() && !entry.suites.is_empty() && !entry.components.is_empty() {
            out.push(entry);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb deb-src\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main contrib\n\nTypes: deb-src\nURIs: http://src.example/\nSuites: bookworm\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://off.example/\nSuites: bookworm\nComponents: main\n";

    #[test]
    fn deb822_is_rewritten_for_the_target() {
        let entries = parse_deb822(DEB822);
        assert_eq!(entries.len(), 2);
        let same = rewrite(&entries, "bookworm", "bookworm");
        assert_eq!(same[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(same[1].suites, ["bookworm-security"]);
        assert_eq!(same[1].components, ["main", "contrib"]);
        let next = rewrite(&entries, "bookworm", "trixie");
        assert_eq!(next[0].suites, ["trixie", "trixie-updates"]);
        let text = render(&next);
        assert!(text.contains("Suites: trixie trixie-updates\n"), "{text}");
        assert!(text.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"));
        assert!(!text.contains("backports"));
    }

    #[test]
    fn one_line_sources_with_options() {
        let e = parse_one_line(
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\ndeb-src http://m.example/debian bookworm main\ndeb http://other.example/ stable main\n",
        );
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(e[0].components, ["main", "contrib"]);
        assert_eq!(rewrite(&e, "bookworm", "bookworm").len(), 1);
    }

    #[test]
    fn no_matching_entry_names_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/apt")).unwrap();
        std::fs::write(
            dir.path().join("etc/os-release"),
            "VERSION_CODENAME=bookworm\n",
        )
        .unwrap();
        let err = host_sources_for(dir.path(), "bookworm").unwrap_err();
        assert!(err.to_string().contains("--mirror"), "{err}");
    }
}
