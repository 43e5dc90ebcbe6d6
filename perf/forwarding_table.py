#!/usr/bin/env python3
"""Summarises perf/forwarding.sh's per-run JSON lines as Markdown tables.

Usage: forwarding_table.py RAW.jsonl COUNT [PLOT.svg]
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


def svg_bars(groups, path):
    """Grouped bars (median, min-max whiskers) of msgs/s per path and size: Weft and the three
    baseline modes. groups: [(label, [(series, [values])])]."""
    colours = {"Weft": "#1f77b4", "per-packet": "#bbbbbb", "gso": "#ff7f0e", "gro-gso": "#2ca02c"}
    top = max((max(v) for _, series in groups for _, v in series if v), default=1)
    w, h, left, bottom, bar = 120 * len(groups) + 80, 320, 70, 40, 22
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h + 40}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="14">msgs/s through the chain (median, min–max), Weft beside the kernel-UDP forwarder modes</text>']
    scale = (h - bottom - 30) / top
    for i in range(5):
        y = h - bottom - i * (h - bottom - 30) / 4
        out.append(f'<line x1="{left}" x2="{w - 10}" y1="{y:.0f}" y2="{y:.0f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 5}" y="{y + 4:.0f}" text-anchor="end">{top * i / 4 / 1e6:.1f}M</text>')
    for gi, (label, series) in enumerate(groups):
        x0 = left + 10 + gi * 120
        for si, (name, vals) in enumerate(series):
            if not vals:
                continue
            med, lo, hi = statistics.median(vals), min(vals), max(vals)
            x = x0 + si * bar
            out.append(f'<rect x="{x}" y="{h - bottom - med * scale:.1f}" width="{bar - 3}" height="{med * scale:.1f}" fill="{colours[name]}"/>')
            cx = x + (bar - 3) / 2
            out.append(f'<line x1="{cx}" x2="{cx}" y1="{h - bottom - lo * scale:.1f}" y2="{h - bottom - hi * scale:.1f}" stroke="#000"/>')
        out.append(f'<text x="{x0 + 2 * bar}" y="{h - bottom + 15}" text-anchor="middle">{label}</text>')
    for i, (name, colour) in enumerate(colours.items()):
        out.append(f'<rect x="{left + i * 110}" y="{h + 10}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{left + i * 110 + 14}" y="{h + 19}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


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
    bars = []
    for (size, hops), rs in sorted(groups.items()):
        rs = [r for r in rs if r["run"] in kept]
        weft = {r["run"]: r["weft"]["rate"] for r in rs}
        series = [("Weft", list(weft.values()))]
        for m in MODES:
            series.append((m, [r["baseline"]["rate"] for r in rs if r["mode"] == m]))
        bars.append((f"{hops} hop{'s' if hops > 1 else ''}, {size} B", series))
    if len(sys.argv) > 3:
        svg_bars(bars, sys.argv[3])
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
