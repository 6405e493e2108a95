#include "core/train/fused_adam.h"

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#if defined(__clang__) || defined(__SANITIZE_ADDRESS__)
#define CT_CLONE_AVX2
#else
#define CT_CLONE_AVX2 __attribute__((target_clones("avx2", "default")))
#endif

namespace crowdtrain::train {
namespace {

// Per-step constants, computed in double as Adam::step computes them.
struct AdamConstants {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float sqrt_bias_correction2, eps, neg_step_size, weight_decay;
  bool amsgrad;
};

struct AdamBuffers {
  float* param;
  const float* grad;
  float* exp_avg;
  float* exp_avg_sq;
  float* max_exp_avg_sq;  // null unless amsgrad
};

// The update per element, in Adam::step's order: decay and add the moments, take the running
// maximum, denominator sqrt(v) / sqrt(bias_correction2) + eps, then p += -step_size * m / denom.
// A loop without branches per variant, so that it vectorises; the pointers are parameters, so
// that __restrict holds and the loop needs no aliasing checks.
template <bool kAmsgrad, bool kDecay>
inline __attribute__((always_inline)) void adam_body(const AdamConstants& c,
                                                     float* __restrict param,
                                                     const float* __restrict grad,
                                                     float* __restrict exp_avg,
                                                     float* __restrict exp_avg_sq,
                                                     float* __restrict max_exp_avg_sq, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = kDecay ? grad[i] + c.weight_decay * param[i] : grad[i];
    const float m = exp_avg[i] * c.beta1 + c.one_minus_beta1 * g;
    const float v = exp_avg_sq[i] * c.beta2 + c.one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    float v_hat = v;
    if constexpr (kAmsgrad) {
      const float running_max = max_exp_avg_sq[i];
      v_hat = running_max > v ? running_max : v;
      max_exp_avg_sq[i] = v_hat;
    }
    const float denom = std::sqrt(v_hat) / c.sqrt_bias_correction2 + c.eps;
    param[i] = param[i] + c.neg_step_size * m / denom;
  }
}

// Cloned for AVX2 where the CPU has it, by GCC (clang 14 clones no templates, hence the inlined
// body). Not in clang or sanitizer builds: an instrumented ifunc resolver runs before the
// sanitizer's runtime is up, and those builds are for finding bugs, not speed.
CT_CLONE_AVX2 void adam_loop(const AdamConstants& c, float* __restrict param,
                             const float* __restrict grad, float* __restrict exp_avg,
                             float* __restrict exp_avg_sq, float* __restrict max_exp_avg_sq,
                             int64_t n) {
  const bool decay = c.weight_decay != 0.0f;
  if (c.amsgrad && decay) {
    adam_body<true, true>(c, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n);
  } else if (c.amsgrad) {
    adam_body<true, false>(c, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n);
  } else if (decay) {
    adam_body<false, true>(c, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n);
  } else {
    adam_body<false, false>(c, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n);
  }
}

bool fusable(const at::Tensor& p) {
  if (!p.grad().defined()) return true;  // skipped, as Adam::step skips it
  const at::Tensor& g = p.grad();
  return p.device().is_cpu() && p.scalar_type() == at::kFloat && p.is_contiguous() &&
         !g.is_sparse() && g.device().is_cpu() && g.scalar_type() == at::kFloat &&
         g.is_contiguous() && g.sizes() == p.sizes();
}

// The parameter's state, created as Adam::step creates it on a parameter's first step.
torch::optim::AdamParamState& state_of(torch::optim::Adam& adam, const at::Tensor& p,
                                       bool amsgrad) {
  auto& states = adam.state();
  const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
  auto it = states.find(key);
  if (it == states.end()) {
    auto s = std::make_unique<torch::optim::AdamParamState>();
    s->step(0);
    s->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
    s->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
    if (amsgrad) s->max_exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
    it = states.insert({key, std::move(s)}).first;
  }
  return static_cast<torch::optim::AdamParamState&>(*it->second);
}

void step_one(const torch::optim::AdamOptions& o, torch::optim::AdamParamState& s, at::Tensor& p) {
  s.step(s.step() + 1);
  const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
  const double bias_correction1 = 1 - std::pow(beta1, s.step());
  const double bias_correction2 = 1 - std::pow(beta2, s.step());
  const AdamConstants c{static_cast<float>(beta1),
                        static_cast<float>(1 - beta1),
                        static_cast<float>(beta2),
                        static_cast<float>(1 - beta2),
                        static_cast<float>(std::sqrt(bias_correction2)),
                        static_cast<float>(o.eps()),
                        static_cast<float>(-(o.lr() / bias_correction1)),
                        static_cast<float>(o.weight_decay()),
                        o.amsgrad()};
  const AdamBuffers b{p.data_ptr<float>(), p.grad().data_ptr<float>(),
                      s.exp_avg().data_ptr<float>(), s.exp_avg_sq().data_ptr<float>(),
                      o.amsgrad() ? s.max_exp_avg_sq().data_ptr<float>() : nullptr};
  adam_loop(c, b.param, b.grad, b.exp_avg, b.exp_avg_sq, b.max_exp_avg_sq, p.numel());
}

// Whether a parameter's existing state (if any) has the layout the loop needs.
bool state_fusable(torch::optim::Adam& adam, const at::Tensor& p, bool amsgrad) {
  auto it = adam.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
  if (it == adam.state().end()) return true;
  const auto& s = static_cast<const torch::optim::AdamParamState&>(*it->second);
  auto same = [&p](const at::Tensor& t) {
    return t.defined() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
           t.device().is_cpu() && t.sizes() == p.sizes();
  };
  return same(s.exp_avg()) && same(s.exp_avg_sq()) && (!amsgrad || same(s.max_exp_avg_sq()));
}

bool all_fusable(torch::optim::Adam& adam) {
  for (auto& group : adam.param_groups()) {
    const bool amsgrad = static_cast<const torch::optim::AdamOptions&>(group.options()).amsgrad();
    for (const at::Tensor& p : group.params()) {
      if (!fusable(p) || !state_fusable(adam, p, amsgrad)) return false;
    }
  }
  return true;
}

}  // namespace

void fused_adam_step(torch::optim::Adam& adam) {
  if (!all_fusable(adam)) {
    adam.step();
    return;
  }
  torch::NoGradGuard no_grad;
  for (auto& group : adam.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      step_one(o, state_of(adam, p, o.amsgrad()), p);
    }
  }
}

}  // namespace crowdtrain::train
