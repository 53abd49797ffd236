//! `systemvm inject`: keys land where sshd and third-party readers see them, only the key
//! area changes, repeated runs touch nothing, stock ISOs are remastered, and bad input
//! leaves the ISO exactly as it was.

use crate::common;

use common::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Keyed {
    dir: tempfile::TempDir,
    iso: PathBuf,
}

fn built(extra: &[&str]) -> Keyed {
    let dir = tempdir();
    let payload = small_payload(dir.path());
    let iso = dir.path().join("systemvm.iso");
    build_iso(&payload, &iso, extra);
    Keyed { dir, iso }
}

fn inject(iso: &Path, keys: &[&Path], extra: &[&str]) -> Run {
    let mut t = Test::new().arg("inject").arg(iso);
    for k in keys {
        t = t.arg("--key").arg(k);
    }
    t.args(extra.iter().copied()).output()
}

fn authorized_keys(iso: &Path) -> String {
    String::from_utf8(bsdtar_member(iso, "authorized_keys")).unwrap()
}

/// The public key lines of a .pub file.
fn key_line(public: &Path) -> String {
    fs::read_to_string(public).unwrap().trim_end().to_string()
}

/// Byte ranges at which two equally long files differ.
fn differing_bytes(a: &[u8], b: &[u8]) -> (usize, usize, usize) {
    assert_eq!(a.len(), b.len());
    let diffs: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    (
        diffs.len(),
        diffs.first().copied().unwrap_or(0),
        diffs.last().copied().unwrap_or(0),
    )
}

#[test]
fn inject_rewrites_only_the_key_area() {
    let t = built(&[]);
    // Before any key: an empty authorized_keys, whatever reads it.
    assert_eq!(authorized_keys(&t.iso), "");
    let empty = tool(
        "isoinfo",
        &[
            "-J",
            "-i",
            t.iso.to_str().unwrap(),
            "-x",
            "/authorized_keys",
        ],
    );
    assert_eq!(empty, "");
    let (_, public) = ssh_keygen(t.dir.path(), "mgmt");
    let before = fs::read(&t.iso).unwrap();
    inject(&t.iso, &[&public], &[])
        .code(0)
        .stderr_contains("key area rewritten");
    let after = fs::read(&t.iso).unwrap();

    // The area's bytes changed, and besides them only the two directory records' lengths
    // (primary and Joliet, 8 bytes each), which lie before the data.
    let (count, _, last) = differing_bytes(&before, &after);
    let area_start = last.saturating_sub(16384);
    let outside: Vec<usize> = (0..area_start).filter(|&i| before[i] != after[i]).collect();
    assert!(
        count > 0 && outside.len() <= 16,
        "outside the area: {outside:?}"
    );
    // Readers see exactly the key, as CloudStack 4.11-4.15's injectkeys.sh compares it.
    let keys = authorized_keys(&t.iso);
    assert_eq!(keys, fs::read_to_string(&public).unwrap());
    let extracted = t.dir.path().join("authorized_keys");
    fs::write(&extracted, &keys).unwrap();
    let diff = Command::new("diff")
        .arg("-q")
        .arg(&extracted)
        .arg(&public)
        .status();
    assert!(
        diff.unwrap().success(),
        "diff -q against the .pub file failed"
    );
    for tree in ["-R", "-J"] {
        let seen = tool(
            "isoinfo",
            &[
                tree,
                "-i",
                t.iso.to_str().unwrap(),
                "-x",
                "/authorized_keys",
            ],
        );
        assert_eq!(seen, keys, "isoinfo {tree}");
    }
    // The other members read back unchanged through a third-party reader.
    let listing = tool("isoinfo", &["-R", "-l", "-i", t.iso.to_str().unwrap()]);
    assert!(listing.contains("agent.zip"), "{listing}");
    // And the Joliet view shows the same key (pycdlib reads the Joliet record).
    let joliet = Command::new("/usr/bin/python3")
        .args(["-c", "import pycdlib,sys,io\ni=pycdlib.PyCdlib();i.open(sys.argv[1])\nb=io.BytesIO();i.get_file_from_iso_fp(b,joliet_path='/authorized_keys');sys.stdout.write(b.getvalue().decode())"])
        .arg(&t.iso)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&joliet.stdout), keys);
}

