// A fake world for unit tests of the engine (leveldb's memenv, TigerBeetle's packet simulator):
// many peers in one process, virtual time driven by the test, a network whose latency, loss and
// "black holes" the test sets, and hooks to drop, delay or tamper with specific messages.
// Deterministic.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <tuple>
#include <vector>

#include "core/runtime.h"

namespace crowdtrain::testing {

class FakeWorld;

class FakeRuntime final : public Runtime {
 public:
  FakeRuntime(FakeWorld& world, PeerId self, uint64_t seed);
  PeerId self() const override { return self_; }
  Time now() const override;
  TimerId schedule(Time delay, std::function<void()> fn) override;
  void cancel(TimerId id) override;
  void send(PeerId to, Message msg) override;
  void compute(ComputeCost cost, std::function<void()> work, std::function<void()> done) override;
  Rng& rng() override { return rng_; }
  Metrics& metrics() override { return metrics_; }

 private:
  FakeWorld& world_;
  PeerId self_;
  Rng rng_;
  Metrics metrics_;
};

class FakeWorld {
 public:
  // A message in flight; the filter may change it, or return false to drop it.
  using Filter = std::function<bool(PeerId from, PeerId to, Message& msg)>;

  explicit FakeWorld(uint64_t seed = 1) : seed_(seed) {}

  FakeRuntime& add_peer(PeerId id) {
    runtimes_[id] = std::make_unique<FakeRuntime>(*this, id, derive_seed(seed_, "fake", id));
    return *runtimes_[id];
  }
  void attach(PeerId id, PeerApp* app) { apps_[id] = app; }
  void detach(PeerId id) { apps_.erase(id); }  // the peer is down: messages to it vanish

  Time latency = std::chrono::milliseconds(10);
  double loss = 0.0;
  Filter filter;
  MetricsSink sink;

  Time now() const { return now_; }
  uint64_t schedule_at(Time at, std::function<void()> fn) {
    const uint64_t id = next_id_++;
    queue_.push({at, id});
    fns_[id] = std::move(fn);
    return id;
  }
  void cancel(uint64_t id) { fns_.erase(id); }
  void send(PeerId from, PeerId to, Message msg) {
    ++sent;
    if (loss > 0 && rng_.bernoulli(loss)) return;
    if (filter && !filter(from, to, msg)) return;
    auto shared = std::make_shared<Message>(std::move(msg));
    schedule_at(now_ + latency, [this, from, to, shared] {
      auto it = apps_.find(to);
      if (it == apps_.end()) return;
      ++delivered;
      it->second->on_message(from, std::move(*shared));
    });
  }
  // Runs events until the queue is empty or time passes `until`.
  void run_until(Time until) {
    while (!queue_.empty() && queue_.top().first <= until) {
      auto [t, id] = queue_.top();
      queue_.pop();
      auto it = fns_.find(id);
      if (it == fns_.end()) continue;
      auto fn = std::move(it->second);
      fns_.erase(it);
      now_ = t;
      fn();
    }
    if (now_ < until) now_ = until;
  }
  void run_for(Time d) { run_until(now_ + d); }

  uint64_t sent = 0, delivered = 0;

 private:
  using Entry = std::pair<Time, uint64_t>;
  uint64_t seed_;
  Rng rng_{7};
  Time now_{0};
  uint64_t next_id_ = 1;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue_;
  std::map<uint64_t, std::function<void()>> fns_;
  std::map<PeerId, std::unique_ptr<FakeRuntime>> runtimes_;
  std::map<PeerId, PeerApp*> apps_;
};

inline FakeRuntime::FakeRuntime(FakeWorld& world, PeerId self, uint64_t seed)
    : world_(world),
      self_(self),
      rng_(seed),
      metrics_(&world.sink, self, [&world] { return world.now(); }) {}
inline Time FakeRuntime::now() const { return world_.now(); }
inline TimerId FakeRuntime::schedule(Time delay, std::function<void()> fn) {
  return world_.schedule_at(world_.now() + delay, std::move(fn));
}
inline void FakeRuntime::cancel(TimerId id) { world_.cancel(id); }
inline void FakeRuntime::send(PeerId to, Message msg) { world_.send(self_, to, std::move(msg)); }
inline void FakeRuntime::compute(ComputeCost cost, std::function<void()> work,
                                 std::function<void()> done) {
  if (work) work();
  if (done) schedule(Time(static_cast<int64_t>(cost.flops)), std::move(done));  // 1 flop = 1 ns
}

}  // namespace crowdtrain::testing
