// VectorSource: see source.h.
#include "core/averaging/source.h"

#include <torch/torch.h>

namespace crowdtrain {

at::Tensor VectorSource::snapshot() {
  return torch::tensor(at::ArrayRef<double>(values_),
                       torch::TensorOptions().dtype(torch::kFloat64));
}

void VectorSource::apply_delta(const at::Tensor& delta) {
  if (delta.numel() != static_cast<int64_t>(values_.size())) return;
  const at::Tensor d = delta.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* p = d.data_ptr<double>();
  for (size_t i = 0; i < values_.size(); ++i) values_[i] += p[i];
}

}  // namespace crowdtrain
