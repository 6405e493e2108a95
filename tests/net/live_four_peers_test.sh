#!/usr/bin/env bash
# Four `crowdtrain live` processes on loopback run the probe_world probe workload among themselves for
# a few seconds, in secure mode (CurveZMQ, each with its own key file); then every peer's
# summary.json must say "curve" and show successful probes, few failures, and answers from every
# other peer.
# usage: live_four_peers_test.sh <crowdtrain binary> <repo root>
set -u

TEST=net_live_four_peers
BIN=${1:?usage: live_four_peers_test.sh <crowdtrain binary> <repo root>}
ROOT=${2:?usage: live_four_peers_test.sh <crowdtrain binary> <repo root>}
N=4
DURATION_S=4
WATCHDOG_S=60
LIVE_SECURE=1
# shellcheck source=tests/net/live_lib.sh
. "$(dirname "$0")/live_lib.sh"
live_init

live_run scenarios/probe_world.json --duration "$DURATION_S" --set workload.probe.rate_hz=20

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
    p = s["probe"]
    ok, failed, sent = p["probes_ok"], p["probes_failed"], p["probes_sent"]
    served = s["counters"].get("probes_served", 0)
    print(f"peer {i}: probes sent={sent} ok={ok} failed={failed} served={served} "
          f"msgs sent={s['messages_sent']} delivered={s['messages_delivered']} "
          f"rejected={s['net_rejected_messages']} rtt p50={p['rtt_ms_p50']} p99={p['rtt_ms_p99']} ms")
    if s.get("security") != "curve":
        bad.append(f"peer {i}: security is {s.get('security')}, not curve")
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
echo "$TEST: PASS ($N peers, ${DURATION_S} s, ports $PORT_BASE..$((PORT_BASE + N - 1)))"
