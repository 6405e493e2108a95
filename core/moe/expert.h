// An expert of a decentralized mixture-of-experts: a LibTorch module plus its own optimizer, hosted
// by an expert server (core/moe/server.h). The server sees experts only through this interface, so
// this header needs no LibTorch: batches travel as the codec's TensorData ([n, sample shape...],
// row-major, float32 on the wire). forward() is stateless; backward() recomputes the forward from
// the inputs the client sends back (Learning@home's stateless server), back-propagates the output
// gradients and applies one optimizer step at once (asynchronous, stale updates, as the paper).
// The zoo (core/moe/expert_zoo.cpp) builds experts by name; ExpertInfo describes one without
// allocating it (shapes, parameters, FLOPs), which the timing-only compute mode and the cost model
// use. Not thread-safe: an expert is used from its server's loop only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/message.h"
#include "core/options.h"
#include "core/status.h"

namespace crowdtrain::moe {

// Which expert to build. Builder style: ExpertConfig().kind("ffn").hidden(1024).
class ExpertConfig {
#define CT_EXPERT_OPTION(type, name, init) CT_OPTION(ExpertConfig, type, name, init)

  // "ffn" (hivemind: LayerNorm(x + Linear(4h,h)(GELU(Linear(h,4h)(x))))), "residual_ffn" (the
  // paper's block: x + Linear(f,h)(ReLU(LN(Linear(f,f)(ReLU(LN(Linear(h,f)(x)))))))),
  // "transformer" (an encoder layer on [seq_len, hidden] samples, GELU), "torchscript" (a
  // TorchScript file exported from PyTorch, `script_path`), or a name registered in C++.
  CT_EXPERT_OPTION(std::string, kind, "ffn")
  CT_EXPERT_OPTION(int64_t, hidden, 64)           // h (d_model for "transformer")
  CT_EXPERT_OPTION(int64_t, ffn_dim, 0)           // inner width; 0 = 4 * hidden
  CT_EXPERT_OPTION(int64_t, heads, 4)             // "transformer"
  CT_EXPERT_OPTION(int64_t, seq_len, 0)           // "transformer": tokens per sample (0 = 1)
  CT_EXPERT_OPTION(std::string, script_path, "")  // "torchscript"
  // "torchscript": the per-sample input/output shape the module expects (empty = [hidden]).
  CT_EXPERT_OPTION(std::vector<int64_t>, sample_shape, {})
  CT_EXPERT_OPTION(std::string, optimizer, "adam")  // "adam" | "amsgrad" | "sgd"
  CT_EXPERT_OPTION(double, lr, 1e-3)
  CT_EXPERT_OPTION(double, momentum, 0.0)       // sgd
  CT_EXPERT_OPTION(double, max_grad_norm, 0.0)  // clip before the step; 0 = no clipping
  // adam, amsgrad: the step in one pass over memory (core/train/fused_adam.h; the same update to
  // float rounding); false: torch::optim::Adam's own step (to compare).
  CT_EXPERT_OPTION(bool, fused_step, true)
  CT_EXPERT_OPTION(std::string, device, "cpu")  // "cpu" | "cuda" (when LibTorch has CUDA)
  CT_EXPERT_OPTION(uint64_t, seed, 0)           // parameter initialisation
#undef CT_EXPERT_OPTION
};

// What an expert is, without building it.
struct ExpertInfo {
  std::vector<int64_t> input_shape;   // per sample (no batch dimension)
  std::vector<int64_t> output_shape;  // per sample
  int64_t parameters = 0;             // trainable scalars
  double forward_flops_per_sample = 0;
  // Recomputed forward + backward through the inputs and the weights (about 3x the forward).
  double backward_flops_per_sample = 0;
};

// What one backward call does to the parameters (the server's stale_updates and
// min_update_samples options decide it).
struct UpdateRule {
  // The step's learning rate is the configured one times lr_scale, in [0, 1]. 0: the call only
  // returns its input gradient; its parameter gradient is neither kept nor applied.
  double lr_scale = 1.0;
  // false: the parameter gradient is added to those accumulated since the last step and no step
  // is taken; true: one optimizer step on the mean of the accumulated calls' gradients.
  bool step = true;
};

class Expert {
 public:
  virtual ~Expert() = default;
  virtual const ExpertInfo& info() const = 0;
  // outputs = module(inputs) without recording a graph. `inputs` is [n, input_shape...] float32;
  // anything else (shape, dtype, non-finite values) is refused with a reason, state untouched.
  virtual Result<TensorData> forward(const TensorData& inputs) = 0;
  // Recomputes the forward of `inputs` with a graph, back-propagates `grad_outputs` ([n,
  // output_shape...] float32) and, when every gradient is finite, updates the parameters as
  // `rule` says (below). Returns the gradient with respect to the inputs. Non-finite gradients:
  // an error, no step, and the gradients accumulated so far are dropped.
  virtual Result<TensorData> backward(const TensorData& inputs, const TensorData& grad_outputs,
                                      const UpdateRule& rule) = 0;
  Result<TensorData> backward(const TensorData& inputs, const TensorData& grad_outputs) {
    return backward(inputs, grad_outputs, UpdateRule());
  }
  virtual uint64_t updates() const = 0;  // optimizer steps applied so far
  // Parameters and optimizer state as bytes (a checkpoint), and back. load_state refuses bytes
  // of another architecture or a corrupt blob with a reason and leaves the expert as it was.
  virtual Result<std::string> save_state() const = 0;
  virtual Status load_state(const std::string& bytes) = 0;
};

// The zoo. expert_info() checks the config (unknown kind, bad sizes, missing script) with a reason.
Result<ExpertInfo> expert_info(const ExpertConfig& config);
Result<std::unique_ptr<Expert>> make_expert(const ExpertConfig& config);

// Bringing one's own expert in C++: a factory registered under a kind name before the scenario is
// read (e.g. from main() or a static initialiser in the program that links it).
struct ExpertFactory {
  std::function<Result<ExpertInfo>(const ExpertConfig&)> info;
  std::function<Result<std::unique_ptr<Expert>>(const ExpertConfig&)> make;
};
Status register_expert_kind(const std::string& kind, ExpertFactory factory);
std::vector<std::string> expert_kinds();  // built-in and registered, sorted

}  // namespace crowdtrain::moe
