//! `listHosts type=Routing` to an inventory (`hosts.toml`) an admin completes: one
//! `[[host]]` per XenServer or KVM host (name, address, hypervisor, zone and cluster
//! labels), commented `[[secondary]]` hints for the zones whose VMware or Hyper-V hosts take
//! the ISO from secondary storage, and a `[defaults]` table whose credential lines are left
//! commented for the admin to fill in. Values go through the TOML serializer, so a
//! hostile name or zone cannot break out of its string.

use crate::inventory::address_chars;
use crate::kind::Hypervisor;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// The inventory text and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// `[[host]]` entries written.
    pub hosts: usize,
    /// Zones given a commented `[[secondary]]` hint.
    pub secondary_hints: usize,
    /// Hosts left out, with the reason (also written as comments).
    pub skipped: Vec<String>,
}

fn field<'a>(host: &'a Value, key: &str) -> Option<&'a str> {
    host.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A comment may not carry a line break.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A name the inventory accepts: letters, digits, `.`, `_`, `-`, at most 64, not starting
/// with `.` or `-`.
fn safe_name(raw: &str, fallback: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    let mapped: String = raw.chars().map(|c| if safe(c) { c } else { '-' }).collect();
    let trimmed = mapped.trim_start_matches(['.', '-']);
    let cut: String = trimmed.chars().take(64).collect();
    if cut.is_empty() {
        fallback.to_string()
    } else {
        cut
    }
}

fn unique(name: String, taken: &mut HashSet<String>) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    for n in 2.. {
        let suffix = format!("-{n}");
        let base: String = name.chars().take(64 - suffix.len()).collect();
        let candidate = format!("{base}{suffix}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
    unreachable!("an unbounded counter finds a free name")
}

/// The zone label: its name, else its id.
fn zone_of(host: &Value) -> Option<&str> {
    field(host, "zonename").or_else(|| field(host, "zoneid"))
}

/// Render the inventory. `source` says where it came from (the API URL, the zone filter).
pub fn render(hosts: &[Value], source: &str) -> Rendered {
    let mut body = String::new();
    let mut taken = HashSet::new();
    let mut written = 0;
    let mut skipped = Vec::new();
    // (zone label, hypervisor) -> host descriptions
    let mut secondary: BTreeMap<(String, Hypervisor), Vec<String>> = BTreeMap::new();
    for (i, host) in hosts.iter().enumerate() {
        match classify(host) {
            Kind::Host(kind, address) => {
                let fallback = format!("host-{}", i + 1);
                let name = safe_name(field(host, "name").unwrap_or(""), &fallback);
                let name = unique(name, &mut taken);
                body.push_str(&host_entry(host, &name, address, kind));
                written += 1;
            }
            Kind::Secondary(zone, kind, member) => {
                secondary.entry((zone, kind)).or_default().push(member)
            }
            Kind::Skipped(why) => {
                body.push_str(&format!("# skipped {why}\n\n"));
                skipped.push(why);
            }
        }
    }
    for ((zone, hypervisor), members) in &secondary {
        let name = safe_name(&format!("secondary-{zone}"), "secondary");
        let name = unique(name, &mut taken);
        body.push_str(&secondary_hint(zone, *hypervisor, members, &name));
    }
    Rendered {
        text: format!("{}{body}", header(source, written)),
        hosts: written,
        secondary_hints: secondary.len(),
        skipped,
    }
}

/// What a listed host becomes in the inventory.
enum Kind<'a> {
    /// A `[[host]]` of this hypervisor, at this address.
    Host(Hypervisor, &'a str),
    /// A VMware or Hyper-V host: a hint for its zone's secondary storage (zone, kind, line).
    Secondary(String, Hypervisor, String),
    /// Not ours to update, or unusable: why.
    Skipped(String),
}

fn classify(host: &Value) -> Kind<'_> {
    let name = field(host, "name").or_else(|| field(host, "id"));
    let shown = one_line(name.unwrap_or("?"));
    let hypervisor = field(host, "hypervisor").unwrap_or("");
    let address = field(host, "ipaddress").unwrap_or("");
    match hypervisor.parse::<Hypervisor>() {
        Ok(kind @ (Hypervisor::Xenserver | Hypervisor::Kvm)) if address_chars(address) => {
            Kind::Host(kind, address)
        }
        Ok(Hypervisor::Xenserver | Hypervisor::Kvm) => Kind::Skipped(format!(
            "{shown}: no usable ipaddress ({:?})",
            one_line(address)
        )),
        Ok(kind @ (Hypervisor::Vmware | Hypervisor::Hyperv)) => {
            let zone = zone_of(host).unwrap_or(NO_ZONE).to_string();
            Kind::Secondary(zone, kind, one_line(&format!("{shown} {address}")))
        }
        Ok(Hypervisor::Management) | Err(_) => Kind::Skipped(format!(
            "{shown}: hypervisor {:?} takes no systemvm.iso from us",
            one_line(&hypervisor.to_ascii_lowercase())
        )),
    }
}

