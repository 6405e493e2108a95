// Churn, preemption and scheduled faults, as a plan the world asks: whether a peer starts online,
// how long its next session and downtime last, trace sessions, the fault list. Each peer draws from
// its own "churn" stream, faults from the "faults" stream, so adding peers or faults never shifts
// other draws.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/churn_trace.h"
#include "core/random.h"
#include "core/runtime.h"
#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain::sim {

class ChurnPlan {
 public:
  static Result<ChurnPlan> create(const Scenario& s);

  bool sessions() const { return model_ == Model::kSessions; }
  bool trace() const { return model_ == Model::kTrace; }
  // Whether `p` is online at t = 0 (for the trace model: has a session starting at 0).
  bool initially_online(PeerId p);
  double next_session_s(PeerId p);
  double next_downtime_s(PeerId p);
  // The trace's sessions of `p` in simulated seconds (null when it has none), and the trace's
  // record for summary.json (file, format, mapping, which host each peer replays).
  const std::vector<TraceInterval>* trace_sessions(PeerId p) const;
  nlohmann::json trace_summary() const;

 private:
  enum class Model { kNone, kSessions, kTrace };
  Rng& stream(PeerId p);
  Model model_ = Model::kNone;
  uint64_t seed_ = 0;
  ChurnSpec spec_;
  std::map<PeerId, Rng> streams_;  // created on first use, so a peer's draws are its own
  MappedTrace trace_;
  size_t trace_hosts_ = 0;
};

}  // namespace crowdtrain::sim
