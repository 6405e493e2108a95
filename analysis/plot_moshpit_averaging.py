#!/usr/bin/python3
"""The Moshpit averaging experiment: reads the runs of analysis/run_moshpit_averaging.sh
(RUNS/[<method>/]n<N>_p<P>_s<SEED>/summary.json, each with averaging.mse_by_round; the method is
read from the run's resolved scenario), writes the table of mean rounds (over seeds, capped at 50)
to reach MSE 1e-9 and 1e-4 as CSV (n,p,method,rounds_1e-9,rounds_1e-4) and draws log MSE against
the round: three panels (p = 0, 0.005, 0.01 at the largest N), one colour per method, one faint
line per seed and their geometric mean.

usage: plot_moshpit_averaging.py RUNS --csv FILE --png FILE [--md FILE] [--cap 50]
  --md: also the table as Markdown, one row per (N, p), one column per method ("1e-9 / 1e-4"),
        with the number of restarts behind each cell.
"""
import argparse
import collections
import csv
import glob
import json
import math
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FLOOR = 1e-30  # an exact average plots here
METHODS = ["allreduce", "gossip", "pushsum", "random_groups", "moshpit"]  # legend order
LABELS = {
    "allreduce": "All-Reduce",
    "gossip": "Gossip (ring)",
    "pushsum": "PushSum",
    "random_groups": "random groups of 32",
    "moshpit": "Moshpit 32x32",
}


def load(runs):
    """(n, p, method) -> {seed: [mse after 0, 1, ... rounds]}."""
    out = collections.defaultdict(dict)
    paths = glob.glob(os.path.join(runs, "*", "summary.json"))
    paths += glob.glob(os.path.join(runs, "*", "*", "summary.json"))
    for path in sorted(paths):
        m = re.match(r"n(\d+)_p([0-9.e-]+)_s(\d+)$", os.path.basename(os.path.dirname(path)))
        if not m:
            continue
        with open(path) as f:
            s = json.load(f)
        method = s["scenario_resolved"]["workload"]["averaging"].get("method", "moshpit")
        curve = [pt["mse"] for pt in sorted(s["averaging"]["mse_by_round"], key=lambda x: x["round"])]
        out[(int(m.group(1)), m.group(2), method)][int(m.group(3))] = curve
    return out


def rounds_to(curve, threshold, cap):
    for r, e in enumerate(curve):
        if e <= threshold:
            return min(r, cap)
    return cap


def write_markdown(data, path, cap):
    order = {m: i for i, m in enumerate(METHODS)}
    methods = sorted({k[2] for k in data}, key=lambda m: order.get(m, len(METHODS)))
    rows = sorted({(k[0], k[1]) for k in data}, key=lambda r: (r[0], float(r[1])))
    lines = ["| N | p | " + " | ".join(LABELS.get(m, m) for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for n, p in rows:
        cells = []
        for m in methods:
            curves = list(data.get((n, p, m), {}).values())
            if not curves:
                cells.append("")
                continue
            r9 = sum(rounds_to(c, 1e-9, cap) for c in curves) / len(curves)
            r4 = sum(rounds_to(c, 1e-4, cap) for c in curves) / len(curves)
            cells.append(f"{r9:.3g} / {r4:.3g} ({len(curves)})")
        lines.append(f"| {n} | {p} | " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--md")
    ap.add_argument("--cap", type=int, default=50)
    a = ap.parse_args()
    data = load(a.runs)
    if not data:
        raise SystemExit("no runs under " + a.runs)
    os.makedirs(os.path.dirname(a.csv) or ".", exist_ok=True)
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n", "p", "method", "rounds_1e-9", "rounds_1e-4"])
        for (n, p, method) in sorted(data, key=lambda k: (k[2], k[0], float(k[1]))):
            curves = data[(n, p, method)].values()
            r9 = sum(rounds_to(c, 1e-9, a.cap) for c in curves) / len(curves)
            r4 = sum(rounds_to(c, 1e-4, a.cap) for c in curves) / len(curves)
            w.writerow([n, p, method, f"{r9:.2f}", f"{r4:.2f}"])
    print(a.csv)
    if a.md:
        write_markdown(data, a.md, a.cap)
        print(a.md)

    n_max = max(k[0] for k in data)
    ps = sorted({k[1] for k in data if k[0] == n_max}, key=float)
    panels = [p for p in ps if float(p) in (0.0, 0.005, 0.01)] or ps[:3]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], panels):
        order = {m: i for i, m in enumerate(METHODS)}
        keys = sorted((k for k in data if k[0] == n_max and k[1] == p),
                      key=lambda k: order.get(k[2], len(METHODS)))
        for (n, pp, method) in keys:
            by_seed = data[(n, pp, method)]
            color = f"C{order.get(method, len(METHODS))}"
            length = max(len(c) for c in by_seed.values())
            for c in by_seed.values():
                ax.plot(range(len(c)), [max(e, FLOOR) for e in c], color=color, alpha=0.15, lw=0.8)
            mean = []
            for r in range(length):
                # a run that stopped below 1e-9 stays there
                vals = [max(c[min(r, len(c) - 1)], FLOOR) for c in by_seed.values()]
                mean.append(math.exp(sum(math.log(v) for v in vals) / len(vals)))
            ax.plot(range(length), mean, color=color, lw=2,
                    label=f"{LABELS.get(method, method)} ({len(by_seed)} runs)")
        ax.axhline(1e-9, color="gray", ls=":", lw=1)
        ax.axhline(1e-4, color="gray", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(f"N = {n_max}, p = {p}")
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean squared error from the true mean")
    axes[0][0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(a.png) or ".", exist_ok=True)
    fig.savefig(a.png, dpi=120)
    print(a.png)


if __name__ == "__main__":
    main()
