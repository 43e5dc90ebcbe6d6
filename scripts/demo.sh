#!/usr/bin/env bash
# Weft's demo: a 6-node overlay on this machine, on loopback, each node homed on two "ISPs"
# (127.0.1.N and 127.0.2.N, see config/demo.toml), each node started by `weft node` (data plane
# + control plane). A client on node 6 sends --rate messages/s to a client on node 3, three
# overlay hops away. A third of the way in, the demo SIGKILLs the first intermediate node on
# the active route; two thirds in, it brings it back. It prints the routes before and after,
# what was sent and delivered, and the longest delivery gap (the outage). Everything it starts
# is stopped when it ends, however it ends.
#
# Usage: scripts/demo.sh [--seconds N] [--rate MSGS_PER_S] [--json]
# With --json the last line is one JSON object: sent, delivered, lost, max_outage_ms,
# killed_node, route_before, route_during, route_after, and the receiver's summary.
set -euo pipefail

seconds=15
rate=2000
json=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --json) json=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
if ! [ "$seconds" -ge 3 ] 2>/dev/null || [ "$seconds" -gt 300 ]; then
    echo "--seconds must be 3..300" >&2; exit 2
fi
if ! [ "$rate" -ge 1 ] 2>/dev/null; then
    echo "--rate must be a positive integer" >&2; exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
config=config/demo.toml
run=/tmp/weft-demo
src=6
dst=3
port=100

say() { if [ "$json" = 1 ]; then echo "$*" >&2; else echo "$*"; fi; }

say "== building"
cargo build --quiet -p weft -p weft-dataplane -p weft-controld -p weft-client -p weftctl --bins
bin=$root/target/debug
ctl() { "$bin/weftctl" --config "$config" "$@"; }

declare -A node_pid=()
pids=()
cleanup() {
    for p in "${node_pid[@]}" "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${node_pid[@]}" "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_node() {
    "$bin/weft" node --config "$config" --id "$1" >>"$run/node$1.log" 2>&1 &
    node_pid[$1]=$!
}

# The route from $src to $dst as "6 > 5 > 4 > 3", from the source's control plane.
route() {
    ctl --id "$src" --json show routes 2>/dev/null | python3 -c '
import json, sys
for r in json.load(sys.stdin)["routes"]:
    if r["destination"] == int(sys.argv[1]):
        print(" > ".join(map(str, r["path"])) or "unreachable")' "$dst" || echo "unknown"
}

mkdir -p "$run"
rm -f "$run"/*.log "$run"/*.json "$run"/*.out
say "== starting 6 nodes with weft node (logs in $run)"
for n in 1 2 3 4 5 6; do start_node "$n"; done
for n in 1 2 3 4 5 6; do
    for _ in $(seq 200); do
        ctl --id "$n" show fib >/dev/null 2>&1 && ctl --id "$n" show status >/dev/null 2>&1 && break
        sleep 0.05
    done
done
say "== waiting for link state to converge"
for _ in $(seq 200); do
    r=$(route)
    case "$r" in "$src > "*" > $dst") break ;; esac
    sleep 0.05
done
route_before=$(route)
say "route from node $src to node $dst: $route_before"
if [ "$json" = 0 ]; then ctl --id "$src" show routes; fi
# The first node after the source on the active route.
victim=$(awk '{print $3}' <<<"$route_before")
case "$victim" in ''|*[!0-9]*) echo "no route from $src to $dst: see $run/node*.log" >&2; exit 1 ;; esac

say "== sending $rate msgs/s from node $src to node $dst:$port for ${seconds}s"
"$bin/weft-recv" --socket "$run/node$dst.sock" --port "$port" --seconds $((seconds + 10)) \
    --idle-exit-ms 3000 --json >"$run/recv.out" 2>&1 &
recv_pid=$!
pids+=("$recv_pid")
sleep 0.3
"$bin/weft-send" --socket "$run/node$src.sock" --to "$dst:$port" --rate "$rate" \
    --seconds "$seconds" --size 200 >"$run/send.json" 2>"$run/send.err" &
send_pid=$!
pids+=("$send_pid")

third=$(python3 -c "print($seconds / 3)")
sleep "$third"
say "== killing node $victim (SIGKILL to its weft node: data plane and control plane)"
kill -KILL "${node_pid[$victim]}"
wait "${node_pid[$victim]}" 2>/dev/null || true
unset "node_pid[$victim]"
sleep 0.5
route_during=$(route)
say "route from node $src to node $dst without node $victim: $route_during"
if [ "$json" = 0 ]; then ctl --id "$src" show routes; fi
sleep "$(python3 -c "print(max($third - 0.5, 0.1))")"
say "== bringing node $victim back"
start_node "$victim"
sleep 1
route_after=$(route)
say "route from node $src to node $dst after node $victim returned: $route_after"

wait "$send_pid" || { cat "$run/send.err" >&2; exit 1; }
wait "$recv_pid" || true

python3 - "$run/send.json" "$run/recv.out" "$json" "$victim" "$route_before" "$route_during" "$route_after" <<'PY'
import json, sys
send = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
lines = open(sys.argv[2]).read().strip().splitlines()
try:
    recv = json.loads(lines[-1])
except (IndexError, ValueError):
    recv = {"received": 0, "lost": 0, "max_gap_ms": None}
as_json, victim, before, during, after = sys.argv[3] == "1", int(sys.argv[4]), *sys.argv[5:8]
out = {
    "sent": send["sent"],
    "delivered": recv.get("received", 0),
    "lost": send["sent"] - recv.get("received", 0),
    "max_outage_ms": recv.get("max_gap_ms"),
    "killed_node": victim,
    "route_before": before,
    "route_during": during,
    "route_after": after,
    "unreachable_at_source": send.get("unreachable", 0),
    "recv": recv,
}
if as_json:
    print(json.dumps(out))
else:
    print("== result")
    print("\n".join(lines[:-1]))
    print(f"sent {out['sent']}, delivered {out['delivered']}, lost {out['lost']}")
    print(f"longest delivery gap (the outage when node {victim} died): {out['max_outage_ms']:.1f} ms "
          f"(Spines: about 1050 ms)")
PY
