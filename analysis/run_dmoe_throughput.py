#!/usr/bin/python3
"""Learning@home's throughput experiment through the real protocol in the simulated world.

224 identical blocks (the paper's FFN block at batch 2048, or its Transformer encoder layer at
batch 4 x 512 tokens) are experts on 4 servers, placed in turn; trainers pass batches through the
chain of blocks as remote calls (DHT lookup, RPC, server batching) with timing-only numerics.
Every message gets an exponential extra delay of mean ping/2 (network.delay_ms), so each block call
adds `ping` on average, as the paper's sleep after every block. Series:

  model_parallel          4 batches in flight, no delay: the pipeline reference (all 4 devices busy)
  model_parallel_latency  1 batch at a time through the 224 blocks, delay after each: the
                          sequential pipeline the paper shows collapsing with latency
  learning_at_home        64 concurrent trainers (the paper's setting)
  learning_at_home_home_links  the same with home links (20 Mb/s up, 100 Mb/s down) in place of the
                          paper's unlimited bandwidth
  learning_at_home_leave  40 servers with 2 replicas of every block, 4 of them (10%) leaving for good
                          at the end of the warm-up; learning_at_home_40 is the same without leaving
                          (the last three: forward+backward only, ping in 0, 50, ..., 200 ms)

for each of two compute devices: this machine's CPU (calibrated here by `crowdtrain calibrate` on the
same blocks) and a GTX 1080 Ti modelled from hivemind's published benchmark (16 `ffn` experts,
h = 1024, 28,581 samples/s forward+backward), and for forward-only passes (the paper's figure) and
forward+backward passes.

Writes docs/results/dmoe_calibration.csv and docs/results/dmoe_throughput.csv (columns
block,series,ping_ms,samples_per_s,compute_device,direction,trainers,failures); then run
analysis/plot_dmoe_throughput.py to draw docs/dmoe_throughput.png.

usage: analysis/run_dmoe_throughput.py [--bin build/crowdtrain] [--out runs/dmoe_throughput]
       [--jobs 2] [--points 10] [--quick]
--quick: 3 ping values, forward only, no extra series (a few minutes). Finished runs are reused.
--collect-only: write the CSV from the runs finished so far (an interrupted sweep).
--recalibrate: time the blocks on this machine again (do it on a quiet machine: the CPU device
model is what `crowdtrain calibrate` measures); else docs/results/dmoe_calibration.csv is reused.
"""
import argparse
import concurrent.futures as futures
import csv
import json
import os
import subprocess
import sys

SCENARIO = "scenarios/dmoe_throughput.json"
LAYERS = 224  # the scenario's workload.moe.trainer.layers
BLOCKS = {
    # the paper's FFN block: residual_ffn 1024 -> 4096 -> 4096 -> 1024, batch 2048
    "ffn": {"kind": "residual_ffn", "hidden": 1024, "ffn_dim": 4096, "heads": 4, "seq_len": 0,
            "batch": 2048},
    # the paper's Transformer block: d_model 1024, 16 heads, feed-forward 2048, batch 4 x 512
    "transformer": {"kind": "transformer", "hidden": 1024, "ffn_dim": 2048, "heads": 16,
                    "seq_len": 512, "batch": 4},
}
HIVEMIND_1080TI_SAMPLES_PER_S = 28581.0  # hivemind benchmark: 16 ffn experts, h=1024, fwd+bwd
GPU_DEVICE = "gtx1080ti (hivemind's published ffn figure)"
CPU_DEVICE = "cpu (this machine, calibrated)"


def block_sets(name):
    b = BLOCKS[name]
    return [f"workload.moe.expert.kind={b['kind']}", f"workload.moe.expert.hidden={b['hidden']}",
            f"workload.moe.expert.ffn_dim={b['ffn_dim']}", f"workload.moe.expert.heads={b['heads']}",
            f"workload.moe.expert.seq_len={b['seq_len']}", f"workload.moe.chain.batch={b['batch']}",
            f"workload.moe.server.max_batch_size={b['batch']}"]


def calibrate(binary, block, extra=()):
    # Two experts taking turns: a block's weights (100 MB for the FFN) never stay in the caches.
    args = [binary, "calibrate", SCENARIO, "--reps", "3", "--experts", "2"]
    for s in block_sets(block) + list(extra):
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return list(csv.DictReader(out.splitlines()))


