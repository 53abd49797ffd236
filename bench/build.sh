#!/usr/bin/env bash
# Benchmark `systemvm build` against the CloudStack way of building the same ISO.
#
# Usage: bench/build.sh [-n RUNS] [-b BINARY] [-r RESULTS] [-k KEEP_ISO] PAYLOAD
#
# Both sides get the same payload and the same authorized_keys:
#   ours      systemvm build --payload PAYLOAD --version 4.16.0.0 --key K.pub -o ours.iso
#   baseline  bench/cloudstack-build.sh: zip -r of agent/, tar czf of scripts/,
#             genisoimage -quiet -r over the two archives and authorized_keys
# One untimed warm-up of each puts the payload and the binaries in the page cache; then
# RUNS (default 5) timed runs of each, interleaved and alternating which goes first, each
# after a `sync` so no run pays for the previous one's dirty pages. Wall time comes from
# bench/measure.py (perf_counter around spawn + wait), peak RSS from wait4's rusage (the
# largest of the process and the children it waited for, so ours includes xorriso). One
# more untimed run points SYSTEMVM_XORRISO at a wrapper that measures xorriso alone, to
# tell our own memory and time from xorriso's. Prints medians, ratio ours / baseline
# (target <= 0.7) and peak RSS (target < 64 MiB); checks two of our builds are identical.
# Only local files; everything goes to a temp directory removed on exit (BENCH_TMPDIR, else
# TMPDIR, else /tmp: use a disk-backed file system, on tmpfs fsync costs nothing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runs=5
bin=$here/../target/release/systemvm
results=""
keep=""
usage() {
  echo "usage: $0 [-n RUNS] [-b BINARY] [-r RESULTS] [-k KEEP_ISO] PAYLOAD" >&2
  exit 2
}
while getopts n:b:r:k:h opt; do
  case $opt in
    n) runs=$OPTARG ;;
    b) bin=$OPTARG ;;
    r) results=$OPTARG ;;
    k) keep=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -eq 1 ]] || usage
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 1 || runs > 100)); then
  echo "$0: RUNS must be 1 to 100" >&2
  exit 2
fi
payload=$(realpath "$1")
bin=$(realpath "$bin")
[[ -d $payload/agent && -d $payload/scripts ]] || {
  echo "$0: $payload has no agent/ and scripts/ (make one with bench/payload.py)" >&2
  exit 2
}
[[ -x $bin ]] || {
  echo "$0: no $bin; run: cargo build --release" >&2
  exit 2
}
for tool in zip tar genisoimage xorriso ssh-keygen python3 cmp; do
  command -v "$tool" >/dev/null || {
    echo "$0: $tool is not installed (see bench/README.md)" >&2
    exit 2
  }
done

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/systemvm-bench-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
res=$work/results.tsv
: >"$res"
ssh-keygen -q -t ed25519 -N '' -C bench-build -f "$work/key"

# Each takes the output path as its last argument.
ours=("$bin" -q build --payload "$payload" --version 4.16.0.0 --key "$work/key.pub" -o)
baseline=("$here/cloudstack-build.sh" "$payload" "$work/key.pub")
timed() { # LABEL COMMAND...: one timed run, after flushing earlier writes
  sync
  python3 "$here/measure.py" run "$res" "$@"
}

echo "build: payload $payload ($(du -sh "$payload" | cut -f1)), $runs runs, work dir $work"
echo "build: warm-up"
"${ours[@]}" "$work/first.iso"
"${baseline[@]}" "$work/cloudstack.iso"

for ((i = 1; i <= runs; i++)); do
  echo "build: run $i of $runs"
  rm -f "$work/ours.iso" "$work/ours.iso.manifest.json" "$work/cloudstack.iso"
  if ((i % 2)); then
    timed build.ours -- "${ours[@]}" "$work/ours.iso"
    timed build.cloudstack -- "${baseline[@]}" "$work/cloudstack.iso"
  else
    timed build.cloudstack -- "${baseline[@]}" "$work/cloudstack.iso"
    timed build.ours -- "${ours[@]}" "$work/ours.iso"
  fi
done
cmp -s "$work/first.iso" "$work/ours.iso" || {
  echo "build: two builds of the same payload differ (not reproducible)" >&2
  exit 1
}

echo "build: one more run with xorriso measured on its own"
cat >"$work/xorriso" <<EOF
#!/bin/sh
exec python3 "$here/measure.py" run "$res" build.ours.xorriso-part -- xorriso "\$@"
EOF
chmod +x "$work/xorriso"
rm -f "$work/ours.iso" "$work/ours.iso.manifest.json"
SYSTEMVM_XORRISO=$work/xorriso timed build.ours.traced -- "${ours[@]}" "$work/ours.iso"

echo
echo "ISO sizes: ours $(stat -c %s "$work/ours.iso") bytes," \
  "cloudstack $(stat -c %s "$work/cloudstack.iso") bytes"
python3 "$here/measure.py" report "$res" \
  --order build.ours --order build.cloudstack \
  --order build.ours.traced --order build.ours.xorriso-part \
  --ratio 'build.ours/build.cloudstack<=0.7' \
  --ratio 'build.ours.xorriso-part/build.ours.traced' \
  --limit 'build.ours.rss<64'
echo "(build.ours.traced is one extra run whose xorriso went through a measuring wrapper;"
echo " build.ours.xorriso-part is that xorriso alone: wall time and its own peak RSS)"

if [[ -n $results ]]; then cat "$res" >>"$results"; fi
if [[ -n $keep ]]; then
  mv "$work/ours.iso" "$keep"
  mv "$work/ours.iso.manifest.json" "$keep.manifest.json"
fi
