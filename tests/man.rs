//! Man pages in `man/` are rendered from the clap definitions and must be current; every
//! `--help` fits 80 columns. Regenerate with `SYSTEMVM_UPDATE_MAN=1 cargo test --test man`.

use std::collections::BTreeMap;
use std::path::Path;

/// Every command as (page name, clap command), depth first.
fn pages(cmd: clap::Command, name: String, out: &mut BTreeMap<String, clap::Command>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        let page = sub.clone().name(&*sub_name.clone().leak());
        pages(page, sub_name, out);
    }
    out.insert(name, cmd);
}

fn render(cmd: clap::Command) -> Vec<u8> {
    systemvm::cli::man::render(cmd).expect("render man page")
}

#[test]
fn man_pages_are_current() {
    let mut cmd = systemvm::cli::man_command();
    cmd.build();
    let mut all = BTreeMap::new();
    pages(cmd, "systemvm".into(), &mut all);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("SYSTEMVM_UPDATE_MAN").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (name, cmd) in &all {
        let path = dir.join(format!("{name}.1"));
        let page = render(cmd.clone());
        if update {
            std::fs::write(&path, &page).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&page[..]) {
            stale.push(path.display().to_string());
        }
    }
    let on_disk = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert!(
        stale.is_empty() && on_disk == all.len(),
        "man pages are stale ({stale:?}, {on_disk} files for {} commands); run: SYSTEMVM_UPDATE_MAN=1 cargo test --test man",
        all.len()
    );
}

#[test]
fn help_fits_80_columns() {
    let mut cmd = systemvm::cli::command().term_width(80);
    cmd.build();
    let mut all = BTreeMap::new();
    pages(cmd, "systemvm".into(), &mut all);
    for (name, mut cmd) in all {
        let help = cmd.render_long_help().to_string();
        for line in help.lines() {
            assert!(
                line.chars().count() <= 80,
                "{name} --help has a line over 80 columns:\n{line}"
            );
        }
    }
}
