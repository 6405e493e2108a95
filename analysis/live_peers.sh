# Sourced by the scripts that run a scenario as live processes on this machine
# (run_dmoe_live_check.sh, run_live_training_check.sh).
# run_live_peers BIN SCENARIO N OUT [ARGS...] starts N `crowdtrain live` processes on loopback
# ports (a random base in 20000-39999), all on one timeline that starts 3 s from now, each with
# ARGS (e.g. --set overrides), writing OUT/live/peer<i>/ and OUT/peer<i>.log; waits for them all
# and fails when one failed.
run_live_peers() {
  local bin=$1 scenario=$2 n=$3 out=$4 peers="" i epoch rc=0
  shift 4
  local base=$((20000 + RANDOM % 20000)) pids=()
  for i in $(seq 0 $((n - 1))); do peers+="${peers:+,}$i=tcp://127.0.0.1:$((base + i))"; done
  epoch=$(/usr/bin/python3 -c "import time; print(f'{time.time() + 3:.3f}')")
  for i in $(seq 0 $((n - 1))); do
    "$bin" live "$scenario" "$@" --id "$i" --listen "tcp://127.0.0.1:$((base + i))" \
      --peers "$peers" --epoch "$epoch" --out "$out/live/peer$i" --quiet >"$out/peer$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "live peer $i failed: $(tail -2 "$out/peer$i.log")" >&2; rc=1; }
  done
  return $rc
}
