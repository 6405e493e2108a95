#!/usr/bin/env bash
# Checks the simulator against reality on one throughput configuration
# (scenarios/dmoe_throughput_live.json): the same scenario runs
#   live: 4 `crowdtrain live` processes on loopback (2 expert servers computing the real blocks with
#         LibTorch, 2 trainer peers with 2 chain trainers each; network.delay_ms injected by the live
#         transport), throughput = the trainers' block samples / layers / (duration - warm-up);
#   sim:  the simulated world with timing-only numerics and the servers' flops_per_s measured by
#         `crowdtrain calibrate` on this machine just before;
# and prints both with their ratio, appending a row to docs/results/dmoe_live_check.csv
# (date,config,calibrated_flops_per_s,sim_samples_per_s,live_samples_per_s,live_over_sim).
# usage: analysis/run_dmoe_live_check.sh [CROWDTRAIN_BIN] [OUT_DIR]  (VARIANT=name tags the row;
# extra --set overrides for both worlds in SETS, e.g. SETS="workload.moe.chain.backward=true")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/crowdtrain}")
OUT=${2:-runs/dmoe_live_check}
SCENARIO=scenarios/dmoe_throughput_live.json
VARIANT=${VARIANT:-forward}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
rm -rf "$OUT" && mkdir -p "$OUT"
sets=()
for s in ${SETS:-}; do sets+=(--set "$s"); done

# 1. The device model: this CPU on this scenario's block (forward rate, or the step rate when the
#    chain runs the backward too).
"$BIN" calibrate "$SCENARIO" "${sets[@]}" --reps 7 > "$OUT/calibration.csv"
phase=forward
for s in ${SETS:-}; do [ "$s" = "workload.moe.chain.backward=true" ] && phase=step; done
FLOPS=$(awk -F, -v p="$phase" '$9 == p { print $12 }' "$OUT/calibration.csv")
echo "calibrated $phase flops_per_s: $FLOPS" >&2

# 2. The prediction.
"$BIN" run "$SCENARIO" "${sets[@]}" --quiet --out "$OUT/sim" \
  --set workload.moe.numerics=timing --set "peers.classes[0].flops_per_s=$FLOPS" >/dev/null

# 3. Reality: every peer on one timeline starting 3 s from now.
N=$("$PY" -c "import json; print(json.load(open('$SCENARIO'))['peers']['count'])")
for s in ${SETS:-}; do case $s in peers.count=*) N=${s#peers.count=} ;; esac; done
source analysis/live_peers.sh
run_live_peers "$BIN" "$SCENARIO" "$N" "$OUT" "${sets[@]}"

# 4. Compare.
"$PY" - "$OUT" "$N" "$FLOPS" "$VARIANT" <<'PYEOF'
import csv, datetime, json, os, sys
out, n, flops, variant = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sim = json.load(open(f"{out}/sim/summary.json"))["moe"]["throughput"]
block_samples, failures = 0, 0
for i in range(n):
    s = json.load(open(f"{out}/live/peer{i}/summary.json"))
    c = s["moe"]["counters"]
    block_samples += c.get("moe_chain_block_samples", 0)
    failures += c.get("moe_chain_failures", 0)
phases = 2 if sim["backward"] else 1
live = block_samples / (sim["layers"] * phases) / sim["window_s"]
ratio = live / sim["samples_per_s"]
print(f"sim  {sim['samples_per_s']:.1f} samples/s (failures {sim['failures']})")
print(f"live {live:.1f} samples/s (failures {failures})")
print(f"live / sim = {ratio:.3f}")
path = "docs/results/dmoe_live_check.csv"
new = not os.path.exists(path)
with open(path, "a", newline="") as f:
    w = csv.writer(f)
    if new:
        w.writerow(["date", "config", "calibrated_flops_per_s", "sim_samples_per_s",
                    "live_samples_per_s", "live_over_sim"])
    w.writerow([datetime.date.today().isoformat(), variant, f"{flops:.4g}",
                f"{sim['samples_per_s']:.2f}", f"{live:.2f}", f"{ratio:.3f}"])
print(path)
PYEOF
