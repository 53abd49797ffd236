//! One place that decides what goes where (after uv's `Printer`): human messages and progress
//! bars go to stderr, machine output (JSON) to stdout. `--quiet` silences messages, progress
//! bars appear only on a terminal, and `NO_COLOR` is honoured. Text that may come from a
//! host or a file (error messages, member names) goes through [`printable`] before it
//! reaches a terminal, so it can neither break the one-line error rule nor send escapes.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

/// How results are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    #[default]
    Human,
    /// JSON for scripts.
    Json,
}

#[derive(Debug, Clone)]
pub struct Printer {
    quiet: bool,
    progress: bool,
    color: bool,
    wrap: bool,
}

impl Printer {
    pub fn new(quiet: bool) -> Self {
        Printer {
            quiet,
            progress: std::io::stderr().is_terminal() && !quiet,
            color: stderr_color(),
            wrap: std::io::stdout().is_terminal(),
        }
    }

    /// A status line for people, on stderr.
    pub fn info(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", message.as_ref());
        }
    }

    /// A warning, on stderr, even when quiet.
    pub fn warn(&self, message: impl AsRef<str>) {
        let prefix = if self.color {
            "\x1b[33mwarning:\x1b[0m"
        } else {
            "warning:"
        };
        eprintln!("{prefix} {}", message.as_ref());
    }

    /// The result of a command, on stdout.
    pub fn out(&self, text: impl AsRef<str>) {
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (a pipe into `head`) is not an error worth reporting.
        let _ = writeln!(stdout, "{}", text.as_ref());
    }

    /// One record of the JSON schema (`events::Record`) as one line of JSON on stdout.
    pub fn record(&self, record: &impl serde::Serialize) {
        let line = serde_json::to_string(record).unwrap_or_else(|e| {
            format!(r#"{{"event":"error","error":"cannot encode a record: {e}","cause":"usage"}}"#)
        });
        self.out(line);
    }

    /// Where progress bars draw: stderr when `live` output is wanted and bars are shown at
    /// all (a terminal, not `--quiet`), else nowhere.
    pub fn draw_target(&self, live: bool) -> ProgressDrawTarget {
        if live && self.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }

    /// Whether long rows on stdout are wrapped to 80 columns: on a terminal. Into a pipe or
    /// a file each row stays one line, for grep.
    pub fn wraps(&self) -> bool {
        self.wrap
    }

    /// Whether a question can be answered: stdin is a terminal.
    pub fn can_ask(&self) -> bool {
        std::io::stdin().is_terminal()
    }

    /// A spinner for a stage of unknown length; hidden unless stderr is a terminal.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.draw_target(true));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }
}

/// Colour on stderr: only to a terminal, and not when `NO_COLOR` is set (to anything).
pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` with every control character (newline, ESC, DEL, C1...) written as a Rust escape
/// (`\n`, `\u{1b}`), so it prints as one line and cannot drive the terminal.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `text` in lines of at most `width` characters, broken at spaces; lines after the first
/// start with `indent` spaces. A word longer than a line is cut where the line ends.
pub fn wrap(text: &str, indent: usize, width: usize) -> Vec<String> {
    let lead = text.len() - text.trim_start_matches(' ').len();
    let mut lines = Vec::new();
    let mut line = " ".repeat(lead);
    // No word on `line` yet.
    let mut empty = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let mut rest: Vec<char> = word.chars().collect();
        while !rest.is_empty() {
            let used = line.chars().count();
            if used + rest.len() + usize::from(!empty) <= width {
                if !empty {
                    line.push(' ');
                }
                line.extend(rest.drain(..));
                empty = false;
            } else if !empty {
                lines.push(std::mem::replace(&mut line, " ".repeat(indent)));
                empty = true;
            } else {
                let fits = width.saturating_sub(used).max(1).min(rest.len());
                line.extend(rest.drain(..fits));
                lines.push(std::mem::replace(&mut line, " ".repeat(indent)));
            }
        }
    }
    if !empty {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain: é ü"), "plain: é ü");
        assert_eq!(
            printable("a\nb\x1b[31mred\u{9b}"),
            "a\\nb\\u{1b}[31mred\\u{9b}"
        );
    }

    #[test]
    fn wraps_within_the_width() {
        let text = format!("ok tool {} and more words here", "x".repeat(100));
        let lines = wrap(&text, 4, 30);
        assert!(lines.iter().all(|l| l.chars().count() <= 30), "{lines:?}");
        assert_eq!(lines[0], "ok tool");
        assert!(lines[1].starts_with("    x"));
        assert_eq!(wrap("  a b", 2, 80), ["  a b"]);
    }
}
