#!/usr/bin/env bash
# `crowdtrain launch` (net/launch.py): 6 live peers of scenarios/dht_live_8.json on this machine,
# encrypted, open membership, with session churn (exponential sessions of mean 8 s, downtimes of
# mean 2 s) applied to the processes as the simulator plans it. The merged summary must list every
# planned join as a process, each ended by exit 0 or by the launcher's own signal, and the DHT must
# have kept working through the restarts (>= 85% of the gets of live keys succeeded, across all
# incarnations, and at least 50 of them).
# usage: launch_test.sh <crowdtrain binary> <repo root>
set -u
BIN=${1:?usage: launch_test.sh <crowdtrain binary> <repo root>}
ROOT=${2:?usage: launch_test.sh <crowdtrain binary> <repo root>}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ct-launch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT" || exit 1
CHURN='churn={"model": "sessions", "session_s": {"dist": "exponential", "mean": 8}, "downtime_s": {"dist": "exponential", "mean": 2}, "initial_online_fraction": 1.0}'
if ! timeout 100 "$PY" net/launch.py --bin "$BIN" scenarios/dht_live_8.json --processes 6 \
     --duration 16 --secure --out "$WORK/out" --base-port $((30000 + $$ % 20000)) \
     --set "$CHURN" >"$WORK/launch.log" 2>&1; then
  cat "$WORK/launch.log" >&2
  echo "launch_test: FAIL: the launcher failed" >&2
  exit 1
fi
"$PY" - "$WORK/out/summary.json" <<'PYEOF' || { cat "$WORK/launch.log" >&2; exit 1; }
import json, sys
s = json.load(open(sys.argv[1]))
incs, c, planned = s["incarnations"], s["counters"], s["planned"]
ok, failed = c.get("dht_live_get_ok", 0), c.get("dht_live_get_failed", 0)
print(f"{len(incs)} processes for {planned['joins']} planned joins ({planned['sim_joins']} in the "
      f"simulator), {planned['leaves']} leaves; live gets {ok} ok, {failed} failed; "
      f"peers learned {c.get('net_peers_learned', 0)}, rejected {c.get('net_rejected_messages', 0)}")
bad = []
if planned["joins"] != planned["sim_joins"] or len(incs) != planned["joins"]:
    bad.append("the processes started are not the simulator's joins")
if planned["leaves"] < 1 or len(incs) <= 6:
    bad.append("no churn was applied")
for i in incs:
    if i.get("exit") not in (0, -i.get("signal", 0)):
        bad.append(f"peer {i['peer']} incarnation {i['incarnation']} ended with {i.get('exit')}")
if s["security"] != "curve" or s["membership"] != "open":
    bad.append(f"security {s['security']}, membership {s['membership']}")
if ok + failed < 50 or ok < 0.85 * (ok + failed):
    bad.append(f"{ok} of {ok + failed} gets of live keys succeeded (need >= 85% of >= 50)")
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
echo "launch_test: PASS"
