//! The package sets (`appliance/packages/*.toml`) against CloudStack's own template build:
//! every package that release's `install_systemvm_packages.sh` installs is in our set, among
//! the packages Debian lacks (`--extra-deb`), or left out with a reason; every service its
//! `configure_systemvm_services.sh` enables or disables is in our services. Cosmic's set
//! likewise against its kickstart (installed, a Debian equivalent named, or left out with a
//! reason), and its services against what template.json, `scripts/ssh.sh` and the
//! kickstart enable and disable (by Debian's unit names). The trees are
//! `SYSTEMVM_CLOUDSTACK_TREES` (colon-separated) or `../shared/cloudstack/*`; without them
//! the comparison prints one line and passes.

use std::fs;
use std::path::{Path, PathBuf};
use systemvm::appliance::package_set::{self, PackageSet};

fn trees() -> Vec<PathBuf> {
    let listed: Vec<PathBuf> = match std::env::var_os("SYSTEMVM_CLOUDSTACK_TREES") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => {
            let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cloudstack");
            let mut found: Vec<PathBuf> = fs::read_dir(&shared)
                .map(|dir| dir.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            found.sort();
            found
        }
    };
    let trees: Vec<PathBuf> = listed
        .into_iter()
        .filter(|t| t.join(SCRIPTS).is_dir())
        .collect();
    if trees.is_empty() {
        eprintln!("skipped: no CloudStack trees (set SYSTEMVM_CLOUDSTACK_TREES or put them in ../shared/cloudstack)");
    }
    trees
}

const SCRIPTS: &str = "tools/appliance/systemvmtemplate/scripts";

/// The script with its backslash continuations joined, one command a line.
fn joined(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("\\\n", " ")
}

/// The names `apt-get ... install` lines take, `dpkg -i` packages and the downloaded
/// `/bin/vhd-util`.
fn script_packages(script: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in script.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let apt = words
            .first()
            .is_some_and(|w| *w == "apt-get" || *w == "${apt_get}");
        if apt {
            if let Some(at) = words.iter().position(|w| *w == "install") {
                names.extend(
                    words[at + 1..]
                        .iter()
                        .filter(|w| !w.starts_with('-') && !w.starts_with('$'))
                        .map(|w| w.to_string()),
                );
            }
        }
        if let ["dpkg", "-i", deb] = words[..] {
            names.push(deb.split('_').next().unwrap_or(deb).to_string());
        }
    }
    if script.contains("-O /bin/vhd-util") {
        names.push("vhd-util".into());
    }
    names.sort();
    names.dedup();
    names
}

