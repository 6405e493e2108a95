// The workload factory: builds the PeerApp that a scenario's `workload.kind` names, for one peer
// incarnation, in either world. Both worlds call only this, so adding a workload (DHT, Moshpit,
// MoE) is one entry here and nothing in sim/ or net/.
#pragma once

#include <memory>
#include <vector>

#include "core/runtime.h"
#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain {

struct WorkloadContext {
  // Every peer id of the world (sim) or every known peer (live), the peer itself included.
  std::shared_ptr<const std::vector<PeerId>> peers;
  // Peers a newcomer may contact first (bootstrap); empty = any of `peers`.
  std::shared_ptr<const std::vector<PeerId>> bootstrap;
  // State all peers of one run share, from make_workload_shared (sim only; null in the live world,
  // where peers share nothing). The DHT workload keeps its oracle there: live nodes, stored keys.
  std::shared_ptr<void> shared;
  // This peer's access link as the world knows it, in Mb/s (sim: what the topology drew for it;
  // live: 0, unknown). Averaging advertises it for load balancing.
  double upload_mbps = 0.0;
  double download_mbps = 0.0;
};

// Made once per run by the simulated world, before any peer joins, and passed to every app in
// WorkloadContext::shared; null for workloads that share nothing.
std::shared_ptr<void> make_workload_shared(const Scenario& scenario);

// Adds the workload's derived figures (e.g. success rates) to `summary` from the run's metrics.
void add_workload_summary(const Scenario& scenario, const MetricsSink& sink,
                          nlohmann::json& summary);

// Whether `kind` names a workload that runs as a PeerApp in every peer.
bool is_peer_workload(const std::string& kind);

// The app for `scenario.workload.kind` on `rt`; an error for a kind this build cannot run in a peer
// (e.g. "transfers", which is a whole-world calibration run).
Result<std::unique_ptr<PeerApp>> make_workload_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context);

}  // namespace crowdtrain
