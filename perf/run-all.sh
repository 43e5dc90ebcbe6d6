#!/usr/bin/env bash
# The whole benchmark matrix of issue 9 in one command: builds release once, then runs
# perf/forwarding.sh, perf/services.sh, perf/latency.sh, perf/workers.sh (1 and 8 flows),
# perf/rawload.sh (flat out and paced, the latency node 2 adds at 50 % load, then 30 s of 2x
# overload with node 2 CPU-capped) and perf/pack-delay.sh in sequence (each on
# the same binaries: WEFT_PERF_BUILT=1), and writes summary.md beside their tables, plots and
# raw lines: every table with the command that produced it and its start and end time, links
# to the plots, the commit, and the machine's load at the start.
#
# Default counts (the figures RESULTS.md quotes): forwarding, services and workers 200,000
# messages per measurement, latency 5 s at 50 % load and 30 s at 2x, 3 runs each; about half an
# hour on a quiet 2-core machine. Run it on a quiet machine: every table marks runs that start
# with more than 0.5 busy core outside the benchmark.
# --quick: 20,000 messages, 1 run, latency 1 s and 2 s (a smoke check of the scripts, not
# figures), written to perf/results/quick/ so the full results are not overwritten.
# Every benchmark is bounded by `timeout` (an hour each, 10 minutes each with --quick); a
# benchmark that fails or times out is reported in summary.md and the next one still runs; the
# exit status is non-zero if any failed.
#
# aead=aws-lc in the environment builds the data plane with AES-GCM from aws-lc-rs (the keyed
# rows of services.sh then measure that backend; summary.md says which).
# Usage: perf/run-all.sh [--quick] [--out DIR] [--no-build]
#   --out DIR:  write everything to DIR (default perf/results, perf/results/quick with --quick);
#   --no-build: use target/release as it is (e.g. while the tree does not build).
set -euo pipefail
invocation="perf/run-all.sh${*:+ $*}"
quick=0
out=
build=1
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1; shift ;;
        --out) out=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "usage: $0 [--quick] [--out DIR] [--no-build]" >&2; exit 2 ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -z "$out" ]; then
    out=$root/perf/results
    [ "$quick" = 1 ] && out=$root/perf/results/quick
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
export WEFT_PERF_OUT=$out

if [ "$quick" = 1 ]; then
    steps=(
        "forwarding|perf/forwarding.sh --count 20000 --runs 1"
        "services|perf/services.sh --count 20000 --runs 1"
        "latency|perf/latency.sh --runs 1 --seconds 1 --overload-seconds 2 --count 20000"
        "workers|perf/workers.sh --count 20000 --runs 1"
        "workers-flows|perf/workers.sh --count 20000 --runs 1 --flows 8"
        "rawload|perf/rawload.sh --seconds 1 --sizes 100"
        "rawload-latency|perf/rawload.sh --seconds 1 --sizes 100 --latency 1 --busy-poll 200"
        "rawload-overload|perf/rawload.sh --seconds 1 --overload 2 --cap 35"
        "pack-delay|perf/pack-delay.sh --runs 1 --seconds 1 --rates 20000 --delays 0,500"
    )
    limit=600
else
    steps=(
        "forwarding|perf/forwarding.sh --count 200000 --runs 3"
        "services|perf/services.sh --count 200000 --runs 3"
        "latency|perf/latency.sh --runs 3 --seconds 5 --overload-seconds 30"
        "workers|perf/workers.sh --count 200000 --runs 3"
        "workers-flows|perf/workers.sh --count 200000 --runs 3 --flows 8"
        "rawload|perf/rawload.sh --seconds 3"
        "rawload-latency|perf/rawload.sh --seconds 3 --latency 5 --busy-poll 200 --isolate"
        "rawload-overload|perf/rawload.sh --seconds 3 --overload 30 --cap 35"
        "pack-delay|perf/pack-delay.sh --runs 3 --seconds 3"
    )
    limit=3600
fi
declare -A plots=(
    [forwarding]="forwarding.svg"
    [services]="services.svg"
    [latency]="latency.svg latency-added.svg latency-overload.svg"
    [workers]="workers.svg"
)

started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
if [ "$build" = 1 ]; then
    cargo build --release --quiet -p weft-dataplane -p weft-controld -p weft-client -p weft-perf -p weftctl --bins \
        $( [ "${aead:-}" = aws-lc ] && echo "--features weft-dataplane/aws-lc" )
fi
export WEFT_PERF_BUILT=1

