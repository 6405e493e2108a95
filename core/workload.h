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
};

// Whether `kind` names a workload that runs as a PeerApp in every peer.
bool is_peer_workload(const std::string& kind);

// The app for `scenario.workload.kind` on `rt`; an error for a kind this build cannot run in a peer
// (e.g. "transfers", which is a whole-world calibration run).
Result<std::unique_ptr<PeerApp>> make_workload_app(const Scenario& scenario, Runtime& rt,
                                                   const WorkloadContext& context);

}  // namespace crowdtrain
