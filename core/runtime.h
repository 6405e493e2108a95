// The seam: everything a peer's engine may ask of the world. The simulated world (sim/, ns-3,
// virtual time) and the live world (net/, ZeroMQ, steady clock) implement it, and so does
// tests/fake_runtime.h. The engine owns no socket, clock or thread; it is driven by PeerApp
// callbacks.
//
// Threading contract: single-threaded. Every callback (timers, message delivery, compute
// completion) runs on the runtime's loop, never concurrently with another callback of the same
// peer. Lifetime: a Runtime outlives the PeerApp built on it. When a peer dies (churn, a fault),
// the world stops its runtime: nothing it scheduled fires afterwards, and a restarted peer is a new
// incarnation with a new Runtime.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/message.h"
#include "core/metrics.h"
#include "core/random.h"
#include "core/time.h"

namespace crowdtrain {

using PeerId = uint32_t;
constexpr PeerId kNoPeer = 0xFFFFFFFFu;
using TimerId = uint64_t;

// What a piece of compute costs, for the simulated world's compute-time model.
struct ComputeCost {
  double flops = 0.0;  // floating-point operations of the call
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  virtual PeerId self() const = 0;
  virtual Time now() const = 0;
  // Calls `fn` after `delay` (>= 0). Returns an id for cancel(); ids are never reused by a runtime.
  virtual TimerId schedule(Time delay, std::function<void()> fn) = 0;
  // Cancels a timer that has not fired; a no-op for one that fired or was cancelled.
  virtual void cancel(TimerId id) = 0;
  // Sends `msg` to `to`. It may be lost, late or reordered; there is no delivery report.
  virtual void send(PeerId to, Message msg) = 0;
  // Runs `work` (LibTorch) and calls `done` when it is over: after the modelled or measured virtual
  // time in the simulated world, when it ends in the live one. A peer computes one call at a time;
  // calls queue.
  virtual void compute(ComputeCost cost, std::function<void()> work,
                       std::function<void()> done) = 0;
  virtual Rng& rng() = 0;  // this peer incarnation's seeded stream
  virtual Metrics& metrics() = 0;
};

// A peer's engine, as the world sees it. The world builds one per peer incarnation on its Runtime,
// calls start() when the peer joins and on_message() for every message delivered to it.
class PeerApp {
 public:
  virtual ~PeerApp() = default;
  virtual void start() = 0;
  virtual void on_message(PeerId from, Message msg) = 0;
  // The peer will be killed after `remaining` (preemption notice). Default: nothing to hand over.
  virtual void on_preemption_notice(Time remaining) {}
  // Called once when the peer leaves gracefully (end of run); not called when it is killed.
  virtual void stop() {}
};

}  // namespace crowdtrain
