//! The JSON event schema (docs/events.md) as a test checks it, and snapshots of normalised
//! event streams: `SYSTEMVM_UPDATE_SNAPSHOTS=1` rewrites them.

use serde_json::Value;
use std::path::Path;

/// Every line is an object with `event`; records about a target name its `kind`; a failure
/// has a `cause`; the last line, and only it, is the summary, whose `exit_code` is the
/// process's own.
#[track_caller]
pub fn assert_schema(run: &super::Run, command: &str) -> Vec<Value> {
    let lines = run.json_lines();
    let text = run.stdout();
    let (last, body) = lines
        .split_last()
        .unwrap_or_else(|| panic!("no JSON lines"));
    for line in &lines {
        assert!(line["event"].is_string(), "no event: {line}");
        if line.get("target").is_some() {
            assert!(line["kind"].is_string(), "a target without kind: {line}");
        }
        if line["error"].is_string() {
            assert!(line["cause"].is_string(), "an error without cause: {line}");
        }
        for old in ["host", "vm", "hypervisor", "name"] {
            assert!(line.get(old).is_none(), "old field {old:?}: {line}");
        }
    }
    for line in body {
        assert_ne!(
            line["event"], "summary",
            "a summary before the end:\n{text}"
        );
    }
    assert_eq!(last["event"], "summary", "{text}");
    assert_eq!(last["schema"], 1, "{last}");
    assert_eq!(last["command"], command, "{last}");
    assert!(last["total"].is_u64(), "{last}");
    assert!(last["counts"].is_object(), "{last}");
    let code = run.output.status.code().unwrap_or(-1);
    assert_eq!(last["exit_code"], code, "{last}");
    let counted: u64 = last["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    if code != 2 {
        assert_eq!(counted, last["total"].as_u64().unwrap(), "{last}");
    }
    lines
}

/// The stream with what changes from run to run taken out: times, byte-progress records,
/// paths under `dir`, digests and sizes.
pub fn normalise(lines: &[Value], dir: &Path) -> String {
    let dir = dir.display().to_string();
    let mut out = String::new();
    for line in lines.iter().filter(|l| l["event"] != "bytes") {
        let mut line = line.clone();
        scrub(&mut line, &dir);
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn scrub(value: &mut Value, dir: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let volatile = matches!(
                    key.as_str(),
                    "seconds" | "delay_seconds" | "size" | "source_date_epoch" | "created"
                );
                if volatile && !v.is_null() {
                    *v = Value::from("<volatile>");
                } else {
                    scrub(v, dir);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, dir)),
        Value::String(s) => {
            let replaced = s.replace(dir, "<dir>");
            *s = hide_digests(&replaced);
        }
        _ => {}
    }
}

/// Runs of 32 or more hex digits (md5, sha256, sha512) become `<digest>`.
fn hide_digests(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 32 {
            out.push_str("<digest>");
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Compare `actual` with `tests/snapshots/<name>.jsonl`, or write it there when
/// `SYSTEMVM_UPDATE_SNAPSHOTS=1`.
#[track_caller]
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.jsonl"));
    if std::env::var_os("SYSTEMVM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with SYSTEMVM_UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (SYSTEMVM_UPDATE_SNAPSHOTS=1 rewrites it after a deliberate change)",
        path.display()
    );
}
