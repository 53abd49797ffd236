//! `appliance export`, `appliance seed`, `appliance packer` against tools we did not write:
//! qemu-img (info, check, compare, map), tar, unzip, bunzip2, md5sum/sha512sum/sha256sum/
//! sha1sum, python3's XML parser, and Debian's packer. Each test makes its own small GPT disk
//! in a plain file (sfdisk, mkfs.ext4 -d, dd conv=notrunc), no loop devices.

use crate::common;

use common::{listing, tempdir, tool, Test};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;
const DISK: u64 = 64 * MIB;
const STEM: &str = "systemvmtemplate-4.20.0.0-amd64";

/// Deterministic bytes that do not compress away.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A 64 MiB GPT disk: an 8 MiB ESP and an ext4 root partition named ROOT holding a few files.
fn make_disk(dir: &Path, name: &str) -> PathBuf {
    make_disk_sized(dir, name, DISK, 40, 3 * MIB as usize)
}

/// A GPT disk of `size` bytes with an ext4 root of `fs_mib` MiB holding `payload` bytes of
/// incompressible data.
fn make_disk_sized(dir: &Path, name: &str, size: u64, fs_mib: u64, payload: usize) -> PathBuf {
    let disk = dir.join(name);
    let tree = dir.join(format!("{name}.tree"));
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/cloudstack-release"), "4.20.0.0\n").unwrap();
    fs::write(tree.join("payload.bin"), noise(payload, 7)).unwrap();
    let f = fs::File::create(&disk).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let mut sfdisk = Command::new("sfdisk")
        .args(["-q", disk.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk");
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"label: gpt\nstart=2048, size=16384, type=uefi, name=ESP\nstart=18432, type=linux, name=ROOT\n",
        )
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let fs_img = dir.join(format!("{name}.ext4"));
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-U", "8c7e3e2a-1b3c-4d5e-9f00-112233445566"])
        .args(["-E", "hash_seed=8c7e3e2a-1b3c-4d5e-9f00-112233445566"])
        .args(["-L", "ROOT", "-d", tree.to_str().unwrap()])
        .arg(&fs_img)
        .arg(format!("{fs_mib}M"))
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tool(
        "dd",
        &[
            &format!("if={}", fs_img.display()),
            &format!("of={}", disk.display()),
            "bs=1M",
            "seek=9",
            "conv=notrunc,sparse",
            "status=none",
        ],
    );
    fs::remove_file(fs_img).unwrap();
    disk
}

fn export(raw: &Path, out: &Path, extra: &[&str]) -> common::Run {
    Test::new()
        .args(["appliance", "export"])
        .arg(raw)
        .args(["--version", "4.20.0.0", "-o"])
        .arg(out)
        .args(extra)
        .success()
}

fn info(path: &Path, format: &str) -> serde_json::Value {
    let text = tool(
        "qemu-img",
        &[
            "info",
            "--output=json",
            "-f",
            format,
            path.to_str().unwrap(),
        ],
    );
    serde_json::from_str(&text).unwrap()
}

/// `qemu-img compare` of an export against the raw disk.
fn same_disk(raw: &Path, image: &Path, format: &str) {
    let out = tool(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            format,
            raw.to_str().unwrap(),
            image.to_str().unwrap(),
        ],
    );
    assert!(out.contains("Images are identical"), "{image:?}: {out}");
}

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_export_holds_the_same_disk() {
    let tmp = tempdir();
    let raw = make_disk(tmp.path(), "disk.raw");
    let out = tmp.path().join("out");
    let run = export(&raw, &out, &[]);

    let files = [
        format!("{STEM}-hyperv.vhd.zip"),
        format!("{STEM}-kvm.qcow2.bz2"),
        format!("{STEM}-ovm.raw.bz2"),
        format!("{STEM}-vmware.ova"),
        format!("{STEM}-xen.vhd.bz2"),
    ];
    let mut expected: Vec<String> = files.to_vec();
    expected.extend(["md5sum.txt".into(), "sha512sum.txt".into()]);
    expected.sort();
    assert_eq!(
        listing(&out),
        expected,
        "nothing else (no temp files) is left"
    );

    // The checksum files are what md5sum -c and sha512sum -c accept.
    sh(
        &out,
        "md5sum -c --strict md5sum.txt && sha512sum -c --strict sha512sum.txt",
    );
    // The {SHA-512} strings printed are the files' sha512.
    let sums = fs::read_to_string(out.join("sha512sum.txt")).unwrap();
    for line in sums.lines() {
        let (hex, name) = line.split_once("  ").unwrap();
        assert!(
            run.stdout().contains(&format!("{name} {{SHA-512}}{hex}")),
            "{name} not printed with its checksum:\n{}",
            run.stdout()
        );
    }

    // Unpack with the standard tools.
    let x = tmp.path().join("x");
    fs::create_dir(&x).unwrap();
    sh(
        &x,
        &format!(
            "bunzip2 -c ../out/{STEM}-kvm.qcow2.bz2 > kvm.qcow2
             bunzip2 -c ../out/{STEM}-xen.vhd.bz2 > xen.vhd
             bunzip2 -c ../out/{STEM}-ovm.raw.bz2 > ovm.raw
             unzip -q ../out/{STEM}-hyperv.vhd.zip
             tar -xf ../out/{STEM}-vmware.ova"
        ),
    );
    let vmdk = x.join(format!("{STEM}-vmware-disk1.vmdk"));
    let hyperv = x.join(format!("{STEM}-hyperv.vhd"));
    for (path, format) in [
        (x.join("kvm.qcow2"), "qcow2"),
        (x.join("xen.vhd"), "vpc"),
        (hyperv.clone(), "vpc"),
        (vmdk.clone(), "vmdk"),
        (x.join("ovm.raw"), "raw"),
    ] {
        let i = info(&path, format);
        assert_eq!(i["format"], format, "{path:?}");
        assert_eq!(i["virtual-size"], DISK, "{path:?}: {i}");
        same_disk(&raw, &path, format);
    }
    // Formats whose qemu driver can check them (vpc cannot).
    tool(
        "qemu-img",
        &[
            "check",
            "-f",
            "qcow2",
            x.join("kvm.qcow2").to_str().unwrap(),
        ],
    );
    tool("qemu-img", &["check", "-f", "vmdk", vmdk.to_str().unwrap()]);
    let detected = info(&x.join("kvm.qcow2"), "qcow2");
    assert_eq!(detected["format-specific"]["data"]["compat"], "1.1");
    let vmdk_info = info(&vmdk, "vmdk");
    assert_eq!(
        vmdk_info["format-specific"]["data"]["create-type"],
        "streamOptimized"
    );
    assert_eq!(
        fs::read(x.join("ovm.raw")).unwrap(),
        fs::read(&raw).unwrap()
    );

    // The OVA: .ovf first, then .mf, then the disk; ustar, owner 0, one mtime.
    let listing_v = sh(&out, &format!("tar -tvf {STEM}-vmware.ova"));
    let names: Vec<&str> = listing_v
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("{STEM}-vmware.ovf"),
            format!("{STEM}-vmware.mf"),
            format!("{STEM}-vmware-disk1.vmdk")
        ]
    );
    assert!(listing_v.lines().all(|l| l.contains("0/0")), "{listing_v}");
    assert!(
        listing_v.contains("2023-11-14"),
        "mtime from SOURCE_DATE_EPOCH: {listing_v}"
    );
    // POSIX ustar headers (magic "ustar\0" version "00"), not GNU tar's.
    let ova = fs::read(out.join(format!("{STEM}-vmware.ova"))).unwrap();
    assert_eq!(&ova[257..265], b"ustar\x0000");
    // Every manifest line matches sha256sum of the member.
    let mf = fs::read_to_string(x.join(format!("{STEM}-vmware.mf"))).unwrap();
    assert_eq!(mf.lines().count(), 2, "{mf}");
    for line in mf.lines() {
        let (left, hex) = line.split_once("= ").unwrap();
        let name = left
            .strip_prefix("SHA256(")
            .unwrap()
            .strip_suffix(')')
            .unwrap();
        let theirs = tool("sha256sum", &[x.join(name).to_str().unwrap()]);
        assert_eq!(theirs.split_whitespace().next().unwrap(), hex, "{name}");
    }
    // The OVF parses as XML and says the right things.
    let populated = fs::metadata(&vmdk).unwrap().len();
    let check = format!(
        r#"
import xml.etree.ElementTree as E
ns = {{'ovf': 'http://schemas.dmtf.org/ovf/envelope/1',
      'rasd': 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData',
      'vssd': 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData'}}
O = '{{http://schemas.dmtf.org/ovf/envelope/1}}'
root = E.parse('{STEM}-vmware.ovf').getroot()
disk = root.find('ovf:DiskSection/ovf:Disk', ns)
f = root.find('ovf:References/ovf:File', ns)
print(disk.get(O+'capacity'), disk.get(O+'capacityAllocationUnits'), disk.get(O+'populatedSize'))
print(f.get(O+'href'), f.get(O+'size'))
print(root.find('.//vssd:VirtualSystemType', ns).text)
print([i.find('rasd:ResourceSubType', ns).text for i in root.iter('{{http://schemas.dmtf.org/ovf/envelope/1}}Item') if i.find('rasd:ResourceType', ns).text == '6'])
print(root.find('.//ovf:OperatingSystemSection', ns).get('{{http://www.vmware.com/schema/ovf}}osType'))
"#
    );
    let said = sh(
        &x,
        &format!("python3 -c \"$(cat <<'EOF'\n{check}\nEOF\n)\""),
    );
    let lines: Vec<&str> = said.lines().collect();
    let first: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(first[0], DISK.to_string());
    assert_eq!(first[1], "byte");
    let populated_said: u64 = first[2].parse().unwrap();
    // populatedSize: the data qemu-img map finds in the VMDK: the 3 MiB payload and more,
    // far less than the capacity.
    assert!(
        (3 * MIB..DISK / 2).contains(&populated_said),
        "{populated_said}"
    );
    assert_eq!(
        lines[1],
        format!("{STEM}-vmware-disk1.vmdk {populated}"),
        "file size in References"
    );
    assert_eq!(lines[2], "vmx-13");
    assert_eq!(lines[3], "['lsilogic']");
    assert_eq!(lines[4], "otherLinux64Guest");
}

#[test]
fn exports_are_repeatable_with_source_date_epoch() {
    let tmp = tempdir();
    let raw = make_disk(tmp.path(), "disk.raw");
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let formats = ["--formats", "kvm,xen,vmware,hyperv"];
    export(&raw, &a, &formats);
    export(&raw, &b, &formats);
    for name in listing(&a) {
        assert_eq!(
            fs::read(a.join(&name)).unwrap(),
            fs::read(b.join(&name)).unwrap(),
            "{name} differs between two runs"
        );
    }
    // Hyper-V generation 2 (VHDX) too.
    let gen2 = ["--formats", "hyperv", "--hyperv-generation", "2"];
    let (d, e) = (tmp.path().join("d"), tmp.path().join("e"));
    export(&raw, &d, &gen2);
    export(&raw, &e, &gen2);
    let vhdx = format!("{STEM}-hyperv.vhdx.zip");
    assert_eq!(
        fs::read(d.join(&vhdx)).unwrap(),
        fs::read(e.join(&vhdx)).unwrap(),
        "VHDX differs between two runs"
    );
    // Another epoch: the VHD footer (time, UUID) changes, the qcow2 does not.
    Test::new()
        .env("SOURCE_DATE_EPOCH", "1600000000")
        .args(["appliance", "export"])
        .arg(&raw)
        .args(["--version", "4.20.0.0", "--formats", "kvm,xen", "-o"])
        .arg(&c)
        .success();
    let kvm = format!("{STEM}-kvm.qcow2.bz2");
    let xen = format!("{STEM}-xen.vhd.bz2");
    assert_eq!(
        fs::read(a.join(&kvm)).unwrap(),
        fs::read(c.join(&kvm)).unwrap()
    );
    assert_ne!(
        fs::read(a.join(&xen)).unwrap(),
        fs::read(c.join(&xen)).unwrap()
    );
    // And the rewritten footer still reads as a valid VHD of the same disk.
    sh(tmp.path(), &format!("bunzip2 -c c/{xen} > c.vhd"));
    same_disk(&raw, &tmp.path().join("c.vhd"), "vpc");
}

#[test]
fn options_change_the_exports() {
    let tmp = tempdir();
    let raw = make_disk(tmp.path(), "disk.raw");
    let out = tmp.path().join("out");
    export(
        &raw,
        &out,
        &[
            "--formats",
            "kvm,vmware,hyperv",
            "--qcow2-compat",
            "0.10",
            "--ova-manifest",
            "sha1",
            "--vmx-version",
            "15",
            "--vmware-guest",
            "debian-64",
            "--hyperv-generation",
            "2",
        ],
    );
    sh(
        &out,
        &format!(
            "bunzip2 -c {STEM}-kvm.qcow2.bz2 > k.qcow2
             unzip -q {STEM}-hyperv.vhdx.zip
             tar -xf {STEM}-vmware.ova
             rm -f md5sum.txt sha512sum.txt"
        ),
    );
    let k = out.join("k.qcow2");
    assert_eq!(
        info(&k, "qcow2")["format-specific"]["data"]["compat"],
        "0.10"
    );
    same_disk(&raw, &k, "qcow2");
    let vhdx = out.join(format!("{STEM}-hyperv.vhdx"));
    assert_eq!(info(&vhdx, "vhdx")["virtual-size"], DISK);
    tool("qemu-img", &["check", "-f", "vhdx", vhdx.to_str().unwrap()]);
    same_disk(&raw, &vhdx, "vhdx");
    let mf = fs::read_to_string(out.join(format!("{STEM}-vmware.mf"))).unwrap();
    // sha1sum -c reads BSD-style "SHA1(name)= hex" lines.
    assert!(mf.starts_with("SHA1("), "{mf}");
    sh(&out, &format!("sha1sum -c --strict {STEM}-vmware.mf"));
    let ovf = fs::read_to_string(out.join(format!("{STEM}-vmware.ovf"))).unwrap();
    assert!(ovf.contains("<vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType>"));
    assert!(ovf.contains("vmw:osType=\"debian10_64Guest\""));
}

#[test]
fn base_layer_holds_only_the_difference() {
    let tmp = tempdir();
    let base_raw = make_disk(tmp.path(), "base.raw");
    // The system VM layer: the base disk plus 2 MiB of new data.
    let raw = tmp.path().join("layer.raw");
    fs::copy(&base_raw, &raw).unwrap();
    let extra = tmp.path().join("extra");
    fs::write(&extra, noise(2 * MIB as usize, 99)).unwrap();
    tool(
        "dd",
        &[
            &format!("if={}", extra.display()),
            &format!("of={}", raw.display()),
            "bs=1M",
            "seek=40",
            "conv=notrunc",
            "status=none",
        ],
    );
    let base = tmp.path().join("base.qcow2");
    tool(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            base_raw.to_str().unwrap(),
            base.to_str().unwrap(),
        ],
    );
    let full_dir = tmp.path().join("full");
    let layer_dir = tmp.path().join("layer");
    export(&raw, &full_dir, &["--formats", "kvm"]);
    export(
        &raw,
        &layer_dir,
        &["--formats", "kvm", "--base", base.to_str().unwrap()],
    );
    sh(
        tmp.path(),
        &format!(
            "bunzip2 -c full/{STEM}-kvm.qcow2.bz2 > full.qcow2
             bunzip2 -c layer/{STEM}-kvm.qcow2.bz2 > layer.qcow2"
        ),
    );
    let layer = tmp.path().join("layer.qcow2");
    let i = info(&layer, "qcow2");
    assert_eq!(i["backing-filename"], base.to_str().unwrap());
    assert_eq!(i["backing-filename-format"], "qcow2");
    tool("qemu-img", &["check", layer.to_str().unwrap()]);
    same_disk(&raw, &layer, "qcow2");
    let full = fs::metadata(tmp.path().join("full.qcow2")).unwrap().len();
    let layered = fs::metadata(&layer).unwrap().len();
    // The layer carries the 2 MiB of new data (incompressible), not the base's 3 MiB payload.
    assert!(
        layered < full && layered < 3 * MIB && layered > 2 * MIB,
        "layer {layered} bytes, full {full} bytes"
    );
    // The layer without its base is not the disk: the base really is underneath.
    let alone = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&base_raw)
        .arg(&layer)
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(1), "layer differs from the base");
}

