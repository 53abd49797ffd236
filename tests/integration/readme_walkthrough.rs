//! The README's "On a management server" block, run line by line as its reader would: the
//! package from `package self`, installed with the block's own `apt-get install` into a
//! throwaway copy of this machine (a copy-on-write overlay of `/` in a mount namespace,
//! entered with chroot), against two SSH test hosts, a XenServer and a KVM host.
//!
//! Every line of the block runs verbatim through `sh -c`, except three that cannot run here,
//! which get the nearest real equivalent: building the package (the binary under test is
//! packed instead), `systemctl start` (no systemd runs here, so the installed unit's own
//! `ExecStart` runs) and `journalctl` (that run's captured output is read instead). The
//! prose steps between lines are done by the test: the inventory is edited to name the test
//! hosts, and the generated public key is put in their `authorized_keys`.

use crate::common;

use common::hosts::{HostOptions, TestHost};
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const MS_ISO: &str = "/usr/share/cloudstack-common/vms/systemvm.iso";
const WORKDIR: &str = "/root/ms";
/// How long the namespace's keeper lives at most, should the test die without stopping it.
const KEEPER_SECS: &str = "900";

/// The README's shell block under `## On a management server`.
fn management_server_block() -> Vec<String> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split_once("\n## On a management server\n")
        .expect("README has an 'On a management server' section")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("the section opens with a sh block")
        .0;
    block.lines().map(str::to_string).collect()
}

/// A copy-on-write copy of this machine's `/`, alive while a keeper process holds its mount
/// namespace; commands enter it with nsenter and chroot.
struct Root {
    dir: tempfile::TempDir,
    keeper: Child,
}

impl Root {
    fn new() -> Option<Root> {
        let dir = tempdir();
        for sub in ["upper", "work", "merged"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let d = dir.path().display();
        let script = format!(
            "set -e; mount -t overlay overlay -o lowerdir=/,upperdir={d}/upper,workdir={d}/work {d}/merged; \
             for m in proc sys dev; do mount --rbind /$m {d}/merged/$m; done; \
             mount -t tmpfs tmpfs {d}/merged/run; mount -t tmpfs tmpfs {d}/merged/tmp; \
             echo ready; exec sleep {KEEPER_SECS}"
        );
        let mut keeper = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut ready = String::new();
        use std::io::Read;
        let mut out = keeper.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            ready.push(byte[0] as char);
        }
        if ready != "ready" {
            let mut err = String::new();
            let _ = keeper.stderr.take().unwrap().read_to_string(&mut err);
            let _ = keeper.wait();
            eprintln!("skipped: no overlay of / in a mount namespace here ({err})");
            return None;
        }
        Some(Root { dir, keeper })
    }

    /// A path inside the copy, as the test (outside the namespace) reaches it.
    fn path(&self, abs: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root{}/merged{abs}",
            self.keeper.id(),
            self.dir.path().display()
        ))
    }

    /// `line` through `sh -c` in the copy, in [`WORKDIR`], with a login's environment.
    fn sh(&self, line: &str) -> Output {
        let merged = self.dir.path().join("merged");
        Command::new("nsenter")
            .arg(format!("--mount=/proc/{}/ns/mnt", self.keeper.id()))
            .arg("chroot")
            .arg(&merged)
            .args(["sh", "-c", &format!("cd {WORKDIR} && {line}")])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = self.keeper.kill();
        let _ = self.keeper.wait();
    }
}

/// What the reader is told to do by hand after a line, done here.
fn after(line: &str, root: &Root, hosts: &[TestHost]) {
    if line.starts_with("cp /usr/share/doc/systemvm/examples/hosts.toml") {
        // "then edit both": the example's [defaults] as they are, our two hosts as the hosts.
        let path = root.path("/etc/systemvm/hosts.toml");
        let example = fs::read_to_string(&path).unwrap();
        let mut text = example
            .split_once("\n[[host]]")
            .expect("the example names hosts")
            .0
            .to_string();
        for (host, kind) in hosts.iter().zip(["xenserver", "kvm"]) {
            text.push_str(&format!(
                "\n[[host]]\nname = \"{}\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"{kind}\"\n",
                host.name, host.port
            ));
        }
        fs::write(&path, text).unwrap();
    }
    if line.starts_with("systemvm keys generate") {
        let public = fs::read(root.path("/etc/systemvm/id_ed25519.pub")).unwrap();
        for host in hosts {
            fs::write(host.dir.join("authorized_keys"), &public).unwrap();
        }
    }
}

