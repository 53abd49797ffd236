//! `systemvm doctor` on a real set-up (a config, an ISO, a key pair, an inventory with a
//! namespaced sshd test host): all fine exits 0; a PATH without xorriso, a key others can
//! read, a dead host and an unknown host key each show up with their fix, exit 1.

use crate::common;

use common::hosts::{start_many, HostOptions};
use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A directory of links to every tool doctor looks for that this machine has, but `skip`.
fn tool_path(dir: &Path, skip: &[&str]) -> PathBuf {
    let bin = dir.join(format!("bin-{}", skip.join("-")));
    fs::create_dir_all(&bin).unwrap();
    for tool in systemvm::doctor::TOOLS.iter().map(|t| t.program) {
        if skip.contains(&tool) {
            continue;
        }
        let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is not installed here (setup.sh installs it)"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    bin
}

fn doctor(path: &Path, config: &Path) -> Run {
    Test::new()
        .env("PATH", path)
        .args([
            "doctor",
            "--connect-timeout",
            "5",
            "--output-format",
            "json",
            "--config",
        ])
        .arg(config)
        .output()
}

/// The checks by name.
fn checks(run: &Run) -> std::collections::HashMap<String, serde_json::Value> {
    run.stdout()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["target"].is_string())
        .map(|v| (v["target"].as_str().unwrap().to_string(), v))
        .collect()
}

#[test]
fn doctor_finds_what_is_missing_and_says_how_to_fix_it() {
    let dir = tempdir();
    let (identity, public) = ssh_keygen(dir.path(), "client");
    let hosts = start_many(&dir.path().join("hosts"), 1, |_| HostOptions {
        authorized_keys: Some(public.clone()),
        ..Default::default()
    });
    let host = &hosts[0];
    let iso = dir.path().join("systemvm.iso");
    build_iso(&small_payload(dir.path()), &iso, &[]);
    let (key, _) = ssh_keygen(dir.path(), "id_ed25519");
    let known = dir.path().join("known_hosts");
    fs::write(&known, format!("{}\n", host.known_hosts_line())).unwrap();
    let write_inventory = |extra: &str| {
        let inv = dir.path().join("hosts.toml");
        fs::write(
            &inv,
            format!(
                "[defaults]\nidentity = \"{}\"\nknown_hosts = \"{}\"\n\
                 [[host]]\nname = \"kvm-1\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"kvm\"\n{extra}",
                identity.display(),
                known.display(),
                host.port
            ),
        )
        .unwrap();
        inv
    };
    let inv = write_inventory("");
    let config = dir.path().join("config.toml");
    let write_config = |management_dir: &Path| {
        let text = format!(
            "iso = \"{}\"\ninventory = \"{}\"\nmanagement_dir = \"{}\"\n[keys]\npath = \"{}\"\n",
            iso.display(),
            inv.display(),
            management_dir.display(),
            key.display()
        );
        fs::write(&config, text).unwrap();
    };
    // Not cloudstack-common's: startup would update this server's copy there first.
    let vms = dir.path().join("vms");
    write_config(&vms);
    let all = tool_path(dir.path(), &[]);
    let run = doctor(&all, &config).code(1);
    let missing = run
        .json_lines()
        .into_iter()
        .find(|c| c["kind"] == "config" && c["status"] == "missing")
        .unwrap_or_else(|| panic!("no management_dir check: {}", run.stdout()));
    assert!(missing["detail"]
        .as_str()
        .unwrap()
        .contains(&vms.display().to_string()));
    assert!(missing["fix"]
        .as_str()
        .unwrap()
        .contains("cloudstack-common"));
    fs::create_dir(&vms).unwrap();

    let fine = doctor(&all, &config).code(0);
    let c = checks(&fine);
    for name in ["xorriso", "qemu-img", "mmdebstrap", "mcopy", "kvm-1"] {
        assert_eq!(c[name]["status"], "ok", "{name}: {}", fine.stdout());
    }
    assert_eq!(c[key.to_str().unwrap()]["status"], "ok");
    assert_eq!(c[config.to_str().unwrap()]["status"], "ok");

    // No xorriso on PATH: reported with what it matters for and the package.
    let run = doctor(&tool_path(dir.path(), &["xorriso"]), &config).code(1);
    let x = &checks(&run)["xorriso"];
    assert_eq!(x["status"], "missing");
    assert_eq!(x["fix"], "apt-get install xorriso");
    assert!(x["matters_for"].as_str().unwrap().contains("build"));
    // The human format says the same, with the command to run.
    let human = Test::new()
        .env("PATH", tool_path(dir.path(), &["xorriso", "mcopy"]))
        .args(["doctor", "--no-hosts", "--config"])
        .arg(&config)
        .fails(1);
    let out = human.stdout();
    assert!(
        out.lines()
            .any(|l| l.starts_with("missing") && l.contains("xorriso")),
        "{out}"
    );
    assert!(out.contains("fix: apt-get install xorriso"), "{out}");
    assert!(out.contains("fix: apt-get install mtools"), "{out}");

    // A private key others can read, a dead host, a host whose key is not known.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    write_inventory(&format!(
        "[[host]]\nname = \"dead\"\naddress = \"127.0.0.1\"\nport = {dead_port}\nhypervisor = \"kvm\"\n"
    ));
    fs::write(&known, "").unwrap();
    let run = doctor(&all, &config).code(1);
    let c = checks(&run);
    let k = &c[key.to_str().unwrap()];
    assert_eq!(k["status"], "failed");
    assert_eq!(k["fix"], format!("chmod 600 {}", key.display()));
    assert_eq!(c["dead"]["status"], "failed");
    assert!(c["dead"]["detail"]
        .as_str()
        .unwrap()
        .contains("cannot connect"));
    assert_eq!(c["kvm-1"]["status"], "failed");
    assert!(c["kvm-1"]["fix"].as_str().unwrap().contains("--accept-new"));
    assert_eq!(
        fs::read_to_string(&known).unwrap(),
        "",
        "doctor pinned a host key"
    );
}

