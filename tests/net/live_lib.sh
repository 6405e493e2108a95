# Shared by the tests that run several `crowdtrain live` processes on loopback (sourced, not run).
# The sourcing script sets TEST (its name in messages), N (peers), BIN, ROOT and WATCHDOG_S, then
# calls live_init; live_run starts the N peers on free-looking ports, waits for them with a
# watchdog and retries once elsewhere when a port was taken; LIVE_AFTER_LAUNCH and LIVE_KILLED let
# a test kill peers in between. LIVE_SECURE=1 gives every peer a CurveZMQ keypair
# ($WORK/key<i>, --key-file) and the others' public keys in --peers (ID=ADDR#KEY). Outputs: $WORK/peer<i>/ (the run's
# folder) and $WORK/peer<i>.log. CT_KEEP_WORK=1 keeps $WORK.

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

live_init() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/ct-$TEST.XXXXXX")
  PIDS=()
  trap live_cleanup EXIT
}

live_cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  if [ -n "${CT_KEEP_WORK:-}" ]; then echo "outputs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}

fail() {
  echo "$TEST: FAIL: $*" >&2
  for i in $(seq 0 $((N - 1))); do
    if [ -f "$WORK/peer$i.log" ]; then
      echo "--- peer $i log (last lines):" >&2
      tail -n 5 "$WORK/peer$i.log" >&2
    fi
  done
  exit 1
}

now_s() { date +%s.%N; }

# Starts the N peers on ports base..base+N-1 with `crowdtrain live SCENARIO ARGS...` (each also
# gets --id, --peers, --out and --quiet); PIDS holds their process ids.
live_launch() {
  local base=$1 scenario=$2 peers="" i key secure=()
  shift 2
  for i in $(seq 0 $((N - 1))); do
    key=""
    if [ -n "${LIVE_SECURE:-}" ]; then
      key="#$("$BIN" live --key-file "$WORK/key$i" --show-key)" || fail "no key for peer $i"
    fi
    peers+="${peers:+,}$i=tcp://127.0.0.1:$((base + i))$key"
  done
  rm -rf "$WORK"/peer*
  PIDS=()
  for i in $(seq 0 $((N - 1))); do
    secure=()
    [ -n "${LIVE_SECURE:-}" ] && secure=(--key-file "$WORK/key$i")
    (cd "$ROOT" && exec "$BIN" live "$scenario" --id "$i" --peers "$peers" "${secure[@]}" \
       --out "$WORK/peer$i" --quiet "$@") >"$WORK/peer$i.log" 2>&1 &
    PIDS+=($!)
  done
  LIVE_DEADLINE=$((SECONDS + WATCHDOG_S))
}

# Whether peer $1 is among LIVE_KILLED (peers the test killed on purpose).
live_is_killed() {
  local k
  for k in ${LIVE_KILLED:-}; do [ "$k" -eq "$1" ] && return 0; done
  return 1
}

# Waits for the launched peers, with a watchdog: a live peer that does not end on time is a
# failure in itself. Returns 3 when a port was taken (by any peer), else 0 when every peer not in
# LIVE_KILLED exited 0, else the last failing status.
live_wait() {
  local rc=0 taken=0 i
  for i in $(seq 0 $((N - 1))); do
    while kill -0 "${PIDS[$i]}" 2>/dev/null; do
      [ "$SECONDS" -ge "$LIVE_DEADLINE" ] && fail "peer $i still running after ${WATCHDOG_S} s"
      sleep 0.2
    done
    wait "${PIDS[$i]}" 2>/dev/null
    local prc=$?
    # A taken port counts even for a peer meant to be killed later: it never ran, so the run is
    # redone elsewhere.
    if [ "$prc" -ne 0 ] && grep -q "cannot listen" "$WORK/peer$i.log"; then taken=1; fi
    if [ "$prc" -ne 0 ] && ! live_is_killed "$i"; then
      rc=$prc
      echo "$TEST: peer $i exited with $prc" >&2
    fi
  done
  PIDS=()
  if [ "$taken" -eq 1 ]; then return 3; fi
  return "$rc"
}

# live_run SCENARIO ARGS...: launches the peers, runs the function named by LIVE_AFTER_LAUNCH if
# set (e.g. to kill some on a schedule), waits. Ports derived from our pid, so that concurrent runs
# rarely collide; one retry elsewhere if they do. "--epoch +S" among ARGS becomes an epoch S
# seconds after each launch (LIVE_EPOCH). Sets PORT_BASE; fails the test when a peer fails.
live_run() {
  local scenario=$1 rc attempt slots=$((40000 / N))
  shift
  for attempt in 0 1; do
    PORT_BASE=$((20000 + (($$ + attempt * slots / 2) % slots) * N))
    local args=() a prev=""
    LIVE_EPOCH=""
    for a in "$@"; do
      if [ "$prev" = "--epoch" ] && [ "${a#+}" != "$a" ]; then
        a=$(awk -v t="$(now_s)" -v d="${a#+}" 'BEGIN { printf "%.3f", t + d }')
        LIVE_EPOCH=$a
      fi
      args+=("$a")
      prev=$a
    done
    live_launch "$PORT_BASE" "$scenario" "${args[@]}"
    [ -n "${LIVE_AFTER_LAUNCH:-}" ] && "$LIVE_AFTER_LAUNCH"
    live_wait
    rc=$?
    [ "$rc" -ne 3 ] && break
    echo "$TEST: a port in $PORT_BASE..$((PORT_BASE + N - 1)) was taken; retrying" >&2
  done
  [ "$rc" -eq 0 ] || fail "a peer exited with status $rc"
}
