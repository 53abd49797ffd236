//! Shared test support: a builder that runs the real `systemvm` binary and reads like a spec
//! (after just's `Test`), plus small helpers for temp trees and external tools.

pub mod bed;
pub mod hosts;
pub mod image;
pub mod net;
pub mod netns;
pub mod proxy;
pub mod qga;
pub mod schema;
pub mod smbd;
pub mod sshd;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_systemvm");

/// The repository's bundled payload.
pub fn bundled_payload() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agent-payload")
}

/// One run of the binary.
pub struct Test {
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    env_remove: Vec<String>,
    dir: Option<PathBuf>,
}

impl Test {
    pub fn new() -> Self {
        Test {
            args: vec![],
            // Reproducible and quiet by default; a test that wants otherwise says so.
            env: vec![("SOURCE_DATE_EPOCH".into(), "1700000000".into())],
            env_remove: vec!["RUST_LOG".into()],
            dir: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env_remove.push(key.into());
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn output(self) -> Run {
        use std::process::Stdio;
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args);
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = cmd.output().expect("run systemvm");
        Run {
            args: self.args,
            output,
        }
    }

    /// Run, but kill the process and fail the test if it is still running after `limit`
    /// (a hang check, not a speed assertion). Also measures the run: wall time, and the
    /// peak resident set size of the `systemvm` process as GNU time (`/usr/bin/time`, from
    /// Debian's `time` package) reports it. Not our own `wait4`: a child forked from the
    /// large test process inherits its RSS high-water mark, GNU time's is tiny.
    #[track_caller]
    pub fn output_within(self, limit: std::time::Duration) -> Measured {
        use std::io::Read;
        use std::process::Stdio;
        use std::time::{Duration, Instant};
        let rss_file = tempfile::NamedTempFile::new().expect("rss temp file");
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "%M", "-o"])
            .arg(rss_file.path())
            .arg(BIN)
            .args(&self.args);
        for key in &self.env_remove {
            cmd.env_remove(key);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .expect("run /usr/bin/time (install the time package: setup.sh)");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let out = drain(Box::new(child.stdout.take().expect("stdout")));
        let err = drain(Box::new(child.stderr.take().expect("stderr")));
        let mut killed = false;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            let over = started.elapsed().saturating_sub(limit);
            if !over.is_zero() && !killed {
                // Kill systemvm (time's child); time then reports and exits, and we reap it.
                let pid = child.id();
                let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                    .unwrap_or_default();
                for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                    // SAFETY: kill(2) on time's unreaped child, which cannot be reused yet.
                    unsafe { libc::kill(c, libc::SIGKILL) };
                }
                killed = true;
            } else if over > Duration::from_secs(10) {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let wall = started.elapsed();
        let output = Output {
            status,
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        };
        let run = Run {
            args: self.args,
            output,
        };
        assert!(
            !killed,
            "HANG: systemvm {:?} still ran after {limit:?} and was killed\n--- stdout\n{}\n--- stderr\n{}",
            run.args,
            run.stdout(),
            run.stderr()
        );
        let rss = fs::read_to_string(rss_file.path()).expect("GNU time output");
        let peak_rss_kib = rss
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("GNU time printed {rss:?}"));
        Measured {
            run,
            wall,
            peak_rss_kib,
        }
    }

    /// Run and require exit 0.
    #[track_caller]
    pub fn success(self) -> Run {
        self.output().code(0)
    }

    /// Run and require the given exit code.
    #[track_caller]
    pub fn fails(self, code: i32) -> Run {
        self.output().code(code)
    }
}

/// A run with its wall time and peak memory ([`Test::output_within`]).
pub struct Measured {
    pub run: Run,
    pub wall: std::time::Duration,
    /// Peak resident set size of the `systemvm` process, KiB (GNU time's `%M`).
    pub peak_rss_kib: u64,
}

/// The result of a run, with assertions that print everything on failure.
pub struct Run {
    args: Vec<OsString>,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.output.status.code(),
            Some(expected),
            "systemvm {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn stderr_contains(self, needle: &str) -> Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn stdout_contains(self, needle: &str) -> Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout()
        );
        self
    }

    /// The error is exactly one line (`error: ...`) on stderr.
    #[track_caller]
    pub fn one_error_line(self) -> Self {
        let err = self.stderr();
        // The stand-in API is plain http, which is warned about (one line of its own).
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains(" is plain http: "))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
        assert!(lines[0].starts_with("error: "), "not an error line: {err}");
        self
    }

    /// The JSON lines of `--output-format json` (one event each).
    #[track_caller]
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The one artifact record of `build`, `inject` or `inspect`, checked to be followed by
    /// nothing but its summary.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        let mut lines = self.json_lines();
        assert_eq!(
            lines.len(),
            2,
            "expected a record and a summary:\n{}",
            self.stdout()
        );
        assert_eq!(lines[1]["event"], "summary", "{}", self.stdout());
        assert_eq!(lines[0]["event"], "artifact", "{}", self.stdout());
        lines.swap_remove(0)
    }
}

