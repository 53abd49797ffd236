//! VMware secondary storage (a mounted directory): concurrent management servers produce
//! exactly one complete ISO, a killed copy never leaves a torn file under the final name,
//! and re-runs converge.

use crate::common;

use common::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An ISO of about `mib` MiB whose content depends on `seed`.
fn big_iso(dir: &Path, name: &str, mib: usize, seed: u8) -> PathBuf {
    let payload = small_payload(&dir.join(format!("payload-{name}")));
    let mut blob = fs::File::create(payload.join("agent/lib/blob.jar")).unwrap();
    let mut block = vec![0u8; 1 << 20];
    for i in 0..mib {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (j as u8)
                .wrapping_mul(31)
                .wrapping_add(i as u8)
                .wrapping_add(seed);
        }
        blob.write_all(&block).unwrap();
    }
    let iso = dir.join(format!("{name}.iso"));
    build_iso(&payload, &iso, &[]);
    iso
}

fn inventory(dir: &Path, secondary: &Path) -> PathBuf {
    let path = dir.join("hosts.toml");
    fs::write(
        &path,
        format!(
            "[[secondary]]\nname = \"nfs-zone1\"\nhypervisor = \"vmware\"\nrequire_mount = false\npath = \"{}\"\n",
            secondary.display()
        ),
    )
    .unwrap();
    path
}

/// A run's exit code and everything it printed, stdout then stderr.
fn code_and_text(out: std::process::Output) -> (Option<i32>, String) {
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

fn propagate(inv: &Path, iso: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["propagate", "--inventory"])
        .arg(inv)
        .arg("--iso")
        .arg(iso);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn eight_management_servers_make_exactly_one_complete_copy() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "new", 24, 1);
    let secondary = dir.path().join("secondary");
    fs::create_dir(&secondary).unwrap();
    let inv = inventory(dir.path(), &secondary);
    let children: Vec<_> = (0..8)
        .map(|_| propagate(&inv, &iso).spawn().unwrap())
        .collect();
    let mut outcomes = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outcomes.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let folder = secondary.join("systemvm");
    assert_eq!(
        listing(&folder),
        ["systemvm-4.16.0.0.iso"],
        "a temp or lock file was left"
    );
    assert_eq!(sha256(&folder.join("systemvm-4.16.0.0.iso")), sha256(&iso));
    // One of them copied; the seven others found it done under the lock.
    assert_eq!(
        outcomes.iter().filter(|o| o.contains(" updated ")).count(),
        1,
        "{outcomes:#?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| o.contains(" current ")).count(),
        7,
        "{outcomes:#?}"
    );
}

