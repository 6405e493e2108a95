#!/usr/bin/env bash
# Memory over a long live run (issue 14, "a long run shows no memory growth"; hivemind #264 leaked
# 16 GB in three hours): the mixture-of-experts of scenarios/moe_live_5.json deployed as a
# volunteer swarm would be (open membership from server 0's address, CurveZMQ with a swarm key,
# the 3 trainers as clients behind NAT, declarations signed), 5 `crowdtrain live` processes on
# one timeline for DURATION_S (default 3600). Every SAMPLE_S (30) it reads each process's resident
# memory (VmRSS of /proc/PID/status) and writes rows t_s,peer,role,rss_mb to OUT_CSV (default
# docs/results/memory_soak.csv); at the end it prints, per process, the resident memory after the
# first tenth of the run and at the end, and the least-squares slope over the second half (MB/hour),
# with each peer's work done (trainer steps, server updates) from its summary.json.
# The processes run under `nice -n 19` so that other work on the machine keeps its share.
# usage: analysis/run_memory_soak.sh [CROWDTRAIN_BIN] [DURATION_S] [OUT_CSV]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/crowdtrain}")
DURATION=${2:-3600}
OUT=${3:-docs/results/memory_soak.csv}
SAMPLE_S=${SAMPLE_S:-30}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ct-soak.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  if [ -n "${CT_KEEP_WORK:-}" ]; then echo "[soak] outputs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

SCEN=scenarios/moe_live_5.json
SETS=(--set 'output.events="lifecycle"' --set output.metrics_interval_s=60)
BASE=$((30000 + $$ % 5000))
A="tcp://127.0.0.1:$BASE"
K0=$("$BIN" live --key-file "$WORK/k0" --show-key)
"$BIN" live --key-file "$WORK/k1" --show-key > /dev/null
EPOCH=$(( $(date +%s) + 30 ))  # niced processes on a busy machine start slowly
SEC=(--swarm-key-file "$WORK/swarm.key" --epoch "$EPOCH" --duration "$DURATION" --quiet)
# The swarm key exists before the others start, so that every process reads the same one.
(umask 077 && printf 'swarm=%s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" > "$WORK/swarm.key")
for i in 0 1 2 3 4; do
  case $i in
    0) who=(--listen "$A") ;;
    1) who=(--listen "tcp://127.0.0.1:$((BASE + 1))" --initial-peers "$A#$K0") ;;
    *) who=(--client --initial-peers "$A#$K0") ;;
  esac
  nice -n 19 "$BIN" live "$SCEN" --id "$i" "${who[@]}" --key-file "$WORK/k$i" "${SEC[@]}" \
    --out "$WORK/peer$i" "${SETS[@]}" > "$WORK/peer$i.log" 2>&1 &
  PIDS+=($!)
done
echo "[soak] 5 live peers of $SCEN for $DURATION s (pids ${PIDS[*]}); samples every $SAMPLE_S s" >&2

mkdir -p "$(dirname "$OUT")"
echo "t_s,peer,role,rss_mb" > "$OUT"
start=$(date +%s)
while :; do
  now=$(date +%s)
  alive=0
  for i in 0 1 2 3 4; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/${PIDS[$i]}/status" 2>/dev/null || true)
    [ -n "$rss" ] || continue
    alive=1
    role=trainer
    [ "$i" -lt 2 ] && role=server
    awk -v t=$((now - EPOCH)) -v p="$i" -v r="$role" -v kb="$rss" \
      'BEGIN { printf "%d,%d,%s,%.1f\n", t, p, r, kb / 1024 }' >> "$OUT"
  done
  [ "$alive" -eq 1 ] || break
  sleep "$SAMPLE_S"
done
for p in "${PIDS[@]}"; do wait "$p" || echo "[soak] a peer exited with $?" >&2; done
PIDS=()
echo "[soak] ran $(( $(date +%s) - start )) s; rows in $OUT" >&2

"$PY" - "$OUT" "$WORK" <<'EOF'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
end = max(int(r["t_s"]) for r in rows)
print(f"{'peer':>4} {'role':>8} {'MB at t/10':>10} {'MB at end':>10} {'MB/h, 2nd half':>15} work")
for p in sorted({r["peer"] for r in rows}, key=int):
    pts = [(int(r["t_s"]), float(r["rss_mb"])) for r in rows if r["peer"] == p and int(r["t_s"]) >= 0]
    early = min(pts, key=lambda x: abs(x[0] - end / 10))[1]
    half = [x for x in pts if x[0] >= end / 2]
    n = len(half)
    if n < 2:
        print(f"{p:>4}: fewer than 2 samples in the second half")
        continue
    mt = sum(t for t, _ in half) / n
    mm = sum(m for _, m in half) / n
    var = sum((t - mt) ** 2 for t, _ in half)
    slope = sum((t - mt) * (m - mm) for t, m in half) / var * 3600 if var > 0 else 0.0
    try:
        c = json.load(open(f"{sys.argv[2]}/peer{p}/summary.json"))["moe"]["counters"]
        work = f"steps {c.get('dmoe_steps', 0)}" if int(p) >= 2 else \
            f"updates {c.get('moe_server_updates', 0)}"
    except Exception as e:
        work = f"(no summary: {e})"
    role = rows[[r["peer"] for r in rows].index(p)]["role"]
    print(f"{p:>4} {role:>8} {early:>10.1f} {pts[-1][1]:>10.1f} {slope:>15.2f} {work}")
EOF
