#!/usr/bin/env bash
# Building from a CloudStack checkout: `systemvm build --payload TREE` against Maven's own
# steps for the same release, in the same run.
#
# Usage: bench/cloudstack-tree.sh [-n RUNS] TREE [TREE...]
#   TREE  a CloudStack checkout (or ../shared/cloudstack/<release>); default: those in
#         ../shared/cloudstack beside the project
#
# The baseline is what systemvm/pom.xml and systemvm-agent-descriptor.xml do, serially:
# copy systemvm/debian and scripts/util/keystore-* into a staging tree, tar it with
# CloudStack's modes (Ant: 0755, 0644 for log* and logrotate.d/) and gzip it; copy the agent's
# file sets into a staging tree and zip it (the assembly); then for an ISO release (up to
# 4.16) `genisoimage -quiet -r` over the two archives. Both sides take the same JAR (a 40 MB
# stand-in, as the real agent's are about that size) and write to the same file system.
# Prints the median of RUNS per side and their ratio. Temp files go under $BENCH_TMPDIR,
# $TMPDIR or /tmp and are removed on exit.
set -euo pipefail

runs=5
if [ "${1:-}" = -n ]; then
    runs=$2
    shift 2
fi
if [ "$runs" -lt 1 ] || [ "$runs" -gt 100 ]; then
    echo "error: -n must be 1 to 100" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
if [ "$#" -eq 0 ]; then
    set -- "$project"/../shared/cloudstack/*/
fi
bin=$project/target/release/systemvm
[ -x "$bin" ] || (cd "$project" && cargo build --release --quiet)

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/cloudstack-tree.XXXXXX")
trap 'rm -rf "$work"' EXIT
head -c 40000000 /dev/urandom >"$work/cloud-agent.jar"
(cd "$work" && zip -q0 jars.zip cloud-agent.jar)

# maven TREE VERSION OUT: Maven's steps for this release.
maven() {
    local tree=$1 version=$2 out=$3 stage=$work/stage
    rm -rf "$stage" && mkdir -p "$stage/scripts/opt/cloud/bin" "$stage/agent/conf" "$out"
    cp -a "$tree/systemvm/debian/." "$stage/scripts/"
    cp -a "$tree"/scripts/util/keystore-* "$stage/scripts/opt/cloud/bin/"
    (cd "$stage/scripts" &&
        find . -type f ! -name 'log*' ! -path '*/logrotate.d/*' -print0 | sort -z |
        tar --null --files-from=- --mode=0755 -cf "$stage/patch.tar" &&
        find . -type f \( -name 'log*' -o -path '*/logrotate.d/*' \) -print0 | sort -z |
        tar --null --files-from=- --mode=0644 -rf "$stage/patch.tar")
    gzip -c "$stage/patch.tar" >"$out/cloud-scripts.tgz"
    local agent=$tree/systemvm/agent
    cp "$work/cloud-agent.jar" "$stage/agent/"
    cp -a "$agent/scripts/." "$stage/agent/"
    cp "$agent"/conf/{log4j-cloud.xml,consoleproxy.properties,agent.properties} "$stage/agent/conf/"
    for d in images js ui css certs noVNC packages; do
        [ -d "$agent/$d" ] && cp -a "$agent/$d" "$stage/agent/"
    done
    mkdir -p "$stage/agent/scripts/util" "$stage/agent/scripts/storage"
    cp -a "$tree"/scripts/util/keystore* "$stage/agent/scripts/util/"
    cp -a "$tree/scripts/storage/secondary" "$stage/agent/scripts/storage/"
    (cd "$stage/agent" && zip -qr "$out/agent.zip" .)
    case "$version" in
    4.1[0-6].* | 4.[0-9].*)
        (cd "$out" && genisoimage -quiet -r -o "$out.iso" agent.zip cloud-scripts.tgz)
        ;;
    esac
}

# ours TREE VERSION OUT
ours() {
    local out=$3
    case "$2" in
    4.1[0-6].* | 4.[0-9].*) out=$3.iso ;;
    esac
    "$bin" --quiet build --payload "$1" --version "$2" --agent-jars-from "$work/jars.zip" \
        -o "$out" 2>/dev/null
}

# median SECONDS...
median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# timed FUNCTION ARGS...: seconds for one run
timed() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

printf '%-10s %-10s %12s %12s %8s\n' release what maven systemvm ratio
for tree in "$@"; do
    tree=${tree%/}
    version=$(sed -n '/<parent>/,/<\/parent>/s:.*<version>\(.*\)</version>.*:\1:p' "$tree/systemvm/pom.xml")
    m=() o=()
    for _ in $(seq "$runs"); do
        rm -rf "$work/m" "$work/m.iso" "$work/o" "$work/o.iso"
        m+=("$(timed maven "$tree" "$version" "$work/m")")
        o+=("$(timed ours "$tree" "$version" "$work/o")")
    done
    mm=$(median "${m[@]}") om=$(median "${o[@]}")
    what=patch-files
    case "$version" in 4.1[0-6].* | 4.[0-9].*) what=iso ;; esac
    printf '%-10s %-10s %11.3fs %11.3fs %7.2fx\n' "$version" "$what" "$mm" "$om" \
        "$(echo "$om / $mm" | bc -l)"
done
