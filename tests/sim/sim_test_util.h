// Shared by the simulated-world tests: run a scenario in memory (no files, no progress line) and
// return its summary, failing the current test if the run fails; read a counter and the averaging
// workload's MSE curve from a summary.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

#include "sim/sim_world.h"

namespace crowdtrain::sim::testing {

inline nlohmann::json run_quiet(const Scenario& s) {
  SimOptions o;
  o.write_files = false;
  o.progress = false;
  auto r = run_simulation(s, o);
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? r.value() : nlohmann::json();
}

// A counter of the summary, 0 when the run never counted it.
inline int64_t counter(const nlohmann::json& sum, const char* name) {
  return sum["counters"].contains(name) ? sum["counters"][name].get<int64_t>() : 0;
}

// The averaging workload's MSE after 0, 1, ... rounds.
inline std::vector<double> averaging_curve(const nlohmann::json& sum) {
  std::vector<double> out;
  for (const auto& point : sum["averaging"]["mse_by_round"]) out.push_back(point["mse"]);
  return out;
}

}  // namespace crowdtrain::sim::testing
