//! `Version::parse` on arbitrary text, and the ordering on what parses: a version prints as
//! it was written, equals itself, and two versions compare the same both ways round.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cmp::Ordering;
use systemvm::version::Version;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two candidates: the whole input, and its halves around the first newline.
    let (a, b) = text.split_once('\n').unwrap_or((text, text));
    let parsed: Vec<Version> = [text, a, b]
        .iter()
        .filter_map(|t| Version::parse(t).ok())
        .collect();
    for v in &parsed {
        assert_eq!(v.cmp(v), Ordering::Equal);
        assert_eq!(Version::parse(v.as_str()).as_ref(), Ok(v));
        let _ = v.xenserver_tag("com.cloud.Resource");
        let _ = v.secondary_storage_file_name();
    }
    for x in &parsed {
        for y in &parsed {
            assert_eq!(x.cmp(y), y.cmp(x).reverse(), "{x} vs {y}");
            assert_eq!(x == y, x.cmp(y) == Ordering::Equal);
        }
    }
});
