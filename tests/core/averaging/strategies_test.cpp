// Gossip and PushSum math: weights, targets on the exponential graph, mass conservation, and
// convergence towards the mean.
#include "core/averaging/strategies.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/random.h"

namespace crowdtrain {
namespace {

TEST(Strategies, RingNeighbours) {
  EXPECT_EQ(ring_gossip_neighbours(0, 1), (std::vector<MixTarget>{{0, 1.0}}));
  EXPECT_EQ(ring_gossip_neighbours(1, 2), (std::vector<MixTarget>{{1, 0.5}, {0, 0.5}}));
  auto r = ring_gossip_neighbours(0, 5);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].peer, 4u);
  EXPECT_EQ(r[2].peer, 1u);
  for (auto& t : r) EXPECT_DOUBLE_EQ(t.weight, 1.0 / 3);
}

TEST(Strategies, RingGossipConservesMeanAndConverges) {
  const uint32_t n = 16;
  std::vector<double> v(n);
  Rng rng(3);
  double mean = 0;
  for (double& x : v) mean += (x = rng.normal());
  mean /= n;
  std::vector<bool> alive(n, true);
  for (int r = 0; r < 400; ++r) v = ring_gossip_round(v, alive);
  double sum = 0;
  for (double x : v) {
    sum += x;
    EXPECT_NEAR(x, mean, 1e-6);
  }
  EXPECT_NEAR(sum / n, mean, 1e-12);
}

TEST(Strategies, PushSumTargets) {
  EXPECT_EQ(pushsum_exponents(0, 8), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(pushsum_exponents(1, 8), (std::vector<uint32_t>{2, 0}));
  EXPECT_EQ(pushsum_exponents(2, 8), (std::vector<uint32_t>{1, 2}));
  auto t = pushsum_targets(6, 8, 1);  // hops 4 and 1
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].peer, 6u);
  EXPECT_EQ(t[1].peer, 2u);
  EXPECT_EQ(t[2].peer, 7u);
  for (auto& x : t) EXPECT_DOUBLE_EQ(x.weight, 1.0 / 3);
  auto two = pushsum_targets(0, 2, 0);  // hops 1 and 1 merge
  ASSERT_EQ(two.size(), 2u);
  EXPECT_DOUBLE_EQ(two[0].weight, 0.5);
  EXPECT_EQ(pushsum_targets(0, 1, 5).size(), 1u);
}

TEST(Strategies, PushSumConservesMassAndConverges) {
  const uint32_t n = 32;
  std::vector<PushSumState> s(n);
  Rng rng(4);
  double mean = 0;
  for (auto& x : s) mean += (x.value = rng.normal());
  mean /= n;
  std::vector<bool> alive(n, true);
  for (uint64_t r = 0; r < 60; ++r) {
    s = pushsum_round(s, r, alive);
    double mass = 0, weight = 0;
    for (auto& x : s) mass += x.value, weight += x.weight;
    EXPECT_NEAR(mass / n, mean, 1e-12);
    EXPECT_NEAR(weight, n, 1e-9);
  }
  for (auto& x : s) EXPECT_NEAR(x.estimate(), mean, 1e-9);
  // A dead peer keeps its state; mass sent to it is lost.
  std::vector<bool> one_dead(n, true);
  one_dead[3] = false;
  auto before = s[3];
  auto after = pushsum_round(s, 0, one_dead);
  EXPECT_EQ(after[3].value, before.value);
}

}  // namespace
}  // namespace crowdtrain
