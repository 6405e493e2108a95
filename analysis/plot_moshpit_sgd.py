#!/usr/bin/python3
"""The Moshpit SGD training experiment: reads the runs of analysis/run_moshpit_sgd.sh
(RUNS/<variant>_s<seed>/summary.json, each with training.curve; a folder without _s<seed> is one
seed), averages each variant's curves over its seeds (points at the same evaluation times), writes
the mean curves as CSV (variant,time_s,accuracy,average_model_accuracy,live_peers,seeds) and a
Markdown table of the times to the target accuracies (first evaluation at or above the target on
the mean curve; per seed in brackets) with their ratio to Moshpit SGD's, the final accuracy and the
bytes all peers sent (everything: averaging, DHT, state downloads), and draws test accuracy
against simulated time: left, the mean accuracy of the sampled live peers; right, the accuracy of
the average of all live peers' parameters.

usage: plot_moshpit_sgd.py RUNS --csv FILE --png FILE [--table FILE]
"""
import argparse
import collections
import csv
import glob
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["moshpit", "allreduce", "allreduce_strict", "random_groups", "gossip", "pushsum",
         "collaborative"]
LABEL = {"moshpit": "Moshpit SGD (8x8 grid)",
         "allreduce": "all-reduce SGD (whoever shows up, >= 2)",
         "allreduce_strict": "all-reduce SGD (all N or nothing)",
         "random_groups": "random groups of 8",
         "gossip": "ring gossip (D-PSGD-like)",
         "pushsum": "PushSum (SGP)",
         "collaborative": "collaborative (grad. accumulation to 2048)"}


def load(runs):
    """variant -> {seed: summary['training']}."""
    out = collections.defaultdict(dict)
    for path in sorted(glob.glob(os.path.join(runs, "*", "summary.json"))):
        name = os.path.basename(os.path.dirname(path))
        m = re.match(r"(.+)_s(\d+)$", name)
        variant, seed = (m.group(1), int(m.group(2))) if m else (name, 0)
        with open(path) as f:
            s = json.load(f)
        if "training" in s:
            out[variant][seed] = dict(s["training"], bytes_sent=s.get("bytes_sent", 0))
    return out


def mean_curve(by_seed):
    """[(time_s, accuracy, average_model_accuracy, live_peers, seeds)] over common times."""
    points = collections.defaultdict(list)
    for t in by_seed.values():
        for p in t["curve"]:
            points[p["time_s"]].append(p)
    out = []
    for time in sorted(points):
        ps = points[time]
        n = len(ps)
        out.append((time, sum(p["accuracy"] for p in ps) / n,
                    sum(p["average_model_accuracy"] for p in ps) / n,
                    sum(p["live_peers"] for p in ps) / n, n))
    return out


def first_at(curve, target):
    for time, acc, *_ in curve:
        if acc >= target:
            return time
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--csv", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--table")
    a = ap.parse_args()
    runs = load(a.runs)
    if not runs:
        print(f"no training runs under {a.runs}", file=sys.stderr)
        return 2
    variants = [v for v in ORDER if v in runs] + sorted(v for v in runs if v not in ORDER)
    curves = {v: mean_curve(runs[v]) for v in variants}
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "time_s", "accuracy", "average_model_accuracy", "live_peers",
                    "seeds"])
        for v in variants:
            for time, acc, avg, live, n in curves[v]:
                w.writerow([v, time, f"{acc:.4f}", f"{avg:.4f}", f"{live:.1f}", n])
    any_run = next(iter(runs[variants[0]].values()))
    targets = sorted((float(t) for t in any_run["time_to_accuracy_s"]))
    lines = ["| variant | seeds | " +
             " | ".join(f"time to {t:.0%} (s), mean curve [per seed]" for t in targets) +
             " | final accuracy (mean) | sent, all peers (GB, mean) |",
             "|---" * (len(targets) + 4) + "|"]
    base = {t: first_at(curves["moshpit"], t) for t in targets} if "moshpit" in curves else {}
    for v in variants:
        cells = []
        for t in targets:
            x = first_at(curves[v], t)
            per_seed = []
            for seed in sorted(runs[v]):
                y = first_at(mean_curve({seed: runs[v][seed]}), t)
                per_seed.append("–" if y is None else f"{y:.0f}")
            text = "not reached" if x is None else f"{x:.0f}"
            if x is not None and v != "moshpit" and base.get(t):
                text += f" ({x / base[t]:.2f}x Moshpit)"
            cells.append(f"{text} [{', '.join(per_seed)}]")
        final = curves[v][-1][1] if curves[v] else float("nan")
        sent = sum(r["bytes_sent"] for r in runs[v].values()) / len(runs[v]) / 1e9
        lines.append(f"| {v} | {len(runs[v])} | " + " | ".join(cells) +
                     f" | {final:.3f} | {sent:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if a.table:
        with open(a.table, "w") as f:
            f.write(table)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, col, title in [(axes[0], 1, "mean test accuracy of 8 sampled live peers"),
                           (axes[1], 2, "test accuracy of the average of all live peers")]:
        for v in variants:
            c = curves[v]
            ax.plot([p[0] for p in c], [p[col] for p in c], marker=".", label=LABEL.get(v, v))
        for t in targets:
            ax.axhline(t, color="grey", lw=0.6, ls=":")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("simulated time (s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MNIST test accuracy (mean over seeds)")
    axes[0].set_ylim(0.7, 0.95)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Moshpit SGD vs baselines: 64 peers of 3 speeds, churn + preemption, "
                 "MLP on MNIST shards")
    fig.tight_layout()
    fig.savefig(a.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
