#include "core/invariants.h"

namespace crowdtrain {

nlohmann::json invariants_summary(const MetricsSink& sink) {
  nlohmann::json violated = nlohmann::json::object();
  const std::string prefix = std::string(kInvariantViolations) + "/";
  for (const auto& [name, n] : sink.counters()) {
    if (name.rfind(prefix, 0) == 0) violated[name.substr(prefix.size())] = n;
  }
  return {{"checks", sink.counter(kInvariantChecks)},
          {"violations", sink.counter(kInvariantViolations)},
          {"violated", violated}};
}

std::string liveness_counter(std::string_view name) {
  return std::string(MetricsSink::kLivenessPrefix) + std::string(name);
}

}  // namespace crowdtrain
