//! The payload walk never leaves the payload through a directory symlink: not a symlinked
//! `agent/`, not a subdirectory swapped for a symlink while the walk runs.

use crate::common;

use common::*;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use systemvm::payload::Payload;

/// A directory outside the payload with a file that must never reach an archive.
fn outside(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("outside");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("secret-outside.txt"), "not for the ISO\n").unwrap();
    out
}

#[test]
fn a_symlinked_agent_directory_is_refused() {
    let dir = tempdir();
    let payload = small_payload(&dir.path().join("p"));
    let elsewhere = outside(dir.path());
    fs::remove_dir_all(payload.join("agent")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, payload.join("agent")).unwrap();
    let iso = dir.path().join("out.iso");
    let run = Test::new()
        .args(["build", "--version", "4.16.0.0", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(&iso)
        .output_within(std::time::Duration::from_secs(60));
    let run = run.run.code(2).one_error_line();
    assert!(
        run.stderr().contains("agent is a symlink to a directory"),
        "{}",
        run.stderr()
    );
    assert!(!iso.exists(), "an ISO was written");
    assert_eq!(listing(&elsewhere), ["secret-outside.txt"]);
}

/// A thread flips `agent/sub` between the real directory and a symlink to `outside/` in a
/// bounded loop while the payload is loaded again and again: every load either refuses or
/// holds the real files only.
#[test]
fn a_directory_swapped_for_a_symlink_during_the_walk_never_pulls_in_outside_files() {
    let dir = tempdir();
    let payload = small_payload(&dir.path().join("p"));
    let elsewhere = outside(dir.path());
    let sub = payload.join("agent/sub");
    let real = payload.join("agent/.sub-real");
    fs::create_dir_all(&sub).unwrap();
    for i in 0..20 {
        fs::write(sub.join(format!("inside-{i:02}.txt")), "inside\n").unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, sub, real, elsewhere) = (stop.clone(), sub.clone(), real.clone(), elsewhere);
        std::thread::spawn(move || {
            let mut flips = 0u32;
            while !stop.load(Ordering::Relaxed) && flips < 1_000_000 {
                fs::rename(&sub, &real).unwrap();
                std::os::unix::fs::symlink(&elsewhere, &sub).unwrap();
                fs::remove_file(&sub).unwrap();
                fs::rename(&real, &sub).unwrap();
                flips += 1;
            }
            flips
        })
    };
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..3000 {
        match Payload::load(&payload) {
            Ok(p) => {
                loaded += 1;
                let leaked = p.agent.iter().find(|i| i.name.contains("secret-outside"));
                assert!(leaked.is_none(), "an outside file was walked: {leaked:?}");
            }
            Err(_) => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    eprintln!("{loaded} loads, {refused} refused, {flips} flips");
    assert!(flips > 0);
}
