// Kind "torchscript": a module exported from PyTorch (analysis/export_torchscript_expert.py)
// loaded with torch::jit::load. Its parameters and buffers are registered, as the same tensors,
// in a torch::nn::Module wrapper, so the optimizer trains them in place and checkpoints hold them.
// Samples have config.sample_shape (default [hidden]); the output shape is found by running the
// module once on zeros. FLOPs per sample are approximated as 2 x parameters (one multiply-add per
// weight, exact for a stack of linear layers), since a script's structure is not analysed.
#include <torch/script.h>
#include <torch/torch.h>

#include <sstream>
#include <utility>

#include "core/moe/expert_blocks.h"

namespace crowdtrain::moe {
namespace {

// The wrapper: parameter i is registered as "p<i>_<dotted name with '.' -> '_'>" (nn::Module
// names may not contain dots; the index keeps them unique), buffers likewise as "b<i>_...".
class ScriptBlock final : public ExpertModule {
 public:
  explicit ScriptBlock(torch::jit::Module script, std::string architecture)
      : script_(std::move(script)),
        holder_(std::make_shared<torch::nn::Module>("ScriptExpert")),
        architecture_(std::move(architecture)) {
    int i = 0;
    for (const auto& p : script_.named_parameters(true)) {
      holder_->register_parameter("p" + std::to_string(i++) + "_" + undotted(p.name), p.value);
    }
    i = 0;
    for (const auto& b : script_.named_buffers(true)) {
      holder_->register_buffer("b" + std::to_string(i++) + "_" + undotted(b.name), b.value);
    }
  }
  torch::nn::Module& module() override { return *holder_; }
  at::Tensor forward(const at::Tensor& batch) override {
    return script_.forward({batch}).toTensor();
  }
  std::string architecture() const override { return architecture_; }

 private:
  static std::string undotted(std::string name) {
    for (char& ch : name) {
      if (ch == '.') ch = '_';
    }
    return name;
  }
  torch::jit::Module script_;
  std::shared_ptr<torch::nn::Module> holder_;
  std::string architecture_;
};

std::vector<int64_t> sample_of(const ExpertConfig& c) {
  return c.sample_shape().empty() ? std::vector<int64_t>{c.hidden()} : c.sample_shape();
}

// The file loaded on the CPU, with its sample shape checked and its output shape probed.
struct Loaded {
  torch::jit::Module script;
  ExpertInfo info;
  std::string architecture;
};

Result<Loaded> load(const ExpertConfig& c) {
  const std::string where = "expert 'torchscript' (" + c.script_path() + "): ";
  if (c.script_path().empty()) return Status::error("expert 'torchscript': no script_path given");
  const std::vector<int64_t> sample = sample_of(c);
  for (int64_t dim : sample) {
    if (dim < 1 || dim > kMaxExpertWidth) {
      return Status::error(where + "sample shape " + shape_text(sample) + " has a dimension " +
                           "outside [1, " + std::to_string(kMaxExpertWidth) + "]");
    }
  }
  Loaded out;
  try {
    out.script = torch::jit::load(c.script_path(), torch::Device(torch::kCPU));
  } catch (const std::exception& e) {
    return Status::error(where + "cannot load: " + torch_error_text(e));
  }
  std::ostringstream arch;
  arch << "torchscript in=" << shape_text(sample);
  int64_t params = 0;
  for (const auto& p : out.script.named_parameters(true)) {
    params += p.value.numel();
    arch << " " << p.name << shape_text(p.value.sizes().vec());
  }
  if (params > kMaxExpertParameters) {
    return Status::error(where + std::to_string(params) + " parameters exceed the limit");
  }
  std::vector<int64_t> probe_shape = {1};
  probe_shape.insert(probe_shape.end(), sample.begin(), sample.end());
  at::Tensor y;
  try {
    torch::NoGradGuard no_grad;
    c10::IValue result = out.script.forward({torch::zeros(probe_shape)});
    if (!result.isTensor()) return Status::error(where + "forward does not return a tensor");
    y = result.toTensor();
  } catch (const std::exception& e) {
    return Status::error(where + "forward on a " + shape_text(probe_shape) +
                         " batch failed: " + torch_error_text(e));
  }
  if (y.scalar_type() != torch::kFloat32 || y.dim() < 1 || y.size(0) != 1) {
    return Status::error(where + "forward on a " + shape_text(probe_shape) +
                         " float32 batch must return float32 [1, ...], not " +
                         shape_text(y.sizes().vec()));
  }
  out.info.input_shape = sample;
  out.info.output_shape.assign(y.sizes().begin() + 1, y.sizes().end());
  out.info.parameters = params;
  out.info.forward_flops_per_sample = 2.0 * static_cast<double>(params);
  out.info.backward_flops_per_sample = 3.0 * out.info.forward_flops_per_sample;
  arch << " out=" << shape_text(out.info.output_shape);
  out.architecture = arch.str();
  return out;
}

}  // namespace

Result<ExpertInfo> torchscript_info(const ExpertConfig& config) {
  Result<Loaded> loaded = load(config);
  if (!loaded.ok()) return loaded.status();
  return loaded->info;
}

Result<std::unique_ptr<ExpertModule>> build_torchscript(const ExpertConfig& config) {
  Result<Loaded> loaded = load(config);
  if (!loaded.ok()) return loaded.status();
  return std::unique_ptr<ExpertModule>(
      new ScriptBlock(std::move(loaded->script), std::move(loaded->architecture)));
}

}  // namespace crowdtrain::moe
