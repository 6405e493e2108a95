#!/usr/bin/env bash
# analysis/plot_run.py on a small hand-made run folder: the PNGs exist and are PNGs, --out works,
# and a folder without the run files exits 2. Usage: tests/analysis_test.sh [REPO_ROOT]
# Also: the experiment scripts' CSV merge keeps the rows of runs an invocation did not make.
# Without matplotlib in /usr/bin/python3 it skips (exit 0 with a note), or fails under CI=true.
set -euo pipefail

root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
py=/usr/bin/python3
script="$root/analysis/plot_run.py"
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
  echo "SKIP: $py has no matplotlib (apt-get install python3-matplotlib)"
  [[ "${CI:-}" == true ]] && exit 1
  exit 0
fi

tmp="$(mktemp -d)"
trap "${KEEP_TMP:+:} rm -rf \"$tmp\"" EXIT
run="$tmp/run"
mkdir -p "$run"

"$py" - "$run" <<'EOF'
import json, math, random, sys
run = sys.argv[1]
rng = random.Random(7)
with open(run + "/summary.json", "w") as f:
    json.dump({"name": "fake", "seed": 42, "event_log_sha256": "ab" * 32}, f, indent=2)
alive, sent, delivered, ok, failed = 100, 0, 0, 0, 0
events = []
with open(run + "/metrics.csv", "w") as f:
    f.write("time_s,alive_peers,messages_sent,messages_delivered,probes_ok,probes_failed\n")
    for i in range(61):
        t = float(i)
        alive = max(10, alive + rng.randint(-4, 3))
        new = alive * 5
        sent += new
        delivered += int(new * 0.97)
        ok += alive - 3
        failed += 3 if i % 10 else 40
        f.write("%g,%d,%d,%d,%d,%d\n" % (t, alive, sent, delivered, ok, failed))
        for _ in range(20):
            kind = rng.choice(["probe", "probe", "probe", "send", "join", "leave", 'we"ird'])
            events.append((int((t + rng.random()) * 1e9), rng.randint(0, 99), kind))
with open(run + "/events.jsonl", "w") as f:
    for t, p, k in sorted(events):
        f.write('{"t_ns":%d,"peer":%d,"ev":%s,"ok":1}\n' % (t, p, json.dumps(k)))
EOF

out="$("$py" "$script" "$run")"
echo "$out"
for png in metrics.png events.png; do
  grep -qx "$run/$png" <<<"$out" || { echo "FAIL: $png not printed"; exit 1; }
  [[ "$(head -c 8 "$run/$png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] ||
    { echo "FAIL: $run/$png is not a PNG"; exit 1; }
done

# --out, and a run without events.jsonl: only metrics.png.
rm "$run/events.jsonl"
out="$("$py" "$script" "$run" --out "$tmp/plots")"
[[ "$out" == "$tmp/plots/metrics.png" && -s "$tmp/plots/metrics.png" ]] ||
  { echo "FAIL: --out gave: $out"; exit 1; }

# Not a run folder: exit 2 with a message that names what is missing.
mkdir -p "$tmp/empty"
set +e
err="$("$py" "$script" "$tmp/empty" 2>&1 >/dev/null)"
rc=$?
set -e
[[ $rc -eq 2 && "$err" == *summary.json* ]] || { echo "FAIL: rc=$rc err=$err"; exit 1; }

# run_dmoe_mnist.write_merged: a rerun replaces its own rows, keeps the others, sorts by run, time.
"$py" - "$root/analysis" "$tmp/merge.csv" <<'EOF2'
import csv, sys
sys.path.insert(0, sys.argv[1])
from run_dmoe_mnist import write_merged
path, fields, key = sys.argv[2], ["setup", "seed", "time_s", "acc"], ["setup", "seed"]
write_merged(path, fields, key, [{"setup": "b", "seed": 1, "time_s": "20", "acc": "old"},
                                 {"setup": "a", "seed": 2, "time_s": "10", "acc": "kept"}])
write_merged(path, fields, key, [{"setup": "b", "seed": 1, "time_s": "5", "acc": "new"},
                                 {"setup": "b", "seed": 1, "time_s": "30", "acc": "new"}])
got = [(r["setup"], r["seed"], r["time_s"], r["acc"]) for r in csv.DictReader(open(path))]
want = [("a", "2", "10", "kept"), ("b", "1", "5", "new"), ("b", "1", "30", "new")]
assert got == want, got
EOF2

# run_dmoe_mnist.partial_curve: an unfinished run's curve from its moe_eval events (a line cut by
# a run still writing is skipped; evaluations without samples are not points).
mkdir -p "$tmp/unfinished"
printf '%s\n' '{"t_ns":1,"peer":4,"ev":"moe_eval","time_s":240,"accuracy":0.5,"peer_updates":100,"samples":2000,"failed":0}' \
  '{"t_ns":2,"peer":4,"ev":"moe_join"}' \
  '{"t_ns":3,"peer":4,"ev":"moe_eval","time_s":480,"accuracy":0.7,"peer_updates":230,"samples":0,"failed":2000}' \
  '{"t_ns":4,"peer":4,"ev":"moe_eval","time_s":720,"accuracy":0.8,"peer_updates":370,"samples":2000,"failed":0}' \
  '{"t_ns":5,"peer":4,"ev":"moe_eval","time_s":960,"accu' > "$tmp/unfinished/events.jsonl"
"$py" - "$root/analysis" "$tmp/unfinished" <<'EOF3'
import sys
sys.path.insert(0, sys.argv[1])
from run_dmoe_mnist import partial_curve
moe = partial_curve(sys.argv[2])
got = [(p["time_s"], p["accuracy"], p["updates"]) for p in moe["curve"]]
assert got == [(240, 0.5, 100), (720, 0.8, 370)], got
assert partial_curve(sys.argv[2] + "/missing") is None
EOF3

# The MNIST figure and tables from the shipped CSVs: ours beside the paper's digitized curves.
table="$("$py" "$root/analysis/plot_dmoe_mnist.py" "$root/docs/results/dmoe_mnist.csv" \
  "$tmp/mnist.png" "$root/docs/results/paper_mnist_curves.csv")"
[[ -s "$tmp/mnist.png" && "$table" == *"paper: 4,096 experts"*"17,408"* ]] ||
  { echo "FAIL: plot_dmoe_mnist.py printed: $table"; exit 1; }

# The default scenarios' RTT matrix and bandwidth tables are what analysis/region_data.py derives
# from the measurements shipped in scenarios/data/ (a hand edit of either fails here).
"$py" "$root/analysis/region_data.py" --check

echo "PASS"
