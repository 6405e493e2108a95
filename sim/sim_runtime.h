// SimRuntime: the Runtime of one simulated peer incarnation. Time is ns-3's virtual clock; timers
// are ns-3 events; send() and compute() go to the world (SimHost). shutdown() (the peer died)
// cancels every pending timer and compute completion, so nothing of a dead incarnation fires after
// its death. Single-threaded, on ns-3's run loop. Internal to sim/.
#pragma once

#include <ns3/event-id.h>

#include <functional>
#include <unordered_map>

#include "core/runtime.h"

namespace crowdtrain::sim {

class SimHost {
 public:
  virtual ~SimHost() = default;
  virtual void host_send(PeerId from, PeerId to, Message msg) = 0;
  // Virtual seconds a compute call of peer `p` takes, given its cost and the measured wall seconds.
  virtual double compute_seconds(PeerId p, const ComputeCost& cost, double measured_s) const = 0;
  virtual MetricsSink& sink() = 0;
};

class SimRuntime final : public Runtime {
 public:
  SimRuntime(SimHost& host, PeerId self, uint64_t seed);
  ~SimRuntime() override;
  SimRuntime(const SimRuntime&) = delete;
  SimRuntime& operator=(const SimRuntime&) = delete;

  // The peer died: cancel everything pending; later schedule/send/compute calls are ignored.
  void shutdown();
  size_t pending_timers() const { return timers_.size(); }

  PeerId self() const override { return self_; }
  Time now() const override;
  TimerId schedule(Time delay, std::function<void()> fn) override;
  void cancel(TimerId id) override;
  void send(PeerId to, Message msg) override;
  void compute(ComputeCost cost, std::function<void()> work, std::function<void()> done) override;
  Rng& rng() override { return rng_; }
  Metrics& metrics() override { return metrics_; }

 private:
  struct Timer {
    ns3::EventId event;
    std::function<void()> fn;
  };
  void fire(TimerId id);

  SimHost& host_;
  PeerId self_;
  Rng rng_;
  Metrics metrics_;
  bool dead_ = false;
  TimerId next_timer_ = 1;
  std::unordered_map<TimerId, Timer> timers_;
  int64_t compute_busy_until_ns_ = 0;
};

}  // namespace crowdtrain::sim
