// Shared by the simulated-world tests: run a scenario in memory (no files, no progress line) and
// return its summary, failing the current test if the run fails; a small averaging scenario; read
// a counter and the averaging workload's MSE curve from a summary.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/averaging/averaging_options.h"
#include "sim/sim_world.h"

namespace crowdtrain::sim::testing {

// The averaging method of that name (a test's typo fails the test).
inline AveragingMethod method_named(const std::string& name) {
  for (const auto& [text, method] : averaging_method_names()) {
    if (text == name) return method;
  }
  ADD_FAILURE() << "no averaging method " << name;
  return AveragingMethod::kMoshpit;
}

// Runs `s` without a progress line, writing its run folder to `out_dir` ("" = no files).
inline nlohmann::json run_quiet(const Scenario& s, const std::string& out_dir = "") {
  SimOptions o;
  o.write_files = !out_dir.empty();
  o.out_dir = out_dir;
  o.progress = false;
  auto r = run_simulation(s, o);
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? r.value() : nlohmann::json();
}

// `peers` peers averaging one N(0, 1) value each with `method` on an M^d grid (m, d), each sitting
// a round out with probability p; rounds every 10 s from t = 5 s, 10 ms latency.
inline Scenario averaging_scenario(const std::string& method, uint32_t peers, uint32_t m,
                                   uint32_t d, double p, uint32_t rounds, uint64_t seed) {
  Scenario s;
  s.name = "averaging_test_" + method;
  s.seed = seed;
  s.peers.count = peers;
  s.network.access_latency_ms = DistSpec::constant(10);
  s.workload.kind = "averaging";
  auto& a = s.workload.edit<AveragingWorkloadOptions>("averaging");
  a.group.method = method_named(method);
  a.group.grid_size = m;
  a.group.grid_dims = d;
  a.failure_prob = p;
  a.rounds = rounds;
  a.group.first_round_s = 5;
  a.group.round_interval_s = 10;
  s.duration_s = a.group.first_round_s + a.group.round_interval_s * rounds + 1;
  s.output.progress = false;
  return s;
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
