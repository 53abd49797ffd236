//! Arbitrary bytes as an ISO image: the directory reader (`Image::open`), the key-area
//! locator (`keyarea::locate`) and `inspect`, which reads every member. Each input is put in
//! an in-memory file (memfd) and opened by its /proc path, as a real ISO would be. Whatever
//! the bytes, the result is a report or an error; never a panic, never a read past the end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use systemvm::iso::keyarea;
use systemvm::iso::reader::Image;

fn memfd(data: &[u8]) -> (File, PathBuf) {
    // SAFETY: memfd_create with a NUL-terminated name; the fd is owned by the File.
    let fd = unsafe { libc::memfd_create(c"fuzz.iso".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create failed");
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(data).expect("write memfd");
    (file, PathBuf::from(format!("/proc/self/fd/{fd}")))
}

fuzz_target!(|data: &[u8]| {
    // The bytes as a key area's content too (what `locate` parses once it found one).
    if let Some(keys) = keyarea::parse(data) {
        assert!(data.ends_with(b"\n"));
        let _ = keys.iter().map(systemvm::keys::info).count();
    }
    let (_file, path) = memfd(data);
    let Ok(image) = Image::open(&path) else {
        return;
    };
    let len = data.len() as u64;
    for entry in image.root.iter().chain(image.joliet_root.iter().flatten()) {
        assert!(entry.offset() + u64::from(entry.size) <= len, "{entry:?}");
        if !entry.is_dir && entry.size <= 1 << 20 {
            let mut bytes = Vec::new();
            image
                .reader(entry)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            assert_eq!(bytes.len() as u64, u64::from(entry.size));
        }
    }
    if let Ok(Some(area)) = keyarea::locate(&image) {
        assert!(area.offset + area.bytes.len() as u64 <= len);
        // A found area can always be rendered again at its own size with its own keys.
        let again = keyarea::render(&area.keys, area.bytes.len());
        if let Ok(again) = again {
            assert_eq!(keyarea::parse(&again).as_ref(), Some(&area.keys));
        }
    }
    drop(image);
    let _ = systemvm::inspect::inspect(&path).map(|r| r.human());
});
