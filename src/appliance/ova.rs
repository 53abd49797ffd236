//! Our own OVF descriptor and OVA writer (no ovftool). The descriptor is OVF 1.0 as ovftool
//! writes it for one disk: a `References` entry for the VMDK, a `DiskSection` with the
//! capacity in bytes and the populated size, and a `VirtualHardwareSection` of family
//! `vmx-N` with CPU, memory, an LSI Logic SCSI controller carrying the disk, and an IDE
//! controller (for the CD-ROM CloudStack attaches the systemvm.iso to). RASD elements are in
//! schema (alphabetical) order, which strict readers check.
//!
//! The OVA is a ustar archive: the `.ovf` first (VMware requires it), then the `.mf`
//! manifest (`SHA256(name)= hex` or `SHA1(name)= hex` lines), then the disk. Every member has
//! mode 0644, owner 0:0 and one mtime, so the archive is as repeatable as its members. The
//! disk is streamed into the archive, never held in memory.

use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// The hash the OVA manifest uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ManifestHash {
    /// SHA256(file)= lines (vSphere 6.5 and newer)
    #[default]
    Sha256,
    /// SHA1(file)= lines (older ESXi only accepts these)
    Sha1,
}

/// The guest type VMware shows and configures the VM for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum GuestOs {
    /// otherLinux64Guest: what CloudStack's template declares
    #[default]
    #[value(name = "other-linux-64")]
    OtherLinux64,
    /// debian10_64Guest (needs vmx-13 or newer)
    #[value(name = "debian-64")]
    Debian64,
}

impl GuestOs {
    /// (CIM operating system id, VMware guest id)
    fn ids(self) -> (u32, &'static str) {
        match self {
            GuestOs::OtherLinux64 => (101, "otherLinux64Guest"),
            GuestOs::Debian64 => (96, "debian10_64Guest"),
        }
    }
}

/// Everything the descriptor says.
#[derive(Debug, Clone)]
pub struct OvfSpec {
    pub name: String,
    pub vmdk_name: String,
    /// Size of the VMDK file in bytes.
    pub vmdk_size: u64,
    /// Virtual disk size in bytes.
    pub capacity: u64,
    /// Bytes of data the disk really holds.
    pub populated: u64,
    pub vmx_version: u32,
    pub cpus: u32,
    pub memory_mib: u32,
    pub guest: GuestOs,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The OVF descriptor text.
pub fn ovf(spec: &OvfSpec) -> String {
    let name = esc(&spec.name);
    let vmdk = esc(&spec.vmdk_name);
    let (os_id, os_type) = spec.guest.ids();
    let hw = hardware(spec);
    let (vmdk_size, capacity) = (spec.vmdk_size, spec.capacity);
    let (populated, vmx_version) = (spec.populated, spec.vmx_version);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{vmdk}" ovf:id="file1" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="{populated}"/>
  </DiskSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A CloudStack system VM template</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="{os_id}" vmw:osType="{os_type}">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-{vmx_version}</vssd:VirtualSystemType>
      </System>
{hw}    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#,
    )
}

/// The virtual hardware items: CPUs, memory, the SCSI and IDE controllers, the disk.
fn hardware(spec: &OvfSpec) -> String {
    let item = |fields: &[(&str, String)]| {
        let mut s = String::from("      <Item>\n");
        for (k, v) in fields {
            s.push_str(&format!("        <rasd:{k}>{v}</rasd:{k}>\n"));
        }
        s.push_str("      </Item>\n");
        s
    };
    let mut hw = String::new();
    hw.push_str(&item(&[
        ("AllocationUnits", "hertz * 10^6".into()),
        ("Description", "Number of Virtual CPUs".into()),
        ("ElementName", format!("{} virtual CPU(s)", spec.cpus)),
        ("InstanceID", "1".into()),
        ("ResourceType", "3".into()),
        ("VirtualQuantity", spec.cpus.to_string()),
    ]));
    hw.push_str(&item(&[
        ("AllocationUnits", "byte * 2^20".into()),
        ("Description", "Memory Size".into()),
        ("ElementName", format!("{}MB of memory", spec.memory_mib)),
        ("InstanceID", "2".into()),
        ("ResourceType", "4".into()),
        ("VirtualQuantity", spec.memory_mib.to_string()),
    ]));
    hw.push_str(&item(&[
        ("Address", "0".into()),
        ("Description", "SCSI Controller".into()),
        ("ElementName", "SCSI Controller 0".into()),
        ("InstanceID", "3".into()),
        ("ResourceSubType", "lsilogic".into()),
        ("ResourceType", "6".into()),
    ]));
    hw.push_str(&item(&[
        ("Address", "0".into()),
        ("Description", "IDE Controller".into()),
        ("ElementName", "IDE Controller 0".into()),
        ("InstanceID", "4".into()),
        ("ResourceType", "5".into()),
    ]));
    hw.push_str(&item(&[
        ("AddressOnParent", "0".into()),
        ("ElementName", "Hard Disk 1".into()),
        ("HostResource", "ovf:/disk/vmdisk1".into()),
        ("InstanceID", "5".into()),
        ("Parent", "3".into()),
        ("ResourceType", "17".into()),
    ]));
    hw
}

