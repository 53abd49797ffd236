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
    # tests: groff lints systemvm-inventory(5); tmux is the 80-column terminal for progress
    groff-base tmux
    # CloudStack's database lock: the mariadb client holds it; tests run a real mariadbd
    mariadb-server mariadb-client
    # Hyper-V: smbclient is the SMB transport; tests run a real smbd on loopback
    samba smbclient
    # tests (faults, load, hostile): network namespaces, veth, tbf, nftables rules; GNU time for peak RSS
    iproute2 nftables time
    # appliance build (and `systemvm doctor` finding its tools): root file system, GPT disk
    # without loop devices, GRUB for BIOS and UEFI
    mmdebstrap e2fsprogs dosfstools mtools gdisk fdisk grub-pc-bin grub-efi-amd64-bin
    # appliance tests: growpart grows a copy of the disk as cloud-early-config does
    cloud-guest-utils
    # appliance boot test: UEFI firmware (qemu-system-x86 comes below, matched to qemu-utils)
    ovmf
    # appliance exports (qemu-img, above); bzip2 for the tests, packer validates our template
    bzip2 packer
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

# The appliance boot test needs qemu-system-x86 from the suite qemu-utils came from: this
# machine kind ships qemu-utils from backports, and plain stable's qemu-system-x86 would
# replace it (and break what depends on it). The suite is read from apt itself; a missing
# backports entry is added with the URIs and keyring of the machine's own stable entry.
qemu_suite() {
    local version origin codename
    version=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null) || return 0
    # The origin lines under the installed version ("500 <uri> <suite>/main amd64 Packages").
    origin=$(apt-cache policy qemu-utils | awk -v v="$version" '
        $1 == "***" && $2 == v { f = 1; next }
        f && $1 ~ /^[0-9]+$/ && NF >= 3 && $2 != "/var/lib/dpkg/status" { split($3, a, "/"); print a[1]; exit }
        f && $1 !~ /^[0-9]+$/ { exit }')
    if [ -n "$origin" ]; then
        echo "$origin"
    elif [[ $version == *~bpo* ]]; then
        # shellcheck source=/dev/null
        codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
        echo "$codename-backports"
    fi
}

add_suite() {
    local suite=$1 codename entry
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    # The machine's own stable entry (deb822 or one-line), its suite swapped for $suite.
    entry=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v c="$codename" -v s="$suite" '
        BEGIN { RS = ""; FS = "\n" }
        $0 ~ "(^|\n)Suites:.*[[:space:]]" c "([[:space:]]|$)" && $0 ~ "Types:.*deb" {
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^Suites:/) print "Suites: " s
                else if ($i ~ /^Types:/) print "Types: deb"
                else if ($i ~ /^Components:/) print "Components: main"
                else if ($i ~ /^(URIs|Signed-By):/) print $i
            }
            exit
        }')
    if [ -z "$entry" ]; then
        entry=$(grep -hE "^deb[[:space:]]" /etc/apt/sources.list 2>/dev/null |
            awk -v c="$codename" -v s="$suite" '$0 !~ /\[/ && $3 == c { print "Types: deb\nURIs: " $2 "\nSuites: " s "\nComponents: main"; exit }')
    fi
    if [ -z "$entry" ]; then
        echo "setup.sh: no apt entry for $codename to derive $suite from; add $suite to the apt sources" >&2
        exit 1
    fi
    printf '%s\n' "$entry" | "${as_root[@]}" tee "/etc/apt/sources.list.d/systemvm-$suite.sources" >/dev/null
    "${as_root[@]}" apt-get update -qq
}

if ! dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q 'install ok installed'; then
    suite=$(qemu_suite)
    if [ -n "$suite" ]; then
        if ! apt-cache policy | grep -q " $suite/"; then
            add_suite "$suite"
        fi
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends -t "$suite" qemu-system-x86 qemu-utils
    else
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends qemu-system-x86 qemu-utils
    fi
fi

if ! command -v cargo >/dev/null; then
    echo "setup.sh: cargo is not installed; install a Rust toolchain (1.89 or newer) first" >&2
    exit 1
fi
