//! `Manifest::parse` on arbitrary bytes: a manifest or an error; what parses survives a
//! round trip through the writer's JSON unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use systemvm::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("systemvm.iso.manifest.json");
    let Ok(manifest) = Manifest::parse(data, origin) else {
        return;
    };
    // What `Manifest::write` writes.
    let text = serde_json::to_string_pretty(&manifest).expect("serialise");
    let again = Manifest::parse(text.as_bytes(), origin).expect("our own JSON parses");
    assert_eq!(again, manifest);
});
