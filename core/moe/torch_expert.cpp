// TorchExpert: validation of incoming batches, the stateless forward, the recomputing backward
// with one optimizer step (hivemind's module_backend: a step per backward), and checkpoints as a
// torch::serialize archive: format, architecture, optimizer name, updates, the module's tensors
// and the optimizer's state. A load either applies all of it or restores the previous state.
#include "core/moe/torch_expert.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <utility>

#include "core/moe/expert_blocks.h"
#include "core/tensor_codec.h"
#include "core/train/fused_adam.h"

namespace crowdtrain::moe {
namespace {

constexpr const char* kCheckpointFormat = "crowdtrain.moe.expert.v1";

torch::Device device_of(const ExpertConfig& c) {
  return c.device() == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const ExpertConfig& c,
                                                        std::vector<at::Tensor> params) {
  if (c.optimizer() == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        std::move(params), torch::optim::SGDOptions(c.lr()).momentum(c.momentum()));
  }
  return std::make_unique<torch::optim::Adam>(
      std::move(params), torch::optim::AdamOptions(c.lr()).amsgrad(c.optimizer() == "amsgrad"));
}

// Every tensor `module` would load from `archive` (recursively, as Module::load reads them) is
// present with the same shape and dtype. Nothing is modified.
Status check_archive(const torch::nn::Module& module, torch::serialize::InputArchive& archive,
                     const std::string& prefix) {
  auto check = [&](const std::string& name, const at::Tensor& want, bool is_buffer) -> Status {
    at::Tensor got;
    if (!archive.try_read(name, got, is_buffer)) {
      return Status::error("checkpoint lacks " + prefix + name);
    }
    if (got.sizes() != want.sizes() || got.scalar_type() != want.scalar_type()) {
      return Status::error("checkpoint's " + prefix + name + " is " +
                           shape_text(got.sizes().vec()) + ", the expert's " +
                           shape_text(want.sizes().vec()));
    }
    return Status();
  };
  for (const auto& p : module.named_parameters(false)) {
    if (Status s = check(p.key(), p.value(), false); !s.ok()) return s;
  }
  for (const auto& b : module.named_buffers(false)) {
    if (Status s = check(b.key(), b.value(), true); !s.ok()) return s;
  }
  for (const auto& child : module.named_children()) {
    torch::serialize::InputArchive sub;
    if (!archive.try_read(child.key(), sub)) {
      return Status::error("checkpoint lacks module " + prefix + child.key());
    }
    if (Status s = check_archive(*child.value(), sub, prefix + child.key() + "."); !s.ok())
      return s;
  }
  return Status();
}

}  // namespace

Status check_training_options(const ExpertConfig& c) {
  const std::string where = "expert '" + c.kind() + "': ";
  if (c.optimizer() != "adam" && c.optimizer() != "amsgrad" && c.optimizer() != "sgd") {
    return Status::error(where + "optimizer '" + c.optimizer() + "' is not adam, amsgrad or sgd");
  }
  if (!(c.lr() > 0 && c.lr() < 1e3)) {
    return Status::error(where + "lr " + std::to_string(c.lr()) + " outside (0, 1000)");
  }
  if (!(c.momentum() >= 0 && c.momentum() < 1)) {
    return Status::error(where + "momentum " + std::to_string(c.momentum()) + " outside [0, 1)");
  }
  if (!(c.max_grad_norm() >= 0 && std::isfinite(c.max_grad_norm()))) {
    return Status::error(where + "max_grad_norm must be finite and >= 0 (0 = no clipping)");
  }
  if (c.device() != "cpu" && c.device() != "cuda") {
    return Status::error(where + "device '" + c.device() + "' is not cpu or cuda");
  }
  return Status();
}

TorchExpert::TorchExpert(const ExpertConfig& config, ExpertInfo info,
                         std::unique_ptr<ExpertModule> module)
    : config_(config), info_(std::move(info)), module_(std::move(module)) {}

TorchExpert::~TorchExpert() = default;

