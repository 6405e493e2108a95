// LocalTrainer: cross-entropy training of a Model with torch::optim, one batch per step. The
// optimizer statistics are read and written through torch's per-parameter state map (keyed by the
// parameter's TensorImpl address, as torch::optim itself does).
#include "core/train/local_trainer.h"

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace crowdtrain::train {

struct LocalTrainer::Optim {
  OptimizerKind kind;
  bool has_momentum = false;
  std::unique_ptr<torch::optim::Optimizer> opt;
  std::vector<torch::Tensor> params;
};

namespace {

std::string state_key(const torch::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}

}  // namespace

LocalTrainer::LocalTrainer(std::unique_ptr<Model> model, Dataset train, LocalTrainerOptions options)
    : model_(std::move(model)), options_(options) {
  CT_CHECK(model_ != nullptr);
  CT_CHECK(options_.lr() > 0 && options_.batch_size() > 0 && options_.eval_batch_size() > 0);
  if (options_.intra_op_threads() > 0 && at::get_num_threads() != options_.intra_op_threads()) {
    at::set_num_threads(options_.intra_op_threads());
  }
  batches_ = std::make_unique<BatchIterator>(std::move(train), options_.batch_size(),
                                             derive_seed(options_.seed(), "batches"));
  optim_ = std::make_unique<Optim>();
  optim_->kind = options_.optimizer();
  optim_->params = model_->module().parameters();
  if (options_.optimizer() == OptimizerKind::kAdam) {
    optim_->opt = std::make_unique<torch::optim::Adam>(
        optim_->params,
        torch::optim::AdamOptions(options_.lr()).weight_decay(options_.weight_decay()));
  } else {
    optim_->has_momentum = options_.momentum() > 0;
    optim_->opt = std::make_unique<torch::optim::SGD>(optim_->params,
                                                      torch::optim::SGDOptions(options_.lr())
                                                          .momentum(options_.momentum())
                                                          .weight_decay(options_.weight_decay()));
  }
  model_->module().train();
}

LocalTrainer::~LocalTrainer() = default;

double LocalTrainer::step_flops() const { return model_->train_flops(options_.batch_size()); }

StepStats LocalTrainer::run_step() {
  torch::manual_seed(derive_seed(options_.seed(), "torch", static_cast<uint64_t>(steps_)));
  torch::Tensor x, y;
  batches_->next(&x, &y);
  optim_->opt->zero_grad();
  torch::Tensor loss = torch::nn::functional::cross_entropy(model_->forward(x), y);
  loss.backward();
  optim_->opt->step();
  ++steps_;
  return StepStats{steps_, loss.item<double>()};
}

void LocalTrainer::step(Runtime& rt, std::function<void(const StepStats&)> done) {
  CT_CHECK(!busy_);
  busy_ = true;
  auto stats = std::make_shared<StepStats>();
  rt.compute(
      ComputeCost{step_flops()}, [this, stats] { *stats = run_step(); },
      [this, stats, done = std::move(done)] {
        busy_ = false;
        if (done) done(*stats);
      });
}

StepStats LocalTrainer::run_accumulate() {
  torch::manual_seed(
      derive_seed(options_.seed(), "torch_micro", static_cast<uint64_t>(micro_steps_)));
  torch::Tensor x, y;
  batches_->next(&x, &y);
  if (accumulated_ == 0) optim_->opt->zero_grad();
  // Gradient of the batch's summed loss: the running .grad is the sum over samples.
  torch::Tensor loss = torch::nn::functional::cross_entropy(model_->forward(x), y);
  (loss * static_cast<double>(x.size(0))).backward();
  accumulated_ += x.size(0);
  ++micro_steps_;
  return StepStats{micro_steps_, loss.item<double>()};
}

void LocalTrainer::accumulate(Runtime& rt, std::function<void(const StepStats&)> done) {
  CT_CHECK(!busy_);
  busy_ = true;
  auto stats = std::make_shared<StepStats>();
  rt.compute(
      ComputeCost{step_flops()}, [this, stats] { *stats = run_accumulate(); },
      [this, stats, done = std::move(done)] {
        busy_ = false;
        if (done) done(*stats);
      });
}

StepStats LocalTrainer::accumulate_now() {
  CT_CHECK(!busy_);
  return run_accumulate();
}

at::Tensor LocalTrainer::accumulated_gradients() const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (const torch::Tensor& p : optim_->params) {
    const torch::Tensor g = p.grad();
    parts.push_back(
        accumulated_ > 0 && g.defined()
            ? (g.detach().reshape({-1}) / static_cast<double>(accumulated_)).to(torch::kFloat32)
            : torch::zeros({p.numel()}, torch::kFloat32));
  }
  return parts.empty() ? torch::empty({0}, torch::kFloat32) : torch::cat(parts);
}

Status LocalTrainer::apply_gradients(const at::Tensor& flat) {
  if (!flat.defined() || flat.dim() != 1 || flat.numel() != num_parameters()) {
    return Status::error("apply_gradients: expected " + std::to_string(num_parameters()) +
                         " values, got " +
                         (flat.defined() ? std::to_string(flat.numel()) : std::string("none")));
  }
  if (!torch::isfinite(flat).all().item<bool>()) {
    return Status::error("apply_gradients: non-finite gradient");
  }
  {
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (torch::Tensor& p : optim_->params) {
      const torch::Tensor g = flat.narrow(0, offset, p.numel()).reshape_as(p).to(p.dtype());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(g);
      } else {
        p.mutable_grad() = g.clone();
      }
      offset += p.numel();
    }
  }
  optim_->opt->step();
  optim_->opt->zero_grad();
  accumulated_ = 0;
  ++steps_;
  return Status();
}