#[test]
fn killed_copies_leave_the_old_or_the_new_iso_and_a_rerun_converges() {
    let dir = tempdir();
    let old = big_iso(dir.path(), "old", 48, 2);
    let new = big_iso(dir.path(), "new", 48, 3);
    let (old_sum, new_sum) = (sha256(&old), sha256(&new));
    let secondary = dir.path().join("secondary");
    fs::create_dir(&secondary).unwrap();
    let inv = inventory(dir.path(), &secondary);
    let final_path = secondary.join("systemvm/systemvm-4.16.0.0.iso");
    assert!(propagate(&inv, &old).status().unwrap().success());
    // How long a whole replacing run takes here, to spread the kills over it.
    let timed = Instant::now();
    assert!(propagate(&inv, &new).status().unwrap().success());
    let whole = timed.elapsed();
    assert!(propagate(&inv, &old).status().unwrap().success());

    // 12 kills at moments spread over a run's length (start-up, planning, copy, rename),
    // then 3 as soon as the temp file shows: mid-copy however loaded the machine is (the
    // spread moments shift with load).
    let folder = secondary.join("systemvm");
    let has_temp = || listing(&folder).iter().any(|n| n.ends_with(".tmp"));
    let mut seen_new = 0;
    let mut mid_copy = 0;
    for trial in 0..15u32 {
        let mut child = propagate(&inv, &new).spawn().unwrap();
        if trial < 12 {
            std::thread::sleep(whole * (trial + 1) / 12);
        } else {
            let started = Instant::now();
            while !has_temp() && started.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if has_temp() {
            mid_copy += 1;
        }
        let sum = sha256(&final_path);
        assert!(
            sum == old_sum || sum == new_sum,
            "trial {trial}: a torn ISO under the final name"
        );
        if sum == new_sum {
            seen_new += 1;
            // Put the old one back (a clean run) so the next trial replaces it again.
            assert!(propagate(&inv, &old).status().unwrap().success());
        }
    }
    eprintln!("of 15 killed runs, {mid_copy} died mid-copy and {seen_new} after the rename");
    assert!(
        mid_copy > 0,
        "no run was killed during the copy: the trials test nothing"
    );

    let started = Instant::now();
    let out = propagate(&inv, &new).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(sha256(&final_path), new_sum);
    assert_eq!(
        listing(&secondary.join("systemvm")),
        ["systemvm-4.16.0.0.iso"],
        "leftovers after the re-run"
    );
}

#[test]
fn keep_removes_older_isos_and_dry_run_changes_nothing() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "new", 1, 4);
    let secondary = dir.path().join("secondary");
    let folder = secondary.join("systemvm");
    fs::create_dir_all(&folder).unwrap();
    for old in [
        "systemvm-4.14.0.0.iso",
        "systemvm-4.15.0.0.iso",
        "systemvm-4.15.1.0.iso",
    ] {
        fs::write(folder.join(old), old).unwrap();
    }
    let inv = inventory(dir.path(), &secondary);
    let before = listing(&folder);
    let plan = Test::new()
        .args(["propagate", "--dry-run", "--keep", "2", "--inventory"])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .success();
    assert_eq!(listing(&folder), before, "--dry-run changed the folder");
    let printed = plan.stdout();
    for line in [
        "upload new.iso to",
        "remove ",
        "systemvm-4.14.0.0.iso",
        "systemvm-4.15.0.0.iso",
    ] {
        assert!(
            printed.contains(line),
            "{line} missing from the plan:\n{printed}"
        );
    }
    assert!(!printed.contains("systemvm-4.15.1.0.iso"), "{printed}");

    let run = Test::new()
        .args([
            "propagate",
            "--keep",
            "2",
            "--output-format",
            "json",
            "--inventory",
        ])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .success();
    assert_eq!(
        listing(&folder),
        ["systemvm-4.15.1.0.iso", "systemvm-4.16.0.0.iso"]
    );
    // The JSON steps carried out are the ones the dry run printed.
    let events: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done = events.iter().find(|e| e["event"] == "done").unwrap();
    let dry_steps: Vec<String> = printed
        .lines()
        .skip(1)
        .map(|l| l.trim().to_string())
        .collect();
    let steps: Vec<String> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, dry_steps);
    assert_eq!(done["outcome"], "updated");
    assert_eq!(events.last().unwrap()["event"], "summary");

    // Status: current now; exit 0.
    Test::new()
        .args(["status", "--inventory"])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .success()
        .stdout_contains("current");
}

/// A secondary storage whose mount point is missing (the share is not mounted) fails,
/// naming it, and nothing is created: no folder, no file on the local disk.
#[test]
fn a_missing_secondary_path_fails_and_creates_nothing() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "new", 1, 5);
    let secondary = dir.path().join("mnt/secondary");
    let inv = inventory(dir.path(), &secondary);
    let (code, text) = code_and_text(propagate(&inv, &iso).output().unwrap());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("is the share mounted?"), "{text}");
    assert!(
        !dir.path().join("mnt").exists(),
        "the mount point was created"
    );
}

/// The management server's own directory is never made either: missing, cloudstack-common
/// is not installed, and the message says so (not "the share").
#[test]
fn a_missing_management_directory_fails_naming_it_and_creates_nothing() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "ms", 1, 3);
    let vms = dir.path().join("cloudstack-common/vms");
    let inv = dir.path().join("hosts.toml");
    let entry = format!(
        "[[secondary]]\nname = \"ms\"\nhypervisor = \"management\"\npath = \"{}\"\n",
        vms.display()
    );
    fs::write(&inv, entry).unwrap();
    let (code, text) = code_and_text(propagate(&inv, &iso).output().unwrap());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("directory {}: does not exist", vms.display()))
            && text.contains("is cloudstack-common installed?"),
        "{text}"
    );
    assert!(!dir.path().join("cloudstack-common").exists(), "created");
}

