// Wire codecs and the weighted accumulator: each codec's error bound on random tensors, message
// round trips, refusal of malformed compressed data, determinism; the accumulator's weighted mean.
#include "core/averaging/compression.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/averaging/accumulator.h"
#include "core/averaging/compression_kernels.h"
#include "core/tensor_codec.h"

namespace crowdtrain {
namespace {

at::Tensor random_tensor(int64_t n, uint64_t seed, double mean = 0.5, double std = 2.0) {
  torch::manual_seed(seed);
  return torch::randn({n}) * std + mean;
}

// Compresses, sends through an encoded Message, and decodes.
at::Tensor round_trip(const at::Tensor& x, Compression c) {
  Message m(MsgType::kProbeRequest);
  add_compressed(m, compress(x, c));
  auto decoded = decode(Bytes::adopt(encode(m)));
  EXPECT_TRUE(decoded.ok()) << decoded.error();
  auto back = read_compressed(*decoded);
  EXPECT_TRUE(back.ok()) << back.error();
  auto t = decompress(*back, c, DType::kFloat32, x.numel());
  EXPECT_TRUE(t.ok()) << t.error();
  return *t;
}

TEST(Compression, NamesAndSizes) {
  for (int v = 0; v <= 4; ++v) {
    const auto c = static_cast<Compression>(v);
    auto back = compression_from_name(compression_name(c));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, c);
  }
  EXPECT_FALSE(compression_from_name("zip").ok());
  EXPECT_FALSE(compression_from_wire(9).ok());
  EXPECT_EQ(wire_bytes_per_element(Compression::kNone, DType::kFloat32), 4.0);
  EXPECT_EQ(wire_bytes_per_element(Compression::kFloat16, DType::kFloat32), 2.0);
  EXPECT_EQ(wire_bytes_per_element(Compression::kQuantile8Bit, DType::kFloat32), 1.0);
}

TEST(Compression, NoneIsExact) {
  const at::Tensor x = random_tensor(10007, 1);
  EXPECT_TRUE(torch::equal(round_trip(x, Compression::kNone), x));
  const at::Tensor d = x.to(torch::kFloat64);
  Message m(MsgType::kProbeRequest);
  add_compressed(m, compress(d, Compression::kNone));
  auto back = read_compressed(m);
  ASSERT_TRUE(back.ok());
  auto t = decompress(*back, Compression::kNone, DType::kFloat64, d.numel());
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(torch::equal(*t, d));
}

TEST(Compression, Float16RelativeError) {
  const at::Tensor x = random_tensor(100000, 2);
  const at::Tensor y = round_trip(x, Compression::kFloat16);
  // fp16 keeps 11 significant bits: relative error <= 2^-11 for normal values.
  const at::Tensor normal = x.abs() > 6.2e-5;
  const at::Tensor rel = ((y - x).abs() / x.abs()).masked_select(normal);
  EXPECT_LE(rel.max().item<double>(), std::ldexp(1.0, -11) * 1.0001);
  // Out-of-range values clamp to the largest finite half.
  const at::Tensor big = torch::tensor({1e6f, -1e6f, 1.0f});
  const at::Tensor b = round_trip(big, Compression::kFloat16);
  EXPECT_TRUE(torch::isfinite(b).all().item<bool>());
  EXPECT_EQ(b[0].item<float>(), 65504.0f);
}

TEST(Compression, ScaledFloat16Error) {
  // A large offset with a small spread: plain fp16 loses the spread, mean-std scaling keeps it.
  const at::Tensor x = random_tensor(50000, 3, 1000.0, 0.01);
  const at::Tensor y = round_trip(x, Compression::kScaledFloat16);
  const double std = x.to(torch::kFloat64).std(false).item<double>();
  // |z| <= ~5 sigma here, so the half's step is at most 2^-11 * 8 sigma; plus float32 rounding.
  const double bound = std * 8 * std::ldexp(1.0, -11) + 1000.0 * std::ldexp(1.0, -23) * 2;
  EXPECT_LE((y - x).abs().max().item<double>(), bound);
  const double fp16_err = (round_trip(x, Compression::kFloat16) - x).abs().max().item<double>();
  EXPECT_GT(fp16_err, 10 * bound);
}

TEST(Compression, Uniform8BitWithinBinWidth) {
  const at::Tensor x = random_tensor(200000, 4);
  const CompressedTensor c = compress(x, Compression::kUniform8Bit);
  auto back = decompress(c, Compression::kUniform8Bit, DType::kFloat32, x.numel());
  ASSERT_TRUE(back.ok());
  const at::Tensor xd = x.to(torch::kFloat64);
  const double mean = xd.mean().item<double>();
  const double std = xd.std(false).item<double>();
  const double width = 6 * std / 256;
  auto bins = from_tensor_data(c.data);
  ASSERT_TRUE(bins.ok());
  const at::Tensor inner = (*bins > 0) & (*bins < 255);
  const at::Tensor err = (*back - x).abs();
  // Every value within +-3 sigma lands in an inner bin and is off by less than the bin's width.
  EXPECT_LE(err.masked_select(inner).max().item<double>(), width * (1 + 1e-6));
  // Bins are centred on mean + (k - 128) * width: the inner ones span [-127.5, 126.5] widths.
  const at::Tensor in_range =
      ((xd - mean) > -3 * std + width) & ((xd - mean) < 3 * std - 2 * width);
  EXPECT_TRUE((in_range.logical_not() | inner).all().item<bool>());
  EXPECT_GT(inner.to(torch::kFloat64).mean().item<double>(), 0.99);
}

TEST(Compression, Quantile8BitWithinItsBin) {
  for (int64_t n : {1000, 300000}) {
    const at::Tensor x = random_tensor(n, 5).exp();  // skewed: quantile bins beat uniform ones
    const CompressedTensor c = compress(x, Compression::kQuantile8Bit);
    auto back = decompress(c, Compression::kQuantile8Bit, DType::kFloat32, n);
    ASSERT_TRUE(back.ok());
    const at::Tensor borders = quantile_borders(x);
    ASSERT_EQ(borders.numel(), 255);
    auto bins_or = from_tensor_data(c.data);
    ASSERT_TRUE(bins_or.ok());
    const at::Tensor bins = bins_or->to(torch::kLong);
    // Lower and upper edge of every value's bin: [min, b1], [b1, b2], ..., [b255, max].
    const at::Tensor lo_edges = torch::cat({x.min().reshape({1}), borders});
    const at::Tensor hi_edges = torch::cat({borders, x.max().reshape({1})});
    const at::Tensor lo = lo_edges.index_select(0, bins), hi = hi_edges.index_select(0, bins);
    EXPECT_TRUE((*back >= lo - 1e-5).all().item<bool>()) << n;
    EXPECT_TRUE((*back <= hi + 1e-5).all().item<bool>()) << n;
    EXPECT_TRUE((x >= lo - 1e-5).all().item<bool>() && (x <= hi + 1e-5).all().item<bool>());
    // Bins hold about 1/256 of the values each.
    const at::Tensor counts = torch::bincount(bins, {}, 256).to(torch::kFloat64);
    EXPECT_LE(counts.max().item<double>(), 3.0 * n / 256 + 2);
    // Quantile bins beat uniform ones on skewed data.
    const double q_err = (*back - x).square().mean().item<double>();
    const double u_err =
        (round_trip(x, Compression::kUniform8Bit) - x).square().mean().item<double>();
    EXPECT_LT(q_err, u_err);
  }
}

// The CPU passes run twice: the vector paths (where the CPU has them) and the scalar ones.
class CpuKernels : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { kernels::allow_vector_kernels(GetParam()); }
  void TearDown() override { kernels::allow_vector_kernels(true); }
};
INSTANTIATE_TEST_SUITE_P(VectorAndScalar, CpuKernels, ::testing::Bool());

