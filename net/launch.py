#!/usr/bin/env python3
"""`./crowdtrain launch SCENARIO --processes N`: a live swarm on this machine.

Starts N `crowdtrain live` peers (ids 0..N-1, ports BASE+id on 127.0.0.1) on one timeline (one
--epoch), with open membership: each peer is given only the addresses of up to three peers already
running (none for the first). The scenario's churn and kill faults are applied to the processes:
the launcher asks the simulator for the run's join/leave timeline (the same scenario with the
probe workload, so that the world's own churn plan, preemption cap and kill faults decide; the
draws do not depend on the workload) and then starts a process at each join and SIGKILLs it at
each leave (SIGTERM for a preemption, which lets the peer write its outputs). A restarted peer is
a new process with its own run folder (OUT/peer<i>/inc<k>/) and the peer's state folder
(OUT/peer<i>/state, where checkpoints live) shared across its incarnations.

At the end it writes OUT/summary.json (every incarnation, how it ended, the counters summed over
all of them, what was not honoured) and OUT/events.jsonl (every incarnation's events on the shared
timeline, in time order, each with its incarnation).

Network: run as root (and where `ip netns` works), each peer gets its own network namespace, joined
to the others by a veth pair on one bridge, and its access link is shaped by the kernel: a token
bucket (tbf) at the peer's upload rate on its side of the pair and at its download rate on the
bridge's side (at the rate divided by TBF_TCP_SHARE, so that a TCP stream gets the scenario's
rate, as in the simulator). A peer's rates are the scenario's `network.upload_mbps` / `download_mbps`: a number
as is; a distribution drawn by the launcher from the scenario's seed (not the simulator's own
draws). Latency: `network.delay_ms` is applied by the live transport's delay stage (netem is not
in these machines' kernel). Without root, or with --no-netns, the peers share plain loopback,
unshaped, and the launcher says so. Namespaces and the bridge are removed at the end.

usage: launch.py --bin CROWDTRAIN SCENARIO [--processes N] [--duration S] [--out DIR]
                 [--base-port P] [--secure] [--no-netns] [--lead S] [--set key=value]...
                 [--seed N]
"""
import random
import shutil
import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

MAX_INITIAL = 3       # initial peers given to a joining process
# One TCP stream through a tbf-shaped link carries about this share of the shaped rate (ZeroMQ
# framing, TCP/IP headers, the bucket's pacing: 18.4 Mb/s through 20, tests/net/
# launch_shaping_test.sh). The simulator's rates are what a stream gets, so links are shaped at the
# scenario's rate divided by it.
TBF_TCP_SHARE = 0.92
UP_BEFORE_S = 1.0     # a process counts as listening this long after its start
END_MARGIN_S = 15.0   # after the run's end, how long processes get to write their outputs


def parse_args(argv):
    p = argparse.ArgumentParser(prog="crowdtrain launch", description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True)
    p.add_argument("scenario")
    p.add_argument("--processes", type=int, default=0, help="peers (default: the scenario's)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds (default: the scenario's)")
    p.add_argument("--out", default="")
    p.add_argument("--base-port", type=int, default=0, help="default: derived from the pid")
    p.add_argument("--secure", action="store_true",
                   help="CurveZMQ on every socket, one keypair per peer and a swarm key")
    p.add_argument("--no-netns", action="store_true",
                   help="plain loopback even as root (no namespaces, no shaping)")
    p.add_argument("--lead", type=float, default=0.0,
                   help="seconds from now to the epoch (default: 2 + 0.25 per process)")
    p.add_argument("--set", action="append", default=[], dest="sets")
    p.add_argument("--seed", default="")
    a = p.parse_args(argv)
    if a.processes < 0 or a.processes > 1000:
        p.error("--processes must be 1..1000")
    return a


