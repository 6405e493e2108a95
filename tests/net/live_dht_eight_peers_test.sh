#!/usr/bin/env bash
# Eight `crowdtrain live` processes on loopback run the DHT workload (scenarios/dht_live_8.json) on
# one shared timeline (--epoch): they bootstrap from each other, store plain and dictionary items
# on the schedule every peer can compute, and get items the others stored. At time KILL_S (later
# when the processes were slow to start) the test SIGKILLs peers 6 and 7; the six survivors keep getting, and must find (>= 95%) what was stored:
#   - an item of a survivor counts once that survivor's own event log shows its store succeeded
#     before the get began;
#   - an item of a killed peer counts when its store was due, and the peer's workload had started
#     (first row of its metrics.csv), at least 1 s before the kill (items due later may have died
#     with their peer), and some such gets must come after the kill.
# With 5 replicas among 8 peers, every item has at least 3 replicas left after 2 deaths. First, the
# command line's --epoch checks (bad number, too far ahead, run already over: exit 2).
# LIVE_OPEN=1 LIVE_CLIENTS="4 5" runs it in open membership with two peers as clients behind NAT
# (--client: they store and get, and nobody calls them).
# usage: live_dht_eight_peers_test.sh <crowdtrain binary> <repo root>
set -u

TEST=net_live_dht_eight_peers
BIN=${1:?usage: live_dht_eight_peers_test.sh <crowdtrain binary> <repo root>}
ROOT=${2:?usage: live_dht_eight_peers_test.sh <crowdtrain binary> <repo root>}
N=8
LIVE_KILLED="6 7"
START_DELAY_S=3  # the epoch is this far after the launch, so that every process is up by then
DURATION_S=18    # the run's timeline: [0, 18) s after the epoch
KILL_S=7         # the kill, on the timeline; later when start-up was slow (MIN_LEAD_S) ...
MIN_LEAD_S=2.5   # ... the kill comes at least this long after every workload started ...
MIN_AFTER_S=5    # ... and at least this long before the end, or the test fails as overloaded
WATCHDOG_S=60
# shellcheck source=tests/net/live_lib.sh
. "$(dirname "$0")/live_lib.sh"
live_init

# Whether wall time has reached $1 (seconds since 1970, fractional).
reached() { awk -v a="$(now_s)" -v b="$1" 'BEGIN { exit !(a >= b) }'; }

# After the launch: the kill, at KILL_S on the run's timeline, or MIN_LEAD_S after the last peer's
# workload started (the first row of its metrics.csv) when start-up was slow, so that the doomed
# peers have stored items first; at once when a peer already ended (a port taken).
kill_doomed() {
  local last_start="" plan i
  rm -f "$WORK/kill_s"
  while [ -z "$last_start" ]; do
    if [ "$SECONDS" -ge "$LIVE_DEADLINE" ]; then fail "the peers never started their workloads"; fi
    for i in $(seq 0 $((N - 1))); do
      kill -0 "${PIDS[$i]}" 2>/dev/null || break 2
    done
    last_start=$(for i in $(seq 0 $((N - 1))); do
                   awk -F, 'NR == 2 { print $1; exit }' "$WORK/peer$i/metrics.csv" 2>/dev/null
                 done | awk -v n="$N" '{ if ($1 > m) m = $1; c++ } END { if (c == n) print m + 0 }')
    [ -n "$last_start" ] || sleep 0.1
  done
  if [ -n "$last_start" ]; then
    plan=$(awk -v k="$KILL_S" -v s="$last_start" -v l="$MIN_LEAD_S" \
             'BEGIN { p = s + l; if (k > p) p = k; printf "%.3f", p }')
    awk -v p="$plan" -v d="$DURATION_S" -v a="$MIN_AFTER_S" 'BEGIN { exit !(p <= d - a) }' ||
      fail "the peers started their workloads only at ${last_start} s of the ${DURATION_S} s run," \
           "too late to kill two and watch ${MIN_AFTER_S} s more (machine overloaded?)"
    local kill_at
    kill_at=$(awk -v e="$LIVE_EPOCH" -v p="$plan" 'BEGIN { printf "%.3f", e + p }')
    while ! reached "$kill_at"; do
      for i in $(seq 0 $((N - 1))); do
        kill -0 "${PIDS[$i]}" 2>/dev/null || break 2
      done
      sleep 0.05
    done
  fi
  for i in $LIVE_KILLED; do
    kill -9 "${PIDS[$i]}" 2>/dev/null
    disown "${PIDS[$i]}" 2>/dev/null  # no "Killed" notice for peers killed on purpose
  done
  awk -v t="$(now_s)" -v e="$LIVE_EPOCH" 'BEGIN { printf "%.3f\n", t - e }' >"$WORK/kill_s"
}

