//! Acceptance: CloudStack's template, booted and driven as a KVM host drives it. Not in the
//! default run (the full package set and minutes of TCG emulation); run it with
//!
//!     cargo test --test integration appliance_cloudstack_boot:: -- --ignored --nocapture
//!
//! It builds the template from the newest CloudStack 4.17+ tree (`SYSTEMVM_CLOUDSTACK_TREES`
//! or `../shared/cloudstack/*`) with that release's package set (set
//! `SYSTEMVM_APPLIANCE_ROOTFS` to a kept rootfs tarball to skip mmdebstrap), exports the
//! qcow2, builds the tree's patch files with `systemvm build` at the same epoch, and makes a
//! key pair; once per test process, both boots share it.
//! Each boot runs the qcow2 under QEMU (TCG) with NICs on QEMU's user network (the
//! link-local control network's port 3922 forwarded to loopback) and a virtio-serial channel
//! `org.qemu.guest_agent.0` on a socket, and does what the host does:
//! 1. speaks the guest-agent protocol itself (`guest-ping`, `guest-sync`,
//!    `guest-file-open/write/close`), as `scripts/vm/hypervisor/kvm/patch.sh`, to write
//!    `/var/cache/cloud/cmdline` with `authorized_key=<base64>`;
//! 2. copies the patch files with `scp -P 3922` and the private key into `/var/cache/cloud/`;
//! 3. waits for `patched.sh "/opt/cloud/bin/keystore*"` to succeed over SSH, and for
//!    `cloud-early-config` to take the tarball and finish (`boot_up_done`).
//!
//! The two boots:
//! - **A virtual router** (SeaBIOS; eth0 a guest network, eth1 control): then two router
//!   changes as the management server makes them, each a JSON file into
//!   `/var/cache/cloud/` and CloudStack's own `update_config.py` on it: a DHCP entry (in
//!   `/etc/dhcphosts.txt` and `/etc/hosts`) and a static route (`static_routes.json.*`,
//!   type `staticroutes`, the `network`/`gateway`/`revoke` that `CsStaticRoutes.py` reads:
//!   `ip route` shows it via eth0), each archived in `processed/`.
//! - **A secondary storage VM** (OVMF: GRUB's `EFI/BOOT/BOOTX64.EFI` on the ESP, no boot
//!   entry; eth0 control, where `init.sh` puts sshd on KVM, eth1 management, eth2 public),
//!   with an SSVM's `type=secstorage` command line: `java -version` exits 0 and `agent.zip`
//!   is unpacked into `/usr/local/cloud/systemvm` (scripts executable, the command line in
//!   `conf/agent.properties`). The agent zip of a checkout has no JARs, so the Java agent
//!   itself does not start; that is not checked. Both VMs take the patch files built from
//!   the same tree at the template's epoch: `cloud-early-config` touches `patch.required`
//!   only when the tarball's md5 differs from the template's signature, and `bootstrap.sh`
//!   unpacks `agent.zip` only then. When the template kept the very same bytes, the agent
//!   was never unpacked (`cloud.log`: `oldmd5=3cd3... newmd5=3cd3...`, no
//!   `/usr/local/cloud/systemvm`); the template's copy now differs in its gzip header.
//!
//! Two things are emulated, both at the edge (QEMU's command line and a qcow2 overlay; the
//! template is what `appliance build` wrote):
//! - **The KVM identity.** CloudStack disables qemu-guest-agent in the template; `init.sh`
//!   starts it only when `virt-what` says `kvm`. Under TCG virt-what sees the CPUID leaf
//!   `TCGTCGTCGTCG` (or SMBIOS `Manufacturer: QEMU`) and says `qemu`, so no agent ever
//!   answers. QEMU gets `-cpu qemu64,tcg-cpuid=off -smbios type=1,product=KVM`, and
//!   virt-what in the VM prints `kvm`, as on a KVM host.
//! - **`earlyprintk=xen`.** CloudStack's kernel command line (its `configure_grub.sh`) has
//!   it; Linux's Xen early console then makes a Xen hypercall (VMCALL, eax 18) on any
//!   hypervisor. KVM answers ENOSYS; TCG raises #UD and the kernel dies before its first
//!   line (QEMU `-d int`: `v=06 ... EAX=0000000000000012`, repeated). The test boots a
//!   qcow2 overlay over the export in which those 16 bytes of grub.cfg are spaces; GRUB,
//!   the kernel, the initramfs and the rest of the command line (`quiet` included) are the
//!   template's. The ESP's grub.cfg is the one both firmwares read.
//!
//! Status: both pass (4.20, TCG, 2 cores, another job sometimes running). Wall times of one
//! run (4 December 2026): without a kept rootfs the build is 231 s and the qcow2 export
//! 71 s; with `SYSTEMVM_APPLIANCE_ROOTFS` build and export 86-116 s; bunzip2 18-24 s. The
//! router (SeaBIOS), from QEMU's start: guest agent answered 58 s, patch files copied (SSH
//! on 3922 up) 89 s, `patched.sh` 89 s, `boot_up_done` 183 s; then `update_config.py`
//! 6.1 s for the DHCP entry and 4.4 s for the static route. The SSVM (OVMF): agent 50-57 s,
//! copied 83 s, `patched.sh` 84 s, `boot_up_done` 135 s (`cloud-early-config`'s 5th try),
//! `java -version` and the agent checked by 138 s. Both tests in one run: 449 s with a
//! kept rootfs. After the template's tarball got its own gzip time (both VMs on the same
//! patch files, same tree and epoch as the template): the build 109 s with a kept rootfs;
//! the router's agent 47 s, `patched.sh` 68 s, `boot_up_done` 130 s, the static route
//! 2.0 s; the SSVM's agent 46 s, `patched.sh` 67 s, `boot_up_done` 118 s, the agent
//! unpacked by 120 s; 385 s for both. Not covered: a firewall rule, the console proxy, a VPC router, the Java
//! agent connecting (it needs the JARs, `--agent-jars-from`).

