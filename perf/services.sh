#!/usr/bin/env bash
# Messages/s of the reliable service and of best effort on authenticated links, each beside
# plain best effort measured in the same run.
#
# The line of perf/line-overlay.sh (1 -> 2 -> 3 on loopback, one worker per node, nodes
# alternating between the 2 cores, static routes), with `mtu = 1600` on both links so that the
# largest payload is one packet on plain and keyed links alike (as perf/auth-forwarding.sh
# does). A client on node 1 sends --count messages with weft-send --rate 0 (as fast as the
# node's credits allow; for a reliable flow that is its end-to-end window of 1,024 messages,
# there is no faster way to send on it) to weft-recv on node 2 (1 hop) or node 3 (2 hops); the
# figure is weft-recv's receive rate (first to last message). Every weft-send is bounded at 60 s.
# Three variants, all in every run:
#   best effort     weft-send --service best-effort, plain links;
#   reliable        weft-send --service reliable (hop-by-hop recovery, in-order exactly-once
#                   end to end), plain links, right after best effort on the same overlay;
#   auth            best effort on a second overlay whose links are keyed (AES-128-GCM,
#                   auth=1 in line-overlay.sh).
# Each run starts the plain overlay and the keyed one in turn (plain first on odd runs, keyed
# first on even runs, so a drift of the machine's load does not favour one). Payload: the size,
# at most 1396 B (the reliable service's largest message; 1400 is measured as 1396).
# Per-run ratios reliable / best effort and auth / plain are taken within the run. Before each
# path and size the busy cores outside the benchmark are sampled for 1 s (/proc/stat); a run
# where that exceeds 0.5 core anywhere is marked and left out of the figures (all runs are used
# if every one is marked). Data-plane CPU per message: the CPU time of the data planes on the
# path (from /proc/PID/stat, 10 ms ticks) over the messages received; the clients' CPU is not
# counted.
#
# Usage: perf/services.sh [--count N] [--runs R] [--sizes "100 1400"] [--flows K]
#   --flows K: weft-send --flows K on every variant (default 1; each flow has its own credits).
#   Environment: packing=off adds `packing = false` to every node of both overlays (the data
#   plane must know that key); aead=aws-lc builds the data plane with AES-GCM from aws-lc-rs
#   (recorded as "aead" in every JSON line); WEFT_PERF_OUT=DIR writes the results there (default perf/results).
#   Prints Markdown tables, also written to DIR/services.md, a plot to DIR/services.svg and the
#   raw per-measurement JSON lines to DIR/services.jsonl.
set -euo pipefail
count=200000
runs=3
sizes="100 1400"
flows=1
while [ $# -gt 0 ]; do
    case $1 in
        --count) count=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        --flows) flows=$2; shift 2 ;;
        *) echo "usage: $0 [--count N] [--runs R] [--sizes LIST] [--flows K]" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${WEFT_PERF_OUT:-$root/perf/results}
mkdir -p "$out"
raw=$out/services.jsonl
: >"$raw"

measure_overlay() { # run auth(0|1)
    (
        auth=$2
        link_mtu=1600
        # shellcheck source=perf/line-overlay.sh
        source "$root/perf/line-overlay.sh"
        for size in $sizes; do
            wsize=$(( size > 1396 ? 1396 : size ))
            for hops in 1 2; do
                load=$(cut -d' ' -f1 /proc/loadavg)
                foreign=$(foreign_load)
                if [ "$auth" = 1 ]; then
                    variants="auth"
                else
                    variants="best-effort reliable"
                fi
                for v in $variants; do
                    svc=best-effort
                    [ "$v" = reliable ] && svc=reliable
                    m=$(service=$svc weft_rate $((hops + 1)) "$wsize" 0 60)
                    echo "{\"run\": $1, \"size\": $size, \"wsize\": $wsize, \"hops\": $hops, \"variant\": \"$v\", \"flows\": $flows, \"aead\": \"${aead:-aes-gcm}\", \"load1\": $load, \"foreign_cores\": $foreign, \"weft\": $m}" >>"$raw"
                done
            done
        done
        if [ "$auth" = 1 ]; then
            # Authentication failures would mean the keyed runs measured something else.
            grep -h "bad_tag\|replayed\|AES-GCM from" "$run"/node*.log >&2 || true
        fi
    )
}

for r in $(seq "$runs"); do
    if [ $((r % 2)) = 1 ]; then order="0 1"; else order="1 0"; fi
    for a in $order; do
        measure_overlay "$r" "$a"
    done
done
python3 "$root/perf/services_table.py" "$raw" "$count" "$out/services.svg" | tee "$out/services.md"