/// An unmounted share leaves its empty mount-point directory behind: writing there would
/// fill the management server's disk and CloudStack would never see the file. A VMware path
/// must be a mount point; a real one (a tmpfs in a private mount namespace) is used.
#[test]
fn a_secondary_path_that_is_not_a_mount_point_is_refused_and_a_mounted_one_is_used() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "mounted", 1, 9);
    let secondary = dir.path().join("mnt/secondary");
    fs::create_dir_all(&secondary).unwrap();
    let inv = dir.path().join("hosts.toml");
    let entry = format!(
        "[[secondary]]\nname = \"nfs-zone1\"\nhypervisor = \"vmware\"\npath = \"{}\"\n",
        secondary.display()
    );
    fs::write(&inv, &entry).unwrap();

    let (code, text) = code_and_text(propagate(&inv, &iso).output().unwrap());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("is not a mount point (is the share mounted?)"),
        "{text}"
    );
    assert!(text.contains(&secondary.display().to_string()), "{text}");
    assert_eq!(
        listing(&secondary),
        Vec::<String>::new(),
        "written onto the local disk"
    );

    // The same run with the share mounted: unshare gives the mount to this run alone.
    let script = format!(
        "mount -t tmpfs -o size=64m,mode=755 systemvm-test {sec} && \"$0\" propagate --inventory {inv} --iso {iso} && ls {sec}/systemvm",
        sec = secondary.display(),
        inv = inv.display(),
        iso = iso.display()
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            BIN,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("systemvm-4.16.0.0.iso"), "{text}");
    assert_eq!(
        listing(&secondary),
        Vec::<String>::new(),
        "the mount leaked out"
    );
}
#[test]
fn the_file_carries_the_management_servers_version() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "named", 1, 3);
    let secondary = dir.path().join("secondary");
    fs::create_dir(&secondary).unwrap();
    let inv = inventory(dir.path(), &secondary);
    let run = Test::new()
        .env_remove("CLOUDSTACK_API_URL")
        .args([
            "propagate",
            "--cloudstack-version",
            "4.16.1.0",
            "--inventory",
        ])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .output()
        .code(0);
    // CloudStack looks for systemvm-<its own version>.iso, whatever the ISO's version.
    assert_eq!(
        listing(&secondary.join("systemvm")),
        ["systemvm-4.16.1.0.iso"]
    );
    assert_eq!(
        fs::read(secondary.join("systemvm/systemvm-4.16.1.0.iso")).unwrap(),
        fs::read(&iso).unwrap()
    );
    assert!(
        run.stderr()
            .contains("the ISO is version 4.16.0.0, the management server is CloudStack 4.16.1.0"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_management_servers_own_copy_is_done_first() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "first", 1, 5);
    let secondary = dir.path().join("secondary");
    let own = dir.path().join("vms");
    fs::create_dir(&secondary).unwrap();
    fs::create_dir(&own).unwrap();
    // The VMware storage comes first in the file; the management target still goes first.
    let inv = dir.path().join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[[secondary]]\nname = \"nfs-zone1\"\nhypervisor = \"vmware\"\nrequire_mount = false\npath = \"{}\"\n\
             [[secondary]]\nname = \"mgmt\"\nhypervisor = \"management\"\npath = \"{}\"\n",
            secondary.display(),
            own.display()
        ),
    )
    .unwrap();
    let run = Test::new()
        .env_remove("CLOUDSTACK_API_URL")
        .args([
            "propagate",
            "--jobs",
            "8",
            "--output-format",
            "json",
            "--inventory",
        ])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .output()
        .code(0);
    let events: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |event: &str, host: &str| {
        events
            .iter()
            .position(|e| e["event"] == event && e["target"] == host)
            .unwrap_or_else(|| panic!("no {event} of {host}: {}", run.stdout()))
    };
    assert!(
        at("done", "mgmt") < at("plan", "nfs-zone1"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        fs::read(own.join("systemvm.iso")).unwrap(),
        fs::read(&iso).unwrap()
    );
    // The summary still lists the targets in the inventory's order.
    let done: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "done")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(done, ["mgmt", "nfs-zone1"]);
}

#[test]
fn a_lock_planted_on_the_share_is_refused_not_followed_nor_waited_on() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "planted", 1, 7);
    let secondary = dir.path().join("secondary");
    let folder = secondary.join("systemvm");
    fs::create_dir_all(&folder).unwrap();
    let inv = inventory(dir.path(), &secondary);
    let lock = folder.join(".systemvm.lock");
    let run = || {
        let started = Instant::now();
        let out = propagate(&inv, &iso)
            .args(["--retries", "0", "--deadline", "5"])
            .output()
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "waited on the lock"
        );
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // A dangling symlink: root would otherwise create its target anywhere.
    let outside = dir.path().join("etc-nologin");
    std::os::unix::fs::symlink(&outside, &lock).unwrap();
    let out = run();
    assert!(
        out.contains("cannot open lock") && out.contains("planted"),
        "{out}"
    );
    assert!(!outside.exists(), "the symlink's target was created");

    // A FIFO: opening it would block forever (without a reader it cannot even be opened).
    fs::remove_file(&lock).unwrap();
    let made = Command::new("mkfifo").arg(&lock).status().unwrap();
    assert!(made.success());
    let out = run();
    assert!(
        out.contains("cannot open lock") && out.contains("FIFO"),
        "{out}"
    );
    assert_eq!(listing(&folder), [".systemvm.lock"], "something was copied");
}

