// The load-balancing solver against brute force: on small groups (2-4 members, integer
// bandwidths, every mix of node/client/aux modes) the continuous optimum T* is attained by the
// returned fractions, no integer split of a small vector beats it, and the returned integer split
// is within one element's rounding of the best integer split.
#include "core/averaging/load_balancing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numeric>

#include "core/random.h"

namespace crowdtrain {
namespace {

// The best round time over every integer split of `v` elements (sizes / v as fractions), members
// that cannot average getting 0.
double brute_force_integer(const std::vector<BalanceInput>& m, int64_t v) {
  const size_t n = m.size();
  std::vector<double> x(n, 0.0);
  double best = INFINITY;
  std::function<void(size_t, int64_t)> rec = [&](size_t i, int64_t left) {
    if (i == n) {
      if (left == 0) best = std::min(best, round_time_of(m, x));
      return;
    }
    const bool can = m[i].mode != AveragingMode::kClient && m[i].bandwidth > 0;
    for (int64_t k = 0; k <= (can ? left : 0); ++k) {
      x[i] = static_cast<double>(k) / static_cast<double>(v);
      rec(i + 1, left - k);
    }
    x[i] = 0;
  };
  rec(0, v);
  return best;
}

// Largest |dT/dx_i| over averaging members: how much one element of rounding can cost.
double max_slope(const std::vector<BalanceInput>& m) {
  int senders = 0;
  for (auto& b : m) senders += b.mode != AveragingMode::kAux;
  double s = 0;
  for (auto& b : m) {
    if (b.mode == AveragingMode::kClient || b.bandwidth == 0) continue;
    const double c = b.mode == AveragingMode::kAux ? senders : senders - 2.0;
    s = std::max(s, std::abs(c) / b.bandwidth);
  }
  return s;
}

TEST(LoadBalancing, KnownCases) {
  auto eq = optimize_fractions({{2.0}, {2.0}, {2.0}, {2.0}});
  ASSERT_TRUE(eq.ok());
  for (double x : eq->fractions) EXPECT_NEAR(x, 0.25, 1e-12);
  EXPECT_NEAR(eq->round_time, (1 + 2 * 0.25) / 2.0, 1e-12);

  auto client = optimize_fractions({{1.0}, {0.0}, {1.0}});
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->fractions[1], 0.0);
  EXPECT_NEAR(client->fractions[0], 0.5, 1e-12);

  // A faster member averages more: 3 senders, bandwidths 1 and 3 and 1.
  auto fast = optimize_fractions({{1.0}, {3.0}, {1.0}});
  ASSERT_TRUE(fast.ok());
  EXPECT_GT(fast->fractions[1], fast->fractions[0]);
  EXPECT_NEAR(round_time_of({{1.0}, {3.0}, {1.0}}, fast->fractions), fast->round_time, 1e-12);

  // Aux members only average; a mode-client with a bandwidth averages nothing.
  // Three senders at bandwidth 1 already spend T = 1 on their own traffic; a fast aux member can
  // take the whole vector within that time.
  auto aux = optimize_fractions({{1.0},
                                 {1.0},
                                 {10.0, AveragingMode::kAux},
                                 {1.0, AveragingMode::kClient},
                                 {9.0, AveragingMode::kClient}});
  ASSERT_TRUE(aux.ok());
  EXPECT_EQ(aux->fractions[3], 0.0);
  EXPECT_EQ(aux->fractions[4], 0.0);
  EXPECT_NEAR(aux->fractions[2], 1.0, 1e-12);
  EXPECT_NEAR(aux->round_time, 1.0, 1e-12);

  EXPECT_FALSE(optimize_fractions({{0.0}, {0.0}}).ok());
  EXPECT_FALSE(optimize_fractions({{1.0, AveragingMode::kClient}}).ok());
  EXPECT_FALSE(optimize_fractions({{-1.0}}).ok());
  EXPECT_FALSE(optimize_fractions({{NAN}}).ok());
}

TEST(LoadBalancing, IntegerSizesSumExactly) {
  EXPECT_EQ(integer_part_sizes(10, {0.5, 0.0, 0.5}), (std::vector<int64_t>{5, 0, 5}));
  EXPECT_EQ(integer_part_sizes(10, {1.0 / 3, 1.0 / 3, 1.0 / 3}), (std::vector<int64_t>{4, 3, 3}));
  EXPECT_EQ(integer_part_sizes(0, {0.2, 0.8}), (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(integer_part_sizes(1, {0.0, 1.0}), (std::vector<int64_t>{0, 1}));
  Rng rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<double> x(1 + rng.uniform_int(8));
    double s = 0;
    for (double& v : x) s += (v = rng.bernoulli(0.2) ? 0.0 : rng.uniform01());
    if (s == 0) x[0] = s = 1;
    for (double& v : x) v /= s;
    const int64_t n = static_cast<int64_t>(rng.uniform_int(100000));
    auto sizes = integer_part_sizes(n, x);
    EXPECT_EQ(std::accumulate(sizes.begin(), sizes.end(), int64_t{0}), n);
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i] == 0) {
        EXPECT_EQ(sizes[i], 0);
      }
      EXPECT_LE(std::abs(static_cast<double>(sizes[i]) - x[i] * n), 1.0 + 1e-9);
    }
  }
}

