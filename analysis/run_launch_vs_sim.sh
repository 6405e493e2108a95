#!/usr/bin/env bash
# The simulator against the launcher's live swarm (issue 14, "the simulator predicts live"):
# Moshpit All-Reduce of 16 peers (scenarios/moshpit_live_8.json with 16 peers on a 4x4 grid,
# 1,000,000 float32 values each, groups of 4), every access link 50 Mb/s each way, run
#   sim:    the simulated world (message level, the links as the scenario says);
#   launch: `crowdtrain launch` as root: 16 processes, each in its own network namespace with
#           its links shaped to 50 Mb/s by tbf (plain loopback, unshaped, without root: then the
#           comparison says so);
# The first round is at 20 s: each process draws every peer's 1,000,000 values to know the true
# mean (about 16 s of start-up for 16 processes on 2 cores). It compares the all-reduce durations (every peer's allreduce_done events), the groups formed
# and the error of the peers' vectors after each round. Appends rows to docs/results/launch_vs_sim.csv
# (date,world,network,peers,groups,no_group,allreduces,allreduce_ms_p50,allreduce_ms_mean,mse_r1,
# mse_r2,mse_r3) and prints them.
# usage: analysis/run_launch_vs_sim.sh [CROWDTRAIN_BIN] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/crowdtrain}")
OUT=${2:-runs/launch_vs_sim}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SCENARIO=scenarios/moshpit_live_8.json
# Variants through the environment: PEERS (16), GRID (4) and DIMS (2) for the grid, MBPS (50) for
# the links, SIM_MBPS (default MBPS) for the simulator's links alone.
N=${PEERS:-16}
MBPS=${MBPS:-50}
SIM_MBPS=${SIM_MBPS:-$MBPS}
SETS=(--set "peers.count=$N" --set "workload.averaging.grid_size=${GRID:-4}"
      --set "workload.averaging.grid_dims=${DIMS:-2}" --set workload.averaging.vector_size=1000000
      --set "network.upload_mbps=$MBPS" --set "network.download_mbps=$MBPS"
      --set workload.averaging.allreduce_timeout_s=5 --set workload.averaging.round_interval_s=8
      --set workload.averaging.rounds=3 --set workload.averaging.first_round_s=20
      --set duration_s=46)
rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN" run "$SCENARIO" "${SETS[@]}" --set "network.upload_mbps=$SIM_MBPS" \
  --set "network.download_mbps=$SIM_MBPS" --quiet --out "$OUT/sim" >/dev/null
"$PY" net/launch.py --bin "$BIN" "$SCENARIO" --processes "$N" "${SETS[@]}" --out "$OUT/launch"

"$PY" - "$OUT" "$N" "$MBPS" "$SIM_MBPS" <<'PYEOF'
import csv, datetime, glob, json, os, statistics, sys
out, n, mbps, sim_mbps = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def allreduce_ms(events_path):
    ms = []
    for line in open(events_path):
        e = json.loads(line)
        if e.get("ev") == "allreduce_done" and e.get("left_out", 0) == 0:
            ms.append(e["ms"])
    return ms

def counters_of(summaries):
    c = {}
    for s in summaries:
        for k, v in s.get("counters", {}).items():
            c[k] = c.get(k, 0) + v
    return c

rows = []
sim = json.load(open(f"{out}/sim/summary.json"))
sim_mse = {p["round"]: p["mse"] for p in sim["averaging"]["mse_by_round"]}
ms = allreduce_ms(f"{out}/sim/events.jsonl")
c = sim["counters"]
rows.append(["sim", f"message level, {sim_mbps} Mb/s links", n, c.get("averaging_groups", 0),
             c.get("averaging_no_group", 0), len(ms), statistics.median(ms), statistics.mean(ms),
             sim_mse.get(1), sim_mse.get(2), sim_mse.get(3)])
launch = json.load(open(f"{out}/launch/summary.json"))
peers = [json.load(open(p)) for p in glob.glob(f"{out}/launch/peer*/inc0/summary.json")]
mse = {}
for s in peers:
    for p in s["averaging"]["mse_by_round"]:
        mse.setdefault(p["round"], []).append(p["mse"])
ms = allreduce_ms(f"{out}/launch/events.jsonl")
c = counters_of(peers)
net = (f"namespaces, {mbps} Mb/s to a TCP stream (tbf {float(mbps) / 0.92:.1f})"
       if launch.get("links_mbps") else "loopback, unshaped")
rows.append(["launch", net, n, c.get("averaging_groups", 0), c.get("averaging_no_group", 0),
             len(ms), statistics.median(ms) if ms else None, statistics.mean(ms) if ms else None,
             *[statistics.mean(mse[r]) if r in mse else None for r in (1, 2, 3)]])
path = "docs/results/launch_vs_sim.csv"
new = not os.path.exists(path)
today = datetime.date.today().isoformat()
with open(path, "a", newline="") as f:
    w = csv.writer(f)
    if new:
        w.writerow(["date", "world", "network", "peers", "groups", "no_group", "allreduces",
                    "allreduce_ms_p50", "allreduce_ms_mean", "mse_r1", "mse_r2", "mse_r3"])
    for r in rows:
        w.writerow([today] + [f"{x:.4g}" if isinstance(x, float) else x for x in r])
        print(r)
if rows[0][6] and rows[1][6]:
    print(f"all-reduce p50: launch / sim = {rows[1][6] / rows[0][6]:.3f}")
PYEOF
