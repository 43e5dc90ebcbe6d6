# Sourced by perf/forwarding.sh, latency.sh, workers.sh and services.sh (not run alone): builds
# release, starts three data planes in a line (1 -> 2 -> 3) on loopback with static routes, and
# defines the measurement helpers they use:
#   weft_rate DST SIZE [RATE [SECS]]   weft-send on node 1 -> weft-recv on node DST (JSON)
#   baseline_rate K SIZE MODE RATE     udp-baseline gen -> forward x K -> sink (JSON)
#   baseline_best K SIZE MODE          the baseline's highest rate with <= 1 % loss (JSON)
#   cpu_of PID...  foreign_load        CPU seconds of processes; busy cores outside them
# Expects: root (the checkout), count (messages per measurement). Optional variables, read when
# sourced (the overlay's config):
#   workers=2     every node gets two workers on cores 0 and 1 (default: one worker, nodes
#                 alternating between the cores);
#   auth=1        every link is keyed (AES-128-GCM, one key file for both links, as
#                 perf/auth-forwarding.sh does); auth=0 or unset: plain links;
#   link_mtu=N    `mtu = N` on every link (default: the config's default, 1500);
#   packing=off   `packing = false` in every [[node]] entry (the data plane must know the key);
#   aead=aws-lc   build the data plane with the `aws-lc` feature (AES-GCM from aws-lc-rs
#                 instead of the aes-gcm crate; docs/dataplane.md "Authentication");
# and read by weft_rate at each call:
#   service=reliable|realtime   weft-send --service (default best-effort);
#   flows=K       weft-send --flows K (default 1);
#   pack_delay_us=D   weft-send --pack-delay-us D (best effort; default 0).
# WEFT_PERF_BUILT=1: skip the build and use target/release as it is (perf/run-all.sh builds once,
# so every benchmark of one run uses the same binaries). WEFT_PERF_BIN=DIR: take the binaries
# from DIR instead of target/release (a copy that another build cannot replace mid-run).
if [ "${WEFT_PERF_BUILT:-0}" != 1 ]; then
    cargo build --release --quiet -p weft-dataplane -p weft-controld -p weft-client -p weft-perf -p weftctl --bins \
        $( [ "${aead:-}" = aws-lc ] && echo "--features weft-dataplane/aws-lc" )
fi
bin=${WEFT_PERF_BIN:-$root/target/release}
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
cores = [$( [ "${workers:-1}" = 2 ] && echo "0, 1" || echo $(( (n - 1) % 2 )) )]
session_socket = "$run/node$n.sock"
ctl_socket = "$run/node$n.ctl"
$( [ "${packing:-on}" = off ] && echo "packing = false" )
[[node.interface]]
isp = "a"
addr = "127.0.77.$n:$((17000 + n))"
TOML
done
echo "0 00112233445566778899aabbccddeeff" >"$run/link.key"
chmod 600 "$run/link.key"
for l in 0 1; do
    printf '[[link]]\nid = %s\nnodes = [%s, %s]\ncost = 1000\n' "$l" $((l + 1)) $((l + 2)) >>"$run/line.toml"
    if [ -n "${link_mtu:-}" ]; then printf 'mtu = %s\n' "$link_mtu" >>"$run/line.toml"; fi
    if [ "${auth:-0}" = 1 ]; then printf 'key_file = "link.key"\n' >>"$run/line.toml"; fi
done

for n in 1 2 3; do
    "$bin/weft-dataplane" --config "$run/line.toml" --id "$n" >"$run/node$n.log" 2>&1 &
    pids+=($!)
done
for n in 1 2 3; do
    for _ in $(seq 100); do [ -S "$run/node$n.sock" ] && break; sleep 0.05; done
    if [ ! -S "$run/node$n.sock" ]; then
        echo "line-overlay.sh: node $n did not start; its log:" >&2
        cat "$run/node$n.log" >&2
        exit 1
    fi
    "$bin/weft-controld" --config "$run/line.toml" --id "$n" --static-routes >/dev/null
done
sleep 1

dp_pids=("${pids[@]}")

# CPU seconds (user + system) of the given pids, from /proc/PID/stat.
cpu_of() {
    python3 - "$@" <<'PY'
import os, sys
tck = os.sysconf("SC_CLK_TCK")
total = 0
for p in sys.argv[1:]:
    try:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12])
    except OSError:
        pass
print(total / tck)
PY
}

# Busy cores outside this script's processes over 1 s (the machine is otherwise idle).
foreign_load() {
    python3 - <<'PY'
import time
def busy():
    f = list(map(int, open("/proc/stat").readline().split()[1:]))
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)
b0, t0 = busy(); time.sleep(1); b1, t1 = busy()
import os
print(round((b1 - b0) / max(t1 - t0, 1) * os.cpu_count(), 2))
PY
}