def sim_timeline(a, n, duration, workdir):
    """[(t_s, "join"|"leave", peer, reason)] of the run, from the simulator (probe workload)."""
    out = os.path.join(workdir, "sim_timeline")
    cmd = [a.bin, "run", a.scenario, "--quiet", "--out", out,
           "--set", f"peers.count={n}", "--set", f"duration_s={duration}",
           "--set", 'workload={"kind": "probe"}', "--set", 'output={"events": "lifecycle"}',
           "--set", "peers.clients=0"]  # the probe calls every peer: no clients when planning
    for s in a.sets:
        if not s.startswith(("workload", "peers.count", "peers.clients", "duration_s", "output")):
            cmd += ["--set", s]
    if a.seed:
        cmd += ["--seed", a.seed]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"crowdtrain launch: the simulator could not plan the churn:\n{r.stderr[-2000:]}")
    steps = []
    with open(os.path.join(out, "events.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            if e.get("ev") in ("join", "leave"):
                steps.append((e["t_ns"] / 1e9, e["ev"], e["peer"], e.get("reason", "")))
    summary = json.load(open(os.path.join(out, "summary.json")))
    return sorted(steps, key=lambda s: (s[0], s[1] != "leave")), summary


def client_peers(scenario, sets, n):
    """The peers that run as clients (--client): peers.clients, as core/scenario.h reads it (a
    fraction: the last floor(f * n + 0.5) ids; or a list of ids)."""
    spec = json.loads(sets["peers.clients"]) if "peers.clients" in sets else \
        scenario.get("peers", {}).get("clients", 0)
    if isinstance(spec, list):
        return {int(p) for p in spec if int(p) < n}
    k = int(math.floor(float(spec) * n + 0.5))
    return set(range(n - k, n))


def draw_mbps(spec, rng):
    """A rate in Mb/s from a scenario distribution (number, constant, uniform, exponential,
    lognormal, percentiles); None when unset."""
    if spec is None:
        return None
    if isinstance(spec, (int, float)):
        return float(spec)
    kind = spec.get("dist", "constant")
    if kind == "constant":
        return float(spec["value"])
    if kind == "uniform":
        return rng.uniform(spec["min"], spec["max"])
    if kind == "exponential":
        return rng.expovariate(1.0 / spec["mean"])
    if kind == "lognormal":
        return spec["median"] * pow(2.718281828459045, rng.gauss(0.0, spec["sigma"]))
    if kind == "percentiles":
        u, table = rng.random(), spec["table"]
        for (p0, v0), (p1, v1) in zip(table, table[1:]):
            if p0 <= u <= p1:
                return v0 if p1 == p0 else v0 + (u - p0) / (p1 - p0) * (v1 - v0)
        return table[-1][1]
    raise ValueError(f"network rate distribution {kind!r} is not supported by the launcher")


class Netns:
    """One network namespace per peer on a bridge, each access link shaped by tbf."""

    SUBNET = "10.213"

    def __init__(self, n, scenario, tag):
        self.n, self.tag = n, tag
        self.bridge = f"ctbr{tag}"
        net = scenario.get("network", {})
        rng = random.Random(int(scenario.get("seed", 1)) * 7919 + 17)
        self.rates = [(draw_mbps(net.get("upload_mbps"), rng),
                       draw_mbps(net.get("download_mbps"), rng)) for _ in range(n)]
        self.made = []

    def ns(self, peer):
        return f"ct{self.tag}n{peer}"

    def ip(self, peer):
        return f"{self.SUBNET}.{peer // 250}.{peer % 250 + 1}"

    def sh(self, *cmd):
        r = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")

    def shape(self, netns, dev, mbps):
        if mbps is None or mbps <= 0:
            return
        # A burst of at least one MTU-sized packet per timer tick; 64 KiB keeps fast links fast.
        burst = max(16 * 1024, int(mbps / TBF_TCP_SHARE * 1e6 / 8 / 250))
        rate = mbps / TBF_TCP_SHARE
        cmd = ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate:.3f}mbit",
               "burst", str(burst), "latency", "200ms"]
        self.sh(*(["ip", "netns", "exec", netns] + cmd if netns else cmd))

    def setup(self):
        self.sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        self.sh("ip", "link", "set", self.bridge, "up")
        for p in range(self.n):
            ns, host = self.ns(p), f"ctv{self.tag}p{p}"
            self.sh("ip", "netns", "add", ns)
            self.made.append(("netns", ns))
            self.sh("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.sh("ip", "link", "set", host, "master", self.bridge, "up")
            self.sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.ip(p)}/16", "dev", "eth0")
            self.sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            self.sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            up, down = self.rates[p]
            self.shape(ns, "eth0", up)
            self.shape(None, host, down)

    def teardown(self):
        for kind, name in reversed(self.made):
            cmd = ["ip", "netns", "del", name] if kind == "netns" else ["ip", "link", "del", name]
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.made = []


