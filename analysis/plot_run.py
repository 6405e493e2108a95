#!/usr/bin/python3
"""Plots one crowdtrain run folder.

Usage: /usr/bin/python3 analysis/plot_run.py RUN_DIR [--out DIR] [--gauges a,b] [--counters c,d]

Reads RUN_DIR/summary.json (for the title) and RUN_DIR/metrics.csv (the time series; its columns
vary by workload), and RUN_DIR/events.jsonl when it exists. Writes into RUN_DIR, or --out:
  metrics.png  every numeric column against time_s: cumulative counters on one panel, the same
               counters as rates per second on the next, gauges (alive_peers, ...) below; panels
               split where the scales differ by more than two orders of magnitude;
  events.png   a histogram of event kinds, and the most common kinds over time (if events.jsonl);
  accuracy.png test accuracy against simulated time, when the summary has a learning curve
               (the "moe" or "training" workload: summary[kind]["curve"]).
Prints the paths of the PNGs it wrote. Exit 2 when the folder lacks summary.json or metrics.csv.

Needs only Debian's python3-matplotlib (Agg backend, no display).
"""

import argparse
import collections
import csv
import json
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TIME_COLUMN = "time_s"
# Name tokens (split on "_") of levels, which are not running totals even when they never fall in a
# run, and of running totals, which win when a name has both (peers_joined).
GAUGE_TOKENS = {
    "alive", "online", "active", "pending", "queue", "inflight", "peers", "size", "ratio", "frac",
    "fraction", "rate", "loss", "accuracy", "acc", "mean", "avg", "median", "p50", "p90", "p95",
    "p99", "max", "min", "ms", "s", "mbps", "memory", "mem", "util", "load", "epoch", "step",
    "round", "level", "current", "gauge"}
COUNTER_TOKENS = {"sent", "received", "delivered", "dropped", "lost", "joined", "left", "failed",
                  "ok", "total", "count", "retries", "timeouts", "bytes", "errors", "completed"}
EV_RE = re.compile(rb'"ev":"((?:[^"\\]|\\.)*)"')
T_RE = re.compile(rb'^\{"t_ns":(-?\d+)')


def fail(message):
    print("plot_run.py: " + message, file=sys.stderr)
    sys.exit(2)


def parse_float(text):
    try:
        return float(text)
    except ValueError:
        return None


