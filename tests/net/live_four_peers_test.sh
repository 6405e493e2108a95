#!/usr/bin/env bash
# Four `crowdtrain live` processes on loopback run the quickstart probe workload among themselves for
# a few seconds; then every peer's summary.json must show successful probes, few failures, and
# answers from every other peer.
# usage: live_four_peers_test.sh <crowdtrain binary> <repo root>
set -u

BIN=${1:?usage: live_four_peers_test.sh <crowdtrain binary> <repo root>}
ROOT=${2:?usage: live_four_peers_test.sh <crowdtrain binary> <repo root>}
N=4
DURATION_S=4
WATCHDOG_S=60
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ct-live4.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "net_live_four_peers: FAIL: $*" >&2
  for i in $(seq 0 $((N - 1))); do
    if [ -f "$WORK/peer$i.log" ]; then
      echo "--- peer $i log (last lines):" >&2
      tail -n 5 "$WORK/peer$i.log" >&2
    fi
  done
  exit 1
}

# Runs the N peers with ports base..base+N-1. Returns 0 when all exited 0, 3 when a port was taken.
run_peers() {
  local base=$1 peers="" i
  for i in $(seq 0 $((N - 1))); do
    peers+="${peers:+,}$i=tcp://127.0.0.1:$((base + i))"
  done
  rm -rf "$WORK"/peer*
  PIDS=()
  for i in $(seq 0 $((N - 1))); do
    (cd "$ROOT" && exec "$BIN" live scenarios/quickstart.json --id "$i" --peers "$peers" \
       --duration "$DURATION_S" --out "$WORK/peer$i" --quiet \
       --set workload.probe.rate_hz=20) >"$WORK/peer$i.log" 2>&1 &
    PIDS+=($!)
  done
  # Wait for all, with a watchdog: a live peer that does not end on time is a failure in itself.
  local deadline=$((SECONDS + WATCHDOG_S)) rc=0 taken=0
  for i in $(seq 0 $((N - 1))); do
    while kill -0 "${PIDS[$i]}" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        fail "peer $i still running after ${WATCHDOG_S} s (asked for ${DURATION_S} s)"
      fi
      sleep 0.2
    done
    wait "${PIDS[$i]}"
    local prc=$?
    if [ "$prc" -ne 0 ]; then
      grep -q "cannot listen" "$WORK/peer$i.log" && taken=1
      rc=$prc
      echo "net_live_four_peers: peer $i exited with $prc" >&2
    fi
  done
  PIDS=()
  if [ "$rc" -ne 0 ] && [ "$taken" -eq 1 ]; then return 3; fi
  return "$rc"
}

# Ports derived from our pid, so that concurrent runs rarely collide; one retry elsewhere if they do.
base=$((20000 + ($$ % 9000) * 4))
run_peers "$base"
rc=$?
if [ "$rc" -eq 3 ]; then
  echo "net_live_four_peers: a port in $base..$((base + N - 1)) was taken; retrying" >&2
  base=$((20000 + (($$ + 4507) % 9000) * 4))
  run_peers "$base"
  rc=$?
fi
[ "$rc" -eq 0 ] || fail "a peer exited with status $rc"

"$PY" - "$WORK" "$N" <<'EOF' || fail "summaries do not show a working four-peer mesh (see above)"
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
bad = []
for i in range(n):
    d = f"{work}/peer{i}"
    try:
        s = json.load(open(f"{d}/summary.json"))
    except Exception as e:
        bad.append(f"peer {i}: no summary.json ({e})")
        continue
    ok, failed, sent = s["probes_ok"], s["probes_failed"], s["probes_sent"]
    served = s["counters"].get("probes_served", 0)
    print(f"peer {i}: probes sent={sent} ok={ok} failed={failed} served={served} "
          f"msgs sent={s['messages_sent']} delivered={s['messages_delivered']} "
          f"rejected={s['net_rejected_messages']} rtt p50={s['rtt_ms_p50']} p99={s['rtt_ms_p99']} ms")
    if s["world"] != "live" or s["peer_id"] != i or s["peers"] != n:
        bad.append(f"peer {i}: summary says world={s['world']} peer_id={s['peer_id']} peers={s['peers']}")
    if ok <= 0:
        bad.append(f"peer {i}: no probe succeeded")
    if failed > max(2, sent // 10):
        bad.append(f"peer {i}: {failed} of {sent} probes failed")
    if served <= 0 or s["messages_delivered"] <= 0:
        bad.append(f"peer {i}: served no probe / received nothing")
    if s["net_rejected_messages"] != 0:
        bad.append(f"peer {i}: rejected {s['net_rejected_messages']} messages")
    # Answers from every other peer: the event log records each probe's target and outcome.
    answered = set()
    with open(f"{d}/events.jsonl") as f:
        for line in f:
            e = json.loads(line)
            if e.get("ev") == "probe" and e.get("ok") == 1:
                answered.add(e["to"])
    missing = sorted(set(range(n)) - {i} - answered)
    if missing:
        bad.append(f"peer {i}: no answer from peers {missing}")
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
echo "net_live_four_peers: PASS ($N peers, ${DURATION_S} s, ports $base..$((base + N - 1)))"