use crate::common;

use common::image::{bunzip2, timed_build};
use common::qga::{self, Agent, Qemu};
use common::Test;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const EPOCH: &str = "1700000000";
const AGENT_BUDGET: Duration = Duration::from_secs(420);
const SSH_BUDGET: Duration = Duration::from_secs(300);
const PATCH_BUDGET: Duration = Duration::from_secs(300);
const CONTROL_IP: &str = "169.254.3.10";

fn tree() -> PathBuf {
    let listed: Vec<PathBuf> = match std::env::var_os("SYSTEMVM_CLOUDSTACK_TREES") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => {
            let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cloudstack");
            fs::read_dir(&shared)
                .map(|dir| dir.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        }
    };
    let mut trees: Vec<PathBuf> = listed
        .into_iter()
        .filter(|t| t.join("systemvm/patch-sysvms.sh").is_file())
        .collect();
    trees.sort();
    trees.pop().expect("a CloudStack 4.17+ tree")
}

struct Built {
    dir: PathBuf,
    /// The exported qcow2, unpacked.
    disk: PathBuf,
    /// The raw disk the build wrote (the qcow2's source), read to find grub.cfg's bytes.
    raw: PathBuf,
    /// The tree's patch files at the template's epoch.
    patch_files: PathBuf,
    key: PathBuf,
    public: PathBuf,
}

/// The template, keys and patch files, built once per test process: both boots use them.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(build)
}

fn build() -> Built {
    let tree = tree();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("appliance_cloudstack_boot");
    fs::create_dir_all(&dir).unwrap();
    let key = dir.join("id_ed25519");
    let public = dir.join("id_ed25519.pub");
    for k in [&key, &public] {
        let _ = fs::remove_file(k);
    }
    Test::new()
        .args([
            "keys",
            "generate",
            "--comment",
            "cloudstack-boot-test",
            "-o",
        ])
        .arg(&key)
        .success();
    let patch_files = build_patch_files(&tree, &dir.join("patch-files"), EPOCH);
    let out = dir.join("template");
    timed_build(
        Test::new()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .args(["appliance", "build", "--formats", "kvm", "--payload"])
            .arg(&tree)
            .arg("-o")
            .arg(&out),
        "SYSTEMVM_APPLIANCE_ROOTFS",
    );
    let version = tree.file_name().unwrap().to_str().unwrap().to_string();
    let bz = out.join(format!("systemvmtemplate-{version}-amd64-kvm.qcow2.bz2"));
    let raw = out.join(format!("systemvmtemplate-{version}-amd64.raw"));
    let disk = out.join("boot.qcow2");
    let unpacking = Instant::now();
    bunzip2(&bz, &disk);
    eprintln!("bunzip2: {:.1}s", unpacking.elapsed().as_secs_f64());
    Built {
        dir,
        disk,
        raw,
        patch_files,
        key,
        public,
    }
}

