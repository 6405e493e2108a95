#!/usr/bin/python3
"""The default scenarios' network data, derived from the measurements shipped in scenarios/data/
(provenance: scenarios/data/README.md). One command remakes both and `--check` proves the shipped
files and scenarios hold what it makes (tests/analysis_test.sh runs it):

  rtt        scenarios/data/world_regions_rtt.csv: the 11 world regions' round-trip times, from
             Azure's measured median inter-region RTTs (azure_rtt_p50_2026-07-30.csv): each world
             region stands for one Azure region (REGIONS below), each pair the mean of its two
             directions rounded half up, the diagonal 0.
  bandwidth  the upload and download percentile tables of the scenarios that model home links
             (network.upload_mbps / download_mbps {"dist": "percentiles"}): M-Lab NDT speed tests of
             October 2025 (mlab_ndt_country_percentiles_2025_10.csv), every country's tests pooled:
             the mixture of the per-country distributions weighted by their test counts, each
             country's quantile function linear between its published percentiles (p1 .. p99); the
             pooled table's tails held at its p1 and p99.

usage: analysis/region_data.py [--check]   (without --check: rewrites world_regions_rtt.csv and
       prints the bandwidth tables; the scenarios listed in BANDWIDTH_SCENARIOS must hold them)
"""
import argparse
import csv
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "scenarios", "data")
AZURE = os.path.join(DATA, "azure_rtt_p50_2026-07-30.csv")
MLAB = os.path.join(DATA, "mlab_ndt_country_percentiles_2025_10.csv")
RTT_OUT = os.path.join(DATA, "world_regions_rtt.csv")

# world region -> the Azure region that stands for it
REGIONS = [
    ("us-east", "East US"), ("us-west", "West US 2"), ("south-america", "Brazil South"),
    ("europe-west", "West Europe"), ("europe-east", "Poland Central"),
    ("africa-south", "South Africa North"), ("middle-east", "UAE North"),
    ("india", "Central India"), ("east-asia", "Japan East"),
    ("southeast-asia", "Southeast Asia"), ("oceania", "Australia East"),
]
PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 99]
QUANTILES = [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]
# The scenarios whose home links follow the measured distribution (the others set their links on
# purpose: a data centre's, a fixed rate for a protocol's cost, a tiny swarm's).
BANDWIDTH_SCENARIOS = ["probe_world.json", "dht_100k.json", "dht_churn_1k.json",
                       "message_100k.json", "packet_2k.json"]


def rtt_matrix():
    with open(AZURE) as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    col = {n: i for i, n in enumerate(names)}
    value = {r[0]: r[1:] for r in rows[1:]}
    out = []
    for a, az_a in REGIONS:
        row = []
        for b, az_b in REGIONS:
            if a == b:
                row.append(0)
                continue
            ab = float(value[az_a][col[az_b]])
            ba = float(value[az_b][col[az_a]])
            row.append(int(math.floor((ab + ba) / 2 + 0.5)))
        out.append(row)
    return out


def rtt_csv_text():
    lines = [
        "# Median (P50) round-trip times in ms between 11 world regions, each an Azure region (mapping:",
        "# analysis/region_data.py), from Microsoft's \"Azure network round-trip latency statistics\"",
        "# (30 days ending 2026-07-30; CC BY 4.0; scenarios/data/README.md). Changed: 11 of its 54",
        "# regions, each pair the mean of its two directions rounded half up, diagonal 0. Made by",
        "# analysis/region_data.py from azure_rtt_p50_2026-07-30.csv.",
        "," + ",".join(r for r, _ in REGIONS),
    ]
    for (name, _), row in zip(REGIONS, rtt_matrix()):
        lines.append(name + "," + ",".join(str(v) for v in row))
    return "\n".join(lines) + "\n"


def country_quantiles(direction):
    """[(tests, [(q, value), ...])] per country for 'down' or 'up'."""
    out = []
    with open(MLAB) as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            n = int(row["n_download_tests" if direction == "down" else "n_upload_tests"])
            vals = [float(row[f"{direction}_p{p}"]) for p in PERCENTILES]
            if n <= 0 or any(math.isnan(v) for v in vals):
                continue
            points = [(0.0, vals[0])] + [(p / 100, v) for p, v in zip(PERCENTILES, vals)]
            points.append((1.0, vals[-1]))
            out.append((n, points))
    return out


def cdf(points, x):
    """A country's F(x): the inverse of its piecewise-linear quantile function."""
    if x < points[0][1]:
        return 0.0
    if x >= points[-1][1]:
        return 1.0
    for (q0, v0), (q1, v1) in zip(points, points[1:]):
        if v0 <= x < v1:
            return q0 + (q1 - q0) * (x - v0) / (v1 - v0)
    return 1.0


def pooled_table(direction):
    countries = country_quantiles(direction)
    total = sum(n for n, _ in countries)
    lo = min(p[0][1] for _, p in countries)
    hi = max(p[-1][1] for _, p in countries)

    def mixture(x):
        return sum(n * cdf(p, x) for n, p in countries) / total

    def quantile(q):
        a, b = lo, hi
        for _ in range(100):  # bisection on the mixture's CDF
            m = (a + b) / 2
            a, b = (m, b) if mixture(m) < q else (a, m)
        return float(f"{b:.3g}") if b < 100 else round(b)

    # The pooled tails are held at its p1 and p99, as each country's are.
    table = [[q, quantile(min(max(q, 0.01), 0.99))] for q in QUANTILES]
    return table


def tables():
    return {"upload_mbps": {"dist": "percentiles", "table": pooled_table("up")},
            "download_mbps": {"dist": "percentiles", "table": pooled_table("down")}}


def check():
    problems = []
    with open(RTT_OUT) as f:
        if f.read() != rtt_csv_text():
            problems.append(f"{RTT_OUT} differs from what analysis/region_data.py makes")
    want = tables()
    for name in BANDWIDTH_SCENARIOS:
        with open(os.path.join(ROOT, "scenarios", name)) as f:
            net = json.load(f).get("network", {})
        for key in ("upload_mbps", "download_mbps"):
            if net.get(key) != want[key]:
                problems.append(f"scenarios/{name}: network.{key} is not the M-Lab table")
    for p in problems:
        print("region_data: " + p, file=sys.stderr)
    return 1 if problems else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    if args.check:
        sys.exit(check())
    with open(RTT_OUT, "w") as f:
        f.write(rtt_csv_text())
    t = tables()
    print('"upload_mbps": ' + json.dumps(t["upload_mbps"]) + ",")
    print('"download_mbps": ' + json.dumps(t["download_mbps"]) + ",")


if __name__ == "__main__":
    main()
