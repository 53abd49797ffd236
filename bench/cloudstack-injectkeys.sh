#!/usr/bin/env bash
# The CloudStack way of keying systemvm.iso, the baseline of bench/inject.sh.
#
# Usage: bench/cloudstack-injectkeys.sh ISO PUBLIC_KEY
#
# scripts/vm/systemvm/injectkeys.sh without the loop mount (which needs root): read the
# ISO's authorized_keys and stop if it already equals the key (injectkeys.sh mounts and
# diffs); otherwise extract every member with bsdtar, replace authorized_keys, rebuild
# with `genisoimage -quiet -r` to a temp ISO and `cp -f` it over the original (not
# atomic, no fsync). The `.bak` copy injectkeys.sh also makes is left out, which only
# flatters the baseline. Prints "unchanged" or "rebuilt". Temp files are removed on exit.
set -euo pipefail

iso=$(realpath "$1")
key=$(realpath "$2")
if bsdtar -xOf "$iso" authorized_keys 2>/dev/null | cmp -s - "$key"; then
  echo unchanged
  exit 0
fi
work=$(mktemp -d "$(dirname "$iso")/.cloudstack-injectkeys.XXXXXX")
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
mkdir "$work/systemvm"
bsdtar -xf "$iso" -C "$work/systemvm"
chmod -R u+w "$work/systemvm" # the ISO's modes are read-only
cp -f "$key" "$work/systemvm/authorized_keys"
genisoimage -quiet -r -o "$work/systemvm.iso" "$work/systemvm"
cp -f "$work/systemvm.iso" "$iso"
echo rebuilt
