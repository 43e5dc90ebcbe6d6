#!/usr/bin/env python3
"""Summarises perf/workers.sh's per-measurement JSON lines as Markdown and a plot.

Usage: workers_table.py RAW.jsonl [PLOT.svg]
Each line: run, workers (1 or 2), size, hops, foreign_cores (absent in older files), weft{...}.
Medians and min-max over runs; the ratio 2 workers / 1 worker per run.
"""
import json
import os
import statistics
import sys
from collections import defaultdict

sys.dont_write_bytecode = True  # no __pycache__ in perf/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svgplot  # noqa: E402

FOREIGN_LIMIT = 0.5


def mm(xs, f="{:.0f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{f.format(statistics.median(xs))} [{f.format(min(xs))}–{f.format(max(xs))}]"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    runs = sorted({r["run"] for r in rows})
    marked = sorted({r["run"] for r in rows if r.get("foreign_cores", 0) > FOREIGN_LIMIT})
    kept = [r for r in runs if r not in marked] or runs
    by = defaultdict(dict)
    for r in rows:
        by[(r["size"], r["hops"], r["workers"])][r["run"]] = r["weft"]
    foreign = [r["foreign_cores"] for r in rows if "foreign_cores" in r]
    flows = sorted({r.get("flows", 1) for r in rows})
    print(f"{len(runs)} runs; client flows: {', '.join(map(str, flows))}; msgs/s median [min–max]; data planes' CPU ns/msg; busy cores outside "
          f"the benchmark before each measurement: {mm(foreign, '{:.2f}') if foreign else 'not recorded'}; "
          f"runs over {FOREIGN_LIMIT} (marked, left out): {marked or 'none'}"
          f"{' (every run was marked, so all are used)' if marked and kept == runs else ''}")
    print()
    print("| path | size | 1 worker msgs/s | 2 workers msgs/s | 2 / 1 | CPU ns/msg, 1 worker | 2 workers |")
    print("|---|---|---|---|---|---|---|")
    groups = []
    for size in sorted({k[0] for k in by}):
        for hops in (1, 2):
            one = {k: v for k, v in by[(size, hops, 1)].items() if k in kept}
            two = {k: v for k, v in by[(size, hops, 2)].items() if k in kept}
            ratio = [two[k]["rate"] / one[k]["rate"] for k in two if k in one and one[k]["rate"]]
            path = f"{hops} hop{'s' if hops > 1 else ''}"
            print(f"| {path} | {size} B | {mm([x['rate'] for x in one.values()])} | "
                  f"{mm([x['rate'] for x in two.values()])} | {mm(ratio, '{:.2f}')} | "
                  f"{mm([x['forwarders_cpu_ns_per_msg'] for x in one.values()])} | "
                  f"{mm([x['forwarders_cpu_ns_per_msg'] for x in two.values()])} |")
            groups.append((f"{path}, {size} B", [("1 worker", [x["rate"] for x in one.values()]),
                                                  ("2 workers", [x["rate"] for x in two.values()])]))
    if len(sys.argv) > 2:
        svgplot.grouped_bars(sys.argv[2], "msgs/s with one and two workers per node (2 cores shared "
                             "by all processes)", groups, "msgs/s")


if __name__ == "__main__":
    main()
