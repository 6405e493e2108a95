// The options of the transfers workload (workload.kind "transfers"): the whole-world calibration
// run of sim/calibration.h, which times the same transfers under every fidelity. Read from
// workload.transfers by read_transfers_options(); docs/scenarios.md lists every key.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/json_path.h"
#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain {

struct TransfersOptions final : WorkloadOptions {
  std::vector<uint64_t> sizes_bytes{1000, 64000, 1000000, 16000000, 64000000};
  std::vector<uint32_t> concurrency{1, 4};  // transfers in flight per sender at once
  uint32_t pairs = 8;                       // sender/receiver pairs measured at a time
};

// The reader of workload.transfers (WorkloadKind::read).
std::shared_ptr<const WorkloadOptions> read_transfers_options(JsonReader& r);
// The checks against other sections: every size fits in network.max_message_bytes, and the pairs
// need 2 peers each.
Status check_transfers_options(const Scenario& s);
// The scenario's workload.transfers, read or default.
const TransfersOptions& transfers_options_of(const Scenario& s);

}  // namespace crowdtrain
