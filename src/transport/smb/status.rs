//! Reading smbclient: its NT status codes, `ls` lines, `allinfo` times; and writing paths
//! the way its command parser wants them.

use crate::transport::Stat;

/// Status codes meaning "the file or folder is not there".
pub(super) const NOT_FOUND: &[&str] = &[
    "NT_STATUS_OBJECT_NAME_NOT_FOUND",
    "NT_STATUS_OBJECT_PATH_NOT_FOUND",
    "NT_STATUS_NO_SUCH_FILE",
];

/// Status codes of a refused login: retrying cannot help.
pub(super) const AUTH_FAILED: &[&str] = &[
    "NT_STATUS_LOGON_FAILURE",
    "NT_STATUS_WRONG_PASSWORD",
    "NT_STATUS_NO_SUCH_USER",
    "NT_STATUS_ACCOUNT_DISABLED",
    "NT_STATUS_ACCOUNT_LOCKED_OUT",
    "NT_STATUS_ACCOUNT_EXPIRED",
    "NT_STATUS_ACCOUNT_RESTRICTION",
    "NT_STATUS_PASSWORD_EXPIRED",
    "NT_STATUS_PASSWORD_MUST_CHANGE",
    "NT_STATUS_INVALID_LOGON_HOURS",
    "NT_STATUS_LOGON_TYPE_NOT_GRANTED",
];

/// Status codes of a lost or refused connection: a retry may pass.
pub(super) const CONNECTION: &[&str] = &[
    "NT_STATUS_CONNECTION_REFUSED",
    "NT_STATUS_CONNECTION_RESET",
    "NT_STATUS_CONNECTION_DISCONNECTED",
    "NT_STATUS_CONNECTION_ABORTED",
    "NT_STATUS_IO_TIMEOUT",
    "NT_STATUS_HOST_UNREACHABLE",
    "NT_STATUS_NETWORK_UNREACHABLE",
    "NT_STATUS_PIPE_BROKEN",
    "NT_STATUS_NETWORK_NAME_DELETED",
    "NT_STATUS_INVALID_NETWORK_RESPONSE",
    "NT_STATUS_END_OF_FILE",
];

/// Refuse path characters that smbclient's command parser or Windows cannot take.
pub fn check_path(path: &str) -> Result<(), String> {
    match path
        .chars()
        .find(|c| c.is_control() || "\";*?<>|:".contains(*c))
    {
        Some(c) => Err(format!(
            "{path:?}: {c:?} cannot be used in an SMB path (nor any of \" ; * ? < > | :)"
        )),
        None => Ok(()),
    }
}

/// `a/b c` as smbclient wants it: `"\a\b c"`.
pub(super) fn smb_path(path: &str) -> String {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    format!("\"\\{}\"", parts.join("\\"))
}

/// One line of smbclient's `ls`: `  NAME   ATTRS   SIZE  Tue Dec  1 07:56:13 2026`, read from
/// the right because names may hold spaces. `(name, is_directory)`; `.`/`..` are skipped.
pub(super) fn parse_ls_line(line: &str) -> Option<(String, bool)> {
    let line = line.trim_end();
    let mut rest = line;
    let mut tokens = Vec::new();
    // year, time, day, month, weekday, size, attributes
    for _ in 0..7 {
        let trimmed = rest.trim_end();
        let at = trimmed.rfind(' ')?;
        tokens.push(&trimmed[at + 1..]);
        rest = &trimmed[..at];
    }
    let (year, time, size, attrs) = (tokens[0], tokens[1], tokens[5], tokens[6]);
    let looks_right = year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && time.matches(':').count() == 2
        && size.bytes().all(|b| b.is_ascii_digit())
        && attrs.bytes().all(|b| b.is_ascii_uppercase());
    // `ls` marks a listing's entries with two leading spaces.
    let name = rest.strip_prefix("  ")?.trim();
    if !looks_right || name.is_empty() || name == "." || name == ".." {
        return None;
    }
    Some((name.to_string(), attrs.contains('D')))
}

/// Size and write time from smbclient's `allinfo` (run with `TZ=UTC`, `LC_ALL=C`).
pub(super) fn parse_allinfo(text: &str) -> Option<Stat> {
    let mut size = None;
    let mut mtime = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("write_time:") {
            mtime = parse_time(v.trim());
        } else if let Some(v) = line.strip_prefix("stream: [::$DATA], ") {
            size = v.strip_suffix(" bytes").and_then(|n| n.trim().parse().ok());
        }
    }
    Some(Stat {
        size: size?,
        mtime: mtime?,
        mode: 0o644,
    })
}

/// `Tue Dec  1 07:56:13 2026 UTC` to seconds since the epoch.
fn parse_time(text: &str) -> Option<i64> {
    let t: Vec<&str> = text.split_whitespace().collect();
    let [_, month, day, hms, year, ..] = t.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let hms: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, min, s] = hms.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_lines_are_read_from_the_right() {
        let out = "  .                                   D        0  Tue Dec  1 07:56:13 2026\n\
                   \x20 ..                                  D        0  Tue Dec  1 07:54:08 2026\n\
                   \x20 .tmp3                              AH 52428800  Tue Dec  1 07:55:41 2026\n\
                   \x20 x y.tmp                             A 52428800  Tue Dec 11 07:56:13 2026\n\
                   \x20 sub                                 D        0  Tue Dec  1 07:56:13 2026\n\
                   \n\t\t264212084 blocks of size 1024. 67053628 blocks available\n";
        let got: Vec<(String, bool)> = out.lines().filter_map(parse_ls_line).collect();
        assert_eq!(
            got,
            vec![
                (".tmp3".to_string(), false),
                ("x y.tmp".to_string(), false),
                ("sub".to_string(), true)
            ]
        );
    }

    #[test]
    fn allinfo_gives_size_and_time() {
        let out = "altname: X9DHUH~I.TMP\ncreate_time:    Tue Dec  1 07:56:13 2026 UTC\n\
                   write_time:     Thu Jan  1 00:01:05 1970 UTC\nattributes: A (20)\n\
                   stream: [::$DATA], 52428800 bytes\n";
        let s = parse_allinfo(out).unwrap();
        assert_eq!((s.size, s.mtime), (52428800, 65));
        assert_eq!(
            parse_time("Tue Dec  1 07:56:13 2026 UTC"),
            Some(1_796_111_773)
        );
        assert_eq!(parse_time("garbage"), None);
    }

    #[test]
    fn paths_are_quoted_and_checked() {
        assert_eq!(smb_path("systemvm/x y.iso"), "\"\\systemvm\\x y.iso\"");
        assert_eq!(
            smb_path("Users\\Public/Virtual Hard Disks"),
            "\"\\Users\\Public\\Virtual Hard Disks\""
        );
        assert!(check_path("a;b").is_err());
        assert!(check_path("a\"b").is_err());
        assert!(check_path("a*").is_err());
        assert!(check_path("Users/Public/Documents/Hyper-V/Virtual Hard Disks").is_ok());
    }
}
