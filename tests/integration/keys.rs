//! `systemvm keys`: every check is made with OpenSSH's own ssh-keygen, which we did not write.
//! Key pairs must load in ssh-keygen, and `keys show` must print what `ssh-keygen -l` prints.

use crate::common;

use common::{listing, tempdir, tool, Test};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn with_pub(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", s(path)))
}

/// `algorithm base64` of a public key line, without the comment.
fn key_part(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What ssh-keygen prints for `ssh-keygen -l -f path`.
fn ssh_keygen_l(path: &Path) -> String {
    tool("ssh-keygen", &["-l", "-f", s(path)])
}

/// What `systemvm keys show path` prints.
fn show(path: &Path) -> String {
    Test::new()
        .args(["keys", "show", s(path)])
        .success()
        .stdout()
}

/// Generate with ssh-keygen itself, without a passphrase.
fn ssh_keygen_new(path: &Path, kind: &str, comment: &str) {
    tool(
        "ssh-keygen",
        &["-q", "-t", kind, "-N", "", "-C", comment, "-f", s(path)],
    );
}

/// Generate `dir/name` with systemvm and check the pair the way a user would: modes,
/// ssh-keygen re-deriving the public key, and fingerprints agreeing everywhere.
fn generate_and_check(args: &[&str], bits_and_algo: (&str, &str)) {
    let dir = tempdir();
    let private = dir.path().join("key");
    let run = Test::new()
        .args(["keys", "generate", "-o", s(&private)])
        .args(args)
        .success();
    let public = with_pub(&private);
    assert_eq!(mode(&private), 0o600, "private key mode");
    assert_eq!(mode(&public), 0o644, "public key mode");

    let pub_text = fs::read_to_string(&public).expect("read .pub");
    assert!(pub_text.ends_with('\n') && pub_text.lines().count() == 1);
    let derived = tool("ssh-keygen", &["-y", "-f", s(&private)]);
    assert_eq!(key_part(&derived), key_part(&pub_text));

    let expected = ssh_keygen_l(&public);
    let (bits, algo) = bits_and_algo;
    assert!(
        expected.starts_with(&format!("{bits} SHA256:")),
        "{expected}"
    );
    assert!(
        expected.trim_end().ends_with(&format!("({algo})")),
        "{expected}"
    );
    assert_eq!(run.stdout(), expected, "generate prints the fingerprint");
    assert_eq!(show(&public), expected);
    assert_eq!(show(&private), ssh_keygen_l(&private));
    assert!(run.stderr().contains("(0600)"), "{}", run.stderr());

    // Without the .pub, ssh-keygen reads the comment stored in our private key.
    fs::remove_file(&public).expect("rm .pub");
    let alone = ssh_keygen_l(&private);
    assert!(alone.contains(" systemvm@"), "{alone}");
    assert_eq!(show(&private), alone);
}

#[test]
fn generate_ed25519_by_default_in_the_current_directory() {
    let dir = tempdir();
    let run = Test::new()
        .current_dir(dir.path())
        .args(["keys", "generate", "--comment", "ops@mgmt"])
        .success();
    assert_eq!(listing(dir.path()), ["id_ed25519", "id_ed25519.pub"]);
    let private = dir.path().join("id_ed25519");
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&with_pub(&private)), 0o644);
    let expected = ssh_keygen_l(&private);
    assert!(expected.ends_with(" ops@mgmt (ED25519)\n"), "{expected}");
    assert_eq!(run.stdout(), expected);
    run.stderr_contains("wrote id_ed25519 (0600) and id_ed25519.pub (0644)");
}

#[test]
fn generate_ed25519_pair_is_read_by_ssh_keygen() {
    generate_and_check(&[], ("256", "ED25519"));
}

#[test]
fn generate_rsa_is_3072_bits_by_default() {
    generate_and_check(&["--type", "rsa"], ("3072", "RSA"));
}

