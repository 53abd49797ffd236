//! Man pages: clap_mangen's sections, then EXAMPLES (the `Examples:` of after_help),
//! EXIT STATUS and FILES. `package self` ships them; `tests/man.rs` checks `man/` is current.

/// `text` as roff: backslashes and hyphens escaped, a leading dot or quote guarded.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// clap_mangen's sections, then EXAMPLES (from after_help), EXIT STATUS and FILES.
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
