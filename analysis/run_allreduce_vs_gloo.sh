#!/usr/bin/env bash
# Issue 14's comparison: 10M float32 all-reduced between 2 and between 4 processes on loopback,
# our live butterfly all-reduce (crowdtrain launch of scenarios/allreduce_live_10m.json, plain and
# CurveZMQ) against gloo's ring and halving-doubling all-reduce (build/tests/gloo_allreduce), in one
# invocation, one after another. Six repetitions each; per repetition the slowest process's time
# (ours: the allreduce_done event's ms, the all-reduce alone, after matchmaking; gloo: after a
# barrier). Writes docs/results/allreduce_vs_gloo.csv (every repetition) and prints the medians
# without the first repetition (connections and first-touch page faults).
# usage: analysis/run_allreduce_vs_gloo.sh [BUILD_DIR] [OUT_CSV]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
OUT=${2:-$ROOT/docs/results/allreduce_vs_gloo.csv}
FLOATS=10000000
REPS=6
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ct-gloo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1

echo "impl,processes,floats,rep,ms" >"$WORK/rows.csv"
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
    if e["local"] != 0 or e["left_out"] or e["reducers_failed"]:
        sys.exit(f"round {e['round']}: peer {e['peer']} did not average everything: {e}")
    rounds.setdefault(e["round"], []).append(e["ms"])
for rep, r in enumerate(sorted(rounds)):
    if len(rounds[r]) != n:
        sys.exit(f"round {r}: {len(rounds[r])} of {n} peers finished the all-reduce")
    print(f"crowdtrain_{mode},{n},{floats},{rep},{max(rounds[r]):.3f}")
PYEOF
}
for n in 2 4; do
  gloo ring "$n"
  gloo halving_doubling "$n"
  ours plain "$n"
  ours curve "$n"
done
mkdir -p "$(dirname "$OUT")"
cp "$WORK/rows.csv" "$OUT"
/usr/bin/python3 - "$OUT" <<'PYEOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{'impl':<26}{'processes':>10}{'median ms':>11}{'reps':>6}")
for key in sorted({(r["impl"], int(r["processes"])) for r in rows}, key=lambda k: (k[1], k[0])):
    ms = [float(r["ms"]) for r in rows if (r["impl"], int(r["processes"])) == key and r["rep"] != "0"]
    print(f"{key[0]:<26}{key[1]:>10}{statistics.median(ms):>11.1f}{len(ms):>6}")
PYEOF
echo "wrote $OUT"