TEST_P(CpuKernels, BinIndicesMatchTorchBucketize) {
  // Values on and between the borders, repeated borders, the extremes, and values beyond them.
  // Border sets: the data's quantiles (the grid's flagged cells are where they are dense), even,
  // all equal, repeated, few, spread over 60 orders of magnitude (coarse cells), infinite ends (no
  // grid: the binary search).
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor x =
      torch::cat({random_tensor(100000, 9), torch::tensor({-1e30f, 1e30f, 0.0f, -0.0f, inf, -inf}),
                  torch::linspace(-3, 3, 4001)});
  for (const at::Tensor& borders :
       {quantile_borders(x), torch::linspace(-2, 2, 255), torch::zeros({255}),
        torch::cat({torch::full({100}, -0.5f), torch::linspace(-0.5, 1, 155)}),
        torch::linspace(-1, 1, 7),
        torch::cat({-torch::logspace(30, -30, 127), torch::logspace(-30, 30, 128)}),
        torch::cat({torch::tensor({-inf}), torch::linspace(-1, 1, 253), torch::tensor({inf})})}) {
    const at::Tensor want =
        torch::bucketize(x, borders, /*out_int32=*/true).clamp(0, 255).to(torch::kUInt8);
    const at::Tensor got = bin_indices(x, borders);
    EXPECT_TRUE(got.equal(want)) << borders.numel();
    // On the borders themselves (ties go to the lower bin, as bucketize's right=false).
    EXPECT_TRUE(
        bin_indices(borders, borders)
            .equal(torch::bucketize(borders, borders, true).clamp(0, 255).to(torch::kUInt8)));
  }
}