weft_rate() { # dst size [rate [seconds]] -> JSON fields
    local dst=$1 size=$2 rate=${3:-0} port=$((200 + RANDOM % 1000)) limit=()
    [ -n "${4:-}" ] && limit=(--seconds "$4")
    local svc=(--service "${service:-best-effort}" --flows "${flows:-1}")
    [ "${pack_delay_us:-0}" != 0 ] && svc+=(--pack-delay-us "$pack_delay_us")
    "$bin/weft-recv" --socket "$run/node$dst.sock" --port "$port" --idle-exit-ms 1000 --seconds 60 --json >"$run/recv.out" 2>&1 &
    local rp=$!
    sleep 0.2
    local chain=("${dp_pids[@]:0:$dst}")
    local c0; c0=$(cpu_of "${chain[@]}")
    "$bin/weft-send" --socket "$run/node1.sock" --to "$dst:$port" --rate "$rate" --count "$count" "${limit[@]}" --size "$size" "${svc[@]}" >"$run/send.out"
    wait "$rp" || true
    local c1; c1=$(cpu_of "${chain[@]}")
    python3 - "$run/recv.out" "$run/send.out" "$c0" "$c1" <<'PY'
import json, sys
recv = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
send = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
got = recv.get("received", 0)
cpu = float(sys.argv[4]) - float(sys.argv[3])
print(json.dumps({"rate": recv.get("rate", 0), "received": got, "sent": send.get("sent", 0),
                  "p50_us": recv.get("latency_us", {}).get("p50"), "latency_us": recv.get("latency_us"),
                  "forwarders_cpu_ns_per_msg": cpu * 1e9 / got if got else None,
                  "send_rate": send.get("rate", 0), "credit_stalls": send.get("credit_stalls"),
                  "drained": send.get("drained"), "duplicates": recv.get("duplicates"),
                  "reordered": recv.get("reordered"), "max_gap_ms": recv.get("max_gap_ms")}))
PY
}

baseline_rate() { # forwarders size mode rate -> JSON fields
    local k=$1 size=$2 mode=$3 rate=$4 base=$((30000 + RANDOM % 20000))
    local sink=127.0.0.1:$base sinkflag=() genflag=()
    [ "$mode" = gro-gso ] && sinkflag=(--gro) && genflag=(--gso)
    # PIN=1: the forwarders on core 1, generator and sink on core 0 (the reference's setup).
    local edge=() middle=()
    [ "${PIN:-0}" = 1 ] && edge=(taskset -c 0) && middle=(taskset -c 1)
    "${edge[@]}" "$bin/udp-baseline" sink --listen "$sink" "${sinkflag[@]}" --seconds 60 --idle-exit-ms 500 >"$run/bsink.out" &
    local sp=$! to=$sink
    local fps=()
    for h in $(seq "$k"); do
        local listen=127.0.0.1:$((base + h))
        "${middle[@]}" "$bin/udp-baseline" forward --listen "$listen" --to "$to" --mode "$mode" --seconds 60 --idle-exit-ms 500 >"$run/bfwd$h.out" &
        fps+=($!)
        to=$listen
    done
    sleep 0.2
    "${edge[@]}" "$bin/udp-baseline" gen --to "$to" --size "$size" --count "$count" --rate "$rate" --batch 32 "${genflag[@]}" >"$run/bgen.out"
    wait "$sp" || true
    for p in "${fps[@]}"; do wait "$p" || true; done
    python3 - "$run/bsink.out" "$run/bgen.out" "$run"/bfwd*.out <<'PY'
import json, sys
sink = json.loads(open(sys.argv[1]).read())
gen = json.loads(open(sys.argv[2]).read())
fwd = [json.loads(open(f).read()) for f in sys.argv[3:]]
got = sink.get("received", 0)
cpu = sum(f["cpu_s"] for f in fwd)
print(json.dumps({"rate": sink.get("rate", 0), "received": got, "sent": gen.get("sent", 0),
                  "offered": gen.get("rate", 0), "loss_pct": sink.get("loss_pct", 0),
                  "p50_us": sink.get("latency_us", {}).get("p50"), "latency_us": sink.get("latency_us"),
                  "forwarders_cpu_ns_per_msg": cpu * 1e9 / got if got else None}))
PY
    rm -f "$run"/bfwd*.out
}

# The baseline's capacity: the highest delivered rate with at most 1 % loss, found by
# bisecting the generator's paced rate (a flat-out generator starves the forwarders it shares
# the cores with, which under-reports them). Prints the best probe's JSON with the flat-out
# figure and the probes tried.
baseline_best() { # forwarders size mode
    local k=$1 size=$2 mode=$3
    local flat; flat=$(baseline_rate "$k" "$size" "$mode" 0)
    local probes=("$flat")
    local lo=0 hi
    hi=$(python3 -c 'import json,sys; print(int(max(json.loads(sys.argv[1])["rate"], 100000) * 4))' "$flat")
    for _ in 1 2 3 4 5 6; do
        local mid=$(( (lo + hi) / 2 ))
        local p; p=$(baseline_rate "$k" "$size" "$mode" "$mid")
        probes+=("$p")
        if python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["loss_pct"] <= 1.0 and json.loads(sys.argv[1])["received"] > 0 else 1)' "$p"; then
            lo=$mid
        else
            hi=$mid
        fi
    done
    python3 - "${probes[@]}" <<'PY'
import json, sys
probes = [json.loads(p) for p in sys.argv[1:]]
flat, paced = probes[0], probes[1:]
ok = [p for p in paced if p["loss_pct"] <= 1.0 and p["received"] > 0]
best = max(ok, key=lambda p: p["rate"]) if ok else flat
best = dict(best, flat_rate=flat["rate"], flat_loss_pct=flat["loss_pct"],
            probes=[[round(p["offered"]), round(p["rate"]), round(p["loss_pct"], 2)] for p in paced])
print(json.dumps(best))
PY
}

