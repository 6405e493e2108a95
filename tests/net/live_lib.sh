# Shared by the tests that run several `crowdtrain live` processes on loopback (sourced, not run).
# The sourcing script sets TEST (its name in messages), N (peers), BIN, ROOT and WATCHDOG_S, then
# calls live_init; live_run starts the N peers on free-looking ports, waits for them with a
# watchdog and retries once elsewhere when a port was taken; LIVE_AFTER_LAUNCH and LIVE_KILLED let
# a test kill peers in between. LIVE_SECURE=1 gives every peer a CurveZMQ keypair
# ($WORK/key<i>, --key-file) and the others' public keys in --peers (ID=ADDR#KEY). LIVE_OPEN=1
# gives no peer list: peer 0 starts alone and every other peer knows only peer 0's address
# (--initial-peers, with its key when secure; then every peer also holds one swarm key file), and
# the peers in LIVE_CLIENTS="I J ..." run as clients (--client: no address, never called).
# LIVE_LATE="I S" starts peer I only S seconds after the others. Outputs: $WORK/peer<i>/ (the run's
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

# The public key of peer $1 (its keypair made on first use; cached, since each run of the binary
# costs a second of start-up).
live_key() {
  if [ ! -s "$WORK/key$1.pub" ]; then
    "$BIN" live --key-file "$WORK/key$1" --show-key >"$WORK/key$1.pub" || fail "no key for peer $1"
  fi
  cat "$WORK/key$1.pub"
}

# Starts the N peers on ports base..base+N-1 with `crowdtrain live SCENARIO ARGS...` (each also
# gets --id, --peers, --out and --quiet); PIDS holds their process ids.
live_launch() {
  local base=$1 scenario=$2 peers="" i key secure=()
  shift 2
  for i in $(seq 0 $((N - 1))); do
    key=""
    if [ -n "${LIVE_SECURE:-}" ]; then
      key="#$(live_key "$i")"
    fi
    peers+="${peers:+,}$i=tcp://127.0.0.1:$((base + i))$key"
  done
  rm -rf "$WORK"/peer*
  PIDS=()
  local membership key0=""
  if [ -n "${LIVE_SECURE:-}" ]; then
    key0="#$(live_key 0)"
    if [ -n "${LIVE_OPEN:-}" ] && [ ! -f "$WORK/swarm" ]; then
      (umask 077 && printf 'swarm=%s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" \
         >"$WORK/swarm")
    fi
  fi
  for i in $(seq 0 $((N - 1))); do
    secure=()
    [ -n "${LIVE_SECURE:-}" ] && secure=(--key-file "$WORK/key$i")
    membership=(--peers "$peers")
    if [ -n "${LIVE_OPEN:-}" ]; then
      membership=(--listen "tcp://127.0.0.1:$((base + i))")
      live_is_client "$i" && membership=(--client)
      [ "$i" -gt 0 ] && membership+=(--initial-peers "tcp://127.0.0.1:$base$key0")
      [ -n "${LIVE_SECURE:-}" ] && membership+=(--swarm-key-file "$WORK/swarm")
    fi
    local late=0
    if [ -n "${LIVE_LATE:-}" ] && [ "${LIVE_LATE%% *}" -eq "$i" ]; then late=${LIVE_LATE#* }; fi
    (sleep "$late" && cd "$ROOT" && exec "$BIN" live "$scenario" --id "$i" "${membership[@]}" \
       "${secure[@]}" --out "$WORK/peer$i" --quiet "$@") >"$WORK/peer$i.log" 2>&1 &
    PIDS+=($!)
  done
  LIVE_DEADLINE=$((SECONDS + WATCHDOG_S))
}

# Whether peer $1 is among LIVE_CLIENTS (with LIVE_OPEN: run with --client, never called).
live_is_client() {
  local c
  for c in ${LIVE_CLIENTS:-}; do [ "$c" -eq "$1" ] && return 0; done
  return 1
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
  local scenario=$1 rc attempt slots=$((40000 / N)) i
  shift
  if [ -n "${LIVE_SECURE:-}" ]; then  # before the epoch is set: making keys takes a while
    for i in $(seq 0 $((N - 1))); do live_key "$i" >/dev/null; done
  fi
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