/// Lines of a run's stdout and stderr that mention `needle`.
fn lines_with(run: &Measured, needle: &str) -> Vec<String> {
    format!("{}{}", run.run.stdout(), run.run.stderr())
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Names and contents of a directory's entries, symlinks not followed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            let bytes = if meta.is_file() {
                fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            let name = e.file_name().to_string_lossy().into_owned();
            (name, bytes, meta.permissions().mode())
        })
        .collect();
    out.sort();
    out
}

/// The SSVM can write the share: a `systemvm/` folder it replaced with a symlink must not
/// take the ISO, its temp file, the lock or `--keep`'s removals into another directory.
#[test]
fn a_symlinked_systemvm_folder_is_refused_and_the_other_directory_untouched() {
    let dir = tempdir();
    let iso = big_iso(dir.path(), "new", 1, 9);
    let secondary = dir.path().join("secondary");
    fs::create_dir_all(&secondary).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    for old in ["systemvm-4.14.0.0.iso", "systemvm-4.15.0.0.iso"] {
        fs::write(elsewhere.join(old), old).unwrap();
    }
    std::os::unix::fs::symlink(&elsewhere, secondary.join("systemvm")).unwrap();
    let inv = inventory(dir.path(), &secondary);
    let before = snapshot(&elsewhere);

    let run = Test::new()
        .args([
            "propagate",
            "--keep",
            "1",
            "--retries",
            "0",
            "--deadline",
            "20",
        ])
        .arg("--inventory")
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .output_within(Duration::from_secs(30));
    assert_eq!(
        run.run.output.status.code(),
        Some(1),
        "{}",
        run.run.stderr()
    );
    let refused = lines_with(&run, "symlink or not a directory");
    assert_eq!(refused.len(), 1, "{}{}", run.run.stdout(), run.run.stderr());
    assert!(
        refused[0].contains(&secondary.join("systemvm").display().to_string()),
        "{refused:?}"
    );
    assert_eq!(snapshot(&elsewhere), before, "the other directory changed");
    assert_eq!(listing(&secondary), ["systemvm"]);
    assert!(fs::symlink_metadata(secondary.join("systemvm"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// The temp file is swapped on the share for a symlink to a copy of the ISO elsewhere (so a
/// check by path would pass) while the upload runs: the final name is never a symlink, the
/// copy elsewhere keeps its mode, and a final file, if any, is a regular file holding the
/// ISO. The swapper runs in a bounded loop until the run ends.
#[test]
fn a_temp_file_swapped_for_a_symlink_never_becomes_the_final_name() {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempdir();
    let iso = big_iso(dir.path(), "swap", 8, 11);
    let secondary = dir.path().join("secondary");
    let folder = secondary.join("systemvm");
    fs::create_dir_all(&folder).unwrap();
    let outside = dir.path().join("outside.iso");
    fs::copy(&iso, &outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
    let inv = inventory(dir.path(), &secondary);

    let done = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (done, folder, outside) = (done.clone(), folder.clone(), outside.clone());
        std::thread::spawn(move || {
            for _ in 0..2_000_000 {
                if done.load(Ordering::Relaxed) {
                    return false;
                }
                let Ok(entries) = fs::read_dir(&folder) else {
                    continue;
                };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".tmp") && fs::remove_file(e.path()).is_ok() {
                        std::os::unix::fs::symlink(&outside, e.path()).unwrap();
                        return true;
                    }
                }
            }
            false
        })
    };
    let run = Test::new()
        .args(["propagate", "--retries", "0", "--deadline", "60"])
        .arg("--inventory")
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .output_within(Duration::from_secs(90));
    done.store(true, Ordering::Relaxed);
    let swapped = swapper.join().unwrap();

    let final_path = folder.join("systemvm-4.16.0.0.iso");
    match fs::symlink_metadata(&final_path) {
        Ok(meta) => {
            assert!(meta.file_type().is_file(), "the final name is not a file");
            assert_eq!(sha256(&final_path), sha256(&iso));
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
    }
    let mode = fs::metadata(&outside).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file elsewhere was chmodded");
    assert_eq!(sha256(&outside), sha256(&iso));
    if swapped {
        assert_eq!(
            run.run.output.status.code(),
            Some(1),
            "{}",
            run.run.stdout()
        );
        let lines = lines_with(&run, "swapped on the share");
        assert_eq!(lines.len(), 1, "{}{}", run.run.stdout(), run.run.stderr());
        assert!(!final_path.exists(), "what landed stayed");
    } else {
        eprintln!("the swapper did not catch the temp file this time");
    }
}
