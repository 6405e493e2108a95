// Churn, preemption and scheduled faults, as a plan the world asks: whether a peer starts online,
// how long its next session and downtime last, trace sessions, the fault list. Each peer draws from
// its own "churn" stream, faults from the "faults" stream, so adding peers or faults never shifts
// other draws.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "core/random.h"
#include "core/runtime.h"
#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain::sim {

struct TraceSession {
  double join_s = 0.0;
  double leave_s = 0.0;  // < 0: stays until the end
};

// Reads "peer,join_s,leave_s" rows (header line optional; leave_s empty or -1 = stays). Errors name
// the line. Sessions of a peer must not overlap.
Result<std::map<PeerId, std::vector<TraceSession>>> load_churn_trace(const std::string& path,
                                                                     uint32_t peer_count);

class ChurnPlan {
 public:
  static Result<ChurnPlan> create(const Scenario& s);

  bool sessions() const { return model_ == Model::kSessions; }
  bool trace() const { return model_ == Model::kTrace; }
  // Whether `p` is online at t = 0 (for the trace model: has a session starting at 0).
  bool initially_online(PeerId p);
  double next_session_s(PeerId p);
  double next_downtime_s(PeerId p);
  const std::vector<TraceSession>* trace_sessions(PeerId p) const;

 private:
  enum class Model { kNone, kSessions, kTrace };
  Rng& stream(PeerId p);
  Model model_ = Model::kNone;
  uint64_t seed_ = 0;
  ChurnSpec spec_;
  std::map<PeerId, Rng> streams_;  // created on first use, so a peer's draws are its own
  std::map<PeerId, std::vector<TraceSession>> trace_;
};

}  // namespace crowdtrain::sim
