//! End to end: a key pair from `systemvm keys generate`, injected into a built ISO, read back
//! from the ISO by bsdtar and handed to a real sshd on loopback, lets us log in; a key that
//! was not injected does not.

use crate::common;

use common::sshd::Sshd;
use common::*;
use std::fs;

#[test]
fn injected_key_logs_in_to_a_real_sshd() {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let iso = dir.path().join("systemvm.iso");
    build_iso(&payload, &iso, &[]);

    let key = dir.path().join("id_ed25519");
    Test::new()
        .args(["keys", "generate", "-o"])
        .arg(&key)
        .success();
    Test::new()
        .arg("inject")
        .arg(&iso)
        .arg("--key")
        .arg(dir.path().join("id_ed25519.pub"))
        .success();

    let authorized = dir.path().join("authorized_keys");
    fs::write(&authorized, bsdtar_member(&iso, "authorized_keys")).unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"), &authorized);

    let (ok, out) = sshd.ssh(&key, "echo logged-in");
    assert!(ok, "login with the injected key failed");
    assert_eq!(out.trim(), "logged-in");

    let (stranger, _) = ssh_keygen(dir.path(), "stranger");
    let (ok, _) = sshd.ssh(&stranger, "true");
    assert!(!ok, "a key that was never injected got in");
}
