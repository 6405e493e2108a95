// Taking over orphaned experts in the simulated world: three servers host one block each (no
// replicas), two chain trainers pass batches through the three blocks with backward (the experts
// train), and server 0 dies for good at 15 s. Its guardian (server 1) has been pulling block 0's
// state; once block 0's DHT record is empty it adopts the block and declares it, and the passes go
// on. Without backups the chain stops at block 0 for good. Real numerics, tiny blocks, no digits.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/scenario.h"
#include "tests/sim/sim_test_util.h"

namespace crowdtrain::sim {
namespace {

nlohmann::json three_blocks(double duration_s, double backup_interval_s) {
  nlohmann::json doc = nlohmann::json::parse(R"({
    "name": "moe_takeover_test", "seed": 2,
    "peers": {"count": 5, "classes": [{"name": "p", "fraction": 1, "flops_per_s": 1e9}]},
    "network": {"access_latency_ms": 5},
    "faults": [{"at_s": 15, "kind": "kill", "peers": [0]}],
    "workload": {"kind": "moe", "moe": {
      "grid": {"prefix": "b", "sizes": [1]}, "servers": 3, "numerics": "real",
      "expert": {"kind": "ffn", "hidden": 16, "lr": 0.01},
      "server": {"max_batch_size": 32, "declare_period_s": 2, "declare_expiration_s": 5},
      "client": {"forward_timeout_s": 2, "backward_timeout_s": 2, "search_timeout_s": 2,
                 "negative_cache_s": 1},
      "trainer": {"task": "chain", "layers": 3, "start_s": 3},
      "chain": {"batch": 8, "backward": true, "warmup_s": 3, "retry_s": 0.5,
                "avoid_failed_s": 10},
      "dht": {"bootstrap_spread_s": 0.5, "rpc_timeout_s": 1}}},
    "output": {"progress": false}
  })");
  doc["duration_s"] = duration_s;
  doc["workload"]["moe"]["server"]["backup_interval_s"] = backup_interval_s;
  return doc;
}

nlohmann::json run(const nlohmann::json& doc) {
  auto s = parse_scenario(doc);
  EXPECT_TRUE(s.ok()) << s.error();
  return testing::run_quiet(s.value());
}

int64_t counter(const nlohmann::json& sum, const char* name) {
  const auto& c = sum["moe"]["counters"];
  return c.contains(name) ? c[name].get<int64_t>() : 0;
}

TEST(MoeTakeover, AGuardianAdoptsTheOrphanAndThePassesGoOn) {
  const auto at_kill = run(three_blocks(15, 2));
  const auto later = run(three_blocks(40, 2));
  EXPECT_GT(counter(at_kill, "moe_backup_pulls"), 5);  // server 1 kept a fresh copy of block 0
  EXPECT_EQ(counter(at_kill, "moe_takeovers"), 0);
  EXPECT_EQ(counter(later, "moe_takeovers"), 1) << later["moe"].dump();
  EXPECT_GT(counter(later, "moe_chain_failures"), 0);  // calls to the dead server timed out
  const int64_t after = counter(later, "moe_chain_passes") - counter(at_kill, "moe_chain_passes");
  EXPECT_GT(after, 50) << later["moe"].dump();
}

TEST(MoeTakeover, WithoutBackupsTheChainStopsAtTheOrphan) {
  const auto at_kill = run(three_blocks(15, 0));
  const auto later = run(three_blocks(40, 0));
  EXPECT_EQ(counter(later, "moe_backup_pulls"), 0);
  EXPECT_EQ(counter(later, "moe_takeovers"), 0);
  // The passes in flight at the kill may finish; none starts through block 0 again.
  const int64_t after = counter(later, "moe_chain_passes") - counter(at_kill, "moe_chain_passes");
  EXPECT_LE(after, 2) << later["moe"].dump();
}

}  // namespace
}  // namespace crowdtrain::sim
