#!/usr/bin/python3
"""The table of docs/reliability.md from swarm CSVs (`crowdtrain swarm` writes OUT/swarm.csv).

usage: analysis/swarm_table.py NAME=CSV [NAME=CSV ...]
prints one markdown row per CSV: seeds, verdicts, faults drawn by kind, invariant checks made.
"""
import csv
import sys
from collections import Counter


def row(name, path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    verdicts = Counter(r["verdict"] for r in rows)
    kinds = {k: sum(int(r[k]) for r in rows) for k in ("kills", "partitions", "clogs", "losses")}
    checks = sum(int(r["invariant_checks"]) for r in rows)
    failed = len(rows) - verdicts.get("passed", 0)
    others = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items()) if v != "passed")
    return (f"| {name} | {len(rows):,} | {verdicts.get('passed', 0):,} | {failed:,}"
            f"{' (' + others + ')' if others else ''} | {kinds['kills']:,} | {kinds['partitions']:,} | "
            f"{kinds['clogs']:,} | {kinds['losses']:,} | {checks:,} |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print("| workload | seeds | passed | failed | kills | partitions | clogs | loss bursts | invariant checks |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        name, path = arg.split("=", 1)
        print(row(name, path))


if __name__ == "__main__":
    main()
