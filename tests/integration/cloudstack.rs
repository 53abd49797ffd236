//! The CloudStack API client against implementations we did not write: signatures equal
//! those of the `cs` client library (PyPI), and every flow runs against
//! `tests/fixtures/cloudstack-api.py`, which checks each request's signature with its own
//! code and secret and answers like the management server.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use systemvm::cloudstack::sign;
use systemvm::inventory::Inventory;
use systemvm::secret::Secret;

const API_KEY: &str =
    "plgWJfZK4gyS3mOMTVmjUVg-X-jlWlnfaUJ9GAbBbf9EdM-kAYMmAiLqzzq1ElZLYq_u38zCm0bewzGUdP66mg";
const SECRET: &str =
    "VDaACYb0LV9eNjTetIOElcVQkvJck_J_QljX_FcHRj87ZKiy0z0ty0ZsYBkoXkY9b7eq1EhwJaw7FF3akA3KBQ";

/// The fixture API server, stopped by PID and reaped on drop.
struct Api {
    child: Child,
    port: u16,
    tls: bool,
    dir: tempfile::TempDir,
}

impl Api {
    fn start(state: Value) -> Api {
        Api::start_with(state, &[])
    }

    fn start_with(state: Value, extra: &[&Path]) -> Api {
        let dir = tempdir();
        fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
        fs::write(dir.path().join("server-api.key"), format!("{API_KEY}\n")).unwrap();
        fs::write(dir.path().join("state.json"), state.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudstack-api.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--api-key-file"])
            .arg(dir.path().join("server-api.key"))
            .arg("--secret-file")
            .arg(dir.path().join("secret"))
            .arg("--state")
            .arg(dir.path().join("state.json"))
            .arg("--log")
            .arg(dir.path().join("calls.jsonl"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 fixture");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("fixture said {line:?}"))
            .parse()
            .unwrap();
        Api {
            child,
            port,
            tls: !extra.is_empty(),
            dir,
        }
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/client/api", self.port)
    }

    /// Key files in the test's own directory.
    fn key_files(&self, secret: &str) -> (PathBuf, PathBuf) {
        let key = self.dir.path().join("api.key");
        let sec = self.dir.path().join("client-secret.key");
        fs::write(&key, format!("{API_KEY}\n")).unwrap();
        fs::write(&sec, format!("{secret}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&sec, fs::Permissions::from_mode(0o600)).unwrap();
        (key, sec)
    }

    /// `systemvm ARGS --api-url ... --api-key-file ... --secret-key-file ...`
    fn run(&self, args: &[&str]) -> Test {
        self.run_with_secret(args, SECRET)
    }

    fn run_with_secret(&self, args: &[&str], secret: &str) -> Test {
        let (key, sec) = self.key_files(secret);
        Test::new()
            .env_remove("CLOUDSTACK_API_URL")
            .env_remove("CLOUDSTACK_API_KEY")
            .env_remove("CLOUDSTACK_SECRET_KEY")
            .args(args.iter().copied())
            .args(["--api-url", &self.url(), "--api-key-file"])
            .arg(key)
            .arg("--secret-key-file")
            .arg(sec)
    }

    /// Every call the server got, in order.
    fn calls(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.dir.path().join("calls.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn calls_of(&self, command: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c["command"] == command)
            .collect()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host(id: &str, name: &str, hypervisor: &str, ip: &str, zone: &str) -> Value {
    json!({"id": id, "name": name, "type": "Routing", "hypervisor": hypervisor,
           "ipaddress": ip, "zoneid": zone, "zonename": format!("Zone {zone}"),
           "clusterid": format!("c-{zone}"), "clustername": format!("Cluster {zone}"),
           "state": "Up", "resourcestate": "Enabled"})
}

fn systemvm(id: &str, name: &str, kind: &str, state: &str) -> Value {
    json!({"id": id, "name": name, "systemvmtype": kind, "state": state,
           "zoneid": "z1", "zonename": "Zone z1"})
}

fn router(id: &str, name: &str, account: &str) -> Value {
    json!({"id": id, "name": name, "state": "Running", "account": account,
           "zoneid": "z1", "zonename": "Zone z1", "version": "4.15.0",
           "requiresupgrade": true})
}

// --- signing ---------------------------------------------------------------------------

/// Signs each case with `cs`: the request it would send, captured before it leaves, as
/// (name, value) pairs including its `signature`.
const CS_SIGNER: &str = r#"
import json, sys, urllib.parse
import cs

class Captured(Exception):
    pass

class Session:
    def send(self, prepped, **kw):
        self.url = prepped.url
        raise Captured()

req = json.load(sys.stdin)
out = []
for case in req["cases"]:
    s = Session()
    client = cs.CloudStack(endpoint="http://127.0.0.1:9/client/api", key=req["key"],
                           secret=req["secret"], session=s,
                           expiration=case.get("expiration", -1))
    try:
        getattr(client, case["command"])(**case["params"])
    except Captured:
        pass
    out.append(urllib.parse.parse_qsl(urllib.parse.urlsplit(s.url).query,
                                      keep_blank_values=True))
print(json.dumps(out))
"#;

#[test]
fn signatures_match_the_cs_library() {
    let cases = json!([
        {"command": "listHosts", "params": {"type": "Routing"}},
        {"command": "listUsers", "params": {}},
        {"command": "deployVirtualMachine", "params": {
            "displayname": "my web server", "name": "a+b*c/d=e&f%g",
            "userdata": "IyEvYmluL3NoCmVjaG8gaGk=", "keyword": "zoné ünïcødé 日本 🚀"}},
        {"command": "listSystemVms", "params": {
            "Zeta": "Last Word", "alpha": "first", "zoneId": "UPPER lower", "B": "b",
            "a": "A", "_under": "x", "Mixed-Case.Name": "v.1"}},
        {"command": "rebootRouter", "params": {"id": "8f4a-b2", "forced": "true"},
         "expiration": 600},
        {"command": "listRouters", "params": {"keyword": "  spaces  around  ",
            "empty": "", "tab": "a\tb", "quote": "it's \"quoted\""}, "expiration": 300}
    ]);
    let input = json!({"key": API_KEY, "secret": SECRET, "cases": cases});
    let mut child = Command::new("python3")
        .args(["-c", CS_SIGNER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cs failed (pip install cs):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed: Vec<Vec<(String, String)>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(signed.len(), 6);
    let secret = Secret::new(SECRET.into());
    for pairs in &signed {
        let theirs = pairs
            .iter()
            .find(|(k, _)| k == "signature")
            .map(|(_, v)| v.clone())
            .expect("cs signed the request");
        let unsigned: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "signature")
            .cloned()
            .collect();
        // Our order differs from cs's; the signature must not depend on it.
        let mut reversed = unsigned.clone();
        reversed.reverse();
        assert_eq!(sign::signature(&reversed, &secret), theirs, "{pairs:?}");
    }
    // cs sent signatureVersion 3 where asked, so those cases covered `expires` (with `+`).
    assert!(signed[4]
        .iter()
        .any(|(k, v)| k == "signatureVersion" && v == "3"));
    assert!(signed[4]
        .iter()
        .any(|(k, v)| k == "expires" && v.contains('+')));
}

// --- inventory from-cloudstack ---------------------------------------------------------

fn five_hosts() -> Value {
    json!({"hosts": [
        host("h1", "xen-01", "XenServer", "10.1.0.11", "z1"),
        host("h2", "xen-02", "XenServer", "10.1.0.12", "z1"),
        host("h3", "kvm-01", "KVM", "10.2.0.11", "z2"),
        host("h4", "esx-01", "VMware", "10.3.0.11", "z3"),
        host("h5", "kvm-02", "KVM", "10.2.0.12", "z2"),
        {"id": "s1", "name": "s-1-VM", "type": "SecondaryStorageVM", "hypervisor": "KVM",
         "ipaddress": "10.9.0.1", "zoneid": "z1"}
    ]})
}

#[test]
fn from_cloudstack_pages_through_hosts_and_writes_a_loadable_inventory() {
    let api = Api::start(five_hosts());
    let out_dir = tempdir();
    let out = out_dir.path().join("hosts.toml");
    let out_s = out.to_str().unwrap();
    api.run(&[
        "inventory",
        "from-cloudstack",
        "--page-size",
        "2",
        "-o",
        out_s,
    ])
    .success()
    .stderr_contains("wrote");

    let calls = api.calls_of("listHosts");
    let pages: Vec<&str> = calls
        .iter()
        .map(|c| c["params"]["page"].as_str().unwrap())
        .collect();
    assert_eq!(pages, ["1", "2", "3"], "{calls:?}");
    for c in &calls {
        assert_eq!(c["status"], 200, "signature refused: {c}");
        assert_eq!(c["params"]["type"], "Routing");
        assert_eq!(c["params"]["pagesize"], "2");
    }

    let text = fs::read_to_string(&out).unwrap();
    assert!(text.contains("# [[secondary]]"), "{text}");
    assert!(!text.contains("s-1-VM"), "{text}");
    // As written it lacks credentials; with them filled in, our own loader accepts it.
    let e = Inventory::load(&out).unwrap_err().to_string();
    assert!(e.contains("no credentials"), "{e}");
    fs::write(
        &out,
        text.replace(
            "# identity = \"/etc/systemvm/id_ed25519\"",
            "identity = \"/etc/systemvm/id_ed25519\"",
        ),
    )
    .unwrap();
    let inv = Inventory::load(&out).unwrap();
    let got: Vec<(String, String, Option<String>, Option<String>)> = inv
        .targets
        .iter()
        .map(|t| {
            let systemvm::inventory::Access::Ssh(host, _) = &t.access else {
                panic!("not ssh")
            };
            (
                format!("{}@{}", t.name, host.address),
                t.hypervisor.to_string(),
                t.zone.clone(),
                t.cluster.clone(),
            )
        })
        .collect();
    let row = |n: &str, h: &str, z: &str| {
        (
            n.to_string(),
            h.to_string(),
            Some(format!("Zone {z}")),
            Some(format!("Cluster {z}")),
        )
    };
    assert_eq!(
        got,
        [
            row("xen-01@10.1.0.11", "xenserver", "z1"),
            row("xen-02@10.1.0.12", "xenserver", "z1"),
            row("kvm-01@10.2.0.11", "kvm", "z2"),
            row("kvm-02@10.2.0.12", "kvm", "z2"),
        ]
    );
    // The VMware hint becomes a valid entry once uncommented.
    let vmware = fs::read_to_string(&out)
        .unwrap()
        .replace("# [[secondary]]", "[[secondary]]")
        .replace("# name = ", "name = ")
        .replace("# hypervisor = \"vmware\"", "hypervisor = \"vmware\"")
        .replace("# path = ", "path = ")
        .replace("# zone = ", "zone = ");
    let inv = Inventory::parse(&vmware, Path::new("hosts.toml")).unwrap();
    assert_eq!(inv.targets.len(), 5);
    assert_eq!(inv.targets[4].zone.as_deref(), Some("Zone z3"));
}

#[test]
fn from_cloudstack_refuses_to_overwrite_and_filters_by_zone() {
    let api = Api::start(five_hosts());
    let out_dir = tempdir();
    let out = out_dir.path().join("hosts.toml");
    fs::write(&out, "# mine\n").unwrap();
    let out_s = out.to_str().unwrap();
    api.run(&["inventory", "from-cloudstack", "-o", out_s])
        .fails(2)
        .one_error_line()
        .stderr_contains("--force");
    assert_eq!(fs::read_to_string(&out).unwrap(), "# mine\n");
    assert!(
        api.calls().is_empty(),
        "the API was called before the check"
    );

    api.run(&[
        "inventory",
        "from-cloudstack",
        "--zone",
        "z2",
        "--force",
        "-o",
        out_s,
    ])
    .success();
    let calls = api.calls_of("listHosts");
    assert_eq!(calls[0]["params"]["zoneid"], "z2");
    let text = fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("kvm-01") && !text.contains("xen-01"),
        "{text}"
    );
    assert_eq!(listing(out_dir.path()), ["hosts.toml"]);
}

// --- restart-systemvms -----------------------------------------------------------------

fn fleet(jobs: Value) -> Value {
    json!({
        "systemvms": [
            systemvm("v1", "s-1-VM", "secondarystoragevm", "Running"),
            systemvm("v2", "v-2-VM", "consoleproxy", "Running"),
            systemvm("v3", "v-3-VM", "consoleproxy", "Stopped"),
        ],
        "routers": [router("r1", "r-10-VM", "admin"), router("r2", "r-11-VM", "tenant")],
        "jobs": jobs,
    })
}

/// An ISO and an inventory of one VMware secondary storage (an empty directory).
fn vmware_bed(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let iso = dir.join("systemvm.iso");
    build_iso(&small_payload(dir), &iso, &[]);
    let secondary = dir.join("secondary");
    fs::create_dir(&secondary).unwrap();
    let inv = dir.join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[[secondary]]\nname = \"nfs-zone1\"\nhypervisor = \"vmware\"\nrequire_mount = false\npath = \"{}\"\n",
            secondary.display()
        ),
    )
    .unwrap();
    (iso, secondary, inv)
}

#[test]
fn restart_stops_and_starts_system_vms_and_reboots_routers() {
    let api = Api::start(fleet(json!({
        "v1": {"stopSystemVm": {"mode": "ok", "polls": 3}, "startSystemVm": {"mode": "ok", "polls": 2}},
        "v2": {"stopSystemVm": {"mode": "ok", "polls": 2}},
        "r1": {"rebootRouter": {"mode": "ok", "polls": 4}},
    })));
    let run = api
        .run(&[
            "restart-systemvms",
            "--yes",
            "--jobs",
            "2",
            "--poll-interval",
            "0.05",
            "--output-format",
            "json",
        ])
        .success();
    let events = common::schema::assert_schema(&run, "restart-systemvms");
    let done: Vec<(String, String)> = {
        let mut d: Vec<(String, String)> = events
            .iter()
            .filter(|e| e["event"] == "done")
            .map(|e| {
                (
                    e["target"].as_str().unwrap().to_string(),
                    e["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        d.sort();
        d
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        done,
        [
            pair("r-10-VM", "restarted"),
            pair("r-11-VM", "restarted"),
            pair("s-1-VM", "restarted"),
            pair("v-2-VM", "restarted"),
            pair("v-3-VM", "skipped"),
        ]
    );
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(
        (
            summary["counts"]["restarted"].clone(),
            summary["exit_code"].clone()
        ),
        (json!(4), json!(0))
    );

    let calls = api.calls();
    assert!(calls.iter().all(|c| c["status"] == 200), "{calls:?}");
    // Stop before start, per VM; the stopped VM is left alone; routers of every account.
    let of = |id: &str| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c["params"]["id"] == id)
            .map(|c| c["command"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(of("v1"), ["stopSystemVm", "startSystemVm"]);
    assert_eq!(of("v2"), ["stopSystemVm", "startSystemVm"]);
    assert!(of("v3").is_empty());
    assert_eq!(of("r1"), ["rebootRouter"]);
    assert_eq!(of("r2"), ["rebootRouter"]);
    assert_eq!(api.calls_of("listRouters")[0]["params"]["listall"], "true");
    // Never more than --jobs async jobs open at once.
    let max = calls
        .iter()
        .map(|c| c["max_pending_jobs"].as_u64().unwrap())
        .max();
    assert!(max.unwrap() <= 2, "{max:?} jobs were pending at once");
    assert!(!api.calls_of("queryAsyncJobResult").is_empty());
}

#[test]
fn failed_and_endless_jobs_are_reported_and_the_deadline_holds() {
    let api = Api::start(fleet(json!({
        "v1": {"stopSystemVm": {"mode": "fail", "errortext": "Unable to stop s-1-VM: host is in maintenance"}},
        "v2": {"stopSystemVm": {"mode": "never"},
               "rebootSystemVm": {"mode": "fail", "errortext": "reboot refused"}},
    })));
    let run = api
        .run(&[
            "restart-systemvms",
            "--yes",
            "--deadline",
            "2",
            "--poll-interval",
            "0.1",
            "--reboot",
        ])
        .fails(1);
    let out = run.stdout();
    let line = |vm: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(vm))
            .unwrap_or_else(|| panic!("no line for {vm}:\n{out}"))
            .to_string()
    };
    // --reboot: the system VMs get rebootSystemVm (the routers rebootRouter)...
    assert!(line("s-1-VM").contains("restarted"), "{out}");
    assert!(line("v-2-VM").contains("FAILED") && line("v-2-VM").contains("reboot refused"));
    assert!(line("r-10-VM").contains("restarted"), "{out}");
    assert!(api.calls_of("stopSystemVm").is_empty());
    drop(run);

    // ...and with stop + start, the failure and the endless job show.
    let run = api
        .run(&[
            "restart-systemvms",
            "--yes",
            "--deadline",
            "2",
            "--poll-interval",
            "0.1",
            "--no-routers",
        ])
        .fails(1)
        .stderr_contains("s-1-VM, v-2-VM")
        .stderr_contains("error: ");
    let out = run.stdout();
    let line = |vm: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(vm))
            .unwrap_or_else(|| panic!("no line for {vm}:\n{out}"))
            .to_string()
    };
    let s1 = line("s-1-VM");
    assert!(
        s1.contains("FAILED") && s1.contains("host is in maintenance"),
        "{s1}"
    );
    let v2 = line("v-2-VM");
    assert!(
        v2.contains("TIMED-OUT") && v2.contains("still pending"),
        "{v2}"
    );
    assert!(line("v-3-VM").contains("skipped"));
    assert!(
        !out.contains("r-10-VM"),
        "--no-routers touched a router:\n{out}"
    );
    // The VM whose stop never finished was not started behind CloudStack's back.
    let starts: Vec<Value> = api.calls_of("startSystemVm");
    assert!(starts.is_empty(), "{starts:?}");
}

#[test]
fn a_stalled_server_does_not_stretch_the_deadline() {
    // The poll hangs: a poll without an answer by the deadline counts as a job still pending
    // (TIMED-OUT, with its job id), not as an API failure, and the other VMs carry on. (The
    // poll is cut at the deadline, so this takes ~2 s, not --api-timeout; not asserted.)
    let api = Api::start(fleet(
        json!({"v1": {"stopSystemVm": {"mode": "stall", "stall": 30}}}),
    ));
    let run = api
        .run(&[
            "restart-systemvms",
            "--yes",
            "--no-routers",
            "--deadline",
            "2",
            "--api-timeout",
            "25",
        ])
        .fails(1);
    let out = run.stdout();
    let s1 = out.lines().find(|l| l.starts_with("s-1-VM")).unwrap();
    assert!(
        s1.contains("TIMED-OUT") && s1.contains("still pending"),
        "{out}"
    );
    assert!(out
        .lines()
        .any(|l| l.starts_with("v-2-VM") && l.contains("restarted")));
}

#[test]
fn api_errors_are_one_line_naming_the_call() {
    let api = Api::start(json!({"commands": {"listSystemVms": {"http": 432,
        "errortext": "The given command:listSystemVms does not exist or it is not available for user"}}}));
    api.run(&["restart-systemvms", "--yes"])
        .fails(2)
        .one_error_line()
        .stderr_contains("listSystemVms: HTTP 432: The given command:listSystemVms does not exist");

    // A wrong secret: the server refuses the signature; nothing is written.
    let out_dir = tempdir();
    let out = out_dir.path().join("hosts.toml");
    api.run_with_secret(
        &["inventory", "from-cloudstack", "-o", out.to_str().unwrap()],
        "not-the-secret",
    )
    .fails(2)
    .one_error_line()
    .stderr_contains(
        "listHosts: HTTP 401: unable to verify user credentials and/or request signature",
    );
    assert!(listing(out_dir.path()).is_empty());
    let refused = api.calls_of("listHosts");
    assert_eq!(refused[0]["problem"], "signature mismatch");

    // No server at all: a bounded, one-line failure.
    let port = api.port;
    drop(api);
    let dir = tempdir();
    fs::write(dir.path().join("k"), "key\n").unwrap();
    Test::new()
        .args(["restart-systemvms", "--yes", "--api-url"])
        .arg(format!("http://127.0.0.1:{port}/client/api"))
        .arg("--api-key-file")
        .arg(dir.path().join("k"))
        .env("CLOUDSTACK_SECRET_KEY", "s")
        .fails(2)
        .one_error_line()
        .stderr_contains("listSystemVms: http://127.0.0.1");
}

#[test]
fn https_is_verified_against_the_given_ca() {
    let pki = tempdir();
    let (cert, key) = (pki.path().join("cert.pem"), pki.path().join("key.pem"));
    tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    let api = Api::start_with(
        five_hosts(),
        &[Path::new("--tls-cert"), &cert, Path::new("--tls-key"), &key],
    );
    assert!(api.url().starts_with("https://"));
    // An unknown CA is refused before any request is made...
    api.run(&["inventory", "from-cloudstack", "-o", "-"])
        .fails(2)
        .one_error_line()
        .stderr_contains("listHosts: https://127.0.0.1");
    assert!(api.calls().is_empty());
    // ...and trusted once given.
    let ca = cert.to_str().unwrap();
    api.run(&[
        "inventory",
        "from-cloudstack",
        "-o",
        "-",
        "--api-ca-file",
        ca,
    ])
    .success()
    .stdout_contains("name = \"kvm-02\"");
    assert_eq!(api.calls_of("listHosts")[0]["status"], 200);
}

#[test]
fn missing_keys_and_bad_urls_stop_before_any_call() {
    let api = Api::start(five_hosts());
    Test::new()
        .env_remove("CLOUDSTACK_API_KEY")
        .env_remove("CLOUDSTACK_SECRET_KEY")
        .args(["restart-systemvms", "--yes", "--api-url", &api.url()])
        .fails(2)
        .one_error_line()
        .stderr_contains("give --api-key-file FILE or set CLOUDSTACK_API_KEY");
    Test::new()
        .env("CLOUDSTACK_API_KEY", API_KEY)
        .env("CLOUDSTACK_SECRET_KEY", SECRET)
        .args([
            "restart-systemvms",
            "--yes",
            "--api-url",
            "ftp://127.0.0.1/x",
        ])
        .fails(2)
        .one_error_line()
        .stderr_contains("must start with http:// or https://");
    assert!(api.calls().is_empty());
}

#[test]
fn secrets_never_reach_output_or_argv() {
    let api = Api::start(fleet(json!({"v2": {"stopSystemVm": {"mode": "never"}}})));
    let mut child = Command::new(BIN)
        .args([
            "-vv",
            "restart-systemvms",
            "--yes",
            "--no-routers",
            "--deadline",
            "2",
        ])
        .args(["--poll-interval", "0.1", "--api-url", &api.url()])
        .env("CLOUDSTACK_API_KEY", API_KEY)
        .env("CLOUDSTACK_SECRET_KEY", SECRET)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While it runs, no process on this machine carries a key in its argv.
    let mut scans = 0;
    while child.try_wait().unwrap().is_none() {
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
                let cmdline = String::from_utf8_lossy(&cmdline);
                assert!(!cmdline.contains(SECRET), "secret in argv: {cmdline}");
                assert!(
                    !cmdline.contains(&API_KEY[..20]),
                    "API key in argv: {cmdline}"
                );
            }
        }
        scans += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(scans > 3, "the run ended before it could be watched");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("queryAsyncJobResult"),
        "-vv logs the calls:\n{all}"
    );
    for needle in [SECRET, &API_KEY[..20], "signature=", "apiKey="] {
        assert!(!all.contains(needle), "{needle} in the output:\n{all}");
    }
}

// --- propagate --restart-systemvms -----------------------------------------------------

#[test]
fn propagate_restarts_system_vms_only_after_an_update() {
    let api = Api::start(fleet(json!({})));
    let dir = tempdir();
    let (iso, secondary, inv) = vmware_bed(dir.path());
    let args = [
        "propagate",
        "--inventory",
        inv.to_str().unwrap(),
        "--iso",
        iso.to_str().unwrap(),
        "--restart-systemvms",
    ];
    api.run(&args)
        .success()
        .stdout_contains("updated")
        .stdout_contains("s-1-VM");
    assert_eq!(api.calls_of("startSystemVm").len(), 2);
    assert_eq!(api.calls_of("rebootRouter").len(), 2);

    // Only the release is asked again (listCapabilities); nothing is restarted.
    let restarts = |api: &Api| api.calls().len() - api.calls_of("listCapabilities").len();
    let before = restarts(&api);
    api.run(&args).success().stderr_contains("not restarted");
    assert_eq!(restarts(&api), before, "restarted although nothing changed");

    // Without keys, nothing is propagated at all.
    fs::remove_dir_all(&secondary).unwrap();
    fs::create_dir(&secondary).unwrap();
    Test::new()
        .env_remove("CLOUDSTACK_API_KEY")
        .env_remove("CLOUDSTACK_SECRET_KEY")
        .args(args)
        .args(["--api-url", &api.url()])
        .fails(2)
        .one_error_line();
    assert!(listing(&secondary).is_empty());
}

#[test]
fn list_capabilities_names_the_secondary_storage_file() {
    let mut state = fleet(json!({}));
    state["capability"] = json!({"cloudstackversion": "4.16.2.0"});
    let api = Api::start(state);
    let dir = tempdir();
    let (iso, secondary, inv) = vmware_bed(dir.path());
    let args = [
        "--inventory",
        inv.to_str().unwrap(),
        "--iso",
        iso.to_str().unwrap(),
    ];
    let status: Vec<&str> = ["status"].into_iter().chain(args).collect();
    api.run(&status)
        .fails(1)
        .stderr_contains("CloudStack 4.16.2.0 (from listCapabilities): takes an ISO, md5 digests");
    let propagate: Vec<&str> = ["propagate"].into_iter().chain(args).collect();
    api.run(&propagate).success();
    assert_eq!(
        listing(&secondary.join("systemvm")),
        ["systemvm-4.16.2.0.iso"]
    );
    assert_eq!(api.calls_of("listCapabilities").len(), 2);
}

// --- version check ---------------------------------------------------------------------

#[test]
fn version_check_applies_minreq_semantics() {
    let check = |min: &str, v: &str, code: i32| {
        Test::new()
            .args(["version", "check", "--min", min, v])
            .fails(code)
    };
    check("4.16.0.0", "4.16.0.0", 0).stdout_contains("accepted");
    check("4.16.0.0", "4.18.1.0", 0);
    check("4.16.0.0", "4.15.2.0", 1)
        .one_error_line()
        .stderr_contains("Requires Upgrade");
    check("4.16.0.0", "4.16.0.0-SNAPSHOT", 1);
    // Cosmic: date versions above the legacy scheme.
    check("16.4.1", "16.5.12", 0);
    check("16.4.1", "16.3.22", 1);
    check("16.4.1", "4.6.0", 1);
    check("4.16.0.0", "4.16.x", 2)
        .one_error_line()
        .stderr_contains("\"4.16.x\" is not a version");
    check("garbage", "4.16.0.0", 2).stderr_contains("--min");
}

#[test]
fn rust_log_trace_shows_no_api_key_secret_or_signature() {
    let api = Api::start(fleet(json!({"v2": {"stopSystemVm": {"mode": "never"}}})));
    let run = api
        .run(&[
            "-vv",
            "restart-systemvms",
            "--yes",
            "--no-routers",
            "--deadline",
            "2",
            "--poll-interval",
            "0.1",
        ])
        .env("RUST_LOG", "trace")
        .output();
    let err = run.stderr();
    assert!(!api.calls().is_empty(), "the API was called: {err}");
    assert!(!err.contains(SECRET), "secret in stderr: {err}");
    assert!(!err.contains(&API_KEY[..20]), "API key in stderr: {err}");
    assert!(
        !err.to_lowercase().contains("signature="),
        "signature in stderr: {err}"
    );
}

#[test]
fn restart_dry_run_lists_the_plan_and_changes_nothing() {
    let api = Api::start(fleet(json!({})));
    let run = api.run(&["restart-systemvms", "--dry-run"]).success();
    let out = run.stdout();
    assert!(
        out.contains("s-1-VM") && out.contains("would stop, then start"),
        "{out}"
    );
    assert!(
        out.contains("r-10-VM") && out.contains("would reboot"),
        "{out}"
    );
    assert!(
        out.contains("v-3-VM") && out.contains("would skip (not running)"),
        "{out}"
    );
    assert!(run.stderr().contains("nothing was changed"));
    let changing = [
        "stopSystemVm",
        "startSystemVm",
        "rebootSystemVm",
        "rebootRouter",
    ];
    for call in api.calls() {
        let command = call["command"].as_str().unwrap_or_default();
        assert!(!changing.contains(&command), "dry run called {command}");
    }
    assert!(!api.calls().is_empty(), "dry run did not even list");
}

#[test]
fn restart_of_every_zone_without_a_terminal_needs_yes() {
    let api = Api::start(fleet(json!({})));
    let run = api.run(&["restart-systemvms"]).fails(2);
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("pass --yes, or narrow it with --zone"),
        "{stderr}"
    );
    assert!(api.calls().is_empty(), "asked the API before confirming");
}

// --- live patching (4.17+) -------------------------------------------------------------

/// Two redundant routers of one network, one VPC router, and the system VMs.
fn patch_fleet() -> Value {
    let mut state = fleet(json!({}));
    let with = |mut r: Value, key: &str, id: &str| {
        r[key] = json!(id);
        r
    };
    state["routers"] = json!([
        with(router("r1", "r-10-VM", "admin"), "guestnetworkid", "net-1"),
        with(router("r2", "r-11-VM", "admin"), "guestnetworkid", "net-1"),
        with(router("r3", "r-12-VM", "tenant"), "vpcid", "vpc-1"),
    ]);
    state
}

#[test]
fn patch_systemvms_live_patches_each_vm_and_each_network_once() {
    let api = Api::start(patch_fleet());
    let plan = api
        .run(&["patch-systemvms", "--dry-run", "--zone", "z1"])
        .success();
    let out = plan.stdout();
    assert!(
        out.contains("would live-patch (patchSystemVm forced=false)"),
        "{out}"
    );
    assert!(
        out.contains("r-10-VM+r-11-VM") && out.contains("restartNetwork livepatch=true"),
        "{out}"
    );
    assert!(
        out.contains("r-12-VM") && out.contains("restartVPC livepatch=true"),
        "{out}"
    );
    let changing = ["patchSystemVm", "restartNetwork", "restartVPC"];
    assert!(api
        .calls()
        .iter()
        .all(|c| !changing.contains(&c["command"].as_str().unwrap_or_default())));

    let run = api
        .run(&[
            "patch-systemvms",
            "--zone",
            "z1",
            "--output-format",
            "json",
            "--poll-interval",
            "0.05",
        ])
        .success();
    let calls = api.calls_of("patchSystemVm");
    let patched: Vec<&str> = calls
        .iter()
        .map(|c| c["params"]["id"].as_str().unwrap())
        .collect();
    // The stopped console proxy is left to CloudStack.
    assert_eq!(patched.len(), 2, "{patched:?}");
    assert!(patched.contains(&"v1") && patched.contains(&"v2"));
    for call in api.calls_of("patchSystemVm") {
        assert_eq!(call["params"]["forced"], "false");
    }
    let networks = api.calls_of("restartNetwork");
    assert_eq!(networks.len(), 1, "one call for the redundant pair");
    assert_eq!(networks[0]["params"]["id"], "net-1");
    assert_eq!(networks[0]["params"]["livepatch"], "true");
    let vpcs = api.calls_of("restartVPC");
    assert_eq!(vpcs.len(), 1);
    assert_eq!(vpcs[0]["params"]["livepatch"], "true");
    assert!(api.calls_of("rebootRouter").is_empty() && api.calls_of("stopSystemVm").is_empty());
    let lines = common::schema::assert_schema(&run, "patch-systemvms");
    let summary = lines.last().unwrap();
    assert_eq!(summary["counts"]["restarted"], 4);
    assert_eq!(summary["counts"]["skipped"], 1);

    // --forced is passed on; without --zone and without a terminal, --yes is needed.
    api.run(&[
        "patch-systemvms",
        "--zone",
        "z1",
        "--forced",
        "--no-routers",
        "--poll-interval",
        "0.05",
    ])
    .success();
    assert!(api
        .calls_of("patchSystemVm")
        .iter()
        .any(|c| c["params"]["forced"] == "true"));
    api.run(&["patch-systemvms"])
        .fails(2)
        .one_error_line()
        .stderr_contains("patch-systemvms without --zone live-patches every zone's");
}

/// Issue #14: an `http://` API URL gets one warning line naming it; the run still works.
#[test]
fn a_plain_http_api_url_is_warned_about_once() {
    let api = Api::start(five_hosts());
    let out_dir = tempdir();
    let out = out_dir.path().join("hosts.toml");
    let run = api.run(&["inventory", "from-cloudstack", "-o", out.to_str().unwrap()]);
    assert_warned_once(&run.success().stderr(), &api.url());
    // A restart lists the VMs and restarts them through one client: still one line.
    let api = Api::start(fleet(json!({})));
    let run = api.run(&["restart-systemvms", "--yes", "--poll-interval", "0.05"]);
    assert_warned_once(&run.success().stderr(), &api.url());
}

#[track_caller]
fn assert_warned_once(stderr: &str, url: &str) {
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("plain http"))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(warned[0].contains(url), "{stderr}");
}
