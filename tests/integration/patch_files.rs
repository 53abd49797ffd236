//! CloudStack 4.17+ patch files: the loose files reach XenServer, KVM and the management
//! server's folder, checked by sha512; only files that differ are sent again.

use crate::common;

use common::hosts::{start_many, HostOptions};
use common::*;
use std::fs;
use std::process::Command;

const NAMES: [&str; 3] = ["agent.zip", "cloud-scripts.tgz", "patch-sysvms.sh"];

#[test]
fn patch_files_reach_every_kind_of_target_and_only_changes_are_resent() {
    let dir = tempdir();
    let (payload, build) = patch_files_build(dir.path());

    let (identity, public) = ssh_keygen(dir.path(), "client");
    let hosts = start_many(&dir.path().join("hosts"), 2, |_| HostOptions {
        authorized_keys: Some(public.clone()),
        ..Default::default()
    });
    // The management server's own directory is there (cloudstack-common made it).
    let mgmt = dir.path().join("mgmt-vms");
    fs::create_dir(&mgmt).unwrap();
    let vmware = dir.path().join("vmware-secondary");
    fs::create_dir_all(&vmware).unwrap();
    let inv = dir.path().join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[defaults]\nidentity = \"{}\"\n\
             [[host]]\nname = \"xen\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"xenserver\"\n\
             [[host]]\nname = \"kvm\"\naddress = \"127.0.0.1\"\nport = {}\nhypervisor = \"kvm\"\n\
             [[secondary]]\nname = \"mgmt\"\nhypervisor = \"management\"\npath = \"{}\"\n\
             [[secondary]]\nname = \"nfs\"\nhypervisor = \"vmware\"\nrequire_mount = false\npath = \"{}\"\n",
            identity.display(),
            hosts[0].port,
            hosts[1].port,
            mgmt.display(),
            vmware.display()
        ),
    )
    .unwrap();
    let known = dir.path().join("known_hosts");
    fs::write(
        &known,
        format!(
            "{}\n{}\n",
            hosts[0].known_hosts_line(),
            hosts[1].known_hosts_line()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Test::new()
            .args(["propagate", "--retries", "0", "--patch-files"])
            .arg(&build)
            .arg("--inventory")
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&known)
            .args(extra.iter().copied())
            .output()
    };

    let first = run(&[]).code(0);
    assert!(
        !first.stdout().contains("nfs"),
        "VMware takes no patch files:\n{}",
        first.stdout()
    );
    let xen_dir = hosts[0].path("/opt/xensource/packages/resources");
    let kvm_dir = hosts[1].path("/usr/share/cloudstack-common/vms");
    for folder in [&xen_dir, &kvm_dir, &mgmt] {
        for name in NAMES {
            assert_eq!(
                fs::read(folder.join(name)).unwrap(),
                fs::read(build.join(name)).unwrap(),
                "{name} in {}",
                folder.display()
            );
        }
        // sha512sum itself agrees with the build's list.
        fs::copy(build.join("sha512sums"), dir.path().join("sums")).unwrap();
        let check = Command::new("sha512sum")
            .arg("-c")
            .arg(dir.path().join("sums"))
            .current_dir(folder)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    assert!(listing(&vmware).is_empty());

    run(&[]).code(0).stdout_contains("current");
    fs::write(kvm_dir.join("cloud-scripts.tgz"), b"tampered").unwrap();
    let plan = run(&["--dry-run"]).code(0);
    assert!(
        plan.stdout()
            .contains("kvm: push (sha512 differs: cloud-scripts.tgz)"),
        "{}",
        plan.stdout()
    );
    assert_eq!(
        plan.stdout().matches("upload ").count(),
        1,
        "{}",
        plan.stdout()
    );
    run(&[]).code(0);
    assert_eq!(
        fs::read(kvm_dir.join("cloud-scripts.tgz")).unwrap(),
        fs::read(build.join("cloud-scripts.tgz")).unwrap()
    );

    // A directory that is not a patch-files build is refused up front.
    let iso = dir.path().join("systemvm.iso");
    build_iso(&payload, &iso, &[]);
    Test::new()
        .args(["propagate", "--patch-files"])
        .arg(dir.path())
        .arg("--inventory")
        .arg(&inv)
        .fails(2)
        .one_error_line()
        .stderr_contains("is not a patch-files build");
}

#[test]
fn the_management_servers_release_decides_iso_or_patch_files() {
    let dir = tempdir();
    let (payload, build) = patch_files_build(dir.path());
    let iso = dir.path().join("systemvm.iso");
    build_iso(&payload, &iso, &[]);
    // The management server's own directory is there (cloudstack-common made it).
    let mgmt = dir.path().join("mgmt-vms");
    fs::create_dir(&mgmt).unwrap();
    let vmware = dir.path().join("vmware-secondary");
    fs::create_dir_all(&vmware).unwrap();
    let inv = dir.path().join("hosts.toml");
    fs::write(
        &inv,
        format!(
            "[defaults]\ncloudstack_version = \"4.20.0.0\"\n\
             [[secondary]]\nname = \"mgmt\"\nhypervisor = \"management\"\npath = \"{}\"\n\
             [[secondary]]\nname = \"nfs\"\nhypervisor = \"vmware\"\nrequire_mount = false\npath = \"{}\"\n",
            mgmt.display(),
            vmware.display()
        ),
    )
    .unwrap();
    let propagate = || {
        Test::new()
            .env_remove("CLOUDSTACK_API_URL")
            .args(["propagate", "--inventory"])
            .arg(&inv)
    };

    // 4.20 reads patch files: an ISO is refused before anything is touched.
    propagate()
        .arg("--iso")
        .arg(&iso)
        .fails(2)
        .one_error_line()
        .stderr_contains("CloudStack 4.20.0.0 (from the inventory): takes patch files")
        .stderr_contains("pass --patch-files DIR");
    assert!(listing(&mgmt).is_empty() && listing(&vmware).is_empty());

    // Patch files: the management target gets them, VMware is left out, saying why.
    let run = propagate()
        .args(["--output-format", "json", "--patch-files"])
        .arg(&build)
        .output()
        .code(0);
    let first: serde_json::Value =
        serde_json::from_str(run.stdout().lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "cloudstack");
    assert_eq!(first["version"], "4.20.0.0");
    assert_eq!(first["source"], "inventory");
    assert_eq!(first["takes"], "patch-files");
    assert_eq!(first["digest"], "md5");
    assert!(run
        .stderr()
        .contains("nfs: left out: CloudStack 4.17+ reads no ISO from VMware secondary storage"));
    for name in NAMES {
        assert!(mgmt.join(name).is_file(), "{name}");
    }
    assert!(listing(&vmware).is_empty());

    // The flag overrides the inventory; a 4.16 server takes an ISO, not patch files.
    propagate()
        .args(["--cloudstack-version", "4.16.0.0", "--patch-files"])
        .arg(&build)
        .fails(2)
        .one_error_line()
        .stderr_contains("CloudStack 4.16.0.0 (from --cloudstack-version): takes an ISO");
    propagate()
        .args(["--cloudstack-version", "4.2x"])
        .arg("--iso")
        .arg(&iso)
        .fails(2)
        .one_error_line()
        .stderr_contains("--cloudstack-version");
}
