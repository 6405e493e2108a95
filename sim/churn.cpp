#include "sim/churn.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace crowdtrain::sim {

Result<std::map<PeerId, std::vector<TraceSession>>> load_churn_trace(const std::string& path,
                                                                     uint32_t peer_count) {
  std::ifstream in(path);
  if (!in) return Status::error(path + ": cannot open the churn trace");
  std::map<PeerId, std::vector<TraceSession>> out;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line_no == 1 && line.find("peer") != std::string::npos) continue;  // header
    std::istringstream cells(line);
    std::string a, b, c;
    std::getline(cells, a, ',');
    std::getline(cells, b, ',');
    std::getline(cells, c, ',');
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    char* end = nullptr;
    const long long peer = std::strtoll(a.c_str(), &end, 10);
    if (a.empty() || *end != '\0' || peer < 0 || peer >= static_cast<long long>(peer_count)) {
      return Status::error(where + "peer '" + a + "' is not an id below peers.count (" +
                           std::to_string(peer_count) + ")");
    }
    const double join = std::strtod(b.c_str(), &end);
    if (b.empty() || *end != '\0' || !(join >= 0.0)) {
      return Status::error(where + "join_s '" + b + "' is not a non-negative number");
    }
    double leave = -1.0;
    if (!c.empty()) {
      leave = std::strtod(c.c_str(), &end);
      if (*end != '\0' || (leave >= 0.0 && leave <= join) || (leave < 0.0 && leave != -1.0)) {
        return Status::error(where + "leave_s '" + c + "' must be after join_s (or -1 / empty)");
      }
    }
    out[static_cast<PeerId>(peer)].push_back({join, leave});
  }
  for (auto& [peer, sessions] : out) {
    std::sort(sessions.begin(), sessions.end(),
              [](const TraceSession& x, const TraceSession& y) { return x.join_s < y.join_s; });
    for (size_t i = 1; i < sessions.size(); ++i) {
      const double prev_leave = sessions[i - 1].leave_s;
      if (prev_leave < 0.0 || prev_leave > sessions[i].join_s) {
        return Status::error(path + ": sessions of peer " + std::to_string(peer) + " overlap");
      }
    }
  }
  return out;
}

Result<ChurnPlan> ChurnPlan::create(const Scenario& s) {
  ChurnPlan plan;
  plan.seed_ = s.seed;
  plan.spec_ = s.churn;
  if (s.churn.model == ChurnModel::kSessions) {
    plan.model_ = Model::kSessions;
  } else if (s.churn.model == ChurnModel::kTrace) {
    plan.model_ = Model::kTrace;
    auto t = load_churn_trace(s.churn.trace_csv, s.peers.count);
    if (!t.ok()) return Status::error("churn.trace_csv: " + t.error());
    plan.trace_ = std::move(t.value());
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
      auto it = trace_.find(p);
      return it != trace_.end() && it->second.front().join_s == 0.0;
    }
  }
  return true;
}

double ChurnPlan::next_session_s(PeerId p) { return spec_.session_s.sample(stream(p)); }
double ChurnPlan::next_downtime_s(PeerId p) { return spec_.downtime_s.sample(stream(p)); }

const std::vector<TraceSession>* ChurnPlan::trace_sessions(PeerId p) const {
  auto it = trace_.find(p);
  return it == trace_.end() ? nullptr : &it->second;
}

}  // namespace crowdtrain::sim
