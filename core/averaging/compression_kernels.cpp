// See compression_kernels.h. Each public function picks the AVX2+F16C path or the scalar one; both
// give the same bins and halves (the statistics differ only in the order of float64 additions).
#include "core/averaging/compression_kernels.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define CT_X86_KERNELS 1
#endif

namespace crowdtrain::kernels {
namespace {

constexpr int kBins = 256;
constexpr int64_t kBlock = 4096;  // floats per block: 16 KiB, in L1 while a block is worked on
constexpr float kHalfMax = 65504.0f;
// Adding and taking away 1.5 x 2^23 rounds a float below 2^22 in magnitude to the nearest integer,
// ties to even, as nearbyint does, without a call.
constexpr float kRound = 12582912.0f;

// kVzeroupperNote: every AVX2 function clears the upper halves of the vector registers before its
// scalar tail. GCC left them dirty where that tail became a tail call, and the SSE code that ran
// next (the bin sums) then waited on them: 43 ms instead of 14 for 16M values on this AMD EPYC.

std::atomic<bool> g_allow_vector{true};

bool vector_supported() {
#ifdef CT_X86_KERNELS
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;  // F16C: CPUID leaf 1, ECX bit 29 (clang 14's
    const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;  // builtin lacks it)
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

bool use_vector() { return vector_supported() && g_allow_vector.load(std::memory_order_relaxed); }

// ---- statistics -------------------------------------------------------------------------------

struct Moments {
  int64_t n = 0;
  double mean = 0;
  double m2 = 0;  // sum of squared deviations from the mean
};

void combine(Moments& a, const Moments& b) {
  if (b.n == 0) return;
  if (a.n == 0) {
    a = b;
    return;
  }
  const double n = static_cast<double>(a.n + b.n);
  const double delta = b.mean - a.mean;
  a.mean += delta * static_cast<double>(b.n) / n;
  a.m2 += b.m2 + delta * delta * static_cast<double>(a.n) * static_cast<double>(b.n) / n;
  a.n += b.n;
}

Moments block_moments_scalar(const float* x, int64_t n) {
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) s[j] += x[i + j];
  }
  for (; i < n; ++i) s[0] += x[i];
  Moments m;
  m.n = n;
  m.mean = ((s[0] + s[1]) + (s[2] + s[3])) / static_cast<double>(n);
  double q[4] = {0, 0, 0, 0};
  for (i = 0; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) {
      const double d = x[i + j] - m.mean;
      q[j] += d * d;
    }
  }
  for (; i < n; ++i) q[0] += (x[i] - m.mean) * (x[i] - m.mean);
  m.m2 = (q[0] + q[1]) + (q[2] + q[3]);
  return m;
}

#ifdef CT_X86_KERNELS
__attribute__((target("avx2,fma"))) double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

__attribute__((target("avx2,fma"))) Moments block_moments_avx2(const float* x, int64_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  double sum = hsum(_mm256_add_pd(s0, s1));
  for (int64_t k = i; k < n; ++k) sum += x[k];
  Moments m;
  m.n = n;
  m.mean = sum / static_cast<double>(n);
  const __m256d mean = _mm256_set1_pd(m.mean);
  __m256d q0 = _mm256_setzero_pd(), q1 = _mm256_setzero_pd();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), mean);
    const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), mean);
    q0 = _mm256_fmadd_pd(d0, d0, q0);
    q1 = _mm256_fmadd_pd(d1, d1, q1);
  }
  m.m2 = hsum(_mm256_add_pd(q0, q1));
  for (int64_t k = i; k < n; ++k) m.m2 += (x[k] - m.mean) * (x[k] - m.mean);
  return m;
}
#endif

// ---- half precision ---------------------------------------------------------------------------

float clamp_half_range(float t) {  // NaN stays NaN
  return std::min(std::max(t, -kHalfMax), kHalfMax);
}

void to_half_scalar(const float* x, int64_t n, float shift, float scale, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = c10::detail::fp16_ieee_from_fp32_value(clamp_half_range((x[i] - shift) * scale));
  }
}

void from_half_scalar(const uint16_t* h, int64_t n, bool affine, float scale, float shift,
                      float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = c10::detail::fp16_ieee_to_fp32_value(h[i]);
    out[i] = affine ? v * scale + shift : v;
  }
}

