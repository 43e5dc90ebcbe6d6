#!/usr/bin/env bash
# Messages/s through one and two overlay hops at 100 B and 1400 B, beside a plain kernel-UDP
# forwarder measured in the same run (perf/src/bin/udp-baseline.rs).
#
# Weft: a client on node 1 sends --count messages as fast as credits allow (weft-send --rate 0)
# to a client on node 2 (one hop: 1 -> 2) or node 3 (two hops: 1 -> 2 -> 3, node 2 forwards);
# the figure is weft-recv's receive rate (first to last message). Baseline: udp-baseline gen -> sink (0
# forwarders), gen -> forward -> sink (1), gen -> forward -> forward -> sink (2).
# Each data plane runs one worker; on this 2-core machine all processes share the cores, so the
# figures are for the whole chain on one host, not per-core capacity.
#
# Usage: perf/forwarding.sh [--count N]   (release build; prints a Markdown table)
set -euo pipefail
count=200000
[ "${1:-}" = "--count" ] && count=$2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet -p weft-dataplane -p weft-controld -p weft-client -p weft-perf --bins
bin=$root/target/release
run=$(mktemp -d /tmp/weft-perf.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$run"; }
trap cleanup EXIT INT TERM

cat >"$run/line.toml" <<TOML
schema = 1
[overlay]
name = "perfline"
TOML
for n in 1 2 3; do cat >>"$run/line.toml" <<TOML
[[node]]
id = $n
name = "n$n"
cores = [$(( (n - 1) % 2 ))]
session_socket = "$run/node$n.sock"
ctl_socket = "$run/node$n.ctl"
[[node.interface]]
isp = "a"
addr = "127.0.77.$n:$((17000 + n))"
TOML
done
cat >>"$run/line.toml" <<TOML
[[link]]
id = 0
nodes = [1, 2]
cost = 1000
[[link]]
id = 1
nodes = [2, 3]
cost = 1000
TOML

for n in 1 2 3; do
    "$bin/weft-dataplane" --config "$run/line.toml" --id "$n" >"$run/node$n.log" 2>&1 &
    pids+=($!)
done
for n in 1 2 3; do
    for _ in $(seq 100); do [ -S "$run/node$n.sock" ] && break; sleep 0.05; done
    "$bin/weft-controld" --config "$run/line.toml" --id "$n" --static-routes >/dev/null
done
sleep 1

json_field() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d.get(sys.argv[1], d.get("recv",{}).get(sys.argv[1], "")))' "$1"; }

weft_rate() { # dst size
    local dst=$1 size=$2 port=$((200 + RANDOM % 1000))
    "$bin/weft-recv" --socket "$run/node$dst.sock" --port "$port" --idle-exit-ms 1000 --seconds 60 --json >"$run/recv.out" 2>&1 &
    local rp=$!
    sleep 0.2
    "$bin/weft-send" --socket "$run/node1.sock" --to "$dst:$port" --rate 0 --count "$count" --size "$size" >"$run/send.out"
    wait "$rp" || true
    python3 - "$run/recv.out" "$run/send.out" <<'PY'
import json, sys
recv = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
send = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
print(f"{recv.get('rate', 0):.0f} {recv.get('received', 0)} {send.get('sent', 0)}")
PY
}

baseline_rate() { # hops size
    local hops=$1 size=$2 base=$((30000 + RANDOM % 20000))
    local sink=127.0.0.1:$base
    "$bin/udp-baseline" sink --listen "$sink" --seconds 60 >"$run/bsink.out" &
    local sp=$! to=$sink
    local fps=()
    for h in $(seq "$hops"); do
        local listen=127.0.0.1:$((base + h))
        "$bin/udp-baseline" forward --listen "$listen" --to "$to" --seconds 30 >/dev/null &
        fps+=($!)
        to=$listen
    done
    sleep 0.2
    "$bin/udp-baseline" gen --to "$to" --size "$size" --count "$count" >/dev/null
    wait "$sp" || true
    for p in "${fps[@]}"; do kill "$p" 2>/dev/null || true; done
    python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); print("%.0f %d" % (d["pps"], d["received"]))' "$run/bsink.out"
}

echo "| path | size (Weft / baseline) | Weft msgs/s (received/sent) | kernel-UDP baseline msgs/s (received) |"
echo "|---|---|---|---|"
for size in 100 1400; do
    for hops in 1 2; do
        wsize=$(( size > 1396 ? 1396 : size ))  # 1396 B is the node's largest single-packet payload
        read -r wr wgot wsent < <(weft_rate $((hops + 1)) "$wsize")
        read -r br bgot < <(baseline_rate "$hops" "$size")
        echo "| $hops hop(s) | $wsize B / $size B | $wr ($wgot/$wsent) | $br ($bgot/$count) |"
    done
done
