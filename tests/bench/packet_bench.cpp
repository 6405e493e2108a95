// Packet-level benchmark: N peers in 4 regions (80 ms RTT between regions, 5-20 ms access latency,
// 30/120 Mbit/s home links), each sending 1 KB requests to random peers as a Poisson process at
// 1/s and answering each request with a 1 KB response: the probe workload without the world around
// it. Reports wall time per simulated second of the run itself (set-up and tear-down excluded) and
// ns-3 events per second. Run for 20 simulated seconds so that idle connections start closing (10
// s).
#include <benchmark/benchmark.h>
#include <ns3/core-module.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "core/random.h"
#include "sim/network.h"
#include "sim/topology.h"

namespace {

using crowdtrain::Message;
using crowdtrain::MsgType;
using crowdtrain::PeerId;
using crowdtrain::Rng;

std::string write_matrix() {
  const std::string path = "/tmp/packet_bench_rtt.csv";
  std::FILE* f = std::fopen(path.c_str(), "w");
  std::fprintf(f, ",a,b,c,d\na,0,80,80,80\nb,80,0,80,80\nc,80,80,0,80\nd,80,80,80,0\n");
  std::fclose(f);
  return path;
}

crowdtrain::Scenario home_scenario(uint32_t peers) {
  crowdtrain::Scenario s;
  s.peers.count = peers;
  s.network.fidelity = crowdtrain::Fidelity::kPacket;
  s.network.access_latency_ms.kind = crowdtrain::DistSpec::Kind::kUniform;
  s.network.access_latency_ms.min = 5;
  s.network.access_latency_ms.max = 20;
  s.network.upload_mbps = crowdtrain::DistSpec::constant(30);
  s.network.download_mbps = crowdtrain::DistSpec::constant(120);
  s.network.regions.rtt_csv = write_matrix();
  return s;
}

struct ProbeLoad {
  crowdtrain::sim::NetworkModel* net = nullptr;
  Rng rng{5};
  uint32_t peers = 0;
  double until_s = 0;
  uint64_t responses = 0;

  void next(PeerId p) {
    const double at = ns3::Simulator::Now().GetSeconds() + rng.exponential(1.0);
    if (at >= until_s) return;
    ns3::Simulator::Schedule(ns3::Seconds(at) - ns3::Simulator::Now(), [this, p] {
      PeerId to = static_cast<PeerId>(rng.uniform_int(peers - 1));
      if (to >= p) ++to;
      Message m(MsgType::kProbeRequest);
      m.add_filler(crowdtrain::kTagPayload, 1024);
      const uint64_t wire = m.wire_size();
      net->send(p, to, std::move(m), wire);
      next(p);
    });
  }
  void on_deliver(PeerId from, PeerId to, Message msg) {
    if (msg.type != MsgType::kProbeRequest) {
      ++responses;
      return;
    }
    Message r(MsgType::kProbeResponse);
    r.add_filler(crowdtrain::kTagPayload, 1024);
    const uint64_t wire = r.wire_size();
    net->send(to, from, std::move(r), wire);
  }
};

void BM_PacketLevelProbe(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  const double sim_s = static_cast<double>(state.range(1));
  const auto s = home_scenario(n);
  auto topo = crowdtrain::sim::Topology::build(s).value();
  double run_wall_s = 0;
  uint64_t events = 0, responses = 0;
  for (auto _ : state) {
    state.PauseTiming();
    ns3::Simulator::Destroy();
    ProbeLoad load;
    load.peers = n;
    load.until_s = sim_s;
    auto net = crowdtrain::sim::make_packet_network(
        topo, s.network, 1, [&load](PeerId f, PeerId t, Message m) { load.on_deliver(f, t, m); });
    load.net = net.get();
    for (PeerId p = 0; p < n; ++p) net->peer_up(p);
    for (PeerId p = 0; p < n; ++p) load.next(p);
    ns3::Simulator::Stop(ns3::Seconds(sim_s));
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    ns3::Simulator::Run();
    run_wall_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.PauseTiming();
    events += ns3::Simulator::GetEventCount();
    responses += load.responses;
    net.reset();
    ns3::Simulator::Destroy();
    state.ResumeTiming();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["wall_per_sim_s"] = run_wall_s / iters / sim_s;
  state.counters["events_per_wall_s"] = static_cast<double>(events) / run_wall_s;
  state.counters["responses"] = static_cast<double>(responses) / iters;
}

BENCHMARK(BM_PacketLevelProbe)
    ->Args({2000, 20})
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