failed=0
status=$(mktemp /tmp/weft-run-all.XXXXXX)
trap 'rm -f "$status"' EXIT
for step in "${steps[@]}"; do
    name=${step%%|*}
    cmd=${step#*|}
    t0=$(date -u '+%Y-%m-%d %H:%M:%S')
    echo "== $cmd" >&2
    # shellcheck disable=SC2086  # cmd is split into the script and its options on purpose
    if timeout "$limit" bash $cmd 2>&1 | tee "$out/$name.log"; then rc=0; else rc=${PIPESTATUS[0]}; fi
    t1=$(date -u '+%H:%M:%S')
    [ "$rc" = 0 ] || failed=1
    printf '%s|%s|%s|%s|%s\n' "$name" "$cmd" "$t0" "$t1" "$rc" >>"$status"
done

WEFT_PERF_AEAD_NAME=$( [ "${aead:-}" = aws-lc ] && echo aws-lc-rs || echo "the aes-gcm crate" ) \
python3 - "$out" "$status" "$invocation" "$started" "$load_start" "$commit" "$dirty" "$quick" \
    "$(nproc)" "$(uname -r)" "${plots[forwarding]}" "${plots[services]}" "${plots[latency]}" \
    "${plots[workers]}" <<'PY'
import os, sys
out, status, invocation, started, load, commit, dirty, quick, cores, kernel = sys.argv[1:11]
plots = dict(zip(["forwarding", "services", "latency", "workers"], [p.split() for p in sys.argv[11:15]]))
titles = {"forwarding": "Forwarding beside the kernel-UDP forwarder chain",
          "services": "Reliable and authenticated beside best effort",
          "latency": "Latency at 50 % load and 2x overload",
          "workers": "One and two workers per node",
          "rawload": "One data plane alone, raw overlay packets (weft-rawload)",
          "rawload-overload": "One data plane alone under 2x overload, CPU-capped to 35 % of a core (weft-rawload)",
          "rawload-latency": "Latency one data plane adds at 50 % load (weft-rawload --one-thread)",
          "workers-flows": "One and two workers per node, 8 client flows (sub-lanes)",
          "pack-delay": "Pack delay of a paced best-effort flow"}
lines = [f"# Weft benchmark summary{' (quick smoke check: not figures)' if quick == '1' else ''}", "",
         f"Command: `{invocation}`, started {started}; commit {commit}"
         f"{f' with {dirty} modified tracked files in the tree' if dirty != '0' else ''}; "
         f"release build (AES-GCM from {os.environ.get('WEFT_PERF_AEAD_NAME', 'the aes-gcm crate')}); "
         f"{cores} cores, Linux {kernel}; load average at the start {load}.", "",
         "Each section: the benchmark's own command, its start and end (UTC), its tables as it "
         "wrote them, and its plots (median bars, min–max whiskers). Raw per-run lines: "
         "`*.jsonl` here; each benchmark's full output: `*.log`.", ""]
for row in open(status):
    name, cmd, t0, t1, rc = row.rstrip("\n").split("|")
    lines += [f"## {titles.get(name, name)}", "",
              f"Command: `{cmd}` ({t0} – {t1} UTC){'' if rc == '0' else f'; **failed with exit status {rc}** (see `{name}.log`)'}", ""]
    md = os.path.join(out, f"{name}.md")
    log = os.path.join(out, f"{name}.log")
    if rc == "0" and os.path.exists(md):
        lines += [open(md).read().rstrip(), ""]
    elif rc == "0" and name == "rawload-latency" and os.path.exists(log):
        import json
        lines += ["Latency node 2 adds (one-thread load loop, kernel receive stamps), µs, median [min–max] over runs:", "",
                  "| size | rate msgs/s | through p50 / p99 / p99.9 | direct p50 / p99 / p99.9 | **added p50 / p99 / p99.9** | skipped |",
                  "|---|---|---|---|---|---|"]
        def mm(x):
            return f"{x['median']:.1f} [{x['min']:.1f}–{x['max']:.1f}]" if isinstance(x, dict) else "-"
        def pct(x):
            return f"{100 * x['median']:.2f} % [{100 * x['min']:.2f}–{100 * x['max']:.2f}]" if isinstance(x, dict) else "-"
        for l in open(log):
            if not l.startswith("{"):
                continue
            d = json.loads(l)
            if not d.get("latency_summary"):
                continue
            trio = lambda k: " / ".join(mm(d[k].get(p)) for p in ("p50", "p99", "p99.9"))
            lines.append(f"| {d['size']} | {d['rate_msgs_s']['median']:.0f} | {trio('through_us')} | {trio('direct_us')} | "
                         f"{trio('added_us')} | {pct(d.get('skipped_vs_sent', {}).get('through'))} |")
        lines.append("")
    elif rc == "0" and name.startswith("rawload") and os.path.exists(log):
        # weft-rawload prints JSON lines only: the key figures of each.
        import json
        lines += ["| size | offered msgs/s | node 2 forwarded msgs/s | node 2 CPU ns/msg | sink p50 / p99 us | link flaps |", "|---|---|---|---|---|---|"]
        for l in open(log):
            if not l.startswith("{"):
                continue
            d = json.loads(l)
            lat = d.get("latency_us") or {}
            lines.append(f"| {d.get('size', '-')} | {d.get('offered_rate', 0):.0f} | {d.get('node2_forwarded_rate', '-')} | "
                         f"{d.get('node2_cpu_ns_per_msg', '-')} | {lat.get('p50', '-')} / {lat.get('p99', '-')} | "
                         f"{len(d['link_flaps']) if 'link_flaps' in d else '-'} |")
        lines.append("")
    for p in plots.get(name, []) if rc == "0" else []:
        if os.path.exists(os.path.join(out, p)):
            lines += [f"![{name}: {p}]({p})", ""]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines))
print(f"wrote {os.path.join(out, 'summary.md')}", file=sys.stderr)
PY
exit "$failed"
