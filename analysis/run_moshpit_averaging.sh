#!/usr/bin/env bash
# The Moshpit paper's averaging experiment through the real protocol in the simulated world:
# N in {512, 768, 900, 1024} peers x failure probability p in {0, 0.001, 0.005, 0.01} x RESTARTS
# seeds, each a run of scenarios/moshpit_averaging.json (32x32 grid, matchmaking through the DHT,
# butterfly all-reduce) with --set overrides and --seed. Each run's summary.json goes to
# OUT/n<N>_p<P>_s<SEED>/; then plot_moshpit_averaging.py writes docs/results/moshpit_averaging.csv
# and docs/moshpit_averaging.png.
#
# usage: analysis/run_moshpit_averaging.sh [CROWDTRAIN_BIN] [RESTARTS] [OUT]
#   defaults: build/crowdtrain, 10, runs/moshpit_averaging. JOBS=k runs k simulations at once.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/crowdtrain}
RESTARTS=${2:-10}
OUT=${3:-runs/moshpit_averaging}
JOBS=${JOBS:-1}
NS=${NS:-"512 768 900 1024"}
PS=${PS:-"0 0.001 0.005 0.01"}
mkdir -p "$OUT"

run_one() {
  local n=$1 p=$2 seed=$3 dir="$OUT/n$1_p$2_s$3"
  [[ -f "$dir/summary.json" ]] && return 0
  "$BIN" run scenarios/moshpit_averaging.json --quiet --seed "$seed" --out "$dir" \
    --set peers.count="$n" --set workload.averaging.failure_prob="$p" >/dev/null
  echo "done n=$n p=$p seed=$seed" >&2
}

for n in $NS; do
  for p in $PS; do
    for seed in $(seq 1 "$RESTARTS"); do
      run_one "$n" "$p" "$seed" &
      while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n; done
    done
  done
done
wait
/usr/bin/python3 analysis/plot_moshpit_averaging.py "$OUT" \
  --csv docs/results/moshpit_averaging.csv --png docs/moshpit_averaging.png
