#include "core/workload.h"

#include "core/averaging/averaging_workload.h"
#include "core/dht/dht_workload.h"
#include "core/moe/moe_workload.h"
#include "core/probe.h"
#include "core/train/training_workload.h"

namespace crowdtrain {

namespace {

std::vector<WorkloadKind> registered_kinds() {
  std::vector<WorkloadKind> kinds;
  kinds.push_back({"probe", nullptr, nullptr, nullptr,
                   [](const Scenario& s, Runtime& rt, const WorkloadContext& c) {
                     return make_probe_app(rt, s.workload.probe, c.peers);
                   },
                   nullptr});
  kinds.push_back({"transfers", nullptr, nullptr, nullptr, nullptr, nullptr});
  kinds.push_back({"dht", nullptr, nullptr,
                   [](const Scenario& s) { return dht::make_dht_workload_shared(s.peers.count); },
                   [](const Scenario& s, Runtime& rt, const WorkloadContext& c) {
                     return dht::make_dht_workload_app(rt, s.workload.dht, c);
                   },
                   [](const Scenario&, const MetricsSink& m) { return dht::dht_workload_summary(m); }});
  kinds.push_back({"averaging", nullptr, nullptr, make_averaging_shared, make_averaging_app,
                   [](const Scenario&, const MetricsSink& m) { return averaging_summary(m); }});
  kinds.push_back({"training", nullptr, nullptr, train::make_training_shared,
                   train::make_training_app, train::training_summary});
  kinds.push_back(moe::moe_workload_kind());
  return kinds;
}

}  // namespace

const std::vector<WorkloadKind>& workload_kinds() {
  static const std::vector<WorkloadKind> kinds = registered_kinds();
  return kinds;
}

const WorkloadKind* find_workload_kind(const std::string& name) {
  for (const auto& k : workload_kinds()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

bool is_peer_workload(const std::string& kind) {
  const WorkloadKind* k = find_workload_kind(kind);
  return k != nullptr && k->make_app != nullptr;
}

Result<std::unique_ptr<PeerApp>> make_workload_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context) {
  const std::string& kind = scenario.workload.kind;
  const WorkloadKind* k = find_workload_kind(kind);
  if (k == nullptr || !k->make_app) {
    return Status::error("workload.kind: '" + kind + "' does not run as a peer workload");
  }
  return k->make_app(scenario, rt, context);
}

std::shared_ptr<void> make_workload_shared(const Scenario& scenario) {
  const WorkloadKind* k = find_workload_kind(scenario.workload.kind);
  return k != nullptr && k->make_shared ? k->make_shared(scenario) : nullptr;
}

void add_workload_summary(const Scenario& scenario, const MetricsSink& sink,
                          nlohmann::json& summary) {
  const WorkloadKind* k = find_workload_kind(scenario.workload.kind);
  if (k != nullptr && k->summary) summary[k->name] = k->summary(scenario, sink);
}

Status check_workload(const Scenario& scenario) {
  const WorkloadKind* k = find_workload_kind(scenario.workload.kind);
  return k != nullptr && k->check ? k->check(scenario) : Status();
}

}  // namespace crowdtrain
