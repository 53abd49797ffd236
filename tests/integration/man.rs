//! Man pages in `man/` are rendered from the clap definitions and must be current; every
//! `--help` fits 80 columns. Regenerate with `SYSTEMVM_UPDATE_MAN=1 cargo test --test integration man::`.

use std::path::Path;

fn render(cmd: clap::Command) -> Vec<u8> {
    systemvm::cli::docs::render(cmd).expect("render man page")
}

#[test]
fn man_pages_are_current() {
    let all = systemvm::cli::docs::pages();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("SYSTEMVM_UPDATE_MAN").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
        // Section 1 is rendered; systemvm-inventory.5 is written by hand.
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "1") {
                std::fs::remove_file(path).unwrap();
            }
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
    let on_disk = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1"))
            })
            .count()
        })
        .unwrap_or(0);
    assert!(
        stale.is_empty() && on_disk == all.len(),
        "man pages are stale ({stale:?}, {on_disk} files for {} commands); run: SYSTEMVM_UPDATE_MAN=1 cargo test --test integration man::",
        all.len()
    );
}

#[test]
fn help_fits_80_columns() {
    let all = systemvm::cli::docs::pages_of(systemvm::cli::command().term_width(80));
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