#ifdef CT_X86_KERNELS
__attribute__((target("avx2,f16c"))) void to_half_avx2(const float* x, int64_t n, float shift,
                                                       float scale, uint16_t* out) {
  const __m256 sh = _mm256_set1_ps(shift), sc = _mm256_set1_ps(scale);
  const __m256 hi = _mm256_set1_ps(kHalfMax), lo = _mm256_set1_ps(-kHalfMax);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh), sc);
    v = _mm256_max_ps(lo, _mm256_min_ps(hi, v));  // a NaN operand second: NaN stays NaN
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  _mm256_zeroupper();  // see kVzeroupperNote
  to_half_scalar(x + i, n - i, shift, scale, out + i);
}

__attribute__((target("avx2,f16c"))) void from_half_avx2(const uint16_t* h, int64_t n, bool affine,
                                                         float scale, float shift, float* out) {
  const __m256 sc = _mm256_set1_ps(scale), sh = _mm256_set1_ps(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
    if (affine) v = _mm256_add_ps(_mm256_mul_ps(v, sc), sh);
    _mm256_storeu_ps(out + i, v);
  }
  _mm256_zeroupper();  // see kVzeroupperNote
  from_half_scalar(h + i, n - i, affine, scale, shift, out + i);
}
#endif

// ---- 8-bit bins with their sums ---------------------------------------------------------------

// The 8-bit pass: block by block, `fill(i, m, idx)` writes the bins of x[i, i + m) into idx; the
// loop then stores them as bytes and adds each value to its bin's sum and count, in four
// interleaved tables so that consecutive values of one bin do not wait on each other.
template <typename Fill>
void bin_pass(const float* x, int64_t n, uint8_t* bins, double* sums, int64_t* counts, Fill fill) {
  struct Entry {  // a bin's sum beside its count
    double sum;
    int64_t count;
  };
  Entry tables[4][kBins] = {};  // locals: the byte stores cannot alias them
  Entry* const t0 = tables[0];
  Entry* const t1 = tables[1];
  Entry* const t2 = tables[2];
  Entry* const t3 = tables[3];
  int32_t idx[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = std::min(kBlock, n - i);
    fill(i, m, idx);
    const float* xb = x + i;
    uint8_t* bb = bins + i;
    int64_t j = 0;
    for (; j + 4 <= m; j += 4) {  // unrolled by hand: GCC kept a loop over the four tables
      const int32_t a = idx[j], b = idx[j + 1], c = idx[j + 2], d = idx[j + 3];
      t0[a].sum += xb[j];
      ++t0[a].count;
      t1[b].sum += xb[j + 1];
      ++t1[b].count;
      t2[c].sum += xb[j + 2];
      ++t2[c].count;
      t3[d].sum += xb[j + 3];
      ++t3[d].count;
      bb[j] = static_cast<uint8_t>(a);
      bb[j + 1] = static_cast<uint8_t>(b);
      bb[j + 2] = static_cast<uint8_t>(c);
      bb[j + 3] = static_cast<uint8_t>(d);
    }
    for (; j < m; ++j) {
      t0[idx[j]].sum += xb[j];
      ++t0[idx[j]].count;
      bb[j] = static_cast<uint8_t>(idx[j]);
    }
  }
  for (int k = 0; k < kBins; ++k) {
    sums[k] += (t0[k].sum + t1[k].sum) + (t2[k].sum + t3[k].sum);
    counts[k] += t0[k].count + t1[k].count + t2[k].count + t3[k].count;
  }
}

int32_t uniform_bin(float v, float mean, float inv_width) {
  constexpr float kHalf = kBins / 2;
  float t = (v - mean) * inv_width;
  t = std::min(std::max(t, -2.0f * kHalf), 2.0f * kHalf);  // NaN stays NaN ...
  float q = ((t + kRound) - kRound) + kHalf;
  q = std::min(std::max(q, 0.0f), static_cast<float>(kBins - 1));
  return q >= 0.0f ? static_cast<int32_t>(q) : 0;  // ... and goes to bin 0
}

void uniform_idx_scalar(const float* x, int64_t n, float mean, float inv_width, int32_t* idx) {
  for (int64_t i = 0; i < n; ++i) idx[i] = uniform_bin(x[i], mean, inv_width);
}

