//! Embeds the bundled payload (`agent-payload/`) in the binary, so `package self` can ship
//! it as /usr/share/systemvm/agent-payload: a list of (path, bytes, mode) in
//! `$OUT_DIR/bundled_payload.rs`, each file through `include_bytes!`.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn main() {
    let root = Path::new("agent-payload");
    println!("cargo:rerun-if-changed=agent-payload");
    let mut files = Vec::new();
    walk(root, root, &mut files);
    files.sort();
    let mut code = String::from("&[\n");
    for (rel, mode) in &files {
        println!("cargo:rerun-if-changed=agent-payload/{rel}");
        writeln!(
            code,
            "    ({rel:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/agent-payload/\", {rel:?})), 0o{mode:o}),"
        )
        .unwrap();
    }
    code.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("bundled_payload.rs");
    std::fs::write(out, code).unwrap();
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, u32)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            walk(root, &path, files);
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            files.push((rel, mode));
        }
    }
}
