#!/usr/bin/env python3
"""Summarises perf/forwarding.sh's per-run JSON lines as Markdown tables.

Usage: forwarding_table.py RAW.jsonl COUNT
Each line: run, size, hops, load1, foreign_cores, mode, weft{...}, baseline{...}.
Medians and min-max over runs; ratios are Weft / baseline per run, from the same run.
"""
import json
import statistics
import sys
from collections import defaultdict

MODES = ["per-packet", "gso", "gro-gso"]
FOREIGN_LIMIT = 0.5  # busy cores outside the benchmark before a run


def fmt_rate(xs):
    return f"{statistics.median(xs) / 1e3:.0f}k [{min(xs) / 1e3:.0f}–{max(xs) / 1e3:.0f}k]"


def fmt_ratio(xs):
    return f"{100 * statistics.median(xs):.0f} % [{100 * min(xs):.0f}–{100 * max(xs):.0f}]"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    solo = [r for r in rows if r.get("solo")]
    rows = [r for r in rows if not r.get("solo")]
    count = int(sys.argv[2])
    groups = defaultdict(list)
    marked = set()
    for r in rows:
        groups[(r["size"], r["hops"])].append(r)
        if r["foreign_cores"] > FOREIGN_LIMIT:
            marked.add(r["run"])
    runs = sorted({r["run"] for r in rows})
    kept = [r for r in runs if r not in marked] or runs
    print(f"{len(runs)} runs of {count:,} messages; runs under foreign load (marked, left out "
          f"of the figures): {sorted(marked) or 'none'}")
    print()
    print("| path | size (Weft / baseline) | Weft msgs/s | Weft Gbit/s | Weft data planes CPU ns/msg "
          "| baseline per-packet | baseline gso | baseline gro-gso "
          "| Weft / per-packet | **Weft / gso** | Weft / gro-gso |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (size, hops), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        rs = [r for r in rs if r["run"] in kept]
        weft = {}
        base = defaultdict(dict)
        for r in rs:
            weft[r["run"]] = r["weft"]
            base[r["mode"]][r["run"]] = r["baseline"]
        wr = [w["rate"] for w in weft.values()]
        wsize = min(size, 1396)
        gbit = [x * wsize * 8 / 1e9 for x in wr]
        cpu = [w["forwarders_cpu_ns_per_msg"] for w in weft.values() if w["forwarders_cpu_ns_per_msg"]]
        cells = [f"{hops} hop{'s' if hops > 1 else ''}", f"{wsize} B / {size} B", fmt_rate(wr),
                 f"{statistics.median(gbit):.2f} [{min(gbit):.2f}–{max(gbit):.2f}]",
                 f"{statistics.median(cpu):.0f}" if cpu else "–"]
        ratios = []
        for m in MODES:
            br = [b["rate"] for b in base[m].values()]
            cells.append(fmt_rate(br) if br else "–")
            rr = [weft[run]["rate"] / b["rate"] for run, b in base[m].items() if b["rate"] > 0]
            ratios.append(fmt_ratio(rr) if rr else "–")
        print("| " + " | ".join(cells + ratios) + " |")
    print()
    print("Baseline forwarders' CPU ns/msg (sum over the chain's forwarders, median):")
    print()
    print("| path | size | per-packet | gso | gro-gso | Weft |")
    print("|---|---|---|---|---|---|")
    for (size, hops), rs in sorted(groups.items()):
        rs = [r for r in rs if r["run"] in kept]
        cells = [f"{hops} hop{'s' if hops > 1 else ''}", f"{size} B"]
        for m in MODES:
            xs = [r["baseline"]["forwarders_cpu_ns_per_msg"] for r in rs
                  if r["mode"] == m and r["baseline"]["forwarders_cpu_ns_per_msg"]]
            cells.append(f"{statistics.median(xs):.0f}" if xs else "–")
        xs = [r["weft"]["forwarders_cpu_ns_per_msg"] for r in rs
              if r["mode"] == "gso" and r["weft"]["forwarders_cpu_ns_per_msg"]]
        cells.append(f"{statistics.median(xs):.0f}" if xs else "–")
        print("| " + " | ".join(cells) + " |")
    print()
    print("The kernel forwarder alone (1 forwarder on core 1, generator and sink on core 0), "
          "msgs/s, median [min–max], highest rate with ≤ 1 % loss; flat-out in parentheses:")
    print()
    print("| size | per-packet | gso | gro-gso |")
    print("|---|---|---|---|")
    for size in sorted({r["size"] for r in solo}):
        cells = [f"{size} B"]
        for m in MODES:
            bs = [r["baseline"] for r in solo if r["size"] == size and r["mode"] == m]
            cells.append(f"{fmt_rate([b['rate'] for b in bs])} ({fmt_rate([b['flat_rate'] for b in bs])})"
                         if bs else "–")
        print("| " + " | ".join(cells) + " |")
    print()
    print("Delivered of sent, and load before each run:")
    print()
    for r in rows:
        if r["mode"] == "gso":
            print(f"- run {r['run']}, {r['size']} B, {r['hops']} hop(s): load1 {r['load1']}, "
                  f"foreign {r['foreign_cores']} cores; Weft {r['weft']['received']}/{r['weft']['sent']}, "
                  f"baseline gso {r['baseline']['received']}/{r['baseline']['sent']}")


if __name__ == "__main__":
    main()
