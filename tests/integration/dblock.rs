//! CloudStack's `prepare.systemvm` lock on a real MariaDB server that the test starts on
//! loopback with a private data directory: a session holding it (as CloudStack does while it
//! copies its ISO) makes propagate wait or give up, and while propagate holds it, another
//! session cannot take it. Skips with one line when `mariadbd` is not installed.

use crate::common;

use common::*;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "cl\"oud pw";

/// A MariaDB server on a free loopback port; stopped and reaped on drop.
struct Mariadb {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Mariadb {
    fn start() -> Option<Mariadb> {
        if !Path::new("/usr/sbin/mariadbd").exists() {
            eprintln!("skipped: mariadbd is not installed (apt-get install mariadb-server)");
            return None;
        }
        let dir = tempdir();
        let data = dir.path().join("data");
        let install = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .unwrap();
        assert!(install.status.success(), "{install:?}");
        let port = common::sshd::free_port();
        let socket = dir.path().join("sock");
        let child = Command::new("/usr/sbin/mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                dir.path().join("err.log").display()
            ))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let db = Mariadb { child, port, dir };
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mariadbd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let setup = format!(
            "CREATE DATABASE cloud; CREATE USER 'cloud'@'127.0.0.1' IDENTIFIED BY '{}'; \
             GRANT ALL ON cloud.* TO 'cloud'@'127.0.0.1';",
            PASSWORD.replace('"', "\\\"")
        );
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", socket.display()))
            .args(["-e", &setup])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Some(db)
    }

    /// CloudStack's `db.properties` for this server.
    fn properties(&self, password: &str) -> PathBuf {
        let path = self.dir.path().join("db.properties");
        fs::write(
            &path,
            format!(
                "db.cloud.username=cloud\ndb.cloud.password={password}\n\
                 db.cloud.host=127.0.0.1\ndb.cloud.port={}\ndb.cloud.name=cloud\n",
                self.port
            ),
        )
        .unwrap();
        path
    }

    /// A session of our own, as CloudStack's management server would hold one.
    fn session(&self) -> Session {
        let cnf = self.dir.path().join("root.cnf");
        fs::write(
            &cnf,
            format!(
                "[client]\nuser=root\nsocket={}\n",
                self.dir.path().join("sock").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("mariadb")
            .arg(format!("--defaults-extra-file={}", cnf.display()))
            .args(["--batch", "--unbuffered", "--skip-column-names"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Session {
            child,
            stdin,
            stdout,
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    fn query(&mut self, sql: &str) -> String {
        writeln!(self.stdin, "{sql}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// Sessions of others waiting in GET_LOCK.
    fn waiting(&mut self) -> u32 {
        self.query(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE 'SELECT GET_LOCK(%' AND ID <> CONNECTION_ID();",
        )
        .parse()
        .unwrap()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn inventory(dir: &Path, properties: &Path, secondary: &Path, extra: &str) -> PathBuf {
    let path = dir.join("hosts.toml");
    fs::write(
        &path,
        format!(
            "[cloudstack_db]\nproperties = \"{}\"\n{extra}\n\
             [[secondary]]\nname = \"nfs-zone1\"\nhypervisor = \"vmware\"\nrequire_mount = false\npath = \"{}\"\n",
            properties.display(),
            secondary.display()
        ),
    )
    .unwrap();
    path
}

fn propagate(inv: &Path, iso: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["propagate", "--retries", "0", "--inventory"])
        .arg(inv)
        .arg("--iso")
        .arg(iso)
        .env_remove("CLOUDSTACK_API_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Wait, boundedly, until `what` holds.
fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < Duration::from_secs(30), "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn propagate_and_cloudstack_wait_for_each_other() {
    let Some(db) = Mariadb::start() else { return };
    let dir = tempdir();
    let iso = dir.path().join("systemvm.iso");
    build_iso(&small_payload(dir.path()), &iso, &[]);
    let secondary = dir.path().join("secondary");
    fs::create_dir(&secondary).unwrap();
    let properties = db.properties(PASSWORD);
    let inv = inventory(dir.path(), &properties, &secondary, "lock_timeout = 30");
    let target = secondary.join("systemvm/systemvm-4.16.0.0.iso");

    // CloudStack holds the lock: propagate waits in GET_LOCK, writing nothing, then goes.
    let mut cloudstack = db.session();
    assert_eq!(
        cloudstack.query("SELECT GET_LOCK('prepare.systemvm', 0);"),
        "1"
    );
    let run = propagate(&inv, &iso).spawn().unwrap();
    until("propagate waits for the lock", || cloudstack.waiting() == 1);
    assert!(!target.exists(), "written while CloudStack held the lock");
    assert_eq!(
        cloudstack.query("SELECT RELEASE_LOCK('prepare.systemvm');"),
        "1"
    );
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&target).unwrap(), fs::read(&iso).unwrap());

    // propagate holds the lock (here while it waits for the folder lock we keep): CloudStack
    // cannot take it until propagate is done.
    fs::remove_file(&target).unwrap();
    let folder_lock = secondary.join("systemvm/.systemvm.lock");
    // -o: the lock is flock's own, so killing it releases the lock.
    let mut flock = Command::new("flock")
        .arg("-o")
        .arg(&folder_lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    until("flock holds the folder lock", || folder_lock.exists());
    let run = propagate(&inv, &iso).spawn().unwrap();
    until("propagate holds CloudStack's lock", || {
        cloudstack.query("SELECT IS_USED_LOCK('prepare.systemvm') IS NOT NULL;") == "1"
    });
    assert_eq!(
        cloudstack.query("SELECT GET_LOCK('prepare.systemvm', 0);"),
        "0"
    );
    flock.kill().unwrap();
    flock.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&target).unwrap(), fs::read(&iso).unwrap());
    assert_eq!(
        cloudstack.query("SELECT GET_LOCK('prepare.systemvm', 0);"),
        "1"
    );

    // Held past lock_timeout: the target fails naming the lock, nothing is written.
    fs::remove_file(&target).unwrap();
    let inv = inventory(dir.path(), &properties, &secondary, "lock_timeout = 1");
    let out = propagate(&inv, &iso).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("CloudStack's lock \"prepare.systemvm\" on cloud@127.0.0.1"),
        "{text}"
    );
    assert!(!target.exists());
    assert!(!text.contains(PASSWORD), "the password was printed");
}

#[test]
fn an_encrypted_password_needs_a_password_file() {
    let dir = tempdir();
    let properties = dir.path().join("db.properties");
    fs::write(
        &properties,
        "db.cloud.username=cloud\ndb.cloud.password=ENC(q2jbM1hL3d8=)\ndb.cloud.host=127.0.0.1\n",
    )
    .unwrap();
    let secondary = dir.path().join("secondary");
    fs::create_dir(&secondary).unwrap();
    let iso = dir.path().join("systemvm.iso");
    build_iso(&small_payload(dir.path()), &iso, &[]);
    let inv = inventory(dir.path(), &properties, &secondary, "");
    Test::new()
        .env_remove("CLOUDSTACK_API_URL")
        .args(["propagate", "--inventory"])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .fails(2)
        .one_error_line()
        .stderr_contains("db.cloud.password is encrypted (ENC(...))")
        .stderr_contains("[cloudstack_db] password_file");
    assert!(listing(&secondary).is_empty());
}