/// The manifest line for one member.
fn manifest_line(hash: ManifestHash, name: &str, reader: &mut dyn Read) -> io::Result<String> {
    Ok(match hash {
        ManifestHash::Sha256 => format!("SHA256({name})= {}\n", digest::<Sha256>(reader)?),
        ManifestHash::Sha1 => format!("SHA1({name})= {}\n", digest::<Sha1>(reader)?),
    })
}

/// The hex digest of everything `reader` gives.
fn digest<D: Digest + Write>(reader: &mut dyn Read) -> io::Result<String> {
    let mut h = D::new();
    io::copy(reader, &mut h)?;
    Ok(crate::hashing::hex(&h.finalize()))
}

fn header(name: &str, size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Write `out` as an OVA: `<base>.ovf`, `<base>.mf`, then the VMDK at `vmdk`.
pub fn write_ova(
    out: File,
    base: &str,
    ovf_text: &str,
    vmdk: &Path,
    hash: ManifestHash,
    mtime: u64,
) -> io::Result<File> {
    let vmdk_name = super::file_name(vmdk);
    let ovf_name = format!("{base}.ovf");
    let mf_name = format!("{base}.mf");
    let mut mf = manifest_line(hash, &ovf_name, &mut ovf_text.as_bytes())?;
    let mut disk = BufReader::with_capacity(1 << 20, File::open(vmdk)?);
    mf.push_str(&manifest_line(hash, &vmdk_name, &mut disk)?);
    let disk_size = std::fs::metadata(vmdk)?.len();

    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, out));
    tar.mode(tar::HeaderMode::Deterministic);
    let h = header(&ovf_name, ovf_text.len() as u64, mtime)?;
    tar.append(&h, ovf_text.as_bytes())?;
    let h = header(&mf_name, mf.len() as u64, mtime)?;
    tar.append(&h, mf.as_bytes())?;
    let h = header(&vmdk_name, disk_size, mtime)?;
    let disk = BufReader::with_capacity(1 << 20, File::open(vmdk)?);
    tar.append(&h, disk)?;
    let mut writer = tar.into_inner()?;
    writer.flush()?;
    writer.into_inner().map_err(|e| e.into_error())
}

/// The first `.ovf` member of an OVA, as text.
pub fn read_ovf(ova: &Path) -> io::Result<String> {
    let mut archive = tar::Archive::new(BufReader::new(File::open(ova)?));
    for entry in archive.entries()? {
        let entry = entry?;
        let is_ovf = entry
            .path()?
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ovf"));
        if is_ovf {
            let mut text = String::new();
            entry.take(16 << 20).read_to_string(&mut text)?;
            return Ok(text);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} holds no .ovf descriptor", ova.display()),
    ))
}

/// The value of `attr="..."` in the first `<element ` tag of an XML text.
fn attribute<'a>(xml: &'a str, element: &str, attr: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{element} "))?;
    let tag = &xml[start..start + xml[start..].find('>')?];
    let key = format!("{attr}=\"");
    let at = tag.find(&key)? + key.len();
    let len = tag[at..].find('"')?;
    Some(&tag[at..at + len])
}

/// The first disk's capacity in bytes, honouring `capacityAllocationUnits` of the forms
/// `byte` and `byte * 2^N`.
pub fn disk_capacity(ovf_text: &str) -> Option<u64> {
    let capacity: u64 = attribute(ovf_text, "Disk", "ovf:capacity")?.parse().ok()?;
    let units = attribute(ovf_text, "Disk", "ovf:capacityAllocationUnits").unwrap_or("byte");
    let units: String = units.chars().filter(|c| !c.is_whitespace()).collect();
    let shift = match units.as_str() {
        "byte" => 0,
        u => u.strip_prefix("byte*2^")?.parse::<u32>().ok()?,
    };
    capacity.checked_mul(1u64.checked_shl(shift)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> OvfSpec {
        OvfSpec {
            name: "t<1>".into(),
            vmdk_name: "t-disk1.vmdk".into(),
            vmdk_size: 10,
            capacity: 5_242_880_000,
            populated: 1000,
            vmx_version: 13,
            cpus: 1,
            memory_mib: 512,
            guest: GuestOs::OtherLinux64,
        }
    }

    #[test]
    fn capacity_round_trips() {
        let text = ovf(&spec());
        assert_eq!(disk_capacity(&text), Some(5_242_880_000));
        assert!(text.contains("<vssd:VirtualSystemType>vmx-13<"));
        assert!(text.contains("t&lt;1&gt;"));
    }

    #[test]
    fn capacity_units_are_honoured() {
        let xml = r#"<Disk ovf:capacity="5" ovf:capacityAllocationUnits="byte * 2^30" />"#;
        assert_eq!(disk_capacity(xml), Some(5 << 30));
        assert_eq!(disk_capacity(r#"<Disk ovf:capacity="x"/>"#), None);
    }
}
