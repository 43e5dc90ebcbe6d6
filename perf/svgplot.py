#!/usr/bin/env python3
"""Hand-written SVG bar plots for perf/'s table scripts (no plotting library needed).

grouped_bars(path, title, groups, ylabel, log=False, tick=fmt): one group of bars per label,
one bar per series: the median, with a whisker from the minimum to the maximum.
groups: [(label, [(series, [values])])]; a series with no values leaves its slot empty.
"""
import math
import statistics

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#bbbbbb"]


def si(v):
    """1234567 -> '1.2M', 950 -> '950'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def grouped_bars(path, title, groups, ylabel, log=False, tick=si):
    names = []
    for _, series in groups:
        for name, _ in series:
            if name not in names:
                names.append(name)
    colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    vals = [v for _, series in groups for _, vs in series for v in vs if v is not None and (v > 0 or not log)]
    bar = 20
    slot = bar * max(len(names), 1) + 24
    left, right, top_pad, bottom = 70, 20, 40, 60
    plot_h = 260
    legend_w = sum(14 + 7 * len(n) + 16 for n in names)
    w = max(left + right + slot * max(len(groups), 1), left + legend_w, left + 7 * len(title), 420)
    h = top_pad + plot_h + bottom
    if log:
        lo = 10 ** math.floor(math.log10(min(vals))) if vals else 1
        hi = 10 ** math.ceil(math.log10(max(vals))) if vals else 10
        hi = max(hi, lo * 10)
        ticks = []
        t = lo
        while t <= hi * 1.0001:
            ticks.append(t)
            t *= 10

        def y(v):
            v = max(v, lo)
            return top_pad + plot_h - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * plot_h
    else:
        hi = max(max(vals) * 1.05, 0) if vals else 1
        lo = min(min(vals) * 1.05, 0) if vals else 0
        hi = hi if hi > lo else lo + 1
        ticks = [lo + (hi - lo) * i / 4 for i in range(5)]
        if lo < 0 < hi:
            ticks.append(0)

        def y(v):
            return top_pad + plot_h - (v - lo) / (hi - lo) * plot_h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="16" font-size="12">{esc(title)}</text>',
           f'<text x="{left}" y="30" fill="#666">bars: median; whiskers: min–max over runs</text>',
           f'<text x="12" y="{top_pad + plot_h / 2:.0f}" transform="rotate(-90 12 {top_pad + plot_h / 2:.0f})" '
           f'text-anchor="middle">{esc(ylabel)}{" (log scale)" if log else ""}</text>']
    for t in ticks:
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 5}" y="{y(t) + 4:.1f}" text-anchor="end">{esc(tick(t))}</text>')
    base = y(ticks[0]) if log else y(0)
    for gi, (label, series) in enumerate(groups):
        x0 = left + 12 + gi * slot
        for name, vs in series:
            vs = [v for v in vs if v is not None]
            if not vs:
                continue
            x = x0 + names.index(name) * bar
            med, mn, mx = statistics.median(vs), min(vs), max(vs)
            top = y(med) if med > 0 or not log else base
            y0, y1 = min(top, base), max(top, base)
            out.append(f'<rect x="{x}" y="{y0:.1f}" width="{bar - 3}" height="{y1 - y0:.1f}" '
                       f'fill="{colours[name]}"><title>{esc(name)}: {esc(tick(med))} '
                       f'[{esc(tick(mn))}–{esc(tick(mx))}]</title></rect>')
            cx = x + (bar - 3) / 2
            out.append(f'<line x1="{cx}" x2="{cx}" y1="{y(mn):.1f}" y2="{y(mx):.1f}" stroke="#000"/>')
            for v in (mn, mx):
                out.append(f'<line x1="{cx - 3}" x2="{cx + 3}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#000"/>')
        out.append(f'<text x="{x0 + bar * len(names) / 2:.0f}" y="{top_pad + plot_h + 15}" '
                   f'text-anchor="middle">{esc(label)}</text>')
    lx = left
    for name in names:
        out.append(f'<rect x="{lx}" y="{h - 25}" width="10" height="10" fill="{colours[name]}"/>')
        out.append(f'<text x="{lx + 14}" y="{h - 16}">{esc(name)}</text>')
        lx += 14 + 7 * len(name) + 16
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