/// `systemctl enable|disable NAME` lines: (verb, name).
fn script_services(script: &str) -> Vec<(String, String)> {
    script
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words[..] {
                ["systemctl", verb @ ("enable" | "disable"), name] => {
                    Some((verb.to_string(), name.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

fn tree_release(tree: &Path) -> String {
    let name = tree.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let version = systemvm::version::Version::parse(name)
        .unwrap_or_else(|_| panic!("{} is not named by its release", tree.display()));
    package_set::release_of(&version)
}

fn set_for(tree: &Path) -> PackageSet {
    let release = tree_release(tree);
    package_set::all()
        .unwrap()
        .into_iter()
        .find(|s| s.release == release)
        .unwrap_or_else(|| panic!("no package set for CloudStack {release}"))
}

#[test]
fn every_shipped_set_parses_and_no_group_is_empty() {
    let sets = package_set::all().unwrap();
    assert_eq!(sets.len(), package_set::SETS.len());
    for set in sets {
        assert!(!set.groups.is_empty(), "{}", set.release);
        for group in &set.groups {
            assert!(
                !group.packages.is_empty(),
                "{} {:?}",
                set.release,
                group.purpose
            );
        }
        for extra in &set.extras {
            assert!(
                !set.packages().contains(&extra.name),
                "{} is both a Debian package and an --extra-deb",
                extra.name
            );
        }
    }
}

#[test]
fn sets_cover_cloudstacks_package_script() {
    for tree in trees() {
        let script = joined(&tree.join(SCRIPTS).join("install_systemvm_packages.sh"));
        let theirs = script_packages(&script);
        assert!(theirs.len() > 80, "{}: {theirs:?}", tree.display());
        let set = set_for(&tree);
        let ours = set.packages();
        let missing: Vec<&String> = theirs
            .iter()
            .filter(|name| {
                !ours.contains(name)
                    && !set.extras.iter().any(|e| &e.name == *name)
                    && !set.omitted.iter().any(|o| &o.name == *name)
            })
            .collect();
        assert!(
            missing.is_empty(),
            "{}: CloudStack installs {missing:?}, our {} set does not say",
            tree.display(),
            set.release
        );
        for omitted in &set.omitted {
            assert!(
                theirs.contains(&omitted.name),
                "{} omits {}, which CloudStack does not install",
                set.release,
                omitted.name
            );
            if let Some(instead) = &omitted.instead {
                assert!(ours.contains(instead), "{instead}");
            }
        }
    }
}

#[test]
fn sets_enable_and_disable_what_cloudstack_does() {
    for tree in trees() {
        let script = joined(&tree.join(SCRIPTS).join("configure_systemvm_services.sh"));
        let set = set_for(&tree);
        let theirs = script_services(&script);
        assert!(theirs.len() > 20, "{}: {theirs:?}", tree.display());
        for (verb, name) in &theirs {
            let list = match verb.as_str() {
                "enable" => &set.services.enable,
                _ => &set.services.disable,
            };
            assert!(
                list.contains(name),
                "{}: CloudStack does `systemctl {verb} {name}`, our {} set does not",
                tree.display(),
                set.release
            );
        }
        let count = |verb: &str| theirs.iter().filter(|(v, _)| v == verb).count();
        assert_eq!(set.services.enable.len(), count("enable"));
        assert_eq!(set.services.disable.len(), count("disable"));
    }
}

/// The packages Cosmic's kickstart installs: the `%packages` section (removals with `-`
/// left out) and the `yum ... install` lines of `%post`.
fn kickstart_packages(kickstart: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_packages = false;
    for line in kickstart.lines().map(str::trim) {
        match line {
            "%packages" => in_packages = true,
            "%end" => in_packages = false,
            _ if in_packages => {
                if !line.is_empty() && !line.starts_with(['-', '#', '@']) {
                    names.push(line.to_string());
                }
            }
            _ => {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.first() == Some(&"yum") {
                    if let Some(at) = words.iter().position(|w| *w == "install") {
                        names.extend(
                            words[at + 1..]
                                .iter()
                                .filter(|w| !w.starts_with('-'))
                                .map(|w| w.to_string()),
                        );
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn cosmics_set_covers_its_kickstart() {
    let Some(tree) = crate::common::cosmic_tree() else {
        return;
    };
    let kickstart = tree.join("httpdir/kickstart/centos7.ks");
    let text =
        fs::read_to_string(&kickstart).unwrap_or_else(|e| panic!("{}: {e}", kickstart.display()));
    let theirs = kickstart_packages(&text);
    assert!(theirs.len() > 60, "{theirs:?}");
    let set = package_set::cosmic().unwrap();
    let ours = set.packages();
    let unaccounted: Vec<&String> = theirs
        .iter()
        .filter(|name| {
            !ours.contains(name)
                && !set.equivalents.iter().any(|e| &e.name == *name)
                && !set.omitted.iter().any(|o| &o.name == *name)
        })
        .collect();
    assert!(
        unaccounted.is_empty(),
        "Cosmic's kickstart installs {unaccounted:?}; cosmic.toml neither installs them, names an equivalent, nor leaves them out with a reason"
    );
    for named in set
        .equivalents
        .iter()
        .map(|e| &e.name)
        .chain(set.omitted.iter().map(|o| &o.name))
    {
        // Installed, or (tuned) enabled by the kickstart as part of CentOS's minimal set.
        assert!(
            theirs.contains(named) || text.split([' ', ',', '=']).any(|w| w == named),
            "cosmic.toml names {named}, which the kickstart does not mention"
        );
    }
}

/// CentOS's names for units that Debian's packages call otherwise.
const DEBIAN_UNIT: &[(&str, &str)] = &[
    ("iptables", "netfilter-persistent"),
    ("strongswan", "strongswan-starter"),
    ("sshd", "ssh"),
    ("ntpd", "chrony"),
    ("rpcidmapd", "nfs-idmapd"),
];

/// Units Cosmic's CentOS build names that have no counterpart in the Debian set: CentOS's
/// network-scripts (Debian's ifupdown needs no unit), tuned (left out in cosmic.toml),
/// kdump and rpc-rquotad (their packages are not installed).
const NOT_IN_DEBIAN: &[&str] = &["network", "tuned", "kdump", "rpc-rquotad"];

/// What Cosmic enables and disables: template.json's and `scripts/ssh.sh`'s `systemctl`
/// calls, its `for s in ...; do ... systemctl disable $s` loop, and the kickstart's
/// `services --enabled=... --disabled=...` line.
fn cosmic_services(tree: &Path) -> (Vec<String>, Vec<String>) {
    let read = |rel: &str| fs::read_to_string(tree.join(rel)).unwrap();
    let end = |c: char| c.is_whitespace() || matches!(c, '"' | ',' | ';');
    let word = |s: &str| s.split(end).next().unwrap_or("").to_string();
    let calls = read("template.json") + &read("scripts/ssh.sh");
    let mut enabled: Vec<String> = calls.split("systemctl enable ").skip(1).map(word).collect();
    let mut disabled: Vec<String> = Vec::new();
    for list in calls.split("for s in ").skip(1) {
        let (names, body) = list.split_once("; do").unwrap_or_default();
        if body.contains("systemctl disable $s") {
            disabled.extend(names.split_whitespace().map(str::to_string));
        }
    }
    let kickstart = read("httpdir/kickstart/centos7.ks");
    for field in kickstart
        .lines()
        .filter_map(|l| l.strip_prefix("services "))
    {
        for opt in field.split_whitespace() {
            if let Some(names) = opt.strip_prefix("--enabled=") {
                enabled.extend(names.split(',').map(str::to_string));
            }
            if let Some(names) = opt.strip_prefix("--disabled=") {
                disabled.extend(names.split(',').map(str::to_string));
            }
        }
    }
    (enabled, disabled)
}

#[test]
fn cosmics_set_enables_and_disables_what_its_template_does() {
    let Some(tree) = crate::common::cosmic_tree() else {
        return;
    };
    let (enabled, disabled) = cosmic_services(&tree);
    assert!(
        enabled.len() >= 12 && disabled.len() >= 7,
        "{enabled:?} {disabled:?}"
    );
    let services = package_set::cosmic().unwrap().services;
    let debian = |name: &String| -> String {
        let name = name.trim_end_matches(".service");
        let mapped = DEBIAN_UNIT.iter().find(|(centos, _)| *centos == name);
        mapped.map_or(name, |(_, debian)| debian).to_string()
    };
    let own_units = fs::read_dir(tree.join("files/systemd")).unwrap();
    let own: Vec<String> = own_units
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let listed =
        |list: &[String], name: &str| list.iter().any(|s| s.trim_end_matches(".service") == name);
    let is_own = |name: &str| {
        own.iter()
            .any(|u| u == name || *u == format!("{name}.service"))
    };
    for name in enabled.iter().map(debian) {
        assert!(
            is_own(&name) || NOT_IN_DEBIAN.contains(&name.as_str()) || listed(&services.enable, &name),
            "Cosmic enables {name}; cosmic.toml does not, and it is not one of the checkout's units"
        );
    }
    for name in disabled.iter().map(debian) {
        assert!(
            NOT_IN_DEBIAN.contains(&name.as_str()) || listed(&services.disable, &name),
            "Cosmic disables {name}; cosmic.toml does not"
        );
    }
}
