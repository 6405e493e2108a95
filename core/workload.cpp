#include "core/workload.h"

#include "core/probe.h"

namespace crowdtrain {

bool is_peer_workload(const std::string& kind) { return kind == "probe"; }

Result<std::unique_ptr<PeerApp>> make_workload_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context) {
  const std::string& kind = scenario.workload.kind;
  if (kind == "probe") return make_probe_app(rt, scenario.workload.probe, context.peers);
  return Status::error("workload.kind: '" + kind + "' does not run as a peer workload");
}

}  // namespace crowdtrain
