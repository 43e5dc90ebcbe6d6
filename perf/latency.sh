#!/usr/bin/env bash
# Latency added per hop at 50 % of the measured maximum load, and behaviour at 2x overload.
#
# On the line of perf/line-overlay.sh (1 -> 2 -> 3, one worker each, static routes), for each
# size and path (1 hop: 1 -> 2, 2 hops: 1 -> 2 -> 3) and each run:
#   1. capacity C: weft-send --rate 0, --count messages (as perf/forwarding.sh);
#   2. 50 % load: weft-send --rate C/2 for --seconds; weft-recv's one-way latency p50/p99/p99.9
#      (CLOCK_MONOTONIC stamps, same host); the kernel-UDP gso chain (udp-baseline, same number of
#      processes) at the same rate beside it;
#   3. overload (2 hops only): weft-send --rate 2C for --overload-seconds; the received rate
#      against C, latency, and whether node 2's links stayed up (state, hello loss, last change).
# "Added per hop" is the 2-hop latency minus the 1-hop latency at the same rate (the 2-hop
# path's 50 % rate; one more data plane and one more loopback crossing). All processes share
# the 2 cores.
#
# Usage: perf/latency.sh [--runs R] [--seconds S] [--overload-seconds S] [--sizes LIST] [--count N]
#   --count N: messages of each capacity measurement (default 200000).
#   (prints Markdown; raw lines in perf/results/latency.jsonl, tables in perf/results/latency.md,
#   plots in perf/results/latency.svg (percentiles at 50 %), latency-added.svg (the second hop)
#   and latency-overload.svg; WEFT_PERF_OUT=DIR writes them to DIR instead)
set -euo pipefail
runs=3
seconds=5
overload_seconds=30
sizes="100 1400"
count=200000
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --overload-seconds) overload_seconds=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        --count) count=$2; shift 2 ;;
        *) echo "usage: $0 [--runs R] [--seconds S] [--overload-seconds S] [--sizes LIST] [--count N]" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${WEFT_PERF_OUT:-$root/perf/results}
mkdir -p "$out"
raw=$out/latency.jsonl
: >"$raw"
# shellcheck source=perf/line-overlay.sh
source "$root/perf/line-overlay.sh"

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

links_of_node2() {
    "$bin/weftctl" --config "$run/line.toml" --id 2 --json show links 2>/dev/null \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps([{"link": l["link"], "state": l["state"], "loss_ppm": l["loss_ppm"], "changed_ms_ago": l["changed_ms_ago"], "hellos_sent": l["hellos_sent"], "hellos_received": l["hellos_received"]} for l in d["links"]]))' \
        || echo null
}

for r in $(seq "$runs"); do
    for size in $sizes; do
        wsize=$(( size > 1396 ? 1396 : size ))
        foreign=$(foreign_load)
        cap1=$(count=$count weft_rate 2 "$wsize")
        cap2=$(count=$count weft_rate 3 "$wsize")
        half2=$(python3 -c "print(int(float('$(field "$cap2" rate)') / 2))")
        for hops in 1 2; do
            dst=$((hops + 1))
            cap=$cap1; [ "$hops" = 2 ] && cap=$cap2
            c=$(field "$cap" rate)
            half=$(python3 -c "print(int(float('$c') / 2))")
            n=$((half * seconds))
            w=$(count=$n weft_rate "$dst" "$wsize" "$half")
            b=$(count=$n baseline_rate "$dst" "$size" gso "$half")
            # The 1-hop path also at the 2-hop path's rate, so the second hop's latency is a
            # difference at one rate.
            same=null
            [ "$hops" = 1 ] && same=$(count=$((half2 * seconds)) weft_rate 2 "$wsize" "$half2")
            over=null; links=null
            if [ "$hops" = 2 ]; then
                twice=$(python3 -c "print(int(float('$c') * 2))")
                over=$(count=$((twice * overload_seconds)) weft_rate "$dst" "$wsize" "$twice" "$overload_seconds")
                links=$(links_of_node2)
            fi
            echo "{\"run\": $r, \"size\": $size, \"hops\": $hops, \"foreign_cores\": $foreign, \"capacity\": $cap, \"half\": $w, \"at_two_hop_half\": $same, \"baseline_half\": $b, \"overload\": $over, \"overload_seconds\": $overload_seconds, \"links_after\": $links}" >>"$raw"
        done
    done
done
python3 "$root/perf/latency_table.py" "$raw" "$out/latency.svg" | tee "$out/latency.md"
