// The probe workload: every live peer sends request/response probes of configurable sizes to random
// peers at a Poisson rate, with time-outs and retries from core/rpc.h, and records round trips.
// Counters: probes_sent, probes_ok, probes_failed; samples: probe_rtt_ms. It exercises the whole
// seam (timers, send, rng, metrics) identically in the simulated and the live world.
#pragma once

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_path.h"
#include "core/metrics.h"
#include "core/runtime.h"
#include "core/scenario.h"
#include "core/status.h"

namespace crowdtrain {

constexpr uint16_t kTagProbeRespBytes = 16;  // request: how many bytes the response should carry

// The probe workload's options (workload.probe; docs/scenarios.md lists every key).
struct ProbeOptions final : WorkloadOptions {
  double rate_hz = 1.0;  // requests per live peer per second (Poisson)
  uint64_t request_bytes = 1024;
  uint64_t response_bytes = 1024;
  double timeout_s = 5.0;
  int retries = 0;
};

// The reader of workload.probe (WorkloadKind::read).
std::shared_ptr<const WorkloadOptions> read_probe_options(JsonReader& r);
// The checks against other sections: both sizes fit in network.max_message_bytes.
Status check_probe_options(const Scenario& s);
// The scenario's workload.probe, read or default.
const ProbeOptions& probe_options_of(const Scenario& s);

// `targets` lists the peers a probe may go to (the peer itself is skipped).
std::unique_ptr<PeerApp> make_probe_app(Runtime& rt, const ProbeOptions& spec,
                                        std::shared_ptr<const std::vector<PeerId>> targets);

// summary.json's "probe" section: probes_sent, probes_ok, probes_failed, rtt_ms_p50, rtt_ms_p99
// (null when no probe was answered).
nlohmann::json probe_summary(const MetricsSink& sink);

}  // namespace crowdtrain
