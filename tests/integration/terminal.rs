//! On a real 80-column terminal (tmux), what `build` draws while it works (the spinner) and
//! what it prints after fit in 80 columns, whatever the length of the paths it names; and so
//! do `propagate`'s progress bars, one per host, during slow uploads to hosts with long names.

use crate::common;

use common::bed::Bed;
use common::hosts::{HostOptions, TestHost};
use common::netns::NetNs;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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
    // The output is named short (the summary names it); the payload long (the spinner).
    let script = format!(
        "cd '{}' && '{BIN}' build --version 4.16.0.0 --payload '{}' -o s.iso",
        deep.display(),
        payload.display(),
    );
    let pane = run_in_pane(dir.path(), &script, true);
    assert_eq!(pane.status, "0");
    assert!(
        pane.screens.iter().any(|s| s.contains("archiving")),
        "the spinner was never on the screen"
    );
    assert!(pane.last.contains("built "), "{}", pane.last);
    assert_fit(&pane.screens);
}

/// Every line of every screen fits 80 columns.
#[track_caller]
fn assert_fit(screens: &[String]) {
    for screen in screens {
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

/// What a pane showed while a script ran in it.
struct Pane {
    /// The script's exit status.
    status: String,
    /// Every screen captured while it ran, rows as tmux has them.
    screens: Vec<String>,
    /// The screen after it ended, with wrapped rows joined (a line that wrapped is one line).
    last: String,
}

/// Run `script` in an 80x24 tmux pane of our own. Bounded: it gives up after [`PANE_LIMIT`].
/// With `join`, the screens join wrapped rows, so a line that wrapped shows as too long.
fn run_in_pane(dir: &Path, script: &str, join: bool) -> Pane {
    let done = dir.join("done");
    let script = format!("{script}; echo $? > '{}'; sleep 600", done.display());
    // The temp directory's name is unique, so tests running at once get their own servers.
    let unique = dir.file_name().unwrap_or_default().to_string_lossy();
    let socket = format!("systemvm-test-{}-{unique}", std::process::id());
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
    let capture = |join: bool| {
        let flags = if join { "-pJ" } else { "-p" };
        tmux(&socket, &["capture-pane", flags, "-t", "t"])
    };
    let mut screens = Vec::new();
    let until = Instant::now() + PANE_LIMIT;
    while !ready(&done) && Instant::now() < until {
        screens.push(capture(join));
    }
    let last = capture(true);
    screens.push(capture(join));
    let status = std::fs::read_to_string(&done).unwrap_or_default();
    Pane {
        status: status.trim().to_string(),
        screens,
        last,
    }
}

const PANE_LIMIT: Duration = Duration::from_secs(240);

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

#[test]
fn propagate_progress_bars_fit_80_columns() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("skipped: tmux is not installed (setup.sh installs it)");
        return;
    }
    let bed = Bed::new();
    // 6 MiB at 16 Mbit/s: some three seconds of bars per host.
    let iso = filler_iso(bed.path(), "big", 6 << 20);
    let names = [
        "a-rather-long-kvm-host-name-in-zone-one",
        "another-long-kvm-host-name-in-zone-two",
    ];
    let nets: Vec<NetNs> = names.iter().map(|_| NetNs::create()).collect();
    let hosts: Vec<TestHost> = names
        .iter()
        .zip(&nets)
        .map(|(name, ns)| {
            ns.rate_limit("16mbit");
            let opts = HostOptions {
                netns: Some(ns.host()),
                ..bed.opts()
            };
            TestHost::start(&bed.path().join("hosts"), name, opts)
        })
        .collect();
    let known = bed.known_hosts(&hosts.iter().collect::<Vec<_>>());
    let mut inventory = format!(
        "[defaults]\nidentity = \"{}\"\nknown_hosts = \"{}\"\n",
        bed.identity.display(),
        known.display()
    );
    for host in &hosts {
        inventory.push_str(&format!(
            "[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\nhypervisor = \"kvm\"\n",
            host.name, host.address, host.port
        ));
    }
    let inv = bed.path().join("hosts.toml");
    std::fs::write(&inv, inventory).unwrap();

    // A stall (one CI run saw a finished upload sit for 100 s under load) ends in 20 s and
    // is retried, well inside the pane's limit, instead of at the default two minutes.
    let script = format!(
        "'{BIN}' propagate --inventory '{}' --iso '{}' --transfer-timeout 20 --retries 2",
        inv.display(),
        iso.display()
    );
    let pane = run_in_pane(bed.path(), &script, false);
    assert_eq!(pane.status, "0", "{}", pane.last);
    // Bars fill the row exactly and let the terminal wrap to the next (indicatif's way), so
    // rows are checked one by one: each bar's row starts with its host, none spills over.
    let bar_rows: Vec<&str> = pane
        .screens
        .iter()
        .flat_map(|s| s.lines())
        .filter(|row| row.contains("iB/"))
        .collect();
    assert!(
        bar_rows.iter().filter(|r| r.contains(names[1])).count() > 1,
        "no progress bar was ever on the screen:\n{}",
        pane.last
    );
    for row in &bar_rows {
        assert!(
            names.iter().any(|n| row.starts_with(n)) && row.trim_end().ends_with("/s"),
            "a bar split across rows: {row:?}"
        );
    }
    for host in &hosts {
        assert_eq!(
            sha256(&host.path("/usr/share/cloudstack-common/vms/systemvm.iso")),
            sha256(&iso)
        );
    }
    assert_fit(&[pane.last]);
}

#[test]
fn package_deb_shows_a_spinner_while_it_packs() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("skipped: tmux is not installed (setup.sh installs it)");
        return;
    }
    let dir = tempdir();
    let iso = filler_iso(dir.path(), "big", 32 << 20);
    let script = format!(
        "cd '{}' && '{BIN}' package deb '{}'",
        dir.path().display(),
        iso.display()
    );
    let pane = run_in_pane(dir.path(), &script, true);
    assert_eq!(pane.status, "0", "{}", pane.last);
    assert!(
        pane.screens.iter().any(|s| s.contains("packing ")),
        "no spinner was ever on the screen:\n{}",
        pane.last
    );
    assert!(!pane.last.contains("packing "), "{}", pane.last);
    assert!(pane.last.contains("wrote "), "{}", pane.last);
    assert_fit(&pane.screens);
}