#[test]
fn same_keys_again_touch_nothing() {
    let t = built(&[]);
    let (_, public) = ssh_keygen(t.dir.path(), "mgmt");
    inject(&t.iso, &[&public], &[]).code(0);
    let meta = fs::metadata(&t.iso).unwrap();
    let manifest = fs::read(t.dir.path().join("systemvm.iso.manifest.json")).unwrap();
    let listing_before = listing(t.dir.path());
    inject(&t.iso, &[&public], &[])
        .code(0)
        .stderr_contains("unchanged");
    let again = fs::metadata(&t.iso).unwrap();
    assert_eq!(
        (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        (again.ino(), again.mtime(), again.mtime_nsec())
    );
    assert_eq!(
        fs::read(t.dir.path().join("systemvm.iso.manifest.json")).unwrap(),
        manifest
    );
    assert_eq!(listing(t.dir.path()), listing_before);
}

#[test]
fn default_replaces_the_file_and_in_place_keeps_the_inode() {
    let t = built(&[]);
    let (_, a) = ssh_keygen(t.dir.path(), "a");
    let (_, b) = ssh_keygen(t.dir.path(), "b");
    let ino = fs::metadata(&t.iso).unwrap().ino();
    inject(&t.iso, &[&a], &[]).code(0);
    let replaced = fs::metadata(&t.iso).unwrap().ino();
    assert_ne!(
        ino, replaced,
        "the default must rename a new file into place"
    );
    inject(&t.iso, &[&b], &["--in-place"]).code(0);
    assert_eq!(fs::metadata(&t.iso).unwrap().ino(), replaced);
    let keys = authorized_keys(&t.iso);
    assert!(
        keys.starts_with(&key_line(&b)) && !keys.contains(&key_line(&a)),
        "{keys}"
    );
}

#[test]
fn several_keys_rotate_and_the_manifest_follows() {
    let t = built(&[]);
    let (_, old) = ssh_keygen(t.dir.path(), "old");
    let (_, new) = ssh_keygen(t.dir.path(), "new");
    inject(&t.iso, &[&old, &new], &[]).code(0);
    let keys = authorized_keys(&t.iso);
    assert!(
        keys.starts_with(&format!("{}\n{}\n", key_line(&old), key_line(&new))),
        "{keys}"
    );

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(t.dir.path().join("systemvm.iso.manifest.json")).unwrap())
            .unwrap();
    let fingerprints: Vec<&str> = manifest["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["fingerprint"].as_str().unwrap())
        .collect();
    for (public, fp) in [&old, &new].iter().zip(&fingerprints) {
        let line = tool("ssh-keygen", &["-l", "-f", public.to_str().unwrap()]);
        assert_eq!(line.split_whitespace().nth(1), Some(*fp));
    }
    assert!(
        manifest["iso"].is_null(),
        "the whole-ISO checksum is stale after injecting"
    );
    let area = manifest["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "authorized_keys")
        .unwrap()
        .clone();
    let extracted = t.dir.path().join("ak");
    fs::write(&extracted, bsdtar_member(&t.iso, "authorized_keys")).unwrap();
    assert_eq!(area["sha256"], sha256(&extracted));

    // Rotation done: only the new key remains.
    inject(&t.iso, &[&new], &["--in-place"]).code(0);
    let keys = authorized_keys(&t.iso);
    assert!(keys.starts_with(&key_line(&new)) && !keys.contains(&key_line(&old)));
}

#[test]
fn output_writes_elsewhere_and_leaves_the_iso() {
    let t = built(&[]);
    let (_, public) = ssh_keygen(t.dir.path(), "k");
    let before = fs::read(&t.iso).unwrap();
    let out = t.dir.path().join("keyed.iso");
    inject(&t.iso, &[&public], &["-o", out.to_str().unwrap()]).code(0);
    assert_eq!(fs::read(&t.iso).unwrap(), before);
    assert!(authorized_keys(&out).starts_with(&key_line(&public)));
    assert!(t.dir.path().join("keyed.iso.manifest.json").exists());
}

#[test]
fn stock_iso_is_remastered_once_then_patched_in_place() {
    let dir = tempdir();
    let files = dir.path().join("stock");
    fs::create_dir(&files).unwrap();
    fs::write(files.join("agent.zip"), vec![7u8; 300_000]).unwrap();
    fs::write(files.join("cloud-scripts.tgz"), b"not really a tgz").unwrap();
    let (_, old) = ssh_keygen(dir.path(), "old");
    fs::copy(&old, files.join("authorized_keys")).unwrap();
    let iso = dir.path().join("systemvm.iso");
    // What CloudStack's Maven build and injectkeys.sh run.
    tool(
        "genisoimage",
        &[
            "-quiet",
            "-r",
            "-o",
            iso.to_str().unwrap(),
            files.to_str().unwrap(),
        ],
    );

    let report = Test::new()
        .args(["inspect", "--output-format", "json"])
        .arg(&iso)
        .success()
        .json();
    assert!(report["key_area"].is_null());
    assert_eq!(report["layout"], "cloudstack");
    assert_eq!(
        report["keys"].as_array().unwrap().len(),
        1,
        "a stock authorized_keys is still read"
    );

    let (_, new) = ssh_keygen(dir.path(), "new");
    inject(&iso, &[&new], &[])
        .code(0)
        .stderr_contains("remastered");
    assert!(authorized_keys(&iso).starts_with(&key_line(&new)));
    assert_eq!(bsdtar_member(&iso, "agent.zip"), vec![7u8; 300_000]);
    assert_eq!(
        bsdtar_member(&iso, "cloud-scripts.tgz"),
        b"not really a tgz"
    );
    assert_eq!(
        listing(dir.path()),
        ["new", "new.pub", "old", "old.pub", "stock", "systemvm.iso"]
    );

    let ino = fs::metadata(&iso).unwrap().ino();
    inject(&iso, &[&old], &["--in-place"])
        .code(0)
        .stderr_contains("key area rewritten");
    assert_eq!(fs::metadata(&iso).unwrap().ino(), ino);
}

/// Run a failing inject; the ISO's bytes and the directory listing must not change.
fn refused(t: &Keyed, keys: &[&Path], extra: &[&str], message: &str) {
    let before = fs::read(&t.iso).unwrap();
    let listing_before = listing(t.dir.path());
    inject(&t.iso, keys, extra)
        .code(2)
        .one_error_line()
        .stderr_contains(message);
    assert_eq!(fs::read(&t.iso).unwrap(), before, "the ISO changed");
    assert_eq!(
        listing(t.dir.path()),
        listing_before,
        "something was left behind"
    );
}

#[test]
fn bad_keys_change_nothing() {
    let t = built(&["--key-area", "512"]);
    let (private, public) = ssh_keygen(t.dir.path(), "k");
    refused(&t, &[&private], &[], "holds a private key");
    refused(&t, &[&private], &["--in-place"], "holds a private key");

    let malformed = t.dir.path().join("bad.pub");
    fs::write(&malformed, "ssh-rsa AAAA!!!! x\n").unwrap();
    refused(
        &t,
        &[&malformed],
        &[],
        "bad.pub, line 1: not an OpenSSH public key",
    );

    let empty = t.dir.path().join("empty.pub");
    fs::write(&empty, "# nothing\n").unwrap();
    refused(&t, &[&empty], &[], "holds no public key");

    refused(&t, &[&t.dir.path().join("missing.pub")], &[], "missing.pub");

    let many: Vec<PathBuf> = (0..6)
        .map(|i| ssh_keygen(t.dir.path(), &format!("m{i}")).1)
        .collect();
    let many: Vec<&Path> = many.iter().map(|p| p.as_path()).collect();
    refused(&t, &many, &[], "the key area holds 512");
    refused(&t, &many, &["--in-place"], "the key area holds 512");
    let _ = public;
}

#[test]
fn non_iso_input_changes_nothing() {
    let t = built(&[]);
    let (_, public) = ssh_keygen(t.dir.path(), "k");
    let text = t.dir.path().join("notes.iso");
    fs::write(&text, "just text\n".repeat(10_000)).unwrap();
    let before = listing(t.dir.path());
    inject(&text, &[&public], &[])
        .code(2)
        .one_error_line()
        .stderr_contains("is not an ISO 9660 image");
    assert_eq!(
        fs::read(&text).unwrap(),
        "just text\n".repeat(10_000).into_bytes()
    );
    assert_eq!(listing(t.dir.path()), before);
    Test::new()
        .arg("inspect")
        .arg(&text)
        .fails(2)
        .one_error_line()
        .stderr_contains("notes.iso is not an ISO 9660 image");
    Test::new()
        .arg("inspect")
        .arg(t.dir.path().join("absent.iso"))
        .fails(2)
        .one_error_line()
        .stderr_contains("absent.iso");
}

#[test]
fn truncated_iso_is_refused() {
    let t = built(&[]);
    let (_, public) = ssh_keygen(t.dir.path(), "k");
    let bytes = fs::read(&t.iso).unwrap();
    let cut = t.dir.path().join("cut.iso");
    // Keep the descriptors and directories, lose the data (the volume is ~70 blocks).
    fs::write(&cut, &bytes[..60 * 2048]).unwrap();
    let before = fs::read(&cut).unwrap();
    inject(&cut, &[&public], &[])
        .code(2)
        .one_error_line()
        .stderr_contains("is a damaged ISO image: truncated");
    assert_eq!(fs::read(&cut).unwrap(), before);

    // A directory record pointing past the end: move authorized_keys' extent far away.
    let image = fs::read(&t.iso).unwrap();
    let at = image
        .windows(15)
        .position(|w| w == b"AUTHORIZED_KEYS")
        .expect("ISO 9660 name")
        - 33;
    let mut hostile = image.clone();
    hostile[at + 2..at + 6].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    let bad = t.dir.path().join("hostile.iso");
    fs::write(&bad, &hostile).unwrap();
    inject(&bad, &[&public], &[])
        .code(2)
        .one_error_line()
        .stderr_contains("points past the end of the image");
    Test::new()
        .arg("inspect")
        .arg(&bad)
        .fails(2)
        .one_error_line()
        .stderr_contains("points past the end");
    assert_eq!(fs::read(&bad).unwrap(), hostile);
}