#[test]
fn doctor_reports_a_bad_config_with_its_line() {
    let dir = tempdir();
    let config = dir.path().join("config.toml");
    fs::write(&config, "deadline = 10\njobs = 0\n").unwrap();
    let run = Test::new()
        .args([
            "doctor",
            "--no-hosts",
            "--no-appliance",
            "--output-format",
            "json",
            "--config",
        ])
        .arg(&config)
        .fails(1);
    let c = checks(&run);
    let entry = &c[config.to_str().unwrap()];
    assert_eq!(entry["status"], "failed");
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:2: ", config.display())),
        "{entry}"
    );
}

/// The startup unit's `ProtectSystem=strict` leaves a VMware mount read-only unless its
/// `ReadWritePaths=` (unit and drop-ins) covers it: doctor fails that mount with a fix that
/// writes the drop-in; the fix, run under the test's systemd root, makes it pass. Nothing
/// else changes.
#[test]
fn doctor_checks_the_units_read_write_paths_cover_each_vmware_mount() {
    let dir = tempdir();
    let root = dir.path().join("systemd-root");
    let units = root.join("lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemvm-startup.service");
    fs::copy(&unit, units.join("systemvm-startup.service")).unwrap();
    let nfs = dir.path().join("mnt/secondary");
    fs::create_dir_all(&nfs).unwrap();
    let inv = dir.path().join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[[secondary]]\nname = \"nfs-zone1\"\nhypervisor = \"vmware\"\nrequire_mount = false\npath = \"{}\"\n",
            nfs.display()
        ),
    )
    .unwrap();
    let doctor = || {
        Test::new()
            .args([
                "doctor",
                "--no-hosts",
                "--no-appliance",
                "--output-format",
                "json",
            ])
            .arg("--systemd-root")
            .arg(&root)
            .arg("--inventory")
            .arg(&inv)
            .output_within(std::time::Duration::from_secs(30))
            .run
    };
    let name = format!("systemvm-startup.service {}", nfs.display());
    let before = listing(&root);

    let run = doctor().code(1);
    let c = checks(&run);
    assert_eq!(c[&name]["status"], "failed", "{}", run.stdout());
    let detail = c[&name]["detail"].as_str().unwrap();
    assert!(
        detail.contains("not in systemvm-startup.service's ReadWritePaths"),
        "{detail}"
    );
    let fix = c[&name]["fix"].as_str().unwrap().to_string();
    let drop_in = "/etc/systemd/system/systemvm-startup.service.d/vmware.conf";
    assert!(fix.contains(drop_in), "{fix}");
    let problems: Vec<_> = c.values().filter(|v| v["status"] == "failed").collect();
    assert_eq!(problems.len(), 1, "{}", run.stdout());
    assert_eq!(listing(&root), before, "doctor changed something");

    // The fix as printed, under the test's root and without a systemd to reload.
    let local_fix = fix
        .replace("/etc/systemd", &format!("{}/etc/systemd", root.display()))
        .replace("systemctl daemon-reload", "true");
    tool("sh", &["-c", &local_fix]);
    let conf = fs::read_to_string(root.join(drop_in.trim_start_matches('/'))).unwrap();
    assert_eq!(
        conf,
        format!("[Service]\nReadWritePaths=-{}\n", nfs.display())
    );
    let run = doctor().code(0);
    assert_eq!(checks(&run)[&name]["status"], "ok", "{}", run.stdout());
}
