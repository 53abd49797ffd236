#!/usr/bin/env bash
# Fuzz systemvm's parsers with cargo-fuzz (libFuzzer), bounded in time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 60 s for each of version, inventory, iso and manifest. Seeds come from
# fuzz/seeds/ (committed) plus an ISO and manifest built here by systemvm itself; what the
# fuzzer learns stays in fuzz/corpus/ and crashes land in fuzz/artifacts/<target>/. Prints
# executions and crashes per target; exits 1 when any target crashed.
#
# No sanitizer by default (SANITIZER=none): the code is safe Rust, and AddressSanitizer
# would halve the speed; debug assertions (-a) stay on, so integer overflows count as
# crashes. With no sanitizer cargo-fuzz passes no nightly flag; SANITIZER=address does
# (-Zsanitizer), which the stable toolchain accepts under RUSTC_BOOTSTRAP=1, set here.
set -euo pipefail
sanitizer=${SANITIZER:-none}
cd "$(dirname "$0")"
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(version inventory iso manifest)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# Real inputs: an ISO with a key in its key area (cut at the end of the volume, so without
# xorriso's padding), a stock one made by genisoimage, and the manifest of the first.
seed_dir=$(mktemp -d)
trap 'rm -rf "$seed_dir"' EXIT
# (The ordinary build, without RUSTC_BOOTSTRAP, which would invalidate the root target/.)
cargo build --quiet --manifest-path ../Cargo.toml --bin systemvm
systemvm=../target/debug/systemvm
mkdir -p "$seed_dir/payload/agent/conf" "$seed_dir/payload/scripts/opt/cloud/bin"
echo 'workers=5' >"$seed_dir/payload/agent/conf/agent.properties"
printf '#!/bin/sh\necho patched\n' >"$seed_dir/payload/scripts/opt/cloud/bin/patch.sh"
ssh-keygen -q -t ed25519 -N '' -C fuzz@seed -f "$seed_dir/key"
SOURCE_DATE_EPOCH=1700000000 "$systemvm" -q build --version 4.16.0.0 --key-area 512 \
    --payload "$seed_dir/payload" --key "$seed_dir/key.pub" -o "$seed_dir/built.iso"
# An ISO cut at the end of its volume (the volume space size, at byte 80 of sector 16).
unpadded() {
    local blocks
    blocks=$(od -An -tu4 -j $((16 * 2048 + 80)) -N4 "$1" | tr -d ' ')
    head -c $((blocks * 2048)) "$1" >"$2"
}
mkdir -p corpus/iso corpus/manifest
unpadded "$seed_dir/built.iso" corpus/iso/seed-built.iso
cp "$seed_dir/built.iso.manifest.json" corpus/manifest/seed-built.json
if command -v genisoimage >/dev/null; then
    mkdir -p "$seed_dir/stock"
    cp "$seed_dir/key.pub" "$seed_dir/stock/authorized_keys"
    genisoimage -quiet -r -o "$seed_dir/stock.iso" "$seed_dir/stock"
    unpadded "$seed_dir/stock.iso" corpus/iso/seed-stock.iso
fi

export RUSTC_BOOTSTRAP=1
cargo fuzz build -s "$sanitizer" -a

status=0
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    log=logs/$t.log
    if cargo fuzz run -s "$sanitizer" -a "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=CRASHED
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    printf '%-10s %-8s %12s executions  %s crash files in fuzz/artifacts/%s  (log fuzz/%s)\n' \
        "$t" "$result" "$execs" "$crashes" "$t" "$log"
done
exit "$status"
