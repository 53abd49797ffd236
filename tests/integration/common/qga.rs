//! The host's side of the QEMU guest agent on a virtio-serial socket, spoken directly (one
//! JSON command a line, one answer a line): ping and sync until the VM's agent answers,
//! then write files and run commands in the VM, as a KVM host's scripts do. And the QEMU
//! process itself, killed and reaped when dropped.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// QEMU arguments for the guest agent's channel: `org.qemu.guest_agent.0` on a
/// virtio-serial port, its chardev a socket at `socket` that QEMU serves.
pub fn channel(socket: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!(
            "socket,path={},server=on,wait=off,id=qga0",
            socket.display()
        ),
        "-device".into(),
        "virtio-serial".into(),
        "-device".into(),
        "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0".into(),
    ]
}

/// A QEMU process, killed and reaped when dropped.
pub struct Qemu(pub Child);

impl Qemu {
    /// Start `cmd` (a `qemu-system-*` command line) detached from our stdio.
    #[track_caller]
    pub fn start(mut cmd: Command) -> Qemu {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Qemu(cmd.spawn().expect("start qemu"))
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One connection to the guest agent, synchronised.
pub struct Agent {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Agent {
    /// Connect, ping and `guest-sync` until the agent answers, within `budget`.
    #[track_caller]
    pub fn wait(socket: &Path, budget: Duration) -> Agent {
        let started = Instant::now();
        let mut id = 7_000_000u64;
        loop {
            assert!(
                started.elapsed() < budget,
                "no guest agent on {} in {budget:?}",
                socket.display()
            );
            id += 1;
            if let Some(mut agent) = Agent::connect(socket) {
                if agent.synced(id) {
                    return agent;
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn connect(socket: &Path) -> Option<Agent> {
        let stream = UnixStream::connect(socket).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        Some(Agent {
            reader: BufReader::new(stream.try_clone().ok()?),
            writer: stream,
        })
    }

    /// `guest-ping` answered, then `guest-sync` with `id`, older answers discarded.
    fn synced(&mut self, id: u64) -> bool {
        if self.call(json!({"execute": "guest-ping"})).is_none() {
            return false;
        }
        let line = format!(
            "{}\n",
            json!({"execute": "guest-sync", "arguments": {"id": id}})
        );
        if self.writer.write_all(line.as_bytes()).is_err() {
            return false;
        }
        (0..16).any(|_| self.answer().is_some_and(|v| v["return"] == id))
    }

    fn answer(&mut self) -> Option<Value> {
        let mut line = String::new();
        self.reader.read_line(&mut line).ok()?;
        serde_json::from_str(line.trim()).ok()
    }

    /// Send one command; its answer.
    pub fn call(&mut self, command: Value) -> Option<Value> {
        let mut line = command.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).ok()?;
        self.answer()
    }

    /// The `return` of a command that must succeed.
    #[track_caller]
    fn ok(&mut self, command: Value) -> Value {
        let answer = self.call(command.clone());
        match answer {
            Some(v) if v.get("return").is_some() => v["return"].clone(),
            other => panic!("{command}: {other:?}"),
        }
    }

    /// `guest-file-open` (mode `w+`), `-write`, `-close`, as CloudStack's `patch.sh`.
    #[track_caller]
    pub fn write_file(&mut self, path: &str, bytes: &[u8]) {
        use base64::Engine;
        let handle = self
            .ok(json!({"execute": "guest-file-open", "arguments": {"path": path, "mode": "w+"}}));
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        let written = self.ok(json!({"execute": "guest-file-write",
            "arguments": {"handle": handle, "buf-b64": b64}}));
        assert_eq!(written["count"], bytes.len(), "guest-file-write {path}");
        self.ok(json!({"execute": "guest-file-close", "arguments": {"handle": handle}}));
    }

    /// A command in the VM through `guest-exec`: its exit code and its output, within
    /// `budget`.
    #[track_caller]
    pub fn exec(&mut self, argv: &[&str], budget: Duration) -> (i64, String) {
        use base64::Engine;
        let started = self.ok(json!({"execute": "guest-exec", "arguments": {
            "path": argv[0], "arg": &argv[1..], "capture-output": true}}));
        let pid = started["pid"].clone();
        let since = Instant::now();
        loop {
            let status =
                self.ok(json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}));
            if status["exited"] == true {
                let decode = |field: &str| {
                    status[field]
                        .as_str()
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                };
                let code = status["exitcode"].as_i64().unwrap_or(-1);
                return (
                    code,
                    format!("{}{}", decode("out-data"), decode("err-data")),
                );
            }
            assert!(
                since.elapsed() < budget,
                "{argv:?} still running after {budget:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
