#!/usr/bin/env python3
"""Summarises perf/services.sh's per-measurement JSON lines as Markdown tables and a plot.

Usage: services_table.py RAW.jsonl COUNT [PLOT.svg]
Each line: run, size, wsize, hops, variant (best-effort | reliable | auth), flows, load1,
foreign_cores, weft{rate, received, sent, forwarders_cpu_ns_per_msg, ...}.
Medians and min-max over the runs not under foreign load; the ratios reliable / best effort and
auth / best effort are taken per run (same run, same path and size), then summarised.
"""
import json
import os
import statistics
import sys
from collections import defaultdict

sys.dont_write_bytecode = True  # no __pycache__ in perf/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svgplot  # noqa: E402

VARIANTS = ["best-effort", "reliable", "auth"]
LABEL = {"best-effort": "best effort", "reliable": "reliable", "auth": "best effort, authenticated"}
FOREIGN_LIMIT = 0.5  # busy cores outside the benchmark before a measurement
GOAL = {"reliable": (0.80, None), "auth": (0.70, 1400)}  # ratio, size it applies to (None: all)


def mm(xs, f="{:.0f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{f.format(statistics.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"


def krate(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{statistics.median(xs) / 1e3:.0f}k [{min(xs) / 1e3:.0f}–{max(xs) / 1e3:.0f}k]"


def pct(xs):
    if not xs:
        return "–"
    return f"{100 * statistics.median(xs):.0f} % [{100 * min(xs):.0f}–{100 * max(xs):.0f}]"


def hop(h):
    return f"{h} hop{'s' if h > 1 else ''}"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    count = int(sys.argv[2])
    marked = sorted({r["run"] for r in rows if r["foreign_cores"] > FOREIGN_LIMIT})
    runs = sorted({r["run"] for r in rows})
    kept = [r for r in runs if r not in marked] or runs
    flows = sorted({r.get("flows", 1) for r in rows})
    # cell[(size, hops)][variant][run] = weft measurement
    cell = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        cell[(r["size"], r["hops"])][r["variant"]][r["run"]] = dict(r["weft"], wsize=r["wsize"])
    note = "" if kept != runs or not marked else " (every run was marked, so all are used)"
    print(f"{len(runs)} runs of {count:,} messages per measurement, weft-send --rate 0, "
          f"{', '.join(map(str, flows))} flow(s); runs under foreign load (> {FOREIGN_LIMIT} busy cores outside the "
          f"benchmark before a measurement; marked, left out of the figures): "
          f"{marked or 'none'}{note}")
    print()
    print("msgs/s received, median [min–max]; ratios per run (same run, same path and size), "
          "median [min–max]:")
    print()
    print("| path | payload | best effort | reliable | **reliable / best effort** | "
          "authenticated | **auth / plain** | Gbit/s best effort / reliable / auth |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = {}
    bars = []
    for (size, hops), vs in sorted(cell.items()):
        be = {k: v for k, v in vs["best-effort"].items() if k in kept}
        wsize = next(iter(be.values()))["wsize"] if be else min(size, 1396)
        cells = [hop(hops), f"{wsize} B" + (f" ({size})" if wsize != size else "")]
        gbits = []
        series = []
        for v in VARIANTS:
            ms = {k: m for k, m in vs[v].items() if k in kept}
            rates = [m["rate"] for m in ms.values()]
            series.append((LABEL[v], rates))
            gbits.append(f"{statistics.median(rates) * wsize * 8 / 1e9:.2f}" if rates else "–")
            if v != "best-effort":
                rr = [ms[k]["rate"] / be[k]["rate"] for k in ms if k in be and be[k]["rate"] > 0]
                ratios[(size, hops, v)] = rr
                cells.append(krate(rates))
                cells.append(pct(rr))
            else:
                cells.append(krate(rates))
        cells.append(" / ".join(gbits))
        print("| " + " | ".join(cells) + " |")
        bars.append((f"{hop(hops)}, {wsize} B", series))
    print()
    print("Goals (issue 9): reliable ≥ 80 % of best effort; authenticated ≥ 70 % of "
          "unauthenticated at 1400 B. On the medians of the per-run ratios:")
    print()
    for (size, hops, v), rr in sorted(ratios.items(), key=lambda kv: (VARIANTS.index(kv[0][2]), kv[0][0], kv[0][1])):
        goal, at = GOAL[v]
        if (at is not None and size != at) or not rr:
            continue
        med = statistics.median(rr)
        print(f"- {LABEL[v]}, {hop(hops)}, {size} B: {100 * med:.0f} % "
              f"({'met' if med >= goal else 'missed'}; goal {100 * goal:.0f} %)")
    print()
    print("Data planes' CPU per message (ns, the data planes on the path, median [min–max]) and "
          f"delivered / sent (summed over the runs used); CPU time comes in 10 ms ticks, so a "
          f"figure is good to about {1e7 / count:.0f} ns:")
    print()
    print("| path | payload | CPU best effort | CPU reliable | CPU auth | delivered best effort "
          "| delivered reliable | delivered auth | reliable: duplicates, reordered, longest gap ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (size, hops), vs in sorted(cell.items()):
        cells = [hop(hops), f"{min(size, 1396)} B"]
        for v in VARIANTS:
            cells.append(mm([m["forwarders_cpu_ns_per_msg"] for k, m in vs[v].items() if k in kept]))
        for v in VARIANTS:
            ms = [m for k, m in vs[v].items() if k in kept]
            got, sent = sum(m["received"] for m in ms), sum(m["sent"] for m in ms)
            flag = "" if got == sent else (" (**incomplete**)" if v == "reliable" else "")
            cells.append(f"{got}/{sent}{flag}")
        rel = [m for k, m in vs["reliable"].items() if k in kept]
        cells.append(f"{sum(m.get('duplicates') or 0 for m in rel)}, "
                     f"{sum(m.get('reordered') or 0 for m in rel)}, "
                     f"{mm([m.get('max_gap_ms') for m in rel], '{:.1f}')}")
        print("| " + " | ".join(cells) + " |")
    print()
    print("Each run (load before it; ratios of that run):")
    print()
    for run in runs:
        rs = [r for r in rows if r["run"] == run]
        fc = [r["foreign_cores"] for r in rs]
        parts = []
        for (size, hops, v), _ in sorted(ratios.items()):
            vs = cell[(size, hops)]
            if run in vs[v] and run in vs["best-effort"] and vs["best-effort"][run]["rate"] > 0:
                parts.append(f"{'rel' if v == 'reliable' else 'auth'} {hop(hops)} {size} B "
                             f"{100 * vs[v][run]['rate'] / vs['best-effort'][run]['rate']:.0f} %")
        print(f"- run {run}{' (**marked**)' if run in marked else ''}: load1 "
              f"{min(r['load1'] for r in rs)}–{max(r['load1'] for r in rs)}, foreign "
              f"{min(fc):.2f}–{max(fc):.2f} cores; " + ", ".join(parts))
    if len(sys.argv) > 3:
        svgplot.grouped_bars(sys.argv[3], "msgs/s received: best effort, reliable, and best effort "
                             "on authenticated links (mtu 1600)", bars, "msgs/s")


if __name__ == "__main__":
    main()
