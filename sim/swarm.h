// `crowdtrain swarm SCENARIO --seeds N`: simulation testing as a product (FoundationDB's and
// TigerBeetle's VOPR way). Each seed runs the scenario in the simulated world with a random fault
// plan drawn from that seed (core/fault_plan.h: kills and restarts, preemption notices,
// partitions that heal, clogged peers, loss bursts): a *safety* phase with the faults, then a
// *liveness* phase without them. The workload checks its safety invariants as the run goes and,
// after it, whether it met its liveness goal (core/invariants.h). A seed fails when an invariant
// broke, the goal was missed, the run crashed or it hung past the time limit; the swarm prints
// what broke, the seed and the one command that replays it, and keeps that seed's run folder.
// Seeds run in parallel, one child process each (a crash in one is a finding, not the end of the
// swarm). The scenario's own churn is turned off and its faults replaced by the plan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/fault_plan.h"
#include "core/scenario.h"

namespace crowdtrain::sim {

struct SwarmOptions {
  std::string scenario_path;
  std::vector<std::string> overrides;  // --set, applied before the swarm's own
  uint64_t first_seed = 1;
  uint64_t seeds = 100;
  uint32_t jobs = 0;  // parallel runs; 0 = the number of cores
  FaultPlanOptions plan;
  double liveness_s = 150;  // after plan.safety_s: no faults
  double grace_s = 60;      // of the liveness phase, before the goal's counting starts
  double timeout_s = 600;   // wall seconds per seed before it counts as hung
  std::string out_dir;      // default: runs/swarm-<scenario name>
  bool keep_all = false;    // keep the run folders of seeds that passed too
};

// The --set overrides that turn the scenario into seed's run: quiet output, the caller's, then
// seed, duration, no churn, the liveness phase and the fault plan.
std::vector<std::string> swarm_overrides(const Scenario& base, uint64_t seed,
                                         const SwarmOptions& o);

// The command line that replays one seed of a swarm with the same options.
std::string swarm_replay_command(const SwarmOptions& o, uint64_t seed);

// Runs the swarm; returns the process exit code: 0 when every seed passed, 1 when one failed, 2
// for a broken scenario or bad options.
int run_swarm(const SwarmOptions& o);

// `crowdtrain swarm` argument parsing, then run_swarm.
int swarm_main(const std::vector<std::string>& args);

}  // namespace crowdtrain::sim
