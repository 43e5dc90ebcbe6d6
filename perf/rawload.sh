#!/usr/bin/env bash
# One weft-dataplane's forwarding path alone, loaded with raw overlay link packets: starts only
# node 2 of a 3-node line 1 -> 2 -> 3 on loopback (127.0.77.x, its own ports so it does not
# clash with perf/line-overlay.sh), publishes static routes with weft-controld --static-routes,
# and runs weft-rawload, which plays node 1 (generator) and node 3 (sink) itself on their
# configured addresses, keeping both of node 2's links up with hellos (perf/src/raw_load/).
#
# Node 2 has one worker on core 1; weft-rawload (both threads) is pinned to core 0.
#
# Default: for each size, flat out for --seconds, then paced at 25 %, 50 % and 90 % of the
# flat-out rate; one JSON line per run (weft-rawload's report, with node 2's CPU per message
# and its counter deltas: forwarded, received, kernel_drops, drops; and the 1-minute load
# average before the run, since the machine may be shared).
#
# --overload [SECS] (default 30): measures the flat-out rate at 100 B for --seconds (the
# capacity), then paced at that rate for --seconds, then offers twice it for SECS seconds with
# a 1 s timeline, while node 2's links are sampled every 100 ms with `weftctl show links
# --json`; prints each run's JSON, then one JSON line with the delivered rate (also as a ratio
# to the flat-out and at-capacity runs), latency percentiles per second and every link state or
# last-change change node 2 showed (the point: hellos never starve, so no link flaps under overload).
#
# --cap PCT: node 2 runs in a cgroup (v1 cpu controller) limited to PCT % of one core, in 5 ms
# periods, so its capacity is well under what the generator can offer from the other core: with
# --overload this is how a true 2x overload is reached on a 2-core machine (uncapped, the
# generator, sharing core 0 with the sink, offers only about 1.1x). The capacity reported, and
# the 2x offered, are those of the capped node. Needs root and /sys/fs/cgroup/cpu.
#
# --latency [RUNS] (default 3): the latency node 2 adds at 50 % (--load-pct) of its capacity. For each size:
# the flat-out run as above (capacity: the larger of the sink's rate and node 2's forwarded
# rate, since the two-thread sink records less than node 2 forwards at 100 B), then RUNS times
# a `weft-rawload --one-thread` run through node 2 paced at that share (label latency-through)
# and a `--one-thread --direct` run at the same rate straight to the sink's socket
# (latency-direct), each for --seconds. One thread does the generator, the sink and both
# hello services in a busy-polling loop (perf/src/raw_load/one_thread.rs), so the two no
# longer preempt each other on core 0. Prints each run's JSON line (with latency_run and
# capacity), then per size one summary line (`weft-rawload latency-summary`): for p50, p99 and
# p99.9, through node 2, direct and added (through minus direct, per run), each as median,
# min and max over the runs; the delivered/sent ratios; offered/target rate and the loop's
# pacing lag (whether core 0 kept up).
#
# --load-pct P (default 50): the latency runs' rate as a percentage of the flat-out capacity.
# The summary gives node 2's CPU over each run (node2_busy): paced sends carry fewer datagrams
# per GSO send than flat-out ones, so at a given rate node 2 is busier than the flat-out
# figure suggests.
#
# --isolate: while the script runs, every task that may run on core 1 but is not pinned to it
# (other processes, and movable kernel threads such as DAMON's kdamond, which here takes 1-4 ms
# slices of whichever core it is on) is moved to core 0, and put back at the end, so core 1
# holds node 2 and the per-core kernel threads only (what isolcpus would give a deployment).
#
# --max-lag-us US (default 100): in the latency runs, when the loop falls more than US behind
# its pacing (preempted on core 0), it skips the overdue messages instead of sending them in
# one catch-up burst, which would queue at node 2 and count as its latency; the summary gives
# the share skipped (0 never skips).
#
# --busy-poll US: node 2's config sets busy_poll_us = US (its worker keeps polling that long
# after a turn with data before it blocks; docs/dataplane.md "Busy polling").
#
# Usage: perf/rawload.sh [--seconds S] [--sizes "100 1396"] [--overload [SECS]] [--cap PCT]
#   [--latency [RUNS]] [--load-pct P] [--isolate] [--busy-poll US] [--max-lag-us US]
#   (release build; WEFT_PERF_BUILT=1 skips the build). Everything is bounded in time and runs
#   on 127.0.0.0/8 only.
set -euo pipefail
seconds=2
sizes="100 1396"
overload=""
cap=""
latency=""
load_pct=50
isolate=""
busy_poll=""
max_lag=100
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        --overload)
            if [ $# -gt 1 ] && [[ $2 =~ ^[0-9]+$ ]]; then overload=$2; shift 2; else overload=30; shift; fi ;;
        --cap) cap=$2; shift 2 ;;
        --latency)
            if [ $# -gt 1 ] && [[ $2 =~ ^[0-9]+$ ]]; then latency=$2; shift 2; else latency=3; shift; fi ;;
        --load-pct) load_pct=$2; shift 2 ;;
        --isolate) isolate=1; shift ;;
        --busy-poll) busy_poll=$2; shift 2 ;;
        --max-lag-us) max_lag=$2; shift 2 ;;
        *) echo "usage: $0 [--seconds S] [--sizes LIST] [--overload [SECS]] [--cap PCT] [--latency [RUNS]] [--load-pct P] [--isolate] [--busy-poll US] [--max-lag-us US]" >&2; exit 2 ;;
    esac
