#!/usr/bin/env python3
"""Summarises perf/latency.sh's per-run JSON lines as Markdown.

Usage: latency_table.py RAW.jsonl [PLOT.svg]
Medians and min-max over runs of: capacity, latency at 50 % of it (Weft and the kernel-UDP gso
chain at the same rate), the latency added by the second hop, and the 2x overload run.
With PLOT.svg: the latency percentiles at 50 % load there (log scale), the second hop's added
latency in PLOT-added.svg and the overload run's received rate beside the capacity in
PLOT-overload.svg (median bars, min-max whiskers).
"""
import json
import os
import statistics
import sys
from collections import defaultdict

sys.dont_write_bytecode = True  # no __pycache__ in perf/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svgplot  # noqa: E402

PCTS = [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")]


def us(v):
    return f"{v:g}"


def plots(by, path):
    hop = lambda h: f"{h} hop{'s' if h > 1 else ''}"  # noqa: E731
    groups = []
    for (size, hops), rs in sorted(by.items()):
        series = [(f"Weft {n}", [lat(r, "half", p) for r in rs]) for p, n in PCTS]
        series += [(f"kernel gso {n}", [lat(r, "baseline_half", p) for r in rs]) for p, n in PCTS]
        groups.append((f"{hop(hops)}, {size} B", series))
    svgplot.grouped_bars(path, "one-way latency at 50 % of capacity, µs: Weft beside the kernel-UDP "
                         "gso chain at the same rate", groups, "µs", log=True, tick=us)
    groups = []
    for size in sorted({s for s, _ in by}):
        one = {r["run"]: r for r in by.get((size, 1), [])}
        two = {r["run"]: r for r in by.get((size, 2), [])}
        series = []
        for p, n in PCTS:
            series.append((f"added {n}", [lat(two[k], "half", p) - lat(one[k], "at_two_hop_half", p)
                                          for k in two if k in one
                                          and lat(two[k], "half", p) is not None
                                          and lat(one[k], "at_two_hop_half", p) is not None]))
        groups.append((f"{size} B", series))
    svgplot.grouped_bars(path[:-4] + "-added.svg", "latency the second hop adds (2 hops minus 1 hop at "
                         "the same rate), µs", groups, "µs", tick=us)
    groups = []
    for (size, hops), rs in sorted(by.items()):
        rs = [r for r in rs if r.get("overload")]
        if rs:
            groups.append((f"{hop(hops)}, {size} B",
                           [("capacity", [r["capacity"]["rate"] for r in rs]),
                            ("offered (2x)", [2 * r["capacity"]["rate"] for r in rs]),
                            ("received under 2x", [r["overload"]["rate"] for r in rs])]))
    if groups:
        svgplot.grouped_bars(path[:-4] + "-overload.svg", "overload: msgs/s received with the sender "
                             "paced at 2x capacity", groups, "msgs/s")


def mm(xs, f="{:.0f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{f.format(statistics.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"


def lat(r, key, p):
    v = r.get(key) or {}
    return (v.get("latency_us") or {}).get(p)


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    by = defaultdict(list)
    for r in rows:
        by[(r["size"], r["hops"])].append(r)
    runs = sorted({r["run"] for r in rows})
    print(f"{len(runs)} runs; busy cores outside the benchmark before each measurement: "
          f"{mm([r['foreign_cores'] for r in rows], '{:.2f}')}")
    print()
    print("Latency at 50 % of the measured capacity, one-way µs, median [min–max] over runs:")
    print()
    print("| path | size | capacity msgs/s | rate | Weft p50 | Weft p99 | Weft p99.9 "
          "| kernel gso chain p50 | p99 | p99.9 | Weft received/sent |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (size, hops), rs in sorted(by.items()):
        cells = [f"{hops} hop{'s' if hops > 1 else ''}", f"{size} B",
                 mm([r["capacity"]["rate"] for r in rs]),
                 mm([r["capacity"]["rate"] / 2 for r in rs])]
        for p in ["p50", "p99", "p999"]:
            cells.append(mm([lat(r, "half", p) for r in rs], "{:.1f}"))
        for p in ["p50", "p99", "p999"]:
            cells.append(mm([lat(r, "baseline_half", p) for r in rs], "{:.1f}"))
        got = sum(r["half"]["received"] for r in rs)
        sent = sum(r["half"]["sent"] for r in rs)
        cells.append(f"{got}/{sent}")
        print("| " + " | ".join(cells) + " |")
    print()
    print("Added by the second hop: the 2-hop latency minus the 1-hop latency at the same rate "
          "(the 2-hop path's 50 % rate, in the same run), µs; each percentile differenced on its own:")
    print()
    print("| size | rate msgs/s | 1 hop p50 / p99 / p99.9 | 2 hops p50 / p99 / p99.9 | added p50 | added p99 | added p99.9 |")
    print("|---|---|---|---|---|---|---|")
    for size in sorted({s for s, _ in by}):
        one = {r["run"]: r for r in by.get((size, 1), [])}
        two = {r["run"]: r for r in by.get((size, 2), [])}
        cells = [f"{size} B", mm([two[k]["capacity"]["rate"] / 2 for k in two])]
        for key, src in [("at_two_hop_half", one), ("half", two)]:
            cells.append(" / ".join(mm([lat(r, key, p) for r in src.values()], "{:.0f}")
                                    for p in ["p50", "p99", "p999"]))
        for p in ["p50", "p99", "p999"]:
            d = [lat(two[k], "half", p) - lat(one[k], "at_two_hop_half", p) for k in two
                 if k in one and lat(two[k], "half", p) is not None
                 and lat(one[k], "at_two_hop_half", p) is not None]
            cells.append(mm(d, "{:.1f}"))
        print("| " + " | ".join(cells) + " |")
    print()
    print("Overload: weft-send paced at 2x the capacity, 2 hops:")
    print()
    print("| size | seconds | capacity msgs/s | received msgs/s under 2x | ratio | p50 µs | p99 µs | p99.9 µs | max µs "
          "| lost | node 2's links afterwards |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (size, hops), rs in sorted(by.items()):
        rs = [r for r in rs if r.get("overload")]
        if not rs:
            continue
        cap = [r["capacity"]["rate"] for r in rs]
        got = [r["overload"]["rate"] for r in rs]
        ratio = [g / c for g, c in zip(got, cap) if c]
        links = "; ".join(
            ", ".join(f"link {l['link']} {l['state']} (loss {l['loss_ppm']} ppm, changed "
                      f"{'never' if l['changed_ms_ago'] is None else str(round(l['changed_ms_ago'] / 1000)) + ' s ago'})"
                      for l in (r["links_after"] or []))
            for r in rs[-1:])
        cells = [f"{size} B", str(rs[0]["overload_seconds"]), mm(cap), mm(got), mm(ratio, "{:.2f}")]
        for p in ["p50", "p99", "p999", "max"]:
            cells.append(mm([lat(r, "overload", p) for r in rs], "{:.0f}"))
        lost = sum(r["overload"]["sent"] - r["overload"]["received"] for r in rs)
        cells += [str(lost), links or "–"]
        print("| " + " | ".join(cells) + " |")
    if len(sys.argv) > 2:
        plots(by, sys.argv[2])


if __name__ == "__main__":
    main()
