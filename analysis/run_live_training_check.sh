#!/usr/bin/env bash
# Moshpit SGD live against the simulator on a small run (issue 14, "live training forms too few
# groups"): scenarios/moshpit_sgd_mnist.json with 4 peers on a 2x2 grid for 60 s, churn off (live
# mode does not replay churn), run
#   live: 4 `crowdtrain live` processes on loopback, one timeline, each training flat out;
#   sim:  the simulated world on the same scenario;
# and counts, in each, the peer-rounds that averaged in a group (averaging_groups) against those
# that found none (averaging_no_group) or whose all-reduce failed (averaging_allreduce_failed),
# summed over the peers' summary.json. Prints both and appends a row to
# docs/results/live_training_groups.csv
# (date,variant,world,peers,groups,no_group,allreduce_failed,train_steps; VARIANT=name tags the
# rows, default "current").
# usage: analysis/run_live_training_check.sh [CROWDTRAIN_BIN] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/crowdtrain}")
OUT=${2:-runs/live_training_check}
SCENARIO=scenarios/moshpit_sgd_mnist.json
N=4
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
rm -rf "$OUT" && mkdir -p "$OUT"
sets=(--set "peers.count=$N" --set duration_s=60 --set workload.training.grid_size=2
      --set 'churn={"model": "none"}')

"$BIN" run "$SCENARIO" "${sets[@]}" --quiet --out "$OUT/sim" >/dev/null

source analysis/live_peers.sh
run_live_peers "$BIN" "$SCENARIO" "$N" "$OUT" "${sets[@]}"

"$PY" - "$OUT" "$N" "${VARIANT:-current}" <<'PYEOF'
import csv, datetime, json, os, sys
out, n, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3]
NAMES = ("averaging_groups", "averaging_no_group", "averaging_allreduce_failed", "train_steps")

def counters(summary):
    """The run's counters: summary.json's "counters" block."""
    c = summary.get("counters", {})
    return {k: int(c.get(k, 0)) for k in NAMES}

def add(a, b):
    return {k: a[k] + b[k] for k in NAMES}

sim = counters(json.load(open(f"{out}/sim/summary.json")))
live = {k: 0 for k in NAMES}
for i in range(n):
    live = add(live, counters(json.load(open(f"{out}/live/peer{i}/summary.json"))))
path = "docs/results/live_training_groups.csv"
new = not os.path.exists(path)
with open(path, "a", newline="") as f:
    w = csv.writer(f)
    if new:
        w.writerow(["date", "variant", "world", "peers", "groups", "no_group", "allreduce_failed",
                    "train_steps"])
    for world, c in (("sim", sim), ("live", live)):
        rounds = c["averaging_groups"] + c["averaging_no_group"] + c["averaging_allreduce_failed"]
        print(f"{world}: {c['averaging_groups']} of {rounds} peer-rounds averaged in a group "
              f"({c['averaging_no_group']} without a group, {c['averaging_allreduce_failed']} "
              f"failed all-reduces), {c['train_steps']} training steps")
        w.writerow([datetime.date.today().isoformat(), variant, world, n, c["averaging_groups"],
                    c["averaging_no_group"], c["averaging_allreduce_failed"], c["train_steps"]])
print(path)
PYEOF
