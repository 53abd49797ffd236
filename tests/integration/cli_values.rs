//! Bad flag values are named with what is valid, in one error line, exit status 2.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_systemvm"))
        .args(args)
        .env_remove("SYSTEMVM_INVENTORY")
        .env_remove("SYSTEMVM_ISO")
        .output()
        .expect("run systemvm")
}

fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().next().unwrap_or_default().to_string()
}

#[test]
fn negative_jobs_and_deadline_name_the_range() {
    for args in [
        &["status", "--jobs", "-1"][..],
        &["propagate", "-j", "-1"],
        &["propagate", "--deadline", "-1"],
        &["restart-systemvms", "--jobs", "-1"],
        &["restart-systemvms", "--deadline", "-1"],
        &["startup", "--deadline", "-1"],
        &["status", "--jobs", "0"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let line = error_line(&out);
        assert!(!line.contains("unexpected argument"), "{args:?}: {line}");
        assert!(
            line.contains(&format!("invalid value '{}'", args[2])) && line.contains("1 or more"),
            "{args:?}: {line}"
        );
    }
}

#[test]
fn retries_are_bounded_so_a_flapping_host_cannot_hold_a_run_for_ever() {
    for cmd in ["propagate", "status"] {
        let out = run(&[cmd, "--retries", "21"]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let line = error_line(&out);
        assert!(
            line.contains("invalid value '21'") && line.contains("0..=20"),
            "{line}"
        );
    }
    let out = run(&[
        "status",
        "--retries",
        "20",
        "--inventory",
        "/nonexistent/hosts.toml",
    ]);
    let line = error_line(&out);
    assert!(
        line.contains("/nonexistent/hosts.toml"),
        "20 is taken: {line}"
    );
}

#[test]
fn bad_hypervisor_lists_the_choices() {
    let out = run(&["status", "--hypervisor", "vmwre"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'vmwre' for '--hypervisor"),
        "{stderr}"
    );
    assert!(
        stderr.contains("xenserver, kvm, vmware, hyperv, management"),
        "{stderr}"
    );
}

#[test]
fn cloudstack_spellings_of_hypervisors_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("hosts.toml");
    for kind in [
        "VMware",
        "XenServer",
        "KVM",
        "Hyperv",
        "Hyper-V",
        "management",
    ] {
        let out = run(&[
            "status",
            "--inventory",
            inventory.to_str().unwrap(),
            "--hypervisor",
            kind,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("invalid value"), "{kind}: {stderr}");
        // Parsed; the (missing) inventory is what stops it.
        assert!(stderr.contains("hosts.toml"), "{kind}: {stderr}");
    }
}

#[test]
fn accept_new_in_status_and_dry_run_says_it_never_pins() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("hosts.toml");
    for args in [&["status"][..], &["propagate", "--dry-run"]] {
        let mut argv = args.to_vec();
        argv.extend(["--accept-new", "--inventory", inventory.to_str().unwrap()]);
        let out = run(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.contains("--accept-new"))
            .unwrap_or_else(|| panic!("{args:?}: no --accept-new line in {stderr}"));
        assert!(line.contains("dry runs and status never pin"), "{line}");
        assert!(
            line.contains("systemvm propagate --accept-new without --dry-run"),
            "{line}"
        );
    }
    // A real run says nothing of the kind.
    let out = run(&[
        "propagate",
        "--accept-new",
        "--inventory",
        inventory.to_str().unwrap(),
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("never pin"));
}