#ifdef CT_X86_KERNELS
__attribute__((target("avx2"))) void uniform_idx_avx2(const float* x, int64_t n, float mean,
                                                      float inv_width, int32_t* idx) {
  const __m256 m = _mm256_set1_ps(mean), inv = _mm256_set1_ps(inv_width);
  const __m256 lim = _mm256_set1_ps(kBins), neg_lim = _mm256_set1_ps(-kBins);
  const __m256 round = _mm256_set1_ps(kRound), half = _mm256_set1_ps(kBins / 2);
  const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(kBins - 1);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), inv);
    t = _mm256_max_ps(neg_lim, _mm256_min_ps(lim, t));  // NaN stays NaN
    __m256 q = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(t, round), round), half);
    q = _mm256_max_ps(zero, _mm256_min_ps(top, q));
    q = _mm256_and_ps(q, _mm256_cmp_ps(q, q, _CMP_ORD_Q));  // NaN: bin 0
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i), _mm256_cvttps_epi32(q));
  }
  _mm256_zeroupper();  // see kVzeroupperNote
  uniform_idx_scalar(x + i, n - i, mean, inv_width, idx + i);
}
#endif

// Borders padded to 256 with +inf: eight halvings find how many are strictly below v, with no
// branch to mispredict (a comparison selects the next base).
int32_t search_bin(const float* pad, float v) {
  unsigned pos = 0;
  for (unsigned half = kBins / 2; half > 0; half /= 2) {
    pos += static_cast<unsigned>(pad[pos + half - 1] < v) * half;
  }
  const unsigned count = pos + static_cast<unsigned>(pad[pos] < v);  // in [0, 256]
  return static_cast<int32_t>(std::min(count, static_cast<unsigned>(kBins - 1)));
}

// A uniform grid of kCells cells over [first border, last border]. A value's cell is
// cell(v) = clamp((v - lo) * inv, 0, kCells - 1) in float32 arithmetic (NaN: cell 0), which never
// decreases as v grows. Each cell holds the number of borders whose cell is below it, with
// kAmbiguous set where a border's own cell is this one. For v in a cell without that flag, every
// border in a lower cell is below v and every other one above it, so the count is exact from one
// lookup; in a flagged cell (about 2% of the values: cells are narrow where borders are dense)
// a step or two from the count settles it.
class BorderGrid {
 public:
  static constexpr int kCells = 1 << 16;
  static constexpr uint16_t kAmbiguous = 0x8000;

  BorderGrid(const float* borders, int nb) : b_(borders), nb_(nb) {
    if (nb <= 0) return;
    lo_ = borders[0];
    const float hi = borders[nb - 1];
    usable_ = std::isfinite(lo_) && std::isfinite(hi) && hi > lo_;
    if (!usable_) return;
    inv_ = static_cast<float>(kCells / (static_cast<double>(hi) - lo_));
    std::vector<int> in_cell(kCells, 0);
    for (int k = 0; k < nb; ++k) ++in_cell[cell(borders[k])];
    table_.assign(kCells + 2, 0);  // 2 more: a 32-bit gather at the last cell reads 4 bytes
    int below = 0;
    for (int c = 0; c < kCells; ++c) {
      table_[c] = static_cast<uint16_t>(std::min(below, kBins - 1) | (in_cell[c] ? kAmbiguous : 0));
      below += in_cell[c];
    }
  }
  bool usable() const { return usable_; }
  float lo() const { return lo_; }
  float inv() const { return inv_; }
  const uint16_t* table() const { return table_.data(); }

  int cell(float v) const {
    float c = (v - lo_) * inv_;
    c = std::min(std::max(c, 0.0f), static_cast<float>(kCells - 1));  // NaN stays NaN ...
    return c >= 0.0f ? static_cast<int>(c) : 0;                       // ... and goes to cell 0
  }
  int32_t bin(float v) const {
    const uint16_t e = table_[cell(v)];
    int pos = e & ~kAmbiguous;
    if (e & kAmbiguous) {
      while (pos > 0 && b_[pos - 1] >= v) --pos;
      while (pos < nb_ && b_[pos] < v) ++pos;
    }
    return std::min(pos, kBins - 1);
  }

 private:
  const float* b_;
  int nb_;
  float lo_ = 0, inv_ = 0;
  bool usable_ = false;
  std::vector<uint16_t> table_;
};

