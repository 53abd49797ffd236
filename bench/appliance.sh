#!/usr/bin/env bash
# The system VM template end to end: `systemvm appliance build` (mmdebstrap, the disk,
# GRUB) and `systemvm appliance export` of every format, against CloudStack's export steps
# (tools/appliance/build.sh: serial qemu-img conversions, bzip2, zip) on the same raw disk,
# in the same run. Prints each stage's time and share, the wall times, the ratio of the
# exports, and the compressed size of every file next to CloudStack's published templates.
#
# Usage: sudo bench/appliance.sh [-n RUNS] [-r ROOTFS_TARBALL] [-p PAYLOAD]
#
# RUNS (default 1) timed export runs per side; the build runs once (minutes). -p builds
# from PAYLOAD instead of our agent-payload: a CloudStack checkout gives CloudStack's full
# template for its release (its whole package set; the version from its pom.xml). -r reuses an
# mmdebstrap tarball (from an earlier build) instead of running mmdebstrap, which then
# drops out of the figures. CloudStack's own Packer build cannot run here (it needs an
# installer ISO and KVM): its 30+ minutes and 0.45-0.5 GB per template are the published
# anchors, printed as such. Only local files, in a temp directory (BENCH_TMPDIR, else
# TMPDIR, else /tmp; about 12 GB at peak, mostly sparse) removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
runs=1
rootfs=""
payload=$here/../agent-payload
usage() {
  echo "usage: $0 [-n RUNS] [-r ROOTFS_TARBALL] [-p PAYLOAD]" >&2
  exit 2
}
while getopts n:r:p:h opt; do
  case $opt in
    n) runs=$OPTARG ;;
    r) rootfs=$OPTARG ;;
    p) payload=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || usage
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 1 || runs > 20)); then usage; fi
[[ $(id -u) -eq 0 ]] || { echo "$0: appliance build needs root" >&2; exit 2; }
for tool in qemu-img bzip2 zip mmdebstrap /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$0: missing $tool (run ./setup.sh)" >&2; exit 2; }
done

(cd "$here/.." && cargo build --release --quiet)
bin=$here/../target/release/systemvm

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/systemvm-appliance.XXXXXX")
trap 'rm -rf "$work"' EXIT
res=$work/results.tsv
: >"$res"
export SOURCE_DATE_EPOCH=1700000000
version=4.20.0.0
if [[ -f $payload/systemvm/pom.xml ]]; then
  # A CloudStack checkout: its release, as appliance build reads it (the parent's version).
  version=$(python3 -c 'import re, sys; t = open(sys.argv[1]).read(); print(re.search(r"<parent>.*?<version>\s*([^<\s]+)", t, re.S).group(1))' "$payload/systemvm/pom.xml")
fi

echo "== appliance build of $payload (once; stage times as systemvm prints them)"
build_args=(appliance build --version "$version" --no-export --payload "$payload" -o "$work/build")
[[ -n $rootfs ]] && build_args+=(--rootfs "$rootfs")
python3 "$here/measure.py" run "$res" appliance.build --stdout /dev/null -- "$bin" "${build_args[@]}" \
  2> >(tee "$work/build.log" >&2)
raw=$work/build/systemvmtemplate-$version-amd64.raw

# CloudStack's tools/appliance/build.sh export steps, as far as they run here: vhd-util
# and ovftool are not in Debian, so the XenServer VHD comes from qemu-img's vpc (dynamic)
# and the VMware side stops at the VMDK, as build.sh does without ovftool.
cat >"$work/cloudstack-export.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
raw=$1 out=$2 v=$3
rm -rf "$out" && mkdir -p "$out" && cd "$out"
qemu-img convert -c -f raw -O qcow2 -o compat=0.10 "$raw" "systemvmtemplate-$v-kvm.qcow2"
bzip2 "systemvmtemplate-$v-kvm.qcow2"
qemu-img convert -f raw -O vpc -o subformat=dynamic "$raw" "systemvmtemplate-$v-xen.vhd"
bzip2 "systemvmtemplate-$v-xen.vhd"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$raw" "systemvmtemplate-$v-vmware.vmdk"
qemu-img convert -f raw -O vpc "$raw" "systemvmtemplate-$v-hyperv.vhd"
zip -q "systemvmtemplate-$v-hyperv.vhd.zip" "systemvmtemplate-$v-hyperv.vhd"
rm -f "systemvmtemplate-$v-hyperv.vhd"
md5sum ./* >md5sum.txt
sha512sum ./* >sha512sum.txt
EOF
chmod +x "$work/cloudstack-export.sh"

echo
echo "== exports: systemvm appliance export (all formats) vs CloudStack's steps, $runs run(s) each"
for ((i = 1; i <= runs; i++)); do
  sync
  python3 "$here/measure.py" run "$res" export.ours -- \
    "$bin" -q appliance export "$raw" --version "$version" -o "$work/ours" >/dev/null
  sync
  python3 "$here/measure.py" run "$res" export.cloudstack -- \
    "$work/cloudstack-export.sh" "$raw" "$work/cloudstack" "$version"
  if ((i < runs)); then rm -rf "$work/ours"; fi
done

echo
echo "== stages of appliance build, and each one's share of it"
awk '$2 ~ /^[0-9.]+s$/ { t[NR] = $2 + 0; n[NR] = $1; sum += $2 }
     END { for (i in t) printf "  %-11s %7.1f s  %5.1f%%\n", n[i], t[i], 100 * t[i] / sum }' \
  "$work/build.log" | sort -k2 -n -r

echo
echo "== sizes (compressed files as shipped; CloudStack's published templates: 0.45-0.5 GB each)"
for dir in ours cloudstack; do
  for f in "$work/$dir"/systemvmtemplate-*; do
    printf '  %-11s %-48s %8.1f MiB\n' "$dir" "$(basename "$f")" \
      "$(awk -v b="$(stat -c %s "$f")" 'BEGIN { print b / 1048576 }')"
  done
done

echo
echo "== summary ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
python3 "$here/measure.py" report "$res" \
  --order appliance.build --order export.ours --order export.cloudstack \
  --ratio 'export.ours/export.cloudstack<=1' \
  --limit 'appliance.build.wall<600000'
# End to end: the build plus the median export, against the 10-minute target.
python3 - "$res" <<'EOF'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
build = sum(float(w) for label, w, _ in rows if label == "appliance.build")
export = statistics.median(float(w) for label, w, _ in rows if label == "export.ours")
total = build + export
print(f"end to end (build + median export.ours) = {total:.1f} s"
      f"  (target < 600 s: {'met' if total < 600 else 'MISSED'})")
EOF
echo "anchor: CloudStack's Packer build takes 30 min or more (installer ISO under KVM); not run here"
