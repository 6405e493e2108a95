#!/usr/bin/python3
"""The Moshpit SGD training experiment: reads the runs of analysis/run_moshpit_sgd.sh
(RUNS/<method>/summary.json, each with training.curve), writes every curve point as CSV
(method,time_s,accuracy,average_model_accuracy,live_peers) and a table of the times to the target
accuracies with their ratio to Moshpit SGD's, and draws test accuracy against simulated time: left,
the mean accuracy of the sampled live peers; right, the accuracy of the average of all live peers'
parameters.

usage: plot_moshpit_sgd.py RUNS --csv FILE --png FILE [--table FILE]
"""
import argparse
import csv
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["moshpit", "allreduce", "random_groups", "gossip", "pushsum"]
LABEL = {"moshpit": "Moshpit SGD (8x8 grid)", "allreduce": "all-reduce SGD (everyone)",
         "random_groups": "random groups", "gossip": "ring gossip (D-PSGD)",
         "pushsum": "PushSum (SGP)"}


def load(runs):
    """method -> summary['training']."""
    out = {}
    for path in sorted(glob.glob(os.path.join(runs, "*", "summary.json"))):
        with open(path) as f:
            s = json.load(f)
        if "training" not in s:
            continue
        out[s["training"]["method"]] = s["training"]
    return out


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
    methods = [m for m in ORDER if m in runs]
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "time_s", "accuracy", "average_model_accuracy", "live_peers"])
        for m in methods:
            for p in runs[m]["curve"]:
                w.writerow([m, p["time_s"], f'{p["accuracy"]:.4f}',
                            f'{p["average_model_accuracy"]:.4f}', p["live_peers"]])
    targets = sorted(runs[methods[0]]["time_to_accuracy_s"].keys(), key=float)
    lines = ["| method | " + " | ".join(f"time to {float(t):.0%} (s)" for t in targets) +
             " | final accuracy |", "|---" * (len(targets) + 2) + "|"]
    base = runs.get("moshpit", {}).get("time_to_accuracy_s", {})
    for m in methods:
        cells = []
        for t in targets:
            v = runs[m]["time_to_accuracy_s"][t]
            if v is None:
                cells.append("not reached")
            elif m != "moshpit" and base.get(t):
                cells.append(f"{v:.0f} ({v / base[t]:.2f}x)")
            else:
                cells.append(f"{v:.0f}")
        lines.append(f"| {m} | " + " | ".join(cells) + f' | {runs[m]["final_accuracy"]:.3f} |')
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if a.table:
        with open(a.table, "w") as f:
            f.write(table)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, key, title in [(axes[0], "accuracy", "mean test accuracy of sampled live peers"),
                           (axes[1], "average_model_accuracy",
                            "test accuracy of the average of live peers")]:
        for m in methods:
            c = runs[m]["curve"]
            ax.plot([p["time_s"] for p in c], [p[key] for p in c], marker=".",
                    label=LABEL.get(m, m))
        for t in targets:
            ax.axhline(float(t), color="grey", lw=0.6, ls=":")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("simulated time (s)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MNIST test accuracy")
    lo = min(min(p["accuracy"] for p in runs[m]["curve"][1:] or runs[m]["curve"]) for m in methods)
    axes[0].set_ylim(max(0.0, lo - 0.02), 1.0)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Moshpit SGD vs baselines: 64 heterogeneous peers with churn (MLP on MNIST)")
    fig.tight_layout()
    fig.savefig(a.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
