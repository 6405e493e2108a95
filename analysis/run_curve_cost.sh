#!/usr/bin/env bash
# CurveZMQ's cost on a live all-reduce (issue 14): 4 `crowdtrain live` peers started by
# `crowdtrain launch` on plain loopback (--no-netns: no shaping, so the all-reduce is bound by the
# CPU, where encryption costs), Moshpit All-Reduce of 10,000,000 float32 values each on a 2x2 grid
# (groups of 2), three rounds; once plain, once with --secure (CurveZMQ on every socket, a swarm
# key). Appends a row per mode to docs/results/curve_cost.csv
# (date,mode,peers,values,allreduces,allreduce_ms_p50,allreduce_ms_mean) and prints secure / plain.
# usage: analysis/run_curve_cost.sh [CROWDTRAIN_BIN] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/crowdtrain}")
OUT=${2:-runs/curve_cost}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SETS=(--set peers.count=4 --set workload.averaging.grid_size=2 --set workload.averaging.grid_dims=2
      --set workload.averaging.vector_size=10000000 --set workload.averaging.first_round_s=16
      --set workload.averaging.allreduce_timeout_s=6 --set workload.averaging.round_interval_s=9
      --set workload.averaging.matchmaking_timeout_s=1.9
      --set workload.averaging.rounds=3 --set duration_s=44)
rm -rf "$OUT" && mkdir -p "$OUT"
"$PY" net/launch.py --bin "$BIN" scenarios/moshpit_live_8.json --no-netns "${SETS[@]}" \
  --out "$OUT/plain"
"$PY" net/launch.py --bin "$BIN" scenarios/moshpit_live_8.json --no-netns --secure "${SETS[@]}" \
  --out "$OUT/secure"
"$PY" - "$OUT" <<'PYEOF'
import csv, datetime, json, os, statistics, sys
out = sys.argv[1]
rows = {}
for mode in ("plain", "secure"):
    ms = [e["ms"] for e in map(json.loads, open(f"{out}/{mode}/events.jsonl"))
          if e.get("ev") == "allreduce_done" and e.get("left_out", 0) == 0]
    rows[mode] = [mode, 4, 10000000, len(ms), statistics.median(ms), statistics.mean(ms)]
path = "docs/results/curve_cost.csv"
new = not os.path.exists(path)
with open(path, "a", newline="") as f:
    w = csv.writer(f)
    if new:
        w.writerow(["date", "mode", "peers", "values", "allreduces", "allreduce_ms_p50",
                    "allreduce_ms_mean"])
    for r in rows.values():
        w.writerow([datetime.date.today().isoformat()] + [f"{x:.4g}" if isinstance(x, float) else x for x in r])
        print(r)
print(f"all-reduce p50: secure / plain = {rows['secure'][4] / rows['plain'][4]:.3f}")
PYEOF