done
if [ -n "$overload" ] && [ -n "$latency" ]; then
    echo "rawload.sh: --overload and --latency are separate runs; give one" >&2
    exit 2
fi
if ! [[ $load_pct =~ ^[0-9]+$ && $load_pct -ge 1 && $load_pct -le 100 ]]; then
    echo "rawload.sh: --load-pct takes 1 to 100 (got '$load_pct')" >&2
    exit 2
fi
if [ -n "$latency" ] && [ "$latency" -lt 1 ]; then
    echo "rawload.sh: --latency takes at least 1 run" >&2
    exit 2
fi
if [ -n "$cap" ] && ! [[ $cap =~ ^[0-9]+$ && $cap -ge 5 && $cap -le 100 ]]; then
    echo "rawload.sh: --cap takes a percentage of one core, 5 to 100 (got '$cap')" >&2
    exit 2
fi
cgroup=""
if [ -n "$cap" ]; then
    if [ ! -w /sys/fs/cgroup/cpu/cgroup.procs ]; then
        echo "rawload.sh: --cap needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu" >&2
        exit 1
    fi
    cgroup=/sys/fs/cgroup/cpu/weft-rawload-$$
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "${WEFT_PERF_BUILT:-0}" != 1 ]; then
    cargo build --release --quiet -p weft-dataplane -p weft-controld -p weftctl --bins
    cargo build --release --quiet -p weft-perf --bin weft-rawload