fn properties(dir: &Path) -> Vec<(String, String)> {
    fs::read_to_string(dir.join("template.properties"))
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn prop<'a>(props: &'a [(String, String)], key: &str) -> &'a str {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {props:?}"))
}

#[test]
fn seed_installs_like_cloud_install_sys_tmplt() {
    let tmp = tempdir();
    let raw = make_disk(tmp.path(), "disk.raw");
    let out = tmp.path().join("out");
    export(&raw, &out, &["--formats", "kvm,vmware,hyperv"]);
    let secondary = tmp.path().join("secondary");
    fs::create_dir(&secondary).unwrap();
    let uuid = "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3";

    // KVM: the .qcow2.bz2 decompressed to template/tmpl/1/3/<uuid>.qcow2.
    Test::new()
        .args([
            "appliance",
            "seed",
            "--hypervisor",
            "kvm",
            "--uuid",
            uuid,
            "--secondary",
        ])
        .arg(&secondary)
        .arg(out.join(format!("{STEM}-kvm.qcow2.bz2")))
        .success();
    let dir = secondary.join("template/tmpl/1/3");
    let file = dir.join(format!("{uuid}.qcow2"));
    assert_eq!(
        listing(&dir),
        [format!("{uuid}.qcow2"), "template.properties".into()]
    );
    let props = properties(&dir);
    let keys: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "filename",
            "description",
            "hvm",
            "size",
            "qcow2",
            "id",
            "public",
            "qcow2.filename",
            "uniquename",
            "qcow2.virtualsize",
            "virtualsize",
            "qcow2.size"
        ]
    );
    let size = fs::metadata(&file).unwrap().len().to_string();
    let virtual_size = info(&file, "qcow2")["virtual-size"].to_string();
    assert_eq!(virtual_size, DISK.to_string());
    assert_eq!(prop(&props, "filename"), format!("{uuid}.qcow2"));
    assert_eq!(prop(&props, "qcow2.filename"), format!("{uuid}.qcow2"));
    assert_eq!(prop(&props, "size"), size);
    assert_eq!(prop(&props, "qcow2.size"), size);
    assert_eq!(prop(&props, "virtualsize"), virtual_size);
    assert_eq!(prop(&props, "qcow2.virtualsize"), virtual_size);
    assert_eq!(prop(&props, "qcow2"), "true");
    assert_eq!(prop(&props, "id"), "3");
    assert_eq!(prop(&props, "public"), "true");
    assert_eq!(prop(&props, "uniquename"), "routing-3");
    same_disk(&raw, &file, "qcow2");

    // Again without --force: refused, nothing changed.
    let before = fs::read(dir.join("template.properties")).unwrap();
    Test::new()
        .args(["appliance", "seed", "--hypervisor", "kvm", "--secondary"])
        .arg(&secondary)
        .arg(out.join(format!("{STEM}-kvm.qcow2.bz2")))
        .fails(2)
        .one_error_line()
        .stderr_contains("--force");
    assert_eq!(fs::read(dir.join("template.properties")).unwrap(), before);
    assert_eq!(listing(&dir).len(), 2);
    // With --force and a new uuid: replaced whole, no leftovers beside it.
    Test::new()
        .args([
            "appliance",
            "seed",
            "--hypervisor",
            "kvm",
            "--force",
            "--secondary",
        ])
        .arg(&secondary)
        .arg(out.join(format!("{STEM}-kvm.qcow2.bz2")))
        .success();
    assert!(!file.exists(), "old template file replaced");
    assert_eq!(listing(&dir).len(), 2);
    assert_eq!(listing(&secondary.join("template/tmpl/1")), ["3"]);

    // VMware: the OVA placed and unpacked beside itself; virtual size from its OVF.
    Test::new()
        .args([
            "appliance",
            "seed",
            "--hypervisor",
            "vmware",
            "--uuid",
            uuid,
            "--secondary",
        ])
        .arg(&secondary)
        .arg(out.join(format!("{STEM}-vmware.ova")))
        .success();
    let dir = secondary.join("template/tmpl/1/8");
    let names = listing(&dir);
    assert!(names.contains(&format!("{uuid}.ova")), "{names:?}");
    assert!(names.contains(&format!("{STEM}-vmware.ovf")), "{names:?}");
    assert!(
        names.contains(&format!("{STEM}-vmware-disk1.vmdk")),
        "{names:?}"
    );
    let props = properties(&dir);
    assert_eq!(prop(&props, "ova.virtualsize"), DISK.to_string());
    assert_eq!(
        prop(&props, "ova.size"),
        fs::metadata(dir.join(format!("{uuid}.ova")))
            .unwrap()
            .len()
            .to_string()
    );

    // Hyper-V: the zip unpacked to a VHD.
    Test::new()
        .args([
            "appliance",
            "seed",
            "--hypervisor",
            "hyperv",
            "--template-id",
            "42",
            "--secondary",
        ])
        .arg(&secondary)
        .arg(out.join(format!("{STEM}-hyperv.vhd.zip")))
        .success();
    let dir = secondary.join("template/tmpl/1/42");
    let props = properties(&dir);
    let vhd = dir.join(prop(&props, "vhd.filename"));
    assert_eq!(info(&vhd, "vpc")["virtual-size"], DISK);
    assert_eq!(prop(&props, "virtualsize"), DISK.to_string());
    assert_eq!(prop(&props, "uniquename"), "routing-42");

    // OVM3 from a gzip'd raw disk: template 12, byte for byte the disk.
    sh(tmp.path(), "gzip -c disk.raw > disk.raw.gz");
    Test::new()
        .args(["appliance", "seed", "--hypervisor", "ovm3", "--secondary"])
        .arg(&secondary)
        .arg(tmp.path().join("disk.raw.gz"))
        .success();
    let dir = secondary.join("template/tmpl/1/12");
    let props = properties(&dir);
    assert_eq!(prop(&props, "raw"), "true");
    assert_eq!(prop(&props, "raw.virtualsize"), DISK.to_string());
    let placed = fs::read(dir.join(prop(&props, "raw.filename"))).unwrap();
    assert!(placed == fs::read(&raw).unwrap(), "the raw disk, unchanged");
}