TEST(LoadBalancing, MatchesBruteForce) {
  Rng rng(11);
  int solved = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const size_t n = 2 + rng.uniform_int(3);
    std::vector<BalanceInput> m(n);
    for (auto& b : m) {
      b.bandwidth = static_cast<double>(rng.uniform_int(6));  // 0 = client
      const uint64_t mode = rng.uniform_int(6);
      b.mode = mode == 0 ? AveragingMode::kAux
                         : (mode == 1 ? AveragingMode::kClient : AveragingMode::kNode);
    }
    auto sol = optimize_fractions(m);
    bool any = false;
    for (auto& b : m) any |= b.mode != AveragingMode::kClient && b.bandwidth > 0;
    ASSERT_EQ(sol.ok(), any);
    if (!sol.ok()) continue;
    ++solved;
    const double t_star = sol->round_time;
    EXPECT_NEAR(std::accumulate(sol->fractions.begin(), sol->fractions.end(), 0.0), 1.0, 1e-12);
    EXPECT_NEAR(round_time_of(m, sol->fractions), t_star, 1e-9 * (1 + t_star));
    const int64_t v = n == 4 ? 24 : 60;
    const double brute = brute_force_integer(m, v);
    EXPECT_GE(brute, t_star - 1e-9) << "trial " << trial;
    const auto sizes = integer_part_sizes(v, sol->fractions);
    std::vector<double> xi(n);
    for (size_t i = 0; i < n; ++i) xi[i] = static_cast<double>(sizes[i]) / v;
    EXPECT_LE(round_time_of(m, xi), brute + max_slope(m) / v + 1e-9) << "trial " << trial;
    // A continuous grid cannot beat T* either (random points, for the n = 2..4 simplex).
    for (int k = 0; k < 50; ++k) {
      std::vector<double> x(n, 0.0);
      double s = 0;
      for (size_t i = 0; i < n; ++i) {
        if (m[i].mode != AveragingMode::kClient && m[i].bandwidth > 0)
          s += (x[i] = rng.uniform01());
      }
      if (s == 0) continue;
      for (double& y : x) y /= s;
      EXPECT_GE(round_time_of(m, x), t_star - 1e-9);
    }
  }
  EXPECT_GT(solved, 250);
}

TEST(LoadBalancing, LargeGroupIsFastAndBalanced) {
  std::vector<BalanceInput> m(256);
  Rng rng(2);
  for (auto& b : m) b.bandwidth = rng.uniform(1, 100);
  auto sol = optimize_fractions(m);
  ASSERT_TRUE(sol.ok());
  // The slowest member's own traffic sets T*; it averages nothing, and faster members average
  // more. Equal bandwidths, on the other hand, make the min-max tight for everyone.
  EXPECT_NEAR(round_time_of(m, sol->fractions), sol->round_time, 1e-12);
  size_t slowest = 0;
  for (size_t i = 0; i < m.size(); ++i)
    slowest = m[i].bandwidth < m[slowest].bandwidth ? i : slowest;
  EXPECT_NEAR(sol->round_time, 1.0 / m[slowest].bandwidth, 1e-12);
  EXPECT_EQ(sol->fractions[slowest], 0.0);
  for (size_t i = 0; i < m.size(); ++i) {
    for (size_t j = 0; j < m.size(); ++j) {
      if (m[i].bandwidth < m[j].bandwidth) EXPECT_LE(sol->fractions[i], sol->fractions[j]);
    }
  }
  std::vector<BalanceInput> same(64, BalanceInput{3.0});
  same[5].bandwidth = 6.0;  // one fast member
  auto tight = optimize_fractions(same);
  ASSERT_TRUE(tight.ok());
  for (size_t i = 0; i < same.size(); ++i) {
    EXPECT_NEAR((1 + 62 * tight->fractions[i]) / same[i].bandwidth, tight->round_time, 1e-12);
  }
  auto sizes = load_balance(1 << 24, m);
  ASSERT_TRUE(sizes.ok());
  EXPECT_EQ(std::accumulate(sizes->begin(), sizes->end(), int64_t{0}), int64_t{1} << 24);
}

}  // namespace
}  // namespace crowdtrain
