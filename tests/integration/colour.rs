//! Warnings carry no colour escapes when stderr is not a terminal (here a pipe and a
//! file), with or without NO_COLOR.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// `restart-systemvms` with a secret key file others can read: a warning, then the API
/// (a closed loopback port) refuses.
fn warning_run(dir: &std::path::Path, no_color: bool, stderr: Stdio) -> std::process::Output {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for name in ["api.key", "api.secret"] {
        let path = dir.join(name);
        std::fs::write(&path, "k\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_systemvm"));
    cmd.args(["restart-systemvms", "--zone", "z", "--api-url"])
        .arg(format!("http://127.0.0.1:{port}/client/api"))
        .arg("--api-key-file")
        .arg(dir.join("api.key"))
        .arg("--secret-key-file")
        .arg(dir.join("api.secret"))
        .stderr(stderr);
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    cmd.output().unwrap()
}

#[test]
fn warnings_to_a_pipe_have_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    for no_color in [false, true] {
        let out = warning_run(dir.path(), no_color, Stdio::piped());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("WARN"), "{stderr}");
        assert!(stderr.contains("readable by others"), "{stderr}");
        assert!(!stderr.contains('\x1b'), "escape codes in {stderr:?}");
    }
}

#[test]
fn warnings_to_a_file_have_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    warning_run(dir.path(), false, Stdio::from(file));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "escape codes in {stderr:?}");
}
