// Moshpit All-Reduce end to end in the simulated world (workload "averaging"): a full 4x4 grid
// without failures holds the exact mean after d = 2 rounds; an 8x8 grid in 3 dimensions (512 cells,
// 200 peers at random cells) still shrinks the error; with failures the error keeps falling; a peer
// that finds no group times out and keeps its value; the same seed gives the same event log.
#include <gtest/gtest.h>

#include "sim/sim_world.h"
#include "sim/swarm.h"
#include "tests/sim/sim_test_util.h"

namespace crowdtrain::sim {
namespace {

using testing::counter;
constexpr auto curve = testing::averaging_curve;

Scenario averaging(uint32_t peers, uint32_t m, uint32_t d, double p, uint32_t rounds,
                   uint64_t seed) {
  return testing::averaging_scenario("moshpit", peers, m, d, p, rounds, seed);
}

nlohmann::json run(const Scenario& s) { return testing::run_quiet(s); }

TEST(AveragingWorld, FullGridIsExactAfterDRounds) {
  const auto sum = run(averaging(16, 4, 2, 0.0, 3, 5));
  const auto mse = curve(sum);
  ASSERT_EQ(mse.size(), 4u) << sum["averaging"].dump();
  EXPECT_GT(mse[0], 0.1);
  EXPECT_GT(mse[1], 1e-6);  // one round averages within rows only
  EXPECT_LT(mse[2], 1e-20);
  EXPECT_LT(mse[3], 1e-20);
  EXPECT_EQ(counter(sum, "averaging_no_group"), 0);
  EXPECT_EQ(counter(sum, "averaging_groups"), 16 * 3);
  EXPECT_EQ(sum["averaging"]["rounds_to_1e-9"], 2);
}

TEST(AveragingWorld, RandomCellsInThreeDimensionsConverge) {
  const auto sum = run(averaging(200, 8, 3, 0.0, 6, 9));
  const auto mse = curve(sum);
  ASSERT_EQ(mse.size(), 7u) << sum["averaging"].dump();
  EXPECT_LT(mse[6], mse[0] * 1e-3);
}

TEST(AveragingWorld, ErrorStillFallsWithFailures) {
  const auto sum = run(averaging(64, 8, 2, 0.05, 6, 3));
  const auto mse = curve(sum);
  ASSERT_EQ(mse.size(), 7u) << sum["averaging"].dump();
  EXPECT_GT(counter(sum, "averaging_sat_out"), 0);
  EXPECT_LT(mse[3], mse[0] * 1e-2);
  EXPECT_LT(mse[6], mse[3]);
}

TEST(AveragingWorld, PeerWithoutGroupKeepsItsValue) {
  // Two peers on a 4x4 grid, groups of at least 3: nobody finds a group.
  Scenario s = averaging(2, 4, 2, 0.0, 2, 4);
  auto& group = s.workload.edit<AveragingWorkloadOptions>("averaging").group;
  group.min_group_size = 3;
  group.target_group_size = 3;
  const auto sum = run(s);
  const auto mse = curve(sum);
  ASSERT_EQ(mse.size(), 3u) << sum["averaging"].dump();
  EXPECT_EQ(mse[2], mse[0]);
  EXPECT_EQ(counter(sum, "averaging_no_group"), 4);
  EXPECT_EQ(counter(sum, "averaging_groups"), 0);
}

TEST(AveragingWorld, SameSeedSameEventLog) {
  const auto a = run(averaging(32, 4, 3, 0.05, 3, 11));
  const auto b = run(averaging(32, 4, 3, 0.05, 3, 11));
  const auto c = run(averaging(32, 4, 3, 0.05, 3, 12));
  EXPECT_EQ(a["event_log_sha256"], b["event_log_sha256"]);
  EXPECT_EQ(a["averaging"], b["averaging"]);
  EXPECT_NE(a["event_log_sha256"], c["event_log_sha256"]);
}

}  // namespace
}  // namespace crowdtrain::sim

namespace crowdtrain::sim {
namespace {

// Swarm seed 389 (scenarios/swarm_averaging.json, the swarm's default phases): after the faults
// one peer of 64 sat in a grid cell of nine, with groups of at most eight, and the other peers'
// indices after their groups kept that cell full: it was left out for nine rounds while the rest
// agreed, and the spread fell 2x instead of 10x. A peer left out now draws a new cell.
TEST(AveragingWorld, SwarmSeed389ALeftOutPeerDrawsANewCellAndTheSpreadFalls) {
  const std::string path = std::string(CROWDTRAIN_SOURCE_DIR) + "/scenarios/swarm_averaging.json";
  auto base = load_scenario(path, {});
  ASSERT_TRUE(base.ok()) << base.error();
  SwarmOptions o;
  o.scenario_path = path;
  auto s = load_scenario(path, swarm_overrides(base.value(), 389, o));
  ASSERT_TRUE(s.ok()) << s.error();
  const auto sum = testing::run_quiet(s.value());
  ASSERT_FALSE(sum.is_null());
  EXPECT_TRUE(sum["liveness"]["met"].get<bool>()) << sum["liveness"].dump();
  EXPECT_GT(testing::counter(sum, "averaging_key_redrawn"), 0);
}

}  // namespace
}  // namespace crowdtrain::sim

namespace crowdtrain::sim {
namespace {

// A quarter of the peers behind NAT (peers.clients): they never lead and average no part, nobody
// calls them first, and the error still falls by orders of magnitude.
TEST(AveragingWorld, ClientsBehindNatAverageAndNobodyCallsThem) {
  Scenario s = testing::averaging_scenario("moshpit", 64, 8, 2, 0.0, 6, 3);
  s.peers.client_fraction = 0.25;
  const auto sum = testing::run_quiet(s);
  ASSERT_FALSE(sum.is_null());
  const auto c = testing::averaging_curve(sum);
  ASSERT_GE(c.size(), 6u);
  EXPECT_LT(c.back(), c.front() * 1e-3) << sum["averaging"].dump();
  EXPECT_EQ(testing::counter(sum, "messages_to_unreached_client"), 0);
  EXPECT_GT(testing::counter(sum, "averaging_groups"), 0);
}

}  // namespace
}  // namespace crowdtrain::sim
