#!/usr/bin/env bash
# Run every benchmark and print one summary: `systemvm build` and `systemvm inject`, each
# against the CloudStack way of doing the same job, in the same run, on the same data.
#
# Usage: bench/run.sh [-n RUNS] [-o RESULTS_TSV]
#
# Builds the release binary, generates the seeded ~150 MB payload (bench/payload.py) in a
# temp directory, runs bench/build.sh (which leaves its ISO for the next step) and
# bench/inject.sh with RUNS timed runs each (default 5), then prints the summary table:
# medians, ratios, peak RSS and the targets. -o keeps the raw results (one line per run).
# Only local files; the temp directory (BENCH_TMPDIR, else TMPDIR, else /tmp; about 1 GB
# at peak) is removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runs=5
keep=""
usage() {
  echo "usage: $0 [-n RUNS] [-o RESULTS_TSV]" >&2
  exit 2
}
while getopts n:o:h opt; do
  case $opt in
    n) runs=$OPTARG ;;
    o) keep=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || usage

(cd "$here/.." && cargo build --release --quiet)

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/systemvm-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
res=$work/results.tsv
: >"$res"

python3 "$here/payload.py" "$work/payload"
"$here/build.sh" -n "$runs" -r "$res" -k "$work/systemvm.iso" "$work/payload"
echo
"$here/inject.sh" -n "$runs" -r "$res" "$work/systemvm.iso"

echo
echo "== summary ($runs runs each; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$(df -T "$work" | awk 'NR == 2 { print $2 }') at $work)"
python3 "$here/measure.py" report "$res" \
  --order build.ours --order build.cloudstack \
  --order inject.new --order inject.unchanged --order inject.in-place \
  --order inject.cloudstack-new --order inject.cloudstack-unchanged \
  --order inject.cloudstack-new-sync --order inject.cp-sync --order spawn.true \
  --ratio 'build.ours/build.cloudstack<=0.7' \
  --ratio 'inject.cloudstack-new/inject.new>=10' \
  --ratio 'inject.cloudstack-new-sync/inject.new' \
  --ratio 'inject.cloudstack-new/inject.in-place>=10' \
  --ratio 'inject.new/inject.cp-sync' \
  --limit 'build.ours.rss<64' \
  --limit 'inject.unchanged.wall<20' \
  --limit 'inject.in-place.wall<20'
if [[ -n $keep ]]; then cp "$res" "$keep"; fi