#ifdef CT_X86_KERNELS
// grid.bin() of x[0, n): one gather per eight values; eight that meet a flagged cell go one by one.
__attribute__((target("avx2"))) void grid_idx_avx2(const BorderGrid& grid, const float* x,
                                                   int64_t n, int32_t* idx) {
  const __m256 lo = _mm256_set1_ps(grid.lo()), inv = _mm256_set1_ps(grid.inv());
  const __m256 zero = _mm256_setzero_ps();
  const __m256 top = _mm256_set1_ps(static_cast<float>(BorderGrid::kCells - 1));
  const __m256i low16 = _mm256_set1_epi32(0xffff);
  const __m256i flag = _mm256_set1_epi32(BorderGrid::kAmbiguous);
  const int* table = reinterpret_cast<const int*>(grid.table());
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256 c = _mm256_mul_ps(_mm256_sub_ps(v, lo), inv);
    c = _mm256_max_ps(_mm256_min_ps(c, top), zero);  // NaN: the second operand, so top, then top
    const __m256i e =
        _mm256_and_si256(_mm256_i32gather_epi32(table, _mm256_cvttps_epi32(c), 2), low16);
    if (_mm256_testz_si256(e, flag)) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i), e);
    } else {
      for (int j = 0; j < 8; ++j) idx[i + j] = grid.bin(x[i + j]);
    }
  }
  _mm256_zeroupper();  // see kVzeroupperNote
  for (; i < n; ++i) idx[i] = grid.bin(x[i]);
}
#endif

}  // namespace

MeanStd mean_std(const float* x, int64_t n) {
  Moments all;
  const bool vec = use_vector();
  for (int64_t i = 0; i < n; i += kBlock) {
    const int64_t m = std::min(kBlock, n - i);
#ifdef CT_X86_KERNELS
    combine(all, vec ? block_moments_avx2(x + i, m) : block_moments_scalar(x + i, m));
#else
    (void)vec;
    combine(all, block_moments_scalar(x + i, m));
#endif
  }
  if (all.n == 0) return {};
  return {all.mean, std::sqrt(all.m2 / static_cast<double>(all.n))};
}

void to_half(const float* x, int64_t n, float shift, float scale, uint16_t* out) {
#ifdef CT_X86_KERNELS
  if (use_vector()) return to_half_avx2(x, n, shift, scale, out);
#endif
  to_half_scalar(x, n, shift, scale, out);
}

void from_half(const uint16_t* h, int64_t n, bool affine, float scale, float shift, float* out) {
#ifdef CT_X86_KERNELS
  if (use_vector()) return from_half_avx2(h, n, affine, scale, shift, out);
#endif
  from_half_scalar(h, n, affine, scale, shift, out);
}

void uniform_bins(const float* x, int64_t n, float mean, float inv_width, uint8_t* bins,
                  double* sums, int64_t* counts) {
  const bool vec = use_vector();
  bin_pass(x, n, bins, sums, counts, [&](int64_t i, int64_t m, int32_t* idx) {
#ifdef CT_X86_KERNELS
    if (vec) return uniform_idx_avx2(x + i, m, mean, inv_width, idx);
#endif
    uniform_idx_scalar(x + i, m, mean, inv_width, idx);
  });
  (void)vec;
}

void quantile_bins(const float* x, int64_t n, const float* borders, int nb, uint8_t* bins,
                   double* sums, int64_t* counts) {
  float pad[kBins];
  std::memcpy(pad, borders, static_cast<size_t>(nb) * sizeof(float));
  std::fill(pad + nb, pad + kBins, std::numeric_limits<float>::infinity());
  const BorderGrid grid(borders, nb);
  const bool vec = use_vector();
  (void)vec;
  bin_pass(x, n, bins, sums, counts, [&](int64_t i, int64_t m, int32_t* idx) {
    if (grid.usable()) {
#ifdef CT_X86_KERNELS
      if (vec) return grid_idx_avx2(grid, x + i, m, idx);
#endif
      for (int64_t j = 0; j < m; ++j) idx[j] = grid.bin(x[i + j]);
    } else {
      for (int64_t j = 0; j < m; ++j) idx[j] = search_bin(pad, x[i + j]);
    }
  });
}

const char* kernel_isa() { return use_vector() ? "avx2+f16c" : "scalar"; }

void allow_vector_kernels(bool on) { g_allow_vector.store(on, std::memory_order_relaxed); }

}  // namespace crowdtrain::kernels
