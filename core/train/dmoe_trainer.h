// A Learning@home trainer: runs training steps of a DmoeLocalModel whose DMoE layers call remote
// experts through, per layer, an ExpertFinder (which experts are alive and best for the gating
// scores) and a MixtureCaller (forward and backward of the chosen experts). A step is a chain of
// callbacks on the Runtime, never blocking: local pieces run through Runtime::compute; between
// them the trainer waits for the finder and the caller. The trainer owns its batches and step
// state; the model, finders and callers are shared and must outlive it (callbacks that arrive
// after the trainer is destroyed are ignored). Single-threaded: the Runtime's loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/moe/mixture.h"
#include "core/runtime.h"
#include "core/status.h"
#include "core/train/dataset.h"
#include "core/train/dmoe_model.h"

namespace at {
class Tensor;
}

namespace crowdtrain::train {

// Where a layer finds and calls its experts (not owned).
struct DmoeLayerClients {
  moe::ExpertFinder* finder = nullptr;
  moe::MixtureCaller* caller = nullptr;
};

struct DmoeStepStats {
  int64_t attempt = 0;  // steps tried so far, this one included
  bool ok = false;      // the model was updated
  // When !ok: "finder", "forward", "backward" (the finder's or caller's error), "no_experts" (a
  // sample with no usable expert answer) or "non_finite" (a gradient was not finite).
  std::string failure;
  Status status;      // the reason, when !ok
  double loss = 0.0;  // mean cross-entropy of the batch (when the forward completed)
  // Updates other steps applied to the shared model while this one ran (when ok): its gradient
  // is this many updates stale (the paper's emulator logs it as delay_steps).
  int64_t staleness = 0;
};

struct DmoeEvalResult {
  double accuracy = 0.0;       // over the samples whose forward completed
  int64_t samples = 0;         // samples whose forward completed
  int64_t failed_samples = 0;  // samples in batches that failed (finder/caller errors)
};

class DmoeTrainer {
 public:
  // `layers` has options.layers() entries; the model's sizes must match `options` (CT_CHECK).
  DmoeTrainer(Runtime& rt, std::shared_ptr<DmoeLocalModel> model,
              std::vector<DmoeLayerClients> layers, Dataset train, DmoeOptions options);
  ~DmoeTrainer();
  DmoeTrainer(const DmoeTrainer&) = delete;
  DmoeTrainer& operator=(const DmoeTrainer&) = delete;

  // One step on the next batch; `done` runs once on the loop. One step at a time (CT_CHECK).
  void step(std::function<void(const DmoeStepStats&)> done);
  // Steps back to back (after a failed step, options.retry_delay later) until `steps` were tried
  // or stop(); `on_step` after each, `finished` once at the end.
  void run(int64_t steps, std::function<void(const DmoeStepStats&)> on_step,
           std::function<void()> finished);
  void stop();  // no new steps; the one in flight completes
  bool busy() const { return busy_; }

  // Forward only, through the experts, on the first n samples of `data` (all when n < 0 or n >
  // size), in eval batches one after the other. Independent of training steps.
  void evaluate(const Dataset& data, int64_t n, std::function<void(const DmoeEvalResult&)> done);

  int64_t steps_done() const { return steps_ok_; }
  int64_t failed_steps() const { return steps_failed_; }
  // The gradients of the last step that reached the optimizer (applied or found non-finite), flat
  // in the model's parameter order; empty before any.
  at::Tensor last_gradients() const;
  DmoeLocalModel& model() { return *model_; }
  // The batch iterator (a copy predicts the next batches).
  const BatchIterator& batches() const { return *batches_; }

 private:
  struct Pass;
  struct EvalState;
  void start_pass(std::shared_ptr<Pass> pass);
  void find_experts(std::shared_ptr<Pass> pass, int64_t layer);
  void call_experts(std::shared_ptr<Pass> pass, int64_t layer,
                    std::vector<std::vector<moe::ExpertRef>> chosen);
  void combine(std::shared_ptr<Pass> pass, int64_t layer, std::vector<moe::ExpertCall> calls);
  void backward_layer(std::shared_ptr<Pass> pass, int64_t layer);
  void expert_backward(std::shared_ptr<Pass> pass, int64_t layer);
  void backward_input(std::shared_ptr<Pass> pass);
  void end_pass(std::shared_ptr<Pass> pass, std::string failure, Status status);
  void eval_next(std::shared_ptr<EvalState> state);
  void run_next();

  Runtime& rt_;
  std::shared_ptr<DmoeLocalModel> model_;
  std::vector<DmoeLayerClients> layers_;
  DmoeOptions options_;
  std::unique_ptr<BatchIterator> batches_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<at::Tensor> last_gradients_;
  // Schedules the step_deadline check of step `attempt`.
  void watch(int64_t attempt);

  bool busy_ = false;
  int64_t attempts_ = 0, steps_ok_ = 0, steps_failed_ = 0;
  // run(): steps left (-1 when not running) and the callbacks.
  int64_t run_left_ = -1;
  std::function<void(const DmoeStepStats&)> on_step_;
  std::function<void()> run_finished_;
};

}  // namespace crowdtrain::train
