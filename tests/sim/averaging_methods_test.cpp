// The averaging experiment's other methods end to end in the simulated world (workload
// "averaging", method ...): all-reduce of everybody is exact after one round and, all or nothing,
// does nothing in a round where somebody sits out; random groups and PushSum shrink the error;
// ring gossip follows its slow ring; payload scaling charges the network the virtual bytes; parts
// sized by the bandwidths peers advertise in matchmaking beat equal parts on mixed links.
#include <gtest/gtest.h>

#include "sim/sim_world.h"
#include "tests/sim/sim_test_util.h"

namespace crowdtrain::sim {
namespace {

using testing::counter;
constexpr auto curve = testing::averaging_curve;

Scenario method_run(const std::string& method, uint32_t peers, double p, uint32_t rounds,
                    uint64_t seed) {
  return testing::averaging_scenario(method, peers, 8, 2, p, rounds, seed);
}

TEST(AveragingMethods, AllReduceIsExactAfterOneRound) {
  const auto sum = testing::run_quiet(method_run("allreduce", 40, 0.0, 2, 3));
  const auto mse = curve(sum);
  ASSERT_EQ(mse.size(), 3u) << sum["averaging"].dump();
  EXPECT_GT(mse[0], 0.1);
  EXPECT_LT(mse[1], 1e-20);
  EXPECT_EQ(counter(sum, "averaging_round_void"), 0);
  EXPECT_EQ(counter(sum, "mm_joined"), 0);  // a fixed membership needs no matchmaking
}

TEST(AveragingMethods, AllReduceDoesNothingWhenSomebodySitsOut) {
  // p = 0.05 with 40 peers: most rounds lose somebody; those must leave every value alone.
  const auto sum = testing::run_quiet(method_run("allreduce", 40, 0.05, 4, 4));
  const auto mse = curve(sum);
  ASSERT_EQ(mse.size(), 5u);
  const int64_t sat_out = counter(sum, "averaging_sat_out");
  ASSERT_GT(sat_out, 0);
  EXPECT_GT(counter(sum, "averaging_round_void"), 0);
  for (size_t r = 1; r < mse.size(); ++r) {
    // Either exact (a round with everybody) or unchanged (a void round), nothing in between.
    const bool exact = mse[r] < 1e-20;
    const bool unchanged = std::abs(mse[r] - mse[r - 1]) < 1e-12 * mse[r - 1];
    EXPECT_TRUE(exact || unchanged) << "round " << r << ": " << mse[r - 1] << " -> " << mse[r];
  }
}

TEST(AveragingMethods, RandomGroupsShrinkTheError) {
  const auto sum = testing::run_quiet(method_run("random_groups", 64, 0.0, 4, 5));
  const auto mse = curve(sum);
  ASSERT_EQ(mse.size(), 5u);
  for (size_t r = 1; r < mse.size(); ++r) EXPECT_LT(mse[r], mse[r - 1] * 0.5) << r;
  EXPECT_GT(counter(sum, "averaging_groups"), 64 * 3);
}

TEST(AveragingMethods, GossipAndPushSumConvergeAtTheirOwnPace) {
  const auto gossip = curve(testing::run_quiet(method_run("gossip", 64, 0.0, 8, 6)));
  const auto pushsum = curve(testing::run_quiet(method_run("pushsum", 64, 0.0, 8, 6)));
  ASSERT_EQ(gossip.size(), 9u);
  ASSERT_EQ(pushsum.size(), 9u);
  EXPECT_EQ(gossip[0], pushsum[0]);  // the same values, drawn from the seed
  for (size_t r = 1; r < gossip.size(); ++r) {
    EXPECT_LT(gossip[r], gossip[r - 1]) << r;
    EXPECT_LT(pushsum[r], pushsum[r - 1]) << r;
  }
  EXPECT_LT(pushsum.back(), gossip.back() * 0.1);  // the exponential graph mixes far faster
}

TEST(AveragingMethods, PayloadScalingChargesTheVirtualBytes) {
  Scenario plain = method_run("moshpit", 16, 0.0, 1, 7);
  plain.network.upload_mbps = DistSpec::constant(100);
  plain.network.download_mbps = DistSpec::constant(100);
  auto& p = plain.workload.edit<AveragingWorkloadOptions>("averaging");
  p.group.grid_size = 16;
  p.group.grid_dims = 1;  // one group of all 16: exact after one round
  p.vector_size = 64;
  Scenario scaled = plain;
  auto& q = scaled.workload.edit<AveragingWorkloadOptions>("averaging");
  q.wire_params = 4e6;  // 16 MB per peer
  q.group.allreduce_timeout_s = 30;
  q.group.round_interval_s = 40;
  scaled.duration_s = 50;
  const auto a = testing::run_quiet(plain);
  const auto b = testing::run_quiet(scaled);
  // The same averaging (the real vector is the same), far more time on the wire: a group of 16
  // moves 2 x 15/16 x 16 MB per peer at 100 Mb/s, about 2.4 s.
  EXPECT_LT(curve(a)[1], 1e-20);
  EXPECT_LT(curve(b)[1], 1e-20);
  EXPECT_LT(a["samples"]["allreduce_ms"]["p50"].get<double>(), 500.0);
  EXPECT_GT(b["samples"]["allreduce_ms"]["p50"].get<double>(), 1900.0);
}

TEST(AveragingMethods, BandwidthSizedPartsBeatEqualParts) {
  // One group of 16: half the peers on 100 Mb/s, half on 10 Mb/s, 16 MB each on the wire (in
  // 512 KB chunks). Equal parts make a slow peer move 2 x 15/16 x 16 MB at 10 Mb/s (24 s); the
  // optimum gives the slow peers nothing to average, so each of them sends its vector once and
  // receives the averages once (12.8 s each way, overlapping as the chunks stream).
  Scenario equal = method_run("moshpit", 16, 0.0, 1, 11);
  equal.peers.classes.resize(2);
  for (int i = 0; i < 2; ++i) {
    PeerClassSpec& c = equal.peers.classes[i];
    c.name = i == 0 ? "fast" : "slow";
    c.fraction = 0.5;
    c.has_bandwidth = true;
    c.upload_mbps = c.download_mbps = DistSpec::constant(i == 0 ? 100 : 10);
  }
  auto& a = equal.workload.edit<AveragingWorkloadOptions>("averaging");
  a.group.grid_size = 16;
  a.group.grid_dims = 1;
  a.vector_size = 64;
  a.wire_params = 4e6;
  a.group.allreduce_timeout_s = 100;
  a.group.round_interval_s = 110;
  equal.duration_s = 120;
  a.group.balance.load_balance = LoadBalance::kEqual;
  Scenario balanced = equal;
  balanced.workload.edit<AveragingWorkloadOptions>("averaging").group.balance.load_balance =
      LoadBalance::kBandwidth;
  const auto e = testing::run_quiet(equal);
  const auto b = testing::run_quiet(balanced);
  EXPECT_LT(curve(e)[1], 1e-20);  // both average exactly
  EXPECT_LT(curve(b)[1], 1e-20);
  const double e99 = e["samples"]["allreduce_ms"]["p99"].get<double>();
  const double b99 = b["samples"]["allreduce_ms"]["p99"].get<double>();
  EXPECT_GT(e99, 24000.0);
  EXPECT_LT(b99, 0.75 * e99);
  // Each peer's lower bound from the solver (only when bandwidths are advertised): 12.8 s; the
  // slowest peer ends within 1.4x of it.
  EXPECT_FALSE(e["samples"].contains("allreduce_bound_ms"));
  const double bound = b["samples"]["allreduce_bound_ms"]["p50"].get<double>();
  EXPECT_NEAR(bound, 12800.0, 200.0);
  EXPECT_GE(b99, bound);
  EXPECT_LT(b99, 1.4 * bound);
  // The slow half as clients (client_below_mbps): the same split, so the same bound and time.
  Scenario clients = balanced;
  clients.workload.edit<AveragingWorkloadOptions>("averaging").group.balance.client_below_mbps = 50;
  const auto c = testing::run_quiet(clients);
  EXPECT_LT(curve(c)[1], 1e-20);
  EXPECT_NEAR(c["samples"]["allreduce_bound_ms"]["p50"].get<double>(), bound, 1.0);
  EXPECT_LT(c["samples"]["allreduce_ms"]["p99"].get<double>(), 1.4 * bound);
}

}  // namespace
}  // namespace crowdtrain::sim