#[test]
fn generate_rsa_4096_is_read_by_ssh_keygen() {
    let args = ["--type", "rsa", "--bits", "4096"];
    generate_and_check(&args, ("4096", "RSA"));
}

#[test]
fn generate_ecdsa_is_p256_by_default() {
    generate_and_check(&["--type", "ecdsa"], ("256", "ECDSA"));
}

#[test]
fn generate_ecdsa_384_is_read_by_ssh_keygen() {
    let args = ["--type", "ecdsa", "--bits", "384"];
    generate_and_check(&args, ("384", "ECDSA"));
}

#[test]
fn passphrase_encrypts_the_key_and_is_never_printed() {
    let dir = tempdir();
    let secret = "correct horse battery staple";
    let pass_file = dir.path().join("pass");
    fs::write(&pass_file, format!("{secret}\nsecond line ignored\n")).expect("write");
    fs::set_permissions(&pass_file, fs::Permissions::from_mode(0o600)).expect("chmod");
    let private = dir.path().join("key");
    let run = Test::new()
        .args(["keys", "generate", "-o", s(&private)])
        .args(["--passphrase-file", s(&pass_file)])
        .success();
    for output in [run.stdout(), run.stderr()] {
        assert!(!output.contains(secret), "passphrase printed: {output}");
    }
    let pub_text = fs::read_to_string(with_pub(&private)).expect("read .pub");

    let derived = tool("ssh-keygen", &["-y", "-P", secret, "-f", s(&private)]);
    assert_eq!(key_part(&derived), key_part(&pub_text));
    let wrong = Command::new("ssh-keygen")
        .args(["-y", "-P", "wrong", "-f", s(&private)])
        .output()
        .expect("run ssh-keygen");
    assert!(!wrong.status.success(), "a wrong passphrase was accepted");
    let empty = Command::new("ssh-keygen")
        .args(["-y", "-P", "", "-f", s(&private)])
        .output()
        .expect("run ssh-keygen");
    assert!(!empty.status.success(), "the key is not encrypted");

    // Showing an encrypted key needs no passphrase (stdin is closed), with or without .pub.
    assert_eq!(show(&private), ssh_keygen_l(&private));
    fs::remove_file(with_pub(&private)).expect("rm .pub");
    let shown = show(&private);
    assert!(shown.contains(" no comment (ED25519)"), "{shown}");
    assert_eq!(shown, ssh_keygen_l(&private));
}

