// The local half of a Learning@home DMoE classifier: Linear(D, d) -> L DMoE layers -> LayerNorm ->
// Linear(d, classes). The experts live on servers; this model holds what the trainer owns: the
// input projection, one product-key Gating per layer, the final LayerNorm and head, and one Adam
// optimizer. Several DmoeTrainers may share one (shared_ptr): each step computes its gradients on
// a snapshot of the parameters taken when it starts and applies them with apply_gradients() at its
// end, so steps in flight never see each other's gradients. No LibTorch in this header;
// single-threaded (the trainers' Runtime loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/moe/gating.h"
#include "core/moe/mixture.h"
#include "core/options.h"
#include "core/status.h"
#include "core/time.h"

namespace at {
class Tensor;
}
namespace torch::nn {
class Module;
}

namespace crowdtrain::train {

// Builder-style options of the model and of the trainers that use it.
class DmoeOptions {
#define CT_DMOE_OPTION(type, name, init) CT_OPTION(DmoeOptions, type, name, init)

  CT_DMOE_OPTION(int64_t, input_dim, 784)  // D
  CT_DMOE_OPTION(int64_t, hidden, 64)      // d: the experts' input and output width
  CT_DMOE_OPTION(int64_t, layers, 2)       // L DMoE layers (>= 1)
  CT_DMOE_OPTION(int64_t, classes, 10)
  CT_DMOE_OPTION(std::vector<int64_t>, grid_sizes, std::vector<int64_t>({4, 4}))
  CT_DMOE_OPTION(int64_t, k, 4)  // experts asked per sample and layer
  CT_DMOE_OPTION(int64_t, batch_size, 32)
  CT_DMOE_OPTION(int64_t, eval_batch_size, 256)
  CT_DMOE_OPTION(double, lr, 1e-3)      // Adam
  CT_DMOE_OPTION(bool, amsgrad, false)  // Adam's AMSGrad variant
  // Each gate standardises its input first (moe::Gating's pre_norm; the paper's emulator).
  CT_DMOE_OPTION(bool, gate_norm, false)
  // The model: torch's generator seeded with it before drawing the parameters. A trainer: its
  // batch order (derive_seed(seed, "dmoe_batches")).
  CT_DMOE_OPTION(uint64_t, seed, 0)
  CT_DMOE_OPTION(Time, retry_delay, Time(std::chrono::milliseconds(100)))  // after a failed step
  // Safety (core/invariants.h): a step still running this long after it began breaks the
  // invariant "dmoe_step_bounded" (its searches and calls all have time-outs). 0: not checked.
  CT_DMOE_OPTION(Time, step_deadline, Time(0))
  CT_DMOE_OPTION(int, intra_op_threads, 1)  // LibTorch, process-wide; 0 leaves it alone
#undef CT_DMOE_OPTION
};

class DmoeLocalModel {
 public:
  explicit DmoeLocalModel(const DmoeOptions& options);  // CT_CHECKs the sizes
  ~DmoeLocalModel();
  DmoeLocalModel(const DmoeLocalModel&) = delete;
  DmoeLocalModel& operator=(const DmoeLocalModel&) = delete;

  const DmoeOptions& options() const { return options_; }
  // Parameters in this order: input.weight, input.bias, then per layer gate.weight, gate.bias,
  // then norm.weight, norm.bias, head.weight, head.bias.
  torch::nn::Module& module();
  const moe::Gating& gate(int64_t layer) const;

  // Detached copies of the parameters that require grad: the parameters a step differentiates.
  std::vector<at::Tensor> snapshot() const;
  // The live parameters, detached (for evaluation under no-grad).
  std::vector<at::Tensor> live() const;
  // Indices into the parameter list of the input projection, layer l's gate, the norm and head.
  static std::vector<size_t> input_params() { return {0, 1}; }
  static std::vector<size_t> gate_params(int64_t layer);
  std::vector<size_t> head_params() const;

  // The local pieces, on parameters `p` (a snapshot or live()):
  at::Tensor input_forward(const std::vector<at::Tensor>& p, const at::Tensor& x) const;
  at::Tensor gate_forward(const std::vector<at::Tensor>& p, int64_t layer,
                          const at::Tensor& h) const;
  at::Tensor head_forward(const std::vector<at::Tensor>& p, const at::Tensor& h) const;
  // FLOPs of one forward of those pieces on `batch` samples (backward: about twice).
  double input_flops(int64_t batch) const;
  double gate_flops(int64_t batch) const;
  double head_flops(int64_t batch) const;
  double combine_flops(int64_t batch) const;
  // Layer `layer`'s output: for each sample s, the sum over j of softmax_j(expert logits) *
  // outputs' row rows[s][j], where outputs are the answering experts' outputs concatenated in
  // order and coords[s][j] the coordinates of the expert that row came from (every sample has at
  // least one). Differentiable in gate_logits and outputs.
  at::Tensor combine(int64_t layer, const at::Tensor& gate_logits,
                     const std::vector<std::vector<moe::ExpertCoords>>& coords,
                     const std::vector<std::vector<int64_t>>& rows,
                     const std::vector<at::Tensor>& outputs) const;

  // One Adam step with `grads` (one per parameter, same shapes). Refuses, changing nothing, when a
  // shape is wrong or any value is non-finite.
  Status apply_gradients(const std::vector<at::Tensor>& grads);
  int64_t updates() const { return updates_; }  // optimizer steps applied

  at::Tensor parameters() const;  // flat float32 copy
  Status set_parameters(const at::Tensor& flat);
  int64_t num_parameters() const;

 private:
  struct Impl;
  DmoeOptions options_;
  std::unique_ptr<Impl> impl_;
  int64_t updates_ = 0;
};

// An answering expert's output as an owned tensor if usable: float32 [samples, d], finite, every
// sample in [0, n). Otherwise an error naming the expert: the output is never combined.
Result<at::Tensor> expert_output(const moe::ExpertCall& call, int64_t n, int64_t d);
// Adds each call's grad_input ([samples, d] float32, finite) into `grad` [n, d] at its samples'
// rows. Returns how many set grad_inputs were unusable and ignored (their expert is a constant).
int64_t add_grad_inputs(const std::vector<moe::ExpertCall>& calls, at::Tensor& grad);

}  // namespace crowdtrain::train