# --epoch is checked: not a number, an hour ahead, or a run that has already ended are errors (2).
expect_refused() {
  local what=$1 rc
  shift
  (cd "$ROOT" && "$BIN" live scenarios/dht_live_8.json --id 0 --listen 'tcp://127.0.0.1:*' \
    --peers 0=tcp://127.0.0.1:1 --out "$WORK/refused" --quiet "$@") >"$WORK/refused.log" 2>&1
  rc=$?
  [ "$rc" -eq 2 ] || fail "$what: exit $rc, expected 2 ($(tail -n 1 "$WORK/refused.log"))"
  grep -q "epoch" "$WORK/refused.log" || fail "$what: the error does not name the epoch"
}
now=$(date +%s)
expect_refused "--epoch abc" --epoch abc
expect_refused "an epoch 2 h ahead" --epoch $((now + 7200))
expect_refused "a run that ended" --epoch $((now - 100)) --duration 5

LIVE_AFTER_LAUNCH=kill_doomed
live_run scenarios/dht_live_8.json --epoch "+$START_DELAY_S" --duration "$DURATION_S"

LIVE_OPEN="${LIVE_OPEN:-}" LIVE_CLIENTS="${LIVE_CLIENTS:-}" \
"$PY" - "$WORK" "$N" "$(cat "$WORK/kill_s")" $LIVE_KILLED <<'EOF' || fail "the survivors' gets do not show a working DHT (see above)"
import json, os, sys
work, n, kill_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
is_open = bool(os.environ.get("LIVE_OPEN"))
clients = {int(c) for c in os.environ.get("LIVE_CLIENTS", "").split()}
killed = {int(k) for k in sys.argv[4:]}
survivors = [i for i in range(n) if i not in killed]
bad = []
events = {}
for i in survivors:
    d = f"{work}/peer{i}"
    try:
        s = json.load(open(f"{d}/summary.json"))
        events[i] = [json.loads(line) for line in open(f"{d}/events.jsonl")]
    except Exception as e:
        bad.append(f"peer {i}: no summary.json or events.jsonl ({e})")
        continue
    dht = s.get("dht", {})
    print(f"peer {i}: stores={dht.get('stores')} store_success={dht.get('store_success')} "
          f"live_gets={dht.get('live_gets')} live_get_success={dht.get('live_get_success')} "
          f"wrong={dht.get('get_wrong_value')} rejected={s['net_rejected_messages']} "
          f"app_start_s={s['app_start_s']:.2f} end_s={s['sim_time_s']:.2f}")
    # A fixed list gives every peer all n; in open membership nobody learns a client it never
    # heard from, and a client learns no other client.
    want_peers = n if not is_open else n - len(clients) + (i not in clients)
    if s["world"] != "live" or s["peer_id"] != i or s["peers"] < want_peers or \
            s["client"] != (i in clients):
        bad.append(f"peer {i}: summary says world={s['world']} peer_id={s['peer_id']} "
                   f"peers={s['peers']} (want >= {want_peers}) client={s['client']}")
    if s["net_rejected_messages"] != 0:
        bad.append(f"peer {i}: rejected {s['net_rejected_messages']} messages")
    if not any(e.get("ev") == "dht_ready" for e in events[i]):
        bad.append(f"peer {i}: never bootstrapped")
    if (dht.get("store_success") or 0) < 0.95:
        bad.append(f"peer {i}: store success {dht.get('store_success')} (< 0.95)")
if bad:
    for b in bad:
        print("  " + b, file=sys.stderr)
    sys.exit(1)

# When each survivor's stores succeeded: (peer, op) -> completion time on the shared timeline.
stored_at = {}
for i in survivors:
    for e in events[i]:
        if e.get("ev") == "dht_store" and e.get("ok") == 1:
            key = (i, e["op"])
            stored_at[key] = min(stored_at.get(key, e["t_ns"] / 1e9), e["t_ns"] / 1e9)

# When each killed peer's workload started: the first row of its metrics.csv (rows are flushed as
# they are written, so they survive the SIGKILL). A peer stores what fell due before it started at
# its start, so its item was surely stored when max(due, start) is 1 s before the kill.
started = {}
for k in killed:
    try:
        with open(f"{work}/peer{k}/metrics.csv") as f:
            f.readline()
            started[k] = float(f.readline().split(",")[0])
    except Exception as ex:
        print(f"killed peer {k} never started its workload ({ex}); its items are not counted")
    else:
        print(f"killed peer {k}: workload started at {started[k]:.2f} s")

def counted(e):
    """Whether a get event must have succeeded: its item was certainly stored before it began."""
    began = e["t_ns"] / 1e9 - e["ms"] / 1000.0
    if e["storer"] in killed:
        return e["storer"] in started and max(e["stored_at_s"], started[e["storer"]]) <= kill_s - 1.0
    done = stored_at.get((e["storer"], e["op"]))
    return done is not None and done < began

stats = {"before": [0, 0], "after": [0, 0], "after_killed": [0, 0]}
for i in survivors:
    for e in events[i]:
        if e.get("ev") != "dht_get" or not counted(e):
            continue
        began = e["t_ns"] / 1e9 - e["ms"] / 1000.0
        phase = "after" if began >= kill_s + 0.2 else "before" if e["t_ns"] / 1e9 < kill_s else None
        if phase is None:
            continue
        for p in [phase] + (["after_killed"] if phase == "after" and e["storer"] in killed else []):
            stats[p][0] += e["ok"]
            stats[p][1] += 1
for p, (ok, total) in stats.items():
    print(f"gets {p} the kill at {kill_s:.2f} s: {ok}/{total} ok")
ok, total = stats["after"]
if total < 50 or ok < 0.95 * total:
    bad.append(f"after the kill {ok} of {total} gets succeeded (need >= 95% of >= 50)")
ok, total = stats["after_killed"]
if total < 5 or ok < 0.95 * total:
    bad.append(f"after the kill {ok} of {total} gets of the dead peers' items succeeded "
               "(need >= 95% of >= 5)")
ok, total = stats["before"]
if total < 20 or ok < 0.95 * total:
    bad.append(f"before the kill {ok} of {total} gets succeeded (need >= 95% of >= 20)")
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
echo "$TEST: PASS ($N peers, ${DURATION_S} s, killed $LIVE_KILLED at $(cat "$WORK/kill_s") s, ports $PORT_BASE..$((PORT_BASE + N - 1)))"
