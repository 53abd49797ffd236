//! The JSON event schema from the user's side: every command's `--output-format json` keeps
//! docs/events.md (an `event` on every line, `target` with `kind`, `error` with `cause`, one
//! closing `summary`), and the streams of the common runs match their snapshots.

use crate::common;

use common::schema::{assert_schema, assert_snapshot, normalise};
use common::*;
use std::fs;
use std::path::Path;

/// A VMware secondary storage and the management server's own directory, both local.
fn two_targets(dir: &Path) -> std::path::PathBuf {
    for d in ["secondary", "vms"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    let inv = dir.join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[[secondary]]\nname = \"nfs-zone1\"\nhypervisor = \"vmware\"\nrequire_mount = false\npath = \"{0}/secondary\"\n\
             [[secondary]]\nname = \"mgmt\"\nhypervisor = \"management\"\npath = \"{0}/vms\"\n",
            dir.display()
        ),
    )
    .unwrap();
    inv
}

fn iso(dir: &Path) -> std::path::PathBuf {
    let payload = small_payload(dir);
    let iso = dir.join("systemvm.iso");
    build_iso(&payload, &iso, &[]);
    iso
}

fn run_json(command: &[&str], inv: &Path, iso: &Path) -> Run {
    Test::new()
        .args(command)
        .arg("--inventory")
        .arg(inv)
        .arg("--iso")
        .arg(iso)
        .args(["--jobs", "1", "--output-format", "json"])
        .output()
}

#[test]
fn status_dry_run_and_propagate_keep_the_schema_and_their_snapshots() {
    let dir = tempdir();
    let (inv, iso) = (two_targets(dir.path()), iso(dir.path()));

    let status = run_json(&["status"], &inv, &iso).code(1);
    let lines = assert_schema(&status, "status");
    assert_snapshot("status-stale", &normalise(&lines, dir.path()));

    let dry = run_json(&["propagate", "--dry-run"], &inv, &iso).code(0);
    let lines = assert_schema(&dry, "propagate");
    assert_snapshot("propagate-dry-run", &normalise(&lines, dir.path()));

    let apply = run_json(&["propagate"], &inv, &iso).code(0);
    let lines = assert_schema(&apply, "propagate");
    assert!(
        lines.iter().any(|l| l["event"] == "bytes"),
        "no progress records"
    );
    assert_snapshot("propagate-updated", &normalise(&lines, dir.path()));

    let again = run_json(&["status"], &inv, &iso).code(0);
    let lines = assert_schema(&again, "status");
    assert_snapshot("status-current", &normalise(&lines, dir.path()));
}

#[test]
fn a_failed_target_has_an_error_with_its_cause() {
    let dir = tempdir();
    let (inv, iso) = (two_targets(dir.path()), iso(dir.path()));
    fs::remove_dir(dir.path().join("secondary")).unwrap();
    let run = run_json(&["propagate"], &inv, &iso).code(1);
    let lines = assert_schema(&run, "propagate");
    let failed = lines
        .iter()
        .find(|l| l["event"] == "done" && l["outcome"] == "failed")
        .expect("a failed target");
    assert_eq!(failed["target"], "nfs-zone1");
    assert_eq!(failed["kind"], "vmware");
    assert_snapshot("propagate-failed", &normalise(&lines, dir.path()));
}

#[test]
fn build_inspect_and_inject_end_with_a_summary_of_one() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let out = dir.path().join("built.iso");
    let build = Test::new()
        .args(["build", "--payload"])
        .arg(&payload)
        .arg("-o")
        .arg(&out)
        .args(["--output-format", "json"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .success();
    let lines = assert_schema(&build, "build");
    assert_eq!(lines[0]["event"], "artifact");
    assert_eq!(lines[0]["kind"], "built");
    assert_eq!(lines[0]["target"], out.display().to_string());

    let inspect = Test::new()
        .args(["inspect", "--output-format", "json"])
        .arg(&out)
        .success();
    let lines = assert_schema(&inspect, "inspect");
    assert_eq!(lines[0]["kind"], "inspected");
    assert_snapshot("inspect", &normalise(&lines, dir.path()));

    let (_, public) = ssh_keygen(dir.path(), "k");
    let inject = Test::new()
        .args(["inject", "--output-format", "json"])
        .arg(&out)
        .arg("--key")
        .arg(&public)
        .arg("--in-place")
        .success();
    let lines = assert_schema(&inject, "inject");
    assert_eq!(lines[0]["kind"], "injected");
    // Built without a key area: the first injection remasters.
    assert_eq!(lines[0]["outcome"], "remastered");
    assert_eq!(lines[1]["counts"]["remastered"], 1, "{}", inject.stdout());
}

#[test]
fn a_usage_error_is_an_error_record_and_a_summary_with_exit_code_2() {
    let dir = tempdir();
    let missing = dir.path().join("missing.iso");
    let run = Test::new()
        .args(["inspect", "--output-format", "json"])
        .arg(&missing)
        .fails(2)
        .one_error_line();
    let lines = assert_schema(&run, "inspect");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"], "error");
    assert_eq!(lines[0]["cause"], "usage");
    assert!(lines[0]["error"]
        .as_str()
        .unwrap()
        .contains(&missing.display().to_string()));
    assert_eq!(
        listing(dir.path()),
        Vec::<String>::new(),
        "something was written"
    );
}

#[test]
fn doctor_checks_are_records_about_their_target() {
    let dir = tempdir();
    let inv = two_targets(dir.path());
    let run = Test::new()
        .args(["doctor", "--no-hosts", "--no-appliance", "--inventory"])
        .arg(&inv)
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .args(["--output-format", "json"])
        .output();
    let lines = assert_schema(&run, "doctor");
    assert!(lines.iter().any(|l| l["event"] == "check"
        && l["target"] == inv.display().to_string()
        && l["kind"] == "inventory"));
}
