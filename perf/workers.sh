#!/usr/bin/env bash
# Scaling from one to two data-plane workers per node on this 2-core machine.
#
# The line of perf/line-overlay.sh (1 -> 2 -> 3), started fresh for each measurement with one
# worker per node (nodes alternating between cores 0 and 1) or two (cores 0 and 1 each); 1 and
# 2 hops, 100 B and 1396 B, weft-send flat out (--count messages) to weft-recv, alternating
# one and two workers within each run. All 3 nodes and both clients share the 2 cores either way,
# so this shows what a second worker costs or gains when there is no spare core, not per-core
# scaling.
#
# Usage: perf/workers.sh [--count N] [--runs R]
#   (prints Markdown; raw lines in perf/results/workers.jsonl)
set -euo pipefail
count=200000
runs=3
while [ $# -gt 0 ]; do
    case $1 in
        --count) count=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        *) echo "usage: $0 [--count N] [--runs R]" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p "$root/perf/results"
raw=$root/perf/results/workers.jsonl
: >"$raw"
for r in $(seq "$runs"); do
    for w in 1 2; do
        (
            workers=$w
            # shellcheck source=perf/line-overlay.sh
            source "$root/perf/line-overlay.sh"
            for size in 100 1396; do
                for hops in 1 2; do
                    m=$(weft_rate $((hops + 1)) "$size")
                    echo "{\"run\": $r, \"workers\": $w, \"size\": $size, \"hops\": $hops, \"weft\": $m}" >>"$raw"
                done
            done
        )
    done
done
python3 - "$raw" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for r in rows:
    by[(r["size"], r["hops"], r["workers"])].append(r["weft"])
def mm(xs, f="{:.0f}"):
    return f"{f.format(statistics.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"
print(f"{len({r['run'] for r in rows})} runs; msgs/s median [min–max]; data planes' CPU ns/msg")
print()
print("| path | size | 1 worker msgs/s | 2 workers msgs/s | 2 / 1 | CPU ns/msg, 1 worker | 2 workers |")
print("|---|---|---|---|---|---|---|")
for size in sorted({k[0] for k in by}):
    for hops in (1, 2):
        one, two = by[(size, hops, 1)], by[(size, hops, 2)]
        ratio = [b["rate"] / a["rate"] for a, b in zip(one, two) if a["rate"]]
        print(f"| {hops} hop{'s' if hops > 1 else ''} | {size} B | {mm([x['rate'] for x in one])} | "
              f"{mm([x['rate'] for x in two])} | {mm(ratio, '{:.2f}')} | "
              f"{mm([x['forwarders_cpu_ns_per_msg'] for x in one])} | {mm([x['forwarders_cpu_ns_per_msg'] for x in two])} |")
PY
