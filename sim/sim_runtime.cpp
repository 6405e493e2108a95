#include "sim/sim_runtime.h"

#include <ns3/simulator.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace crowdtrain::sim {

SimRuntime::SimRuntime(SimHost& host, PeerId self, uint64_t seed)
    : host_(host),
      self_(self),
      rng_(seed),
      metrics_(&host.sink(), self, [] { return Time(ns3::Simulator::Now().GetNanoSeconds()); }) {}

SimRuntime::~SimRuntime() { shutdown(); }

void SimRuntime::shutdown() {
  dead_ = true;
  for (auto& [id, t] : timers_) ns3::Simulator::Cancel(t.event);
  timers_.clear();
}

Time SimRuntime::now() const { return Time(ns3::Simulator::Now().GetNanoSeconds()); }

TimerId SimRuntime::schedule(Time delay, std::function<void()> fn) {
  if (dead_) return 0;
  const TimerId id = next_timer_++;
  const int64_t d = std::max<int64_t>(delay.count(), 0);
  Timer& t = timers_[id];
  t.fn = std::move(fn);
  t.event = ns3::Simulator::Schedule(ns3::NanoSeconds(d), &SimRuntime::fire, this, id);
  return id;
}

void SimRuntime::cancel(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  ns3::Simulator::Cancel(it->second.event);
  timers_.erase(it);
}

void SimRuntime::fire(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  std::function<void()> fn = std::move(it->second.fn);
  timers_.erase(it);
  fn();
}

void SimRuntime::send(PeerId to, Message msg) {
  if (dead_) return;
  host_.host_send(self_, to, std::move(msg));
}

void SimRuntime::compute(ComputeCost cost, std::function<void()> work, std::function<void()> done) {
  if (dead_) return;
  // The work runs now (its results are only observable through `done`); the peer's device is busy
  // for the modelled or measured time, and calls queue behind each other.
  const auto t0 = std::chrono::steady_clock::now();
  if (work) work();
  const double measured_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double secs = host_.compute_seconds(self_, cost, measured_s);
  const int64_t now_ns = ns3::Simulator::Now().GetNanoSeconds();
  const int64_t start = std::max(now_ns, compute_busy_until_ns_);
  compute_busy_until_ns_ = start + static_cast<int64_t>(std::llround(secs * 1e9));
  metrics_.observe("compute_s", secs);
  if (done) schedule(Time(compute_busy_until_ns_ - now_ns), std::move(done));
}

}  // namespace crowdtrain::sim