def calibration_rows(binary):
    """This CPU's rates per block and phase, and the 1080 Ti's rate from hivemind's figure."""
    rows = []
    for block in BLOCKS:
        for r in calibrate(binary, block):
            r["block"], r["compute_device"], r["source"] = block, CPU_DEVICE, "measured"
            rows.append(r)
    # hivemind's ffn (h=1024): flops per sample of a training step from the zoo's own count.
    ffn = calibrate(binary, "ffn", ["workload.moe.expert.kind=ffn",
                                    "workload.moe.expert.ffn_dim=0",
                                    "workload.moe.chain.batch=64",
                                    "workload.moe.server.max_batch_size=64"])
    step = next(r for r in ffn if r["phase"] == "step")
    flops_per_sample = float(step["flops"]) / float(step["batch"])
    gpu_rate = HIVEMIND_1080TI_SAMPLES_PER_S * flops_per_sample
    for block in BLOCKS:
        for phase in ("forward", "step"):
            rows.append({"block": block, "kind": BLOCKS[block]["kind"], "phase": phase,
                         "compute_device": GPU_DEVICE, "flops_per_s": f"{gpu_rate:.6g}",
                         "source": "hivemind benchmark: 28581 samples/s x "
                                   f"{flops_per_sample:.4g} flops per ffn step sample"})
    return rows


def rate(calib, block, device, direction):
    phase = "forward" if direction == "forward" else "step"
    for r in calib:
        if r["block"] == block and r["compute_device"] == device and r["phase"] == phase:
            return float(r["flops_per_s"])
    raise KeyError((block, device, phase))


# With 40 servers a call to a server that left is given up after a time-out sized to the worst
# queue (all 64 trainers on one block's 2 replicas: 32 training steps of the block on the device),
# and the server is avoided for 120 s (its declarations expire within 60 + 30 s). The 4-server
# series wait up to 600 s, as 16 trainers or more may queue on one server.
TIMEOUT_S = {"cpu": 300, "gpu": 30}

SERIES = {  # series -> (trainers, servers, replicas, extra --set values)
    "model_parallel": (4, 4, 1, []),
    "model_parallel_latency": (1, 4, 1, []),
    "learning_at_home": (64, 4, 1, []),
    "learning_at_home_home_links": (64, 4, 1, ["network.upload_mbps=20",
                                               "network.download_mbps=100"]),
    "learning_at_home_40": (64, 40, 2, []),
    "learning_at_home_leave": (64, 40, 2, []),
}


def block_flops(calib, block, direction):
    """Flops of one block call pair (forward, plus backward when asked) at the block's batch."""
    rows = {r["phase"]: float(r["flops"]) for r in calib
            if r["block"] == block and r["compute_device"] == CPU_DEVICE}
    return rows["forward"] if direction == "forward" else rows["step"]


def run_length(flops, rate, trainers, servers, ping, direction, link_s=0.0):
    """Warm-up and duration (s) in passes of one trainer, so that the window holds several
    passes: with backward, a trainer spends a pass's first part in cheap forward calls and the
    rest in dearer backward ones, so a window shorter than a pass would count the wrong mix."""
    phases = 1 if direction == "forward" else 2
    per_block = (flops / rate + link_s * phases) * max(1.0, trainers / servers) + \
        ping / 1e3 * phases
    one_pass = LAYERS * per_block
    warmup = max(60.0, one_pass)
    return warmup, warmup + max(600.0, 3 * one_pass)


def run_args(binary, out, block, device, direction, series, ping, flops, block_cost):
    trainers, servers, replicas, extra = SERIES[series]
    gpu = device == GPU_DEVICE
    # Home links: a server's 20 Mb/s uplink sends every answer (8.4 MB for both blocks' batches).
    link_s = 8.4e6 * 8 / 20e6 if series == "learning_at_home_home_links" else 0.0
    warmup, duration = run_length(block_cost, flops, trainers, servers, ping, direction, link_s)
    delay = "0" if ping == 0 else json.dumps({"dist": "exponential", "mean": ping / 2})
    sets = block_sets(block) + extra + [
        f"peers.count={servers + trainers}", f"peers.classes[0].flops_per_s={flops:.6g}",
        f"network.delay_ms={delay}", f"duration_s={duration:.0f}",
        f"workload.moe.chain.warmup_s={warmup:.0f}", f"workload.moe.servers={servers}",
        f"workload.moe.replicas={replicas}",
        f"workload.moe.chain.backward={'true' if direction != 'forward' else 'false'}"]
    if servers == 4:
        # Nobody leaves: declarations are background DHT traffic only; every 10 min keeps the
        # event count (and the run's wall time) down over runs of up to 50 simulated hours.
        sets += ["workload.moe.server.declare_period_s=600",
                 "workload.moe.server.declare_expiration_s=1800"]
    if servers > 4:
        t = TIMEOUT_S["gpu" if gpu else "cpu"]
        sets += [f"workload.moe.client.forward_timeout_s={t}",
                 f"workload.moe.client.backward_timeout_s={t}",
                 "workload.moe.chain.avoid_failed_s=120"]
    if series == "learning_at_home_leave":
        kill = [{"at_s": round(warmup), "kind": "kill", "peers": list(range(0, servers, 10))}]
        sets.append("faults=" + json.dumps(kill))
    args = [binary, "run", SCENARIO, "--quiet", "--out", out]
    for s in sets:
        args += ["--set", s]
    return args