Result<std::unique_ptr<TorchExpert>> TorchExpert::create(const ExpertConfig& config,
                                                         ExpertInfo info,
                                                         std::unique_ptr<ExpertModule> module) {
  CT_CHECK(module != nullptr);
  if (Status s = check_training_options(config); !s.ok()) return s;
  if (config.device() == "cuda" && !torch::cuda::is_available()) {
    return Status::error("expert '" + config.kind() +
                         "': device cuda requested but LibTorch sees no CUDA device");
  }
  int64_t params = 0;
  for (const at::Tensor& p : module->module().parameters()) params += p.numel();
  if (params != info.parameters) {
    return Status::error("expert '" + config.kind() + "': the module has " +
                         std::to_string(params) + " parameters, its info says " +
                         std::to_string(info.parameters));
  }
  std::unique_ptr<TorchExpert> e(new TorchExpert(config, std::move(info), std::move(module)));
  e->module_->module().to(device_of(config));
  e->optimizer_ = make_optimizer(config, e->module_->module().parameters());
  return e;
}

Result<at::Tensor> TorchExpert::checked_batch(const TensorData& t,
                                              const std::vector<int64_t>& sample,
                                              const char* what) const {
  const std::string where = "expert '" + config_.kind() + "' " + what + ": ";
  if (t.dtype != DType::kFloat32) {
    return Status::error(where + "dtype " + std::to_string(static_cast<int>(t.dtype)) +
                         " is not float32");
  }
  bool shape_ok = t.shape.size() == sample.size() + 1 && t.shape[0] >= 1;
  for (size_t i = 0; shape_ok && i < sample.size(); ++i) shape_ok = t.shape[i + 1] == sample[i];
  if (!shape_ok) {
    return Status::error(where + "shape " + shape_text(t.shape) + " is not [n >= 1, " +
                         shape_text(sample).substr(1));
  }
  Result<at::Tensor> x = from_tensor_data(t);
  if (!x.ok()) return Status::error(where + x.error());
  if (!torch::isfinite(*x).all().item<bool>()) {
    return Status::error(where + "non-finite values (NaN or Inf)");
  }
  return x->to(device_of(config_));
}

Result<TensorData> TorchExpert::forward(const TensorData& inputs) {
  Result<at::Tensor> x = checked_batch(inputs, info_.input_shape, "forward inputs");
  if (!x.ok()) return x.status();
  try {
    torch::NoGradGuard no_grad;
    at::Tensor y = module_->forward(*x);
    std::vector<int64_t> want = {x->size(0)};
    want.insert(want.end(), info_.output_shape.begin(), info_.output_shape.end());
    if (y.scalar_type() != torch::kFloat32 || y.sizes().vec() != want) {
      return Status::error("expert '" + config_.kind() + "' forward: the module returned " +
                           shape_text(y.sizes().vec()) + ", not float32 " + shape_text(want));
    }
    return to_tensor_data(y);
  } catch (const std::exception& e) {
    return Status::error("expert '" + config_.kind() + "' forward failed: " + torch_error_text(e));
  }
}

Result<TensorData> TorchExpert::backward(const TensorData& inputs, const TensorData& grad_outputs,
                                         const UpdateRule& rule) {
  if (!(rule.lr_scale >= 0 && rule.lr_scale <= 1)) {
    return Status::error("expert '" + config_.kind() + "' backward: lr_scale " +
                         std::to_string(rule.lr_scale) + " outside [0, 1]");
  }
  Result<at::Tensor> x = checked_batch(inputs, info_.input_shape, "backward inputs");
  if (!x.ok()) return x.status();
  Result<at::Tensor> g = checked_batch(grad_outputs, info_.output_shape, "backward grad_outputs");
  if (!g.ok()) return g.status();
  if (x->size(0) != g->size(0)) {
    return Status::error("expert '" + config_.kind() + "' backward: " + std::to_string(x->size(0)) +
                         " inputs but " + std::to_string(g->size(0)) + " output gradients");
  }
  try {
    return rule.lr_scale == 0 ? input_gradient(*x, *g) : backward_step(*x, *g, rule);
  } catch (const std::exception& e) {
    clear_grads();
    return Status::error("expert '" + config_.kind() + "' backward failed: " + torch_error_text(e));
  }
}

