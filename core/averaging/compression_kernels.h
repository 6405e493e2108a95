// The CPU passes of the wire codecs (compression.cpp) on float32 arrays, each one pass over
// memory: statistics, conversion to and from half precision, and 8-bit binning fused with the bin
// sums the codebook needs. On x86-64 CPUs with AVX2 and F16C the vector paths run (chosen once, at
// run time); elsewhere scalar code that gives the same bins and halves. No LibTorch here.
#pragma once

#include <cstdint>

namespace crowdtrain::kernels {

struct MeanStd {
  double mean = 0;
  double std = 0;  // population standard deviation
};

// Blocks of values small enough to stay in cache: each gives its mean and sum of squared
// deviations (float64), and the blocks combine exactly (Chan et al.'s pairwise update).
MeanStd mean_std(const float* x, int64_t n);

// out[i] = half(clamp((x[i] - shift) * scale, -65504, 65504)), float32 arithmetic, rounding to
// nearest even; NaN stays NaN. shift 0 and scale 1 leave every value (and -0) as it is.
void to_half(const float* x, int64_t n, float shift, float scale, uint16_t* out);

// out[i] = float(h[i]), then with `affine` out[i] * scale + shift (two roundings, no FMA).
void from_half(const uint16_t* h, int64_t n, bool affine, float scale, float shift, float* out);

// Uniform bins: bins[i] = clamp(round_half_even((x[i] - mean) * inv_width) + 128, 0, 255), float32
// arithmetic, NaN to bin 0; sums[k] and counts[k] (256 each, added to) gather each bin's values.
void uniform_bins(const float* x, int64_t n, float mean, float inv_width, uint8_t* bins,
                  double* sums, int64_t* counts);

// Quantile bins: bins[i] = min(number of borders strictly below x[i], 255) for `nb` (< 256)
// sorted borders (NaN: bin 0), the same as torch::bucketize; sums and counts as above.
void quantile_bins(const float* x, int64_t n, const float* borders, int nb, uint8_t* bins,
                   double* sums, int64_t* counts);

// Which paths run here: "avx2+f16c" or "scalar".
const char* kernel_isa();
// Off: the scalar paths even where the vector ones could run (tests check both; default on).
void allow_vector_kernels(bool on);

}  // namespace crowdtrain::kernels
