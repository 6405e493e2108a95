// TorchExpert: the Expert every built-in kind (and any C++ kind that wants it) is made of, an
// ExpertModule (a torch::nn::Module holding every trained parameter, plus how to run a batch) and
// its optimizer (Adam or SGD with momentum), both on the config's device. It owns both; tests
// reach the module through module(). Gradient buffers stay allocated between steps, zeroed (as
// LibTorch's Optimizer::zero_grad), so a parameter a batch does not use still moves by its Adam
// moments. LibTorch types are only forward-declared here. Not thread-safe: one expert is used
// from one loop (its server's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/moe/expert.h"

namespace at {
class Tensor;
}
namespace torch {
namespace nn {
class Module;
}
namespace optim {
class Optimizer;
}
}  // namespace torch

namespace crowdtrain::moe {

// A block as TorchExpert sees it. module() registers every parameter the optimizer trains and
// every buffer a checkpoint keeps; forward() maps a batch [n, input...] to [n, output...] on the
// module's device. architecture() names the kind and sizes: checkpoints of another one are refused.
class ExpertModule {
 public:
  virtual ~ExpertModule() = default;
  virtual torch::nn::Module& module() = 0;
  virtual at::Tensor forward(const at::Tensor& batch) = 0;
  virtual std::string architecture() const = 0;
};

// Checks the options every TorchExpert shares (optimizer, lr, momentum, clipping, device name);
// does not look for a GPU.
Status check_training_options(const ExpertConfig& config);

class TorchExpert final : public Expert {
 public:
  // Moves `module` to config.device() (an error when that is "cuda" and CUDA is unavailable) and
  // builds its optimizer. `info` must describe the module: its parameter count is checked.
  static Result<std::unique_ptr<TorchExpert>> create(const ExpertConfig& config, ExpertInfo info,
                                                     std::unique_ptr<ExpertModule> module);
  ~TorchExpert() override;
  TorchExpert(const TorchExpert&) = delete;
  TorchExpert& operator=(const TorchExpert&) = delete;

  const ExpertInfo& info() const override { return info_; }
  Result<TensorData> forward(const TensorData& inputs) override;
  using Expert::backward;
  Result<TensorData> backward(const TensorData& inputs, const TensorData& grad_outputs,
                              const UpdateRule& rule) override;
  uint64_t updates() const override { return updates_; }
  Result<std::string> save_state() const override;
  Status load_state(const std::string& bytes) override;

  ExpertModule& module() { return *module_; }

 private:
  TorchExpert(const ExpertConfig& config, ExpertInfo info, std::unique_ptr<ExpertModule> module);
  // `t` as a tensor on the expert's device if it is float32, [n >= 1, sample...] and finite.
  Result<at::Tensor> checked_batch(const TensorData& t, const std::vector<int64_t>& sample,
                                   const char* what) const;
  Result<TensorData> backward_step(const at::Tensor& x, const at::Tensor& grad_out,
                                   const UpdateRule& rule);
  Result<at::Tensor> recompute(const at::Tensor& input, const at::Tensor& grad_out);
  // lr_scale 0: only the gradient with respect to the inputs (no parameter gradients, no step).
  Result<TensorData> input_gradient(const at::Tensor& x, const at::Tensor& grad_out);
  void step(double lr_scale);  // one optimizer step at lr * lr_scale
  Status load_unchecked(const std::string& bytes);
  void clear_grads();

  ExpertConfig config_;
  ExpertInfo info_;
  std::unique_ptr<ExpertModule> module_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  uint64_t updates_ = 0;
  uint64_t pending_ = 0;  // backward calls whose gradients are accumulated, not yet stepped
};

}  // namespace crowdtrain::moe