#[test]
fn seed_refuses_the_wrong_image_and_leaves_no_trace() {
    let tmp = tempdir();
    let raw = make_disk(tmp.path(), "disk.raw");
    let secondary = tmp.path().join("secondary");
    fs::create_dir(&secondary).unwrap();
    // A raw disk is not a XenServer VHD.
    Test::new()
        .args([
            "appliance",
            "seed",
            "--hypervisor",
            "xenserver",
            "--secondary",
        ])
        .arg(&secondary)
        .arg(&raw)
        .fails(2)
        .one_error_line()
        .stderr_contains("takes a VHD");
    assert!(listing(&secondary).is_empty(), "{:?}", listing(&secondary));
    // A bzip2 file that is not an image either.
    let junk = tmp.path().join("junk.bz2");
    sh(tmp.path(), "echo not an image | bzip2 > junk.bz2");
    Test::new()
        .args(["appliance", "seed", "--hypervisor", "vmware", "--secondary"])
        .arg(&secondary)
        .arg(&junk)
        .fails(2)
        .one_error_line()
        .stderr_contains("not an OVA");
    assert!(listing(&secondary).is_empty());
}

#[test]
fn bad_input_exits_2_and_leaves_nothing() {
    let tmp = tempdir();
    let raw = make_disk(tmp.path(), "disk.raw");
    let out = tmp.path().join("out");

    let text = tmp.path().join("notes.txt");
    fs::write(&text, "this is not a disk\n".repeat(100)).unwrap();
    Test::new()
        .args(["appliance", "export", "--version", "1"])
        .arg(&text)
        .arg("-o")
        .arg(&out)
        .fails(2)
        .one_error_line()
        .stderr_contains("notes.txt is not a disk image");
    assert!(!out.exists());

    Test::new()
        .args([
            "appliance",
            "export",
            "--version",
            "1",
            "--formats",
            "kvm,vmwhere",
        ])
        .arg(&raw)
        .arg("-o")
        .arg(&out)
        .fails(2)
        .one_error_line()
        .stderr_contains("\"vmwhere\"");
    assert!(!out.exists());

    // An output directory that cannot exist: its parent is a file.
    Test::new()
        .args(["appliance", "export", "--version", "1"])
        .arg(&raw)
        .arg("-o")
        .arg(text.join("out"))
        .fails(2)
        .one_error_line()
        .stderr_contains("notes.txt/out");

    // A base that is not qcow2.
    Test::new()
        .args([
            "appliance",
            "export",
            "--version",
            "1",
            "--formats",
            "kvm",
            "--base",
        ])
        .arg(&raw)
        .arg(&raw)
        .arg("-o")
        .arg(&out)
        .fails(2)
        .one_error_line()
        .stderr_contains("not qcow2");
    assert!(!out.exists());

    // A step that fails half-way (the output file system fills up): the command that failed
    // is named, and nothing is left, not even the temp directory.
    fs::create_dir(&out).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs {o} && \
         {bin} appliance export {raw} --version 1 --formats kvm,ovm -o {o}; \
         echo rc=$?; ls -A {o}",
        o = out.display(),
        bin = common::BIN,
        raw = raw.display()
    );
    let run = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stdout.trim(),
        "rc=2",
        "exit 2 and an empty directory: {stdout}\n{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("qemu-img convert") && errors[0].contains("kvm export failed"),
        "{stderr}"
    );
}

