// The simulated world: N peers as applications that join and leave over an ns-3 network model, in
// virtual time, deterministic from the scenario's seed. It builds the topology and the network
// model (message or packet fidelity), a SimRuntime per peer incarnation, the workload's PeerApp on
// it, drives churn, preemption and scheduled faults, and writes the run folder (summary.json,
// metrics.csv, events.jsonl). One world at a time per process (ns-3's Simulator is a singleton). No
// ns-3 here.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain::sim {

struct SimOptions {
  std::string out_dir;                 // "" = output_dir_for(scenario)
  std::vector<std::string> overrides;  // for the reproduce line only
  bool write_files = true;             // false: compute the summary without touching the disk
  bool progress = true;  // progress line on stderr (also needs scenario.output.progress)
};

// Runs the scenario's probe workload to its end; returns summary.json's content.
Result<nlohmann::json> run_simulation(const Scenario& scenario, const SimOptions& options);

}  // namespace crowdtrain::sim