/// The nearest real equivalent of a line that cannot run here, if `line` is one.
fn substitute(line: &str, root: &Root, journal: &str) -> Option<String> {
    if line.starts_with("cargo build") {
        return Some(String::from("true"));
    }
    if line.starts_with("systemctl start systemvm-startup") {
        let unit = fs::read_to_string(root.path("/lib/systemd/system/systemvm-startup.service"))
            .expect("the package installed the unit");
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("the unit has an ExecStart");
        return Some(format!("{exec} 2>{journal}"));
    }
    if line.starts_with("journalctl -u systemvm-startup") {
        return Some(format!("cat {journal}"));
    }
    None
}

/// What the reader sees after each line, checked.
fn check(line: &str, out: &Output, root: &Root, hosts: &[TestHost], iso: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`{line}` failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    if line.starts_with("apt-get install") {
        assert!(root.path("/usr/bin/systemvm").is_file(), "{stdout}");
    }
    if line.starts_with("systemvm keys generate") {
        let key = root.path("/etc/systemvm/id_ed25519");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    if line.starts_with("systemvm inject") {
        let public = fs::read_to_string(root.path("/etc/systemvm/id_ed25519.pub")).unwrap();
        let keys = bsdtar_member(&root.path(MS_ISO), "authorized_keys");
        assert!(String::from_utf8_lossy(&keys).contains(public.trim()));
    }
    if line.starts_with("systemvm propagate") {
        let known = fs::read_to_string(root.path("/etc/systemvm/known_hosts")).unwrap();
        assert_eq!(known.lines().count(), hosts.len(), "{known}");
        let ours = sha256(&root.path(MS_ISO));
        assert_ne!(ours, sha256(iso), "the ISO was keyed in place");
        for (host, path) in hosts.iter().zip([
            "/opt/xensource/packages/iso/systemvm.iso",
            "/usr/share/cloudstack-common/vms/systemvm.iso",
        ]) {
            assert_eq!(sha256(&host.path(path)), ours, "{}: {stderr}", host.name);
        }
    }
    if line.starts_with("systemctl enable") {
        let wants = "/etc/systemd/system/cloudstack-management.service.wants";
        // An absolute link, to be read inside the copy: read, not followed.
        let link = fs::read_link(root.path(&format!("{wants}/systemvm-startup.service")));
        assert_eq!(
            link.unwrap(),
            Path::new("/lib/systemd/system/systemvm-startup.service")
        );
    }
    if line.starts_with("journalctl") {
        // The start hook found everything current: the ISO keyed, both hosts up to date.
        for host in hosts {
            assert!(
                stdout
                    .lines()
                    .any(|l| l.contains(&host.name) && l.contains("current")),
                "{}:\n{stdout}",
                host.name
            );
        }
    }
}

#[test]
fn the_readme_management_server_section_works_word_for_word_from_the_package() {
    let Some(root) = Root::new() else { return };
    let dir = tempdir();
    let iso = dir.path().join("systemvm.iso");
    build_iso(&bundled_payload(), &iso, &[]);
    let hosts: Vec<TestHost> = ["xen-01", "kvm-01"]
        .iter()
        .map(|name| TestHost::start(dir.path(), name, HostOptions::default()))
        .collect();

    // The management server's package left its ISO; the package is in the reader's directory.
    fs::create_dir_all(root.path("/usr/share/cloudstack-common/vms")).unwrap();
    fs::copy(&iso, root.path(MS_ISO)).unwrap();
    let workdir = root.path(WORKDIR);
    fs::create_dir_all(&workdir).unwrap();
    let binary = dir.path().join("systemvm");
    tool(
        "strip",
        &["--strip-debug", "-o", binary.to_str().unwrap(), BIN],
    );
    Test::new()
        .args(["package", "self", "--binary"])
        .arg(&binary)
        .arg("-o")
        .arg(&workdir)
        .success();

    let journal = "/root/startup.log";
    let block = management_server_block();
    assert!(block.len() >= 10, "{block:?}");
    for line in &block {
        let command = substitute(line, &root, journal).unwrap_or_else(|| line.clone());
        let out = root.sh(&command);
        check(line, &out, &root, &hosts, &iso);
        after(line, &root, &hosts);
    }
}