/// `systemvm build --layout patch-files` of `tree` at `epoch` into `out` (emptied first).
fn build_patch_files(tree: &Path, out: &Path, epoch: &str) -> PathBuf {
    let _ = fs::remove_dir_all(out);
    Test::new()
        .env("SOURCE_DATE_EPOCH", epoch)
        .args(["build", "--layout", "patch-files", "--payload"])
        .arg(tree)
        .arg("--version")
        .arg(tree.file_name().unwrap())
        .arg("-o")
        .arg(out)
        .success();
    out.to_path_buf()
}

/// The one argument of CloudStack's kernel command line that needs a real hypervisor.
const XEN_EARLY_CONSOLE: &[u8] = b"earlyprintk=xen ";

/// A qcow2 overlay over the exported disk in which grub.cfg's `earlyprintk=xen` is blanked
/// (the same number of spaces): Linux's Xen early console makes a hypercall (VMCALL) even
/// when no Xen is there; KVM answers it with ENOSYS, TCG raises #UD and the kernel dies
/// before its first line. Found in the build's raw disk (grub.cfg is on the ESP, in the
/// first 64 MiB), written with `qemu-io`; the exported qcow2 itself is untouched.
fn without_xen_early_console(b: &Built, vm: &str) -> PathBuf {
    let mut head = vec![0u8; 64 << 20];
    {
        use std::io::Read;
        let mut f = fs::File::open(&b.raw).expect("the build's raw disk");
        f.read_exact(&mut head)
            .expect("read the raw disk's first 64 MiB");
    }
    let hits: Vec<usize> = head
        .windows(XEN_EARLY_CONSOLE.len())
        .enumerate()
        .filter(|(_, w)| *w == XEN_EARLY_CONSOLE)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "grub.cfg's earlyprintk=xen, once: {hits:?}");
    let overlay = b.dir.join(format!("boot-tcg-{vm}.qcow2"));
    let _ = fs::remove_file(&overlay);
    let created = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&b.disk)
        .arg(&overlay)
        .status()
        .expect("qemu-img");
    assert!(created.success(), "qemu-img create {}", overlay.display());
    let written = Command::new("qemu-io")
        .args(["-f", "qcow2"])
        .arg(&overlay)
        .arg("-c")
        .arg(format!(
            "write -P 0x20 {} {}",
            hits[0],
            XEN_EARLY_CONSOLE.len()
        ))
        .stdout(Stdio::null())
        .status()
        .expect("qemu-io");
    assert!(written.success(), "qemu-io write {}", overlay.display());
    overlay
}

/// The firmware QEMU boots the disk with; the template has GRUB for both.
#[derive(Clone, Copy, Debug)]
enum Firmware {
    /// QEMU's default BIOS: GRUB's i386-pc core image from the disk's BIOS boot partition.
    SeaBios,
    /// UEFI (Debian's `ovmf`): read-only code, a writable copy of the variable store next
    /// to the serial log; no boot entry exists, so it takes the ESP's removable-media
    /// loader `EFI/BOOT/BOOTX64.EFI`.
    Ovmf,
}

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

impl Firmware {
    fn args(self, cmd: &mut Command, serial: &Path) {
        if let Firmware::Ovmf = self {
            let vars = serial.with_extension("OVMF_VARS.fd");
            fs::copy(OVMF_VARS, &vars).expect("a copy of OVMF's variable store (package ovmf)");
            cmd.arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
                ))
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    vars.display()
                ));
        }
    }
}

