//! Quoting for remote shell commands: every argument becomes one single-quoted word, so a
//! path or tag with spaces, quotes, `$(...)` or `;` reaches the host literally.

/// One argument as a POSIX shell word.
pub fn quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// A command line from its arguments, each quoted.
pub fn command<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(
            quote("/opt/xensource/packages/iso"),
            "/opt/xensource/packages/iso"
        );
        assert_eq!(quote("param-name=tags"), "param-name=tags");
    }

    #[test]
    fn hostile_words_are_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("; rm -rf /"), "'; rm -rf /'");
        assert_eq!(quote("a\nb"), "'a\nb'");
    }

    #[test]
    fn round_trips_through_a_real_shell() {
        let nasty = [
            "x y",
            "it's",
            "$(echo pwned)",
            "`id`",
            "a;b",
            "\"q\"",
            "*",
            "~",
            "\\",
        ];
        let line = format!("printf '%s\\n' {}", command(&nasty));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(got, nasty);
    }
}