// The CPU passes (core/averaging/compression_kernels.h) against the LibTorch ops they replace:
// halves bit for bit (rounding to nearest even, the clamp, -0, subnormal halves), the statistics
// to float64 rounding, and NaN handled (a NaN half; bin 0).
TEST_P(CpuKernels, MatchLibTorch) {
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor x =
      torch::cat({random_tensor(100003, 21) * 100,
                  torch::tensor({0.0f, -0.0f, 1e6f, -1e6f, 65504.0f, 65519.99f, 65520.0f, 6e-8f,
                                 3e-8f, -5.96e-8f, 1.0009765625f, 1.00048828125f, inf, -inf})});
  const CompressedTensor h = compress(x, Compression::kFloat16);
  const at::Tensor want = x.clamp(-65504.0, 65504.0).to(torch::kFloat16);
  auto got = from_tensor_data(h.data);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->view(torch::kInt16).equal(want.view(torch::kInt16)));
  auto back = decompress(h, Compression::kFloat16, DType::kFloat32, x.numel());
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->view(torch::kInt32).equal(want.to(torch::kFloat32).view(torch::kInt32)));

  const at::Tensor finite = x.slice(0, 0, x.numel() - 2);
  const kernels::MeanStd m = kernels::mean_std(finite.data_ptr<float>(), finite.numel());
  const at::Tensor xd = finite.to(torch::kFloat64);
  EXPECT_NEAR(m.mean, xd.mean().item<double>(), 1e-9 * xd.abs().max().item<double>());
  EXPECT_NEAR(m.std, xd.std(false).item<double>(), 1e-12 * xd.std(false).item<double>());

  const CompressedTensor s = compress(finite, Compression::kScaledFloat16);
  const at::Tensor want_s =
      (finite - s.mean).mul_(1.0 / s.scale).clamp_(-65504.0, 65504.0).to(torch::kFloat16);
  auto got_s = from_tensor_data(s.data);
  ASSERT_TRUE(got_s.ok());
  EXPECT_TRUE(got_s->view(torch::kInt16).equal(want_s.view(torch::kInt16)));
  auto back_s = decompress(s, Compression::kScaledFloat16, DType::kFloat32, finite.numel());
  ASSERT_TRUE(back_s.ok());
  EXPECT_TRUE(back_s->equal(want_s.to(torch::kFloat32).mul_(s.scale).add_(s.mean)));

  // NaN: a NaN half, and bin 0 in both 8-bit codecs.
  const at::Tensor with_nan = torch::cat({finite, torch::tensor({NAN})});
  auto nan_half = from_tensor_data(compress(with_nan, Compression::kFloat16).data);
  ASSERT_TRUE(nan_half.ok());
  EXPECT_TRUE(std::isnan(nan_half->to(torch::kFloat32)[-1].item<float>()));
  for (Compression c : {Compression::kUniform8Bit, Compression::kQuantile8Bit}) {
    auto bins = from_tensor_data(compress(with_nan, c).data);
    ASSERT_TRUE(bins.ok());
    EXPECT_EQ((*bins)[-1].item<uint8_t>(), 0) << compression_name(c);
  }
}

TEST_P(CpuKernels, Uniform8BitMatchesLibTorchOps) {
  // compress() bins and averages in one pass of its own on the CPU; the LibTorch ops it replaces
  // (and still uses on a GPU) must give the same bins, and bin averages equal to float rounding.
  const at::Tensor x =
      torch::cat({random_tensor(200000, 11) * 3 + 1, torch::tensor({1e9f, -1e9f})});
  const CompressedTensor c = compress(x, Compression::kUniform8Bit);
  auto [stdev, mean_t] = torch::std_mean(x, /*unbiased=*/false);
  const double mean = mean_t.item<double>();
  const double width = 6.0 * stdev.item<double>() / 256;
  const at::Tensor want_bins =
      (x - mean).mul_(1.0 / width).round_().add_(128).clamp_(0, 255).to(torch::kUInt8);
  auto bins = from_tensor_data(c.data);
  ASSERT_TRUE(bins.ok());
  EXPECT_TRUE(bins->equal(want_bins));
  const at::Tensor sums = torch::bincount(want_bins, x.to(torch::kFloat64), 256);
  const at::Tensor counts = torch::bincount(want_bins, {}, 256).to(torch::kFloat64);
  auto book = from_tensor_data(c.codebook);
  ASSERT_TRUE(book.ok());
  const at::Tensor filled = counts > 0;
  EXPECT_TRUE(torch::allclose(book->to(torch::kFloat64).masked_select(filled),
                              (sums / counts.clamp_min(1)).masked_select(filled), 1e-6, 1e-6));
}

