#!/usr/bin/python3
"""Prints a run's learning curve as CSV.

Usage: /usr/bin/python3 analysis/summary_curve.py RUN_DIR KIND > curve.csv

Reads RUN_DIR/summary.json and writes KIND's curve (summary[KIND]["curve"], e.g. KIND = moe or
training) as CSV on stdout: one row per evaluation, the columns every point has (time_s first).
Exit 2 when the folder has no such curve.
"""

import csv
import json
import os
import sys


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = os.path.join(sys.argv[1], "summary.json")
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        print("summary_curve.py: %s: %s" % (path, e), file=sys.stderr)
        return 2
    curve = (summary.get(sys.argv[2]) or {}).get("curve") or []
    if not curve:
        print("summary_curve.py: %s has no %s.curve" % (path, sys.argv[2]), file=sys.stderr)
        return 2
    columns = [c for c in curve[0] if all(c in p for p in curve)]
    columns.sort(key=lambda c: (c != "time_s", c))
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(columns)
    for p in curve:
        out.writerow([p[c] for c in columns])
    return 0


if __name__ == "__main__":
    sys.exit(main())