fi
bin=$root/target/release
run=$(mktemp -d /tmp/weft-rawload.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$isolate" ] && [ -f "$run/affinity.txt" ] && affinity restore "$run/affinity.txt"
    wait 2>/dev/null || true
    rm -rf "$run"
    [ -n "$cgroup" ] && [ -d "$cgroup" ] && rmdir "$cgroup" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# affinity isolate FILE EXCEPT_PID: moves every task allowed on cores 0 and 1 (but not those
# of EXCEPT_PID) to core 0, writing "tid cores" lines to FILE; affinity restore FILE undoes it.
affinity() {
    python3 - "$@" <<'PY'
import os, sys
what, path = sys.argv[1], sys.argv[2]
if what == "restore":
    for line in open(path):
        tid, cores = line.split()
        try:
            os.sched_setaffinity(int(tid), {int(c) for c in cores.split(",")})
        except OSError:
            pass  # gone, or not movable after all
    sys.exit(0)
keep = set(os.listdir(f"/proc/{sys.argv[3]}/task"))
moved = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        continue
    for tid in tids:
        if tid in keep:
            continue
        try:
            cores = os.sched_getaffinity(int(tid))
            if 0 in cores and 1 in cores:
                os.sched_setaffinity(int(tid), {0})
                moved.append(f"{tid} {','.join(map(str, sorted(cores)))}")
        except OSError:
            pass  # per-core kernel threads refuse; gone tasks
with open(path, "w") as f:
    f.write("".join(m + "\n" for m in moved))
print(f"rawload.sh: moved {len(moved)} tasks off core 1 for the run", file=sys.stderr)
PY
}

cfg=$run/line.toml
cat >"$cfg" <<TOML
schema = 1
[overlay]
name = "rawline"
TOML
for n in 1 2 3; do cat >>"$cfg" <<TOML
[[node]]
id = $n
name = "n$n"
cores = [$( [ "$n" = 2 ] && echo 1 || echo 0 )]
session_socket = "$run/node$n.sock"
ctl_socket = "$run/node$n.ctl"
shm_name = "weft-rawload-$$-n$n"
$( [ "$n" = 2 ] && [ -n "$busy_poll" ] && echo "busy_poll_us = $busy_poll" )
[[node.interface]]
isp = "a"
addr = "127.0.77.$n:$((17100 + n))"
TOML
done
for l in 0 1; do
    printf '[[link]]\nid = %s\nnodes = [%s, %s]\ncost = 1000\n' "$l" $((l + 1)) $((l + 2)) >>"$cfg"
done

"$bin/weft-dataplane" --config "$cfg" --id 2 >"$run/node2.log" 2>&1 &
node2=$!
pids+=("$node2")
[ -n "$isolate" ] && affinity isolate "$run/affinity.txt" "$node2"
if [ -n "$cgroup" ]; then
    mkdir "$cgroup"
    echo 5000 >"$cgroup/cpu.cfs_period_us"
    echo $((cap * 50)) >"$cgroup/cpu.cfs_quota_us"
    echo "$node2" >"$cgroup/cgroup.procs"
    echo "rawload.sh: node 2 (pid $node2) capped to $cap % of a core ($((cap * 50)) us per 5 ms)" >&2
fi
for _ in $(seq 100); do [ -S "$run/node2.sock" ] && break; sleep 0.05; done
if [ ! -S "$run/node2.sock" ]; then
    echo "rawload.sh: node 2 did not start; its log:" >&2
    cat "$run/node2.log" >&2
    exit 1
fi
"$bin/weft-controld" --config "$cfg" --id 2 --static-routes >/dev/null

pin=()
[ "$(nproc)" -ge 2 ] && pin=(taskset -c 0)

cpu_of() { # CPU seconds (user + system) of one pid
    python3 -c 'import os,sys; f=open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")",1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf("SC_CLK_TCK"))' "$1"
}
counters() { "$bin/weftctl" --config "$cfg" --id 2 --json show counters 2>/dev/null || echo '{}'; }

# rawload LABEL ARGS...: one weft-rawload run with node 2's CPU and counter deltas merged in
# (and the JSON object in $RAWLOAD_EXTRA, if set, after the label).
rawload() {
    local label=$1; shift
    local c0 c1 load; c0=$(cpu_of "$node2")
    load=$(cut -d' ' -f1 /proc/loadavg)
    counters >"$run/c0.json"
    "${pin[@]}" "$bin/weft-rawload" --config "$cfg" --count 1000000000 "$@" >"$run/out.json"
    c1=$(cpu_of "$node2")
    counters >"$run/c1.json"
    python3 - "$label" "$run/out.json" "$c0" "$c1" "$run/c0.json" "$run/c1.json" "$load" "${RAWLOAD_EXTRA:-"{}"}" <<'PY'
import json, sys
label, out, c0, c1, k0, k1, load, extra = sys.argv[1:]
r = json.loads(open(out).read().strip().splitlines()[-1])
def totals(path):
    try:
        d = json.load(open(path))
    except ValueError:
        return {}
    t = {}
    for w in d.get("workers", []):
        for k, v in w.get("counters", {}).items():
            if isinstance(v, (int, float)):
                t[k] = t.get(k, 0) + v
    return t
a, b = totals(k0), totals(k1)
delta = {k: b[k] - a.get(k, 0) for k in b if isinstance(b[k], (int, float)) and b[k] - a.get(k, 0)}
cpu = float(c1) - float(c0)
r = {"run": label, **json.loads(extra), "load1_before": float(load), **r, "node2_cpu_s": round(cpu, 3),
     "node2_cpu_ns_per_msg": round(cpu * 1e9 / r["received"], 1) if r.get("received") else None,
     "node2_forwarded_rate": round(delta.get("forwarded", 0) / r["gen"]["seconds"]) if r["gen"]["seconds"] else None,
     "node2_counters": delta}
print(json.dumps(r))
PY
}

if [ -n "$latency" ]; then
    for size in $sizes; do
        flat=$(rawload flat --size "$size" --seconds "$seconds")
        echo "$flat"
        echo "$flat" >"$run/latency-$size.jsonl"
        capacity=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(int(max(r["rate"], r["node2_forwarded_rate"] or 0)))' "$flat")
        half=$((capacity * load_pct / 100))
        for i in $(seq "$latency"); do
            for mode in through direct; do
                extra=()
                [ "$mode" = direct ] && extra=(--direct)
                line=$(RAWLOAD_EXTRA="{\"latency_run\": $i, \"capacity\": $capacity}" \
                    rawload "latency-$mode" --size "$size" --seconds "$seconds" --rate "$half" \
                    --one-thread --max-lag-us "$max_lag" "${extra[@]}")
                echo "$line"
                echo "$line" >>"$run/latency-$size.jsonl"
            done
        done
        "$bin/weft-rawload" latency-summary "$run/latency-$size.jsonl"
    done
    exit 0
fi

if [ -z "$overload" ]; then
    for size in $sizes; do
        flat=$(rawload flat --size "$size" --seconds "$seconds")
        echo "$flat"
        rate=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["rate"])' "$flat")
        for pct in 25 50 90; do
            r=$(python3 -c 'import sys; print(int(float(sys.argv[1]) * int(sys.argv[2]) / 100))' "$rate" "$pct")
            rawload "paced-$pct%" --size "$size" --seconds "$seconds" --rate "$r"
        done
    done
    exit 0
