#!/usr/bin/python3
"""Plots the DHT sweeps (analysis/run_dht_sweep.sh) from run folders' summary.json:

  docs/dht_hops.png   mean lookup hops (and p99) against the number of peers, log x, beside the
                      fitted Kademlia scaling  hops = a * log2(N) + c  (least squares on the means);
  docs/dht_churn.png  get success against churn: all gets, and gets of keys a live peer still held,
                      against the median session length.

usage: /usr/bin/python3 analysis/plot_dht.py SWEEP_DIR [OUT_DIR]   (default OUT_DIR: docs)
SWEEP_DIR holds hops_<N>/ and churn_<median_s>/ run folders; either set may be missing.
"""
import glob
import json
import math
import os
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(pattern):
    runs = []
    for path in glob.glob(pattern):
        summary = os.path.join(path, "summary.json")
        if os.path.exists(summary):
            with open(summary) as f:
                runs.append(json.load(f))
    return runs


def session_median_s(summary):
    s = summary["scenario_resolved"].get("churn", {}).get("session_s", {})
    return float(s["median"]) if isinstance(s, dict) and "median" in s else float("nan")


def plot_hops(runs, out):
    runs = sorted(runs, key=lambda r: r["peers"])
    n = [r["peers"] for r in runs]
    mean = [r["samples"]["dht_lookup_hops"]["mean"] for r in runs]
    p99 = [r["samples"]["dht_lookup_hops"]["p99"] for r in runs]
    x = [math.log2(v) for v in n]
    # least squares for mean = a * log2(N) + c
    mx, my = sum(x) / len(x), sum(mean) / len(mean)
    sxx = sum((xi - mx) ** 2 for xi in x)
    a = sum((xi - mx) * (yi - my) for xi, yi in zip(x, mean)) / sxx if sxx > 0 else 0.0
    c = my - a * mx
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(n, mean, "o-", color="tab:blue", label="measured mean hops")
    ax.plot(n, p99, "s--", color="tab:blue", alpha=0.5, label="measured p99 hops")
    grid = [10 ** (2 + i / 20) for i in range(61)]
    ax.plot(grid, [a * math.log2(g) + c for g in grid], ":", color="tab:red",
            label=f"fit a·log2(N)+c, a={a:.2f}, c={c:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("peers N")
    ax.set_ylabel("hops per lookup")
    ax.set_title("DHT lookup hops against network size (k=20, alpha=3, no churn)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}  (fit: hops = {a:.3f} * log2(N) + {c:.3f})")


def plot_churn(runs, out):
    runs = sorted(runs, key=session_median_s)
    med_min = [session_median_s(r) / 60 for r in runs]
    allg = [100 * (r["dht"]["get_success"] or 0) for r in runs]
    live = [100 * (r["dht"]["get_success_with_live_replica"] or 0) for r in runs]
    store = [100 * (r["dht"]["store_success"] or 0) for r in runs]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(med_min, live, "o-", color="tab:green", label="gets of keys with a live replica")
    ax.plot(med_min, allg, "s-", color="tab:blue", label="all gets")
    ax.plot(med_min, store, "^:", color="tab:gray", label="stores")
    ax.axhline(99, color="tab:red", lw=0.8, ls="--", label="99 %")
    ax.set_xscale("log")
    ax.set_xlabel("median session length (minutes; Weibull shape 0.6)  ← more churn")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(med_min)
    ax.set_ylabel("success (%)")
    ax.set_title(f"DHT success under churn ({runs[0]['peers']} peers)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    sweep, out_dir = argv[1], (argv[2] if len(argv) > 2 else "docs")
    hops = load(os.path.join(sweep, "hops_*"))
    churn = load(os.path.join(sweep, "churn_*"))
    if not hops and not churn:
        print(f"plot_dht: no run folders with summary.json under {sweep}", file=sys.stderr)
        return 2
    os.makedirs(out_dir, exist_ok=True)
    if hops:
        plot_hops(hops, os.path.join(out_dir, "dht_hops.png"))
    if churn:
        plot_churn(churn, os.path.join(out_dir, "dht_churn.png"))
    print("peers  session_median_s  stores  store_ok  gets  get_ok  get_ok_live  hops_mean  "
          "hops_p99  lookup_ms_p50  lookup_ms_p99  msgs_per_lookup  wall_s")
    for r in sorted(hops, key=lambda r: r["peers"]) + sorted(churn, key=session_median_s):
        d, s = r["dht"], r["samples"]
        print(f"{r['peers']}  {session_median_s(r):.0f}  {d['stores']}  {d['store_success']}  "
              f"{d['gets']}  {d['get_success']}  {d['get_success_with_live_replica']}  "
              f"{s['dht_lookup_hops']['mean']:.3f}  {s['dht_lookup_hops']['p99']}  "
              f"{s['dht_lookup_ms']['p50']:.1f}  {s['dht_lookup_ms']['p99']:.1f}  "
              f"{s['dht_messages_per_lookup']['mean']:.1f}  {r['wall_time_s']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