def open_netns(a, n, scenario):
    """The namespaces, set up; None (after saying why) for plain loopback."""
    if a.no_netns:
        return None
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None:
        print("[launch] not root (or no ip/tc): plain loopback, unshaped", file=sys.stderr)
        return None
    net = Netns(n, scenario, f"{os.getpid() % 100000}")
    try:
        net.setup()
    except (RuntimeError, ValueError) as e:
        net.teardown()
        print(f"[launch] network namespaces unavailable ({e}): plain loopback, unshaped",
              file=sys.stderr)
        return None
    return net


class Swarm:
    """The processes of the run, started and stopped on the shared timeline."""

    def __init__(self, a, n, duration, out, base_port, epoch, keys, swarm_key, netns, clients):
        self.a, self.n, self.duration, self.out, self.netns = a, n, duration, out, netns
        self.clients = clients  # peers behind NAT: --client, never an initial peer
        self.base_port, self.epoch, self.keys, self.swarm_key = base_port, epoch, keys, swarm_key
        self.running = {}       # peer -> (Popen, incarnation, started wall time)
        self.incarnations = []  # dicts, one per process started
        self.counts = {}        # peer -> incarnations so far

    def address(self, peer):
        host = self.netns.ip(peer) if self.netns else "127.0.0.1"
        return f"tcp://{host}:{self.base_port + peer}"

    def start(self, peer, reason):
        if peer in self.running:
            return
        k = self.counts.get(peer, 0)
        self.counts[peer] = k + 1
        d = os.path.join(self.out, f"peer{peer}", f"inc{k}")
        os.makedirs(d, exist_ok=True)
        state = os.path.join(self.out, f"peer{peer}", "state")
        os.makedirs(state, exist_ok=True)
        if not os.path.lexists(os.path.join(d, "state")):
            os.symlink(os.path.join("..", "state"), os.path.join(d, "state"))
        now = time.time()
        callable_ = [p for p in self.running if p not in self.clients]
        up = [p for p in callable_ if now - self.running[p][2] >= UP_BEFORE_S]
        up = sorted(up)[:MAX_INITIAL] or sorted(callable_)[:MAX_INITIAL]
        cmd = ["ip", "netns", "exec", self.netns.ns(peer)] if self.netns else []
        cmd += [self.a.bin, "live", self.a.scenario, "--id", str(peer)]
        cmd += ["--client"] if peer in self.clients else ["--listen", self.address(peer)]
        cmd += ["--epoch", f"{self.epoch:.3f}", "--duration", str(self.duration), "--out", d,
                "--quiet"]
        if up:
            cmd += ["--initial-peers", ",".join(
                self.address(p) + (f"#{self.keys[p]}" if self.keys else "") for p in up)]
        if self.keys:
            cmd += ["--key-file", os.path.join(self.out, f"peer{peer}", "key"),
                    "--swarm-key-file", self.swarm_key]
        # The swarm's size is --processes: roles, data shards and group sizes follow it.
        cmd += ["--set", f"peers.count={self.n}"]
        for s in self.a.sets:
            cmd += ["--set", s]
        if self.a.seed:
            cmd += ["--seed", self.a.seed]
        log = open(os.path.join(d, "live.log"), "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.running[peer] = (proc, k, now)
        self.incarnations.append({"peer": peer, "incarnation": k, "reason": reason,
                                  "start_s": now - self.epoch, "dir": d, "pid": proc.pid})

    def stop(self, peer, reason):
        if peer not in self.running:
            return
        proc, k, _ = self.running.pop(peer)
        sig = signal.SIGTERM if reason == "preempted" else signal.SIGKILL
        proc.send_signal(sig)
        inc = self.find(peer, k)
        inc["signal"] = int(sig)
        inc["stop_reason"] = reason
        inc["stop_s"] = time.time() - self.epoch
        inc["proc"] = proc

    def find(self, peer, k):
        return next(i for i in self.incarnations if i["peer"] == peer and i["incarnation"] == k)

    def finish(self):
        deadline = self.epoch + self.duration + END_MARGIN_S
        for peer, (proc, k, _) in list(self.running.items()):
            self.find(peer, k)["proc"] = proc
        for inc in self.incarnations:
            proc = inc.pop("proc", None)
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                inc["stop_reason"] = "overran the run's end"
            inc["exit"] = proc.returncode


def make_keys(a, n, out):
    """Per-peer keypairs (public keys by peer) and the swarm key file, or ({}, "")."""
    if not a.secure:
        return {}, ""
    keys = {}
    for p in range(n):
        os.makedirs(os.path.join(out, f"peer{p}"), exist_ok=True)
        r = subprocess.run([a.bin, "live", "--key-file", os.path.join(out, f"peer{p}", "key"),
                            "--show-key"], stdout=subprocess.PIPE, text=True, check=True)
        keys[p] = r.stdout.strip()
    swarm = os.path.join(out, "swarm_key")
    if not os.path.exists(swarm):
        old = os.umask(0o077)
        with open(swarm, "w") as f:
            f.write("swarm=" + os.urandom(32).hex() + "\n")
        os.umask(old)
    return keys, swarm


def merge(out, swarm, timeline, sim_summary, n, duration, a):
    """OUT/summary.json and OUT/events.jsonl from every incarnation's."""
    counters, events, not_honoured = {}, [], []
    for inc in swarm.incarnations:
        inc.pop("proc", None)
        try:
            s = json.load(open(os.path.join(inc["dir"], "summary.json")))
        except (OSError, ValueError):
            inc["summary"] = None  # killed before it wrote one
        else:
            inc["summary"] = os.path.join(inc["dir"], "summary.json")
            for k, v in s.get("counters", {}).items():
                if isinstance(v, (int, float)):
                    counters[k] = counters.get(k, 0) + v
            not_honoured = not_honoured or s.get("not_honoured", [])
        try:
            with open(os.path.join(inc["dir"], "events.jsonl")) as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue  # the last line of a process killed mid-write
                    e["incarnation"] = inc["incarnation"]
                    events.append(e)
        except OSError:
            pass
    events.sort(key=lambda e: (e.get("t_ns", 0), e.get("peer", 0)))
    with open(os.path.join(out, "events.jsonl"), "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    summary = {
        "world": "live-launch",
        "scenario": a.scenario,
        "processes": n,
        "duration_s": duration,
        "epoch_unix_s": swarm.epoch,
        "security": "curve" if a.secure else "plain",
        "membership": "open",
        "network": (("a network namespace per peer on a bridge, access links shaped by tbf "
                     "(rates drawn by the launcher)") if swarm.netns else
                    "loopback: no network namespaces or kernel shaping (bandwidth is loopback's)") +
                   "; network.delay_ms is honoured by the live transport",
        "links_mbps": ([{"peer": p, "upload": u, "download": d}
                        for p, (u, d) in enumerate(swarm.netns.rates)] if swarm.netns else None),
        "planned": {"joins": sum(1 for s in timeline if s[1] == "join"),
                    "leaves": sum(1 for s in timeline if s[1] == "leave"),
                    "from": "the simulator's churn plan for this scenario (probe workload)",
                    "sim_joins": sim_summary.get("counters", {}).get("joins")},
        "incarnations": swarm.incarnations,
        "counters": counters,
        "not_honoured": [x for x in not_honoured if not x.startswith("churn")],
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv):
    a = parse_args(argv)
    a.bin = os.path.abspath(a.bin)
    scenario = json.load(open(a.scenario))
    sets = dict(x.split("=", 1) for x in a.sets if "=" in x)  # the run's own --set values win
    n = a.processes or int(sets.get("peers.count", scenario.get("peers", {}).get("count", 0)))
    duration = a.duration or float(sets.get("duration_s", scenario.get("duration_s", 0)))
    if not 1 <= n <= 1000 or duration <= 0:
        sys.exit("crowdtrain launch: need 1..1000 processes and a duration > 0")
    out = a.out or os.path.join("runs", scenario.get("name", "scenario"), "launch")
    os.makedirs(out, exist_ok=True)
    base = a.base_port or 20000 + (os.getpid() * 37 % 20000)
    with tempfile.TemporaryDirectory() as work:
        timeline, sim_summary = sim_timeline(a, n, duration, work)
    keys, swarm_key = make_keys(a, n, out)
    netns = open_netns(a, n, sim_summary.get("scenario_resolved") or scenario)
    clients = client_peers(scenario, sets, n)
    try:
        return run(a, n, duration, out, base, keys, swarm_key, netns, timeline, sim_summary,
                   clients)
    finally:
        if netns:
            netns.teardown()


def run(a, n, duration, out, base, keys, swarm_key, netns, timeline, sim_summary, clients):
    where = (f"network namespaces {netns.ns(0)}.. on bridge {netns.bridge}" if netns else
             "plain loopback, unshaped")
    print(f"[launch] {n} live peers of {a.scenario} ({where}; ports {base}..)", file=sys.stderr)
    epoch = time.time() + (a.lead or 2.0 + 0.25 * n)
    swarm = Swarm(a, n, duration, out, base, epoch, keys, swarm_key, netns, clients)
    if clients:
        print(f"[launch] clients (behind NAT, --client): {sorted(clients)}", file=sys.stderr)
    print(f"[launch] {len(timeline)} joins and leaves planned; epoch {epoch:.3f}; outputs in {out}",
          file=sys.stderr)
    try:
        for t, kind, peer, reason in timeline:
            # A process starts a little before its join time (its start-up takes about a second;
            # a peer's join at t = 0 starts before the epoch and waits for it).
            lead = 1.0 if kind == "join" else 0.0
            wait = epoch + t - lead - time.time()
            if wait > 0:
                time.sleep(wait)
            (swarm.start if kind == "join" else swarm.stop)(peer, reason)
        swarm.finish()
    except BaseException:  # Ctrl-C or a failure: no process outlives the launcher
        for proc, _, _ in swarm.running.values():
            proc.kill()
        raise
    s = merge(out, swarm, timeline, sim_summary, n, duration, a)
    ended = sum(1 for i in s["incarnations"] if i.get("exit") == 0)
    # A process that ended otherwise than by its exit code 0 or the launcher's own signal failed.
    bad = [i for i in s["incarnations"] if i.get("exit") not in (0, -i.get("signal", 0))]
    for i in bad:
        print(f"[launch] peer {i['peer']} incarnation {i['incarnation']} failed (exit "
              f"{i.get('exit')}); its log: {i['dir']}/live.log", file=sys.stderr)
    print(f"[launch] done: {len(s['incarnations'])} processes ({ended} ran to the end), "
          f"{s['counters'].get('messages_delivered', 0)} messages delivered; {out}/summary.json",
          file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
