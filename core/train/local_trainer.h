// One peer's local training: a model, its optimizer (SGD with momentum, or Adam) and a batch
// iterator over the peer's shard. step() runs forward, backward and the optimizer update through
// Runtime::compute, so the simulated world charges each peer class its virtual time; Moshpit SGD
// reads and writes the parameters (and optimizer state) as flat float32 vectors between steps.
// Determinism: batches come from a crowdtrain::Rng; torch's global generator is re-seeded from
// (seed, "torch", step) before every step; and with intra_op_threads(1) (the default) LibTorch runs
// one intra-op thread. A simulated world must keep one thread: several would make results depend on
// the machine and spin against the simulator. Single-threaded, like the Runtime.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "core/runtime.h"
#include "core/status.h"
#include "core/train/dataset.h"
#include "core/train/models.h"

namespace crowdtrain::train {

enum class OptimizerKind { kSgd, kAdam };

class LocalTrainerOptions {
 public:
  LocalTrainerOptions& optimizer(OptimizerKind v) {
    optimizer_ = v;
    return *this;
  }
  LocalTrainerOptions& lr(double v) {
    lr_ = v;
    return *this;
  }
  LocalTrainerOptions& momentum(double v) {  // SGD only; 0 = plain SGD
    momentum_ = v;
    return *this;
  }
  LocalTrainerOptions& weight_decay(double v) {
    weight_decay_ = v;
    return *this;
  }
  LocalTrainerOptions& batch_size(int64_t v) {
    batch_size_ = v;
    return *this;
  }
  LocalTrainerOptions& eval_batch_size(int64_t v) {
    eval_batch_size_ = v;
    return *this;
  }
  // Seeds the batch order and torch's generator; derive it per peer (derive_seed(master, "train",
  // id)).
  LocalTrainerOptions& seed(uint64_t v) {
    seed_ = v;
    return *this;
  }
  // LibTorch intra-op threads set at construction (process-wide); 0 leaves the setting alone.
  LocalTrainerOptions& intra_op_threads(int v) {
    intra_op_threads_ = v;
    return *this;
  }
  OptimizerKind optimizer() const { return optimizer_; }
  double lr() const { return lr_; }
  double momentum() const { return momentum_; }
  double weight_decay() const { return weight_decay_; }
  int64_t batch_size() const { return batch_size_; }
  int64_t eval_batch_size() const { return eval_batch_size_; }
  uint64_t seed() const { return seed_; }
  int intra_op_threads() const { return intra_op_threads_; }

 private:
  OptimizerKind optimizer_ = OptimizerKind::kAdam;
  double lr_ = 1e-3;
  double momentum_ = 0.9;
  double weight_decay_ = 0.0;
  int64_t batch_size_ = 32;
  int64_t eval_batch_size_ = 1000;
  uint64_t seed_ = 0;
  int intra_op_threads_ = 1;
};

struct StepStats {
  int64_t step = 0;   // steps done, this one included
  double loss = 0.0;  // mean cross-entropy of the batch, before the update
};

struct EvalResult {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // fraction of argmax hits
  int64_t samples = 0;
};

class LocalTrainer {
 public:
  LocalTrainer(std::unique_ptr<Model> model, Dataset train, LocalTrainerOptions options);
  ~LocalTrainer();
  LocalTrainer(const LocalTrainer&) = delete;
  LocalTrainer& operator=(const LocalTrainer&) = delete;

  // One step through rt.compute(cost = model.train_flops(batch)): the parameters change when the
  // work runs (at once in the simulated world), `done` runs after the charged time. One step at a
  // time (CT_CHECK); the trainer must outlive `done` unless the runtime is stopped first.
  void step(Runtime& rt, std::function<void(const StepStats&)> done);
  // The same step, run synchronously with no Runtime (tools, tests, an evaluation baseline).
  StepStats step_now();
  // Collaborative training (hivemind's Optimizer with a target batch): accumulate() runs forward
  // and backward on the next batch through rt.compute (same cost as a step) and adds the
  // gradients, times the batch size, to a running sum without updating the parameters.
  // accumulated_gradients() is that sum divided by the samples accumulated (the mean gradient;
  // zeros before any); apply_gradients(flat) installs `flat` as the gradient, runs one optimizer
  // step and clears the sum. A size mismatch or a non-finite gradient is refused, nothing changed.
  void accumulate(Runtime& rt, std::function<void(const StepStats&)> done);
  StepStats accumulate_now();
  at::Tensor accumulated_gradients() const;
  int64_t samples_accumulated() const { return accumulated_; }
  Status apply_gradients(const at::Tensor& flat);
  void discard_gradients();  // clears the sum (e.g. after installing another peer's state)
  bool busy() const { return busy_; }
  int64_t steps_done() const { return steps_; }
  double step_flops() const;

  // Loss and accuracy on `data` in eval batches, without gradients. Measurement: no virtual time.
  EvalResult evaluate(const Dataset& data) const;

  // Flat float32 copy of the parameters / writes one back (errors on a size mismatch).
  at::Tensor parameters() const;
  Status set_parameters(const at::Tensor& flat);
  int64_t num_parameters() const;

  // Optimizer statistics as one flat float32 vector: Adam: exp_avg then exp_avg_sq (2P); SGD with
  // momentum: momentum buffers (P); plain SGD: empty. Statistics not yet created read as zeros.
  at::Tensor optimizer_state() const;
  // Writes them back; `adam_step` is Adam's bias-correction step count (ignored by SGD).
  Status set_optimizer_state(const at::Tensor& flat, int64_t adam_step);
  int64_t adam_step() const;  // 0 before the first Adam step or for SGD

  Model& model() { return *model_; }
  const BatchIterator& batches() const { return *batches_; }
  const LocalTrainerOptions& options() const { return options_; }

 private:
  struct Optim;
  StepStats run_step();
  StepStats run_accumulate();

  std::unique_ptr<Model> model_;
  LocalTrainerOptions options_;
  std::unique_ptr<BatchIterator> batches_;
  std::unique_ptr<Optim> optim_;
  int64_t steps_ = 0;
  int64_t accumulated_ = 0;  // samples in the gradient sum
  int64_t micro_steps_ = 0;  // accumulate() calls (seeds torch's generator)
  bool busy_ = false;
};

}  // namespace crowdtrain::train
