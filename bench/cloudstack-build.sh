#!/usr/bin/env bash
# The CloudStack way of building systemvm.iso, the baseline of bench/build.sh.
#
# Usage: bench/cloudstack-build.sh PAYLOAD AUTHORIZED_KEYS OUTPUT_ISO
#
# What Maven does in systemvm/pom.xml, serially: zip the agent tree from inside its
# directory (the assembly), tar+gzip the scripts tree, then `genisoimage -quiet -r` over
# the two archives and an authorized_keys. No fsync, no checksums, not reproducible.
# Intermediate files go to a temp directory beside OUTPUT_ISO, removed on exit.
set -euo pipefail

payload=$(realpath "$1")
keys=$(realpath "$2")
out=$(realpath "$3")
work=$(mktemp -d "$(dirname "$out")/.cloudstack-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

(cd "$payload/agent" && zip -qr "$work/agent.zip" .)
tar czf "$work/cloud-scripts.tgz" -C "$payload/scripts" .
cp "$keys" "$work/authorized_keys"
(cd "$work" && genisoimage -quiet -r -o "$out" agent.zip cloud-scripts.tgz authorized_keys)