def read_metrics(path):
    """Returns (header, {column: [float]}) keeping only columns whose every cell is a number."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        fail(path + " is empty (no header)")
    header = [h.strip() for h in rows[0]]
    columns = {h: [] for h in header}
    numeric = {h: True for h in header}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            fail("%s:%d has %d cells, the header has %d" % (path, line_no, len(row), len(header)))
        for h, cell in zip(header, row):
            v = parse_float(cell) if cell.strip() else math.nan
            if v is None:
                numeric[h] = False
            else:
                columns[h].append(v)
    return header, {h: columns[h] for h in header if numeric[h]}


def is_counter(name, values):
    finite = [v for v in values if math.isfinite(v)]
    if not finite or any(v != int(v) or v < 0 for v in finite):
        return False
    if any(b < a for a, b in zip(finite, finite[1:])):
        return False
    tokens = set(name.lower().split("_"))
    return bool(tokens & COUNTER_TOKENS) or not tokens & GAUGE_TOKENS


def magnitude(values):
    finite = [abs(v) for v in values if math.isfinite(v)]
    peak = max(finite) if finite else 0.0
    return math.log10(peak) if peak > 0 else 0.0


def group_by_scale(series):
    """Splits [(name, values)] into groups whose peaks lie within two decades of each other."""
    ordered = sorted(series, key=lambda item: magnitude(item[1]), reverse=True)
    groups = []
    for name, values in ordered:
        if groups and groups[-1][0] - magnitude(values) <= 2.0:
            groups[-1][1].append((name, values))
        else:
            groups.append((magnitude(values), [(name, values)]))
    return [members for _, members in groups]


def rates(times, values):
    t_out, r_out = [], []
    for i in range(1, len(times)):
        dt = times[i] - times[i - 1]
        if dt > 0:
            t_out.append(times[i])
            r_out.append((values[i] - values[i - 1]) / dt)
    return t_out, r_out


def run_title(summary, run_dir):
    scenario = summary.get("scenario") if isinstance(summary.get("scenario"), dict) else {}
    name = (summary.get("name") or scenario.get("name")
            or os.path.basename(os.path.normpath(run_dir)))
    parts = [str(name)]
    seed = summary.get("seed", scenario.get("seed"))
    if seed is not None:
        parts.append("seed %s" % seed)
    sha = summary.get("event_log_sha256")
    if isinstance(sha, str):
        parts.append("events %s" % sha[:12])
    return ", ".join(parts)


def plot_metrics(run_dir, out_dir, title, args):
    header, columns = read_metrics(os.path.join(run_dir, "metrics.csv"))
    time_name = TIME_COLUMN if TIME_COLUMN in columns else None
    if time_name is None:
        fail("metrics.csv has no numeric %s column (columns: %s)"
             % (TIME_COLUMN, ", ".join(header)))
    times = columns[time_name]
    if not times:
        print("plot_run.py: metrics.csv has no rows; no metrics.png", file=sys.stderr)
        return None
    forced_gauges = set(filter(None, args.gauges.split(",")))
    forced_counters = set(filter(None, args.counters.split(",")))
    counters, gauges = [], []
    for name in header:
        if name == time_name or name not in columns:
            continue
        values = columns[name]
        counter = name in forced_counters or (
            name not in forced_gauges and is_counter(name, values))
        (counters if counter else gauges).append((name, values))

    panels = []  # (title, ylabel, [(name, times, values)])
    for group in group_by_scale(counters):
        panels.append(("counters (cumulative)", "count", [(n, times, v) for n, v in group]))
    rate_series = [(n,) + rates(times, v) for n, v in counters]
    for group in group_by_scale([(n, r) for n, _, r in rate_series]):
        names = {n for n, _ in group}
        series = [s for s in rate_series if s[0] in names]
        panels.append(("counters as rates", "per second", series))
    for group in group_by_scale(gauges):
        panels.append(("gauges", "value", [(n, times, v) for n, v in group]))
    if not panels:
        print("plot_run.py: metrics.csv has only %s; no metrics.png" % time_name, file=sys.stderr)
        return None

    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.8 * len(panels) + 0.8), sharex=True,
                             squeeze=False)
    for ax, (panel_title, ylabel, series) in zip(axes[:, 0], panels):
        for name, t, v in series:
            ax.plot(t, v, label=name, linewidth=1.2, marker="." if len(t) < 40 else None)
        ax.set_title(panel_title, fontsize=10, loc="left")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    path = os.path.join(out_dir, "metrics.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_events(run_dir, out_dir, title, top=8, bins=60):
    path_in = os.path.join(run_dir, "events.jsonl")
    if not os.path.exists(path_in):
        return None
    raw_kinds = collections.Counter()
    raw_times = collections.defaultdict(list)
    ev_search, t_match = EV_RE.search, T_RE.match
    with open(path_in, "rb") as f:
        for line in f:
            m = ev_search(line)
            if not m:
                continue
            raw = m.group(1)
            raw_kinds[raw] += 1
            t = t_match(line)
            if t:
                raw_times[raw].append(int(t.group(1)))
    # Kinds are JSON-escaped in the file; decode each distinct one once.
    kinds = collections.Counter()
    times = collections.defaultdict(list)
    for raw, n in raw_kinds.items():
        kind = json.loads(b'"' + raw + b'"')
        kinds[kind] += n
        times[kind].extend(t * 1e-9 for t in raw_times[raw])
    if not kinds:
        print("plot_run.py: events.jsonl has no events; no events.png", file=sys.stderr)
        return None

    ordered = kinds.most_common()
    fig, (ax_hist, ax_time) = plt.subplots(
        2, 1, figsize=(10, max(4.0, 0.3 * len(ordered) + 1.5) + 3.5),
        gridspec_kw={"height_ratios": [max(1.5, 0.3 * len(ordered)), 3]})
    labels = [k for k, _ in ordered][::-1]
    counts = [c for _, c in ordered][::-1]
    bars = ax_hist.barh(labels, counts, color="tab:blue")
    ax_hist.bar_label(bars, labels=["{:,}".format(c) for c in counts], fontsize=8, padding=2)
    if counts and max(counts) > 100 * max(1, min(counts)):
        ax_hist.set_xscale("log")
    ax_hist.set_xlabel("events")
    ax_hist.set_title("event kinds (%s events)" % "{:,}".format(sum(counts)), fontsize=10,
                      loc="left")

    all_t = [t for ts in times.values() for t in ts]
    if all_t:
        lo, hi = min(all_t), max(all_t)
        width = (hi - lo) / bins if hi > lo else 1.0
        edges = [lo + i * width for i in range(bins + 1)]
        for kind, _ in ordered[:top]:
            ax_time.hist(times[kind], bins=edges, histtype="step", label=kind, linewidth=1.2)
        ax_time.set_xlabel("time (s)")
        ax_time.set_ylabel("events per %.3g s" % width)
        ax_time.set_title("most common kinds over time", fontsize=10, loc="left")
        ax_time.legend(fontsize=8)
        ax_time.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path = os.path.join(out_dir, "events.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_accuracy(summary, out_dir, title):
    """accuracy.png from summary[kind]["curve"] ([{time_s, accuracy}, ...]); None without one."""
    for kind in ("moe", "training"):
        section = summary.get(kind)
        if not isinstance(section, dict):
            continue
        points = [p for p in section.get("curve", [])
                  if isinstance(p, dict) and "time_s" in p and p.get("accuracy") is not None]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([p["time_s"] for p in points], [p["accuracy"] for p in points], marker="o")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.set_title("%s: %s test accuracy" % (title, kind))
        fig.tight_layout()
        path = os.path.join(out_dir, "accuracy.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    return None


def main():
    parser = argparse.ArgumentParser(description="Plot a crowdtrain run folder.")
    parser.add_argument("run_dir", help="folder with summary.json and metrics.csv")
    parser.add_argument("--out", help="folder for the PNGs (default: RUN_DIR)")
    parser.add_argument("--gauges", default="", help="comma-separated columns to plot as gauges")
    parser.add_argument("--counters", default="",
                        help="comma-separated columns to plot as counters")
    args = parser.parse_args()

    run_dir = args.run_dir
    if not os.path.isdir(run_dir):
        fail("%s is not a folder" % run_dir)
    missing = [f for f in ("summary.json", "metrics.csv")
               if not os.path.isfile(os.path.join(run_dir, f))]
    if missing:
        fail("%s lacks %s (is it a run folder?)" % (run_dir, " and ".join(missing)))
    try:
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
    except ValueError as e:
        fail("%s/summary.json is not JSON: %s" % (run_dir, e))
    if not isinstance(summary, dict):
        summary = {}
    out_dir = args.out or run_dir
    os.makedirs(out_dir, exist_ok=True)

    title = run_title(summary, run_dir)
    written = [p for p in (plot_metrics(run_dir, out_dir, title, args),
                           plot_events(run_dir, out_dir, title),
                           plot_accuracy(summary, out_dir, title)) if p]
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
