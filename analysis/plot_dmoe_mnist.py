#!/usr/bin/python3
"""Draws Learning@home's convergence figure from docs/results/dmoe_mnist.csv (written by
analysis/run_dmoe_mnist.py): validation accuracy against the swarm's updates (left) and against
simulated time (right), one line per setup; a setup run with several seeds is drawn as the mean
with the band between the lowest and the highest seed where they all reach, and each seed thin. Prints the table of docs/dmoe.md: per setup
the seeds, updates, final accuracy (mean, min-max) and the updates and simulated time to 90% and
95% accuracy (mean over the seeds that reached it, and how many did).

The paper's own curves (docs/results/paper_mnist_curves.csv, read off its notebooks' figures by
analysis/digitize_paper_mnist.py) are drawn dashed beside ours against updates, and a second table
sets our setups and the paper's runs side by side at equal numbers of updates.

usage: analysis/plot_dmoe_mnist.py [CSV] [OUT_PNG] [PAPER_CSV]
  defaults: docs/results/dmoe_mnist.csv, docs/dmoe_mnist.png, docs/results/paper_mnist_curves.csv
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "moe64_d1000_f10_idx": ("64 experts, 1 s, 10% failures, standard MNIST split", "tab:cyan"),
    "moe64_d1000_f10": ("64 experts, 1 s, 10% failures", "tab:blue"),
    "moe64_d1000_f10_elr1e3": ("64 experts, 1 s, 10% failures, expert lr 1e-3", "tab:red"),
    "moe64_d100_f10": ("64 experts, 100 ms, 10% failures", "tab:orange"),
    "moe64_d100_f10_idx": ("64 experts, 100 ms, 10% failures, standard MNIST split", "tab:orange"),
    "moe64_d1000_f0": ("64 experts, 1 s, no failures", "tab:green"),
    "moe64_d100_f0": ("64 experts, 100 ms, no failures", "tab:olive"),
    "moe64_d1000_churn": ("64 experts, 1 s, servers crash 10% of the time", "tab:purple"),
    "dense_d1000": ("dense d=1024, 1 s", "black"),
}
TARGETS = (0.9, 0.95)
PAPER_LABELS = {
    "paper_dmoe256_d1000_f0": ("paper: 256 experts, 64 trainers, 1 s, no failures", "tab:brown"),
    "paper_dmoe4096_d1000_f10": ("paper: 4,096 experts, 64 trainers, batch 8, 1 s, 10% failures",
                                 "tab:pink"),
    "paper_dense_d1000": ("paper: dense d=1024, 64 trainers, 1 s", "tab:gray"),
}
AT_UPDATES = (2048, 4096, 7168, 12288, 16384)


def load_paper(path):
    """run -> [(updates, accuracy)], or {} when the file is missing."""
    runs = defaultdict(list)
    try:
        with open(path) as f:
            for r in csv.DictReader(f):
                runs[r["run"]].append((int(r["updates"]), float(r["val_accuracy"])))
    except FileNotFoundError:
        return {}
    return dict(runs)


def load(path):
    runs = defaultdict(lambda: defaultdict(list))  # setup -> seed -> [(time, updates, acc)]
    with open(path) as f:
        for r in csv.DictReader(f):
            updates = int(r["updates"]) if r["updates"] else 0
            runs[r["setup"]][int(r["seed"])].append(
                (float(r["time_s"]), updates, float(r["val_accuracy"])))
    for seeds in runs.values():
        for curve in seeds.values():
            curve.sort()
    return runs


def ordered(runs):
    """The setups in LABELS order, unknown ones last."""
    return sorted(runs, key=lambda s: list(LABELS).index(s) if s in LABELS else len(LABELS))


def interpolate(curve, x, index):
    """Accuracy at x along the curve's column `index` (updates or time), None outside it."""
    for a, b in zip(curve, curve[1:]):
        if a[index] <= x <= b[index]:
            if b[index] == a[index]:
                return b[2]
            t = (x - a[index]) / (b[index] - a[index])
            return a[2] + t * (b[2] - a[2])
    return None


def band(curves, index, points=60):
    """Mean, min and max accuracy over the seeds on a common grid of the column `index`."""
    hi = min(c[-1][index] for c in curves)
    lo = max(c[0][index] for c in curves)
    xs, mean, low, high = [], [], [], []
    for i in range(points + 1):
        x = lo + (hi - lo) * i / points
        ys = [interpolate(c, x, index) for c in curves]
        if any(y is None for y in ys):
            continue
        xs.append(x)
        mean.append(sum(ys) / len(ys))
        low.append(min(ys))
        high.append(max(ys))
    return xs, mean, low, high


