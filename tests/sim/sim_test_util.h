// Shared by the simulated-world tests: run a scenario in memory (no files, no progress line) and
// return its summary, failing the current test if the run fails.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

}  // namespace crowdtrain::sim::testing
