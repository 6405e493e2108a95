#!/usr/bin/python3
"""Draws Learning@home's throughput figure from docs/results/dmoe_throughput.csv (written by
analysis/run_dmoe_throughput.py): samples/s against mean ping, one panel per block type and compute
device, forward-only passes (the paper's figure) solid and forward+backward passes dashed; a second
figure for the extra forward+backward series (home links, 40 servers, 10% of them leaving).

usage: analysis/plot_dmoe_throughput.py [CSV] [OUT_PREFIX]
  defaults: docs/results/dmoe_throughput.csv, docs/dmoe_throughput
  writes OUT_PREFIX.png and OUT_PREFIX_extras.png, and prints the table of docs/dmoe.md (samples/s
  at ping 0, 100 and 200 ms, or the nearest measured pings) as Markdown
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MAIN = [("model_parallel", "model parallel, no latency (4 batches in flight)", "black"),
        ("model_parallel_latency", "model parallel, latency after every block", "tab:red"),
        ("learning_at_home", "Learning@home, 64 trainers", "tab:blue")]
EXTRA = [("learning_at_home", "4 servers, unlimited links", "tab:blue"),
         ("learning_at_home_home_links", "4 servers, home links 20/100 Mb/s", "tab:orange"),
         ("learning_at_home_40", "40 servers, 2 replicas", "tab:green"),
         ("learning_at_home_leave", "40 servers, 2 replicas, 10% leave", "tab:purple")]


def load(path):
    data = defaultdict(list)  # (block, device, direction, series) -> [(ping, samples/s)]
    with open(path) as f:
        for r in csv.DictReader(f):
            key = (r["block"], r["compute_device"], r["direction"], r["series"])
            data[key].append((float(r["ping_ms"]), float(r["samples_per_s"])))
    for v in data.values():
        v.sort()
    return data


def draw(data, panels, series, directions, title, out):
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (block, device) in zip(axes[0], panels):
        for name, label, color in series:
            for direction, style in directions:
                pts = data.get((block, device, direction, name))
                if not pts:
                    continue
                xs = [p for p, _ in pts]
                ys = [v for _, v in pts]
                if len(pts) == 1:  # the reference: a horizontal line over the ping range
                    xs, ys = [0, 200], [ys[0], ys[0]]
                suffix = "" if len(directions) == 1 else (
                    " (fwd)" if direction == "forward" else " (fwd+bwd)")
                ax.plot(xs, ys, style, color=color, marker="o" if len(pts) > 1 else None,
                        markersize=3, label=label + suffix)
        ax.set_title(f"{block}, {device}", fontsize=9)
        ax.set_xlabel("mean latency per block call (ms)")
        ax.set_ylabel("samples/s")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)


def nearest(pts, ping):
    return min(pts, key=lambda p: abs(p[0] - ping))


def table(data):
    print("| block | device | passes | series | 0 ms | ~100 ms | 200 ms |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(data):
        block, device, direction, series = key
        pts = data[key]
        cells = []
        for ping in (0, 100, 200):
            p = nearest(pts, ping)
            cells.append(f"{p[1]:.4g}" + ("" if abs(p[0] - ping) < 1 else f" ({p[0]:.0f} ms)"))
        if len(pts) == 1:
            cells = [cells[0], "=", "="]
        dev = device.split(" (")[0]
        print(f"| {block} | {dev} | {direction.replace('_', '+')} | {series} | " +
              " | ".join(cells) + " |")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/results/dmoe_throughput.csv"
    prefix = sys.argv[2] if len(sys.argv) > 2 else "docs/dmoe_throughput"
    data = load(path)
    table(data)
    panels = sorted({(k[0], k[1]) for k in data})
    draw(data, panels, MAIN, [("forward", "-"), ("forward_backward", "--")],
         "224 blocks on 4 servers (simulated, timing-only)",
         prefix + ".png")
    extra_panels = [p for p in panels
                    if any(k[:2] == p and k[3] == "learning_at_home_leave" for k in data)]
    if extra_panels:
        draw(data, extra_panels, EXTRA, [("forward_backward", "-")],
             "Learning@home, forward+backward: links and servers leaving", prefix + "_extras.png")


if __name__ == "__main__":
    main()