fi

flat=$(rawload flat --size 100 --seconds "$seconds")
echo "$flat"
# Capacity: what node 2 forwarded flat out (the sink, sharing core 0 with the generator, may
# record less than that).
capacity=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(int(max(r["rate"], r["node2_forwarded_rate"] or 0)))' "$flat")
offer=$((capacity * 2))
# The same paced sender at 1x the capacity, for --seconds: what node 2 forwards when offered
# exactly its capacity in the overload run's traffic shape (paced sends carry fewer datagrams
# per GSO send than flat-out ones, so each costs node 2 a little more).
at_capacity=$(rawload at-capacity --size 100 --seconds "$seconds" --rate "$capacity")
echo "$at_capacity"
# Node 2's links every 100 ms, for as long as the overload runs (bounded by its own count):
# one line per sample, "EPOCH_SECONDS JSON".
(
    for _ in $(seq $(( (overload + 10) * 10 ))); do
        j=$("$bin/weftctl" --config "$cfg" --id 2 --json show links 2>/dev/null | tr -d '\n') || true
        [ -n "$j" ] && echo "$EPOCHREALTIME $j"
        sleep 0.1
    done
) >"$run/links.txt" &
poller=$!
pids+=("$poller")
over=$(rawload overload --size 100 --seconds "$overload" --rate "$offer" --timeline-ms 1000)
kill "$poller" 2>/dev/null || true
echo "$over"
python3 - "$over" "$run/links.txt" "${cap:-100}" "$flat" "$at_capacity" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
cap_pct = int(sys.argv[3])
flat, at_cap = json.loads(sys.argv[4]), json.loads(sys.argv[5])
samples = []
for line in open(sys.argv[2]):
    t, _, j = line.partition(" ")
    try:
        samples.append((float(t), json.loads(j)))
    except ValueError:
        pass
