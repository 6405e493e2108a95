// Simulator benchmarks. Message level: wall time per delivered message at N peers, each peer
// sending 1 KB messages to random peers, against a bare ns-3 scheduler loop that does the same
// number of messages as 3 chained events each (the floor any ns-3 message model pays). Same binary,
// same run: compare the two per-message times, not absolute numbers.
#include <benchmark/benchmark.h>
#include <ns3/core-module.h>

#include "core/random.h"
#include "sim/network.h"
#include "sim/topology.h"

namespace {

using crowdtrain::Message;
using crowdtrain::MsgType;
using crowdtrain::PeerId;
using crowdtrain::Rng;

constexpr int kMessagesPerPeer = 2;  // over one simulated second

void use_heap_scheduler() {
  ns3::Simulator::Destroy();
  ns3::ObjectFactory f;
  f.SetTypeId("ns3::HeapScheduler");
  ns3::Simulator::SetScheduler(f);
}

crowdtrain::Scenario home_scenario(uint32_t peers) {
  crowdtrain::Scenario s;
  s.peers.count = peers;
  s.network.access_latency_ms.kind = crowdtrain::DistSpec::Kind::kLognormal;
  s.network.access_latency_ms.median = 8;
  s.network.access_latency_ms.sigma = 0.6;
  s.network.upload_mbps = crowdtrain::DistSpec::constant(30);
  s.network.download_mbps = crowdtrain::DistSpec::constant(120);
  return s;
}

void BM_MessageLevel(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  const auto s = home_scenario(n);
  auto topo = crowdtrain::sim::Topology::build(s).value();
  uint64_t delivered = 0;
  for (auto _ : state) {
    use_heap_scheduler();
    auto net = crowdtrain::sim::make_message_network(
        topo, s.network, 1, [&delivered](PeerId, PeerId, Message) { ++delivered; });
    for (PeerId p = 0; p < n; ++p) net->peer_up(p);
    Rng rng(5);
    for (PeerId p = 0; p < n; ++p) {
      for (int k = 0; k < kMessagesPerPeer; ++k) {
        const PeerId to = static_cast<PeerId>(rng.uniform_int(n));
        ns3::Simulator::Schedule(ns3::NanoSeconds(rng.uniform_int(1000000000)), [&net, p, to] {
          Message m(MsgType::kProbeRequest);
          m.add_filler(crowdtrain::kTagPayload, 1024);
          net->send(p, to, std::move(m), 1024 + 40);
        });
      }
    }
    ns3::Simulator::Run();
    net.reset();
    ns3::Simulator::Destroy();
  }
  state.SetItemsProcessed(static_cast<int64_t>(delivered));
  state.counters["per_msg_ns"] = benchmark::Counter(
      static_cast<double>(delivered), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// The floor: the same messages as three chained bare events (send, arrival, delivery), each doing
// the busy-until arithmetic on plain arrays, no Message, no model object.
struct Bare {
  std::vector<int64_t> up_busy, down_busy;
  uint64_t delivered = 0;
  void send(PeerId from, PeerId to) {
    const int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    const int64_t start = std::max(now, up_busy[from]);
    up_busy[from] = start + 273000;
    ns3::Simulator::Schedule(ns3::NanoSeconds(start - now + 20000000), &Bare::arrive, this, to);
  }
  void arrive(PeerId to) {
    const int64_t now = ns3::Simulator::Now().GetNanoSeconds();
    const int64_t done = std::max(now, down_busy[to]) + 68000;
    down_busy[to] = done;
    ns3::Simulator::Schedule(ns3::NanoSeconds(done - now), &Bare::deliver, this);
  }
  void deliver() { ++delivered; }
};

void BM_BareScheduler3Events(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  uint64_t delivered = 0;
  for (auto _ : state) {
    use_heap_scheduler();
    Bare b;
    b.up_busy.assign(n, 0);
    b.down_busy.assign(n, 0);
    Rng rng(5);
    for (PeerId p = 0; p < n; ++p) {
      for (int k = 0; k < kMessagesPerPeer; ++k) {
        const PeerId to = static_cast<PeerId>(rng.uniform_int(n));
        ns3::Simulator::Schedule(ns3::NanoSeconds(rng.uniform_int(1000000000)), &Bare::send, &b, p,
                                 to);
      }
    }
    ns3::Simulator::Run();
    delivered += b.delivered;
    ns3::Simulator::Destroy();
  }
  state.SetItemsProcessed(static_cast<int64_t>(delivered));
  state.counters["per_msg_ns"] = benchmark::Counter(
      static_cast<double>(delivered), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_MessageLevel)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BareScheduler3Events)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
