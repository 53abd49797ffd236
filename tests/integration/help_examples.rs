//! Every command's `--help` ends with `Examples:` whose invocations parse, and fits 80
//! columns; the binary's own `--help` output is checked too, as a user sees it.

use std::collections::BTreeMap;
use std::process::Command;

/// Every command as (space-separated path, clap command), help subcommands left out.
fn walk(cmd: &clap::Command, path: String, out: &mut BTreeMap<String, clap::Command>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        walk(sub, format!("{path} {}", sub.get_name()), out);
    }
    out.insert(path, cmd.clone());
}

fn all() -> BTreeMap<String, clap::Command> {
    let mut cmd = systemvm::cli::command();
    cmd.build();
    let mut out = BTreeMap::new();
    walk(&cmd, "systemvm".into(), &mut out);
    out
}

/// The example invocations in an after_help text, continuation lines joined.
fn invocations(text: &str) -> Vec<Vec<String>> {
    let body = text.split("Examples:").nth(1).unwrap_or_default();
    let joined = body.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim_start_matches("sudo ")
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .collect()
}

#[test]
fn every_command_has_examples_that_parse() {
    for (name, cmd) in all() {
        let after = cmd
            .get_after_help()
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(
            after.contains("Examples:"),
            "{name} --help has no Examples:"
        );
        let examples = invocations(&after);
        assert!(!examples.is_empty(), "{name}: Examples: is empty");
        for argv in examples {
            let line = argv.join(" ");
            assert!(
                line.starts_with(&format!("{name} ")) || line == name,
                "{name}: example runs another command: {line}"
            );
            if let Err(e) = systemvm::cli::command().try_get_matches_from(&argv) {
                panic!("{name}: example does not parse: {line}\n{e}");
            }
        }
    }
}

#[test]
fn binary_help_shows_examples_within_80_columns() {
    for name in all().keys() {
        let mut args: Vec<&str> = name.split(' ').skip(1).collect();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_systemvm"))
            .args(&args)
            .env("COLUMNS", "80")
            .output()
            .expect("run systemvm");
        assert!(out.status.success(), "{name} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("\nExamples:\n"),
            "{name} --help: no Examples:"
        );
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{name} --help has a line over 80 columns:\n{line}"
            );
        }
    }
}

#[test]
fn man_pages_have_examples_exit_status_files_and_no_help_page() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for name in all().keys() {
        let path = dir.join(format!("{}.1", name.replace(' ', "-")));
        let page = std::fs::read_to_string(&path).expect("read man page");
        for section in [".SH EXAMPLES", ".SH \"EXIT STATUS\"", ".SH FILES"] {
            assert!(page.contains(section), "{} lacks {section}", path.display());
        }
        assert!(page.contains("/etc/systemvm/hosts.toml"));
        assert!(
            !page.contains("systemvm\\-help"),
            "{} names systemvm-help",
            path.display()
        );
    }
}
