#!/usr/bin/env python3
"""Time commands and report medians, ratios and peak memory for the bench/ scripts.

`run` starts one command under GNU time (/usr/bin/time -f %M), measures its wall time
with time.perf_counter_ns around spawn + wait, and takes its peak resident set size from
GNU time, which reports the ru_maxrss of wait4: the larger of the command's own peak and
that of every child it waited for (so a script counts its biggest member, and systemvm
counts the xorriso it runs). One line per run is appended to a results file:

    LABEL <TAB> WALL_SECONDS <TAB> MAXRSS_KIB

`report` reads such files and prints, per label, the number of runs, the median, min
and max wall time and the peak RSS over all runs, then the requested ratios of medians
and limits, each with its target and whether it was met. It only reads the files; the
exit status is 0 even when a target is missed (a benchmark is not a test).
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time

TIME = "/usr/bin/time"  # GNU time, Debian package `time`


def run(args):
    # Peak RSS comes from GNU time, not from our own wait4: a child of this Python process
    # starts with Python's high-water mark (exec records the old address space's peak in
    # the process's maxrss), so every figure would be at least Python's ~10-15 MiB. GNU
    # time forks the command from its own ~1 MiB image and reports wait4's ru_maxrss.
    with tempfile.NamedTemporaryFile("r", prefix="measure.", suffix=".rss") as rss:
        stdout = open(args.stdout, "wb") if args.stdout else None
        try:
            start = time.perf_counter_ns()
            proc = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *args.command],
                                  stdout=stdout, check=False)
            wall = (time.perf_counter_ns() - start) / 1e9
        finally:
            if stdout:
                stdout.close()
        lines = rss.read().split()
    if proc.returncode != 0:
        print(
            f"measure: {args.label}: {' '.join(args.command)} exited with {proc.returncode}",
            file=sys.stderr,
        )
        return proc.returncode if proc.returncode > 0 else 1
    with open(args.results, "a", encoding="utf-8") as out:
        out.write(f"{args.label}\t{wall:.6f}\t{int(lines[-1])}\n")
    return 0


def load(paths):
    runs = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                label, wall, rss = line.rstrip("\n").split("\t")
                runs.setdefault(label, []).append((float(wall), int(rss)))
    return runs


def fmt_time(seconds):
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"


def fmt_rss(kib):
    return f"{kib / 1024:.1f} MiB"


OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
RATIO = re.compile(r"^([\w.-]+)/([\w.-]+)(?:(<=|>=|<|>)([\d.]+))?$")
LIMIT = re.compile(r"^([\w.-]+)\.(wall|rss)(<=|>=|<|>)([\d.]+)$")


def verdict(value, op, target):
    if op is None:
        return ""
    ok = OPS[op](value, float(target))
    return f"  (target {op} {target}: {'met' if ok else 'MISSED'})"


def report(args):
    runs = load(args.results)
    median = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    peak = {k: max(r for _, r in v) for k, v in runs.items()}
    width = max([len(k) for k in runs] + [5])
    print(f"{'label':<{width}}  runs  {'median':>10}  {'min':>10}  {'max':>10}  {'peak RSS':>10}")
    for label in args.order or sorted(runs):
        if label not in runs:
            continue
        walls = [w for w, _ in runs[label]]
        print(
            f"{label:<{width}}  {len(walls):>4}  {fmt_time(median[label]):>10}"
            f"  {fmt_time(min(walls)):>10}  {fmt_time(max(walls)):>10}"
            f"  {fmt_rss(peak[label]):>10}"
        )
    for spec in args.ratio:
        m = RATIO.match(spec)
        if not m:
            sys.exit(f"measure: bad --ratio {spec!r} (want A/B or A/B<=X)")
        a, b, op, target = m.groups()
        if a not in median or b not in median:
            print(f"ratio {a} / {b}: no data")
            continue
        value = median[a] / median[b]
        print(f"ratio {a} / {b} = {value:.2f}x{verdict(value, op, target)}")
    for spec in args.limit:
        m = LIMIT.match(spec)
        if not m:
            sys.exit(f"measure: bad --limit {spec!r} (want LABEL.wall<MS or LABEL.rss<MIB)")
        label, what, op, target = m.groups()
        if label not in median:
            print(f"{label} {what}: no data")
            continue
        if what == "wall":
            value, unit, name = median[label] * 1000, "ms", f"median {label}"
        else:
            value, unit, name = peak[label] / 1024, "MiB", f"peak RSS {label}"
        ok = OPS[op](value, float(target))
        print(f"{name} = {value:.1f} {unit}  (target {op} {target} {unit}: "
              f"{'met' if ok else 'MISSED'})")
    return 0


def parse_run(argv):
    """`run RESULTS LABEL [--stdout FILE] -- COMMAND...`, parsed by hand: argparse drops
    every `--` from a remainder, and commands (xorriso) need theirs."""
    usage = "usage: measure.py run RESULTS LABEL [--stdout FILE] -- COMMAND..."
    if "--" not in argv:
        sys.exit(usage)
    split = argv.index("--")
    head, command = argv[:split], argv[split + 1:]
    stdout = None
    if len(head) == 4 and head[2] == "--stdout":
        stdout = head[3]
    elif len(head) != 2:
        sys.exit(usage)
    if not command:
        sys.exit(usage)
    return argparse.Namespace(results=head[0], label=head[1], stdout=stdout, command=command)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        return run(parse_run(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="RESULTS LABEL [--stdout FILE] -- COMMAND...: time one run")
    p = sub.add_parser("report", help="summarise result files")
    p.add_argument("results", nargs="+")
    p.add_argument("--order", action="append", default=[], help="labels, in order")
    p.add_argument("--ratio", action="append", default=[], help="A/B[<=X]: median ratio")
    p.add_argument("--limit", action="append", default=[], help="LABEL.wall<MS, LABEL.rss<MIB")
    p.set_defaults(func=report)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
