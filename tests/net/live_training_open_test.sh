#!/usr/bin/env bash
# Moshpit SGD across 8 live processes with open membership, all encrypted (issue 14's "done when"):
# scenarios/moshpit_sgd_mnist.json with 8 peers on a 2x2x2 grid; no peer list anywhere: peer 0
# starts alone and every other peer knows only peer 0's address and public key (--initial-peers)
# and holds the swarm key file (CurveZMQ on every socket). Peer 7 starts LATE_S seconds after the
# others (a joiner: it must download the training state from a peer it learned of through the
# swarm), peer 3 is SIGKILLed at KILL_S on the run's timeline, and peer 5 runs as a client behind
# NAT (--client, peers.clients: it calls out, is never called, never leads a group and serves no
# state). Every other peer must have
# averaged in groups, reached 85% test accuracy, rejected nothing, and known more peers at the end
# than the one it was given; peer 7 must have downloaded the state and averaged after joining.
# Needs the MNIST digits (the wrapper fetches them): a peer without them fails, and so does the
# test.
# usage: live_training_open_test.sh <crowdtrain binary> <repo root>
set -u

TEST=net_live_training_open
BIN=${1:?usage: live_training_open_test.sh <crowdtrain binary> <repo root>}
ROOT=${2:?usage: live_training_open_test.sh <crowdtrain binary> <repo root>}
N=8
DURATION_S=36
LATE_S=10  # peer 7's start, after the others' launch (the epoch is 3 s after it)
KILL_S=14  # on the run's timeline
WATCHDOG_S=100
LIVE_OPEN=1
LIVE_SECURE=1
LIVE_LATE="7 $LATE_S"
LIVE_KILLED="3"
LIVE_CLIENTS="5"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# shellcheck source=tests/net/live_lib.sh
. "$(dirname "$0")/live_lib.sh"
live_init

# After the launch: SIGKILL peer 3 at KILL_S on the timeline (at once if a peer already ended).
kill_at() {
  local kill_at
  kill_at=$(awk -v e="$LIVE_EPOCH" -v k="$KILL_S" 'BEGIN { printf "%.3f", e + k }')
  while awk -v a="$(now_s)" -v b="$kill_at" 'BEGIN { exit !(a < b) }'; do
    kill -0 "${PIDS[0]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "${PIDS[3]}" 2>/dev/null
  disown "${PIDS[3]}" 2>/dev/null
}
LIVE_AFTER_LAUNCH=kill_at

live_run scenarios/moshpit_sgd_mnist.json --epoch +3 --duration "$DURATION_S" \
  --set peers.count=$N --set 'peers.clients=[5]' --set 'churn={"model": "none"}' \
  --set workload.training.grid_size=2 \
  --set workload.training.grid_dims=3 --set workload.training.first_round_s=4 \
  --set workload.training.round_interval_s=6 --set workload.training.matchmaking_timeout_s=2 \
  --set workload.training.allreduce_timeout_s=2.5 --set workload.training.eval_interval_s=8

"$PY" - "$WORK" "$N" <<'PYEOF' || fail "the swarm did not train as it should (see above)"
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
bad = []
for i in range(n):
    if i == 3:
        continue  # killed
    try:
        s = json.load(open(f"{work}/peer{i}/summary.json"))
    except Exception as e:
        bad.append(f"peer {i}: no summary.json ({e})")
        continue
    c, t = s["counters"], s["training"]
    acc = t.get("final_accuracy")
    print(f"peer {i}: groups {c.get('averaging_groups', 0)}, no group "
          f"{c.get('averaging_no_group', 0)}, failed {c.get('averaging_allreduce_failed', 0)}, "
          f"steps {c.get('train_steps', 0)}, state downloads {c.get('train_state_downloads', 0)}, "
          f"final accuracy {acc}, peers known {s['peers']}, resolved {s.get('net_resolved')}, "
          f"rejected {s['net_rejected_messages']}, app start {s['app_start_s']:.1f} s")
    if (s["membership"], s["security"]) != ("open", "curve"):
        bad.append(f"peer {i}: membership {s['membership']}, security {s['security']}")
    if s["peers"] < 3:
        bad.append(f"peer {i}: knows {s['peers']} peers at the end: it learned (almost) none")
    if c.get("averaging_groups", 0) < 1:
        bad.append(f"peer {i}: never averaged in a group")
    if acc is None or acc < 0.85:
        bad.append(f"peer {i}: final accuracy {acc} (< 0.85)")
    if s["net_rejected_messages"] != 0:
        bad.append(f"peer {i}: rejected {s['net_rejected_messages']} messages")
    if s["client"] != (i == 5) or (i == 5 and s["listen"]):
        bad.append(f"peer {i}: client={s['client']} listen={s['listen']!r} (peer 5 alone is one)")
    if i == 5 and c.get("mm_groups_led", 0) != 0:
        bad.append(f"peer 5 (a client) led {c['mm_groups_led']} groups")
    if i == 7:
        if c.get("train_state_downloads", 0) < 1:
            bad.append("peer 7 (the joiner): downloaded no state")
        if s["app_start_s"] < 5:
            bad.append(f"peer 7 started at {s['app_start_s']:.1f} s: not late")
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
echo "$TEST: PASS ($N peers, open membership, CurveZMQ, peer 3 killed at ${KILL_S} s, peer 7 late, peer 5 a client)"