/// One NIC on QEMU's user network, in PCI (so ethN) order.
#[derive(Clone, Copy, Debug)]
enum Nic {
    /// A network of its own (`net=`), no way in from the host.
    Isolated(&'static str),
    /// The link-local control network, the VM at [`CONTROL_IP`], its port 3922 forwarded
    /// to the loopback port given to [`start_qemu`].
    Control,
}

fn start_qemu(
    disk: &Path,
    qga: &Path,
    serial: &Path,
    port: u16,
    firmware: Firmware,
    nics: &[Nic],
) -> Qemu {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "pc,accel=tcg", "-m", "2048", "-smp", "2"])
        // The KVM identity a real KVM host gives: no TCGTCGTCGTCG CPUID leaf and SMBIOS
        // "KVM", so virt-what says kvm and init.sh starts qemu-guest-agent.
        .args([
            "-cpu",
            "qemu64,tcg-cpuid=off",
            "-smbios",
            "type=1,product=KVM",
        ])
        .args(["-display", "none", "-monitor", "none"]);
    firmware.args(&mut cmd, serial);
    cmd.arg("-drive").arg(format!(
        "file={},format=qcow2,if=virtio,snapshot=on",
        disk.display()
    ));
    for (i, nic) in nics.iter().enumerate() {
        let netdev = match nic {
            Nic::Isolated(net) => format!("user,id=n{i},net={net},restrict=on"),
            Nic::Control => format!(
                "user,id=n{i},net=169.254.0.0/16,hostfwd=tcp:127.0.0.1:{port}-{CONTROL_IP}:3922"
            ),
        };
        cmd.arg("-netdev")
            .arg(netdev)
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n{i}"));
    }
    cmd.args(qga::channel(qga))
        // hvc0, CloudStack's last console= (where systemd writes), to a file of its own.
        .arg("-chardev")
        .arg(format!(
            "file,id=hvc0,path={}",
            serial.with_extension("hvc0.log").display()
        ))
        .args(["-device", "virtconsole,chardev=hvc0"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()));
    Qemu::start(cmd)
}

/// As patch.sh: ping and sync until the agent answers, then open, write and close the file.
fn send_cmdline(qga: &Path, cmdline: &str, started: Instant) -> Duration {
    let mut agent = Agent::wait(qga, AGENT_BUDGET.saturating_sub(started.elapsed()));
    let answered = started.elapsed();
    agent.write_file("/var/cache/cloud/cmdline", cmdline.as_bytes());
    answered
}

fn ssh_base(b: &Built, port: u16, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("-i")
        .arg(&b.key)
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg(if program == "scp" { "-P" } else { "-p" })
        .arg(port.to_string())
        .stdin(Stdio::null());
    cmd
}

fn tail(path: &Path) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let chars: Vec<char> = text.chars().collect();
    chars[chars.len().saturating_sub(4000)..].iter().collect()
}

