// Rng and derive_seed: determinism (pinned values catch any change in the generator), stream
// independence, and the distributions' shapes at 100k samples with fixed seeds.
#include "core/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

namespace crowdtrain {
namespace {

constexpr int kSamples = 100000;

TEST(RngTest, SameSeedSameSequence) {
  Rng a(1234), b(1234);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.next_u64(), b.next_u64()) << "draw " << i;
  Rng c(1234), d(1234);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(c.normal(), d.normal()) << "draw " << i;
}

TEST(RngTest, DifferentSeedsDiffer) {
  Rng a(1), b(2);
  int equal = 0;
  for (int i = 0; i < 100; ++i) equal += a.next_u64() == b.next_u64();
  EXPECT_EQ(equal, 0);
}

// xoshiro256** seeded by four splitmix64 outputs; values checked against a separate Python
// rendering of the reference algorithm. A change here changes every run's results.
TEST(RngTest, PinnedFirstValues) {
  Rng r(42);
  EXPECT_EQ(r.next_u64(), 0x15780b2e0c2ec716ULL);
  EXPECT_EQ(r.next_u64(), 0x6104d9866d113a7eULL);
  EXPECT_EQ(r.next_u64(), 0xae17533239e499a1ULL);
  EXPECT_EQ(r.next_u64(), 0xecb8ad4703b360a1ULL);
  Rng zero(0);
  EXPECT_EQ(zero.next_u64(), 0x99ec5f36cb75f2b4ULL);
}

TEST(DeriveSeedTest, PureAndPinned) {
  EXPECT_EQ(derive_seed(42, "peer", 17), derive_seed(42, "peer", 17));
  EXPECT_EQ(derive_seed(42, "peer", 17), 12328048875785077864ULL);
  EXPECT_EQ(derive_seed(42, "churn"), derive_seed(42, "churn", 0, 0));
}

TEST(DeriveSeedTest, DistinctAcrossNamesIndicesAndMasters) {
  std::set<uint64_t> seen;
  size_t made = 0;
  for (uint64_t master : {0ULL, 1ULL, 42ULL}) {
    for (const char* name : {"peer", "churn", "torch", "peers", ""}) {
      for (uint64_t i = 0; i < 300; ++i) {
        for (uint64_t j = 0; j < 3; ++j) {
          seen.insert(derive_seed(master, name, i, j));
          ++made;
        }
      }
    }
  }
  EXPECT_EQ(seen.size(), made);
  // The two indices are not interchangeable.
  EXPECT_NE(derive_seed(7, "peer", 1, 0), derive_seed(7, "peer", 0, 1));
  EXPECT_NE(derive_seed(7, "peer", 1), derive_seed(8, "peer", 1));
}

TEST(DeriveSeedTest, AdjacentStreamsUncorrelated) {
  Rng a(derive_seed(5, "peer", 0)), b(derive_seed(5, "peer", 1));
  double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
  for (int i = 0; i < kSamples; ++i) {
    const double x = a.uniform01(), y = b.uniform01();
    sa += x;
    sb += y;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  const double n = kSamples;
  const double cov = sab / n - (sa / n) * (sb / n);
  const double r =
      cov / std::sqrt((saa / n - (sa / n) * (sa / n)) * (sbb / n - (sb / n) * (sb / n)));
  EXPECT_LT(std::fabs(r), 0.02);
}

TEST(RngTest, UniformIntBounds) {
  Rng r(9);
  for (uint64_t n : {1ULL, 2ULL, 3ULL, 7ULL, 1000ULL, (1ULL << 63) + 1, ~0ULL}) {
    for (int i = 0; i < 2000; ++i) ASSERT_LT(r.uniform_int(n), n) << "n=" << n;
  }
  for (int i = 0; i < 100; ++i) ASSERT_EQ(r.uniform_int(1), 0u);
}

TEST(RngTest, UniformIntChiSquare) {
  Rng r(2024);
  constexpr int kBins = 10;
  std::vector<int> hist(kBins, 0);
  for (int i = 0; i < kSamples; ++i) ++hist[r.uniform_int(kBins)];
  const double expected = static_cast<double>(kSamples) / kBins;
  double chi2 = 0;
  for (int h : hist) chi2 += (h - expected) * (h - expected) / expected;
  // 9 degrees of freedom: P(chi2 > 40) is about 1e-5.
  EXPECT_LT(chi2, 40.0);
}

TEST(RngTest, Uniform01AndUniformRanges) {
  Rng r(3);
  double sum = 0;
  for (int i = 0; i < kSamples; ++i) {
    const double u = r.uniform01();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    const double v = r.uniform(-2.0, 5.0);
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 5.0);
  }
  EXPECT_NEAR(sum / kSamples, 0.5, 0.01);
}

TEST(RngTest, Bernoulli) {
  Rng r(4);
  int hits = 0;
  for (int i = 0; i < kSamples; ++i) hits += r.bernoulli(0.3);
  EXPECT_NEAR(static_cast<double>(hits) / kSamples, 0.3, 0.01);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_FALSE(r.bernoulli(0.0));
    ASSERT_TRUE(r.bernoulli(1.0));
  }
}

struct Moments {
  double mean;
  double median;
  double stddev;
};

template <typename Draw>
Moments moments(Draw draw) {
  std::vector<double> v(kSamples);
  double sum = 0;
  for (double& x : v) {
    x = draw();
    sum += x;
  }
  const double mean = sum / kSamples;
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  std::nth_element(v.begin(), v.begin() + kSamples / 2, v.end());
  return {mean, v[kSamples / 2], std::sqrt(ss / (kSamples - 1))};
}

TEST(RngDistributionTest, Exponential) {
  Rng r(11);
  const Moments m = moments([&] { return r.exponential(2.0); });
  EXPECT_NEAR(m.mean, 2.0, 0.03);
  EXPECT_NEAR(m.median, 2.0 * std::log(2.0), 0.03);
  EXPECT_NEAR(m.stddev, 2.0, 0.05);
  Rng s(12);
  for (int i = 0; i < kSamples; ++i) ASSERT_GE(s.exponential(1.0), 0.0);
}

TEST(RngDistributionTest, Normal) {
  Rng r(13);
  const Moments m = moments([&] { return r.normal(3.0, 2.0); });
  EXPECT_NEAR(m.mean, 3.0, 0.03);
  EXPECT_NEAR(m.median, 3.0, 0.03);
  EXPECT_NEAR(m.stddev, 2.0, 0.03);
}

TEST(RngDistributionTest, Weibull) {
  Rng r(14);
  const double shape = 1.5, scale = 2.0;
  const Moments m = moments([&] { return r.weibull(shape, scale); });
  EXPECT_NEAR(m.mean, scale * std::tgamma(1.0 + 1.0 / shape), 0.02);
  EXPECT_NEAR(m.median, scale * std::pow(std::log(2.0), 1.0 / shape), 0.02);
}

TEST(RngDistributionTest, Lognormal) {
  Rng r(15);
  const double mu = 1.0, sigma = 0.5;
  const Moments m = moments([&] { return r.lognormal(mu, sigma); });
  EXPECT_NEAR(m.mean, std::exp(mu + sigma * sigma / 2), 0.03);
  EXPECT_NEAR(m.median, std::exp(mu), 0.03);
}

}  // namespace
}  // namespace crowdtrain
