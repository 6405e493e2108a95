#!/usr/bin/env bash
# Issue 14's comparison: 10M float32 all-reduced between 2 and between 4 processes on loopback,
# our butterfly all-reduce against gloo's ring and halving-doubling all-reduce, in one invocation,
# one after another, in the same harness (build/tests/allreduce_processes, plain and CurveZMQ, and
# build/tests/gloo_allreduce: one process per rank, a barrier before each repetition, the slowest
# rank's time). Besides, the same all-reduce inside the live averaging workload
# (crowdtrain launch of scenarios/allreduce_live_10m.json: matchmaking through the DHT first, no
# barrier, the allreduce_done event's ms; crowdtrain_launch_*), and the simulator's prediction for
# that scenario (10 Gb/s links standing for loopback, its compute cost model; simulator). Ten repetitions each (six rounds
# for the launches). Writes docs/results/allreduce_vs_gloo.csv (every repetition; complete = 0
# when some peer left part of the vector unaveraged) and prints the medians of the complete
# repetitions without the first (connections and first-touch page faults).
# usage: analysis/run_allreduce_vs_gloo.sh [BUILD_DIR] [OUT_CSV]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
OUT=${2:-$ROOT/docs/results/allreduce_vs_gloo.csv}
FLOATS=10000000
REPS=10
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ct-gloo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1
PORT=$((30000 + ($$ % 1000) * 40))

echo "impl,processes,floats,rep,ms,complete" >"$WORK/rows.csv"
gloo() {  # $1 algorithm, $2 processes
  local store="$WORK/store-$1-$2" r pids=()
  mkdir -p "$store"
  for r in $(seq 0 $(($2 - 1))); do
    "$BUILD/tests/gloo_allreduce" "$r" "$2" "$store" "$FLOATS" "$REPS" "$1" >>"$WORK/rows.csv" &
    pids+=($!)
  done
  for r in "${pids[@]}"; do wait "$r"; done
}
ours() {  # $1 plain|curve, $2 processes
  PORT=$((PORT + 10))
  local keys="$WORK/keys-$1-$2" r pids=() port=$PORT
  mkdir -p "$keys"
  for r in $(seq 0 $(($2 - 1))); do
    "$BUILD/tests/allreduce_processes" "$r" "$2" "$port" "$keys" "$FLOATS" "$REPS" "$1" \
      >>"$WORK/rows.csv" &
    pids+=($!)
  done
  for r in "${pids[@]}"; do wait "$r"; done
}
launched() {  # $1 plain|curve, $2 processes
  local out="$WORK/launch-$1-$2" secure=()
  [ "$1" = curve ] && secure=(--secure)
  /usr/bin/python3 "$ROOT/net/launch.py" --bin "$BUILD/crowdtrain" \
    "$ROOT/scenarios/allreduce_live_10m.json" --processes "$2" --no-netns "${secure[@]}" \
    --out "$out" >"$WORK/launch-$1-$2.log" 2>&1 || { cat "$WORK/launch-$1-$2.log" >&2; exit 1; }
  /usr/bin/python3 - "$out/events.jsonl" "$1" "$2" "$FLOATS" >>"$WORK/rows.csv" <<'PYEOF'
import json, sys
path, mode, n, floats = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rounds = {}
for line in open(path):
    e = json.loads(line)
    if e.get("ev") != "allreduce_done":
        continue
    r = rounds.setdefault(e["round"], {"ms": [], "complete": True})
    r["ms"].append(e["ms"])
    r["complete"] &= e["local"] == 0 and not e["left_out"] and not e["reducers_failed"]
for rep, k in enumerate(sorted(rounds)):
    r = rounds[k]
    complete = int(r["complete"] and len(r["ms"]) == n)
    print(f"crowdtrain_launch_{mode},{n},{floats},{rep},{max(r['ms']):.3f},{complete}")
PYEOF
}
simulated() {  # $1 processes: the simulator's prediction on the same scenario (its cost model)
  "$BUILD/crowdtrain" run "$ROOT/scenarios/allreduce_live_10m.json" --set peers.count="$1" \
    --out "$WORK/sim-$1" --quiet >/dev/null
  /usr/bin/python3 - "$WORK/sim-$1/events.jsonl" "$1" "$FLOATS" >>"$WORK/rows.csv" <<'PYEOF'
import json, sys
path, n, floats = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rounds = {}
for line in open(path):
    e = json.loads(line)
    if e.get("ev") == "allreduce_done":
        rounds.setdefault(e["round"], []).append((e["ms"], e["local"] == 0))
for rep, k in enumerate(sorted(rounds)):
    ms = max(m for m, _ in rounds[k])
    print(f"simulator,{n},{floats},{rep},{ms:.3f},{int(all(c for _, c in rounds[k]) and len(rounds[k]) == n)}")
PYEOF
}
for n in 2 4; do
  simulated "$n"
  gloo ring "$n"
  gloo halving_doubling "$n"
  ours plain "$n"
  ours curve "$n"
  launched plain "$n"
  launched curve "$n"
done
mkdir -p "$(dirname "$OUT")"
cp "$WORK/rows.csv" "$OUT"
/usr/bin/python3 - "$OUT" <<'PYEOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{'impl':<26}{'processes':>10}{'median ms':>11}{'reps':>6}{'incomplete':>12}")
for key in sorted({(r["impl"], int(r["processes"])) for r in rows}, key=lambda k: (k[1], k[0])):
    mine = [r for r in rows if (r["impl"], int(r["processes"])) == key]
    ms = [float(r["ms"]) for r in mine if r["rep"] != "0" and r["complete"] == "1"]
    bad = sum(r["complete"] != "1" for r in mine)
    med = f"{statistics.median(ms):>11.1f}" if ms else f"{'-':>11}"
    print(f"{key[0]:<26}{key[1]:>10}{med}{len(ms):>6}{bad:>12}")
PYEOF
echo "wrote $OUT"
