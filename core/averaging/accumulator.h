// Weighted accumulation of parts: sum += weight * part for every contribution, mean = sum / total
// weight at the end (hivemind's TensorPartReducer, one chunk at a time). The sum lives on the
// device and in the dtype of the tensor it was built like (float32 parts sum in float32, on CUDA
// when they are there). Owned by one all-reduce round; single-threaded like its owner.
#pragma once

#include <cstdint>
#include <memory>

namespace at {
class Tensor;
}

namespace crowdtrain {

// Whether every element of floating tensor `t` is finite. Contiguous float32 on the CPU is checked
// in one pass over the memory, without the bool tensor and reduction of torch::isfinite().all().
bool all_finite(const at::Tensor& t);

class WeightedAccumulator {
 public:
  // A zero sum shaped, typed and placed like `like`.
  explicit WeightedAccumulator(const at::Tensor& like);
  ~WeightedAccumulator();
  WeightedAccumulator(WeightedAccumulator&&) noexcept;
  WeightedAccumulator& operator=(WeightedAccumulator&&) noexcept;

  // sum += weight * part. `part` must have the sum's element count (CT_CHECK); it is moved to the
  // sum's device and dtype if needed. weight >= 0 and finite (CT_CHECK).
  void add(const at::Tensor& part, double weight);
  // sum / total weight; zeros when nothing of positive weight was added.
  at::Tensor mean() const;
  double total_weight() const { return total_weight_; }
  int contributions() const { return contributions_; }

 private:
  std::unique_ptr<at::Tensor> sum_;
  double total_weight_ = 0.0;
  int contributions_ = 0;
};

}  // namespace crowdtrain
