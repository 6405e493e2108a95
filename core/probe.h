// The probe workload: every live peer sends request/response probes of configurable sizes to random
// peers at a Poisson rate, with time-outs and retries from core/rpc.h, and records round trips.
// Counters: probes_sent, probes_ok, probes_failed; samples: probe_rtt_ms. It exercises the whole
// seam (timers, send, rng, metrics) identically in the simulated and the live world.
#pragma once

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "core/runtime.h"
#include "core/scenario.h"

namespace crowdtrain {

constexpr uint16_t kTagProbeRespBytes = 16;  // request: how many bytes the response should carry

// `targets` lists the peers a probe may go to (the peer itself is skipped).
std::unique_ptr<PeerApp> make_probe_app(Runtime& rt, const ProbeSpec& spec,
                                        std::shared_ptr<const std::vector<PeerId>> targets);

// summary.json's "probe" section: probes_sent, probes_ok, probes_failed, rtt_ms_p50, rtt_ms_p99
// (null when no probe was answered).
nlohmann::json probe_summary(const MetricsSink& sink);

}  // namespace crowdtrain
