#!/usr/bin/python3
"""Plots a calibration run (crowdtrain run scenarios/calibration.json): transfer completion time against
transfer size for the network models (message level, message level with TCP effects, packet level),
one panel per concurrency (log-log), and below them the ratio of each message-level mean to the
packet-level mean.

usage: /usr/bin/python3 analysis/plot_calibration.py RUN_DIR [OUT_PNG]   (default docs/calibration.png)
"""
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_rows(run_dir):
    with open(os.path.join(run_dir, "calibration.csv")) as f:
        return list(csv.DictReader(f))


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    run_dir = argv[1]
    out = argv[2] if len(argv) > 2 else os.path.join("docs", "calibration.png")
    rows = read_rows(run_dir)
#series[(fidelity, concurrency)] = [(size, mean, p50, max), ...]
    series = defaultdict(list)
    for r in rows:
        key = (r["fidelity"], int(r["concurrency"]))
        series[key].append((int(r["size_bytes"]), float(r["mean_completion_s"]),
                            float(r["p50_s"]), float(r["max_s"])))
    concurrencies = sorted({c for _, c in series})
    style = {"message": dict(color="tab:blue", marker="o"),
             "message+tcp": dict(color="tab:green", marker="D"),
             "packet": dict(color="tab:red", marker="s")}

    fig, axes = plt.subplots(2, len(concurrencies), figsize=(5.5 * len(concurrencies), 8),
                             squeeze=False, gridspec_kw={"height_ratios": [3, 2]})
    for i, c in enumerate(concurrencies):
        ax = axes[0][i]
        for fidelity in ("message", "message+tcp", "packet"):
            pts = sorted(series.get((fidelity, c), []))
            if not pts:
                continue
            sizes = [p[0] for p in pts]
            ax.plot(sizes, [p[1] for p in pts], label=f"{fidelity} level (mean)", **style[fidelity])
            ax.fill_between(sizes, [min(p[1], p[2]) for p in pts], [p[3] for p in pts],
                            color=style[fidelity]["color"], alpha=0.12)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"concurrency {c} (transfers in flight per sender)")
        ax.set_xlabel("transfer size (bytes)")
        ax.set_ylabel("completion time (s); band: p50..max")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()

        rax = axes[1][i]
        pkt = dict((p[0], p[1]) for p in series.get(("packet", c), []))
        ymax = 1.2
        for variant in ("message", "message+tcp"):
            msg = dict((p[0], p[1]) for p in series.get((variant, c), []))
            sizes = sorted(set(msg) & set(pkt))
            if not sizes:
                continue
            ratios = [msg[s] / pkt[s] if pkt[s] > 0 else float("nan") for s in sizes]
            ymax = max([ymax] + [r * 1.1 for r in ratios if r == r])
            rax.plot(sizes, ratios, color=style[variant]["color"], marker="^", label=variant)
        rax.legend()
        rax.axhline(1.0, color="gray", linestyle="--")
        rax.set_xscale("log")
        rax.set_ylim(0, ymax)
        rax.set_xlabel("transfer size (bytes)")
        rax.set_ylabel("message-level mean / packet mean")
        rax.grid(True, which="both", alpha=0.3)

    name = os.path.basename(run_dir.rstrip("/"))
    try:
        import json
        with open(os.path.join(run_dir, "summary.json")) as f:
            name = json.load(f).get("scenario", name)
    except (OSError, ValueError):
        pass
    fig.suptitle(f"Calibration: message-level vs packet-level network (scenario {name})")
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
