//! CloudStack's own cluster lock: `GET_LOCK('prepare.systemvm', n)` on the management
//! server's database, which CloudStack holds while it copies an ISO to VMware or Hyper-V
//! secondary storage (`DbUtil.getGlobalLock`). Holding the same named lock around our writes
//! makes CloudStack and every systemvm wait for each other.
//!
//! The lock belongs to a database session, so it is held by a `mariadb` client process kept
//! open on a pipe: the lock goes when we release it, or when the process dies with us. The
//! password goes to the client in a 0600 option file in a private temp directory, which is
//! removed once the client has connected: never on a command line or in its environment.

use crate::secret::Secret;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The name CloudStack locks (`VmwareManagerImpl`, `HypervManagerImpl`).
pub const LOCK_NAME: &str = "prepare.systemvm";
/// The management server's database settings.
pub const DB_PROPERTIES: &str = "/etc/cloudstack/management/db.properties";
/// Time to start the client and connect, on top of the wait for the lock.
const CONNECT_SLACK: Duration = Duration::from_secs(15);

/// How to reach CloudStack's database.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Secret,
    /// The longest wait for the lock.
    pub lock_timeout: Duration,
}

impl DbConfig {
    /// Read `db.cloud.*` from CloudStack's `db.properties`. An encrypted password
    /// (`ENC(...)`) needs `password_file`: we do not decrypt CloudStack's secrets.
    pub fn load(
        properties: &Path,
        password_file: Option<&Path>,
        lock_timeout: Duration,
    ) -> Result<DbConfig> {
        let text = std::fs::read_to_string(properties)
            .with_context(|| format!("cannot read {}", properties.display()))?;
        let get = |key: &str| crate::properties::property(&text, key);
        let need =
            |key: &str| get(key).with_context(|| format!("{}: no {key}", properties.display()));
        let password = match (password_file, get("db.cloud.password")) {
            (Some(file), _) => Secret::from_file(file)?,
            (None, Some(p)) if p.starts_with("ENC(") => bail!(
                "{}: db.cloud.password is encrypted (ENC(...)); systemvm does not decrypt it: \
                 give the plain password in a 0600 file as [cloudstack_db] password_file",
                properties.display()
            ),
            (None, Some(p)) => Secret::new(p),
            (None, None) => bail!("{}: no db.cloud.password", properties.display()),
        };
        if password.expose().contains(['\n', '\r']) {
            bail!("the database password must be one line");
        }
        let port = get("db.cloud.port").unwrap_or_else(|| "3306".into());
        Ok(DbConfig {
            host: need("db.cloud.host")?,
            port: port
                .parse()
                .with_context(|| format!("{}: db.cloud.port {port:?}", properties.display()))?,
            user: need("db.cloud.username")?,
            database: get("db.cloud.name").unwrap_or_else(|| "cloud".into()),
            password,
            lock_timeout,
        })
    }

    fn endpoint(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// CloudStack's lock, held until dropped.
pub struct DbLock {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl DbLock {
    /// Wait for the lock, at most `cfg.lock_timeout` (or `within`, when shorter).
    pub fn acquire(cfg: &DbConfig, within: Option<Duration>) -> Result<DbLock> {
        let wait = within.map_or(cfg.lock_timeout, |w| w.min(cfg.lock_timeout));
        let private = tempfile::Builder::new()
            .prefix(".systemvm-db-")
            .tempdir()
            .context("cannot create a private temp directory")?;
        let options = write_options(private.path(), cfg)?;
        let (child, mut stdin, lines) = start_client(&options, &cfg.database)?;
        let secs = wait.as_secs().max(1);
        let asked = writeln!(stdin, "SELECT GET_LOCK('{LOCK_NAME}', {secs});").and(stdin.flush());
        let answer = asked
            .ok()
            .and_then(|()| lines.recv_timeout(wait + CONNECT_SLACK).ok());
        drop(private);
        let mut lock = DbLock {
            child: Some(child),
            stdin: Some(stdin),
        };
        match answer.as_deref().map(str::trim) {
            Some("1") => Ok(lock),
            Some("0") => bail!(
                "CloudStack's lock {LOCK_NAME:?} on {} is still held after {secs} s \
                 (a management server is copying to secondary storage); try again later",
                cfg.endpoint()
            ),
            Some(other) => bail!("GET_LOCK on {} answered {other:?}", cfg.endpoint()),
            None => {
                let why = lock.client_error();
                bail!("cannot take CloudStack's lock on {}: {why}", cfg.endpoint())
            }
        }
    }

    /// The client's first error line, once it has exited (or been stopped).
    fn client_error(&mut self) -> String {
        self.stdin = None;
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        let _ = child.kill();
        let stderr = child.wait_with_output().map(|o| o.stderr);
        let stderr = String::from_utf8_lossy(&stderr.unwrap_or_default()).into_owned();
        let first = stderr.lines().next();
        first.map_or("the mariadb client gave no answer".into(), str::to_string)
    }
}

impl Drop for DbLock {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "SELECT RELEASE_LOCK('{LOCK_NAME}');");
        }
        // Closing stdin ends the session (and any lock with it); a kill makes sure.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `[client]` option file (0600) with the login, TCP forced as CloudStack's JDBC uses.
fn write_options(dir: &Path, cfg: &DbConfig) -> Result<PathBuf> {
    let path = dir.join("client.cnf");
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let text = format!(
        "[client]\nuser={}\npassword={}\nhost={}\nport={}\nprotocol=tcp\nconnect-timeout=10\n",
        quote(&cfg.user),
        quote(cfg.password.expose()),
        quote(&cfg.host),
        cfg.port
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

type Started = (Child, ChildStdin, mpsc::Receiver<String>);

/// The `mariadb` client in batch mode, its answers line by line on a channel.
fn start_client(options: &Path, database: &str) -> Result<Started> {
    let mut cmd = Command::new("mariadb");
    cmd.arg(format!("--defaults-extra-file={}", options.display()))
        .args([
            "--batch",
            "--unbuffered",
            "--skip-column-names",
            "--database",
        ])
        .arg(database)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::secret::scrub_env(&mut cmd);
    let mut child = cmd
        .spawn()
        .context("cannot run the mariadb client (apt-get install mariadb-client)")?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        bail!("the mariadb client has no pipes");
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, stdin, rx))
}
