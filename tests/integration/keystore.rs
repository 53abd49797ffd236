//! The bundled payload's `keystore-setup` and `keystore-cert-import`, CloudStack's interface
//! for the agent's certificate, run with the real keytool and openssl: a request is made, a
//! test CA signs it, the reply goes in. A CloudStack host also requires them to exist
//! (`patched.sh "/opt/cloud/bin/keystore*"`), which `tests/oracle.rs` checks.

use crate::common;

use common::{bundled_payload, tempdir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script(name: &str) -> PathBuf {
    bundled_payload().join("scripts/opt/cloud/bin").join(name)
}

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str], dir: &Path) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// CloudStack's wire form of PEM text: newlines as `^`, spaces as `~`.
fn wire(pem: &str) -> String {
    pem.trim_end().replace('\n', "^").replace(' ', "~")
}

#[test]
fn a_request_is_signed_and_the_reply_completes_the_keystore() {
    if !have("keytool") || !have("openssl") {
        eprintln!("skipped: keytool or openssl is not installed");
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("agent.properties"), "type=secstorage\n").unwrap();

    // 1. The request, printed on stdout as the management server reads it.
    let setup = run(
        script("keystore-setup"),
        &[
            "agent.properties",
            "cloud.jks",
            "s3cret-pass",
            "365",
            "cloud.csr",
        ],
        d,
    );
    let printed = String::from_utf8_lossy(&setup.stdout);
    assert!(
        printed.contains("BEGIN NEW CERTIFICATE REQUEST"),
        "{printed}"
    );
    run(
        "openssl",
        &["req", "-in", "cloud.csr", "-noout", "-verify"],
        d,
    );
    let props = std::fs::read_to_string(d.join("agent.properties")).unwrap();
    assert!(props.contains("keystore.passphrase=s3cret-pass"), "{props}");

    // 2. A CA signs it.
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ],
        d,
    );
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "cloud.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cloud.crt",
            "-days",
            "2",
        ],
        d,
    );

    // 3. The reply and the CA, sent as CloudStack sends them (a different passphrase on the
    // command line: the one on record wins).
    let cert = std::fs::read_to_string(d.join("cloud.crt")).unwrap();
    let ca = std::fs::read_to_string(d.join("ca.crt")).unwrap();
    let (cert, ca) = (wire(&cert), wire(&ca));
    run(
        script("keystore-cert-import"),
        &[
            "agent.properties",
            "other",
            "cloud.jks",
            "ssh",
            "imported.crt",
            &cert,
            "imported.ca",
            &ca,
        ],
        d,
    );
    let list = run(
        "keytool",
        &[
            "-list",
            "-v",
            "-keystore",
            "cloud.jks",
            "-storepass",
            "s3cret-pass",
        ],
        d,
    );
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("Alias name: cloud\n"), "{list}");
    assert!(list.contains("Alias name: cloudca.1\n"), "{list}");
    let cloud = &list[list.find("Alias name: cloud\n").unwrap()..];
    assert!(cloud.contains("Entry type: PrivateKeyEntry"), "{cloud}");
    assert!(cloud.contains("Certificate chain length: 2"), "{cloud}");
    assert!(cloud.contains("Issuer: CN=test CA"), "{cloud}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("cloud.jks"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempdir();
    for name in ["keystore-setup", "keystore-cert-import"] {
        let out = Command::new(script(name))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: "));
    }
}
