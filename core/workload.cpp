#include "core/workload.h"

#include "core/averaging/averaging_workload.h"
#include "core/dht/dht_workload.h"
#include "core/probe.h"
#include "core/train/training_workload.h"

namespace crowdtrain {

bool is_peer_workload(const std::string& kind) {
  return kind == "probe" || kind == "dht" || kind == "averaging" || kind == "training";
}

Result<std::unique_ptr<PeerApp>> make_workload_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context) {
  const std::string& kind = scenario.workload.kind;
  if (kind == "probe") return make_probe_app(rt, scenario.workload.probe, context.peers);
  if (kind == "dht") return dht::make_dht_workload_app(rt, scenario.workload.dht, context);
  if (kind == "averaging") return make_averaging_app(scenario, rt, context);
  if (kind == "training") return train::make_training_app(scenario, rt, context);
  return Status::error("workload.kind: '" + kind + "' does not run as a peer workload");
}

std::shared_ptr<void> make_workload_shared(const Scenario& scenario) {
  if (scenario.workload.kind == "dht") return dht::make_dht_workload_shared(scenario.peers.count);
  if (scenario.workload.kind == "averaging") return make_averaging_shared(scenario);
  if (scenario.workload.kind == "training") return train::make_training_shared(scenario);
  return nullptr;
}

void add_workload_summary(const Scenario& scenario, const MetricsSink& sink,
                          nlohmann::json& summary) {
  if (scenario.workload.kind == "dht") summary["dht"] = dht::dht_workload_summary(sink);
  if (scenario.workload.kind == "averaging") summary["averaging"] = averaging_summary(sink);
  if (scenario.workload.kind == "training") {
    summary["training"] = train::training_summary(scenario, sink);
  }
}

}  // namespace crowdtrain