#[test]
fn show_matches_ssh_keygen_for_several_keys_in_authorized_keys() {
    let dir = tempdir();
    let d = dir.path();
    ssh_keygen_new(&d.join("ed"), "ed25519", "ed@host");
    ssh_keygen_new(&d.join("ec"), "ecdsa", "ec key");
    ssh_keygen_rsa_2048(&d.join("rsa"));
    Test::new()
        .args([
            "keys",
            "generate",
            "--comment",
            "ours",
            "-o",
            s(&d.join("ours")),
        ])
        .success();
    let line = |name: &str| fs::read_to_string(d.join(format!("{name}.pub"))).expect("read");
    let (ed, ec, rsa, ours) = (line("ed"), line("ec"), line("rsa"), line("ours"));
    let ec_fields: Vec<&str> = ec.split_whitespace().collect();
    let text = [
        "# keys allowed to reach the system VMs".to_string(),
        String::new(),
        key_part(&ed),
        format!("{}\t{}\tec key  ", ec_fields[0], ec_fields[1]),
        format!(r#"from="10.0.0.0/8,192.168.1.1",no-pty {}"#, rsa.trim_end()),
        format!(r#"no-pty,command="echo \"hi there\"" {}"#, key_part(&ed)),
        "this line is not a key".to_string(),
        format!("host1,10.0.0.1 {}", key_part(&ours)),
        format!("   {} with spaces", ours.trim_end()),
        format!("{}\r", ec.trim_end()),
    ]
    .join("\n")
        + "\n";
    let file = d.join("authorized_keys");
    fs::write(&file, text).expect("write");

    let expected = ssh_keygen_l(&file);
    assert_eq!(expected.lines().count(), 7, "{expected}");
    let run = Test::new().args(["keys", "show", s(&file)]).success();
    assert_eq!(run.stdout(), expected);
    run.stderr_contains("line 7: no public key; skipped");
}

fn ssh_keygen_rsa_2048(path: &Path) {
    tool(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "rsa",
            "-b",
            "2048",
            "-N",
            "",
            "-C",
            "rsa@host",
            "-f",
            s(path),
        ],
    );
}

#[test]
fn show_private_key_takes_the_comment_where_ssh_keygen_does() {
    let dir = tempdir();
    let key = dir.path().join("k");
    ssh_keygen_new(&key, "ecdsa", "in the private key");
    let public = with_pub(&key);
    let pub_line = fs::read_to_string(&public).expect("read");

    // The .pub beside it wins, comment and all.
    fs::write(&public, key_part(&pub_line) + " from the pub file\n").expect("write");
    let shown = show(&key);
    assert!(shown.contains(" from the pub file (ECDSA)"), "{shown}");
    assert_eq!(shown, ssh_keygen_l(&key));

    // A .pub without a comment: ssh-keygen shows that file's name.
    fs::write(&public, key_part(&pub_line) + "\n").expect("write");
    let shown = show(&key);
    assert!(
        shown.contains(&format!(" {} (ECDSA)", s(&public))),
        "{shown}"
    );
    assert_eq!(shown, ssh_keygen_l(&key));

    // No .pub: the public half and comment stored in the private key.
    fs::remove_file(&public).expect("rm");
    let shown = show(&key);
    assert!(shown.contains(" in the private key (ECDSA)"), "{shown}");
    assert_eq!(shown, ssh_keygen_l(&key));

    // Too open a mode: ssh-keygen ignores the private part, so there is no comment.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = Test::new().args(["keys", "show", s(&key)]).success();
    assert!(
        run.stdout().contains(" no comment (ECDSA)"),
        "{}",
        run.stdout()
    );
    let ours = run.stdout();
    let theirs = Command::new("ssh-keygen")
        .args(["-l", "-f", s(&key)])
        .output()
        .expect("run ssh-keygen");
    assert_eq!(ours, String::from_utf8_lossy(&theirs.stdout));
    run.stderr_contains("too open");
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempdir();
    let private = dir.path().join("key");
    let public = with_pub(&private);
    Test::new()
        .args(["keys", "generate", "-o", s(&private)])
        .success();
    let (old_private, old_public) = (fs::read(&private).unwrap(), fs::read(&public).unwrap());

    Test::new()
        .args(["keys", "generate", "--type", "ecdsa", "-o", s(&private)])
        .fails(2)
        .one_error_line()
        .stderr_contains(&format!("{} already exists; use --force", s(&private)));
    // Only the .pub in the way is refused just the same.
    fs::rename(&private, dir.path().join("moved")).expect("mv");
    Test::new()
        .args(["keys", "generate", "-o", s(&private)])
        .fails(2)
        .one_error_line()
        .stderr_contains(&format!("{} already exists", s(&public)));
    fs::rename(dir.path().join("moved"), &private).expect("mv");
    assert_eq!(fs::read(&private).unwrap(), old_private);
    assert_eq!(fs::read(&public).unwrap(), old_public);
    assert_eq!(listing(dir.path()), ["key", "key.pub"]);

    Test::new()
        .args([
            "keys",
            "generate",
            "--type",
            "ecdsa",
            "--force",
            "-o",
            s(&private),
        ])
        .success();
    assert_ne!(fs::read(&private).unwrap(), old_private);
    assert_eq!((mode(&private), mode(&public)), (0o600, 0o644));
    let derived = tool("ssh-keygen", &["-y", "-f", s(&private)]);
    let pub_text = fs::read_to_string(&public).unwrap();
    assert!(pub_text.starts_with("ecdsa-sha2-nistp256 "), "{pub_text}");
    assert_eq!(key_part(&derived), key_part(&pub_text));
    assert_eq!(listing(dir.path()), ["key", "key.pub"]);
}

#[test]
fn a_failed_public_key_write_leaves_no_private_key_behind() {
    let dir = tempdir();
    let private = dir.path().join("key");
    fs::create_dir(with_pub(&private)).expect("mkdir key.pub");
    Test::new()
        .args(["keys", "generate", "--force", "-o", s(&private)])
        .fails(2)
        .one_error_line()
        .stderr_contains(&format!("cannot write {}", s(&with_pub(&private))));
    assert_eq!(listing(dir.path()), ["key.pub"]);
}

#[test]
fn missing_directory_is_named_and_nothing_is_written() {
    let dir = tempdir();
    let target = dir.path().join("no-such-dir").join("key");
    Test::new()
        .args(["keys", "generate", "-o", s(&target)])
        .fails(2)
        .one_error_line()
        .stderr_contains(&format!(
            "directory {} does not exist",
            s(&dir.path().join("no-such-dir"))
        ));
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn bad_passphrase_files_are_refused_before_anything_is_written() {
    let dir = tempdir();
    let target = dir.path().join("key");
    let empty = dir.path().join("empty");
    fs::write(&empty, "\n").expect("write");
    let missing = dir.path().join("missing");
    for (file, message) in [
        (&empty, "the passphrase (its first line) is empty"),
        (&missing, "cannot read"),
    ] {
        Test::new()
            .args(["keys", "generate", "-o", s(&target)])
            .args(["--passphrase-file", s(file)])
            .fails(2)
            .one_error_line()
            .stderr_contains(s(file))
            .stderr_contains(message);
        assert_eq!(listing(dir.path()), ["empty"]);
    }
}

#[test]
fn unsupported_sizes_are_refused() {
    let dir = tempdir();
    let target = dir.path().join("key");
    for args in [
        ["--type", "rsa", "--bits", "1024"],
        ["--type", "rsa", "--bits", "2000"],
        ["--type", "ecdsa", "--bits", "521"],
        ["--type", "ed25519", "--bits", "4096"],
    ] {
        Test::new()
            .args(["keys", "generate", "-o", s(&target)])
            .args(args)
            .fails(2)
            .one_error_line()
            .stderr_contains("bits; choose");
        assert!(listing(dir.path()).is_empty());
    }
}

#[test]
fn show_refuses_files_without_a_key() {
    let dir = tempdir();
    let bad = dir.path().join("bad.pub");
    fs::write(&bad, "ssh-ed25519 not!base64 me@host\n").expect("write");
    let missing = dir.path().join("missing.pub");
    for file in [&bad, &missing] {
        let theirs = Command::new("ssh-keygen")
            .args(["-l", "-f", s(file)])
            .output()
            .expect("run ssh-keygen");
        assert!(!theirs.status.success(), "ssh-keygen read {}", s(file));
        Test::new()
            .args(["keys", "show", s(file)])
            .fails(2)
            .one_error_line()
            .stderr_contains(s(file));
    }
    assert_eq!(listing(dir.path()), ["bad.pub"]);
}

#[test]
fn a_private_key_is_refused_where_a_public_key_is_needed() {
    let dir = tempdir();
    let private = dir.path().join("key");
    ssh_keygen_new(&private, "ed25519", "me@host");
    let err = systemvm::keys::read_public_keys(&private).unwrap_err();
    assert!(
        matches!(err, systemvm::keys::KeyError::PrivateKey { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(s(&private)) && message.contains(".pub"),
        "{message}"
    );
    let body = fs::read_to_string(&private).unwrap();
    let secret_line = body.lines().nth(1).unwrap();
    assert!(!message.contains(secret_line), "key material in: {message}");

    let keys = systemvm::keys::read_public_keys(&with_pub(&private)).expect("read .pub");
    let line = systemvm::keys::info(&keys[0]).ssh_keygen_line() + "\n";
    assert_eq!(line, ssh_keygen_l(&with_pub(&private)));
}