#[test]
fn packer_template_validates() {
    let tmp = tempdir();
    let dir = tmp.path().join("packer");
    let run = Test::new()
        .args([
            "appliance",
            "packer",
            "--version",
            "4.20.0.0",
            "--root-label",
            "SLX_SYS",
        ])
        .args(["--mirror", "http://127.0.0.1:3142/debian", "-o"])
        .arg(&dir)
        .success();
    assert!(run.stdout().contains("systemvmtemplate.json"));
    let validate = |dir: &Path| {
        Command::new("packer")
            .args(["validate", "-var", "iso_url=file:///srv/debian-netinst.iso"])
            .args(["-var", "iso_checksum=none", "systemvmtemplate.json"])
            .current_dir(dir)
            .env("CHECKPOINT_DISABLE", "1")
            .env("PACKER_CACHE_DIR", dir.join("cache"))
            .output()
            .unwrap()
    };
    let out = validate(&dir);
    assert!(
        out.status.success(),
        "packer validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let template: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("systemvmtemplate.json")).unwrap())
            .unwrap();
    assert_eq!(template["builders"][0]["type"], "qemu");
    assert_eq!(template["variables"]["disk_size"], "5000M");
    let preseed = fs::read_to_string(dir.join("http/preseed.cfg")).unwrap();
    assert!(preseed.contains("label{ SLX_SYS }"), "{preseed}");
    assert!(preseed.contains("--change-name=3:SLX_SYS"));
    assert!(preseed.contains("choose_label select gpt"));
    assert!(preseed.contains("method{ efi }"));
    assert!(preseed.contains("console=ttyS0,115200n8"));
    assert!(preseed.contains("mirror/http/hostname string 127.0.0.1:3142"));
    assert!(preseed.contains("mirror/http/directory string /debian"));

    // packer validate is a real check: a template with a broken builder key fails it.
    let broken = tmp.path().join("broken");
    fs::create_dir_all(broken.join("http")).unwrap();
    let mut t = template.clone();
    t["builders"][0]["disk_sizee"] = serde_json::json!("1");
    fs::write(broken.join("systemvmtemplate.json"), t.to_string()).unwrap();
    assert!(!validate(&broken).status.success());

    // Existing files are not overwritten without --force.
    Test::new()
        .args([
            "appliance",
            "packer",
            "--mirror",
            "http://127.0.0.1/debian",
            "-o",
        ])
        .arg(&dir)
        .fails(2)
        .one_error_line()
        .stderr_contains("--force");
}

/// Full size (not in the default run): a 5000 MiB disk holding 256 MiB of incompressible
/// data, every format. `cargo test --test integration appliance_export:: -- --ignored --nocapture`
#[test]
#[ignore]
fn full_size_disk_exports_every_format() {
    let tmp = tempdir();
    let size = 5000 * MIB;
    let raw = make_disk_sized(tmp.path(), "big.raw", size, 4900, 256 * MIB as usize);
    let out = tmp.path().join("out");
    let started = std::time::Instant::now();
    let run = export(&raw, &out, &[]);
    eprintln!("{}", run.stderr());
    eprintln!("all formats: {:.1} s", started.elapsed().as_secs_f64());
    sh(&out, "md5sum -c --strict md5sum.txt && ls -l");
    sh(
        &out,
        &format!(
            "bunzip2 -c {STEM}-kvm.qcow2.bz2 > k.qcow2 && tar -xf {STEM}-vmware.ova \
             && unzip -q {STEM}-hyperv.vhd.zip"
        ),
    );
    same_disk(&raw, &out.join("k.qcow2"), "qcow2");
    same_disk(&raw, &out.join(format!("{STEM}-vmware-disk1.vmdk")), "vmdk");
    same_disk(&raw, &out.join(format!("{STEM}-hyperv.vhd")), "vpc");
    assert_eq!(info(&out.join("k.qcow2"), "qcow2")["virtual-size"], size);
}