// The forward again, with a graph from `input`, checked against the output gradients' shape.
Result<at::Tensor> TorchExpert::recompute(const at::Tensor& input, const at::Tensor& grad_out) {
  at::Tensor y = module_->forward(input);
  if (y.sizes() != grad_out.sizes()) {
    return Status::error("expert '" + config_.kind() + "' backward: the module returned " +
                         shape_text(y.sizes().vec()) + ", the gradients are " +
                         shape_text(grad_out.sizes().vec()));
  }
  return y;
}

// Gradients are zero (or not yet allocated) on entry unless pending_ calls accumulated theirs:
// every way out of a backward that steps or fails clears them.
Result<TensorData> TorchExpert::backward_step(const at::Tensor& x, const at::Tensor& grad_out,
                                              const UpdateRule& rule) {
  at::Tensor input = x.detach().requires_grad_(true);
  Result<at::Tensor> recomputed = recompute(input, grad_out);
  if (!recomputed.ok()) return recomputed.status();
  at::Tensor y = recomputed.value();
  y.backward(grad_out);
  at::Tensor grad_in = input.grad().defined() ? input.grad() : torch::zeros_like(input);
  std::vector<at::Tensor> params = module_->module().parameters();
  // Every value is finite iff each tensor's min and max are (NaN propagates through both): two
  // reductions per tensor, no tensor-sized temporaries, one device->host synchronisation.
  std::vector<at::Tensor> extremes;
  auto add_extremes = [&extremes](const at::Tensor& t) {
    auto [lo, hi] = torch::aminmax(t);
    extremes.push_back(lo);
    extremes.push_back(hi);
  };
  add_extremes(grad_in);
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) add_extremes(p.grad());
  }
  if (!torch::isfinite(torch::stack(extremes)).all().item<bool>()) {
    clear_grads();
    return Status::error("expert '" + config_.kind() +
                         "' backward: non-finite gradients (NaN or Inf); no step taken");
  }
  if (!rule.step) {
    ++pending_;
    return to_tensor_data(grad_in);
  }
  if (pending_ > 0) {  // the mean over the accumulated calls and this one
    torch::NoGradGuard no_grad;
    for (at::Tensor& p : params) {
      if (p.grad().defined()) p.mutable_grad().div_(static_cast<double>(pending_ + 1));
    }
  }
  if (config_.max_grad_norm() > 0)
    torch::nn::utils::clip_grad_norm_(params, config_.max_grad_norm());
  step(rule.lr_scale);
  clear_grads();
  ++updates_;
  return to_tensor_data(grad_in);
}

// Adam and AMSGrad take the fused loop (the same update in one pass over memory: on a CPU the
// step was most of a small batch's backward call); SGD takes torch's step.
void TorchExpert::step(double lr_scale) {
  auto* adam = config_.fused_step() ? dynamic_cast<torch::optim::Adam*>(optimizer_.get()) : nullptr;
  auto run = [&] { adam != nullptr ? train::fused_adam_step(*adam) : (void)optimizer_->step(); };
  if (lr_scale == 1) {
    run();
    return;
  }
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(config_.lr() * lr_scale);
  run();
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(config_.lr());
}

// autograd::grad runs only the part of the backward the input gradient needs: the parameters'
// gradient products are skipped and nothing is accumulated into their .grad.
Result<TensorData> TorchExpert::input_gradient(const at::Tensor& x, const at::Tensor& grad_out) {
  at::Tensor input = x.detach().requires_grad_(true);
  Result<at::Tensor> recomputed = recompute(input, grad_out);
  if (!recomputed.ok()) return recomputed.status();
  at::Tensor y = recomputed.value();
  at::Tensor grad_in = torch::autograd::grad({y}, {input}, {grad_out}, /*retain_graph=*/false,
                                             /*create_graph=*/false, /*allow_unused=*/true)[0];
  if (!grad_in.defined()) grad_in = torch::zeros_like(input);
  if (!torch::isfinite(grad_in).all().item<bool>()) {
    return Status::error("expert '" + config_.kind() +
                         "' backward: non-finite input gradients (NaN or Inf)");
  }
  return to_tensor_data(grad_in);
}

