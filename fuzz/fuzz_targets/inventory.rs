//! `Inventory::parse` on arbitrary text: an inventory or one error naming the file and a
//! line that exists; never a panic. What parses holds only names the parser allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use systemvm::inventory::Inventory;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Inventory::parse(text, Path::new("hosts.toml")) {
        Ok(inv) => {
            for t in &inv.targets {
                assert!(!t.name.is_empty() && t.name.len() <= 64, "{:?}", t.name);
                assert!(t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
            }
        }
        Err(e) => {
            assert!(
                e.line <= text.lines().count() + 1,
                "line {} of {}",
                e.line,
                text.lines().count()
            );
            assert!(e.to_string().starts_with("hosts.toml:"));
        }
    }
});
