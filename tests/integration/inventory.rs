//! Inventory mistakes stop a run before any host is contacted, with one line naming the
//! file, the line and the key.

use crate::common;

use common::*;
use std::fs;

fn status_with(inventory: &str) -> Run {
    let dir = tempdir();
    let iso = dir.path().join("systemvm.iso");
    build_iso(&small_payload(dir.path()), &iso, &[]);
    let inv = dir.path().join("hosts.toml");
    fs::write(&inv, inventory).unwrap();
    let run = Test::new()
        .args(["status", "--inventory"])
        .arg(&inv)
        .arg("--iso")
        .arg(&iso)
        .fails(2)
        .one_error_line();
    assert!(
        run.stderr().contains(&format!("{}:", inv.display())),
        "{}",
        run.stderr()
    );
    run
}

const HOST: &str = "[defaults]\nidentity = \"/k\"\n\n[[host]]\nname = \"xen-01\"\naddress = \"127.0.0.1\"\nhypervisor = \"xenserver\"\n";

#[test]
fn mistakes_name_file_line_and_key() {
    status_with(&HOST.replace("address", "adress")).stderr_contains(":6: unknown field `adress`");
    status_with(&format!(
        "{HOST}\n{}",
        &HOST[HOST.find("[[host]]").unwrap()..]
    ))
    .stderr_contains(":10: duplicate name \"xen-01\"");
    status_with(&HOST.replace("xen-01", "; rm -rf /"))
        .stderr_contains(":5: name \"; rm -rf /\" is not allowed");
    status_with(&HOST.replace(
        "hypervisor = \"xenserver\"",
        "hypervisor = \"xenserver\"\nport = \"22\"",
    ))
    .stderr_contains(":8: invalid type");
    status_with(&HOST.replace("xenserver", "ovm3")).stderr_contains(
        ":7: unknown hypervisor \"ovm3\" (supported: xenserver, kvm, vmware, hyperv, management)",
    );
    status_with(&format!("{HOST}\n[profile.xenserver]\niso_pth = \"/x\"\n"))
        .stderr_contains("iso_pth");
}

#[test]
fn shell_metacharacters_in_addresses_and_users_are_refused() {
    for address in [
        "127.0.0.1; touch /tmp/pwned",
        "$(reboot)",
        "`id`",
        "-oProxyCommand=sh",
        "10.0.0.1 && rm -rf /",
        "host|nc",
    ] {
        let run = status_with(&HOST.replace("127.0.0.1", address));
        run.stderr_contains(&format!(
            ":6: address {address:?} is not a host name or IP address"
        ));
    }
    status_with(&HOST.replace(
        "hypervisor = \"xenserver\"",
        "hypervisor = \"xenserver\"\nuser = \"root; rm -rf /\"",
    ))
    .stderr_contains(":5: user \"root; rm -rf /\" is not a login name");
    status_with(&HOST.replace("[defaults]\n", "[defaults]\nuser = \"-oX\"\n"))
        .stderr_contains(":2: user \"-oX\" is not a login name");
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}