/// The zone label of hosts that name none.
const NO_ZONE: &str = "(no zone)";

/// A `[[host]]` entry, after a comment of what CloudStack says about the host.
fn host_entry(host: &Value, name: &str, address: &str, kind: Hypervisor) -> String {
    let mut about = vec![];
    for key in ["id", "state", "hypervisorversion", "zoneid", "clusterid"] {
        // Each as `key value`, but the version as `<hypervisor> <version>`.
        let label = match key {
            "hypervisorversion" => field(host, "hypervisor").unwrap_or(""),
            _ => key,
        };
        if let Some(v) = field(host, key) {
            about.push(format!("{label} {v}"));
        }
    }
    let mut entry = String::new();
    if !about.is_empty() {
        entry.push_str(&format!("# {}\n", one_line(&about.join(", "))));
    }
    entry.push_str("[[host]]\n");
    entry.push_str(&format!("name = {}\n", quoted(name)));
    entry.push_str(&format!("address = {}\n", quoted(address)));
    entry.push_str(&format!("hypervisor = {}\n", quoted(kind.as_str())));
    if kind == Hypervisor::Xenserver {
        entry.push_str(XENSERVER_PROFILES);
    }
    if let Some(zone) = zone_of(host) {
        entry.push_str(&format!("zone = {}\n", quoted(zone)));
    }
    if let Some(cluster) = field(host, "clustername").or_else(|| field(host, "clusterid")) {
        entry.push_str(&format!("cluster = {}\n", quoted(cluster)));
    }
    entry.push('\n');
    entry
}

/// The XenServer profiles an operator picks from, as comments.
const XENSERVER_PROFILES: &str = "\
# profile = \"xcp\"                 # XCP-ng up to 8.2, Citrix Hypervisor
# profile = \"xcpng83\"             # XCP-ng 8.3 (CloudStack 4.21+)
# profile = \"xenserver84\"         # XenServer 8.4 (CloudStack 4.21+)
";

/// A commented `[[secondary]]` for a zone's VMware or Hyper-V hosts, to fill in.
fn secondary_hint(zone: &str, hypervisor: Hypervisor, members: &[String], name: &str) -> String {
    let vmware = hypervisor == Hypervisor::Vmware;
    let (label, how) = if vmware {
        (
            "VMware",
            "# Mount that storage on this machine, set its path and uncomment the entry.\n",
        )
    } else {
        (
            "Hyper-V",
            "# Set that storage's SMB share and credentials and uncomment the entry.\n",
        )
    };
    let mut hint = format!(
        "# {label} hosts in zone {} take the ISO from the zone's secondary storage:\n",
        one_line(zone)
    );
    for m in members {
        hint.push_str(&format!("#   {m}\n"));
    }
    hint.push_str(how);
    hint.push_str("# [[secondary]]\n");
    hint.push_str(&format!("# name = {}\n", quoted(name)));
    hint.push_str(&format!("# hypervisor = {}\n", quoted(hypervisor.as_str())));
    if vmware {
        let path = format!("/mnt/secondary/{name}");
        hint.push_str(&format!("# path = {}\n", quoted(&path)));
    } else {
        let password_file = format!("/etc/systemvm/{name}.password");
        hint.push_str("# share = \"//SERVER/SHARE\"\n# user = \"USER\"\n");
        hint.push_str(&format!("# password_file = {}\n", quoted(&password_file)));
    }
    if zone != NO_ZONE {
        hint.push_str(&format!("# zone = {}\n", quoted(&one_line(zone))));
    }
    hint.push('\n');
    hint
}

