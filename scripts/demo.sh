#!/usr/bin/env bash
# Weft's demo: a 6-node overlay on this machine, on loopback, each node homed on two "ISPs"
# (127.0.1.N and 127.0.2.N, see config/demo.toml). It starts one data plane per node, publishes
# the config's shortest paths into each (weft-controld --static-routes), sends --rate messages/s
# from a client on node 6 to a client on node 3 (three overlay hops) for --seconds, and prints
# the route, what was sent and delivered, loss, reordering and latency. Everything it starts is
# stopped when it ends, however it ends.
#
# Usage: scripts/demo.sh [--seconds N] [--rate MSGS_PER_S] [--json]
# With --json the last line is one JSON object (sent, delivered, lost, latency percentiles).
set -euo pipefail

seconds=10
rate=2000
json=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --json) json=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
config=config/demo.toml
run=/tmp/weft-demo
src=6
dst=3
port=100

say() { if [ "$json" = 1 ]; then echo "$*" >&2; else echo "$*"; fi; }

say "== building"
cargo build --quiet -p weft-dataplane -p weft-controld -p weft-client --bins
bin=$root/target/debug

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

mkdir -p "$run"
: >"$run/controld.log"
say "== starting 6 data planes (logs in $run)"
for n in 1 2 3 4 5 6; do
    "$bin/weft-dataplane" --config "$config" --id "$n" >"$run/node$n.log" 2>&1 &
    pids+=($!)
done
for n in 1 2 3 4 5 6; do
    for _ in $(seq 100); do [ -S "$run/node$n.sock" ] && break; sleep 0.05; done
    [ -S "$run/node$n.sock" ] || { cat "$run/node$n.log" >&2; echo "node $n did not start" >&2; exit 1; }
done

say "== publishing static shortest-path routes"
for n in 1 2 3 4 5 6; do
    "$bin/weft-controld" --config "$config" --id "$n" --static-routes >>"$run/controld.log"
done
say "$(grep -c published "$run/controld.log") FIBs published; the flow's route, hop by hop:"
hop=$src
while [ "$hop" != "$dst" ]; do
    line=$(grep "^node $hop: to $dst via" "$run/controld.log")
    say "  $line"
    hop=$(sed -E 's/.*next hop ([0-9]+).*/\1/' <<<"$line")
done

say "== waiting for links to come up"
sleep 1

say "== sending $rate msgs/s from node $src to node $dst:$port for ${seconds}s"
"$bin/weft-recv" --socket "$run/node$dst.sock" --port "$port" --seconds $((seconds + 5)) \
    --idle-exit-ms 2000 --json >"$run/recv.out" 2>&1 &
recv_pid=$!
pids+=("$recv_pid")
sleep 0.3
"$bin/weft-send" --socket "$run/node$src.sock" --to "$dst:$port" --rate "$rate" \
    --seconds "$seconds" --size 200 >"$run/send.json"
wait "$recv_pid" || true

sent=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["sent"])' "$run/send.json")
if [ "$json" = 1 ]; then
    python3 - "$run/send.json" "$run/recv.out" <<'PY'
import json, sys
send = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
recv = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
out = {"sent": send["sent"], "delivered": recv.get("received"), "recv": recv, "send": send}
print(json.dumps(out))
PY
else
    echo "== receiver's summary (node $dst)"
    head -n -1 "$run/recv.out"
    echo "sent: $sent"
fi
