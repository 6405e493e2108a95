// The averaging board's group-mean invariant: once every member of a group applied a complete
// all-reduce, each must hold the members' weighted mean; an incomplete group is not judged.
#include <gtest/gtest.h>

#include "core/averaging/averaging_options.h"
#include "core/averaging/averaging_workload.h"
#include "core/invariants.h"
#include "core/scenario.h"
#include "tests/fake_runtime.h"

namespace crowdtrain {
namespace {

using testing::FakeWorld;

Scenario three_peers() {
  Scenario s;
  s.peers.count = 3;
  s.workload.kind = "averaging";
  s.workload.edit<AveragingWorkloadOptions>("averaging").vector_size = 4;
  return s;
}

AllReduceGroup group_of(uint64_t id, std::vector<std::pair<PeerId, double>> members) {
  AllReduceGroup g;
  g.group_id = id;
  for (const auto& [peer, weight] : members) g.members.push_back({peer, weight, 1.0, {}});
  return g;
}

// Sets peer p's values to `values` (what its all-reduce applied), then reports the apply.
void apply(AveragingBoard& board, std::vector<testing::FakeRuntime*>& rts, PeerId p,
           const AllReduceGroup& g, const std::vector<double>& values, bool complete = true) {
  board.source(p)->mutable_values() = values;
  AllReduceStats stats;
  if (!complete) stats.elements_local = 1;
  board.on_allreduce_applied(*rts[p], g, stats);
}

std::vector<double> weighted_mean(const AveragingBoard& board,
                                  std::vector<std::pair<PeerId, double>> members) {
  std::vector<double> mean(4, 0.0);
  double total = 0;
  for (const auto& [p, w] : members) {
    for (size_t i = 0; i < 4; ++i) mean[i] += w * board.source(p)->values()[i];
    total += w;
  }
  for (double& m : mean) m /= total;
  return mean;
}

int64_t violations(FakeWorld& world) {
  return world.sink.counter(std::string(kInvariantViolations) + "/averaging_group_mean_exact");
}

TEST(AveragingBoard, CompleteGroupsMustHoldTheWeightedMean) {
  FakeWorld world(1);
  std::vector<testing::FakeRuntime*> rts;
  for (PeerId p = 0; p < 3; ++p) rts.push_back(&world.add_peer(p));
  AveragingBoard board(three_peers(), /*local_view=*/false);
  const std::vector<std::pair<PeerId, double>> members = {{0, 1.0}, {1, 3.0}};
  const AllReduceGroup g = group_of(7, members);
  const std::vector<double> mean = weighted_mean(board, members);
  const int64_t checks = world.sink.counter(std::string(kInvariantChecks));
  apply(board, rts, 0, g, mean);
  EXPECT_EQ(world.sink.counter(std::string(kInvariantChecks)), checks);  // waits for peer 1
  apply(board, rts, 1, g, mean);
  EXPECT_EQ(world.sink.counter(std::string(kInvariantChecks)), checks + 2);
  EXPECT_EQ(violations(world), 0);

  // The next group starts from what they hold now; peer 2 ends up off the mean.
  const std::vector<std::pair<PeerId, double>> next = {{1, 1.0}, {2, 1.0}};
  const AllReduceGroup h = group_of(8, next);
  std::vector<double> m2 = weighted_mean(board, next);
  apply(board, rts, 1, h, m2);
  std::vector<double> off = m2;
  off[3] += 0.01;
  apply(board, rts, 2, h, off);
  EXPECT_EQ(violations(world), 1);
}

TEST(AveragingBoard, AnIncompleteGroupIsNotJudged) {
  FakeWorld world(1);
  std::vector<testing::FakeRuntime*> rts;
  for (PeerId p = 0; p < 3; ++p) rts.push_back(&world.add_peer(p));
  AveragingBoard board(three_peers(), /*local_view=*/false);
  const AllReduceGroup g = group_of(9, {{0, 1.0}, {2, 1.0}});
  const int64_t checks = world.sink.counter(std::string(kInvariantChecks));
  apply(board, rts, 0, g, {5, 5, 5, 5});
  apply(board, rts, 2, g, {1, 2, 3, 4}, /*complete=*/false);
  EXPECT_EQ(world.sink.counter(std::string(kInvariantChecks)), checks);
  EXPECT_EQ(violations(world), 0);
}

// A member that never applies (it died mid-round) does not keep its group's record for the rest of
// the run: the board forgets a group two rounds after it.
TEST(AveragingBoard, AGroupWithAMemberThatNeverAppliesIsForgotten) {
  FakeWorld world(1);
  std::vector<testing::FakeRuntime*> rts;
  for (PeerId p = 0; p < 3; ++p) rts.push_back(&world.add_peer(p));
  AveragingBoard board(three_peers(), /*local_view=*/false);
  AllReduceGroup g = group_of(11, {{0, 1.0}, {1, 1.0}});
  g.round = 0;
  apply(board, rts, 0, g, {5, 5, 5, 5});
  EXPECT_EQ(board.pending_groups(), 1u);
  for (uint64_t round = 0; round < 3; ++round) {
    for (PeerId p = 0; p < 3; ++p) board.on_round_end(*rts[p], round);
  }
  EXPECT_EQ(board.pending_groups(), 1u);  // round 0's group is kept through round 2
  for (PeerId p = 0; p < 3; ++p) board.on_round_end(*rts[p], 3);
  EXPECT_EQ(board.pending_groups(), 0u);
  EXPECT_EQ(violations(world), 0);
}

}  // namespace
}  // namespace crowdtrain
