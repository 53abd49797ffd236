#!/usr/bin/env bash
# Benchmark `systemvm inject` against the CloudStack way of keying the same ISO.
#
# Usage: bench/inject.sh [-n RUNS] [-b BINARY] [-r RESULTS] ISO
#
# ISO is one that `systemvm build` made (it has the key area); it is not modified: ours and
# the baseline each work on their own copy in a temp directory. Two ed25519 keys, A and B,
# are made with ssh-keygen. After one untimed warm-up of each side, every one of RUNS
# (default 5) rounds times:
#   inject.new                  systemvm inject COPY --key B   (area holds A: copy, patch,
#                               fsync, rename)
#   inject.unchanged            systemvm inject COPY --key B   (again: nothing to write)
#   inject.in-place             systemvm inject COPY --key A --in-place (area holds B)
#   inject.cloudstack-new       bench/cloudstack-injectkeys.sh COPY B (holds A): extract
#                               all with bsdtar, replace authorized_keys, genisoimage -r,
#                               cp -f over the copy
#   inject.cloudstack-unchanged the same key again (reads authorized_keys, compares, stops)
#   inject.cloudstack-new-sync  COPY A (holds B) and then `sync COPY`: the baseline made as
#                               durable as ours is when it returns
#   inject.cp-sync              cp of the ISO plus `sync FILE`: the floor of any mode that
#                               writes a new file (ours by default)
#   spawn.true                  /bin/true: the cost of starting a measured process
# so every "new" run really changes the key area; the outcome each run reports is checked.
# Each timed run follows a `sync`; the side that goes first alternates between rounds.
# Prints medians, speedups baseline / ours (target >= 10 for a new key), the medians of
# unchanged and in-place (target < 20 ms) and peak RSS, all through bench/measure.py.
# Only local files; the temp directory (BENCH_TMPDIR, else TMPDIR, else /tmp) is removed
# on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runs=5
bin=$here/../target/release/systemvm
results=""
usage() {
  echo "usage: $0 [-n RUNS] [-b BINARY] [-r RESULTS] ISO" >&2
  exit 2
}
while getopts n:b:r:h opt; do
  case $opt in
    n) runs=$OPTARG ;;
    b) bin=$OPTARG ;;
    r) results=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -eq 1 ]] || usage
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 1 || runs > 100)); then
  echo "$0: RUNS must be 1 to 100" >&2
  exit 2
fi
iso=$(realpath "$1")
bin=$(realpath "$bin")
[[ -f $iso ]] || {
  echo "$0: no ISO $iso (make one with bench/build.sh -k or systemvm build)" >&2
  exit 2
}
[[ -x $bin ]] || {
  echo "$0: no $bin; run: cargo build --release" >&2
  exit 2
}
for tool in bsdtar genisoimage ssh-keygen python3 cmp /usr/bin/time; do
  command -v "$tool" >/dev/null || {
    echo "$0: $tool is not installed (see bench/README.md)" >&2
    exit 2
  }
done

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/systemvm-bench-inject.XXXXXX")
trap 'rm -rf "$work"' EXIT
res=$work/results.tsv
: >"$res"
for k in a b; do ssh-keygen -q -t ed25519 -N '' -C "bench-$k" -f "$work/$k"; done
ours=$work/ours.iso
cs=$work/cloudstack.iso
cp "$iso" "$ours"
if [[ -f $iso.manifest.json ]]; then cp "$iso.manifest.json" "$ours.manifest.json"; fi
cp "$iso" "$cs"

timed() { # LABEL [--stdout FILE] -- COMMAND...: one timed run, after flushing earlier writes
  sync
  python3 "$here/measure.py" run "$res" "$@"
}
expect() { # FILE WORD: the run's output must report WORD
  grep -q "$2" "$1" || {
    echo "inject: expected $2, got: $(cat "$1")" >&2
    exit 1
  }
}
ours_round() {
  timed inject.new --stdout "$work/out" -- \
    "$bin" -q inject "$ours" --key "$work/b.pub" --output-format json
  expect "$work/out" '"outcome":"patched"'
  timed inject.unchanged --stdout "$work/out" -- \
    "$bin" -q inject "$ours" --key "$work/b.pub" --output-format json
  expect "$work/out" '"outcome":"unchanged"'
  timed inject.in-place --stdout "$work/out" -- \
    "$bin" -q inject "$ours" --key "$work/a.pub" --in-place --output-format json
  expect "$work/out" '"outcome":"patched"'
}
cs_round() {
  timed inject.cloudstack-new --stdout "$work/out" -- \
    "$here/cloudstack-injectkeys.sh" "$cs" "$work/b.pub"
  expect "$work/out" rebuilt
  timed inject.cloudstack-unchanged --stdout "$work/out" -- \
    "$here/cloudstack-injectkeys.sh" "$cs" "$work/b.pub"
  expect "$work/out" unchanged
  # shellcheck disable=SC2016 # $1..$3 are for the inner sh
  timed inject.cloudstack-new-sync --stdout "$work/out" -- \
    sh -c '"$1" "$2" "$3" && sync "$2"' sh "$here/cloudstack-injectkeys.sh" "$cs" "$work/a.pub"
  expect "$work/out" rebuilt
}

echo "inject: ISO $iso ($(stat -c %s "$iso") bytes), $runs runs, work dir $work"
echo "inject: warm-up"
"$bin" -q inject "$ours" --key "$work/a.pub" # the area now holds A
"$here/cloudstack-injectkeys.sh" "$cs" "$work/a.pub" >/dev/null

for ((i = 1; i <= runs; i++)); do
  echo "inject: run $i of $runs"
  if ((i % 2)); then
    ours_round
    cs_round
  else
    cs_round
    ours_round
  fi
  # shellcheck disable=SC2016 # $1 and $2 are for the inner sh
  timed inject.cp-sync -- sh -c 'cp "$1" "$2" && sync "$2"' sh "$ours" "$work/copy.iso"
  rm -f "$work/copy.iso"
  timed spawn.true -- true
done

# Both copies must now hold key A, the last written, where a system VM reads it.
bsdtar -xOf "$ours" authorized_keys | grep -qF "$(cut -d' ' -f2 "$work/a.pub")" || {
  echo "inject: our ISO does not hold key A" >&2
  exit 1
}
bsdtar -xOf "$cs" authorized_keys | cmp -s - "$work/a.pub" || {
  echo "inject: the baseline's ISO does not hold key A" >&2
  exit 1
}

echo
python3 "$here/measure.py" report "$res" \
  --order inject.new --order inject.unchanged --order inject.in-place \
  --order inject.cloudstack-new --order inject.cloudstack-unchanged \
  --order inject.cloudstack-new-sync --order inject.cp-sync --order spawn.true \
  --ratio 'inject.cloudstack-new/inject.new>=10' \
  --ratio 'inject.cloudstack-new-sync/inject.new' \
  --ratio 'inject.cloudstack-new/inject.in-place' \
  --ratio 'inject.cloudstack-unchanged/inject.unchanged' \
  --ratio 'inject.new/inject.cp-sync' \
  --limit 'inject.unchanged.wall<20' \
  --limit 'inject.in-place.wall<20'
echo "(ratios of medians; baseline / ours is a speedup; inject.new / inject.cp-sync near 1"
echo " means the default mode costs what a plain copy + fsync of the ISO costs;"
echo " cloudstack-new-sync / new compares at equal durability)"

if [[ -n $results ]]; then cat "$res" >>"$results"; fi
