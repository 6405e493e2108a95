#include "sim/churn.h"

#include <algorithm>

namespace crowdtrain::sim {

Result<ChurnPlan> ChurnPlan::create(const Scenario& s) {
  ChurnPlan plan;
  plan.seed_ = s.seed;
  plan.spec_ = s.churn;
  if (s.churn.model == ChurnModel::kSessions) {
    plan.model_ = Model::kSessions;
  } else if (s.churn.model == ChurnModel::kTrace) {
    plan.model_ = Model::kTrace;
    auto t = read_trace(s.churn.trace);
    if (!t.ok()) return Status::error(s.churn.trace.key + ": " + t.error());
    auto mapped = map_trace(t.value(), s.churn.trace, s.peers.count, s.seed);
    if (!mapped.ok()) return Status::error(s.churn.trace.key + ": " + mapped.error());
    plan.trace_hosts_ = t.value().hosts.size();
    plan.trace_ = std::move(mapped.value());
  }
  return plan;
}

Rng& ChurnPlan::stream(PeerId p) {
  auto it = streams_.find(p);
  if (it == streams_.end()) it = streams_.emplace(p, Rng(derive_seed(seed_, "churn", p))).first;
  return it->second;
}

bool ChurnPlan::initially_online(PeerId p) {
  switch (model_) {
    case Model::kNone:
      return true;
    case Model::kSessions:
      return stream(p).bernoulli(spec_.initial_online_fraction);
    case Model::kTrace: {
      auto it = trace_.sessions.find(p);
      return it != trace_.sessions.end() && it->second.front().start_s == 0.0;
    }
  }
  return true;
}

double ChurnPlan::next_session_s(PeerId p) { return spec_.session_s.sample(stream(p)); }
double ChurnPlan::next_downtime_s(PeerId p) { return spec_.downtime_s.sample(stream(p)); }

const std::vector<TraceInterval>* ChurnPlan::trace_sessions(PeerId p) const {
  auto it = trace_.sessions.find(p);
  return it == trace_.sessions.end() ? nullptr : &it->second;
}

nlohmann::json ChurnPlan::trace_summary() const {
  double online_s = 0.0;
  size_t sessions = 0, closed = 0;
  for (const auto& [peer, list] : trace_.sessions) {
    for (const TraceInterval& t : list) {
      ++sessions;
      if (t.end_s >= 0.0) {
        ++closed;
        online_s += t.end_s - t.start_s;
      }
    }
  }
  return {{"path", spec_.trace.path},
          {"format", enum_name(trace_format_names(), spec_.trace.format)},
          {"mapping", enum_name(trace_mapping_names(), spec_.trace.mapping)},
          {"time_scale", spec_.trace.time_scale},
          {"start_s", spec_.trace.start_s},
          {"hosts_in_trace", trace_hosts_},
          {"peers_with_sessions", trace_.sessions.size()},
          {"sessions", sessions},
          {"mean_closed_session_s", closed > 0 ? online_s / static_cast<double>(closed) : 0.0},
          {"peer_hosts", trace_.peer_hosts}};
}

}  // namespace crowdtrain::sim
