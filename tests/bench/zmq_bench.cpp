// The live transport's cost of CurveZMQ: one message of 4 or 40 MB from one ZmqRuntime to another
// on loopback in the same process, plain against encrypted (each end authenticated, every byte
// encrypted by ZeroMQ's I/O threads), side by side. Bytes/s counts the message's bytes.
// BM_AllReduce: our butterfly all-reduce (core/averaging/allreduce.h) of 10M float32 between two
// ZmqRuntimes of this process, their loops stepped in turn on one thread (so its time is the
// two peers' CPU work added up, plus what ZeroMQ's I/O threads overlap), plain and encrypted.
//   ./zmq_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "core/averaging/allreduce.h"
#include "core/message.h"
#include "core/metrics.h"
#include "net/curve_keys.h"
#include "net/zmq_runtime.h"

namespace crowdtrain::net {
namespace {

struct Pair {
  MetricsSink sink_a, sink_b;
  std::unique_ptr<ZmqRuntime> a, b;
  int64_t received = 0;
};

CurveKeypair keys(const std::string& name) {
  const std::string path = "/tmp/zmq_bench_" + name + "_" + std::to_string(::getpid());
  std::remove(path.c_str());
  auto k = load_or_create_keypair(path);
  std::remove(path.c_str());
  return k.value();
}

std::unique_ptr<Pair> make_pair(bool secure) {
  auto p = std::make_unique<Pair>();
  ZmqRuntimeOptions oa = ZmqRuntimeOptions().id(0), ob = ZmqRuntimeOptions().id(1);
  CurveKeypair ka, kb;
  if (secure) {
    ka = keys("a");
    kb = keys("b");
    oa.curve_public_key(ka.public_key).curve_secret_key(ka.secret_key);
    ob.curve_public_key(kb.public_key).curve_secret_key(kb.secret_key);
  }
  p->a = ZmqRuntime::create(oa, p->sink_a).value();
  p->b = ZmqRuntime::create(ob, p->sink_b).value();
  (void)p->a->add_peer(1, p->b->endpoint(), kb.public_key);
  (void)p->b->add_peer(0, p->a->endpoint(), ka.public_key);
  p->b->set_handler([q = p.get()](PeerId, Message) { ++q->received; });
  (void)p->a->await_connections(std::chrono::seconds(5));
  return p;
}

// One message of `bytes` across, waited for.
void BM_Transfer(benchmark::State& state) {
  const bool secure = state.range(0) != 0;
  const auto bytes = static_cast<uint64_t>(state.range(1));
  auto p = make_pair(secure);
  Message m(MsgType::kTransferRequest);
  m.add_filler(kTagPayload, bytes);
  for (auto _ : state) {
    const int64_t want = p->received + 1;
    p->a->send(1, m);
    while (p->received < want) {
      p->a->run_until(p->a->now() + std::chrono::milliseconds(1));
      p->b->run_until(p->b->now() + std::chrono::milliseconds(1));
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetLabel(secure ? "curve" : "plain");
}
BENCHMARK(BM_Transfer)
    ->Args({0, 4 << 20})
    ->Args({1, 4 << 20})
    ->Args({0, 40 << 20})
    ->Args({1, 40 << 20})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One all-reduce of `floats` float32 between the pair's two runtimes, checked: both hold the mean.
void BM_AllReduce(benchmark::State& state) {
  const bool secure = state.range(0) != 0;
  const int64_t floats = state.range(1);
  auto p = make_pair(secure);
  const at::Tensor va = torch::full({floats}, 1.0f), vb = torch::full({floats}, 3.0f);
  uint64_t round = 0;
  for (auto _ : state) {
    AllReduceGroup group{++round, round, {GroupMember{0}, GroupMember{1}}};
    int done = 0;
    auto check = [&done](Result<AllReduceOutcome> r) {
      CT_CHECK(r.ok() && r->stats.elements_local == 0);
      ++done;
    };
    const auto options = AllReduceOptions().timeout(std::chrono::seconds(30));
    AllReduceRound ra(*p->a, group, va, options, check), rb(*p->b, group, vb, options, check);
    p->a->set_handler([&ra](PeerId from, Message m) { ra.handle(from, m); });
    p->b->set_handler([&rb](PeerId from, Message m) { rb.handle(from, m); });
    ra.start();
    rb.start();
    while (done < 2) {
      p->a->run_until(p->a->now() + std::chrono::microseconds(200));
      p->b->run_until(p->b->now() + std::chrono::microseconds(200));
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * floats * 4);
  state.SetLabel(secure ? "curve" : "plain");
}
BENCHMARK(BM_AllReduce)
    ->Args({0, 10'000'000})
    ->Args({1, 10'000'000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace crowdtrain::net
