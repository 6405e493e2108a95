#!/usr/bin/env bash
# Runs the DHT sweeps and plots them (docs/dht.md shows the results):
#   hops:  scenarios/dht_100k.json (message level, no churn) at N = 100 ... 100,000 peers;
#   churn: scenarios/dht_churn_1k.json at message level with the Weibull session median from
#          10 minutes to 4 hours (downtime mean = median / 6), 1,000 peers, 30 simulated minutes.
# A run folder that already holds summary.json is kept (delete it to rerun).
# usage: analysis/run_dht_sweep.sh [CROWDTRAIN_BINARY] [SWEEP_DIR]   (SWEEP_DIR default runs/dht_sweep)
#        SIZES="100 1000" MEDIANS="600 3600" analysis/run_dht_sweep.sh ...   to run a subset
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/build/crowdtrain}"
sweep="${2:-runs/dht_sweep}"
sizes="${SIZES:-100 316 1000 3162 10000 31623 100000}"
medians="${MEDIANS:-600 1200 3600 7200 14400}"
mkdir -p "$sweep"

run() {  # run OUT_DIR SCENARIO [--set ...]
  local out="$1" scenario="$2"
  shift 2
  if [[ -f "$out/summary.json" ]]; then
    echo "keep $out"
    return
  fi
  echo "run  $out"
  "$bin" run "$root/scenarios/$scenario" --out "$out" "$@"
}

for n in $sizes; do
  run "$sweep/hops_$n" dht_100k.json --set peers.count="$n"
done
for m in $medians; do
  run "$sweep/churn_$m" dht_churn_1k.json --set network.fidelity=message \
    --set "churn.session_s={\"dist\":\"weibull\",\"shape\":0.6,\"median\":$m}" \
    --set "churn.downtime_s={\"dist\":\"exponential\",\"mean\":$((m / 6))}" \
    --set output.events=lifecycle
done
/usr/bin/python3 "$root/analysis/plot_dht.py" "$sweep" "$root/docs"