/// Where the inventory came from, and `[defaults]` with the ways to log in commented out.
fn header(source: &str, written: usize) -> String {
    format!(
        "# systemvm inventory, written by `systemvm inventory from-cloudstack`\n\
         # from listHosts type=Routing at {}: {written} hosts.\n\
         # Credentials are not in CloudStack's answer: fill them in below (or per host),\n\
         # then check with `systemvm status --inventory FILE`.\n\n\
         [defaults]\n\
         user = \"root\"\n\
         # Uncomment exactly one way to log in (a [[host]] may override it):\n\
         # identity = \"/etc/systemvm/id_ed25519\"          # SSH client key\n\
         # password_file = \"/etc/systemvm/host-password\"  # its first line is the password\n\
         # password_env = \"SYSTEMVM_HOST_PASSWORD\"        # an environment variable\n\
         # known_hosts = \"/etc/systemvm/known_hosts\"\n\n",
        one_line(source)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use serde_json::json;
    use std::path::Path;

    fn hosts() -> Vec<Value> {
        vec![
            json!({"id": "h1", "name": "xen-01", "type": "Routing", "hypervisor": "XenServer",
                   "ipaddress": "10.1.0.11", "zoneid": "z1", "zonename": "Zone \"One\"",
                   "clusterid": "c1", "clustername": "Cluster 1", "state": "Up"}),
            json!({"id": "h2", "name": "kvm 02; rm -rf /", "hypervisor": "KVM",
                   "ipaddress": "10.1.0.12", "zonename": "Zone2"}),
            json!({"id": "h3", "name": "xen-01", "hypervisor": "XenServer",
                   "ipaddress": "10.1.0.13"}),
            json!({"id": "h4", "name": "esx-01", "hypervisor": "VMware",
                   "ipaddress": "10.1.0.14", "zonename": "Zone2"}),
            json!({"id": "h5", "name": "sim", "hypervisor": "Simulator", "ipaddress": "1.2.3.4"}),
            json!({"id": "h6", "name": "kvm-bad", "hypervisor": "KVM", "ipaddress": "a b"}),
            json!({"id": "h7", "name": "kvm-opt", "hypervisor": "KVM", "ipaddress": "-1.2.3.4"}),
        ]
    }

    #[test]
    fn loads_once_credentials_are_filled_in() {
        let r = render(&hosts(), "http://127.0.0.1/client/api");
        assert_eq!((r.hosts, r.secondary_hints, r.skipped.len()), (3, 1, 3));
        let err = Inventory::parse(&r.text, Path::new("h.toml")).unwrap_err();
        assert!(err.to_string().contains("no credentials"), "{err}");
        let filled = r.text.replace(
            "# identity = \"/etc/systemvm/id_ed25519\"",
            "identity = \"/etc/systemvm/id_ed25519\"",
        );
        let inv = Inventory::parse(&filled, Path::new("h.toml")).unwrap();
        let names: Vec<&str> = inv.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["xen-01", "kvm-02--rm--rf--", "xen-01-2"]);
        assert_eq!(inv.targets[0].zone.as_deref(), Some("Zone \"One\""));
        assert_eq!(inv.targets[0].cluster.as_deref(), Some("Cluster 1"));
        assert_eq!(inv.targets[1].hypervisor, Hypervisor::Kvm);
    }

    #[test]
    fn hyperv_hint_loads_once_uncommented() {
        let hyperv = json!({"id": "h7", "name": "hv-01", "hypervisor": "Hyperv",
                            "ipaddress": "10.1.0.31", "zonename": "Zone3"});
        let r = render(&[hyperv], "http://127.0.0.1/client/api");
        assert_eq!((r.hosts, r.secondary_hints), (0, 1));
        let uncommented: String = r
            .text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with("[[secondary]]") || rest.contains(" = ") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let inv = Inventory::parse(&uncommented, Path::new("h.toml")).unwrap();
        let target = &inv.targets[0];
        assert_eq!(target.hypervisor, Hypervisor::Hyperv);
        assert!(
            matches!(&target.access, crate::inventory::Access::Smb(s, _) if s.share == "SHARE"),
            "{:?}",
            target.access
        );
    }
}
