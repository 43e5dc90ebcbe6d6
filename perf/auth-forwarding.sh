#!/usr/bin/env bash
# Forwarding with and without per-link authentication (AES-128-GCM), in the same run.
#
# The line of perf/forwarding.sh (nodes 1 -> 2 -> 3 on loopback, one worker each, static routes,
# weft-send --rate 0 on node 1, weft-recv on node 2 (1 hop) or node 3 (2 hops)), started twice
# per repetition: once with plain links and once with a key file on both links. Links have
# mtu = 1600 so a 1400-B payload fits one packet in both modes (1492 B plain, 1508 B with the
# tag). Modes alternate within each repetition, so both see the same machine load; the load
# average and the CPU time other processes used during each repetition are printed with it.
#
# Usage: perf/auth-forwarding.sh [--count N] [--reps R] [--native]
#   --native: build with RUSTFLAGS="-C target-cpu=native" into target/native (AES-NI, PCLMULQDQ,
#             VAES and VPCLMULQDQ inlined instead of chosen at run time).
# Prints one line per measurement and a Markdown table of medians (min-max).
set -euo pipefail
count=200000 reps=3 native=0
while [ $# -gt 0 ]; do
    case $1 in
        --count) count=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --native) native=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "$native" = 1 ]; then
    export RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=$root/target/native
fi
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --quiet -p weft-dataplane -p weft-controld -p weft-client --bins
bin=$target/release
run=$(mktemp -d /tmp/weft-perf-auth.XXXXXX)
pids=()
stop_nodes() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
cleanup() { stop_nodes; rm -rf "$run"; }
trap cleanup EXIT INT TERM

echo "0 00112233445566778899aabbccddeeff" >"$run/link.key"
write_config() { # auth: 0 or 1
    local f=$run/line$1.toml
    printf 'schema = 1\n[overlay]\nname = "perfauth%s"\n' "$1" >"$f"
    for n in 1 2 3; do cat >>"$f" <<TOML
[[node]]
id = $n
name = "n$n"
cores = [$(( (n - 1) % 2 ))]
session_socket = "$run/node$n.sock"
ctl_socket = "$run/node$n.ctl"
[[node.interface]]
isp = "a"
addr = "127.0.78.$n:$((17100 + n))"
TOML
    done
    for l in 0 1; do
        printf '[[link]]\nid = %s\nnodes = [%s, %s]\ncost = 1000\nmtu = 1600\n' "$l" $((l + 1)) $((l + 2)) >>"$f"
        [ "$1" = 1 ] && printf 'key_file = "link.key"\n' >>"$f"
    done
    echo "$f"
}

start_nodes() { # config
    for n in 1 2 3; do
        "$bin/weft-dataplane" --config "$1" --id "$n" >"$run/node$n.log" 2>&1 &
        pids+=($!)
    done
    for n in 1 2 3; do
        for _ in $(seq 100); do [ -S "$run/node$n.sock" ] && break; sleep 0.05; done
        "$bin/weft-controld" --config "$1" --id "$n" --static-routes >/dev/null
    done
    sleep 1
}

weft_rate() { # dst size
    local dst=$1 size=$2 port=$((200 + RANDOM % 1000))
    "$bin/weft-recv" --socket "$run/node$dst.sock" --port "$port" --idle-exit-ms 1000 --seconds 60 --json >"$run/recv.out" 2>&1 &
    local rp=$!
    sleep 0.2
    "$bin/weft-send" --socket "$run/node1.sock" --to "$dst:$port" --rate 0 --count "$count" --size "$size" >"$run/send.out"
    wait "$rp" || true
    python3 - "$run/recv.out" <<'PY'
import json, sys
recv = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"{recv.get('rate', 0):.0f} {recv.get('received', 0)}")
PY
}

# CPU ticks of every process (utime + stime), to tell what others used during a repetition.
cpu_ticks() { awk '{ s += $14 + $15 } END { print s }' /proc/[0-9]*/stat 2>/dev/null; }
own_ticks() { local s=0; for p in "${pids[@]}"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }

results=$run/results.txt
: >"$results"
for rep in $(seq "$reps"); do
    for auth in 0 1; do
        cfg=$(write_config $auth)
        start_nodes "$cfg"
        load=$(cut -d' ' -f1 /proc/loadavg)
        for size in 100 1400; do
            for hops in 1 2; do
                read -r rate got < <(weft_rate $((hops + 1)) "$size")
                echo "rep $rep auth $auth size $size hops $hops rate $rate received $got/$count load1 $load" | tee -a "$results"
            done
        done
        if [ "$auth" = 1 ]; then
            grep -h "bad_tag\|replayed" "$run"/node*.log || true
        fi
        stop_nodes
    done
done

python3 - "$results" "$native" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
cells = {}
for r in rows:
    key = (int(r[5]), int(r[7]), int(r[3]))  # size, hops, auth
    cells.setdefault(key, []).append(float(r[9]))
build = "target-cpu=native" if sys.argv[2] == "1" else "default (portable)"
print(f"\nbuild: {build}")
print("| path | payload | plain msgs/s, median (min-max) | authenticated msgs/s, median (min-max) | ratio of medians |")
print("|---|---|---|---|---|")
for size in (100, 1400):
    for hops in (1, 2):
        p, a = cells.get((size, hops, 0), [0]), cells.get((size, hops, 1), [0])
        mp, ma = statistics.median(p), statistics.median(a)
        fmt = lambda v, m: f"{m:,.0f} ({min(v):,.0f}-{max(v):,.0f})"
        ratio = f"{100 * ma / mp:.0f} %" if mp else "-"
        print(f"| {hops} hop(s) | {size} B | {fmt(p, mp)} | {fmt(a, ma)} | {ratio} |")
PY
