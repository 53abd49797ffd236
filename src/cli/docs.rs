//! The documents rendered from the clap tree: man pages (clap_mangen's sections, then
//! EXAMPLES from the `Examples:` of after_help, EXIT STATUS and FILES) and shell completions.
//! `package self` ships them; `tests/integration/man.rs` checks `man/` against the same rendering.

use crate::selfpkg::Completions;
use clap_complete::Shell;
use std::collections::BTreeMap;

/// `text` as roff: backslashes and hyphens escaped, a leading dot or quote guarded.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// One page: clap_mangen's sections, then EXAMPLES (from after_help), EXIT STATUS and FILES.
pub fn render(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut buf)?;
    }
    let mut extra = String::new();
    if let Some(after) = cmd.get_after_help() {
        let after = after.to_string();
        let body = after.split("Examples:").nth(1).unwrap_or(&after);
        extra.push_str(".SH EXAMPLES\n.nf\n");
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            extra.push_str(&roff(line.trim_start()));
            extra.push('\n');
        }
        extra.push_str(".fi\n");
    }
    extra.push_str(".SH \"EXIT STATUS\"\n");
    for line in super::examples::EXIT_STATUS.lines() {
        let (code, what) = line.split_once(' ').unwrap_or((line, ""));
        extra.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", roff(what)));
    }
    extra.push_str(".SH FILES\n");
    for (path, what) in super::examples::FILES {
        extra.push_str(&format!(".TP\n\\fI{}\\fR\n{}\n", roff(path), roff(what)));
    }
    buf.extend_from_slice(extra.as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut buf)?;
    }
    Ok(buf)
}

/// Every command's page, named as `man` finds it (`systemvm-keys-generate`), depth first.
pub fn pages() -> BTreeMap<String, clap::Command> {
    pages_of(super::man_command())
}

/// `cmd` and its subcommands as pages, built first.
pub fn pages_of(mut cmd: clap::Command) -> BTreeMap<String, clap::Command> {
    cmd.build();
    let mut out = BTreeMap::new();
    collect(cmd, "systemvm".into(), &mut out);
    out
}

fn collect(cmd: clap::Command, name: String, out: &mut BTreeMap<String, clap::Command>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        // clap wants a 'static name; a handful of short strings, once per run.
        let page = sub.clone().name(&*sub_name.clone().leak());
        collect(page, sub_name, out);
    }
    out.insert(name, cmd);
}

/// Every page rendered as roff, by page name.
pub fn man_pages() -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    pages()
        .into_iter()
        .map(|(name, cmd)| Ok((name, render(cmd)?)))
        .collect()
}

/// The bash, zsh and fish completion scripts.
pub fn completions() -> Completions {
    let script = |shell: Shell| {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut super::man_command(), "systemvm", &mut out);
        out
    };
    Completions {
        bash: script(Shell::Bash),
        zsh: script(Shell::Zsh),
        fish: script(Shell::Fish),
    }
}
