#!/usr/bin/env bash
# Scaling from one to two data-plane workers per node on this 2-core machine.
#
# The line of perf/line-overlay.sh (1 -> 2 -> 3), started fresh for each measurement with one
# worker per node (nodes alternating between cores 0 and 1) or two (cores 0 and 1 each); 1 and
# 2 hops, 100 B and 1396 B, weft-send flat out (--count messages) to weft-recv, alternating
# one and two workers within each run. All 3 nodes and both clients share the 2 cores either way,
# so this shows what a second worker costs or gains when there is no spare core, not per-core
# scaling. Before each measurement the busy cores outside the benchmark are sampled for 1 s
# (/proc/stat); a run where that exceeds 0.5 core is marked and left out of the figures.
#
# --flows K: weft-send opens K flows (default 1); with several, node 1's workers spread them
# over sub-lanes, so a two-worker node 2 (and 3) forward them on both workers. The outputs are
# then named workers-flows.* instead of workers.*.
#
# Usage: perf/workers.sh [--count N] [--runs R] [--flows K]
#   (prints Markdown, also written to perf/results/workers.md, with a plot in
#   perf/results/workers.svg; raw lines in perf/results/workers.jsonl; WEFT_PERF_OUT=DIR writes
#   them to DIR instead)
set -euo pipefail
count=200000
runs=3
nflows=1
while [ $# -gt 0 ]; do
    case $1 in
        --count) count=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --flows) nflows=$2; shift 2 ;;
        *) echo "usage: $0 [--count N] [--runs R] [--flows K]" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${WEFT_PERF_OUT:-$root/perf/results}
mkdir -p "$out"
# Outputs: workers.{jsonl,md,svg}, or workers-flows.* with more than one flow.
base=workers
[ "$nflows" -gt 1 ] && base=workers-flows
raw=$out/$base.jsonl
: >"$raw"
for r in $(seq "$runs"); do
    for w in 1 2; do
        (
            workers=$w
            flows=$nflows
            # shellcheck source=perf/line-overlay.sh
            source "$root/perf/line-overlay.sh"
            for size in 100 1396; do
                for hops in 1 2; do
                    foreign=$(foreign_load)
                    m=$(weft_rate $((hops + 1)) "$size")
                    echo "{\"run\": $r, \"workers\": $w, \"flows\": $nflows, \"size\": $size, \"hops\": $hops, \"foreign_cores\": $foreign, \"weft\": $m}" >>"$raw"
                done
            done
        )
    done
done
python3 "$root/perf/workers_table.py" "$raw" "$out/$base.svg" | tee "$out/$base.md"
