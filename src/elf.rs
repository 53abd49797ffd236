//! Is a file an ELF executable for a Debian architecture? `package self --binary` checks
//! this before packing, so `/etc/passwd` or an arm64 build cannot become an amd64 package.

use std::io::Read;
use std::path::Path;

/// ELF `e_machine` values of the architectures we package.
fn machine_for(debian_arch: &str) -> Option<u16> {
    Some(match debian_arch {
        "amd64" => 62,    // EM_X86_64
        "arm64" => 183,   // EM_AARCH64
        "i386" => 3,      // EM_386
        "armhf" => 40,    // EM_ARM
        "ppc64el" => 21,  // EM_PPC64
        "s390x" => 22,    // EM_S390
        "riscv64" => 243, // EM_RISCV
        _ => return None,
    })
}

fn machine_name(machine: u16) -> String {
    match machine {
        62 => "x86-64".into(),
        183 => "aarch64".into(),
        3 => "i386".into(),
        40 => "arm".into(),
        21 => "ppc64".into(),
        22 => "s390".into(),
        243 => "riscv".into(),
        m => format!("machine {m}"),
    }
}

/// Check that `path` is an ELF file built for `debian_arch`; the error is one sentence
/// naming the file.
pub fn check_executable(path: &Path, debian_arch: &str) -> Result<(), String> {
    let shown = path.display();
    let mut header = [0u8; 20];
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{shown}: no such binary"),
        _ => format!("{shown}: {e}"),
    })?;
    if !path.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let n = read_up_to(&mut file, &mut header).map_err(|e| format!("{shown}: {e}"))?;
    if n < header.len() || &header[..4] != b"\x7fELF" {
        return Err(format!("{shown} is not an ELF executable"));
    }
    let machine = match header[5] {
        1 => u16::from_le_bytes([header[18], header[19]]),
        2 => u16::from_be_bytes([header[18], header[19]]),
        _ => return Err(format!("{shown} is not an ELF executable")),
    };
    match machine_for(debian_arch) {
        Some(want) if want != machine => Err(format!(
            "{shown} is built for {}, not {debian_arch}",
            machine_name(machine)
        )),
        _ => Ok(()),
    }
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_checks() {
        let me = std::env::current_exe().unwrap();
        let arch = crate::selfpkg::host_architecture().unwrap();
        assert_eq!(check_executable(&me, arch), Ok(()));
        let other = if arch == "arm64" { "amd64" } else { "arm64" };
        assert!(check_executable(&me, other)
            .unwrap_err()
            .contains("built for"));
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("passwd");
        std::fs::write(&text, "root:x:0:0::/root:/bin/sh\n").unwrap();
        assert!(check_executable(&text, arch)
            .unwrap_err()
            .contains("not an ELF executable"));
    }
}
