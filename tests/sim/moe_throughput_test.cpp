// The throughput trainer (workload.moe trainer.task "chain") in the simulated world, against what
// the compute-time model and the network must give: with enough trainers the servers are the
// bottleneck and samples/s is the servers' capacity (servers * batch / block time / layers); one
// trainer alone pays a block's compute plus the round trip of network.delay_ms for every block.
// Timing-only numerics (no digits needed); the same seed gives the same event log.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/moe/expert.h"
#include "core/scenario.h"
#include "tests/sim/sim_test_util.h"

namespace crowdtrain::sim {
namespace {

constexpr double kFlopsPerS = 4e6;
constexpr int kBatch = 100, kLayers = 4;

// 2 servers host 4 layers of one residual FFN block each (in turn: 0 and 2 on one, 1 and 3 on the
// other); `trainers` trainers pass batches of 100 through them.
nlohmann::json chain(int trainers, double delay_ms) {
  nlohmann::json doc = nlohmann::json::parse(R"({
    "name": "moe_throughput_test", "seed": 3, "duration_s": 60,
    "peers": {"classes": [{"name": "p", "fraction": 1, "flops_per_s": 4e6}]},
    "network": {"access_latency_ms": 0, "upload_mbps": 100000, "download_mbps": 100000},
    "workload": {"kind": "moe", "moe": {
      "grid": {"prefix": "b", "sizes": [1]}, "servers": 2, "numerics": "timing",
      "expert": {"kind": "residual_ffn", "hidden": 16, "ffn_dim": 32},
      "server": {"max_batch_size": 100, "max_queue_samples": 10000},
      "client": {"forward_timeout_s": 60, "backward_timeout_s": 60},
      "trainer": {"task": "chain", "layers": 4, "start_s": 3},
      "chain": {"batch": 100, "warmup_s": 10},
      "dht": {"bootstrap_spread_s": 0.5}}},
    "output": {"progress": false}
  })");
  doc["peers"]["count"] = 2 + trainers;
  doc["network"]["delay_ms"] = delay_ms;
  return doc;
}

double block_seconds() {
  auto info = moe::expert_info(moe::ExpertConfig().kind("residual_ffn").hidden(16).ffn_dim(32));
  EXPECT_TRUE(info.ok());
  return info->forward_flops_per_sample * kBatch / kFlopsPerS;
}

nlohmann::json run(const nlohmann::json& doc) {
  auto s = parse_scenario(doc);
  EXPECT_TRUE(s.ok()) << s.error();
  return testing::run_quiet(s.value());
}

TEST(MoeThroughput, ManyTrainersSaturateTheServers) {
  const double t = block_seconds();
  ASSERT_GT(t, 0.05);  // compute dominates the (zero) latency
  const auto sum = run(chain(8, 0));
  const auto& tp = sum["moe"]["throughput"];
  const double capacity = 2 * kBatch / t / kLayers;
  EXPECT_NEAR(tp["samples_per_s"].get<double>(), capacity, 0.03 * capacity) << tp.dump();
  EXPECT_EQ(tp["failures"].get<int64_t>(), 0);
}

TEST(MoeThroughput, OneTrainerPaysComputeAndRoundTripPerBlock) {
  const double t = block_seconds(), delay = 0.040;
  const auto sum = run(chain(1, delay * 1e3));
  const auto& tp = sum["moe"]["throughput"];
  const double expected = kBatch / (kLayers * (t + 2 * delay));
  EXPECT_NEAR(tp["samples_per_s"].get<double>(), expected, 0.03 * expected) << tp.dump();
  EXPECT_GT(tp["passes"].get<int64_t>(), 20);
}

TEST(MoeThroughput, ForwardAndBackwardCostFourTimesTheForward) {
  // The server charges 3x the forward's flops for a backward (recomputed forward + backward).
  nlohmann::json doc = chain(8, 0);
  doc["workload"]["moe"]["chain"]["backward"] = true;
  const auto sum = run(doc);
  const double capacity = 2 * kBatch / (4 * block_seconds()) / kLayers;
  const double got = sum["moe"]["throughput"]["samples_per_s"].get<double>();
  EXPECT_NEAR(got, capacity, 0.03 * capacity) << sum["moe"]["throughput"].dump();
}

TEST(MoeThroughput, ExponentialDelaysAreDeterministic) {
  nlohmann::json doc = chain(3, 0);
  doc["network"]["delay_ms"] = nlohmann::json::parse(R"({"dist": "exponential", "mean": 30})");
  doc["duration_s"] = 30;
  const auto a = run(doc), b = run(doc);
  EXPECT_EQ(a["event_log_sha256"], b["event_log_sha256"]);
  EXPECT_EQ(a["moe"]["counters"], b["moe"]["counters"]);
  doc["seed"] = 4;
  const auto c = run(doc);
  EXPECT_NE(a["moe"]["counters"]["moe_chain_block_samples"],
            c["moe"]["counters"]["moe_chain_block_samples"]);
}

}  // namespace
}  // namespace crowdtrain::sim