# Only the samples while the tool ran count: from the first with every link and path up to
# the last such (between runs, and after the last, nobody answers node 2's hellos). A change
# inside that window is a flap: a new state, or a last-change time that moved (a flap that
# came and went between two samples).
def rows(d):
    for l in d.get("links", []):
        yield f"link {l['link']}", l
        for p in l.get("paths", []):
            yield f"link {l['link']} path {p['path']}", p
def all_up(d):
    return all(x.get("state") == "up" for _, x in rows(d))
up = [i for i, (_, d) in enumerate(samples) if all_up(d)]
window = samples[up[0]:up[-1] + 1] if up else []
seen, changes, down = {}, [], 0
t0 = window[0][0] if window else 0
for t, d in window:
    for key, x in rows(d):
        state, at = x.get("state"), t - x.get("changed_ms_ago", 0) / 1000
        if state != "up":
            down += 1
        if key in seen:
            s0, a0 = seen[key]
            if s0 != state or abs(at - a0) > 0.15:
                changes.append({"t": round(t - t0, 2), "what": key, "from": s0, "to": state})
        seen[key] = (state, at)
tl = r.get("timeline", [])
print(json.dumps({
    "overload": True, "node2_cpu_cap_pct": cap_pct, "target_rate": r.get("target_rate"), "offered_rate": r.get("offered_rate"),
    "delivered_rate": r.get("rate"), "delivered_pct": r.get("delivered_pct"),
    "flat_out_forwarded_rate": flat.get("node2_forwarded_rate"),
    "at_capacity_forwarded_rate": at_cap.get("node2_forwarded_rate"),
    "forwarded_vs_flat_out": round(r["node2_forwarded_rate"] / flat["node2_forwarded_rate"], 3)
        if r.get("node2_forwarded_rate") and flat.get("node2_forwarded_rate") else None,
    "forwarded_vs_at_capacity": round(r["node2_forwarded_rate"] / at_cap["node2_forwarded_rate"], 3)
        if r.get("node2_forwarded_rate") and at_cap.get("node2_forwarded_rate") else None,
    "node2_forwarded_rate": r.get("node2_forwarded_rate"),
    "node2_kernel_drops": r.get("node2_counters", {}).get("kernel_drops"),
    "sink_socket_drops": r.get("sink_socket_drops"),
    "link_samples": len(samples), "samples_while_running": len(window),
    "window_s": round(window[-1][0] - window[0][0], 2) if window else 0,
    "samples_not_up": down, "link_flaps": changes,
    "fake_end_link_downs": [r["source_end"]["link_downs"], r["sink_end"]["link_downs"]],
    "node2_max_hello_gap_ms": [r["source_end"]["max_hello_gap_ms"], r["sink_end"]["max_hello_gap_ms"]],
    "node2_hellos_seen": [r["source_end"]["hellos_received"], r["sink_end"]["hellos_received"]],
    "latency_us": r.get("latency_us"),
    "per_second_columns": ["t_s", "offered", "delivered", "p50_us", "p99_us", "max_us"],
    "per_second": [[t["t_s"], t["offered"], t["delivered"], t["latency_us"]["p50"],
                    t["latency_us"]["p99"], t["latency_us"]["max"]] for t in tl],
}))
PY
