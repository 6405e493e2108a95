#!/usr/bin/python3
"""The small MNIST scenario (scenarios/dmoe_mnist.json as it is: 100 ms, 10% refused calls, 16
trainers x 40 steps = 640 updates, 2,000 evaluation digits every 30 s) in variants that differ in
one option each, to show what the learning depends on (docs/dmoe.md, "Why the expert learning
rate is 1e-4"). About 8 minutes of wall time per run on one core.

  expert_lr_1e-4   the scenario as it is
  expert_lr_1e-3   workload.moe.expert.lr=0.001 (the paper's expert learning rate)
  raw_pixels       workload.moe.expert.lr=0.001 and workload.moe.trainer.standardize_inputs=false
  scale_lr_1e-3    expert lr 1e-3, workload.moe.server.stale_updates=scale (each step's learning
                   rate divided by 1 + the staleness of its rows)
  skip_lr_1e-3     expert lr 1e-3, workload.moe.server.stale_updates=skip with max_staleness 2
                   (staler backward calls get their input gradient and add no step)
  accum16_lr_1e-3  expert lr 1e-3, workload.moe.server.min_update_samples=16 (an expert steps
                   once 16 samples' gradients have accumulated, on their mean)
  gatenorm_lr_1e-3 expert lr 1e-3, workload.moe.trainer.gate_norm=true (each gate standardises the
                   hidden state first, as the paper's emulator's LayerNorm before its gate)
  gatenorm_lr_1e-4 the scenario with workload.moe.trainer.gate_norm=true

Writes docs/results/dmoe_mnist_small.csv:
variant,seed,updates,val_accuracy,time_s,expert_steps,update_staleness (one row per evaluation;
updates: the trainers' successful steps so far; expert_steps: the optimizer steps of all experts
in the run; update_staleness: the run's mean moe_update_staleness, the expert steps between a
call's forward and its backward); rows of runs not named are kept.

usage: analysis/run_dmoe_mnist_small.py [--bin build/crowdtrain] [--out build/dmoe_mnist_small]
       [--variants expert_lr_1e-4,expert_lr_1e-3] [--seeds 1] [--jobs 1] [--collect-only]
Finished runs (RUN/summary.json present) are reused.
"""
import argparse
import concurrent.futures as futures
import os
import sys

# run_one runs one scenario or reuses its summary.json; write_merged keeps other runs' rows
from run_dmoe_mnist import run_one, write_merged

SCENARIO = "scenarios/dmoe_mnist.json"
VARIANTS = {
    "expert_lr_1e-4": [],
    "expert_lr_1e-3": ["workload.moe.expert.lr=0.001"],
    "raw_pixels": ["workload.moe.expert.lr=0.001", "workload.moe.trainer.standardize_inputs=false"],
    "scale_lr_1e-3": ["workload.moe.expert.lr=0.001", "workload.moe.server.stale_updates=scale"],
    "skip_lr_1e-3": ["workload.moe.expert.lr=0.001", "workload.moe.server.stale_updates=skip",
                     "workload.moe.server.max_staleness=2"],
    "accum16_lr_1e-3": ["workload.moe.expert.lr=0.001", "workload.moe.server.min_update_samples=16"],
    "gatenorm_lr_1e-3": ["workload.moe.expert.lr=0.001", "workload.moe.trainer.gate_norm=true"],
    "gatenorm_lr_1e-4": ["workload.moe.trainer.gate_norm=true"],
}


def run(binary, out, variant, seed, collect_only):
    run_dir = os.path.join(out, f"{variant}_s{seed}")
    args = [binary, "run", SCENARIO, "--quiet", "--out", run_dir, "--set", f"seed={seed}"]
    for s in VARIANTS[variant]:
        args += ["--set", s]
    return run_one(args, run_dir, collect_only)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/crowdtrain")
    ap.add_argument("--out", default="build/dmoe_mnist_small")
    ap.add_argument("--variants", default="expert_lr_1e-4,expert_lr_1e-3")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--csv", default="docs/results/dmoe_mnist_small.csv")
    ap.add_argument("--collect-only", action="store_true")
    a = ap.parse_args()
    variants = a.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"run_dmoe_mnist_small.py: unknown variant {v!r} (known: {', '.join(VARIANTS)})")
    runs = [(v, int(s)) for v in variants for s in a.seeds.split(",")]
    os.makedirs(a.out, exist_ok=True)
    with futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        results = list(pool.map(lambda r: run(a.bin, a.out, r[0], r[1], a.collect_only), runs))
    rows = []
    for (variant, seed), moe in zip(runs, results):
        if moe is None:
            print(f"{variant} seed {seed}: not run", file=sys.stderr)
            continue
        curve = moe["curve"]
        # Per run: the experts' optimizer steps and the mean staleness of their updates.
        steps = moe["counters"].get("moe_server_updates", 0)
        staleness = moe["distributions"].get("moe_update_staleness", {}).get("mean", "")
        for point in curve:
            rows.append({"variant": variant, "seed": seed, "updates": point["updates"],
                         "val_accuracy": f"{point['accuracy']:.4f}",
                         "time_s": f"{point['time_s']:.1f}", "expert_steps": steps,
                         "update_staleness": f"{staleness:.2f}" if staleness != "" else ""})
        print(f"{variant} seed {seed}: accuracy {curve[-1]['accuracy']:.3f} after "
              f"{curve[-1]['updates']} updates; {steps} expert steps, mean staleness "
              f"{staleness if staleness == '' else round(staleness, 2)}")
    write_merged(a.csv, ["variant", "seed", "updates", "val_accuracy", "time_s", "expert_steps",
                         "update_staleness"], ["variant", "seed"], rows)
    print(a.csv)


if __name__ == "__main__":
    main()
