#!/usr/bin/env bash
# Install what systemvm and its tests need on Debian 12 (run as root, or with sudo on PATH).
# Idempotent: apt-get skips what is already there. The Rust toolchain (cargo) must exist.
set -euo pipefail

packages=(
    # build: the ISO writer, and libssh2's TLS for the ssh2 crate
    xorriso pkg-config libssl-dev zlib1g-dev
    # tests: third-party readers and tools that cross-check our output
    genisoimage libarchive-tools python3-pycdlib zip unzip shellcheck
    # tests: real sshd on loopback, mount namespaces
    openssh-server openssh-client util-linux sshpass openssl
    # appliance exports: qemu-img; tests: sfdisk, bzip2, and packer (validates our template)
    qemu-utils fdisk e2fsprogs bzip2 packer
)

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
    echo "setup.sh: cargo is not installed; install a Rust toolchain (1.89 or newer) first" >&2
    exit 1
fi
