//! Java properties files as CloudStack writes them (`agent.properties`, `db.properties`).

/// The value of `key` in Java properties text (`key=value` or `key: value`; `#`/`!` comments).
pub fn property(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            Some((l[..at].trim(), l[at + 1..].trim()))
        })
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .next_back()
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_read_like_java_does() {
        let text = "# systemvm.iso.path=/commented\nworkers=5\nsystemvm.iso.path = /srv/my isos/systemvm.iso\n";
        assert_eq!(
            property(text, "systemvm.iso.path").as_deref(),
            Some("/srv/my isos/systemvm.iso")
        );
        assert_eq!(
            property("systemvm.iso.path:/a\n", "systemvm.iso.path").as_deref(),
            Some("/a")
        );
        assert_eq!(property("systemvm.iso.path=\n", "systemvm.iso.path"), None);
        assert_eq!(property("other=1\n", "systemvm.iso.path"), None);
    }
}