def draw(runs, paper, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for run, curve in paper.items():
        label, color = PAPER_LABELS.get(run, (run, None))
        axes[0].plot([u for u, _ in curve], [a for _, a in curve], color=color, linestyle="--",
                     linewidth=0.9, alpha=0.7, label=label)
    for setup in ordered(runs):
        label, color = LABELS.get(setup, (setup, None))
        curves = list(runs[setup].values())
        label += f" ({len(curves)} seeds)" if len(curves) > 1 else ""
        for ax, index in zip(axes, (1, 0)):
            scale = 1 / 3600 if index == 0 else 1
            if len(curves) == 1:
                c = curves[0]
                ax.plot([p[index] * scale for p in c], [p[2] for p in c], color=color,
                        label=label, linewidth=1.2)
                continue
            for c in curves:  # each seed thin: runs of different lengths show in full
                ax.plot([p[index] * scale for p in c], [p[2] for p in c], color=color,
                        linewidth=0.6, alpha=0.45)
            xs, mean, low, high = band(curves, index)
            xs = [x * scale for x in xs]
            ax.plot(xs, mean, color=color, label=label, linewidth=1.6)
            ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
    axes[0].set_xlabel("updates (all trainers' steps)")
    axes[1].set_xlabel("simulated time (hours)")
    for ax in axes:
        ax.set_ylabel("validation accuracy")
        ax.set_ylim(0.0, 1.0)
        ax.axhline(0.95, color="grey", linestyle=":", linewidth=0.8)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("MNIST through the real protocol (simulated world): 4 DMoE layers, 16 trainers, "
                 "batch 4", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)


def first_reaching(curve, target):
    for time, updates, acc in curve:
        if acc >= target:
            return updates, time
    return None


def fmt_mean(values, digits):
    return f"{sum(values) / len(values):,.{digits}f}" if values else "—"


def table(runs):
    print("| setup | seeds | updates | final accuracy (min–max) | updates to 90% | to 95% | "
          "hours to 95% |")
    print("|---|---|---|---|---|---|---|")
    for setup in ordered(runs):
        curves = list(runs[setup].values())
        finals = [c[-1][2] for c in curves]
        updates = [c[-1][1] for c in curves]
        hits = {t: [h for h in (first_reaching(c, t) for c in curves) if h] for t in TARGETS}
        cells = []
        for target in TARGETS:
            cell = fmt_mean([h[0] for h in hits[target]], 0)
            if len(hits[target]) < len(curves):
                cell += f" ({len(hits[target])}/{len(curves)} seeds)"
            cells.append(cell)
        final = f"{sum(finals) / len(finals):.4f}"
        if len(finals) > 1:
            final += f" ({min(finals):.4f}–{max(finals):.4f})"
        hours95 = fmt_mean([h[1] / 3600 for h in hits[0.95]], 2)
        print(f"| {LABELS.get(setup, (setup,))[0]} | {len(curves)} | {fmt_mean(updates, 0)} | "
              f"{final} | {cells[0]} | {cells[1]} | {hours95} |")


def at_updates(curve, x):
    """Accuracy at x updates along [(updates, accuracy)], None outside the curve."""
    for (u0, a0), (u1, a1) in zip(curve, curve[1:]):
        if u0 <= x <= u1:
            return a0 if u1 == u0 else a0 + (x - u0) / (u1 - u0) * (a1 - a0)
    return None


def comparison(runs, paper):
    """Ours (mean over the seeds that got that far: "(k/n)" when not all did) and the paper's runs
    at equal numbers of updates."""
    cols = " | ".join(f"at {x:,}" for x in AT_UPDATES)
    print(f"| run | {cols} | updates to 90% | to 95% | last (updates) |")
    print("|---|" + "---|" * (len(AT_UPDATES) + 3))
    rows = [(LABELS.get(s, (s,))[0], [[(p[1], p[2]) for p in c] for c in runs[s].values()])
            for s in ordered(runs)]
    rows += [(PAPER_LABELS.get(r, (r,))[0], [c]) for r, c in paper.items()]
    for label, curves in rows:
        cells = []
        for x in AT_UPDATES:
            ys = [y for y in (at_updates(c, x) for c in curves) if y is not None]
            cells.append("—" if not ys else f"{sum(ys) / len(ys):.3f}" +
                         ("" if len(ys) == len(curves) else f" ({len(ys)}/{len(curves)})"))
        for t in TARGETS:
            hits = [next((u for u, a in c if a >= t), None) for c in curves]
            hits = [h for h in hits if h is not None]
            cells.append(fmt_mean(hits, 0) + ("" if len(hits) == len(curves) else
                                              f" ({len(hits)}/{len(curves)})"))
        last = sum(c[-1][1] for c in curves) / len(curves)
        cells.append(f"{last:.3f} ({sum(c[-1][0] for c in curves) / len(curves):,.0f})")
        print(f"| {label} | " + " | ".join(cells) + " |")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/results/dmoe_mnist.csv"
    out = sys.argv[2] if len(sys.argv) > 2 else "docs/dmoe_mnist.png"
    paper = load_paper(sys.argv[3] if len(sys.argv) > 3 else "docs/results/paper_mnist_curves.csv")
    runs = load(path)
    if not runs:
        sys.exit(f"plot_dmoe_mnist.py: {path} holds no runs")
    draw(runs, paper, out)
    table(runs)
    print()
    comparison(runs, paper)


if __name__ == "__main__":
    main()
