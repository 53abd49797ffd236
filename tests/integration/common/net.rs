//! Loopback ports for test servers: one that nobody uses, and waiting until a server we
//! started listens on it (or fails the test with its log when it dies first).

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ports this test process has handed out: the kernel may offer one again once its probe
/// socket is closed, before the server meant for it binds.
static PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port nobody listens on now and this process has not handed out before.
pub fn free_port() -> u16 {
    let mut used = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        if used.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// Wait until `child` (named `what`) accepts connections on loopback `port`, for at most
/// `limit`; panics with its log if it exits first or never listens.
pub fn wait_listening(child: &mut Child, port: u16, what: &str, log: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited at start: {status}\n{log}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within {limit:?}");
}