def run_one(args, out, collect_only=False):
    summary = os.path.join(out, "summary.json")
    if not os.path.exists(summary):
        if collect_only:
            return None
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    with open(summary) as f:
        return json.load(f)["moe"]["throughput"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="build/crowdtrain")
    p.add_argument("--out", default="runs/dmoe_throughput")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "1")))
    p.add_argument("--points", type=int, default=10)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--collect-only", action="store_true",
                   help="write the CSV from the runs already finished; start none")
    p.add_argument("--recalibrate", action="store_true",
                   help="time the blocks again (else reuse docs/results/dmoe_calibration.csv)")
    a = p.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    os.makedirs(a.out, exist_ok=True)
    points = 3 if a.quick else a.points
    pings = [200.0 * i / (points - 1) for i in range(points)]
    directions = ["forward"] if a.quick else ["forward", "forward_backward"]
    series = ["model_parallel", "model_parallel_latency", "learning_at_home"]
    # The extra series (home links, 40 servers, 10% leaving): forward+backward, 5 ping values.
    extras = [] if a.quick else ["learning_at_home_home_links", "learning_at_home_40",
                                 "learning_at_home_leave"]
    extra_pings = [200.0 * i / 4 for i in range(5)]

    calib_csv = "docs/results/dmoe_calibration.csv"
    if a.recalibrate or not os.path.exists(calib_csv):
        calib = calibration_rows(a.bin)
        write_csv(calib_csv, calib,
                  ["block", "kind", "compute_device", "phase", "batch", "experts", "threads",
                   "seconds", "flops", "flops_per_s", "source"])
    with open(calib_csv) as f:
        calib = list(csv.DictReader(f))

    jobs = []
    for block in BLOCKS:
        for device in (CPU_DEVICE, GPU_DEVICE):
            for direction in directions:
                flops = rate(calib, block, device, direction)
                cost = block_flops(calib, block, direction)
                todo = [(s, [0.0] if s == "model_parallel" else pings) for s in series]
                if direction == "forward_backward":
                    todo += [(s, extra_pings) for s in extras]
                for s, ping_list in todo:
                    for ping in ping_list:
                        tag = f"{block}/{'gpu' if device == GPU_DEVICE else 'cpu'}/{direction}/" \
                              f"{s}/ping{ping:.1f}"
                        out = os.path.join(a.out, tag)
                        jobs.append(((block, s, ping, device, direction,
                                      SERIES[s][0]), run_args(a.bin, out, block, device,
                                                              direction, s, ping, flops, cost),
                                     out))
    rows = []
    with futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        done = {pool.submit(run_one, args, out, a.collect_only): key for key, args, out in jobs}
        for f in futures.as_completed(done):
            block, s, ping, device, direction, trainers = done[f]
            t = f.result()
            if t is None:
                continue
            rows.append({"block": block, "series": s, "ping_ms": f"{ping:.1f}",
                         "samples_per_s": f"{t['samples_per_s']:.4f}", "compute_device": device,
                         "direction": direction, "trainers": trainers,
                         "failures": t["failures"]})
            print(f"{block} {device} {direction} {s} ping={ping:.1f}: "
                  f"{t['samples_per_s']:.2f} samples/s", file=sys.stderr)
    rows.sort(key=lambda r: (r["block"], r["compute_device"], r["direction"], r["series"],
                             float(r["ping_ms"])))
    write_csv("docs/results/dmoe_throughput.csv", rows,
              ["block", "series", "ping_ms", "samples_per_s", "compute_device", "direction",
               "trainers", "failures"])


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print(path)


if __name__ == "__main__":
    main()