/// Run an external tool and return its stdout; panics with its stderr on failure.
#[track_caller]
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file name in a directory (non-recursive), sorted: to prove nothing was left behind.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// A small payload with nested directories, an executable and a binary file, written under
/// `dir/payload`; returns its path.
pub fn small_payload(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join("payload");
    let files: &[(&str, &[u8], u32)] = &[
        (
            "agent/_run.sh",
            b"#!/bin/sh\nexec java -cp './:./conf:*' Agent\n",
            0o755,
        ),
        ("agent/conf/agent.properties", b"workers=5\n", 0o644),
        (
            "agent/lib/cloud-agent.jar",
            &[0x50, 0x4b, 0x03, 0x04, 1, 2, 3, 0xff],
            0o644,
        ),
        (
            "scripts/opt/cloud/bin/patch.sh",
            b"#!/bin/sh\necho patched\n",
            0o644,
        ),
        (
            "scripts/etc/logrotate.d/cloud",
            b"/var/log/cloud.log {\n}\n",
            0o600,
        ),
        ("scripts/var/www/html/index.html", b"<html></html>\n", 0o644),
    ];
    for (rel, bytes, mode) in files {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, bytes).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).expect("chmod");
    }
    root
}

/// A fresh ed25519 key pair made by ssh-keygen: (private, public) paths.
pub fn ssh_keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = ssh_keygen_as(dir, name, &["-t", "ed25519"]);
    (private, dir.join(format!("{name}.pub")))
}

/// A fresh pair made by ssh-keygen with `kind` (`-t rsa -b 2048 -m PEM`, say), no
/// passphrase and `name` as the comment: the private key's path (`.pub` beside it).
pub fn ssh_keygen_as(dir: &Path, name: &str, kind: &[&str]) -> PathBuf {
    let private = dir.join(name);
    let p = private.to_str().expect("utf-8 path");
    let mut args = vec!["-q"];
    args.extend_from_slice(kind);
    args.extend(["-N", "", "-C", name, "-f", p]);
    tool("ssh-keygen", &args);
    private
}

/// An RSA pair in PEM, as CloudStack up to 4.19 writes its own.
pub fn rsa_pem(dir: &Path, name: &str) -> PathBuf {
    ssh_keygen_as(dir, name, &["-t", "rsa", "-b", "2048", "-m", "PEM"])
}

/// Build an ISO from `payload` into `out` with the given extra arguments.
/// Built for 4.16.0.0 (the cloudstack layout) unless `extra` names another `--version`.
#[track_caller]
pub fn build_iso(payload: &Path, out: &Path, extra: &[&str]) -> Run {
    let version = if extra.contains(&"--version") {
        &[][..]
    } else {
        &["--version", "4.16.0.0"][..]
    };
    Test::new()
        .arg("build")
        .args(version.iter().copied())
        .arg("--payload")
        .arg(payload)
        .arg("-o")
        .arg(out)
        .args(extra.iter().copied())
        .success()
}

/// The small payload (with a `patch-sysvms.sh`) and its 4.20 patch-files build in
/// `dir/patch`: (payload, build directory).
pub fn patch_files_build(dir: &Path) -> (PathBuf, PathBuf) {
    let payload = small_payload(dir);
    fs::write(payload.join("patch-sysvms.sh"), "#!/bin/sh\necho patched\n").expect("script");
    let build = dir.join("patch");
    build_iso(
        &payload,
        &build,
        &["--layout", "patch-files", "--version", "4.20.0.0"],
    );
    (payload, build)
}

/// An ISO (version 4.16.0.0) at `dir/<name>.iso` whose content depends on `name`: the small
/// payload plus `filler_bytes` of filler in the agent zip, for pushes of a chosen size.
pub fn filler_iso(dir: &Path, name: &str, filler_bytes: usize) -> PathBuf {
    let payload = small_payload(&dir.join(format!("p-{name}")));
    let filler: Vec<u8> = (0..filler_bytes)
        .map(|i| ((i * 31) ^ (i >> 9) ^ name.len()) as u8)
        .collect();
    fs::write(payload.join("agent/lib/filler.jar"), filler).unwrap();
    fs::write(payload.join("agent/name.txt"), name).unwrap();
    let iso = dir.join(format!("{name}.iso"));
    build_iso(&payload, &iso, &[]);
    iso
}

pub fn sha256(path: &Path) -> String {
    let out = tool("sha256sum", &[path.to_str().expect("utf-8 path")]);
    out.split_whitespace().next().expect("hash").to_string()
}

/// Extract one member of an ISO with bsdtar (a reader we did not write).
#[track_caller]
pub fn bsdtar_member(iso: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("bsdtar")
        .arg("-xOf")
        .arg(iso)
        .arg(name)
        .output()
        .expect("run bsdtar");
    assert!(
        out.status.success(),
        "bsdtar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Cosmic's template builder, when present.
pub fn cosmic_tree() -> Option<PathBuf> {
    let tree = match std::env::var_os("SYSTEMVM_COSMIC_TREE") {
        Some(tree) => PathBuf::from(tree),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cosmic/systemvm-packer"),
    };
    let found = tree.join("files/startup/patch-scripts.sh").is_file();
    if !found {
        eprintln!(
            "skipped: no Cosmic tree (set SYSTEMVM_COSMIC_TREE or put it in ../shared/cosmic)"
        );
    }
    found.then_some(tree)
}
