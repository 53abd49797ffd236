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
    # tests: pip, for the cs CloudStack client that cross-checks our API signatures
    python3-pip
    # tests: the shells that check the completions `package self` ships (zsh -n, fish -n)
    zsh fish
    # tests: `systemvm doctor` with every tool present (the appliance build's tools)
    mmdebstrap qemu-utils fdisk e2fsprogs dosfstools mtools grub-common
    # Hyper-V: smbclient is the SMB transport; tests run a real smbd on loopback
    samba smbclient
    # tests (faults, load, hostile): network namespaces, veth, tbf, nftables rules; GNU time for peak RSS
    iproute2 nftables time
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

# tests: the `cs` CloudStack client library (PyPI), an API signer we did not write. Into the
# python3 on PATH (the one the tests run); Debian's own python3 is "externally managed".
if ! python3 -c 'import cs' 2>/dev/null; then
    PIP_BREAK_SYSTEM_PACKAGES=1 "${as_root[@]}" python3 -m pip install --quiet \
        --disable-pip-version-check --root-user-action=ignore cs
fi

if ! command -v cargo >/dev/null; then
    echo "setup.sh: cargo is not installed; install a Rust toolchain (1.89 or newer) first" >&2
    exit 1
fi
