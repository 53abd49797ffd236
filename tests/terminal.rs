//! On a real 80-column terminal (tmux), what `build` draws while it works (the spinner) and
//! what it prints after fit in 80 columns, whatever the length of the paths it names.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(["-L", socket, "-f", "/dev/null"])
        .args(args)
        .output()
        .expect("run tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn build_progress_fits_80_columns() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("skipped: tmux is not installed (setup.sh installs it)");
        return;
    }
    let dir = tempdir();
    // A long path: the spinner names the payload, the summary the output.
    let deep = dir.path().join("a-rather-long-directory-name-".repeat(3));
    std::fs::create_dir_all(&deep).unwrap();
    let payload = small_payload(&deep);
    let big = vec![7u8; 1 << 20];
    for i in 0..48 {
        let mut bytes = big.clone();
        bytes[0] = i;
        std::fs::write(payload.join(format!("agent/lib/big{i}.jar")), &bytes).unwrap();
    }
    let done = dir.path().join("done");
    // The output is named short (the summary names it); the payload long (the spinner).
    let script = format!(
        "cd '{}' && '{BIN}' build --version 4.16.0.0 --payload '{}' -o s.iso; \
         echo $? > '{}'; sleep 600",
        deep.display(),
        payload.display(),
        done.display()
    );
    let socket = format!("systemvm-test-{}", std::process::id());
    let _server = Server(socket.clone());
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "24",
            "-s",
            "t",
            "sh",
            "-c",
            &script,
        ],
    );
    let mut screens = Vec::new();
    // Until the build has ended (it writes its status), capture what is on the screen.
    while !ready(&done) {
        screens.push(tmux(&socket, &["capture-pane", "-p", "-J", "-t", "t"]));
    }
    screens.push(tmux(&socket, &["capture-pane", "-p", "-J", "-t", "t"]));
    assert_eq!(std::fs::read_to_string(&done).unwrap().trim(), "0");
    assert!(
        screens.iter().any(|s| s.contains("archiving")),
        "the spinner was never on the screen"
    );
    let last = screens.last().unwrap();
    assert!(last.contains("built "), "{last}");
    for screen in &screens {
        // What shows: trailing blanks are the pane's, not the program's.
        for line in screen.lines().map(str::trim_end) {
            assert!(
                line.chars().count() <= 80,
                "over 80 columns ({}): {line}",
                line.chars().count()
            );
        }
    }
}

fn ready(done: &Path) -> bool {
    std::fs::read_to_string(done).is_ok_and(|s| s.ends_with('\n'))
}

/// Our own tmux server (its own socket), ended however the test ends.
struct Server(String);

impl Drop for Server {
    fn drop(&mut self) {
        tmux(&self.0, &["kill-server"]);
    }
}
