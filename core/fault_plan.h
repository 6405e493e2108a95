// Random fault plans for `crowdtrain swarm` (sim/swarm.h): a plan is a scenario's `faults` array
// drawn from a seed alone, so the seed reproduces it. Every fault starts after `warmup_s` and is
// over by `safety_s` — kills restart by then, partitions, clogs and loss bursts end by then — so
// the liveness phase that follows has every peer up and a clean network. No wall clock anywhere.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/scenario.h"

namespace crowdtrain {

struct FaultPlanOptions {
  double warmup_s = 20;   // no fault before
  double safety_s = 120;  // every fault is over by then
  uint32_t min_faults = 1;
  uint32_t max_faults = 6;
  double max_kill_fraction = 0.3;  // of the live peers, per kill
  double max_fault_s = 60;         // longest partition, clog, loss burst or downtime
};

// Checks the options: warmup_s >= 0 and safety_s at least 10 s later (the swarm sets the run's
// duration from them), 1 <= min_faults <= max_faults, max_kill_fraction in (0, 1],
// max_fault_s >= 1.
Status check_fault_plan_options(const FaultPlanOptions& o);

// The plan of `seed`: between min_faults and max_faults faults, each a kill (some with a
// preemption notice), a partition (only when the scenario has regions), a clog or a loss burst
// (only at message fidelity), with times, shares and durations drawn from the seed.
std::vector<FaultSpec> draw_fault_plan(const Scenario& scenario, uint64_t seed,
                                       const FaultPlanOptions& options);

// The plan as the scenario's "faults" array (what `--set faults=...` takes).
nlohmann::json fault_plan_json(const std::vector<FaultSpec>& plan);

}  // namespace crowdtrain
