#include "core/averaging/accumulator.h"

#include <torch/torch.h>

#include <cmath>

#include "core/status.h"

namespace crowdtrain {

WeightedAccumulator::WeightedAccumulator(const at::Tensor& like)
    : sum_(std::make_unique<at::Tensor>(torch::zeros_like(like.detach().reshape(-1)))) {}
WeightedAccumulator::~WeightedAccumulator() = default;
WeightedAccumulator::WeightedAccumulator(WeightedAccumulator&&) noexcept = default;
WeightedAccumulator& WeightedAccumulator::operator=(WeightedAccumulator&&) noexcept = default;

void WeightedAccumulator::add(const at::Tensor& part, double weight) {
  CT_CHECK(std::isfinite(weight) && weight >= 0);
  CT_CHECK(part.numel() == sum_->numel());
  torch::NoGradGuard no_grad;
  const at::Tensor p = part.detach().reshape(-1).to(sum_->device(), sum_->scalar_type());
  sum_->add_(p, weight);
  total_weight_ += weight;
  ++contributions_;
}

at::Tensor WeightedAccumulator::mean() const {
  torch::NoGradGuard no_grad;
  if (!(total_weight_ > 0)) return torch::zeros_like(*sum_);
  return *sum_ / total_weight_;
}

}  // namespace crowdtrain
