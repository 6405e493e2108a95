// Safety invariants and liveness goals: what every run checks about its workload, and what
// `crowdtrain swarm` (core/cli/swarm.cpp) reports for each seed's fault plan.
//
// A safety invariant is a property that must hold at every moment, checked where it could break
// as the run goes (a DHT get returns only values some peer stored and that have not expired; an
// averaging peer's vector stays finite and inside the convex hull of the starting vectors). A
// check counts "invariant_checks"; a violation also counts "invariant_violations" and
// "invariant_violations/<name>" and logs an "invariant_violated" lifecycle event naming the
// invariant and what was seen. summary.json's "invariants" block sums them up.
//
// A liveness goal is what the workload must reach once the faults stop: from the scenario's
// `liveness.from_s` on, every counter is also counted under "liveness.<name>" (MetricsSink), and
// the workload's goal (WorkloadKind::liveness) reads those: e.g. every DHT get of a key that a
// live peer holds succeeds. summary.json's "liveness" block says whether it was met.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/metrics.h"

namespace crowdtrain {

constexpr std::string_view kInvariantChecks = "invariant_checks";
constexpr std::string_view kInvariantViolations = "invariant_violations";

// Records one check of the invariant `name`. When `holds` is false, counts the violation and logs
// it with `detail()` (called only then, so building the text costs nothing on the good path).
// Returns `holds`.
template <typename Detail>
bool check_invariant(Metrics& m, bool holds, std::string_view name, Detail&& detail) {
  m.count(kInvariantChecks);
  if (holds) return true;
  m.count(kInvariantViolations);
  m.count(std::string(kInvariantViolations) + "/" + std::string(name));
  const std::string text = detail();
  m.event("invariant_violated", {{"invariant", name}, {"detail", std::string_view(text)}});
  return false;
}

// summary.json's "invariants": {"checks": n, "violations": n, "violated": {name: n, ...}}.
nlohmann::json invariants_summary(const MetricsSink& sink);

// The counter `name` counted from liveness.from_s on ("liveness.<name>").
std::string liveness_counter(std::string_view name);

}  // namespace crowdtrain
