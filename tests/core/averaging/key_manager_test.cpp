// Group keys on the Moshpit grid: format, the index draw, and the grid property that matters —
// peers that met get different keys next round, and a full M^d grid with no failures reaches the
// exact global mean after d rounds (simulated with the pure key logic and exact group means).
#include "core/averaging/key_manager.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/random.h"

namespace crowdtrain {
namespace {

TEST(KeyManager, Format) {
  EXPECT_EQ(make_group_key("bert", "0110"), "bert.0b0110");
  EXPECT_EQ(make_group_key("bert", ""), "bert.0b");
  EXPECT_TRUE(is_valid_group_key("bert.0b0110"));
  EXPECT_TRUE(is_valid_group_key("bert.0b"));
  EXPECT_FALSE(is_valid_group_key("bert.0b012"));
  EXPECT_FALSE(is_valid_group_key(".0b01"));
  EXPECT_FALSE(is_valid_group_key("a.b.0b01"));
  EXPECT_FALSE(is_valid_group_key("bert0b01"));
  auto p = parse_group_key("x.0b101");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->first, "x");
  EXPECT_EQ(p->second, "101");
  EXPECT_EQ(index_bits(5, 4), "0101");
  EXPECT_EQ(shift_in_index("0011", 2, 2), "1110");
  EXPECT_EQ(shift_in_index("", 3, 2), "");
  EXPECT_EQ(GridSpec().group_size(32).dims(3).key_bits(), 10u);
  EXPECT_EQ(GridSpec().group_size(5).bits_per_index(), 3u);
}

TEST(KeyManager, IndicesDistinctAndDeterministic) {
  for (uint32_t size : {1u, 2u, 7u, 16u}) {
    const auto a = chunk_indices_after_group("group-42", size, 16);
    EXPECT_EQ(a, chunk_indices_after_group("group-42", size, 16));
    std::set<uint32_t> s(a.begin(), a.end());
    EXPECT_EQ(s.size(), size);
    for (uint32_t v : a) EXPECT_LT(v, 16u);
  }
  EXPECT_NE(chunk_indices_after_group("g1", 8, 8), chunk_indices_after_group("g2", 8, 8));
  // Larger than the number of buckets: balanced, every bucket used.
  const auto big = chunk_indices_after_group("g", 10, 4);
  std::map<uint32_t, int> counts;
  for (uint32_t v : big) ++counts[v];
  EXPECT_EQ(counts.size(), 4u);
  for (auto& [v, c] : counts) EXPECT_GE(c, 2);
}

TEST(KeyManager, PeersThatMetSplitUp) {
  const GridSpec grid = GridSpec().group_size(4).dims(3);
  const std::string key = make_group_key("avg", "0110");
  std::set<std::string> next;
  for (uint32_t i = 0; i < 4; ++i) {
    auto k = key_after_group(key, grid, "gid", i, 4);
    ASSERT_TRUE(k.ok()) << k.error();
    EXPECT_TRUE(is_valid_group_key(*k));
    EXPECT_EQ(k->substr(0, 8), "avg.0b10");  // the oldest index shifted out
    next.insert(*k);
  }
  EXPECT_EQ(next.size(), 4u);
  EXPECT_FALSE(key_after_group(key, grid, "gid", 4, 4).ok());
  EXPECT_FALSE(key_after_group("bad", grid, "gid", 0, 4).ok());
}

// Simulates Moshpit rounds on a full grid: groups = peers with equal keys, each group replaced by
// its exact mean, then keys advance. Returns the values after `rounds`.
std::vector<double> simulate_grid(const GridSpec& grid, uint32_t rounds, uint64_t seed,
                                  std::vector<double> values, size_t* max_group) {
  const size_t n = values.size();
  std::vector<std::string> keys(n);
  for (size_t p = 0; p < n; ++p) keys[p] = make_group_key("g", initial_bits_for_cell(p, grid));
  *max_group = 0;
  for (uint32_t r = 0; r < rounds; ++r) {
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t p = 0; p < n; ++p) groups[keys[p]].push_back(p);
    for (auto& [key, members] : groups) {
      *max_group = std::max(*max_group, members.size());
      double sum = 0;
      for (size_t p : members) sum += values[p];
      for (size_t p : members) values[p] = sum / static_cast<double>(members.size());
      const std::string gid = key + "/" + std::to_string(r) + "/" + std::to_string(seed);
      for (uint32_t i = 0; i < members.size(); ++i) {
        auto k = key_after_group(key, grid, gid, i, static_cast<uint32_t>(members.size()));
        CT_CHECK(k.ok());
        keys[members[i]] = *k;
      }
    }
  }
  return values;
}

TEST(KeyManager, FullGridReachesExactMeanAfterDRounds) {
  for (auto [m, d] :
       std::vector<std::pair<uint32_t, uint32_t>>{{2, 1}, {4, 2}, {2, 3}, {4, 3}, {8, 2}, {2, 5}}) {
    const GridSpec grid = GridSpec().group_size(m).dims(d);
    size_t n = 1;
    for (uint32_t k = 0; k < d; ++k) n *= m;
    Rng rng(derive_seed(3, "grid", m, d));
    std::vector<double> v(n);
    double mean = 0;
    for (double& x : v) mean += (x = rng.normal());
    mean /= static_cast<double>(n);
    size_t max_group = 0;
    auto before = simulate_grid(grid, d - 1, 9, v, &max_group);
    if (d > 1) {
      double spread = 0;
      for (double x : before) spread = std::max(spread, std::abs(x - mean));
      EXPECT_GT(spread, 1e-6) << "d-1 rounds must not be enough for m=" << m << " d=" << d;
    }
    auto after = simulate_grid(grid, d, 9, v, &max_group);
    EXPECT_EQ(max_group, m);
    for (double x : after) EXPECT_NEAR(x, mean, 1e-12) << "m=" << m << " d=" << d;
  }
}

}  // namespace
}  // namespace crowdtrain