// Gradients are dropped, not zeroed: the next backward then writes each parameter's gradient
// where autograd computed it (no pass to zero, none to add into zeros; the same values). The freed
// buffers stay in the process (core/allocator.h keep_freed_memory), so no fresh pages fault in.
void TorchExpert::clear_grads() {
  pending_ = 0;
  for (at::Tensor& p : module_->module().parameters()) p.mutable_grad() = at::Tensor();
}

Result<std::string> TorchExpert::save_state() const {
  try {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
    archive.write("architecture", c10::IValue(module_->architecture()));
    archive.write("optimizer_kind", c10::IValue(config_.optimizer()));
    archive.write("updates", c10::IValue(static_cast<int64_t>(updates_)));
    torch::serialize::OutputArchive module_archive, optimizer_archive;
    module_->module().save(module_archive);
    optimizer_->save(optimizer_archive);
    archive.write("module", module_archive);
    archive.write("optimizer", optimizer_archive);
    std::ostringstream out;
    archive.save_to(out);
    return out.str();
  } catch (const std::exception& e) {
    return Status::error("expert '" + config_.kind() + "' save_state: " + torch_error_text(e));
  }
}

Status TorchExpert::load_state(const std::string& bytes) {
  Result<std::string> snapshot = save_state();
  if (!snapshot.ok()) return snapshot.status();
  Status loaded = load_unchecked(bytes);
  if (loaded.ok()) {
    clear_grads();  // gradients accumulated for the parameters that were replaced
    return loaded;
  }
  // A part may have been applied: a fresh optimizer, then the state as it was.
  optimizer_ = make_optimizer(config_, module_->module().parameters());
  const Status restored = load_unchecked(*snapshot);
  CT_CHECK(restored.ok());
  return Status::error("expert '" + config_.kind() + "' load_state refused: " + loaded.message());
}

Status TorchExpert::load_unchecked(const std::string& bytes) {
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in(bytes);
    archive.load_from(in, device_of(config_));
    auto read_string = [&](const char* key, const std::string& want) -> Status {
      c10::IValue v;
      if (!archive.try_read(key, v) || !v.isString()) {
        return Status::error(std::string("no '") + key + "' in the checkpoint");
      }
      if (v.toStringRef() != want) {
        return Status::error(std::string(key) + " '" + v.toStringRef() + "' is not '" + want + "'");
      }
      return Status();
    };
    if (Status s = read_string("format", kCheckpointFormat); !s.ok()) return s;
    if (Status s = read_string("architecture", module_->architecture()); !s.ok()) return s;
    if (Status s = read_string("optimizer_kind", config_.optimizer()); !s.ok()) return s;
    c10::IValue updates;
    torch::serialize::InputArchive module_archive, optimizer_archive;
    if (!archive.try_read("updates", updates) || !updates.isInt() || updates.toInt() < 0 ||
        !archive.try_read("module", module_archive) ||
        !archive.try_read("optimizer", optimizer_archive)) {
      return Status::error("the checkpoint lacks its updates, module or optimizer part");
    }
    if (Status s = check_archive(module_->module(), module_archive, ""); !s.ok()) return s;
    module_->module().load(module_archive);
    optimizer_->load(optimizer_archive);
    updates_ = static_cast<uint64_t>(updates.toInt());
    return Status();
  } catch (const std::exception& e) {  // c10::Error and the JIT's own exceptions
    return Status::error("unreadable checkpoint: " + torch_error_text(e));
  }
}

}  // namespace crowdtrain::moe
