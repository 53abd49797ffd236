//! `systemvm package self`: the tool's own .deb, checked with dpkg-deb, installed with
//! `dpkg --root` into a temp root, its binary run from there; completions parsed by bash,
//! zsh and fish, the unit by `systemd-analyze verify`, the man pages compared with `man/`.

use crate::common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The test binary without debug info (what a release package ships; 10x smaller to pack).
fn stripped(dir: &Path) -> PathBuf {
    let out = dir.join("systemvm");
    tool(
        "strip",
        &["--strip-debug", "-o", out.to_str().unwrap(), BIN],
    );
    out
}

fn package(binary: &Path, out: &Path) {
    Test::new()
        .args(["package", "self", "--binary"])
        .arg(binary)
        .arg("-o")
        .arg(out)
        .success();
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

const FILES: &[&str] = &[
    "usr/bin/systemvm",
    "usr/share/man/man1/systemvm.1.gz",
    "usr/share/man/man1/systemvm-startup.1.gz",
    "usr/share/man/man1/systemvm-doctor.1.gz",
    "usr/share/man/man1/systemvm-keys-generate.1.gz",
    "usr/share/bash-completion/completions/systemvm",
    "usr/share/zsh/vendor-completions/_systemvm",
    "usr/share/fish/vendor_completions.d/systemvm.fish",
    "lib/systemd/system/systemvm-startup.service",
    "usr/share/doc/systemvm/examples/config.toml",
    "usr/share/doc/systemvm/examples/hosts.toml",
    "usr/share/man/man5/systemvm-inventory.5.gz",
    "usr/share/systemvm/agent-payload/agent/_run.sh",
    "usr/share/systemvm/agent-payload/scripts/opt/cloud/bin/systemvm-patch",
    "usr/share/systemvm/agent-payload/patch-sysvms.sh",
    "usr/share/doc/systemvm/copyright",
];

#[test]
fn the_package_holds_the_tool_and_installs() {
    let dir = tempdir();
    let binary = stripped(dir.path());
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    package(&binary, &out_dir);
    let debs = listing(&out_dir);
    assert_eq!(debs.len(), 1, "{debs:?}");
    assert!(
        debs[0].starts_with("systemvm_") && debs[0].ends_with(".deb"),
        "{debs:?}"
    );
    let deb = out_dir.join(&debs[0]);
    let d = deb.to_str().unwrap();

    let info = tool("dpkg-deb", &["--info", d]);
    for field in [
        "Package: systemvm\n",
        "Architecture: ",
        "Installed-Size: ",
        "Section: admin",
    ] {
        assert!(info.contains(field), "{field} missing:\n{info}");
    }
    let depends = tool("dpkg-deb", &["--field", d, "Depends"]);
    assert!(
        depends.contains("xorriso") && depends.contains("libssl3"),
        "{depends}"
    );
    let version = tool("dpkg-deb", &["--field", d, "Version"]);
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    let arch = tool("dpkg", &["--print-architecture"]);
    assert_eq!(tool("dpkg-deb", &["--field", d, "Architecture"]), arch);

    let contents = tool("dpkg-deb", &["--contents", d]);
    let paths: Vec<&str> = contents
        .lines()
        .map(|l| {
            l.split_whitespace()
                .last()
                .unwrap()
                .trim_start_matches("./")
        })
        .collect();
    for f in FILES {
        assert!(paths.contains(f), "{f} not in the package:\n{contents}");
    }
    assert!(
        contents.lines().all(|l| l.contains("root/root")),
        "{contents}"
    );
    // The Description's lines fit 80 columns (dpkg and apt show them as they are).
    let description = tool("dpkg-deb", &["--field", d, "Description"]);
    for line in description.lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
    }
    let bin_line = contents
        .lines()
        .find(|l| l.ends_with("usr/bin/systemvm"))
        .unwrap();
    assert!(bin_line.starts_with("-rwxr-xr-x"), "{bin_line}");

    // Reproducible: packing the same binary again gives the same bytes.
    let again = dir.path().join("again.deb");
    package(&binary, &again);
    assert_eq!(fs::read(&deb).unwrap(), fs::read(&again).unwrap());

    // Install into an empty root (its dependencies are not in that root's database).
    let root = dir.path().join("root");
    for sub in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let status = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-not-root",
            "--force-depends",
            "-i",
            d,
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "dpkg -i: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let installed = root.join("usr/bin/systemvm");
    let v = tool(installed.to_str().unwrap(), &["--version"]);
    assert_eq!(v.trim(), format!("systemvm {}", env!("CARGO_PKG_VERSION")));
    for f in FILES {
        assert!(root.join(f).exists(), "{f} not installed");
    }

    // The installed payload is the bundled one, whole: the same ISO from either.
    let from_repo = dir.path().join("repo.iso");
    let from_package = dir.path().join("package.iso");
    for (payload, out) in [
        (bundled_payload(), &from_repo),
        (root.join("usr/share/systemvm/agent-payload"), &from_package),
    ] {
        Test::new()
            .args(["build", "--version", "4.16.0.0", "--payload"])
            .arg(payload)
            .arg("-o")
            .arg(out)
            .success();
    }
    assert_eq!(
        fs::read(&from_repo).unwrap(),
        fs::read(&from_package).unwrap()
    );
    // The inventory page renders without a warning (groff, not our roff).
    let page = root.join("usr/share/man/man5/systemvm-inventory.5.gz");
    let roff = tool("zcat", &[page.to_str().unwrap()]);
    let lint = Command::new("sh")
        .args(["-c", "groff -man -Tutf8 -ww -z 2>&1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(roff.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        lint.status.success() && lint.stdout.is_empty(),
        "groff: {}",
        String::from_utf8_lossy(&lint.stdout)
    );

    // The man pages are the checked-in ones (zcat, not our gzip reader).
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for page in ["systemvm", "systemvm-startup", "systemvm-package-self"] {
        let gz = root.join(format!("usr/share/man/man1/{page}.1.gz"));
        let text = tool("zcat", &[gz.to_str().unwrap()]);
        assert_eq!(
            text,
            fs::read_to_string(man.join(format!("{page}.1"))).unwrap(),
            "{page}"
        );
    }

    // Completions parse in their shells.
    let shells = [
        ("bash", "usr/share/bash-completion/completions/systemvm"),
        ("zsh", "usr/share/zsh/vendor-completions/_systemvm"),
        ("fish", "usr/share/fish/vendor_completions.d/systemvm.fish"),
    ];
    for (shell, file) in shells {
        if !has(shell) {
            println!("skipped: {shell} is not installed (setup.sh installs it)");
            continue;
        }
        tool(shell, &["-n", root.join(file).to_str().unwrap()]);
    }
    let bash = fs::read_to_string(root.join(shells[0].1)).unwrap();
    assert!(
        bash.contains("startup") && bash.contains("doctor"),
        "bash completion lacks commands"
    );

    // systemd accepts the unit, with ExecStart at the installed binary.
    if !has("systemd-analyze") {
        println!("skipped: systemd-analyze is not installed");
        return;
    }
    let unit =
        fs::read_to_string(root.join("lib/systemd/system/systemvm-startup.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/systemvm startup"),
        "{unit}"
    );
    let unit_dir = dir.path().join("unit");
    fs::create_dir(&unit_dir).unwrap();
    let copy = unit_dir.join("systemvm-startup.service");
    fs::write(
        &copy,
        unit.replace("/usr/bin/systemvm", installed.to_str().unwrap()),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify"])
        .arg(&copy)
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // systemd's own rating of the hardening (0 safest, 10 none): "OK" is below 5.
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&copy)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    let level: f64 = report
        .lines()
        .find_map(|l| {
            l.split("exposure level for systemvm-startup.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(level < 5.0, "the unit's hardening rates {level}:\n{report}");
}

#[test]
fn bad_package_self_input_changes_nothing() {
    let dir = tempdir();
    Test::new()
        .args(["package", "self", "--architecture", "AMD 64", "-o"])
        .arg(dir.path())
        .fails(2)
        .one_error_line()
        .stderr_contains("not a Debian architecture");
    Test::new()
        .args(["package", "self", "--binary"])
        .arg(dir.path().join("absent"))
        .arg("-o")
        .arg(dir.path())
        .fails(2)
        .one_error_line()
        .stderr_contains("no such binary");
    // Not an executable, or one for another architecture: refused before anything is written.
    Test::new()
        .args(["package", "self", "--binary", "/etc/passwd", "-o"])
        .arg(dir.path())
        .fails(2)
        .one_error_line()
        .stderr_contains("/etc/passwd is not an ELF executable");
    // A FIFO is refused at once, never waited on for a writer.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    Test::new()
        .args(["package", "self", "--binary"])
        .arg(&fifo)
        .arg("-o")
        .arg(dir.path().join("out"))
        .output_within(std::time::Duration::from_secs(30))
        .run
        .code(2)
        .one_error_line()
        .stderr_contains("fifo is not a regular file");
    std::fs::remove_file(&fifo).unwrap();
    let other = if cfg!(target_arch = "aarch64") {
        "amd64"
    } else {
        "arm64"
    };
    Test::new()
        .args([
            "package",
            "self",
            "--architecture",
            other,
            "--binary",
            BIN,
            "-o",
        ])
        .arg(dir.path())
        .fails(2)
        .one_error_line()
        .stderr_contains(&format!(
            "is built for {}",
            std::env::consts::ARCH.replace('_', "-")
        ));
    assert!(listing(dir.path()).is_empty());
}
