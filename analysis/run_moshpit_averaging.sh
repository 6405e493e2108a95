#!/usr/bin/env bash
# The Moshpit paper's averaging experiment through the real protocols in the simulated world:
# method in {moshpit, allreduce, gossip, pushsum, random_groups} x N in {512, 768, 900, 1024} peers
# x failure probability p in {0, 0.001, 0.005, 0.01} x RESTARTS seeds, each a run of
# scenarios/moshpit_averaging.json (moshpit: 32x32 grid, matchmaking through the DHT, butterfly
# all-reduce; the others: workload.averaging.method) with --set overrides and --seed. Each run's
# summary.json goes to OUT/<method>/n<N>_p<P>_s<SEED>/; then plot_moshpit_averaging.py writes
# docs/results/moshpit_averaging.csv and docs/moshpit_averaging.png.
#
# usage: analysis/run_moshpit_averaging.sh [CROWDTRAIN_BIN] [RESTARTS] [OUT]
#   defaults: build/crowdtrain, 10, runs/moshpit_averaging. JOBS=k runs k simulations at once;
#   METHODS, NS, PS and SEEDS (space-separated; SEEDS defaults to 1..RESTARTS) narrow the sweep,
#   e.g. to split it between machines or processes writing to one OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/crowdtrain}
RESTARTS=${2:-10}
OUT=${3:-runs/moshpit_averaging}
JOBS=${JOBS:-1}
METHODS=${METHODS:-"moshpit allreduce gossip pushsum random_groups"}
NS=${NS:-"512 768 900 1024"}
PS=${PS:-"0 0.001 0.005 0.01"}
SEEDS=${SEEDS:-$(seq 1 "$RESTARTS")}
mkdir -p "$OUT"

run_one() {
  local m=$1 n=$2 p=$3 seed=$4 dir="$OUT/$1/n$2_p$3_s$4"
  [[ -f "$dir/summary.json" ]] && return 0
  "$BIN" run scenarios/moshpit_averaging.json --quiet --seed "$seed" --out "$dir" \
    --set workload.averaging.method="$m" --set peers.count="$n" \
    --set workload.averaging.failure_prob="$p" >/dev/null
  echo "done method=$m n=$n p=$p seed=$seed" >&2
}

# Seeds outermost: an interrupted sweep still covers every configuration evenly (rerun to resume;
# finished runs are skipped).
for seed in $SEEDS; do
  for m in $METHODS; do
    for n in $NS; do
      for p in $PS; do
        run_one "$m" "$n" "$p" "$seed" &
        while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n; done
      done
    done
  done
done
wait
/usr/bin/python3 analysis/plot_moshpit_averaging.py "$OUT" \
  --csv docs/results/moshpit_averaging.csv --png docs/moshpit_averaging.png
