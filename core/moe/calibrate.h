// The compute-time model's calibration (`crowdtrain calibrate SCENARIO`): times the scenario's
// expert (workload.moe.expert) with real LibTorch numerics on this machine, forward and backward
// (recomputed forward, back-propagation and one optimizer step, as the server runs it) at a batch
// of chain.batch samples, and gives the flops_per_s that makes the simulated world charge the same
// time: forward_flops / forward_s for forward-only runs, (forward + backward flops) / (forward_s +
// backward_s) for runs with backward. No LibTorch in this header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/moe/expert.h"
#include "core/status.h"

namespace crowdtrain::moe {

struct ExpertTiming {
  std::string device;  // "cpu" | "cuda"
  int threads = 0;     // LibTorch's intra-op threads
  int64_t batch = 0;
  int reps = 0;
  int experts = 1;        // distinct experts taking turns (a server hosting several)
  double forward_s = 0;   // median over reps
  double backward_s = 0;  // median over reps
  double forward_flops = 0, backward_flops = 0;  // ExpertInfo's count for the batch
  double forward_flops_per_s() const { return forward_flops / forward_s; }
  double step_flops_per_s() const {
    return (forward_flops + backward_flops) / (forward_s + backward_s);
  }
};

// `experts` instances of the expert (seeds config.seed() + i) take turns, as on a server hosting
// several, so their weights compete for the caches as they do there: one warm-up round, then
// `reps` rounds; the median call of each phase.
Result<ExpertTiming> time_expert(const ExpertConfig& config, int64_t batch, int reps,
                                 int experts = 1);

// The command: args = SCENARIO [--set key=value]... [--reps N] [--batch N] [--experts N] (default:
// as many as one server of the scenario hosts, at most 8). Prints a CSV header and rows
// (kind,hidden,ffn_dim,seq_len,device,threads,experts,batch,phase,seconds,flops,flops_per_s).
// Exit code 0, 1 (the expert failed), or 2 (bad arguments or scenario).
int calibrate_main(const std::vector<std::string>& args);

}  // namespace crowdtrain::moe