/// Retry `f` every 2 s until it succeeds or `budget` is spent.
fn until<T>(
    budget: Duration,
    what: &str,
    serial: &Path,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if started.elapsed() > budget => {
                panic!(
                    "{what}: not within {budget:?}: {last}\nserial:\n{}",
                    tail(serial)
                )
            }
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

/// `authorized_key=` of CloudStack's command line: the public key line, base64.
fn authorized_key(b: &Built) -> String {
    let public = fs::read_to_string(&b.public).unwrap();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(public.trim_end())
}

/// A system VM under QEMU, its command line sent, SSH on 3922 at loopback `port`.
struct Vm {
    b: &'static Built,
    serial: PathBuf,
    port: u16,
    started: Instant,
    _qemu: Qemu,
}

impl Vm {
    /// Boot the template as `name` and write `cmdline` (with `authorized_key=` appended)
    /// through the guest agent, as patch.sh.
    fn boot(name: &str, firmware: Firmware, nics: &[Nic], cmdline: &str) -> Vm {
        let b = built();
        let qga = b.dir.join(format!("qga-{name}.sock"));
        let serial = b.dir.join(format!("serial-{name}.log"));
        let _ = fs::remove_file(&qga);
        let _ = fs::remove_file(&serial);
        let port = common::sshd::free_port();
        let disk = without_xen_early_console(b, name);
        let started = Instant::now();
        let qemu = start_qemu(&disk, &qga, &serial, port, firmware, nics);
        let cmdline = format!("{cmdline} authorized_key={}", authorized_key(b));
        let agent = send_cmdline(&qga, &cmdline, started);
        eprintln!(
            "{name} ({firmware:?}): guest agent answered {:.1}s",
            agent.as_secs_f64()
        );
        Vm {
            b,
            serial,
            port,
            started,
            _qemu: qemu,
        }
    }

    fn ssh(&self, script: &str) -> Output {
        ssh_base(self.b, self.port, "ssh")
            .arg("root@127.0.0.1")
            .arg(script)
            .output()
            .expect("ssh")
    }

    /// `script` over SSH until it exits 0 with `want` in its output; that output.
    fn ssh_until(&self, budget: Duration, what: &str, script: &str, want: &str) -> String {
        until(budget, what, &self.serial, || {
            let out = self.ssh(script);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.success() && text.contains(want))
                .then_some(text)
                .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
        })
    }

    fn scp(&self, files: &[PathBuf]) -> Output {
        ssh_base(self.b, self.port, "scp")
            .args(files)
            .arg("root@127.0.0.1:/var/cache/cloud/")
            .output()
            .expect("scp")
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The host's copy: the three patch files of `dir` into /var/cache/cloud/, once SSH
    /// is up.
    fn copy_patch_files(&self, dir: &Path) {
        let files: Vec<PathBuf> = ["agent.zip", "cloud-scripts.tgz", "patch-sysvms.sh"]
            .iter()
            .map(|n| dir.join(n))
            .collect();
        until(SSH_BUDGET, "scp of the patch files", &self.serial, || {
            let out = self.scp(&files);
            out.status
                .success()
                .then_some(())
                .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
        });
        eprintln!("patch files copied {:.1}s", self.elapsed());
    }

    /// The host's check, `patched.sh "/opt/cloud/bin/keystore*"`, until it lists them.
    fn wait_patched(&self) {
        let listing = self.ssh_until(
            PATCH_BUDGET,
            "patched.sh",
            "/opt/cloud/bin/patched.sh \"/opt/cloud/bin/keystore*\"",
            "keystore",
        );
        eprintln!("patched {:.1}s:\n{listing}", self.elapsed());
    }

    /// patched.sh only lists files the template already has; that the patch files arrived
    /// in time is cloud-early-config's doing: it found the tarball within its 60 tries and
    /// its cleanup moved it to /usr/share/cloud before the boot was declared done.
    fn wait_boot_up_done(&self) {
        let done = self.ssh_until(
            PATCH_BUDGET,
            "boot_up_done",
            "test -f /var/cache/cloud/boot_up_done || exit 1; \
             test -e /var/cache/cloud/cloud-scripts.tgz && exit 1; \
             echo tries: $(grep -c 'Could not find patch file' /var/log/cloud.log); \
             grep 'Finished setting up systemvm' /var/log/cloud.log",
            "Finished setting up systemvm",
        );
        eprintln!("boot up done {:.1}s:\n{done}", self.elapsed());
    }

    /// The release, the scripts' signature and the type the VM was given.
    fn assert_release_and_type(&self, kind: &str) {
        let out = self.ssh(
            "cat /etc/cloudstack-release /var/cache/cloud/cloud-scripts-signature; \
             grep -o 'type=[a-z]*' /var/cache/cloud/cmdline",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("Cloudstack Release "), "{text}");
        assert!(text.contains(&format!("type={kind}")), "{text}");
    }

    /// A router change as the management server makes it: the config JSON into
    /// /var/cache/cloud/ under a unique name, then CloudStack's own update_config.py on
    /// it, then `check` (shell) for what it applied; the script's output with its exit.
    fn update_config(&self, name: &str, config: &Value, check: &str) -> String {
        let local = self.b.dir.join(name);
        fs::write(&local, config.to_string()).unwrap();
        let copied = self.scp(&[local]);
        assert!(copied.status.success(), "scp {name}");
        let configured = Instant::now();
        let out = self.ssh(&format!(
            "/opt/cloud/bin/update_config.py {name}; echo exit=$?; {check}; \
             ls /var/cache/cloud/processed/"
        ));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "update_config.py {name} {:.1}s:\n{text}",
            configured.elapsed().as_secs_f64()
        );
        assert!(text.contains("exit=0\n"), "{text}");
        assert!(text.contains(&format!("{name}.gz")), "{text}");
        text
    }
}