TEST(Compression, DeterministicAndConstantTensors) {
  const at::Tensor x = random_tensor(70000, 6);
  for (int v = 0; v <= 4; ++v) {
    const auto c = static_cast<Compression>(v);
    EXPECT_TRUE(torch::equal(round_trip(x, c), round_trip(x, c))) << compression_name(c);
    const at::Tensor k = torch::full({100}, 3.25f);
    EXPECT_TRUE(torch::allclose(round_trip(k, c), k)) << compression_name(c);
    EXPECT_EQ(round_trip(torch::zeros({0}), c).numel(), 0) << compression_name(c);
  }
}

TEST(Compression, MalformedIsRefused) {
  const at::Tensor x = random_tensor(100, 7);
  CompressedTensor c = compress(x, Compression::kUniform8Bit);
  EXPECT_FALSE(decompress(c, Compression::kFloat16, DType::kFloat32, 100).ok());     // codec
  EXPECT_FALSE(decompress(c, Compression::kUniform8Bit, DType::kFloat32, 99).ok());  // count
  EXPECT_FALSE(decompress(c, Compression::kUniform8Bit, DType::kInt64, 100).ok());   // dtype
  CompressedTensor bad_book = c;
  bad_book.codebook = to_tensor_data(torch::zeros({255}));
  EXPECT_FALSE(decompress(bad_book, Compression::kUniform8Bit, DType::kFloat32, 100).ok());
  CompressedTensor wrong_data = compress(x, Compression::kNone);
  wrong_data.codec = Compression::kFloat16;  // float32 data claiming fp16
  EXPECT_FALSE(decompress(wrong_data, Compression::kFloat16, DType::kFloat32, 100).ok());
  CompressedTensor nan_scale = compress(x, Compression::kScaledFloat16);
  nan_scale.scale = NAN;
  EXPECT_FALSE(decompress(nan_scale, Compression::kScaledFloat16, DType::kFloat32, 100).ok());
  Message m(MsgType::kProbeRequest);
  m.add_u64(kTagCodec, 77);
  EXPECT_FALSE(read_compressed(m).ok());
  Message no_book(MsgType::kProbeRequest);
  no_book.add_u64(kTagCodec, static_cast<uint64_t>(Compression::kQuantile8Bit));
  no_book.add_tensor(kTagCodecData, c.data);
  EXPECT_FALSE(read_compressed(no_book).ok());
}

TEST(Accumulator, WeightedMean) {
  const at::Tensor a = random_tensor(1000, 8), b = random_tensor(1000, 9),
                   c = random_tensor(1000, 10);
  WeightedAccumulator acc(a);
  EXPECT_EQ(acc.total_weight(), 0.0);
  EXPECT_TRUE(torch::equal(acc.mean(), torch::zeros({1000})));
  acc.add(a, 1.0);
  acc.add(b, 3.0);
  acc.add(c, 0.0);
  EXPECT_EQ(acc.contributions(), 3);
  EXPECT_DOUBLE_EQ(acc.total_weight(), 4.0);
  EXPECT_TRUE(torch::allclose(acc.mean(), (a + 3 * b) / 4, 1e-6, 1e-6));
  // Parts of another dtype are converted to the sum's.
  WeightedAccumulator acc64(a.to(torch::kFloat64));
  acc64.add(a, 2.0);
  EXPECT_EQ(acc64.mean().scalar_type(), torch::kFloat64);
  EXPECT_TRUE(torch::allclose(acc64.mean(), a.to(torch::kFloat64)));
  // Only zero-weight parts: the mean is zeros, as with nothing added.
  WeightedAccumulator zero(a);
  zero.add(a, 0.0);
  EXPECT_TRUE(torch::equal(zero.mean(), torch::zeros({1000})));
}

TEST(Accumulator, AllFiniteFindsEveryNonFiniteValue) {
  for (int64_t n : {1, 3, 4, 7, 4096, 65536, 65537, 200003}) {
    at::Tensor t = random_tensor(n, 11) * 1e30;
    EXPECT_TRUE(all_finite(t)) << n;
    for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
      for (float bad : {NAN, INFINITY, -INFINITY}) {
        at::Tensor u = t.clone();
        u[at] = bad;
        EXPECT_FALSE(all_finite(u)) << n << " at " << at << " value " << bad;
      }
    }
  }
  const float edge[] = {3.4028235e38f, -3.4028235e38f, 1e-45f, -0.0f};  // max, min, denormal
  EXPECT_TRUE(all_finite(torch::from_blob(const_cast<float*>(edge), {4})));
  // Other dtypes and strided views go through LibTorch.
  at::Tensor d = torch::ones({10}, torch::kFloat64);
  EXPECT_TRUE(all_finite(d));
  d[3] = NAN;
  EXPECT_FALSE(all_finite(d));
  at::Tensor strided = torch::ones({20}).slice(0, 0, 20, 2);
  EXPECT_TRUE(all_finite(strided));
}

}  // namespace
}  // namespace crowdtrain
