//! Is a file an ELF executable for a Debian architecture? `package self --binary` checks
//! this before packing, so `/etc/passwd` or an arm64 build cannot become an amd64 package.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The architectures we package: Debian name, ELF `e_machine`, and its name in messages.
const MACHINES: &[(&str, u16, &str)] = &[
    ("amd64", 62, "x86-64"),   // EM_X86_64
    ("arm64", 183, "aarch64"), // EM_AARCH64
    ("i386", 3, "i386"),       // EM_386
    ("armhf", 40, "arm"),      // EM_ARM
    ("ppc64el", 21, "ppc64"),  // EM_PPC64
    ("s390x", 22, "s390"),     // EM_S390
    ("riscv64", 243, "riscv"), // EM_RISCV
];

fn machine_name(machine: u16) -> String {
    match MACHINES.iter().find(|(_, m, _)| *m == machine) {
        Some((_, _, name)) => name.to_string(),
        None => format!("machine {machine}"),
    }
}

/// Check that `path` is an ELF file built for `debian_arch`; the error is one sentence
/// naming the file.
pub fn check_executable(path: &Path, debian_arch: &str) -> Result<(), String> {
    let shown = path.display();
    // Non-blocking, so a FIFO given as the binary is refused rather than waited on.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{shown}: no such binary"),
            _ => format!("{shown}: {e}"),
        })?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{shown} is not a regular file"));
    }
    let mut header = Vec::with_capacity(20);
    file.take(20)
        .read_to_end(&mut header)
        .map_err(|e| format!("{shown}: {e}"))?;
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return Err(format!("{shown} is not an ELF executable"));
    }
    let machine = match header[5] {
        1 => u16::from_le_bytes([header[18], header[19]]),
        2 => u16::from_be_bytes([header[18], header[19]]),
        _ => return Err(format!("{shown} is not an ELF executable")),
    };
    match MACHINES.iter().find(|(arch, _, _)| *arch == debian_arch) {
        Some((_, want, _)) if *want != machine => Err(format!(
            "{shown} is built for {}, not {debian_arch}",
            machine_name(machine)
        )),
        _ => Ok(()),
    }
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
