#include "core/averaging/accumulator.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/status.h"

namespace crowdtrain {

// The sum starts as an empty tensor shaped like `like` and is written by the first add (sum =
// weight * part, one pass instead of zeroing and then adding).
WeightedAccumulator::WeightedAccumulator(const at::Tensor& like)
    : sum_(std::make_unique<at::Tensor>(torch::empty_like(like.detach().reshape(-1)))) {}
WeightedAccumulator::~WeightedAccumulator() = default;
WeightedAccumulator::WeightedAccumulator(WeightedAccumulator&&) noexcept = default;
WeightedAccumulator& WeightedAccumulator::operator=(WeightedAccumulator&&) noexcept = default;

void WeightedAccumulator::add(const at::Tensor& part, double weight) {
  CT_CHECK(std::isfinite(weight) && weight >= 0);
  CT_CHECK(part.numel() == sum_->numel());
  torch::NoGradGuard no_grad;
  const at::Tensor p = part.detach().reshape(-1).to(sum_->device(), sum_->scalar_type());
  if (contributions_ == 0) {
    at::mul_out(*sum_, p, weight);
  } else {
    sum_->add_(p, weight);
  }
  total_weight_ += weight;
  ++contributions_;
}

namespace {

// Sets the sign bit of the result when some word's exponent bits are all ones: (w & exponent) +
// the exponent's lowest bit carries into bit 31 exactly then. Or-ed over the block, no branches.
bool finite_words(const uint32_t* w, int64_t n) {
  int64_t i = 0;
  uint32_t acc = 0;
#if defined(__SSE2__)
  const __m128i exponent = _mm_set1_epi32(0x7f800000), carry = _mm_set1_epi32(0x00800000);
  __m128i v = _mm_setzero_si128();
  for (; i + 4 <= n; i += 4) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i));
    v = _mm_or_si128(v, _mm_add_epi32(_mm_and_si128(x, exponent), carry));
  }
  acc = static_cast<uint32_t>(_mm_movemask_ps(_mm_castsi128_ps(v)));
#endif
  for (; i < n; ++i) acc |= ((w[i] & 0x7f800000u) + 0x00800000u) >> 31;
  return acc == 0;
}

}  // namespace

bool all_finite(const at::Tensor& t) {
  if (t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous()) {
    const auto* words = reinterpret_cast<const uint32_t*>(t.data_ptr<float>());
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; i += 65536) {  // stop early at a bad block
      if (!finite_words(words + i, std::min<int64_t>(65536, n - i))) return false;
    }
    return true;
  }
  return torch::isfinite(t).all().item<bool>();
}

at::Tensor WeightedAccumulator::mean() const {
  torch::NoGradGuard no_grad;
  if (!(total_weight_ > 0)) return torch::zeros_like(*sum_);  // also: nothing added yet
  return *sum_ / total_weight_;
}

}  // namespace crowdtrain
