// DmoeLocalModel: the local parameters of a DMoE classifier as one torch::nn::Module (input
// Linear, gates, LayerNorm, head, registered in that order) with one Adam optimizer, and the
// functional forward of each piece on a parameter list, so a step can run on its own snapshot.
#include "core/train/dmoe_model.h"

#include <torch/torch.h>

#include <string>

#include "core/tensor_codec.h"
#include "core/train/models.h"

namespace crowdtrain::train {

struct DmoeLocalModel::Impl {
  std::shared_ptr<torch::nn::Module> root = std::make_shared<torch::nn::Module>("DmoeLocalModel");
  std::vector<std::unique_ptr<moe::Gating>> gates;
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::Adam> adam;
};

DmoeLocalModel::DmoeLocalModel(const DmoeOptions& options)
    : options_(options), impl_(std::make_unique<Impl>()) {
  const DmoeOptions& o = options_;
  CT_CHECK(o.input_dim() > 0 && o.hidden() > 0 && o.layers() >= 1 && o.classes() > 1);
  CT_CHECK(o.k() >= 1 && o.lr() > 0 && !o.grid_sizes().empty());
  torch::manual_seed(o.seed());
  impl_->root->register_module("input", torch::nn::Linear(o.input_dim(), o.hidden()));
  for (int64_t l = 0; l < o.layers(); ++l) {
    impl_->gates.push_back(
        std::make_unique<moe::Gating>(o.hidden(), o.grid_sizes(), o.gate_norm()));
    impl_->root->register_module("gate" + std::to_string(l), impl_->gates.back()->module());
  }
  impl_->root->register_module("norm",
                               torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.hidden()})));
  impl_->root->register_module("head", torch::nn::Linear(o.hidden(), o.classes()));
  impl_->params = impl_->root->parameters();
  CT_CHECK(impl_->params.size() == static_cast<size_t>(6 + 2 * o.layers()));
  impl_->adam = std::make_unique<torch::optim::Adam>(
      impl_->params, torch::optim::AdamOptions(o.lr()).amsgrad(o.amsgrad()));
}

DmoeLocalModel::~DmoeLocalModel() = default;

torch::nn::Module& DmoeLocalModel::module() { return *impl_->root; }

const moe::Gating& DmoeLocalModel::gate(int64_t layer) const {
  CT_CHECK(layer >= 0 && layer < options_.layers());
  return *impl_->gates[static_cast<size_t>(layer)];
}