#[test]
#[ignore = "builds CloudStack's full template and boots it under QEMU (TCG); see the module doc"]
fn router_gets_its_cmdline_through_the_agent_takes_the_patch_files_and_is_patched() {
    // eth0: a guest network of its own; eth1: the link-local control network.
    let vm = Vm::boot(
        "router",
        Firmware::SeaBios,
        &[Nic::Isolated("10.1.1.0/24"), Nic::Control],
        &format!(
            "template=domP name=r-4-VM eth0ip=10.1.1.1 eth0mask=255.255.255.0 \
             eth1ip={CONTROL_IP} eth1mask=255.255.0.0 type=router disable_rp_filter=true \
             dns1=10.1.1.2 domain=cloud.internal"
        ),
    );
    vm.copy_patch_files(&vm.b.patch_files);
    vm.wait_patched();
    vm.wait_boot_up_done();
    vm.assert_release_and_type("router");

    // A DHCP entry (VmDhcpConfig's fields) must reach dnsmasq's host file and /etc/hosts.
    let entry = json!({"type": "dhcpentry", "host_name": "vm-one",
        "mac_address": "02:00:4c:5f:00:05", "ipv4_address": "10.1.1.5",
        "ipv6_address": null, "ipv6_duid": null, "default_gateway": "10.1.1.1",
        "default_entry": true, "remove": false});
    let text = vm.update_config(
        "vm_dhcp_entry.json.acceptance",
        &entry,
        "cat /etc/dhcphosts.txt; grep vm-one /etc/hosts",
    );
    assert!(
        text.contains("02:00:4c:5f:00:05,10.1.1.5,vm-one,infinite"),
        "{text}"
    );
    assert!(text.contains("10.1.1.5\tvm-one"), "{text}");

    // A static route: the "staticroutes" bag, merged by network (cs_staticroutes.py);
    // CsStaticRoutes runs `ip route add <network> via <gateway>` for each not revoked.
    // The gateway is on eth0's guest network.
    let routes = json!({"type": "staticroutes", "routes": [
        {"network": "192.168.50.0/24", "gateway": "10.1.1.254", "revoke": false}]});
    let text = vm.update_config(
        "static_routes.json.acceptance",
        &routes,
        "ip route show 192.168.50.0/24; cat /etc/cloudstack/staticroutes.json; echo",
    );
    assert!(
        text.contains("192.168.50.0/24 via 10.1.1.254 dev eth0"),
        "{text}"
    );
}

#[test]
#[ignore = "builds CloudStack's full template and boots it under QEMU (TCG, OVMF); see the module doc"]
fn secondary_storage_vm_boots_under_uefi_is_patched_and_unpacks_the_agent() {
    // As on a KVM host: eth0 the link-local control network (sshd listens there, init.sh),
    // eth1 the management network, eth2 the public one.
    let vm = Vm::boot(
        "ssvm",
        Firmware::Ovmf,
        &[
            Nic::Control,
            Nic::Isolated("10.1.1.0/24"),
            Nic::Isolated("10.2.2.0/24"),
        ],
        &format!(
            "template=domP type=secstorage host=10.1.1.2 port=8250 name=s-1-VM zone=1 pod=1 \
             guid=s-1-VM workers=5 resource=com.cloud.storage.resource.NfsSecondaryStorageResource \
             instance=SecStorage sslcopy=false role=templateProcessor mtu=1500 \
             eth2ip=10.2.2.10 eth2mask=255.255.255.0 gateway=10.2.2.1 public.network.device=eth2 \
             eth0ip={CONTROL_IP} eth0mask=255.255.0.0 eth1ip=10.1.1.10 eth1mask=255.255.255.0 \
             mgmtcidr=10.1.1.0/24 localgw=10.1.1.1 private.network.device=eth1 \
             internaldns1=10.1.1.3 dns1=10.2.2.3 nfsVersion=null"
        ),
    );
    // The same patch files as the router's: cloud-early-config must still find them
    // newer than the template's own copy (patch.required), or bootstrap.sh never unpacks
    // agent.zip.
    vm.copy_patch_files(&vm.b.patch_files);
    vm.wait_patched();
    vm.wait_boot_up_done();
    vm.assert_release_and_type("secstorage");

    let out = vm.ssh("java -version");
    let text = String::from_utf8_lossy(&out.stderr);
    eprintln!("java -version {:.1}s: {text}", vm.elapsed());
    assert!(out.status.success(), "java -version: {text}");

    // bootstrap.sh's patch_systemvm: agent.zip unzipped into /usr/local/cloud/systemvm, its
    // scripts made executable, the command line appended to agent.properties; cleanup
    // keeps the directory for secstorage. (A checkout's agent.zip has no JARs, so the
    // Java agent itself cannot start; that is not what this checks.)
    let out = vm.ssh(
        "cd /usr/local/cloud/systemvm && test -x _run.sh && test -x ssvm-check.sh && \
         test -x scripts/storage/secondary/createtmplt.sh && \
         grep -E '^(type|name|role)=' conf/agent.properties",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("agent unpacked {:.1}s:\n{text}", vm.elapsed());
    if !out.status.success() {
        let why = vm.ssh(
            "ls -la /usr/local/cloud/systemvm; cat /var/log/patchsystemvm.log; \
             grep -i -e patch -e checksum /var/log/cloud.log",
        );
        panic!(
            "agent not unpacked:\n{}",
            String::from_utf8_lossy(&why.stdout)
        );
    }
    for line in ["type=secstorage", "name=s-1-VM", "role=templateProcessor"] {
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
    }
}
