#include "core/fault_plan.h"

#include <algorithm>
#include <cmath>

#include "core/random.h"

namespace crowdtrain {

namespace {

// Seconds in [lo, hi), or lo when the interval is empty.
double uniform_s(Rng& rng, double lo, double hi) { return hi > lo ? rng.uniform(lo, hi) : lo; }

// A share of the peers that hits at least one of `peers`.
double draw_fraction(Rng& rng, uint32_t peers, double max_fraction) {
  const double least = peers > 0 ? 1.0 / peers : 1.0;
  return std::min(1.0, std::max(least, rng.uniform(0.0, max_fraction)));
}

FaultSpec draw_kill(Rng& rng, const Scenario& s, const FaultPlanOptions& o) {
  FaultSpec f;
  f.kind = FaultKind::kKill;
  f.fraction = draw_fraction(rng, s.peers.count, o.max_kill_fraction);
  // A third of the kills are preemptions: the victims are told a few seconds before.
  if (rng.bernoulli(1.0 / 3.0)) f.notice_s = rng.uniform(1.0, 10.0);
  const double room = o.safety_s - o.warmup_s - f.notice_s;
  const double down = uniform_s(rng, 1.0, std::min(o.max_fault_s, std::max(1.0, room / 2)));
  f.at_s = uniform_s(rng, o.warmup_s, o.safety_s - f.notice_s - down);
  f.restart_after_s = down;
  return f;
}

// A fault that lasts: when it starts and for how long, both inside [warmup_s, safety_s).
void draw_window(Rng& rng, const FaultPlanOptions& o, FaultSpec& f) {
  const double room = o.safety_s - o.warmup_s;
  f.duration_s = uniform_s(rng, 1.0, std::min(o.max_fault_s, std::max(1.0, room / 2)));
  f.at_s = uniform_s(rng, o.warmup_s, o.safety_s - f.duration_s);
}

FaultSpec draw_partition(Rng& rng, const std::vector<std::string>& regions,
                         const FaultPlanOptions& o) {
  FaultSpec f;
  f.kind = FaultKind::kPartition;
  // A non-empty proper subset of the regions is cut off from the rest.
  while (f.regions.empty() || f.regions.size() == regions.size()) {
    f.regions.clear();
    for (const std::string& r : regions) {
      if (rng.bernoulli(0.5)) f.regions.push_back(r);
    }
  }
  draw_window(rng, o, f);
  return f;
}

FaultSpec draw_clog(Rng& rng, const Scenario& s, const FaultPlanOptions& o) {
  FaultSpec f;
  f.kind = FaultKind::kClog;
  f.fraction = draw_fraction(rng, s.peers.count, o.max_kill_fraction);
  f.delay_ms = std::exp(rng.uniform(std::log(50.0), std::log(5000.0)));  // 50 ms .. 5 s
  draw_window(rng, o, f);
  return f;
}

FaultSpec draw_loss(Rng& rng, const Scenario& s, const FaultPlanOptions& o) {
  FaultSpec f;
  f.kind = FaultKind::kLoss;
  // Half the bursts hit every peer's messages, half a share of the peers.
  if (rng.bernoulli(0.5)) f.fraction = draw_fraction(rng, s.peers.count, o.max_kill_fraction);
  f.loss_rate = rng.uniform(0.05, 0.6);
  draw_window(rng, o, f);
  return f;
}

}  // namespace

Status check_fault_plan_options(const FaultPlanOptions& o) {
  if (!(o.warmup_s >= 0.0)) return Status::error("the warm-up must be >= 0 s");
  if (!(o.safety_s >= o.warmup_s + 10.0)) {
    return Status::error("the safety phase must end at least 10 s after the warm-up");
  }
  if (o.min_faults < 1 || o.min_faults > o.max_faults) {
    return Status::error("faults per plan: need 1 <= min <= max");
  }
  if (!(o.max_kill_fraction > 0.0 && o.max_kill_fraction <= 1.0)) {
    return Status::error("the largest share of peers a fault hits must be in (0, 1]");
  }
  if (!(o.max_fault_s >= 1.0)) return Status::error("the longest fault must be >= 1 s");
  return Status();
}

std::vector<FaultSpec> draw_fault_plan(const Scenario& s, uint64_t seed,
                                       const FaultPlanOptions& o) {
  Rng rng(derive_seed(seed, "swarm_fault_plan"));
  auto names = scenario_region_names(s);
  const std::vector<std::string> regions = names.ok() ? names.value() : std::vector<std::string>{};
  std::vector<FaultKind> kinds = {FaultKind::kKill};
  if (regions.size() >= 2) kinds.push_back(FaultKind::kPartition);
  if (s.network.fidelity == Fidelity::kMessage) {
    kinds.push_back(FaultKind::kClog);
    kinds.push_back(FaultKind::kLoss);
  }
  const uint32_t n =
      o.min_faults + static_cast<uint32_t>(rng.uniform_int(o.max_faults - o.min_faults + 1));
  std::vector<FaultSpec> plan;
  for (uint32_t i = 0; i < n; ++i) {
    switch (kinds[rng.uniform_int(kinds.size())]) {
      case FaultKind::kKill:
        plan.push_back(draw_kill(rng, s, o));
        break;
      case FaultKind::kPartition:
        plan.push_back(draw_partition(rng, regions, o));
        break;
      case FaultKind::kClog:
        plan.push_back(draw_clog(rng, s, o));
        break;
      case FaultKind::kLoss:
        plan.push_back(draw_loss(rng, s, o));
        break;
    }
  }
  std::stable_sort(plan.begin(), plan.end(),
                   [](const FaultSpec& a, const FaultSpec& b) { return a.at_s < b.at_s; });
  return plan;
}

nlohmann::json fault_plan_json(const std::vector<FaultSpec>& plan) {
  nlohmann::json out = nlohmann::json::array();
  for (const FaultSpec& f : plan) {
    nlohmann::json j = {{"at_s", f.at_s}, {"kind", enum_name(fault_kind_names(), f.kind)}};
    if (!f.peers.empty()) {
      j["peers"] = f.peers;
    } else if (f.fraction > 0.0) {
      j["fraction"] = f.fraction;
    }
    switch (f.kind) {
      case FaultKind::kKill:
        j["restart_after_s"] = f.restart_after_s;
        if (f.notice_s > 0.0) j["notice_s"] = f.notice_s;
        break;
      case FaultKind::kPartition:
        j["regions"] = f.regions;
        j["duration_s"] = f.duration_s;
        break;
      case FaultKind::kClog:
        j["duration_s"] = f.duration_s;
        j["delay_ms"] = f.delay_ms;
        break;
      case FaultKind::kLoss:
        j["duration_s"] = f.duration_s;
        j["loss_rate"] = f.loss_rate;
        break;
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace crowdtrain