void LocalTrainer::discard_gradients() {
  optim_->opt->zero_grad();
  accumulated_ = 0;
}

StepStats LocalTrainer::step_now() {
  CT_CHECK(!busy_);
  return run_step();
}

EvalResult LocalTrainer::evaluate(const Dataset& data) const {
  EvalResult r;
  if (data.size() == 0) return r;
  torch::NoGradGuard no_grad;
  model_->module().eval();  // no dropout or batch-norm updates while measuring
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < data.size(); begin += options_.eval_batch_size()) {
    const int64_t n = std::min(options_.eval_batch_size(), data.size() - begin);
    const torch::Tensor x = data.images().narrow(0, begin, n);
    const torch::Tensor y = data.labels().narrow(0, begin, n);
    const torch::Tensor logits = model_->forward(x);
    loss_sum +=
        torch::nn::functional::cross_entropy(
            logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
            .item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  model_->module().train();
  r.samples = data.size();
  r.loss = loss_sum / static_cast<double>(r.samples);
  r.accuracy = static_cast<double>(correct) / static_cast<double>(r.samples);
  return r;
}

at::Tensor LocalTrainer::parameters() const { return flatten_parameters(model_->module()); }

Status LocalTrainer::set_parameters(const at::Tensor& flat) {
  return unflatten_parameters(flat, model_->module());
}

int64_t LocalTrainer::num_parameters() const { return count_parameters(model_->module()); }

namespace {

// The statistics tensors of `p` (created as zeros, step `adam_step`, when absent and `create`).
std::vector<torch::Tensor> stats_of(torch::optim::Optimizer& opt, OptimizerKind kind,
                                    const torch::Tensor& p, bool create, int64_t adam_step) {
  auto& state = opt.state();
  auto it = state.find(state_key(p));
  if (kind == OptimizerKind::kAdam) {
    if (it == state.end()) {
      if (!create) return {torch::zeros_like(p), torch::zeros_like(p)};
      auto s = std::make_unique<torch::optim::AdamParamState>();
      s->step(adam_step);
      s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      it = state.emplace(state_key(p), std::move(s)).first;
    }
    auto& s = static_cast<torch::optim::AdamParamState&>(*it->second);
    if (create) s.step(adam_step);
    return {s.exp_avg(), s.exp_avg_sq()};
  }
  if (it == state.end()) {
    if (!create) return {torch::zeros_like(p)};
    auto s = std::make_unique<torch::optim::SGDParamState>();
    s->momentum_buffer(torch::zeros_like(p));
    it = state.emplace(state_key(p), std::move(s)).first;
  }
  return {static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer()};
}

}  // namespace

at::Tensor LocalTrainer::optimizer_state() const {
  torch::NoGradGuard no_grad;
  const bool adam = optim_->kind == OptimizerKind::kAdam;
  if (!adam && !optim_->has_momentum) return torch::empty({0}, torch::kFloat32);
  std::vector<torch::Tensor> first, second;
  for (const torch::Tensor& p : optim_->params) {
    std::vector<torch::Tensor> s = stats_of(*optim_->opt, optim_->kind, p, false, 0);
    first.push_back(s[0].detach().reshape({-1}).to(torch::kFloat32));
    if (adam) second.push_back(s[1].detach().reshape({-1}).to(torch::kFloat32));
  }
  first.insert(first.end(), second.begin(), second.end());
  if (first.empty()) return torch::empty({0}, torch::kFloat32);
  return torch::cat(first);
}

Status LocalTrainer::set_optimizer_state(const at::Tensor& flat, int64_t adam_step) {
  const bool adam = optim_->kind == OptimizerKind::kAdam;
  const int64_t per = (adam ? 2 : optim_->has_momentum ? 1 : 0) * num_parameters();
  if (!flat.defined() || flat.dim() != 1 || flat.numel() != per) {
    return Status::error("set_optimizer_state: expected a 1-D vector of " + std::to_string(per) +
                         " statistics, got " +
                         (flat.defined() ? std::to_string(flat.numel()) : std::string("none")));
  }
  if (adam_step < 0) return Status::error("set_optimizer_state: negative Adam step");
  if (per == 0) return Status();
  torch::NoGradGuard no_grad;
  const int64_t half = num_parameters();
  int64_t offset = 0;
  for (const torch::Tensor& p : optim_->params) {
    std::vector<torch::Tensor> s = stats_of(*optim_->opt, optim_->kind, p, true, adam_step);
    s[0].copy_(flat.narrow(0, offset, p.numel()).reshape_as(p));
    if (adam) s[1].copy_(flat.narrow(0, half + offset, p.numel()).reshape_as(p));
    offset += p.numel();
  }
  return Status();
}

int64_t LocalTrainer::adam_step() const {
  if (optim_->kind != OptimizerKind::kAdam || optim_->params.empty()) return 0;
  auto& state = optim_->opt->state();
  auto it = state.find(state_key(optim_->params.front()));
  if (it == state.end()) return 0;
  return static_cast<torch::optim::AdamParamState&>(*it->second).step();
}

}  // namespace crowdtrain::train