std::vector<at::Tensor> DmoeLocalModel::snapshot() const {
  std::vector<at::Tensor> out;
  for (const torch::Tensor& p : impl_->params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

std::vector<at::Tensor> DmoeLocalModel::live() const {
  std::vector<at::Tensor> out;
  for (const torch::Tensor& p : impl_->params) out.push_back(p.detach());
  return out;
}

std::vector<size_t> DmoeLocalModel::gate_params(int64_t layer) {
  const size_t first = 2 + 2 * static_cast<size_t>(layer);
  return {first, first + 1};
}

std::vector<size_t> DmoeLocalModel::head_params() const {
  const size_t first = 2 + 2 * static_cast<size_t>(options_.layers());
  return {first, first + 1, first + 2, first + 3};
}

at::Tensor DmoeLocalModel::input_forward(const std::vector<at::Tensor>& p,
                                         const at::Tensor& x) const {
  return torch::nn::functional::linear(x, p[0], p[1]);
}

at::Tensor DmoeLocalModel::gate_forward(const std::vector<at::Tensor>& p, int64_t layer,
                                        const at::Tensor& h) const {
  const std::vector<size_t> idx = gate_params(layer);
  return gate(layer).forward(h, {p[idx[0]], p[idx[1]]});
}

at::Tensor DmoeLocalModel::head_forward(const std::vector<at::Tensor>& p,
                                        const at::Tensor& h) const {
  const std::vector<size_t> idx = head_params();
  const torch::Tensor normed =
      torch::layer_norm(h, {options_.hidden()}, p[idx[0]], p[idx[1]], 1e-5);
  return torch::nn::functional::linear(normed, p[idx[2]], p[idx[3]]);
}

double DmoeLocalModel::input_flops(int64_t batch) const {
  return linear_flops(options_.input_dim(), options_.hidden(), batch);
}

double DmoeLocalModel::gate_flops(int64_t batch) const { return gate(0).forward_flops(batch); }

double DmoeLocalModel::head_flops(int64_t batch) const {
  return linear_flops(options_.hidden(), options_.classes(), batch);
}

double DmoeLocalModel::combine_flops(int64_t batch) const {
  return 2.0 * static_cast<double>(options_.k() * options_.hidden() * batch);
}

at::Tensor DmoeLocalModel::combine(int64_t layer, const at::Tensor& gate_logits,
                                   const std::vector<std::vector<moe::ExpertCoords>>& coords,
                                   const std::vector<std::vector<int64_t>>& rows,
                                   const std::vector<at::Tensor>& outputs) const {
  const int64_t n = gate_logits.size(0), d = options_.hidden();
  CT_CHECK(static_cast<int64_t>(rows.size()) == n && !outputs.empty());
  // Missing experts have logit -inf, so weight 0; their rows point at row 0 harmlessly.
  const torch::Tensor weights = torch::softmax(gate(layer).expert_logits(gate_logits, coords), 1);
  const int64_t m = weights.size(1);
  std::vector<int64_t> index(static_cast<size_t>(n * m), 0);
  for (int64_t s = 0; s < n; ++s) {
    const std::vector<int64_t>& r = rows[static_cast<size_t>(s)];
    CT_CHECK(!r.empty() && r.size() == coords[static_cast<size_t>(s)].size());
    std::copy(r.begin(), r.end(), index.begin() + s * m);
  }
  const torch::Tensor gathered =
      torch::cat(outputs).index_select(0, torch::tensor(index, torch::kInt64));
  return (weights.unsqueeze(2) * gathered.view({n, m, d})).sum(1);
}

Status DmoeLocalModel::apply_gradients(const std::vector<at::Tensor>& grads) {
  if (grads.size() != impl_->params.size()) {
    return Status::error("DmoeLocalModel::apply_gradients: " + std::to_string(grads.size()) +
                         " gradients for " + std::to_string(impl_->params.size()) + " parameters");
  }
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined() || !grads[i].sizes().equals(impl_->params[i].sizes())) {
      return Status::error("DmoeLocalModel::apply_gradients: gradient " + std::to_string(i) +
                           " is missing or has the wrong shape");
    }
    if (!torch::isfinite(grads[i]).all().item<bool>()) {
      return Status::error("DmoeLocalModel::apply_gradients: gradient " + std::to_string(i) +
                           " is not finite");
    }
  }
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < grads.size(); ++i) {
      impl_->params[i].mutable_grad() = grads[i].detach().to(impl_->params[i].dtype()).clone();
    }
  }
  impl_->adam->step();
  impl_->adam->zero_grad();
  ++updates_;
  return Status();
}

at::Tensor DmoeLocalModel::parameters() const { return flatten_parameters(*impl_->root); }

Status DmoeLocalModel::set_parameters(const at::Tensor& flat) {
  return unflatten_parameters(flat, *impl_->root);
}

int64_t DmoeLocalModel::num_parameters() const { return count_parameters(*impl_->root); }

Result<at::Tensor> expert_output(const moe::ExpertCall& call, int64_t n, int64_t d) {
  const std::string where = "expert " + call.expert.uid + ": ";
  if (!call.output) return Status::error(where + "no output");
  Result<torch::Tensor> t = from_tensor_data(*call.output);
  if (!t.ok()) return Status::error(where + t.error());
  const int64_t rows = static_cast<int64_t>(call.samples.size());
  if (t->scalar_type() != torch::kFloat32 || t->dim() != 2 || t->size(0) != rows ||
      t->size(1) != d) {
    return Status::error(where + "output of the wrong shape or dtype");
  }
  for (int64_t s : call.samples) {
    if (s < 0 || s >= n) return Status::error(where + "sample index out of the batch");
  }
  if (!torch::isfinite(*t).all().item<bool>()) return Status::error(where + "non-finite output");
  return t->clone();
}

int64_t add_grad_inputs(const std::vector<moe::ExpertCall>& calls, at::Tensor& grad) {
  const int64_t n = grad.size(0), d = grad.size(1);
  int64_t ignored = 0;
  for (const moe::ExpertCall& call : calls) {
    if (!call.grad_input) continue;
    Result<torch::Tensor> g = from_tensor_data(*call.grad_input);
    const int64_t rows = static_cast<int64_t>(call.samples.size());
    bool ok = g.ok() && g->scalar_type() == torch::kFloat32 && g->dim() == 2 &&
              g->size(0) == rows && g->size(1) == d && torch::isfinite(*g).all().item<bool>();
    for (int64_t s : call.samples) ok = ok && s >= 0 && s < n;
    if (!ok) {
      ++ignored;
      continue;
    }
    grad.index_add_(0, torch::tensor(call.samples, torch::kInt64), *g);
  }
  return ignored;
}

}  // namespace crowdtrain::train
