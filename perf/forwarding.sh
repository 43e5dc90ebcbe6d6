#!/usr/bin/env bash
# Messages/s through one and two overlay hops at 100 B and 1400 B, each run beside the plain
# kernel-UDP forwarder (perf/src/udp_baseline/) in its three modes, measured in the same run.
#
# Weft: a client on node 1 sends --count messages as fast as credits allow (weft-send --rate 0)
# to a client on node 2 (one hop: 1 -> 2) or node 3 (two hops: 1 -> 2 -> 3, node 2 forwards);
# the figure is weft-recv's receive rate (first to last message).
# Baseline: udp-baseline gen -> forward x K -> sink with K = the number of Weft data planes on
# the path (2 for one hop, 3 for two), so both chains have the same number of processes and
# socket crossings. Modes: per-packet (recvfrom/sendto), gso (recvmmsg, runs sent as one
# UDP_SEGMENT send), gro-gso (UDP_GRO in, super-packets out whole: idealised on loopback; Weft's
# data plane also receives with GRO and sends with GSO). The generator sends in batches of 32
# (one GSO send per batch in gro-gso mode), paced; the baseline's figure is the highest
# delivered rate with at most 1 % loss, found by bisecting the paced rate (6 probes of --count
# each), with the flat-out figure beside it. The sink records like weft-recv. All processes
# share the 2 cores.
#
# Every combination runs --runs times (default 3), Weft and the baselines back to back within a
# run; the table gives the median and min-max, and the ratio Weft / baseline per run (median and
# min-max). The 1-minute load average before each run is recorded; a run that starts with
# another process using more than 0.5 core (sampled from /proc/stat for 1 s) is marked.
#
# Usage: perf/forwarding.sh [--count N] [--runs R] [--sizes "100 1400"]
#   (release build; prints Markdown tables, also written to perf/results/forwarding.md, with a
#   plot in perf/results/forwarding.svg; raw per-run JSON lines go to perf/results/forwarding.jsonl;
#   WEFT_PERF_OUT=DIR writes them to DIR instead)
set -euo pipefail
count=200000
runs=3
sizes="100 1400"
while [ $# -gt 0 ]; do
    case $1 in
        --count) count=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        *) echo "usage: $0 [--count N] [--runs R] [--sizes LIST]" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${WEFT_PERF_OUT:-$root/perf/results}
mkdir -p "$out"
raw=$out/forwarding.jsonl
: >"$raw"
# shellcheck source=perf/line-overlay.sh
source "$root/perf/line-overlay.sh"

for r in $(seq "$runs"); do
    for size in $sizes; do
        for hops in 1 2; do
            wsize=$(( size > 1396 ? 1396 : size ))  # 1396 B is the node's largest single-packet payload
            load=$(cut -d' ' -f1 /proc/loadavg)
            foreign=$(foreign_load)
            w=$(weft_rate $((hops + 1)) "$wsize")
            for mode in per-packet gso gro-gso; do
                b=$(baseline_best $((hops + 1)) "$size" "$mode")
                echo "{\"run\": $r, \"size\": $size, \"hops\": $hops, \"load1\": $load, \"foreign_cores\": $foreign, \"mode\": \"$mode\", \"weft\": $w, \"baseline\": $b}" >>"$raw"
            done
        done
        # The machine's per-core limit, as the reference measured it: one forwarder alone on
        # core 1, generator and sink on core 0 (no Weft figure beside it).
        for mode in per-packet gso gro-gso; do
            b=$(PIN=1 baseline_best 1 "$size" "$mode")
            echo "{\"run\": $r, \"size\": $size, \"solo\": true, \"mode\": \"$mode\", \"baseline\": $b}" >>"$raw"
        done
    done
done
python3 "$root/perf/forwarding_table.py" "$raw" "$count" "$out/forwarding.svg" | tee "$out/forwarding.md"
