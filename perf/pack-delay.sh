#!/usr/bin/env bash
# The pack delay of a best-effort flow (docs/dataplane.md "Packing"): datagrams per message,
# data-plane CPU per message and one-way latency of a paced 100 B flow over one hop, with pack
# delays of 0 (packing within a turn only), 100, 500 and 2,000 us, alternating within each run.
#
# The line of perf/line-overlay.sh (1 -> 2 -> 3 on loopback, one worker per node). weft-send on
# node 1 sends at a fixed rate (--rates, msgs/s) for --seconds to weft-recv on node 2. Node 1's
# datagrams are its `sent` counter (weftctl show counters; hellos, about 200/s, included) over the
# run. Prints one JSON line per measurement and a Markdown table; with WEFT_PERF_OUT=DIR also
# writes the table to DIR/pack-delay.md and the lines to DIR/pack-delay.jsonl.
#
# Usage: perf/pack-delay.sh [--runs R] [--seconds S] [--rates "20000 200000"] [--delays "0 100 500 2000"]
#   (lists separated by spaces or commas)
set -euo pipefail
runs=3
seconds=3
rates="20000 200000"
delays="0 100 500 2000"
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --rates) rates=$2; shift 2 ;;
        --delays) delays=$2; shift 2 ;;
        *) echo "usage: $0 [--runs R] [--seconds S] [--rates LIST] [--delays LIST]" >&2; exit 2 ;;
    esac
done
rates=${rates//,/ }
delays=${delays//,/ }
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
raw=$(mktemp /tmp/weft-pack-delay.XXXXXX)
count=100000000
# shellcheck source=perf/line-overlay.sh
source "$root/perf/line-overlay.sh"
sent_of_node1() {
    "$bin/weftctl" --config "$run/line.toml" --id 1 --json show counters |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["sent"])'
}
for r in $(seq "$runs"); do
    for rate in $rates; do
        for d in $delays; do
            s0=$(sent_of_node1)
            m=$(pack_delay_us=$d weft_rate 2 100 "$rate" "$seconds")
            s1=$(sent_of_node1)
            line="{\"run\": $r, \"rate\": $rate, \"pack_delay_us\": $d, \"node1_datagrams\": $((s1 - s0)), \"weft\": $m}"
            echo "$line" | tee -a "$raw"
        done
    done
done
python3 - "$raw" "${WEFT_PERF_OUT:-}" <<'PY'
import json, os, sys, statistics as st
out_dir = sys.argv[2]
table = []
_print = print
def print(line=""):
    table.append(line)
    _print(line)
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["rate"], r["pack_delay_us"]) for r in rows})
print("\n| rate msgs/s | pack delay us | received/sent | datagrams per message (node 1) | data planes CPU ns/msg | p50 us | p99 us | p99.9 us |")
print("|---|---|---|---|---|---|---|---|")
def med(v):
    v = [x for x in v if x is not None]
    return f"{st.median(v):.0f} [{min(v):.0f}–{max(v):.0f}]" if v else "-"
for rate, d in keys:
    rs = [r for r in rows if r["rate"] == rate and r["pack_delay_us"] == d]
    got = sum(r["weft"]["received"] for r in rs); sent = sum(r["weft"]["sent"] for r in rs)
    dpm = [r["node1_datagrams"] / max(r["weft"]["received"], 1) for r in rs]
    lat = lambda k: [r["weft"]["latency_us"].get(k) for r in rs]
    dpm_s = f"{st.median(dpm):.3f} [{min(dpm):.3f}–{max(dpm):.3f}]"
    print(f"| {rate} | {d} | {got}/{sent} | {dpm_s} | {med([r['weft']['forwarders_cpu_ns_per_msg'] for r in rs])} | {med(lat('p50'))} | {med(lat('p99'))} | {med(lat('p999'))} |")
if out_dir:
    open(os.path.join(out_dir, "pack-delay.md"), "w").write("\n".join(table).strip() + "\n")
    import shutil
    shutil.copy(sys.argv[1], os.path.join(out_dir, "pack-delay.jsonl"))
PY
rm -f "$raw"
