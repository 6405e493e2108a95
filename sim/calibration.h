// Calibration: the same transfers (workload.transfers: sizes x concurrency) run under the
// message-level and the packet-level model on the scenario's topology, in one invocation; reports
// per transfer size and concurrency the completion times of both and their ratio. Writes
// calibration.csv and summary.json into `out_dir`. Tells users what the fast mode costs them in
// accuracy.
#pragma once

#include <string>

#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain::sim {

Status run_calibration(const Scenario& scenario, const std::string& out_dir);

}  // namespace crowdtrain::sim
